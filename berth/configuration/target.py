"""Deployment settings: which hosts, which user and key, where the app lives, what to verify.

Sources, highest precedence first:
  1. CLI flags (`-e/--environment`, `--host`);
  2. `berth.toml`: `[environments.NAME]`, then `[defaults]`;
  3. `.env` (SERVER_IP, SERVER_USER, PEM_KEY_PATH, ENVIRONMENT, ...), which describes exactly one
     environment — the one its ENVIRONMENT names — and is never used as a fallback for another,
     so a production deploy can never land on a staging server by accident.
Every value remembers where it came from (`Setting.origin`) so checks can point at file:line.
"""

from __future__ import annotations

import bisect
import difflib
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from berth.errors import UsageError
from berth.model.envfile import EnvFile, read_env_file

if TYPE_CHECKING:
    from berth.model.compose.project import ProjectName

KNOWN_ENVIRONMENTS = ("development", "staging", "production")
# the names docker compose looks for when no file is given, in its order of precedence (compose-go's
# DefaultFileNames); berth deploys the first that exists, as `docker compose` run in the repository would
COMPOSE_FILE_NAMES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")
# the override file `docker compose` merges when no file is named, first found (compose-go's
# DefaultOverrideFileNames); berth names its files, so it deploys without one (compose.override-not-deployed)
COMPOSE_OVERRIDE_NAMES = ("compose.override.yml", "compose.override.yaml", "docker-compose.override.yml",
                          "docker-compose.override.yaml")
DEFAULT_COMPOSE_FILES = ("docker-compose.yml",)  # when none of them exists (berth check says so)
DEFAULT_ENV_FILE = ".env.docker"
DEFAULT_VERIFY_TIMEOUT = 90
# berth's proxy (docs/ROLLOUTS.md): the official image, pinned by digest so that every server runs the same
# bytes whatever Docker Hub later moves the tag to; proxy_image names another
DEFAULT_PROXY_IMAGE = "caddy:2.8.4-alpine@sha256:a48e22edad925dc216fd27aa4f04ec49ebdad9b64c9e5a3f1826d0595ef2993c"
VERIFY_TIMEOUT_RANGE = (1, 3600)  # as deploy --timeout

# berth.toml key → (.env key, kind)
_SETTINGS: dict[str, tuple[str | None, str]] = {
    "hosts": ("SERVER_IP", "list"),
    "user": ("SERVER_USER", "str"),
    "key": ("PEM_KEY_PATH", "str"),
    "port": ("SERVER_PORT", "int"),
    "app_dir": ("APP_DIR", "str"),
    "remote": ("GIT_REMOTE", "str"),
    "branch": ("GIT_BRANCH", "str"),
    "health_urls": ("HEALTH_URL", "list"),
    "compose_files": ("COMPOSE_FILES", "list"),
    "env_file": (None, "str"),
    "confirm": (None, "bool"),
    "project": (None, "str"),
    "ssh_config": ("SSH_CONFIG", "str"),
    "known_hosts": ("SSH_KNOWN_HOSTS", "str"),
    "forward_agent": ("SSH_FORWARD_AGENT", "bool"),
    "verify_timeout": ("VERIFY_TIMEOUT", "int"),
    "keep_releases": (None, "int"),
    "pre_deploy": (None, "commands"),
    "post_deploy": (None, "commands"),
    "proxy": ("BERTH_PROXY", "bool"),
    "proxy_image": ("BERTH_PROXY_IMAGE", "str"),
    # HTTPS by berth's proxy (docs/ROLLOUTS.md): service → its public host names, and the ACME account
    "domains": (None, "domains"),
    "acme_email": (None, "str"),
    "acme_ca": (None, "str"),
    "acme_ca_root": (None, "str"),
    "https_redirect": (None, "bool"),
    # several hosts (docs/FLEETS.md): how many at once, a canary first, a pause between batches, what a failure does
    "parallel": (None, "parallel"),
    "canary": (None, "canary"),
    "batch_pause": (None, "int"),
    "on_failure": (None, "str"),
    "build": (None, "str"),  # "each" (every host builds) or "once" (one host builds, the others load its images)
    # what runs the app: docker compose on each host, or a Docker Swarm stack through its manager
    "engine": (None, "str"),
    # host groups, like Kamal's roles: [environments.NAME.roles.web] hosts = [...], services = [...]
    "roles": (None, "roles"),
}
DEFAULT_KEEP_RELEASES = 5
# how a "bool" setting may be written in .env (berth.toml has real booleans)
BOOL_WORDS = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}
MAX_TOML_BYTES = 1024 * 1024  # a berth.toml is a few KiB
MAX_TOML_DEPTH = 32  # [environments.NAME] key = ["..."] is 4 levels
# [check] and [kubernetes] belong to their own features, which validate them (see toml_section)
_TOP_LEVEL_KEYS = {"defaults", "environments", "check", "kubernetes"}


