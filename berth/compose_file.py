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
    value: str  # after YAML unquoting/folding
    raw: str  # the source text of the scalar, quotes and escapes included
    line: int  # 1-based, where `raw` starts
    col: int  # 1-based, where `raw` starts

    def position_of(self, start: int, end: int | None = None) -> tuple[int, int]:
        """file line/col of value[start:end] (e.g. a `${VAR}`), found in the source text.

        Quoting, escapes and folding make value offsets differ from source offsets, so the same
        occurrence of the text is looked up in the raw source instead.
        """
        needle = self.value[start:end if end is not None else start + 1]
        nth = self.value.count(needle, 0, start) if needle else 0
        index = -1
        for _ in range(nth + 1):
            index = self.raw.find(needle, index + 1)
            if index < 0:
                break
        if index < 0:  # the text is written differently in the source (escapes inside it)
            index = 0
        before = self.raw[:index]
        newlines = before.count("\n")
        if newlines:
            return self.line + newlines, index - before.rfind("\n")
        return self.line, self.col + index


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
    return ComposeFile(path, data, tuple(_scalars(node, (), text)))


def _scalars(node, path: tuple, text: str) -> Iterator[ScalarAt]:
    import yaml

    if isinstance(node, yaml.ScalarNode):
        if node.tag == "tag:yaml.org,2002:str":
            start, end = node.start_mark, node.end_mark
            yield ScalarAt(path, node.value, text[start.index:end.index], start.line + 1, start.column + 1)
    elif isinstance(node, yaml.SequenceNode):
        for i, child in enumerate(node.value):
            yield from _scalars(child, (*path, i), text)
    elif isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            yield from _scalars(value, (*path, str(key.value)), text)
