"""Which values are secrets, and a masker that keeps them out of everything berth prints."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

SECRET_KEY_PATTERN = re.compile(
    r"(SECRET|PASSWORD|PASSWD|PASSPHRASE|_PASS$|^PASS$|TOKEN|_KEY$|^KEY$|_KEY_|APIKEY|CREDENTIAL|PRIVATE|SALT|_DSN$|^DSN$|AUTH)",
    re.IGNORECASE,
)
MASK = "****"
MIN_MASKED_LENGTH = 4  # shorter values would mask ordinary words


def is_secret_key(key: str) -> bool:
    return bool(SECRET_KEY_PATTERN.search(key))


def url_password(value: str) -> str | None:
    if "://" not in value:
        return None
    try:
        return urlsplit(value).password
    except ValueError:
        return None


def secret_values(env: Mapping[str, str]) -> list[str]:
    """Values to mask: those of secret-looking keys, and passwords inside URLs (DATABASE_URL...)."""
    found: set[str] = set()
    for key, value in env.items():
        if not value:
            continue
        if is_secret_key(key):
            found.add(value)
        password = url_password(value)
        if password:
            found.add(password)
            found.add(value)
    return sorted((v for v in found if len(v) >= MIN_MASKED_LENGTH), key=len, reverse=True)


class Masker:
    def __init__(self, secrets: Iterable[str] = ()):
        self._secrets = sorted({s for s in secrets if len(s) >= MIN_MASKED_LENGTH}, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(s) for s in self._secrets)) if self._secrets else None

    def __call__(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(MASK, text)
