"""Env file values: complete, real, strong, right for the environment, and consistent with each other.

Placeholders, weak secrets and environment-dependent settings are looked for in the real files
(`.env`, `.env.docker`) only; the `.example` files are meant to hold placeholders. No message ever
contains a value or a part of one (docs/ENV_FILES.md).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from urllib.parse import unquote, urlsplit

from berth.check.findings import Severity, finding, rule
from berth.check.rules.env_lint import LoadedEnv, env_files, value_position
from berth.model.envfile import EnvEntry
from berth.secrets.masking import is_secret_key, url_password

MIN_SECRET_LENGTH = 16
# Shannon entropy of the value's own character frequencies, in bits per character. Random strings
# from the weakest common generator (hex, `openssl rand -hex 8`: 16 characters) measure 2.48 at the
# 0.1th percentile (2.66 at the 1st; 20,000 samples); longer or base64/alphanumeric secrets measure
# far more (hex-32 >= 2.97, alnum-16 >= 3.0). Repetitive values fall well below: "secretsecretsecret"
# 2.25, "abcabcabc..." 1.58, "aaaa..." 0. See docs/ENV_FILES.md.
MIN_ENTROPY_BITS_PER_CHAR = 2.5

# names is_secret_key matches that hold no secret: paths, ids, sizes, switches, endpoints
_NOT_SECRET_SUFFIXES = (
    "_FILE", "_PATH", "_DIR", "_ID", "_URL", "_URI", "_HOST", "_PORT", "_USER", "_USERNAME", "_NAME", "_TTL",
    "_EXPIRY", "_EXPIRES", "_EXPIRATION", "_LIFETIME", "_AGE", "_TIMEOUT", "_LENGTH", "_SIZE", "_ALGORITHM", "_ALG",
    "_ENABLED", "_DISABLED", "_REQUIRED", "_HEADER", "_ISSUER", "_AUDIENCE", "_PROVIDER", "_BACKEND", "_TYPE",
    "_MODE", "_METHOD", "_ROUNDS", "_COST", "_CALLBACK", "_REDIRECT", "_ENDPOINT", "_DOMAIN", "_SCOPE", "_SCOPES",
    "_PREFIX", "_VERSION", "_REGION",
)


def secret_key(key: str) -> bool:
    """A key whose value is a secret: berth.secrets.masking.is_secret_key, minus names of non-secret settings."""
    upper = key.upper()
    return is_secret_key(key) and not upper.endswith(_NOT_SECRET_SUFFIXES)


def _real(ctx) -> list[LoadedEnv]:
    return [f for f in env_files(ctx) if not f.example and f.env is not None]


def _example_of(ctx, f: LoadedEnv) -> LoadedEnv | None:
    role = f"{f.role}-example"
    return next((x for x in env_files(ctx) if x.role == role and x.env is not None), None)


def _assigned(f: LoadedEnv) -> list[EnvEntry]:
    """The entry that decides each key's value, for keys that are assigned (bare keys left out)."""
    last: dict[str, EnvEntry] = {}
    for e in f.env.entries:
        if e.value is not None:
            last[e.key] = e
    return list(last.values())


# --------------------------------------------------------------------------- parity with the examples


@rule("env.key-parity", Severity.WARNING, "an env file and its .example do not list the same keys",
      "add the key to the file that lacks it (a placeholder in the .example)")
def key_parity(ctx):
    for f in _real(ctx):
        example = _example_of(ctx, f)
        if example is None:
            continue  # files.example-missing
        real_keys, example_keys = f.env.keys(), example.env.keys()
        for key in real_keys:
            if key not in example_keys:
                e = f.env.entry(key)
                yield finding(f"{key} is in {f.path.name} but not in {example.path.name}, so nobody else knows to "
                              "set it", f.path, e.line, e.col,
                              fix=f"add {key}= with a placeholder to {example.path.name}")
        for key in example_keys:
            if key not in real_keys:
                # berth's own settings in .env are mostly optional; the app's are usually needed
                severity = Severity.INFO if f.role == "dotenv" else Severity.WARNING
                yield finding(f"{key} is in {example.path.name} (line {example.env.line_of(key)}) but not in "
                              f"{f.path.name}", f.path, severity=severity,
                              fix=f"add {key}=... to {f.path.name}, or remove it from {example.path.name}")


