"""Which values are secrets, and a masker that keeps them out of everything berth prints.

A value is a secret when its key looks secret (`SECRET_KEY_PARTS`), when it matches a known token format
(`TOKEN_FORMATS`, shared with the `secrets.*` check rules), or when it is the password of a URL. The Masker
hides every form a secret takes in output: the value itself, each line of a multi-line value, its JSON-escaped,
URL-encoded and base64 forms, a URL's decoded password. Values too short to mask everywhere (`abc`, `true`)
are masked only where a secret key names them (`DB_PASSWORD=abc`). Strings the masker is told are public
(service, image and volume names, paths, the project) are never cut into: a password `postgres` is masked,
the image `postgres:16` next to it is not.

This module is imported by nearly everything (check rules, the CLI's error path): it imports only the stdlib.
"""

from __future__ import annotations

import base64
import json
import re
from bisect import bisect_right
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple
from urllib.parse import quote, unquote, urlsplit

MASK = "****"
MIN_MASKED_LENGTH = 4  # shorter values would mask ordinary words: masked only as KEY=value
MIN_LINE_LENGTH = 8  # a line of a multi-line secret is masked on its own from this length
MIN_ENCODED_LENGTH = 8  # bytes: base64 forms of shorter values are too short to be told from ordinary text
# values of secret keys that are words of any output ("true"): masked only as KEY=value
ORDINARY_VALUES = frozenset({"true", "false", "null", "none", "yes", "no", "on", "off"})

# --------------------------------------------------------------------------- secret key names

# (regex fragment, a key it is for); matched anywhere in the key, case-insensitively
SECRET_KEY_PARTS: tuple[tuple[str, str], ...] = (
    (r"SECRET", "CLIENT_SECRET, SECRET_KEY_BASE"),
    (r"PASSWORD|PASSWD|PASSPHRASE", "DB_PASSWORD, MYSQL_ROOT_PASSWD, GPG_PASSPHRASE"),
    (r"_PASS$|^PASS$", "SMTP_PASS"),
    (r"_PWD$|_PWD_|^PWD_", "DB_PWD (not PWD or OLDPWD: the shell's working directory)"),
    (r"_PW$", "DB_PW"),
    (r"TOKEN", "GITHUB_TOKEN"),
    (r"_KEY$|^KEY$|_KEY_|APIKEY", "STRIPE_API_KEY, AWS_KEY_ID, APIKEY"),
    (r"_SK$", "STRIPE_SK (a secret key)"),
    (r"_PAT$", "GITHUB_PAT (a personal access token)"),
    (r"CREDENTIAL", "GCP_CREDENTIALS"),
    (r"PRIVATE", "PRIVATE_KEY_PEM"),
    (r"SALT", "HASH_SALT"),
    (r"_DSN$|^DSN$", "SENTRY_DSN"),
    (r"AUTH", "BASIC_AUTH, OAUTH_CLIENT"),
    (r"WEBHOOK", "SLACK_WEBHOOK_URL (the URL is the credential)"),
    (r"SIGNING", "JWT_SIGNING, SIGNING_SECRET"),
    (r"HMAC", "HMAC_SHA256"),
    (r"BEARER", "BEARER"),
    (r"CONNECTION_STRING|CONN_STR", "AZURE_STORAGE_CONNECTION_STRING (holds AccountKey=...)"),
)
SECRET_KEY_PATTERN = re.compile("|".join(f"(?:{part})" for part, _ in SECRET_KEY_PARTS), re.IGNORECASE)


def is_secret_key(key: str) -> bool:
    return bool(SECRET_KEY_PATTERN.search(key))


# --------------------------------------------------------------------------- known token formats


class TokenFormat(NamedTuple):
    name: str  # "github-token": the secrets.* rule of the same name reports it when committed
    keywords: tuple[str, ...]  # lowercase; a value holds one of them before the regex is tried
    source: str  # the regex (gitleaks' default rules)


