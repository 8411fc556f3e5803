"""`berth secrets generate|rotate`: fill placeholders in an env file with strong random values.

The file is edited in place, statement by statement: only the value of a key that changes is
rewritten (in the quoting style it had); comments, blank lines, order, line endings and the file's
mode stay as they were. A new file (made from its `.example`) is written with mode 0600.

What counts as a placeholder: an empty value of a secret-named key, the value the committed
`.example` holds (it is public), and the usual examples — `change_this...`, `change_me`,
`changeme`, `your-...`, `xxx`, `replace-me`, `sk-your-key-here`, `sk-proj-...` (truncated), and the
well-known defaults berth check refuses (`password`, `postgres`, `secret`...). Values that look
real are kept.

What is generated (Python's `secrets`):
  * keys, JWT secrets, tokens, salts: 32 random bytes as hex (64 characters);
  * passwords: 16 random bytes as hex (32 characters) — hex is URL-safe and shell-safe, so it can sit
    in a URL (postgres://app:PW@db/app) or on a command line (redis-server --requirepass PW) as is.
Keys that only a third party can issue (OPENAI_API_KEY, STRIPE_*, AWS_*...) are never filled with
random text: they are reported as needing a real value from that provider.

Dependent values stay consistent: a URL's password follows the password key of its service
(DATABASE_URL ← POSTGRES_PASSWORD, REDIS_URL ← REDIS_PASSWORD, ...), percent-encoded. Values
written with `${VAR}` are left alone: compose derives them.

No function here returns or raises a message that contains a value; values travel only in
`Change.value`, which the CLI prints only with --show.
"""

from __future__ import annotations

import math
import os
import re
import secrets
import stat
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote

from berth.errors import BerthError, UsageError
from berth.model.envfile import EnvEntry, EnvFile, example_of, parse_env_text
from berth.secrets.masking import is_secret_key

KEY_BYTES = 32
PASSWORD_BYTES = 16
NEW_FILE_MODE = 0o600

# names is_secret_key matches that hold no secret (the same idea as the env.* rules, plus durations)
_NOT_SECRET_SUFFIXES = (
    "_FILE", "_PATH", "_DIR", "_ID", "_URL", "_URI", "_HOST", "_PORT", "_USER", "_USERNAME", "_NAME", "_TTL",
    "_EXPIRY", "_EXPIRES", "_EXPIRATION", "_LIFETIME", "_AGE", "_TIMEOUT", "_LENGTH", "_SIZE", "_ALGORITHM", "_ALG",
    "_ENABLED", "_DISABLED", "_REQUIRED", "_HEADER", "_ISSUER", "_AUDIENCE", "_PROVIDER", "_BACKEND", "_TYPE",
    "_MODE", "_METHOD", "_ROUNDS", "_COST", "_CALLBACK", "_REDIRECT", "_ENDPOINT", "_DOMAIN", "_SCOPE", "_SCOPES",
    "_PREFIX", "_VERSION", "_REGION", "_SECONDS", "_MINUTES", "_HOURS", "_DAYS", "_MS", "_COUNT", "_MAX", "_MIN",
    "_LIMIT", "_RETRIES", "_ATTEMPTS", "_POLICY", "_STRATEGY",
)
_PASSWORD_NAME = re.compile(r"(PASSWORD|PASSWD|PASSPHRASE|_PASS$|^PASS$|_PWD$)", re.I)

# --------------------------------------------------------------------------- third parties