# --------------------------------------------------------------------------- placeholders and weak secrets

# (pattern, what it is, only for secrets): matched against the whole value
_PLACEHOLDERS = [
    (re.compile(r"(please[-_ .]?)?((change|replace|update|set|insert|enter|put)[-_ .]?(me|this|it)|"
                r"fill[-_ .]?(me|this|it|in))([-_ .].*)?", re.I), "a 'change me' placeholder", False),
    (re.compile(r"(.*[-_ .])?your[-_ .].*|your(api)?(key|token|secret|password)\w*", re.I),
     "a 'your-...' placeholder", False),
    (re.compile(r".*(key|token|secret|password|value)[-_ .]?(goes[-_ .]?)?here", re.I), "a '...-here' placeholder",
     False),
    (re.compile(r"<[^<>]*>|\{\{[^{}]*\}\}|\{[a-z][a-z0-9 _.-]*\}", re.I), "a <placeholder>", False),
    (re.compile(r"(please[-_ .]?)?(generate|create|make|add|use)[-_ .]?(an?[-_ .]?|your[-_ .]?)?(own[-_ .]?)?"
                r"(new|random|secure|strong|real|unique)?[-_ .]?(one|key|secret|token|password|passphrase|value)"
                r"([-_ .].*)?", re.I), "a 'generate one' placeholder", False),
    (re.compile(r".*[-_ .](should|must|needs?|has)[-_ .](to[-_ .])?(be[-_ .])?(changed|updated|replaced|set|rotated)"
                r"([-_ .].*)?", re.I), "a 'change me' placeholder", False),
    (re.compile(r"x{3,}|(x+[-_.:])+x+|.*[-_]x{4,}", re.I), "an 'xxx' placeholder", False),
    (re.compile(r"(todo|tbd|fixme|placeholder|redacted|replace[-_]?me|change[-_]?me|change[-_]?it)[-_.]?\d*", re.I),
     "a placeholder", False),
    (re.compile(r"\*+|.*(\.{3}|…)"), "a truncated or masked example value ('...')", True),
]
# values that are never acceptable as a secret (checked for secret keys only: CACHE=none is fine)
_WEAK_WORDS = {
    "password", "passwd", "pass", "secret", "secretkey", "secret_key", "test", "testing", "example", "sample",
    "admin", "root", "default", "changeme", "letmein", "qwerty", "foo", "bar", "foobar", "none", "null", "nil",
    "undefined", "empty", "123", "1234", "12345", "123456", "12345678", "123456789", "abc123", "postgres", "mysql",
    "redis", "guest", "user", "demo", "django-insecure", "insecure", "dev", "development", "key", "token", "apikey",
    "dummy",
}


def placeholder_kind(value: str, secret: bool) -> str | None:
    v = value.strip()
    if not v:
        return None
    for pattern, kind, secrets_only in _PLACEHOLDERS:
        if (secret or not secrets_only) and pattern.fullmatch(v):
            return kind
    if secret and (v.lower() in _WEAK_WORDS or v.lower().startswith("django-insecure")):
        return "a well-known default that is never a real secret"
    return None


def entropy(value: str) -> float:
    """Shannon entropy of the value's character frequencies, bits per character."""
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values()) if n else 0.0