# the check's secret scan (berth/check/rules/secrets_scan.py) uses the first five with its entropy rules;
# all of them decide which env values are secrets whatever their keys are called
TOKEN_FORMATS: tuple[TokenFormat, ...] = (
    TokenFormat("aws-access-key", ("akia", "asia", "abia", "acca", "a3t"),
                r"\b(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b"),
    TokenFormat("github-token", ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
                r"\b(?:(?:ghp|gho|ghu|ghs|ghr)_[0-9A-Za-z]{36}|github_pat_[0-9A-Za-z_]{82})\b"),
    TokenFormat("slack-token", ("xoxb-", "xoxp-", "xoxa-", "xoxr-", "xoxs-"),
                r"\b(?:xox[bp]-\d{8,14}-[0-9A-Za-z-]{10,}|xox[ar]-(?:\d-)?[0-9A-Za-z]{8,48}"
                r"|xoxs-\d+-\d+-\d+-[0-9A-Fa-f]+)"),
    TokenFormat("stripe-key", ("sk_live_", "rk_live_"), r"\b[sr]k_live_[0-9A-Za-z]{10,99}\b"),
    TokenFormat("openai-key", ("sk-",),
                r"\bsk-(?:(?:proj|svcacct|admin)-[A-Za-z0-9_-]{40,}|[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}"
                r"|[A-Za-z0-9]{32,})(?![A-Za-z0-9_-])"),
    TokenFormat("private-key", ("-----begin",), r"-----BEGIN[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----"),
    TokenFormat("jwt", ("eyj",), r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"),
    TokenFormat("slack-webhook", ("hooks.slack.com",),
                r"https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9+/_-]{20,}"),
    TokenFormat("discord-webhook", ("discord",),
                r"https://(?:ptb\.|canary\.)?discord(?:app)?\.com/api/webhooks/\d+/[A-Za-z0-9_-]{20,}"),
    TokenFormat("stripe-test-key", ("sk_test_", "rk_test_"), r"\b[sr]k_test_[0-9A-Za-z]{10,99}\b"),
    TokenFormat("gitlab-token", ("glpat-",), r"\bglpat-[0-9A-Za-z_-]{20,}"),
)
_FORMATS_BY_NAME = {f.name: f for f in TOKEN_FORMATS}
_compiled_formats: dict[str, re.Pattern[str]] = {}


def token_format(name: str) -> TokenFormat:
    return _FORMATS_BY_NAME[name]


def _format_pattern(fmt: TokenFormat) -> re.Pattern[str]:
    pattern = _compiled_formats.get(fmt.name)
    if pattern is None:
        pattern = _compiled_formats[fmt.name] = re.compile(fmt.source)
    return pattern


def secret_tokens(value: str) -> list[str]:
    """The substrings of `value` that match a known token format (a Stripe key inside a URL, a PEM header)."""
    low = value.lower()
    found = []
    for fmt in TOKEN_FORMATS:
        if any(k in low for k in fmt.keywords):
            found += [m.group(0) for m in _format_pattern(fmt).finditer(value)]
    return found


def is_secret_value(value: str) -> bool:
    """Does the value hold a token of a known format (sk_live_…, ghp_…, a private key, a Slack webhook URL…)?"""
    return bool(value) and bool(secret_tokens(value))


def url_password(value: str) -> str | None:
    if "://" not in value:
        return None
    try:
        return urlsplit(value).password
    except ValueError:
        return None


def is_secret_setting(key: str, value: str | None) -> bool:
    """A key=value whose value is a secret: by the key's name, the value's format, or a password in a URL."""
    if is_secret_key(key):
        return True
    return bool(value) and (is_secret_value(value) or bool(url_password(value)))


def redact_url(text: str) -> str:
    """A URL as berth prints it: without the credentials a server never gets either (public_url), and with
    tokens of a known format anywhere in it shown as ****."""
    for token in secret_tokens(text):
        text = text.replace(token, MASK)
    return public_url(text)


def redact_setting(value: Any) -> Any:
    """A setting's value as `berth plan` / `berth config` show it: a token is ****, a URL keeps all but its
    credentials, anything else (a host, a path, a number) is shown as it is."""
    if not isinstance(value, str) or not value:
        return value
    if "://" in value:
        return redact_url(value)
    return MASK if is_secret_value(value) else value


def remote_url_secrets(url: str | None) -> list[str]:
    """What to mask of a git remote URL: the credentials in its userinfo, in every form."""
    forms: set[str] = set()
    for credential in url_credentials(url or ""):
        forms |= secret_forms(credential)
    return _usable(forms)


# --------------------------------------------------------------------------- the forms of a secret


def _base64_forms(data: bytes) -> set[str]:
    """base64 (std and urlsafe) of `data` alone, and the characters that encode it wherever it starts in a
    longer base64 run (the three byte alignments: `Basic base64(user:password)` has the password at any)."""
    forms = set()
    full = base64.b64encode(data).decode("ascii")
    forms |= {full, full.rstrip("=")}
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + data).decode("ascii")
        first = -(-8 * offset // 6)  # the first character made only of data's bits
        last = 8 * (offset + len(data)) // 6  # the characters after it depend on what follows
        core = encoded[first:last]
        if len(core) >= MIN_LINE_LENGTH:
            forms.add(core)
    return forms | {f.replace("+", "-").replace("/", "_") for f in forms}


def secret_forms(value: str) -> set[str]:
    """Every form of one secret value that output may carry."""
    if not value:
        return set()
    forms = {value}
    normal = value.replace("\r\n", "\n").replace("\r", "\n")
    if "\n" in normal:
        forms |= {normal, normal.replace("\n", "\r\n")}
        # lines appear alone (log prefixes, one line per record); short ones (`-----`) would mask ordinary text
        forms |= {ln.strip() for ln in normal.split("\n") if len(ln.strip()) >= MIN_LINE_LENGTH}
    for form in list(forms):
        forms.add(json.dumps(form)[1:-1])
        forms.add(json.dumps(form, ensure_ascii=False)[1:-1])
    forms.add(quote(value, safe=""))
    for text in {value, normal}:
        data = text.encode("utf-8")
        if len(data) >= MIN_ENCODED_LENGTH:
            forms |= _base64_forms(data)
    return forms


def _usable(forms: Iterable[str]) -> list[str]:
    return sorted({f for f in forms if len(f) >= MIN_MASKED_LENGTH and f.lower() not in ORDINARY_VALUES},
                  key=lambda f: (-len(f), f))


def secret_values(env: Mapping[str, str]) -> list[str]:
    """The texts to mask, longest first: every form of the values of secret keys and of values in a known token
    format, and of the passwords inside URLs (DATABASE_URL...) together with those URLs."""
    found: set[str] = set()
    for key, value in env.items():
        if not value:
            continue
        tokens = secret_tokens(value)
        if is_secret_key(key) or tokens:
            found |= secret_forms(value)
        for token in tokens:
            found |= secret_forms(token)
        password = url_password(value)
        if password:
            found |= secret_forms(value) | secret_forms(password) | secret_forms(unquote(password))
    return _usable(found)


def keyed_secrets(env: Mapping[str, str]) -> dict[str, str]:
    """The values of secret keys, for masking where output names them: `DB_PASSWORD=abc`, `"API_PIN": "42"`.

    This is how values too short (or too ordinary) to mask everywhere are masked at all; it also masks a value
    that equals a public name (a password `postgres` of a service `postgres`) where its key says what it is."""
    return {key: value for key, value in env.items()
            if value and "\n" not in value and "\r" not in value and is_secret_key(key)}


# --------------------------------------------------------------------------- the masker


class Masker:
    """Replaces secrets in text with ****.

    `secrets`: texts to mask wherever they occur (≥ 4 characters; secret_values gives them).
    `public`: texts that are not secret and stay whole (service and image names, paths): a secret that
    lies entirely inside an occurrence of one of them is left alone.
    `keyed`: KEY → value, masked only right after `KEY=` / `KEY: ` (keyed_secrets gives them).
    Masking never raises: if it ever failed, the text would be replaced whole.
    """

    def __init__(self, secrets: Iterable[str] = (), public: Iterable[str] = (),
                 keyed: Mapping[str, str] | None = None):
        self._secrets = [s for s in sorted({s for s in secrets if s and len(s) >= MIN_MASKED_LENGTH
                                            and s != MASK}, key=lambda s: (-len(s), s))]
        self._pattern = _alternation(self._secrets)
        self._public_source = tuple(p for p in public if isinstance(p, str) and p)
        # only public strings that contain a secret can protect anything
        self._public = sorted({p for p in self._public_source if p and any(s in p for s in self._secrets)},
                              key=lambda p: (-len(p), p))
        self._public_pattern = _alternation(self._public)
        self._keyed = {k: v for k, v in (keyed or {}).items() if k and v}
        self._keyed_pattern = None
        if self._keyed:
            keys = sorted(self._keyed, key=lambda k: (-len(k), k))
            values = sorted(set(self._keyed.values()), key=lambda v: (-len(v), v))
            self._keyed_pattern = re.compile(
                r"(?<![A-Za-z0-9_])(?P<key>" + "|".join(map(re.escape, keys)) + r")"
                r"(?P<sep>[\"']?[ \t]*[=:][ \t]*[\"']?)"
                r"(?P<value>" + "|".join(map(re.escape, values)) + r")(?![A-Za-z0-9_])")
        self.longest = max((len(s) for s in self._secrets), default=0)

    def extended(self, secrets: Iterable[str]) -> Masker:
        """This masker with more secrets (the same public strings and keyed values)."""
        return Masker([*self._secrets, *secrets], public=self._public_source, keyed=self._keyed)

    def __call__(self, text: str) -> str:
        if not text or not isinstance(text, str) or (self._pattern is None and self._keyed_pattern is None):
            return text
        try:
            return self._mask(text)
        except Exception:  # noqa: BLE001 - a bug here must not print the secret it failed to mask
            return f"{MASK} (output hidden: it could not be masked)"

    def _mask(self, text: str) -> str:
        if self._keyed_pattern is not None:
            text = self._keyed_pattern.sub(self._keyed_replacement, text)
        if self._pattern is None:
            return text
        spans = [m.span() for m in self._public_pattern.finditer(text)] if self._public_pattern else []
        if not spans:
            return self._pattern.sub(MASK, text)
        starts = [a for a, _ in spans]
        out, last, pos = [], 0, 0
        while True:
            m = self._pattern.search(text, pos)
            if m is None:
                break
            i = bisect_right(starts, m.start()) - 1
            if i >= 0 and spans[i][1] >= m.end():
                pos = m.start() + 1  # inside a public name: a secret starting later may still follow
                continue
            out += [text[last:m.start()], MASK]
            last = pos = m.end()
        out.append(text[last:])
        return "".join(out)

    def _keyed_replacement(self, m: re.Match[str]) -> str:
        if self._keyed.get(m.group("key")) != m.group("value"):
            return m.group(0)
        return m.group("key") + m.group("sep") + MASK


def _alternation(texts: list[str]) -> re.Pattern[str] | None:
    """One regex matching any of `texts` (the longest at a position), as a trie: `ab(?:c|d)` is several times
    faster than `abc|abd` over long output, because each position is tried against one branch, not all."""
    if not texts:
        return None
    trie: dict = {}
    for text in texts:
        node = trie
        for ch in text:
            node = node.setdefault(ch, {})
        node[""] = {}
    try:
        return re.compile(_trie_source(trie))
    except (RecursionError, re.error):  # absurdly nested prefixes: the plain alternation is as correct
        return re.compile("|".join(re.escape(t) for t in sorted(texts, key=len, reverse=True)))


def _trie_source(node: dict) -> str:
    chain = []
    while "" not in node and len(node) == 1:  # a run without branches: no recursion per character
        (ch, node), = node.items()
        chain.append(re.escape(ch))
    branches = [re.escape(ch) + _trie_source(child) for ch, child in sorted(node.items()) if ch]
    if not branches:
        return "".join(chain)
    body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
    if "" in node:
        body = f"(?:{body})?"  # greedy: the longer secret wins, as in a longest-first alternation
    return "".join(chain) + body


def masked_tail(text: str, limit: int, mask: Callable[[str], str] | None) -> str:
    """The end of command output for a message: masked BEFORE it is cut (a cut through a secret would show the
    rest of it), cut at a line boundary to about `limit` characters, `… ` in front when something was cut."""
    text = (text or "").strip()
    mask = mask or _identity
    if len(text) <= limit:
        return mask(text)
    # mask from a line start far enough back that no secret can straddle the cut; lines before it go unread
    longest = getattr(mask, "longest", None)
    start = 0 if longest is None else text.rfind("\n", 0, max(0, len(text) - limit - longest)) + 1
    masked = mask(text[start:]).strip()
    if start == 0 and len(masked) <= limit:
        return masked
    return "… " + cut_lines(masked, limit)


def _identity(text: str) -> str:
    return text


def cut_lines(text: str, limit: int) -> str:
    """The last whole lines of `text` that fit in `limit` characters (the end of the last line if none fits)."""
    lines = text.splitlines()
    kept: list[str] = []
    size = 0
    for line in reversed(lines):
        if kept and size + len(line) + 1 > limit:
            break
        kept.append(line)
        size += len(line) + 1
    if len(kept) == 1 and len(kept[0]) > limit:
        return kept[0][-limit:]
    return "\n".join(reversed(kept))


def mask_json(obj: Any, mask: Callable[[str], str]) -> Any:
    """A copy of a JSON-able document with every string masked (values, and keys), before it is serialised:
    masking serialised JSON misses secrets that JSON escapes (quotes, backslashes, non-ASCII)."""
    if isinstance(obj, str):
        return mask(obj)
    if isinstance(obj, dict):
        return {(mask(k) if isinstance(k, str) else k): mask_json(v, mask) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [mask_json(v, mask) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float)):
        return obj
    return mask(str(obj))


def dumps_masked(obj: Any, mask: Callable[[str], str], *, indent: int | None = 2, **kw: Any) -> str:
    """json.dumps of the document masked field by field: what every --json output prints."""
    return json.dumps(mask_json(obj, mask), indent=indent, **kw)


# --------------------------------------------------------------------------- credentials in a remote URL

_URL = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<authority>[^/?#]*)(?P<rest>.*)$", re.DOTALL)
_HTTP_SCHEMES = {"http", "https", "ftp", "ftps"}
# a user part that is a plain name (deploy, git, alice.smith), not a token used as the user (ghp_..., glpat-...)
_PLAIN_USER = re.compile(r"^[A-Za-z][A-Za-z0-9._-]{0,19}$")
_TOKEN_PREFIXES = ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "glpat-")


def _split_userinfo(url: str) -> tuple[str, list[str]]:
    """(the URL as a server may see it, the secret parts taken out of it).

    http(s): the whole userinfo goes (a token is often the user part: https://ghp_x@github.com/...);
    ssh:// and other schemes: only the password goes (the user name says which account to log in as);
    scp-like `git@host:org/app.git` and paths have no password and stay as they are.
    """
    m = _URL.match(url)
    if not m or "@" not in m["authority"]:
        return url, []
    userinfo, _, hostport = m["authority"].rpartition("@")
    user, has_password, password = userinfo.partition(":")
    scheme = m["scheme"].lower()
    secrets = [password] if has_password and password else []
    if scheme in _HTTP_SCHEMES:
        if not secrets and user and (not _PLAIN_USER.match(user) or user.startswith(_TOKEN_PREFIXES)):
            secrets = [user]
        public = f"{m['scheme']}://{hostport}{m['rest']}"
    else:
        public = f"{m['scheme']}://{user + '@' if user else ''}{hostport}{m['rest']}" if has_password else url
    # the percent-decoded form too: that is what git sends, and what an error message may show
    return public, [form for s in secrets for form in dict.fromkeys([s, unquote(s)])]


def public_url(url: str) -> str:
    """`url` without its password or token: what servers get, and what berth prints."""
    return _split_userinfo(url)[0]


def url_credentials(url: str) -> list[str]:
    """The secret parts of a remote URL (a password, or a token used as the user name), for masking."""
    return _split_userinfo(url)[1]
