"""A service's environment as compose computes it, split into settings (ConfigMap) and secrets (Secret).

Compose builds a container's environment from its `env_file` entries in order (later files win),
then `environment:` on top. `${VAR}` in the compose file is interpolated against the project env
file (`.env.docker`, which berth passes as `--env-file`); values inside an env_file are expanded
too, unless single-quoted, looking first at keys read before them and then at the project env.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from berth.errors import UsageError
from berth.model.compose.interpolation import InterpolationError, MissingRequiredVariable, interpolate
from berth.model.envfile import EnvFile, read_env_bytes, read_env_file
from berth.secrets.masking import is_secret_key, is_secret_value, url_password

_ASSIGN = re.compile(r"^\s*(?:export\s+)?[^=\s]+\s*=\s*(.?)")


@dataclass(frozen=True)
class EnvVar:
    key: str
    value: str
    source: str  # "environment" or the env_file path as written in the compose file
    secret: bool = False


def _single_quoted(raw_lines: list[str], line: int) -> bool:
    if 0 < line <= len(raw_lines):
        m = _ASSIGN.match(raw_lines[line - 1])
        return bool(m and m.group(1) == "'")
    return False


def expand_env_file(env: EnvFile, lookup: Mapping[str, str]) -> dict[str, str]:
    """The values of an env file as a service sees them: like compose-go, `${VAR}` in an unquoted or
    double-quoted value looks first at `lookup` (earlier env files, then the project env), then at the
    keys above it in the same file; single-quoted values stay literal."""
    for err in getattr(env, "errors", ()) or ():
        raise UsageError(f"{env.path.name}:{err.line}: {err.message}; compose refuses this file",
                         where=f"{env.path}:{err.line}", fix="berth check lists every problem in the env file")
    raw_lines: list[str] | None = None
    out: dict[str, str] = {}
    for entry in env.entries:
        if entry.value is None:  # a bare KEY: taken from the project environment when set there
            if entry.key in lookup:
                out[entry.key] = lookup[entry.key]
            continue
        if hasattr(entry, "template"):  # berth.model.envfile knows what compose interpolates
            template = entry.template
        else:
            if raw_lines is None:
                raw_lines = (read_env_bytes(env.path).decode("utf-8-sig", errors="replace").splitlines()
                             if env.path.exists() else [])
            template = entry.value if "$" in entry.value and not _single_quoted(raw_lines, entry.line) else None
        value = entry.value
        if template is not None and "$" in template:
            try:
                value = interpolate(template, {**out, **lookup})
            except (InterpolationError, MissingRequiredVariable) as exc:
                raise UsageError(f"{env.path.name}: {entry.key}: {exc}", where=f"{env.path}:{entry.line}",
                                 fix="fix the ${...} reference, or single-quote the value to keep it literal") from None
        out[entry.key] = value
    return out


def env_file_entries(service: dict) -> list[tuple[str, bool]]:
    """(path, required) for each env_file entry of a service, in order."""
    entries = service.get("env_file") or []
    entries = [entries] if isinstance(entries, (str, dict)) else entries
    out = []
    for entry in entries:
        if isinstance(entry, dict):
            if isinstance(entry.get("path"), str):
                out.append((entry["path"], bool(entry.get("required", True))))
        elif isinstance(entry, str):
            out.append((entry, True))
    return out


def _scalar(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def service_environment(name: str, service: dict, base_dir: Path, project: Mapping[str, str],
                        where: str) -> list[tuple[str, str, str]]:
    """(key, value, source) for the container's environment, last assignment winning, in first-seen order."""
    env: dict[str, tuple[str, str]] = {}
    from_files: dict[str, str] = {}
    for path, required in env_file_entries(service):
        full = (base_dir / path).resolve() if not Path(path).is_absolute() else Path(path)
        if not full.exists():
            if required:
                raise UsageError(f"service {name}: env_file {path} does not exist", where=where,
                                 fix=f"create {path}, or mark it optional with required: false")
            continue
        for key, value in expand_env_file(read_env_file(full), {**project, **from_files}).items():
            env[key] = (value, path)
            from_files[key] = value
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        items = []
        for item in environment:
            text = _scalar(item)
            key, eq, value = text.partition("=")
            items.append((key, value if eq else None))
    elif isinstance(environment, dict):
        items = [(str(k), None if v is None else _scalar(v)) for k, v in environment.items()]
    else:
        items = []
    for key, value in items:
        if value is None:  # `KEY` alone: from the project environment, or unset
            if key in project:
                env[key] = (project[key], "environment")
            else:
                env.pop(key, None)
            continue
        env[key] = (value, "environment")
    return [(k, v, src) for k, (v, src) in env.items()]


@dataclass(frozen=True)
class SecretPolicy:
    """Which settings are secrets: secret-looking names (berth.secrets.masking), values in a known token format
    (sk_live_…, ghp_…, a Slack webhook URL), URLs with a password, values holding a secret of the project env,
    plus `secret_keys`; `plain_keys` un-marks a name — never a token, a URL with a password or a known secret."""

    secret_keys: tuple[str, ...] = ()
    plain_keys: tuple[str, ...] = ()
    known_secrets: frozenset[str] = frozenset()

    @classmethod
    def for_project(cls, project: Mapping[str, str], secret_keys=(), plain_keys=()) -> SecretPolicy:
        policy = cls(tuple(secret_keys), tuple(plain_keys))
        known = {v for k, v in project.items()
                 if v and not policy.names_a_file(k, v) and (policy.key_is_secret(k) or is_secret_value(v))}
        for value in project.values():
            password = url_password(value or "")
            if password:
                known |= {password, value}
        return cls(tuple(secret_keys), tuple(plain_keys), frozenset(v for v in known if len(v) >= 4))

    def key_is_secret(self, key: str) -> bool:
        if any(fnmatch.fnmatchcase(key, p) for p in self.secret_keys):
            return True
        if any(fnmatch.fnmatchcase(key, p) for p in self.plain_keys):
            return False
        return is_secret_key(key)

    def names_a_file(self, key: str, value: str) -> bool:
        """`POSTGRES_PASSWORD_FILE=/run/secrets/db-password`: the path to a secret, not one (unless secret_keys says)."""
        return (key.upper().endswith("_FILE") and value.startswith("/")
                and not any(fnmatch.fnmatchcase(key, p) for p in self.secret_keys))

    def is_secret(self, key: str, value: str) -> bool:
        if self.names_a_file(key, value):
            return False
        if self.key_is_secret(key):
            return True
        if url_password(value) or is_secret_value(value):
            return True
        return any(holds_secret(value, s) for s in self.known_secrets)


def holds_secret(text: str, secret: str) -> bool:
    """Whether `text` carries `secret`: anywhere for a long secret; a short one (a weak password such as
    `postgres`) only as a whole word, so the path `/var/lib/postgresql/data` does not carry it."""
    if len(secret) >= 16:
        return secret in text
    return re.search(rf"(?<![A-Za-z0-9]){re.escape(secret)}(?![A-Za-z0-9])", text) is not None


def split_environment(entries: list[tuple[str, str, str]], policy: SecretPolicy) -> list[EnvVar]:
    return [EnvVar(k, v, src, policy.is_secret(k, v)) for k, v, src in entries]