def _repeats(value: str) -> bool:
    """A short unit repeated (trailing digits aside): 'passwordpassword', 'adminadminadmin1', 'abab'."""
    core = value.rstrip("0123456789") or value
    if len(core) < max(8, len(value) // 2):
        return False  # the repetition must be most of the value
    for size in range(1, len(core) // 2 + 1):
        unit = core[:size]
        if (unit * (len(core) // size + 1))[:len(core)] == core:
            return True
    return False


def _secrets_of(f: LoadedEnv):
    """(entry, what to call it, the secret) for each secret-bearing value of a real file.

    A URL's password counts as a secret of its key (DATABASE_URL's password); keys that look secret
    count with their whole value, unless it is a URL, whose password is then what counts.
    """
    for e in _assigned(f):
        value = e.value or ""
        password = url_password(value)
        if password is not None:
            yield e, f"the password in {e.key}", unquote(password)
        elif secret_key(e.key) and not re.match(r"^[a-z][a-z0-9+.-]*://", value, re.I):
            yield e, e.key, value


def _is_setting(value: str) -> bool:
    """A number or a boolean (ACCESS_TOKEN_EXPIRE_MINUTES=30): a setting that may well equal its example."""
    return bool(re.fullmatch(r"-?\d+(\.\d+)?|true|false|yes|no|on|off", value, re.I))


@rule("env.placeholder", Severity.ERROR, "a real env file still holds a placeholder or a well-known default secret",
      "put the real value in the env file (the .example keeps the placeholder)")
def placeholder(ctx):
    for f in _real(ctx):
        example = _example_of(ctx, f)
        example_values = example.env.values() if example else {}
        reported: set[str] = set()
        for e, what, secret in _secrets_of(f):
            kind = placeholder_kind(secret, secret=True)
            example_value = example_values.get(e.key, "")
            example_secret = unquote(url_password(example_value) or "") if what != e.key else example_value
            if kind is None and secret and secret == example_secret and not _is_setting(secret):
                kind = f"the value from {example.path.name}"
            if kind:
                reported.add(e.key)
                line, col = e.line, e.value_col
                fix = f"set a real, random value for {e.key}" if what == e.key else \
                    f"put a real, random password into {e.key} (percent-encode special characters)"
                yield finding(f"{what} is {kind}, not a real secret", f.path, line, col, fix=fix)
        for e in _assigned(f):
            if e.key in reported or secret_key(e.key) or not e.value:
                continue
            kind = placeholder_kind(e.value, secret=False)
            if kind:
                yield finding(f"the value of {e.key} is {kind}", f.path, e.line, e.value_col, severity=Severity.WARNING,
                              fix=f"set the real value of {e.key}")


@rule("env.empty-secret", Severity.WARNING, "a secret is set to an empty value in a real env file (an error for "
      "production: the app would run with no secret)",
      "set a real, random value (or remove the key if the app does not use it)")
def empty_secret(ctx):
    production = ctx.target.environment == "production"
    for f in _real(ctx):
        for e in _assigned(f):
            if secret_key(e.key) and e.value == "":
                yield finding(f"{e.key} is empty" + (" in a production env file" if production else ""), f.path,
                              e.line, e.col, severity=Severity.ERROR if production else None)


@rule("env.weak-secret", Severity.WARNING,
      f"a secret is shorter than {MIN_SECRET_LENGTH} characters or has low entropy",
      "use a long random value, e.g. `openssl rand -hex 32` or "
      "`python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`")
def weak_secret(ctx):
    for f in _real(ctx):
        for e, what, secret in _secrets_of(f):
            if not secret or placeholder_kind(secret, secret=True):
                continue  # env.empty-secret / env.placeholder
            if re.fullmatch(r"(?i)true|false|yes|no|on|off|\d{1,6}(\.\d+)?[smhdw]?", secret):
                continue  # a switch or a number under a secret-looking name (PASSWORD_MIN_LENGTH=12)
            why = weakness(secret)
            if why:
                yield finding(f"{what} is {why}", f.path, e.line, e.value_col)


def weakness(secret: str) -> str | None:
    """Why a secret value is weak (too short, a repeated pattern, low entropy), or None."""
    if len(secret) < MIN_SECRET_LENGTH:
        return f"only {len(secret)} characters long (use at least {MIN_SECRET_LENGTH})"
    if _repeats(secret):
        return "a short pattern repeated"
    if entropy(secret) < MIN_ENTROPY_BITS_PER_CHAR:
        return f"low in entropy ({entropy(secret):.1f} bits per character; random text has over 3)"
    return None


# --------------------------------------------------------------------------- production settings

_TRUE = {"true", "1", "yes", "on", "y", "t"}
_DEBUG_LEVELS = ("debug", "trace", "verbose", "all", "silly")


def _production_app_env(ctx) -> LoadedEnv | None:
    if ctx.target.environment != "production":
        return None
    return next((f for f in _real(ctx) if f.role == "app"), None)


@rule("env.production-debug", Severity.ERROR, "debug mode or debug logging is on for production",
      "turn debug off for production (DEBUG=false, LOG_LEVEL=info)")
def production_debug(ctx):
    f = _production_app_env(ctx)
    if f is None:
        return
    for e in _assigned(f):
        key, value = e.key.upper(), (e.value or "").strip().lower()
        if (key == "DEBUG" or key.endswith("_DEBUG")) and value in _TRUE:
            yield finding(f"{e.key} turns debug mode on in production: error pages can show settings and secrets",
                          f.path, e.line, e.value_col, fix=f"set {e.key}=false in the production env file")
        elif (key in ("LOG_LEVEL", "LOGLEVEL") or key.endswith("_LOG_LEVEL")) and value in _DEBUG_LEVELS:
            yield finding(f"{e.key} logs at debug level in production: slow, and logs may capture secrets",
                          f.path, e.line, e.value_col, severity=Severity.WARNING,
                          fix=f"set {e.key}=info (or warning) in the production env file")


_ENV_NAME_KEYS = {"NODE_ENV", "APP_ENV", "RAILS_ENV", "RACK_ENV", "FLASK_ENV", "DJANGO_ENV", "MIX_ENV", "ENV",
                  "APP_ENVIRONMENT", "ENVIRONMENT", "ASPNETCORE_ENVIRONMENT", "DOTNET_ENVIRONMENT", "GO_ENV"}


@rule("env.production-dev-mode", Severity.WARNING, "a development build target or app mode is set for production",
      "use the production build target and app mode in the production env file")
def production_dev_mode(ctx):
    f = _production_app_env(ctx)
    if f is None:
        return
    for e in _assigned(f):
        key, value = e.key.upper(), (e.value or "").strip().lower()
        if (key == "BUILD_TARGET" or key.endswith("_BUILD_TARGET")) and value.startswith("dev"):
            yield finding(f"{e.key} builds the development stage for production", f.path, e.line, e.value_col)
        elif key in _ENV_NAME_KEYS and value in ("development", "dev", "local", "test", "testing"):
            yield finding(f"{e.key} runs the app in {value} mode in production", f.path, e.line, e.value_col)


_PUBLIC_KEY = re.compile(  # whole words of the key: DATABASE_URL is not a BASE_URL
    r"(^|_)(CORS|ORIGINS?|ALLOWED_HOSTS|TRUSTED_ORIGINS|TRUSTED_HOSTS|PUBLIC|BASE_URL|SITE_URL|APP_URL|WEB_URL|"
    r"FRONTEND|EXTERNAL_URL|ROOT_URL|CANONICAL_URL|CALLBACK|REDIRECT|WEBHOOK|DOMAIN|SERVER_NAME|VIRTUAL_HOST|"
    r"LETSENCRYPT_HOST)(_|$)", re.I)
_LOOPBACK = re.compile(r"(?<![\w.-])(localhost|127(?:\.\d{1,3}){3}|0\.0\.0\.0|\[::1\])(?![\w-])", re.I)


@rule("env.production-localhost", Severity.WARNING, "a public URL or CORS setting names localhost in production",
      "use the public host name (https://example.com) for production")
def production_localhost(ctx):
    f = _production_app_env(ctx)
    if f is None:
        return
    for e in _assigned(f):
        if not _PUBLIC_KEY.search(e.key) or secret_key(e.key):
            continue
        m = _LOOPBACK.search(e.value or "")
        if m:
            line, col = value_position(e, m.group(1))
            yield finding(f"{e.key} names {m.group(1).lower()} in production: browsers and other machines cannot "
                          "reach it", f.path, line, col)


# --------------------------------------------------------------------------- consistency


def _services(ctx) -> dict[str, dict]:
    services: dict[str, dict] = {}
    for cf in ctx.compose_files:
        for name, service in cf.services.items():
            if isinstance(service, dict):
                merged = services.setdefault(str(name), {})
                for key, value in service.items():
                    if key == "ports" and isinstance(value, list):
                        merged["ports"] = [*merged.get("ports", []), *value]
                    else:
                        merged[key] = value
    return services


def _hostnames(services: dict[str, dict]) -> set[str]:
    """Names a service answers to on the compose network: its name, hostname, container_name, aliases."""
    names = set(services)
    for service in services.values():
        for key in ("hostname", "container_name"):
            if isinstance(service.get(key), str):
                names.add(service[key])
        networks = service.get("networks")
        if isinstance(networks, dict):
            for net in networks.values():
                if isinstance(net, dict) and isinstance(net.get("aliases"), list):
                    names.update(str(a) for a in net["aliases"])
    return names


def _image_services(services: dict[str, dict], *names: str) -> list[str]:
    return [n for n, s in services.items() if isinstance(s.get("image"), str)
            and any(part in s["image"].lower().rsplit("/", 1)[-1].split(":")[0] for part in names)]


def _service_environment(service: dict, values: dict[str, str]) -> dict[str, str]:
    from berth.model.compose.interpolation import InterpolationError, MissingRequiredVariable, interpolate

    env = service.get("environment")
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env if isinstance(item, str))
    out: dict[str, str] = {}
    for key, value in (env or {}).items() if isinstance(env, dict) else ():
        if value is None:
            continue
        try:
            out[str(key)] = interpolate(str(value), values)
        except (InterpolationError, MissingRequiredVariable):
            continue
    return out


def _split_url(value: str):
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018  (raises for a bad port)
    except ValueError:
        return None
    return parts


def _host_findings(f: LoadedEnv, e: EnvEntry, parts, services: dict[str, dict], kind: str, images: list[str]):
    host = (parts.hostname or "").lower()
    if not images or not host:
        return  # no such server among the services: it runs elsewhere, under a name compose cannot judge
    names = {n.lower() for n in _hostnames(services)}
    at_sign = "@" if "@" in parts.netloc else "//"
    line, col = value_position(e, at_sign + (parts.hostname or ""))
    col += len(at_sign) if col != e.value_col else 0
    if host in ("localhost", "127.0.0.1", "::1"):
        yield finding(f"{e.key} points at {host}, which inside a container is the container itself; the {kind} "
                      f"runs as service {images[0]!r}", f.path, line, col, severity=Severity.WARNING,
                      fix=f"use the service name as the host: {images[0]}")
    elif "." not in host and ":" not in host and host not in names:
        yield finding(f"{e.key} points at host {host!r}, which is not a service of the compose file; the {kind} "
                      f"runs as service {images[0]!r}", f.path, line, col, severity=Severity.WARNING,
                      fix=f"use the service name as the host: {images[0]}")


def _app_url(ctx, key: str, scheme: str):
    """(file, its values, the entry, the split URL) for a URL setting of the app env file, or None."""
    f = next((x for x in _real(ctx) if x.role == "app"), None)
    if f is None:
        return None
    e = f.env.entry(key)
    if e is None or not e.value or not re.match(scheme, e.value):
        return None
    parts = _split_url(e.value)
    return None if parts is None else (f, f.env.values(), e, parts)


@rule("env.database-url-mismatch", Severity.ERROR,
      "DATABASE_URL does not agree with POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB or the compose services",
      "make DATABASE_URL use the same user, password, database and service host as the postgres settings")
def database_url_mismatch(ctx):
    found = _app_url(ctx, "DATABASE_URL", r"(?i)postgres(ql)?(\+\w+)?://")
    if found is None:
        return
    f, values, e, parts = found
    services = _services(ctx)
    pg_services = _image_services(services, "postgres", "postgis", "timescale")
    expected = {k: values[k] for k in ("POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB") if k in values}
    for name in pg_services:  # the db service's `environment:` overrides its env_file
        expected.update({k: v for k, v in _service_environment(services[name], values).items()
                         if k in ("POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB")})
    user = unquote(parts.username or "")
    password = unquote(parts.password) if parts.password is not None else None
    database = unquote(parts.path.lstrip("/"))
    if "POSTGRES_USER" in expected and user != expected["POSTGRES_USER"]:
        line, col = value_position(e, parts.username or "") if parts.username else (e.line, e.value_col)
        yield finding(f"DATABASE_URL connects as user {user!r}, but POSTGRES_USER is {expected['POSTGRES_USER']!r}",
                      f.path, line, col)
    if expected.get("POSTGRES_PASSWORD") and password != expected["POSTGRES_PASSWORD"]:
        what = ("has no password, but POSTGRES_PASSWORD is set" if password is None else
                "has a different password than POSTGRES_PASSWORD")
        yield finding(f"DATABASE_URL {what}", f.path, e.line, e.value_col)
    if "POSTGRES_DB" in expected and database != expected["POSTGRES_DB"]:
        yield finding(f"DATABASE_URL names database {database!r}, but POSTGRES_DB is {expected['POSTGRES_DB']!r}",
                      f.path, e.line, e.value_col)
    yield from _host_findings(f, e, parts, services, "database", pg_services)


@rule("env.redis-url-mismatch", Severity.ERROR, "REDIS_URL's password does not agree with REDIS_PASSWORD",
      "put REDIS_PASSWORD into REDIS_URL (redis://:PASSWORD@redis:6379/0), percent-encoded")
def redis_url_mismatch(ctx):
    found = _app_url(ctx, "REDIS_URL", r"(?i)rediss?://")
    if found is None:
        return
    f, values, e, parts = found
    if "REDIS_PASSWORD" in values:
        expected = values["REDIS_PASSWORD"]
        password = unquote(parts.password) if parts.password is not None else ""
        if password != expected:
            if not expected:
                what = "has a password, but REDIS_PASSWORD is empty"
            elif not password:
                what = "has no password, but REDIS_PASSWORD is set"
            else:
                what = "has a different password than REDIS_PASSWORD"
            yield finding(f"REDIS_URL {what}", f.path, e.line, e.value_col)
    services = _services(ctx)
    yield from _host_findings(f, e, parts, services, "redis server",
                              _image_services(services, "redis", "valkey", "keydb"))


def _published_ports(ctx) -> list[tuple[str, int, int]] | None:
    """(host ip, first, last) host ports the compose files publish; None when that cannot be known."""
    from berth.model.compose.interpolation import InterpolationError, MissingRequiredVariable, interpolate

    values = ctx.app_env.values() if ctx.app_env else {}
    published: list[tuple[str, int, int]] = []
    for service in _services(ctx).values():
        if str(service.get("network_mode", "")).startswith("host"):
            return None
        ports = service.get("ports")
        for port in ports if isinstance(ports, list) else []:
            if isinstance(port, dict):
                host_ip, pub = str(port.get("host_ip") or ""), port.get("published")
                if str(port.get("protocol", "tcp")).lower() == "udp" or pub in (None, ""):
                    continue
                spec = str(pub)
            elif isinstance(port, (str, int)):
                spec = str(port)
            else:
                continue
            try:
                text = interpolate(spec, values)
            except (InterpolationError, MissingRequiredVariable):
                return None
            if not isinstance(port, dict):
                text, _, proto = text.partition("/")
                if proto.lower() == "udp":
                    continue
                m = re.fullmatch(r"(?:(\[[^\]]*\]|[^:\[\]]*):)?([^:]*):([^:]+)", text.strip())
                if not m:
                    continue  # a container port only: published on a random host port
                host_ip, text = (m.group(1) or "").strip("[]"), m.group(2)
                if not text:
                    continue
            m = re.fullmatch(r"\s*(\d+)(?:-(\d+))?\s*", text)
            if not m:
                return None
            published.append((host_ip, int(m.group(1)), int(m.group(2) or m.group(1))))
    return published


@rule("env.health-url-port", Severity.WARNING, "a health URL's port is not one the compose file publishes",
      "publish that port in the compose file (ports: - \"PORT:CONTAINER_PORT\") or fix the URL's port")
def health_url_port(ctx):
    urls = ctx.target.health_urls
    if not urls or not ctx.compose_files:
        return
    published = _published_ports(ctx)
    if published is None:
        return
    setting = ctx.target.settings.get("health_urls")
    file, line = (setting.file, setting.line) if setting else (None, None)
    servers = {a.lower() for a in ctx.target.get("hosts", [])}  # raw: unusable hosts are settings.host findings
    for url in urls:
        parts = _split_url(url)
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            continue  # settings.health-url
        host = parts.hostname.lower()
        loopback = host in ("localhost", "127.0.0.1", "::1")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        shown = f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}{parts.path}"  # no user:pw
        if parts.port is None and not loopback and host not in servers:
            continue  # a default port on another host name: likely a proxy or load balancer in front
        matching = [(ip, lo, hi) for ip, lo, hi in published if lo <= port <= hi]
        if not matching:
            ports = ", ".join(sorted({str(lo) if lo == hi else f"{lo}-{hi}" for _, lo, hi in published})) or "none"
            yield finding(f"health URL {shown} uses port {port}, which no service publishes (published: {ports})",
                          file, line)
        elif not loopback and all(ip in ("127.0.0.1", "::1", "localhost") for ip, _, _ in matching):
            yield finding(f"health URL {shown} uses port {port}, which is published only on the server's loopback "
                          "interface", file, line, fix=f"use http://localhost:{port}{parts.path or '/'} (fetched on "
                          "the server), or publish the port on all interfaces")


# --------------------------------------------------------------------------- secrets written into the compose file


def _compose_environment(ctx):
    """(service, compose file, path key, KEY, literal value) for each `environment:` entry with a literal value."""
    from berth.model.compose.services import services

    for svc in services(ctx):
        for cf, key, item in svc.items("environment"):
            if isinstance(key, int):  # list syntax: KEY=value (KEY alone takes the value from the shell)
                if not isinstance(item, str) or "=" not in item:
                    continue
                name, value = item.split("=", 1)
            else:
                name, value = key, item
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                value = str(value)
            if isinstance(value, str) and value and "$" not in value:
                yield svc, cf, key, name.strip(), value


@rule("env.secret-in-compose", Severity.WARNING,
      "a secret is written into the compose file, which is committed to git",
      "move the value to the shipped env file and refer to it: KEY: ${KEY}")
def secret_in_compose(ctx):
    """A literal secret under `environment:`: weak or a placeholder is an error; a strong one is committed, a warning."""
    from berth.model.compose.services import at

    for svc, cf, key, name, value in _compose_environment(ctx):
        password = url_password(value)
        if password is not None:
            what, secret = f"the password in {name}", unquote(password)
        elif secret_key(name) and not value.startswith("/run/secrets/"):
            what, secret = name, value
        else:
            continue
        if not secret:
            continue
        where = at(cf, "services", svc.name, "environment", key)
        move = f"set {name} in {ctx.target.env_file} and write `{name}: ${{{name}}}` in the compose file"
        kind = placeholder_kind(secret, secret=True)
        weak = kind or (f"{len(secret)} characters long" if len(secret) < MIN_SECRET_LENGTH else None)
        if weak:
            yield finding(f"service {svc.name}: {what} is written into the compose file and is {weak}: anyone "
                          "with the repository has it", **where, severity=Severity.ERROR,
                          fix=f"{move}, with a long random value (berth secrets generate makes one)")
        else:
            yield finding(f"service {svc.name}: {what} is written into the compose file, which is committed to git",
                          **where, fix=move)
