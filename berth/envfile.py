"""Reading `.env`-style files with the line each key came from.

Parsing uses python-dotenv's parser (quotes, escapes, `export `, multi-line quoted values, inline
comments, `KEY` without `=`). Values are returned raw — no `${VAR}` expansion — because berth never
rewrites an env file: it ships the bytes as they are and lets compose read them on the server.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

from berth.errors import UsageError


@dataclass(frozen=True)
class EnvEntry:
    key: str
    value: str | None  # None for a bare `KEY` line
    line: int


@dataclass(frozen=True)
class EnvFile:
    path: Path
    entries: tuple[EnvEntry, ...]
    bad_lines: tuple[tuple[int, str], ...] = field(default=())  # (line, text) the parser rejected

    def values(self) -> dict[str, str]:
        """Last assignment wins, as in compose; a bare `KEY` counts as set to ''."""
        return {e.key: e.value or "" for e in self.entries}

    def line_of(self, key: str) -> int | None:
        lines = [e.line for e in self.entries if e.key == key]
        return lines[-1] if lines else None

    def __contains__(self, key: str) -> bool:
        return any(e.key == key for e in self.entries)


def parse_env_text(text: str, path: Path) -> EnvFile:
    from dotenv.parser import parse_stream

    entries: list[EnvEntry] = []
    bad: list[tuple[int, str]] = []
    for binding in parse_stream(io.StringIO(text)):
        if binding.error:
            bad.append((binding.original.line, binding.original.string.rstrip("\r\n")))
        elif binding.key is not None:
            entries.append(EnvEntry(binding.key, binding.value, binding.original.line))
    return EnvFile(path, tuple(entries), tuple(bad))


def read_env_file(path: Path) -> EnvFile:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UsageError(
            f"cannot read {path.name}: {exc.strerror}",
            where=str(path),
            fix="create the file (copy its .example) or fix its permissions",
        ) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise UsageError(
            f"{path.name} is not UTF-8 text (byte {exc.start} is not valid UTF-8)",
            where=f"{path}:{line}",
            fix="save the file as UTF-8",
        ) from None
    if "\x00" in text:
        raise UsageError(
            f"{path.name} contains NUL bytes; it looks like a binary file, not an env file",
            where=str(path),
            fix="replace it with KEY=value lines",
        )
    return parse_env_text(text, path)
