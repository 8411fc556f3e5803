"""A service's environment split into settings (ConfigMap) and secrets (Secret).

The environment itself is the compose model's (berth.model.compose.resolve: `env_file` entries in
order, `environment:` on top, interpolated as compose does); this module decides which of it is secret.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass

from berth.secrets.masking import is_secret_key, is_secret_value, url_password

_ASSIGN = re.compile(r"^\s*(?:export\s+)?[^=\s]+\s*=\s*(.?)")


@dataclass(frozen=True)
class EnvVar:
    key: str
    value: str
    secret: bool = False


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


def service_environment(service: dict) -> list[tuple[str, str]]:
    """(key, value) of the container's environment of a service of the compose model, where env_file
    contents are already merged in (berth.model.compose.resolve); unset keys are left out."""
    return [(str(k), _scalar(v)) for k, v in (service.get("environment") or {}).items() if v is not None]


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


def split_environment(entries: list[tuple[str, str]], policy: SecretPolicy) -> list[EnvVar]:
    return [EnvVar(k, v, policy.is_secret(k, v)) for k, v in entries]