@dataclass(frozen=True)
class Setting:
    value: Any
    origin: str  # "berth.toml:7 [environments.prod] user", ".env:3", "--host", "default"
    file: Path | None = None
    line: int | None = None


@dataclass(frozen=True)
class Host:
    address: str  # an IP, a DNS name or an alias from ~/.ssh/config
    user: str | None = None
    port: int | None = None
    key_path: Path | None = None
    # from the roles it is in: the services it runs (empty: all of them) and the URLs verify fetches there
    roles: tuple[str, ...] = ()
    services: tuple[str, ...] = ()
    health_urls: tuple[str, ...] | None = None  # None: the environment's

    @property
    def label(self) -> str:
        who = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port and self.port != 22 else ""
        return f"{who}{self.address}{port}"


@dataclass(frozen=True)
class Tls:
    """berth's proxy's ACME account: who the CA may write to, which CA (its directory URL; empty: Caddy's
    default, Let's Encrypt), the root certificate to trust that CA's own HTTPS by (a local PEM file, for a
    private or test CA), and whether plain HTTP on port 80 redirects to HTTPS."""

    email: str = ""
    ca: str = ""
    ca_root: Path | None = None
    redirect: bool = True


@dataclass(frozen=True)
class Role:
    """A group of hosts that run some of the services (all of them when `services` is empty); `health_urls`
    replaces the environment's on those hosts (None: the environment's)."""

    name: str
    hosts: tuple[str, ...]
    services: tuple[str, ...] = ()
    health_urls: tuple[str, ...] | None = None


ROLE_KEYS = ("hosts", "services", "health_urls")
ENGINES = ("compose", "swarm")
ON_FAILURE = ("rollback", "stop")  # roll the hosts this deploy updated back to what they ran, or leave them
BUILDS = ("each", "once")  # a fleet's images: built by every host, or by one and loaded by the others
BATCH_PAUSE_RANGE = (0, 3600)


@dataclass(frozen=True)
class Fleet:
    """How a deploy goes over several hosts: `parallel` hosts at once (or `percent` of them; neither: all),
    `canary` (a host or None) alone first, `pause` seconds between batches, and `on_failure`."""

    parallel: int | None = None
    percent: int | None = None
    canary: str | None = None  # "first" (the first host), a host as hosts lists it, or a role (its hosts)
    pause: int = 0
    on_failure: str = "rollback"
    build: str = "each"