# (name pattern, provider, where the key comes from)
_PROVIDERS: list[tuple[re.Pattern[str], str, str]] = [(re.compile(p, re.I), name, where) for p, name, where in [
    (r"^OPENAI_", "OpenAI", "https://platform.openai.com/api-keys"),
    (r"^ANTHROPIC_|^CLAUDE_", "Anthropic", "https://console.anthropic.com/settings/keys"),
    (r"^STRIPE_", "Stripe", "https://dashboard.stripe.com/apikeys"),
    (r"^AWS_", "AWS", "the AWS IAM console"),
    (r"^(GITHUB|GH)_", "GitHub", "GitHub settings → Developer settings"),
    (r"^GITLAB_", "GitLab", "GitLab → Preferences → Access tokens"),
    (r"^SLACK_", "Slack", "the Slack app's settings"),
    (r"^DISCORD_", "Discord", "the Discord developer portal"),
    (r"^TELEGRAM_", "Telegram", "@BotFather"),
    (r"^SENDGRID_", "SendGrid", "the SendGrid dashboard"),
    (r"^MAILGUN_", "Mailgun", "the Mailgun dashboard"),
    (r"^POSTMARK_", "Postmark", "the Postmark dashboard"),
    (r"^RESEND_", "Resend", "the Resend dashboard"),
    (r"^TWILIO_", "Twilio", "the Twilio console"),
    (r"^(GOOGLE|GCP|GEMINI|FIREBASE)_", "Google", "the Google Cloud console"),
    (r"^AZURE_", "Azure", "the Azure portal"),
    (r"^SENTRY_", "Sentry", "the Sentry project settings"),
    (r"^CLOUDFLARE_|^CF_API", "Cloudflare", "the Cloudflare dashboard"),
    (r"^(DIGITALOCEAN|DO)_", "DigitalOcean", "the DigitalOcean control panel"),
    (r"^(HF|HUGGINGFACE|HUGGING_FACE)_", "Hugging Face", "https://huggingface.co/settings/tokens"),
    (r"^GROQ_", "Groq", "the Groq console"),
    (r"^MISTRAL_", "Mistral", "the Mistral console"),
    (r"^COHERE_", "Cohere", "the Cohere dashboard"),
    (r"^PINECONE_", "Pinecone", "the Pinecone console"),
    (r"^SUPABASE_", "Supabase", "the Supabase project settings"),
    (r"^PAYPAL_", "PayPal", "the PayPal developer dashboard"),
    (r"^SHOPIFY_", "Shopify", "the Shopify partner dashboard"),
    (r"^AUTH0_", "Auth0", "the Auth0 dashboard"),
    (r"^OKTA_", "Okta", "the Okta admin console"),
    (r"^CLERK_", "Clerk", "the Clerk dashboard"),
    (r"^ALGOLIA_", "Algolia", "the Algolia dashboard"),
    (r"^MAPBOX_", "Mapbox", "the Mapbox account page"),
    (r"^(DATADOG|DD)_", "Datadog", "the Datadog organization settings"),
    (r"^NEW_?RELIC_", "New Relic", "the New Relic API keys page"),
    (r"^POSTHOG_", "PostHog", "the PostHog project settings"),
    (r"^VERCEL_", "Vercel", "the Vercel account settings"),
    (r"^(SMTP|EMAIL_HOST|EMAIL|MAIL)_(PASSWORD|PASS|PWD|USER|USERNAME|KEY)$", "your mail provider",
     "your mail provider's SMTP settings"),
    (r"^(DOCKER|REGISTRY)_(PASSWORD|TOKEN|PASS)$", "your container registry", "your registry's access tokens"),
]]
# values whose format says who issued them, whatever the key is called
_PROVIDER_VALUES = [
    (re.compile(r"^sk-(proj|svcacct|admin)-|^sk-[A-Za-z0-9]{20}"), "OpenAI"),
    (re.compile(r"^sk-ant-"), "Anthropic"),
    (re.compile(r"^[spr]k_(live|test)_"), "Stripe"),
    (re.compile(r"^(AKIA|ASIA)[A-Z0-9]{4}"), "AWS"),
    (re.compile(r"^(ghp|gho|ghu|ghs|ghr)_|^github_pat_"), "GitHub"),
    (re.compile(r"^glpat-"), "GitLab"),
    (re.compile(r"^xox[abprs]-"), "Slack"),
    (re.compile(r"^AIza"), "Google"),
    (re.compile(r"^SG\."), "SendGrid"),
    (re.compile(r"^hf_"), "Hugging Face"),
]
# API_KEY-like names are a third party's when another word names who: MAPS_API_KEY, ACME_CLIENT_SECRET
_ISSUED_NAME = re.compile(r"^(?P<who>[A-Z0-9_]+?)_(API_?KEY|API_TOKEN|ACCESS_KEY(_ID)?|SECRET_ACCESS_KEY|ACCESS_TOKEN|"
                          r"CLIENT_SECRET|CLIENT_ID|AUTH_TOKEN|WEBHOOK_SECRET|SIGNING_SECRET|DSN|LICENSE_KEY)$", re.I)
