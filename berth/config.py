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

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from berth.envfile import EnvFile, read_env_file
from berth.errors import UsageError

KNOWN_ENVIRONMENTS = ("development", "staging", "production")
DEFAULT_COMPOSE_FILES = ("docker-compose.yml",)
DEFAULT_ENV_FILE = ".env.docker"
DEFAULT_VERIFY_TIMEOUT = 90

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
    "verify_timeout": ("VERIFY_TIMEOUT", "int"),
    "keep_releases": (None, "int"),
    "pre_deploy": (None, "commands"),
    "post_deploy": (None, "commands"),
}
DEFAULT_KEEP_RELEASES = 5
# [check] and [kubernetes] belong to their own features, which validate them (see toml_section)
_TOP_LEVEL_KEYS = {"defaults", "environments", "check", "kubernetes"}


@dataclass(frozen=True)
class Setting:
    value: Any
    origin: str  # "berth.toml [environments.prod]", ".env:3", "--host", "default"
    file: Path | None = None
    line: int | None = None


@dataclass(frozen=True)
class Host:
    address: str  # an IP, a DNS name or an alias from ~/.ssh/config
    user: str | None = None
    port: int | None = None
    key_path: Path | None = None

    @property
    def label(self) -> str:
        who = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port and self.port != 22 else ""
        return f"{who}{self.address}{port}"


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
        key = self.get("key")
        key_path = _local_path(self.root, key) if key else None
        port = self.get("port")
        return tuple(
            # an unusable port is reported by the settings.port rule; here it just is not applied
            Host(address=a, user=self.get("user"), port=int(port) if str(port or "").isdigit() else None,
                 key_path=key_path)
            for a in self.get("hosts", [])
        )

    @property
    def compose_files(self) -> tuple[str, ...]:
        return tuple(self.get("compose_files", DEFAULT_COMPOSE_FILES))

    @property
    def env_file(self) -> str:
        return self.get("env_file", DEFAULT_ENV_FILE)

    @property
    def app_dir(self) -> str:
        """Remote path; may start with `~/`, resolved against the server user's home on connect."""
        return self.get("app_dir") or f"~/{self.root.resolve().name}"

    @property
    def project(self) -> str:
        """The compose project name: explicit, else the app dir's last part, as compose derives it."""
        explicit = self.get("project")
        name = explicit or self.app_dir.rstrip("/").rsplit("/", 1)[-1]
        # as compose normalizes it: lowercase, [a-z0-9_-], starting with a letter or digit
        return re.sub(r"[^a-z0-9_-]", "", name.lower()).lstrip("_-") or "app"

    @property
    def confirm(self) -> bool:
        return bool(self.get("confirm", self.environment == "production"))

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
        return int(self.get("verify_timeout", DEFAULT_VERIFY_TIMEOUT))

    def local_path(self, name: str) -> Path | None:
        value = self.get(name)
        return _local_path(self.root, value) if value else None

    def where(self, name: str) -> str:
        s = self.settings.get(name)
        return s.origin if s else "not set"


def _local_path(root: Path, value: str) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else root / p


def _split_list(value: str) -> list[str]:
    return [v.strip() for v in re.split(r"[,\s]+", value) if v.strip()]


def _coerce(name: str, kind: str, value: Any, origin: str) -> Any:
    """Type-check a berth.toml value; .env values are strings and are converted leniently."""
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
            f"berth.toml: '{name}' must be {want}, not {value!r}",
            where=origin,
            fix=f"write it as {name} = " + {"str": '"..."', "int": "22", "bool": "true", "list": '["..."]'}[kind],
        )
    return value


def _read_toml(path: Path) -> dict[str, Any]:
    import tomllib

    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"berth.toml is not valid TOML: {exc}", where=str(path), fix="fix the syntax at that line") from None
    except UnicodeDecodeError:
        raise UsageError("berth.toml is not UTF-8 text", where=str(path), fix="save it as UTF-8") from None
    except OSError as exc:
        raise UsageError(f"cannot read berth.toml: {exc.strerror}", where=str(path)) from None
    for key in data:
        if key not in _TOP_LEVEL_KEYS:
            raise UsageError(
                f"berth.toml: unknown section '{key}'{_did_you_mean(key, _TOP_LEVEL_KEYS)}",
                where=str(path),
                fix="use [defaults] and [environments.NAME]; see docs/CONFIG.md",
            )
    for key in _TOP_LEVEL_KEYS:
        if key in data and not isinstance(data[key], dict):  # noqa: SIM102
            example = "[defaults]" if key == "defaults" else "[environments.staging]"
            raise UsageError(f"berth.toml: '{key}' must be a table of sections, not {data[key]!r}",
                             where=str(path), fix=f"write it as {example} followed by its keys")
    sections = [("defaults", data.get("defaults", {}))]  # [check]/[kubernetes] are validated by their features
    sections += [(f"environments.{n}", s) for n, s in data.get("environments", {}).items()]
    for name, section in sections:
        if not isinstance(section, dict):
            raise UsageError(f"berth.toml: [{name}] must be a table", where=str(path))
        for key in section:
            if key not in _SETTINGS:
                raise UsageError(
                    f"berth.toml: unknown key '{key}' in [{name}]{_did_you_mean(key, _SETTINGS)}",
                    where=str(path),
                    fix="see docs/CONFIG.md for the keys berth reads",
                )
    return data


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
    toml = _read_toml(toml_path) if toml_path.exists() else None
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
        for section_name in ("defaults", f"environments.{chosen}"):
            head, _, env_name = section_name.partition(".")
            section = toml.get(head, {}) if not env_name else toml.get("environments", {}).get(env_name, {})
            for name, value in section.items():
                origin = f"berth.toml [{section_name}] {name}"
                settings[name] = Setting(_coerce(name, _SETTINGS[name][1], value, origin), origin, toml_path)
    if hosts:
        settings["hosts"] = Setting(list(hosts), "--host")
    defined = tuple(dict.fromkeys([*KNOWN_ENVIRONMENTS, *toml_envs]))
    return Target(root, chosen, settings, dotenv, toml is not None, defined)