@dataclass(frozen=True)
class Target:
    """Everything one deploy of one environment needs, resolved."""

    root: Path
    environment: str
    settings: dict[str, Setting]
    dotenv: EnvFile | None
    has_toml: bool
    defined_environments: tuple[str, ...] = field(default=KNOWN_ENVIRONMENTS)

    def get(self, name: str, default: Any = None) -> Any:
        s = self.settings.get(name)
        return default if s is None or s.value in (None, "", []) else s.value

    @property
    def hosts(self) -> tuple[Host, ...]:
        """The servers, ready for ssh. UsageError when a host or the user cannot be handed to ssh (a NUL or
        control character, whitespace, a leading '-'); `berth check` reports those as settings.host and
        settings.user findings from the raw settings instead."""
        user = self.get("user")
        problem = user_problem(user) if user is not None else None
        if problem:
            raise UsageError(f"SERVER_USER {user!r} {problem}", where=self.located("user"), fix=USER_FIX)
        for address in self.addresses:
            problem = host_problem(address)
            if problem:
                raise UsageError(f"host {address!r} {problem}", where=self.located("hosts"), fix=HOST_FIX)
        key = self.get("key")
        key_path = _local_path(self.root, key) if key else None
        port = self.get("port")
        roles = self.roles
        hosts = []
        for a in self.addresses:
            mine = [r for r in roles.values() if a in r.hosts]
            services = () if any(not r.services for r in mine) else tuple(
                dict.fromkeys(s for r in mine for s in r.services))
            urls = [u for r in mine if r.health_urls is not None for u in r.health_urls]
            own_urls = tuple(dict.fromkeys(urls)) if any(r.health_urls is not None for r in mine) else None
            # an unusable port is reported by the settings.port rule; here it just is not applied
            hosts.append(Host(address=a, user=user, port=int(port) if str(port or "").isdigit() else None,
                              key_path=key_path, roles=tuple(r.name for r in mine), services=services,
                              health_urls=own_urls))
        return tuple(hosts)

    @property
    def addresses(self) -> list[str]:
        """The hosts as configured: `hosts` (or --host), else every host of the roles, in their order."""
        if self.get("hosts"):
            return [str(a) for a in self.get("hosts")]
        return list(dict.fromkeys(a for r in self.roles.values() for a in r.hosts))

    @property
    def roles(self) -> dict[str, Role]:
        """[environments.NAME.roles.ROLE] tables (checked for their shape when berth.toml is read)."""
        return {name: Role(name, tuple(table.get("hosts", ())), tuple(table.get("services", ())),
                           tuple(table["health_urls"]) if "health_urls" in table else None)
                for name, table in (self.get("roles") or {}).items()}

    def health_urls_of(self, host: Host) -> tuple[str, ...]:
        """What verify fetches on `host`: its roles' health_urls when they set them, else the environment's."""
        return host.health_urls if host.health_urls is not None else self.health_urls

    @property
    def compose_files(self) -> tuple[str, ...]:
        """The compose files as set (COMPOSE_FILES, compose_files), else the one compose itself would find."""
        if self.get("compose_files") is not None:
            return tuple(self.get("compose_files"))
        return default_compose_files(self.root)

    @property
    def env_file(self) -> str:
        return self.get("env_file", DEFAULT_ENV_FILE)

    @property
    def app_dir(self) -> str:
        """Remote path; may start with `~/`, resolved against the server user's home on connect."""
        return self.get("app_dir") or f"~/{self.root.resolve().name}"

    @property
    def project(self) -> str:
        """The compose project name, derived as compose derives it (see berth.model.compose.project)."""
        return self.project_name.name

    @cached_property
    def project_name(self) -> ProjectName:
        from berth.model.compose.project import derive

        explicit = (self.get("project"), self.where("project")) if self.get("project") else None
        env: dict[str, str] = {}
        from_env_file = None
        path = self.root / self.env_file
        if path.is_file():
            try:
                values = read_env_file(path)
            except UsageError:
                values = None  # berth check reports an unreadable env file
            if values is not None:
                env = {e.key: e.value for e in values.entries if e.value is not None}
                if env.get("COMPOSE_PROJECT_NAME"):
                    line = values.line_of("COMPOSE_PROJECT_NAME")
                    from_env_file = (env["COMPOSE_PROJECT_NAME"], f"{self.env_file}:{line} COMPOSE_PROJECT_NAME")
        return derive(explicit, from_env_file, [self.root / f for f in self.compose_files], env,
                      self._app_dir_name)

    @property
    def legacy_project(self) -> str:
        """The name berth gave the project before it read `name:` and COMPOSE_PROJECT_NAME: a server deployed
        then runs the app under it (berth keeps using it there, see remote.session)."""
        from berth.model.compose.project import normalize

        return normalize(self.get("project") or self._app_dir_name) or "app"

    @property
    def _app_dir_name(self) -> str:
        return self.app_dir.rstrip("/").rsplit("/", 1)[-1]

    @property
    def confirm(self) -> bool:
        return bool(self.get("confirm", self.environment == "production"))

    @property
    def forward_agent(self) -> bool:
        """Forward the ssh agent to the servers (off unless asked for; a word that is not a boolean is
        settings.boolean's error, and off meanwhile)."""
        return bool_setting(self.get("forward_agent", False)) is True

    @property
    def proxy(self) -> bool:
        """Run berth's proxy, so start-first services switch without dropping a request (docs/ROLLOUTS.md);
        off unless asked for while the rollout is new, or unless `domains` asks for HTTPS (which it serves)."""
        if self.get("proxy") is None:
            return bool(self.domains)
        return bool_setting(self.get("proxy")) is True

    @property
    def domains(self) -> dict[str, tuple[str, ...]]:
        """service → the public host names berth's proxy serves it on by HTTPS (berth check judges them)."""
        value = self.get("domains") or {}
        return {service: tuple(names) for service, names in value.items() if names}

    @property
    def tls(self) -> Tls | None:
        """How berth's proxy gets certificates; None without domains (plain HTTP only)."""
        if not self.domains:
            return None
        return Tls(email=str(self.get("acme_email") or ""), ca=str(self.get("acme_ca") or ""),
                   ca_root=self.local_path("acme_ca_root"),
                   redirect=bool_setting(self.get("https_redirect", True)) is not False)

    @property
    def proxy_image(self) -> str:
        return str(self.get("proxy_image") or DEFAULT_PROXY_IMAGE)

    @property
    def health_urls(self) -> tuple[str, ...]:
        return tuple(self.get("health_urls", []))

    @property
    def keep_releases(self) -> int:
        return max(1, int(self.get("keep_releases", DEFAULT_KEEP_RELEASES)))

    def hooks(self, when: str) -> tuple[str, ...]:
        return tuple(self.get(f"{when}_deploy", []))

    @property
    def verify_timeout(self) -> int:
        """Seconds verify waits for health; UsageError unless a whole number from 1 to 3600."""
        value = self.get("verify_timeout", DEFAULT_VERIFY_TIMEOUT)
        text = str(value).strip()
        if isinstance(value, bool) or not (text.isascii() and text.isdigit()) or not (
                VERIFY_TIMEOUT_RANGE[0] <= int(text) <= VERIFY_TIMEOUT_RANGE[1]):
            low, high = VERIFY_TIMEOUT_RANGE
            raise UsageError(f"verify_timeout {value!r} is not a whole number of seconds from {low} to {high}",
                             where=self.located("verify_timeout"),
                             fix=f"set VERIFY_TIMEOUT (or verify_timeout in berth.toml) to seconds, e.g. "
                                 f"{DEFAULT_VERIFY_TIMEOUT}, or leave it out for the default")
        return int(text)

    @property
    def engine(self) -> str:
        """"compose" (each host runs docker compose) or "swarm" (a stack through the first host, a manager);
        UsageError for another word (settings.engine)."""
        engine = self.get("engine", "compose")
        if engine not in ENGINES:
            raise UsageError(f"engine {engine!r} is not one of {', '.join(ENGINES)}", where=self.located("engine"),
                             fix='write engine = "compose" (the default) or engine = "swarm" (docs/FLEETS.md)')
        return engine

    @property
    def fleet(self) -> Fleet:
        """How a deploy goes over the hosts; UsageError for a value that cannot be followed (settings.fleet)."""
        parallel, percent = None, None
        value = self.get("parallel")
        if value is not None:
            text = str(value).strip()
            m = re.fullmatch(r"(\d+)%", text)
            if m and 1 <= int(m.group(1)) <= 100:
                percent = int(m.group(1))
            elif not isinstance(value, bool) and text.isascii() and text.isdigit() and int(text) >= 1:
                parallel = int(text)
            else:
                raise UsageError(f"parallel {value!r} is neither a number of hosts nor a percentage of them",
                                 where=self.located("parallel"),
                                 fix='write parallel = 2 (hosts at once) or parallel = "25%" (of the hosts), '
                                     "or leave it out to deploy every host at once")
        canary = self.get("canary")
        if canary is True:
            canary = "first"
        elif canary is False:
            canary = None
        elif canary is not None and self.where("hosts") != "--host":  # (--host may leave the canary out)
            names = [*self.addresses, *self.roles]
            if canary not in names:
                raise UsageError(f"canary {canary!r} is not one of this environment's hosts or roles "
                                 f"({', '.join(names) or 'none'})", where=self.located("canary"),
                                 fix="name one of the hosts as hosts lists it (or a role, whose hosts then go "
                                     "first together), or write canary = true for the first host")
        pause = self.get("batch_pause", 0)
        low, high = BATCH_PAUSE_RANGE
        if isinstance(pause, bool) or not str(pause).isdigit() or not low <= int(pause) <= high:
            raise UsageError(f"batch_pause {pause!r} is not a whole number of seconds from {low} to {high}",
                             where=self.located("batch_pause"), fix="write batch_pause = 30, or leave it out")
        on_failure = self.get("on_failure", "rollback")
        if on_failure not in ON_FAILURE:
            raise UsageError(f"on_failure {on_failure!r} is not one of {', '.join(ON_FAILURE)}",
                             where=self.located("on_failure"),
                             fix='write on_failure = "rollback" (the hosts this deploy updated go back to what they '
                                 'ran; the default) or "stop" (they keep the new release)')
        build = self.get("build", "each")
        if build not in BUILDS:
            raise UsageError(f"build {build!r} is not one of {', '.join(BUILDS)}", where=self.located("build"),
                             fix='write build = "each" (every host builds for itself; the default) or "once" (the '
                                 'first host that needs a build builds, the others load its images through berth)')
        return Fleet(parallel, percent, canary, int(pause), on_failure, build)

    def local_path(self, name: str) -> Path | None:
        value = self.get(name)
        return _local_path(self.root, value) if value else None

    def where(self, name: str) -> str:
        s = self.settings.get(name)
        return s.origin if s else "not set"

    def located(self, name: str) -> str:
        """file:line of a setting for an error's Where (its origin when it has no file, e.g. --host)."""
        s = self.settings.get(name)
        if s is None:
            return "not set"
        if s.file is None:
            return s.origin
        return f"{s.file}:{s.line}" if s.line else str(s.file)


