"""The compose file as berth reads it: data plus the file:line of every string, for precise findings."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from berth.errors import UsageError

MAX_COMPOSE_BYTES = 5 * 1024 * 1024


@dataclass(frozen=True)
class ScalarAt:
    """One string value in the YAML source, with where it starts."""

    path: tuple[str | int, ...]  # ("services", "web", "environment", "DATABASE_URL")
    value: str
    line: int  # 1-based
    col: int  # 1-based, of the value's first character (after an opening quote)
    block: bool  # literal/folded block scalar: content starts on the next line

    def position_of(self, offset: int) -> tuple[int, int]:
        """file line/col of character `offset` of the value (exact for one-line scalars)."""
        before = self.value[:offset]
        newlines = before.count("\n")
        if self.block:
            return self.line + 1 + newlines, 1
        if newlines:
            return self.line + newlines, len(before) - before.rfind("\n")
        return self.line, self.col + offset


@dataclass(frozen=True)
class ComposeFile:
    path: Path
    data: dict[str, Any]
    scalars: tuple[ScalarAt, ...]

    @property
    def services(self) -> dict[str, dict[str, Any]]:
        services = self.data.get("services") or {}
        return services if isinstance(services, dict) else {}

    def line_of(self, *path: str | int) -> int | None:
        for s in self.scalars:
            if s.path[: len(path)] == path:
                return s.line
        return None


def load_compose_file(path: Path) -> ComposeFile:
    import yaml

    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path.name}: {exc.strerror}", where=str(path)) from None
    if len(raw) > MAX_COMPOSE_BYTES:
        raise UsageError(
            f"{path.name} is {len(raw) // 1024} KiB; a compose file over {MAX_COMPOSE_BYTES // 1024 // 1024} MiB is not plausible",
            where=str(path),
            fix="point compose_files at the real compose file",
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise UsageError(f"{path.name} is not UTF-8 text", where=f"{path}:{line}", fix="save it as UTF-8") from None
    loader_cls = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    loader = loader_cls(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UsageError(
            f"{path.name} is not valid YAML: {problem}",
            where=where,
            fix="fix the YAML at that position (indentation, a missing ':' or an unclosed quote are common)",
        ) from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise UsageError(
            f"{path.name} must be a mapping with a 'services' key, not a {type(data).__name__}",
            where=str(path),
            fix="see the compose specification: the top level holds services, volumes, networks",
        )
    return ComposeFile(path, data, tuple(_scalars(node, ())))


def _scalars(node, path: tuple) -> Iterator[ScalarAt]:
    import yaml

    if isinstance(node, yaml.ScalarNode):
        if node.tag == "tag:yaml.org,2002:str":
            quoted = node.style in ("'", '"')
            block = node.style in ("|", ">")
            yield ScalarAt(path, node.value, node.start_mark.line + 1, node.start_mark.column + 1 + quoted, block)
    elif isinstance(node, yaml.SequenceNode):
        for i, child in enumerate(node.value):
            yield from _scalars(child, (*path, i))
    elif isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            yield from _scalars(value, (*path, str(key.value)))