_OWN_WORDS = {"APP", "API", "ADMIN", "INTERNAL", "SERVICE", "BACKEND", "FRONTEND", "WEB", "SERVER", "MASTER", "ROOT",
              "SITE", "PROJECT", "SESSION", "CSRF", "JWT", "AUTH", "ACCESS", "REFRESH", "SECRET", "DJANGO", "FLASK",
              "RAILS", "NEXTAUTH", "APP_API", "PRIVATE", "PUBLIC", "WORKER", "CRON", "METRICS", "HEALTH", "DEPLOY"}


def provider_of(key: str, value: str = "") -> tuple[str, str] | None:
    """(provider, where to get the value) if only a third party can issue this key's value."""
    for pattern, name, where in _PROVIDERS:
        if pattern.search(key):
            return name, where
    for pattern, name in _PROVIDER_VALUES:
        if value and pattern.search(value):
            return name, f"your {name} account"
    m = _ISSUED_NAME.match(key)
    if m and m.group("who").upper() not in _OWN_WORDS:
        who = m.group("who").replace("_", " ").title()
        return who, f"your {who} account"
    return None


# --------------------------------------------------------------------------- what is a placeholder

_PLACEHOLDER_PATTERNS = [
    re.compile(r"(please[-_ .]?)?(change|replace|update|set|insert|enter|put)[-_ .]?(me|this|it)([-_ .].*)?", re.I),
    re.compile(r"changeme|changeit|replaceme|todo|tbd|fixme|placeholder|redacted|secret[-_]?here", re.I),
    re.compile(r"(.*[-_ .])?your[-_ .].*|your(api)?(key|token|secret|password)\w*", re.I),
    re.compile(r".*(key|token|secret|password|value)[-_ .]?(goes[-_ .]?)?here", re.I),
    re.compile(r"<[^<>]*>|\{\{[^{}]*\}\}|\[[^\[\]]*\]"),
    re.compile(r"x{3,}|(x+[-_.:])+x+|.*[-_]x{3,}", re.I),
    re.compile(r"\*+|.*(\.{3}|…)"),  # masked or truncated: sk-proj-...
    re.compile(r"sk-(proj-)?(your|xxx|test|example)[-_a-z]*", re.I),
]
_WEAK_WORDS = {
    "password", "passwd", "pass", "secret", "secretkey", "secret_key", "test", "testing", "example", "sample",
    "admin", "root", "default", "changeme", "letmein", "qwerty", "foo", "bar", "foobar", "none", "null", "nil",
    "undefined", "empty", "123", "1234", "12345", "123456", "12345678", "123456789", "abc123", "postgres", "mysql",
    "redis", "guest", "user", "demo", "insecure", "dev", "development", "key", "token", "apikey", "dummy", "app",
    "mongo", "rabbitmq", "minioadmin", "supersecret", "mysecret", "mypassword",
}


def looks_like_placeholder(value: str) -> bool:
    """A value nobody would deploy as a secret: an example, a 'change me', a well-known default."""
    v = value.strip()
    if not v:
        return True
    if any(p.fullmatch(v) for p in _PLACEHOLDER_PATTERNS):
        return True
    if v.lower() in _WEAK_WORDS or v.lower().startswith("django-insecure"):
        return True
    try:  # the check's own definition, so what generate keeps is what berth check accepts
        from berth.check.rules.env_values import placeholder_kind
    except Exception:  # noqa: BLE001 - the check module is optional here
        return False
    try:
        return placeholder_kind(v, secret=True) is not None
    except Exception:  # noqa: BLE001
        return False


def looks_weak(value: str) -> bool:
    """Real-looking but weak: short, or little entropy (berth check's env.weak-secret)."""
    if len(value) < 16:
        return True
    n = len(value)
    bits = -sum(c / n * math.log2(c / n) for c in Counter(value).values())
    return bits < 2.5


def is_secret_name(key: str) -> bool:
    return is_secret_key(key) and not key.upper().endswith(_NOT_SECRET_SUFFIXES)


def is_password_name(key: str) -> bool:
    return bool(_PASSWORD_NAME.search(key))