# --------------------------------------------------------------------------- what ssh can be given

# What OpenSSH (9.6, the CVE-2023-51385 fix) refuses in a host name and a user name given on its command
# line: older clients expand them unquoted into ProxyCommand / Match exec (%h, %r) for a shell.
_HOST_METACHARACTERS = "'`\"$\\;&<>|(){},"
_USER_METACHARACTERS = "'`\";&<>|(){}"
HOST_FIX = "write an IP address, a DNS name or a Host alias from ~/.ssh/config (SERVER_IP in .env, hosts in berth.toml)"
USER_FIX = "write the user name ssh logs in as (SERVER_USER in .env, user in berth.toml), e.g. deploy"


def _bad_character(value: str) -> str | None:
    """A NUL, control, format or whitespace character in `value`, described; None if there is none."""
    import unicodedata

    for c in value:
        if c == "\0":
            return "contains a NUL byte"
        if c.isspace():
            return f"contains whitespace ({c!r})"
        if unicodedata.category(c).startswith("C"):  # Cc control, Cf format (bidi, zero-width), unassigned
            return f"contains the control character U+{ord(c):04X}"
    return None


def host_problem(address: str) -> str | None:
    """Why `address` cannot be given to ssh as a host (a phrase), or None."""
    if not address:
        return "is empty"
    if address.startswith("-"):
        return "starts with '-', so ssh would read it as an option"
    bad = _bad_character(address)
    if bad:
        return bad
    if "/" in address:
        return "contains '/', which no host name or ssh alias has"
    shell = next((c for c in address if c in _HOST_METACHARACTERS), None)
    if shell:
        return f"contains {shell!r}, which no host name has (ssh refuses it: it would reach a shell)"
    return None


def user_problem(user: str) -> str | None:
    """Why `user` cannot be given to ssh as the login user (a phrase), or None."""
    if not user:
        return "is empty"
    if user.startswith("-"):
        return "starts with '-', so ssh would read it as an option"
    bad = _bad_character(user)
    if bad:
        return bad
    shell = next((c for c in user if c in _USER_METACHARACTERS), None)
    if shell:
        return f"contains {shell!r}, which ssh refuses in a user name (it would reach a shell)"
    if user.endswith("\\"):
        return "ends with a backslash, which ssh refuses in a user name"
    return None


def _local_path(root: Path, value: str) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else root / p


def setting_spec(name: str) -> tuple[str | None, str] | None:
    """(its .env key or None, its kind: "str", "int", "bool", "list" or "commands") of a berth.toml setting."""
    return _SETTINGS.get(name)


def bool_setting(value: Any) -> bool | None:
    """A bool setting's value: berth.toml's true/false, or a .env word (BOOL_WORDS); None if it is neither."""
    if isinstance(value, bool):
        return value
    return BOOL_WORDS.get(value.strip().lower()) if isinstance(value, str) else None


def _split_list(value: str) -> list[str]:
    return [v.strip() for v in re.split(r"[,\s]+", value) if v.strip()]


def _coerce(name: str, kind: str, value: Any, origin: str, line: int | None = None) -> Any:
    """Type-check a berth.toml value; .env values are strings and are converted leniently."""
    if kind == "domains":  # { service = "name" or ["name", ...] }
        if isinstance(value, dict) and all(isinstance(k, str) and (isinstance(v, str) or (
                isinstance(v, list) and all(isinstance(n, str) for n in v))) for k, v in value.items()):
            return {k: [v] if isinstance(v, str) else list(v) for k, v in value.items()}
        raise UsageError(f"berth.toml{f':{line}' if line else ''}: 'domains' must name each service's public host "
                         f"names, not {value!r}", where=origin,
                         fix='write it as domains = { web = ["app.example.com", "www.example.com"] }')
    if kind == "roles":  # { web = { hosts = [...], services = [...], health_urls = [...] } }
        where = f"berth.toml{f':{line}' if line else ''}"
        example = '[environments.production.roles.web] with hosts = ["web1", "web2"] and services = ["web"]'
        if not isinstance(value, dict):
            raise UsageError(f"{where}: 'roles' must be a table of roles, not {value!r}", where=origin,
                             fix=f"write each role as {example}")
        for role, table in value.items():
            bad = (not isinstance(table, dict) or not table.get("hosts")
                   or any(k not in ROLE_KEYS for k in table)
                   or any(not (isinstance(v, list) and all(isinstance(x, str) for x in v)) for v in table.values()))
            if bad:
                raise UsageError(f"{where}: role '{role}' must list its hosts (and may list services and "
                                 f"health_urls), each a list of strings, not {table!r}", where=origin,
                                 fix=f"write it as {example}")
        return value
    if kind == "parallel":  # 3 or "25%"
        kind = "int" if isinstance(value, int) else "str"
    if kind == "canary":  # true, or the host that goes first
        kind = "bool" if isinstance(value, bool) else "str"
    if kind == "commands":  # one shell command or a list of them; never split
        kind, value = "list", [value] if isinstance(value, str) else value
    ok = {
        "str": isinstance(value, str),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "bool": isinstance(value, bool),
        "list": isinstance(value, list) and all(isinstance(v, str) for v in value),
    }[kind]
    if kind == "list" and isinstance(value, str):
        return _split_list(value)
    if not ok:
        want = {"str": "a string", "int": "a whole number", "bool": "true or false", "list": "a list of strings"}[kind]
        raise UsageError(
            f"berth.toml{f':{line}' if line else ''}: '{name}' must be {want}, not {value!r}",
            where=origin,
            fix=f"write it as {name} = " + {"str": '"..."', "int": "22", "bool": "true", "list": '["..."]'}[kind],
        )
    return value