def new_value(key: str) -> tuple[str, str]:
    """(value, how it was made) for a secret key."""
    if is_password_name(key):
        return _fresh(PASSWORD_BYTES), f"{PASSWORD_BYTES} random bytes, hex"
    return _fresh(KEY_BYTES), f"{KEY_BYTES} random bytes, hex"


def _fresh(nbytes: int) -> str:
    while True:
        value = secrets.token_hex(nbytes)
        if not looks_like_placeholder(value) and not looks_weak(value):  # 'xxx'-like runs: vanishingly rare
            return value


# --------------------------------------------------------------------------- URLs and their password keys

_URL = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<netloc>[^/?#]*)(?P<rest>.*)$", re.S)
# (scheme pattern, password keys in order of preference)
_URL_SOURCES = [
    (re.compile(r"postgres(ql)?(\+\w+)?|pgsql", re.I), ("POSTGRES_PASSWORD", "DB_PASSWORD", "DATABASE_PASSWORD",
                                                        "PGPASSWORD")),
    (re.compile(r"rediss?|valkey", re.I), ("REDIS_PASSWORD", "VALKEY_PASSWORD")),
    (re.compile(r"mysql(\+\w+)?|mariadb(\+\w+)?", re.I), ("MYSQL_PASSWORD", "MARIADB_PASSWORD", "DB_PASSWORD",
                                                          "DATABASE_PASSWORD")),
    (re.compile(r"amqps?", re.I), ("RABBITMQ_DEFAULT_PASS", "RABBITMQ_PASSWORD")),
    (re.compile(r"mongodb(\+srv)?", re.I), ("MONGO_INITDB_ROOT_PASSWORD", "MONGO_PASSWORD", "MONGODB_PASSWORD")),
]
_ROOT_SOURCES = {"mysql": ("MYSQL_ROOT_PASSWORD", "MARIADB_ROOT_PASSWORD")}
# services whose password lives in their data volume once initialised: the env file alone does not change it
_STORED_PASSWORDS = {"POSTGRES_PASSWORD": "PostgreSQL", "MYSQL_PASSWORD": "MySQL", "MYSQL_ROOT_PASSWORD": "MySQL",
                     "MARIADB_PASSWORD": "MariaDB", "MARIADB_ROOT_PASSWORD": "MariaDB",
                     "MONGO_INITDB_ROOT_PASSWORD": "MongoDB", "RABBITMQ_DEFAULT_PASS": "RabbitMQ"}


@dataclass(frozen=True)
class UrlParts:
    scheme: str
    username: str | None  # as written (percent-encoded)
    password: str | None  # decoded
    hostport: str
    rest: str

    def with_password(self, password: str) -> str:
        user = self.username or ""
        return f"{self.scheme}://{user}:{quote(password, safe='')}@{self.hostport}{self.rest}"


def split_url(value: str) -> UrlParts | None:
    m = _URL.match(value or "")
    if not m:
        return None
    netloc = m.group("netloc")
    userinfo, at, hostport = netloc.rpartition("@")
    if not at:
        return UrlParts(m.group("scheme"), None, None, netloc, m.group("rest"))
    user, colon, password = userinfo.partition(":")
    return UrlParts(m.group("scheme"), user, unquote(password) if colon else None, hostport, m.group("rest"))


def url_source_keys(parts: UrlParts) -> tuple[str, ...]:
    for pattern, keys in _URL_SOURCES:
        if pattern.fullmatch(parts.scheme):
            if pattern.fullmatch("mysql") and (parts.username or "") == "root":
                return _ROOT_SOURCES["mysql"] + keys
            return keys
    return ()


# --------------------------------------------------------------------------- the edit


@dataclass
class Change:
    key: str
    action: str  # generated, updated, needs, kept, skipped, created
    detail: str
    value: str | None = None  # the new value (printed only with --show)
    line: int | None = None


@dataclass
class Result:
    path: Path
    created_from: Path | None
    changes: list[Change] = field(default_factory=list)
    mode: int = 0
    written: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def needs(self) -> list[Change]:
        return [c for c in self.changes if c.action == "needs"]


def _assigned(env: EnvFile) -> dict[str, EnvEntry]:
    last: dict[str, EnvEntry] = {}
    for e in env.entries:
        if e.value is not None:
            last[e.key] = e
    return last


def _derived(e: EnvEntry) -> bool:
    """Written with ${VAR} / $VAR: compose computes it from other keys."""
    from berth.model.compose.interpolation import InterpolationError, find_references

    if e.template is None or "$" not in e.template:
        return False
    try:
        return bool(find_references(e.template))
    except InterpolationError:
        return True


def _serialize(value: str, quote_char: str) -> str:
    """The value as it must be written to come back unchanged, in the quoting style the line had."""
    if quote_char == "'":
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if quote_char == '"':
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
        return '"' + escaped.replace("\n", "\\n") + '"'
    if re.search(r"[\s'\"\\#]", value):  # cannot be written unquoted: single quotes keep it literal
        return _serialize(value, "'")
    return value.replace("$", "$$")


class _Plan:
    """Decides each key's new value; never reads or keeps anything else."""

    def __init__(self, env: EnvFile, example: dict[str, str], only: str | None):
        self.env = env
        self.entries = _assigned(env)
        self.example = example
        self.only = only
        self.new: dict[str, str] = {}  # key → new value
        self.changes: dict[str, Change] = {}

    def _public(self, key: str, value: str) -> bool:
        """The value is the committed example's: everybody with the repository knows it."""
        return bool(value) and self.example.get(key) == value

    def _note(self, key: str, action: str, detail: str, value: str | None = None) -> None:
        e = self.env.entry(key)
        self.changes[key] = Change(key, action, detail, value, e.line if e else None)

    def _set(self, key: str, value: str, action: str, detail: str) -> None:
        self.new[key] = value
        self._note(key, action, detail, value)

    def run(self) -> None:
        urls = {k: e for k, e in self.entries.items() if split_url(e.value or "") and "://" in (e.value or "")}
        for key, e in self.entries.items():
            if key in urls:
                continue
            self._plain(key, e)
        for key, e in urls.items():
            self._url(key, e)
        for e in self.env.entries:  # bare KEY lines of secrets: compose takes them from the server's shell
            if e.value is None and is_secret_name(e.key) and e.key not in self.entries and e.key not in self.changes:
                self._note(e.key, "skipped", "has no '=' (compose takes it from the server's environment); "
                                             f"write {e.key}= to have it generated")

    def _wanted(self, key: str) -> bool:
        return self.only is None or key == self.only

    def _plain(self, key: str, e: EnvEntry) -> None:
        value = e.value or ""
        secret = is_secret_name(key)
        provider = provider_of(key, value)
        if e.end_line and e.end_line != e.line:
            if secret and self._wanted(key):
                self._note(key, "skipped", "a multi-line value (a key file?): not touched")
            return
        if _derived(e):
            if secret and self._wanted(key):
                self._note(key, "kept", "derived from other keys with ${...}")
            return
        if provider and (secret or looks_like_placeholder(value)):
            if self.only == key:
                raise UsageError(f"{key} is issued by {provider[0]}; berth cannot make one up",
                                 fix=f"create a new one in {provider[1]}, put it into the env file and revoke the old "
                                     "one there")
            if self.only is None:
                if looks_like_placeholder(value) or self._public(key, value):
                    self._note(key, "needs", f"a real value from {provider[0]} ({provider[1]})")
                else:
                    self._note(key, "kept", f"set (issued by {provider[0]})")
            return
        if not secret:
            if self.only == key:
                raise UsageError(f"{key} does not look like a secret, so berth does not generate it",
                                 fix=f"set {key} by hand")
            if self.only is None and value and _is_plain_placeholder(value):
                self._note(key, "needs", "a real value (not a secret: set it by hand)")
            return
        if not self._wanted(key):
            return
        if self.only == key or looks_like_placeholder(value) or self._public(key, value):
            made, how = new_value(key)
            why = "rotated" if self.only == key else ("was empty" if not value else "was a placeholder")
            self._set(key, made, "generated", f"{how} ({why})")
        elif looks_weak(value):
            self._note(key, "kept", f"set, but weak: berth secrets rotate {key}")
        else:
            self._note(key, "kept", "already set")

    def _source_of(self, parts: UrlParts) -> str | None:
        for key in url_source_keys(parts):
            if key in self.entries and not _derived(self.entries[key]):
                return key
        # a password key whose (old) value is this URL's password: CELERY_BROKER_URL=redis://:<REDIS_PASSWORD>@...
        if parts.password:
            for key, e in self.entries.items():
                if is_password_name(key) and e.value == parts.password and not looks_like_placeholder(e.value or ""):
                    return key
        return None

    def _url(self, key: str, e: EnvEntry) -> None:
        value = e.value or ""
        parts = split_url(value)
        if parts is None or (e.end_line and e.end_line != e.line) or _derived(e):
            return
        source = self._source_of(parts)
        if self.only is not None and self.only == key and source is not None:
            self.only = source  # rotating DATABASE_URL means rotating the password it shares with the database
            self._plain(source, self.entries[source])
        provider = provider_of(key, value) if source is None else None
        example_parts = split_url(self.example.get(key, ""))
        example_password = example_parts.password if example_parts else None
        password = parts.password
        stale = password is None or looks_like_placeholder(password) or (
            bool(password) and password == example_password)
        if source is not None:
            if self.only is not None and self.only != source:
                return
            target = self.new.get(source, self.entries[source].value or "")
            if not target:
                return  # the password key is empty (and stays so): nothing to put in
            if password == target:
                return
            if source in self.new or stale:
                self._set(key, parts.with_password(target), "updated", f"password from {source}")
            else:
                self._note(key, "kept", f"its password differs from {source}: berth secrets rotate {source} "
                                        "sets both")
            return
        if password is None:
            return  # no password in the URL and no password key to take one from
        if provider is not None:
            if self.only is None and stale:
                self._note(key, "needs", f"a real value from {provider[0]} ({provider[1]})")
            return
        if not self._wanted(key):
            return
        if self.only == key or stale:
            made = _fresh(PASSWORD_BYTES)
            why = "rotated" if self.only == key else "was a placeholder"
            self._set(key, parts.with_password(made), "generated",
                      f"password in the URL: {PASSWORD_BYTES} random bytes, hex ({why})")
        elif looks_weak(password):
            self._note(key, "kept", f"set, but its password is weak: berth secrets rotate {key}")


def _is_plain_placeholder(value: str) -> bool:
    v = value.strip()
    return any(p.fullmatch(v) for p in _PLACEHOLDER_PATTERNS[:6])


def apply_values(env: EnvFile, new: dict[str, str]) -> str:
    """The file's text with the given keys' values replaced; everything else byte for byte."""
    entries = _assigned(env)
    lines = env.text.split("\n")
    for key in sorted(new, key=lambda k: entries[k].line, reverse=True):
        e = entries[key]
        index = e.line - 1
        text = lines[index]
        start = (e.value_col or (len(text) + 1)) - 1
        raw = e.raw_value or ""
        if not raw:  # an empty value: insert before a CRLF's \r (the parser counts it as a space)
            start = min(start, len(text.rstrip("\r")))
        if text[start:start + len(raw)] != raw:  # should not happen: the parser said it is there
            raise BerthError(f"cannot find the value of {key} on line {e.line} to replace it",
                             where=str(env.path), fix="report this as a berth bug; the file was not changed")
        lines[index] = text[:start] + _serialize(new[key], e.quote) + text[start + len(raw):]
    return "\n".join(lines)


def _verify(before: EnvFile, text: str, new: dict[str, str], path: Path) -> None:
    """Read the edited text back: the new values are what compose will see, and nothing else changed."""
    after = parse_env_text(text, path)
    old_values, new_values = before.values(), after.values()
    expected = {**old_values, **new}
    derived = {k for k, e in _assigned(before).items() if _derived(e)}  # compose recomputes these
    broken = [k for k in expected if k not in derived and new_values.get(k) != expected[k]]
    broken += [k for k in new_values if k not in expected]
    if after.errors or broken or before.keys() != after.keys():
        names = ", ".join(sorted(set(broken))) or "the file's syntax"
        raise BerthError(f"writing the new values would change {names} in a way compose reads differently",
                         where=str(path), fix="report this as a berth bug; the file was not changed")


def _write(path: Path, text: str, mode: int) -> None:
    """Atomically, with the given mode from the start (a secret is never in a world-readable file)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _read(path: Path) -> tuple[EnvFile, bytes]:
    from berth.model.envfile import read_env_bytes, read_env_file

    env = read_env_file(path)
    if env.errors:
        lines = ", ".join(str(err.line) for err in env.errors[:5])
        raise UsageError(f"{path.name} has lines compose cannot read (line {lines}); berth edits only files it can "
                         "read exactly", where=str(path), fix="fix those lines first (berth check shows why)")
    return env, read_env_bytes(path)


def default_env_file(root: Path) -> str:
    try:
        from berth.configuration.target import toml_section

        name = toml_section(root, "defaults").get("env_file")
        if isinstance(name, str) and name.strip():
            return name
    except Exception:  # noqa: BLE001 - a broken berth.toml is berth check's business
        pass
    return ".env.docker"


def generate(root: Path, env_file: str | None = None, example: str | None = None, *, only: str | None = None,
             dry_run: bool = False) -> Result:
    """Fill placeholders (or, with `only`, rotate one key and its dependents) in the env file."""
    root = Path(root)
    path = root / (env_file or default_env_file(root))
    example_path = root / example if example else example_of(path)
    created_from = None
    if path.exists():
        if not path.is_file():
            raise UsageError(f"{path.name} is not a file", where=str(path))
        env, raw = _read(path)
        mode = stat.S_IMODE(path.stat().st_mode)
        bom = "\ufeff" if raw.startswith(b"\xef\xbb\xbf") else ""
    else:
        if only is not None:
            raise UsageError(f"{path.name} does not exist, so there is no {only} to rotate", where=str(path),
                             fix=f"berth secrets generate creates it from {example_path.name}")
        if not example_path.is_file():
            raise UsageError(f"neither {path.name} nor {example_path.name} exists", where=str(root),
                             fix=f"write {example_path.name} listing every variable (berth init does), then run "
                                 "berth secrets generate")
        example_env, _ = _read(example_path)
        env = parse_env_text(example_env.text, path)
        mode = NEW_FILE_MODE
        created_from = example_path
        bom = ""
    example_values: dict[str, str] = {}
    if example_path.is_file() and example_path != path:
        try:
            example_values = _read(example_path)[0].values()
        except BerthError:
            example_values = {}
    if only is not None and only not in env:
        import difflib

        close = difflib.get_close_matches(only, env.keys(), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise UsageError(f"{only} is not set in {path.name}{hint}", where=str(path),
                         fix=f"add {only}= to {path.name} first, or name one of its keys")
    plan = _Plan(env, example_values, only)
    plan.run()
    result = Result(path, created_from, mode=mode)
    order = {k: i for i, k in enumerate(env.keys())}
    result.changes = sorted(plan.changes.values(), key=lambda c: order.get(c.key, 0))
    if only is not None and not plan.new:
        raise UsageError(f"{only} has nothing berth can rotate", where=str(path),
                         fix="rotate a password, key, token or a URL holding a password")
    text = apply_values(env, plan.new) if plan.new else env.text
    _verify(env, text, plan.new, path)
    for key in plan.new:
        if key in _STORED_PASSWORDS and created_from is None and plan.changes[key].detail.endswith("(rotated)"):
            result.notes.append(f"{_STORED_PASSWORDS[key]} keeps the password it was initialised with in its data "
                                f"volume: change it there too (e.g. ALTER USER ... PASSWORD) before you deploy")
    if not dry_run and (plan.new or created_from is not None):
        _write(path, bom + text, mode)
        result.written = True
    if mode & 0o077:
        result.notes.append(f"{path.name} has mode {mode:04o}: other users can read it (chmod 600 {path.name})")
    result.notes.extend(_git_notes(root, path))
    return result


def _git_notes(root: Path, path: Path) -> list[str]:
    try:
        from berth.model import git as gitlocal

        if not gitlocal.is_repo(root):
            return []
        rel = Path(os.path.relpath(path, root)).as_posix()
        if rel in gitlocal.tracked_files(root):
            return [f"{rel} is tracked by git: its secrets will be committed (git rm --cached {rel}, add it to "
                    ".gitignore)"]
        if not gitlocal.is_ignored(root, rel):
            return [f"{rel} is not in .gitignore: add it so it is never committed"]
    except Exception:  # noqa: BLE001 - advice only
        return []
    return []