def _read_toml(path: Path) -> dict[str, Any]:
    return _load_toml(path)[0]


def _load_toml(path: Path) -> tuple[dict[str, Any], dict[tuple, int]]:
    """berth.toml, checked, and the line of each of its keys (see toml_key_lines)."""
    import tomllib

    from berth.model.files import read_bytes

    raw = read_bytes(path, limit=MAX_TOML_BYTES, kind="a berth.toml",
                     fix="keep only berth's settings in it (see docs/CONFIG.md)")
    try:
        text = raw.decode()  # as tomllib.load does
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"berth.toml is not valid TOML: {exc}", where=str(path), fix="fix the syntax at that line") from None
    except UnicodeDecodeError:
        raise UsageError("berth.toml is not UTF-8 text", where=str(path), fix="save it as UTF-8") from None
    except RecursionError:  # tomllib parses nested arrays and inline tables recursively
        data = None
    scanner = _TomlLines(text)
    lines = scanner.scan()
    if data is None or _nesting(data) > MAX_TOML_DEPTH:
        # the walks of the settings ([check] severity, [kubernetes]) are recursive too: refuse it here, located
        line = scanner.deepest[1]
        raise UsageError(f"berth.toml nests arrays or tables more than {MAX_TOML_DEPTH} levels deep; no berth "
                         "setting needs more than a few", where=f"{path}:{line}" if line else str(path),
                         fix="write the value at that line as a string or a flat list of strings (see docs/CONFIG.md)")

    def at(*key: str) -> str:
        line = lines.get(key)
        return f"{path}:{line}" if line else str(path)

    for key in data:
        if key not in _TOP_LEVEL_KEYS:
            raise UsageError(
                f"berth.toml: unknown section '{key}'{_did_you_mean(key, _TOP_LEVEL_KEYS)}",
                where=at(key),
                fix="use [defaults] and [environments.NAME]; see docs/CONFIG.md",
            )
    for key in _TOP_LEVEL_KEYS:
        if key in data and not isinstance(data[key], dict):
            example = "[defaults]" if key == "defaults" else "[environments.staging]"
            raise UsageError(f"berth.toml: '{key}' must be a table of sections, not {data[key]!r}",
                             where=at(key), fix=f"write it as {example} followed by its keys")
    sections = [(("defaults",), data.get("defaults", {}))]  # [check]/[kubernetes] are validated by their features
    sections += [(("environments", n), s) for n, s in data.get("environments", {}).items()]
    for table, section in sections:
        name = ".".join(table)
        if not isinstance(section, dict):
            raise UsageError(f"berth.toml: [{name}] must be a table", where=at(*table))
        for key in section:
            if key not in _SETTINGS:
                raise UsageError(
                    f"berth.toml: unknown key '{key}' in [{name}]{_did_you_mean(key, _SETTINGS)}",
                    where=at(*table, key),
                    fix="see docs/CONFIG.md for the keys berth reads",
                )
    return data, lines


def _nesting(value: Any) -> int:
    """How many levels of tables and arrays `value` has (iteratively: it may be very deep)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if deepest > MAX_TOML_DEPTH:
            break
        if isinstance(item, dict):
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in item)
    return deepest


def _did_you_mean(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def toml_section(root: Path, name: str) -> dict[str, Any]:
    """A top-level table of berth.toml that a feature owns ([check], [kubernetes]); {} if absent."""
    path = root / "berth.toml"
    if not path.exists():
        return {}
    return _read_toml(path).get(name, {})


def load_target(root: Path, environment: str | None = None, hosts: tuple[str, ...] = ()) -> Target:
    """Resolve the settings of one environment from flags, berth.toml and .env."""
    root = root.resolve()
    if not root.is_dir():
        raise UsageError(f"project directory {root} does not exist", fix="pass -C with your app's repo")
    toml_path = root / "berth.toml"
    toml, toml_lines = _load_toml(toml_path) if toml_path.exists() else (None, {})
    env_path = root / ".env"
    dotenv = read_env_file(env_path) if env_path.exists() else None
    dotenv_values = dotenv.values() if dotenv else {}

    toml_envs = tuple((toml or {}).get("environments", {}))
    dotenv_env = dotenv_values.get("ENVIRONMENT") or None
    chosen = environment or dotenv_env
    if chosen is None:
        if len(toml_envs) == 1:
            chosen = toml_envs[0]
        else:
            choices = ", ".join(toml_envs) or ", ".join(KNOWN_ENVIRONMENTS)
            raise UsageError(
                "no environment selected",
                where=str(env_path) if dotenv else str(root),
                fix=f"set ENVIRONMENT in .env or pass -e with one of: {choices}",
            )
    if toml is None and dotenv_env and environment and environment != dotenv_env:
        raise UsageError(
            f"-e {environment} was asked for, but .env describes the {dotenv_env} environment and there is no berth.toml",
            where=str(env_path),
            fix=f"deploy with -e {dotenv_env}, change ENVIRONMENT in .env, or describe several environments in berth.toml",
        )
    if toml is not None and toml_envs and chosen not in toml_envs and chosen != dotenv_env:
        raise UsageError(
            f"environment '{chosen}' is not defined in berth.toml{_did_you_mean(chosen, toml_envs)}",
            where=str(toml_path),
            fix=f"use one of: {', '.join(toml_envs)}, or add [environments.{chosen}]",
        )

    settings: dict[str, Setting] = {}
    # lowest first; later sources overwrite
    if dotenv and chosen == dotenv_env:
        for name, (env_key, kind) in _SETTINGS.items():
            if env_key and env_key in dotenv:
                raw = dotenv_values[env_key]
                value: Any = _split_list(raw) if kind == "list" else raw
                line = dotenv.line_of(env_key)
                settings[name] = Setting(value, f".env:{line}", env_path, line)
    if toml is not None:
        for table in (("defaults",), ("environments", chosen)):
            section = toml.get("defaults", {}) if len(table) == 1 else toml.get("environments", {}).get(chosen, {})
            for name, value in section.items():
                line = toml_lines.get((*table, name))
                where = f"[{'.'.join(table)}] {name}"
                value = _coerce(name, _SETTINGS[name][1], value, f"berth.toml {where}", line)
                settings[name] = Setting(value, f"berth.toml:{line} {where}" if line else f"berth.toml {where}",
                                         toml_path, line)
    if hosts:
        # --host picks some of the configured hosts (in their order), or a role's; one that is not configured
        # replaces them
        roles = settings["roles"].value if "roles" in settings else {}
        role_hosts = [str(a) for table in roles.values() for a in table.get("hosts", [])]
        configured = list(dict.fromkeys(
            [str(a) for a in (settings["hosts"].value if "hosts" in settings else []) or []] + role_hosts))
        named = {a for h in hosts for a in ([str(x) for x in roles[h]["hosts"]] if h in roles else [h])}
        picked = [a for a in configured if a in named] if named <= set(configured) else list(hosts)
        settings["hosts"] = Setting(picked, "--host")
    defined = tuple(dict.fromkeys([*KNOWN_ENVIRONMENTS, *toml_envs]))
    return Target(root, chosen, settings, dotenv, toml is not None, defined)


# --------------------------------------------------------------------------- where keys are in berth.toml
#
# tomllib parses the values but keeps no positions; this scanner finds, for a file tomllib has already
# accepted, the line of every key: {("environments", "prod", "user"): 7, ("defaults",): 1, ...}. It only
# has to tell keys from values: strings (all four kinds, multi-line too), arrays and inline tables (which
# may span lines), comments, table headers with dotted or quoted names, and arrays of tables (whose
# elements get their index in the path). A table's path maps to its header line (or to the first dotted
# key that creates it). It never raises: an unexpected character ends the scan with what was found.

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_TOML_SCALAR = re.compile(r"[^,\]}#\r\n]+")
_TOML_ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", "e": "\x1b", '"': '"', "\\": "\\"}


class _TomlLines:
    def __init__(self, text: str) -> None:
        self.s = text.removeprefix("\ufeff")
        self.i = 0
        self.newlines = [m.start() for m in re.finditer("\n", self.s)]
        self.lines: dict[tuple, int] = {}
        self.arrays: dict[tuple, int] = {}  # array-of-tables path → index of its last element
        self.deepest: tuple[int, int | None] = (0, None)  # (length of the path, line) of the most nested value

    def line_at(self, index: int) -> int:
        return bisect.bisect_left(self.newlines, index) + 1

    def scan(self) -> dict[tuple, int]:
        try:
            self._document()
        except (IndexError, ValueError, RecursionError):
            pass  # not TOML after all: the lines found so far
        return self.lines

    # ---- layout

    def _spaces(self) -> None:
        while self.i < len(self.s) and self.s[self.i] in " \t":
            self.i += 1

    def _blank(self) -> None:
        """Whitespace, newlines and comments."""
        s = self.s
        while self.i < len(s):
            c = s[self.i]
            if c in " \t\r\n":
                self.i += 1
            elif c == "#":
                end = s.find("\n", self.i)
                self.i = len(s) if end < 0 else end
            else:
                return

    def _expect(self, token: str) -> None:
        if not self.s.startswith(token, self.i):
            raise ValueError(f"expected {token!r} at {self.i}")
        self.i += len(token)

    # ---- structure

    def _document(self) -> None:
        prefix: tuple = ()
        while True:
            self._blank()
            if self.i >= len(self.s):
                return
            start = self.i
            if self.s.startswith("[[", self.i):
                self.i += 2
                path = self._resolve(self._key())
                self._expect("]]")
                index = self.arrays.get(path, -1) + 1
                self.arrays[path] = index
                for n in range(1, len(path) + 1):
                    self.lines.setdefault(path[:n], self.line_at(start))
                prefix = (*path, index)
                self.lines[prefix] = self.line_at(start)
            elif self.s[self.i] == "[":
                self.i += 1
                prefix = self._resolve(self._key())
                self._expect("]")
                for n in range(1, len(prefix)):  # [a.b] also creates a
                    self.lines.setdefault(prefix[:n], self.line_at(start))
                self.lines[prefix] = self.line_at(start)
            else:
                self._keyval(prefix)

    def _resolve(self, parts: list[str]) -> tuple:
        """A header's path, with the current element's index after each array of tables it goes through."""
        out: list = []
        for n, part in enumerate(parts):
            out.append(part)
            if n < len(parts) - 1 and tuple(out) in self.arrays:
                out.append(self.arrays[tuple(out)])
        return tuple(out)

    def _keyval(self, prefix: tuple) -> None:
        line = self.line_at(self.i)
        parts = self._key()
        for n in range(1, len(parts)):  # a.b.c = 1 also creates the tables a and a.b
            self.lines.setdefault((*prefix, *parts[:n]), line)
        path = (*prefix, *parts)
        self.lines[path] = line
        self._spaces()
        self._expect("=")
        self._spaces()
        self._value(path)

    def _key(self) -> list[str]:
        parts = []
        while True:
            self._spaces()
            c = self.s[self.i]
            if c == '"':
                parts.append(self._basic_string())
            elif c == "'":
                end = self.s.index("'", self.i + 1)
                parts.append(self.s[self.i + 1:end])
                self.i = end + 1
            else:
                m = _BARE_KEY.match(self.s, self.i)
                if not m:
                    raise ValueError(f"no key at {self.i}")
                parts.append(m.group())
                self.i = m.end()
            self._spaces()
            if self.i < len(self.s) and self.s[self.i] == ".":
                self.i += 1
                continue
            return parts

    # ---- values: only skipped, except for the keys of inline tables

    def _value(self, path: tuple) -> None:
        s = self.s
        c = s[self.i]
        if len(path) > self.deepest[0]:
            self.deepest = (len(path), self.line_at(self.i))
        if s.startswith(('"""', "'''"), self.i):
            self._multiline_string(s[self.i])
        elif c == '"':
            self._basic_string()
        elif c == "'":
            self.i = s.index("'", self.i + 1) + 1
        elif c == "{":
            self.i += 1
            while True:
                self._blank()
                if s[self.i] == "}":
                    self.i += 1
                    return
                self._keyval(path)
                self._blank()
                if s[self.i] == ",":
                    self.i += 1
        elif c == "[":
            self.i += 1
            index = 0
            while True:
                self._blank()
                if s[self.i] == "]":
                    self.i += 1
                    return
                self._value((*path, index))
                index += 1
                self._blank()
                if s[self.i] == ",":
                    self.i += 1
        else:  # number, boolean, date/time: up to the next delimiter
            m = _TOML_SCALAR.match(s, self.i)
            if not m:
                raise ValueError(f"no value at {self.i}")
            self.i = m.end()

    def _basic_string(self) -> str:
        s, out = self.s, []
        self.i += 1
        while True:
            c = s[self.i]
            if c == '"':
                self.i += 1
                return "".join(out)
            if c == "\\":
                e = s[self.i + 1]
                if e in "uUx":
                    width = {"u": 4, "U": 8, "x": 2}[e]
                    out.append(chr(int(s[self.i + 2:self.i + 2 + width], 16)))
                    self.i += 2 + width
                    continue
                out.append(_TOML_ESCAPES.get(e, e))
                self.i += 2
                continue
            if c == "\n":
                raise ValueError("newline in a string")
            out.append(c)
            self.i += 1

    def _multiline_string(self, quote: str) -> None:
        s, delim = self.s, quote * 3
        self.i += 3
        while True:
            if quote == '"' and s[self.i] == "\\":
                self.i += 2
                continue
            if s.startswith(delim, self.i):
                self.i += 3
                for _ in range(2):  # """a"""" ends with a quote in the string
                    if self.i < len(s) and s[self.i] == quote:
                        self.i += 1
                return
            self.i += 1


def toml_key_lines(text: str) -> dict[tuple, int]:
    """The 1-based line of each key and table of a TOML document tomllib accepts, by path."""
    return _TomlLines(text).scan()


def default_compose_files(root: Path) -> tuple[str, ...]:
    """The file `docker compose` uses in `root` when none is named: the first of COMPOSE_FILE_NAMES there."""
    for name in COMPOSE_FILE_NAMES:
        if (root / name).is_file():
            return (name,)
    return DEFAULT_COMPOSE_FILES
