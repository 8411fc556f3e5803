"""The compose file as berth reads it: data plus the file:line of every string, for precise findings."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from berth.errors import UsageError

MAX_COMPOSE_BYTES = 5 * 1024 * 1024
MAX_YAML_DEPTH = 100  # compose files nest ~6 levels; the walkers of `data` are recursive


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


def read_compose_text(path: Path) -> str:
    """The text of a compose file (BOM removed), read through the bounded reader."""
    from berth.model.files import read_bytes

    raw = read_bytes(path, limit=MAX_COMPOSE_BYTES, kind="a compose file",
                     fix="point compose_files at the real compose file")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise UsageError(f"{path.name} is not UTF-8 text", where=f"{path}:{line}", fix="save it as UTF-8") from None


def load_compose_file(path: Path) -> ComposeFile:
    return parse_compose_text(read_compose_text(path), path)


def parse_compose_text(text: str, path: Path) -> ComposeFile:
    """The compose file in `text` (read from, or to be written to, `path`); UsageError located in it."""
    import yaml

    loader_cls = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    loader = loader_cls(text)
    try:
        node = loader.get_single_node()
        if node is not None:
            refuse_unbounded_graph(node, path)  # before anything expands the aliases
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


# --------------------------------------------------------------------------- alias bombs
#
# PyYAML composes an alias as a second reference to the anchored node, so a 500-byte file of nested
# aliases ("billion laughs") is a small graph whose expanded tree has billions of nodes, and every walk
# of the data (the scalars above, the rules, `berth config`) expands it. compose-go (yaml.v3) refuses
# such a document ("document contains excessive aliasing"); this is the same rule, decided on the graph
# before anything walks it: the expanded size of every node is counted once (memoised by node), O(nodes).

_ALIAS_RATIO_RANGE_LOW = 400_000  # yaml.v3's constants (decode.go allowedAliasRatio)
_ALIAS_RATIO_RANGE_HIGH = 4_000_000


def allowed_alias_ratio(decoded: int) -> float:
    """The share of a document's decoded nodes that may come from alias expansion, as yaml.v3 allows it:
    99% up to 400,000 nodes, scaling down to 10% at 4,000,000."""
    if decoded <= _ALIAS_RATIO_RANGE_LOW:
        return 0.99
    if decoded >= _ALIAS_RATIO_RANGE_HIGH:
        return 0.10
    span = _ALIAS_RATIO_RANGE_HIGH - _ALIAS_RATIO_RANGE_LOW
    return 0.99 - 0.89 * (decoded - _ALIAS_RATIO_RANGE_LOW) / span


def excessive_aliasing(decoded: int, from_aliases: int) -> bool:
    """yaml.v3's test: more than 100 aliased and 1000 decoded nodes, and too large a share from aliases."""
    return from_aliases > 100 and decoded > 1000 and from_aliases / decoded > allowed_alias_ratio(decoded)


def refuse_unbounded_graph(root, path: Path) -> None:
    """UsageError (located at the file) when a composed YAML document expands excessively through its
    aliases, contains itself through an alias, or nests deeper than MAX_YAML_DEPTH."""
    import yaml

    size: dict[int, int] = {}  # id(node) -> nodes in its expanded tree (itself included)
    depth: dict[int, int] = {}  # id(node) -> levels of its expanded tree
    on_path: set[int] = set()

    def children(node) -> list:
        if isinstance(node, yaml.MappingNode):
            return [n for pair in node.value for n in pair]
        if isinstance(node, yaml.SequenceNode):
            return list(node.value)
        return []

    # iterative post-order walk: deep documents must not hit Python's recursion limit here
    stack = [(root, children(root), 0)]
    on_path.add(id(root))
    while stack:
        node, kids, i = stack[-1]
        if i < len(kids):
            stack[-1] = (node, kids, i + 1)
            child = kids[i]
            if id(child) in size:
                continue  # already counted: an alias to it adds its size, computed once
            if id(child) in on_path:
                raise UsageError(f"{path.name} has an alias inside the node it refers to, so the document "
                                 "contains itself (docker compose refuses it too)", where=_at(path, child),
                                 fix="refer with *name only to an anchor (&name) that is complete before it")
            if len(stack) >= MAX_YAML_DEPTH:
                raise UsageError(f"{path.name} nests more than {MAX_YAML_DEPTH} levels deep, which no compose file "
                                 "or manifest needs", where=_at(path, child),
                                 fix="flatten the structure at that position")
            on_path.add(id(child))
            stack.append((child, children(child), 0))
            continue
        stack.pop()
        on_path.discard(id(node))
        if isinstance(node, yaml.MappingNode):
            _refuse_duplicate_keys(node, path)
        size[id(node)] = 1 + sum(size[id(k)] for k in kids)
        depth[id(node)] = 1 + max((depth[id(k)] for k in kids), default=0)
        if depth[id(node)] > MAX_YAML_DEPTH:  # deep only through aliases to deep nodes
            raise UsageError(f"{path.name} nests more than {MAX_YAML_DEPTH} levels deep through its aliases, which "
                             "no compose file or manifest needs", where=_at(path, node),
                             fix="flatten the anchored structures")
    decoded = size[id(root)]
    from_aliases = decoded - len(size)  # every node is written once; each further visit is an alias expansion
    if excessive_aliasing(decoded, from_aliases):
        raise UsageError(f"{path.name} contains excessive aliasing: its aliases expand {len(size)} written values "
                         f"into {decoded:,} (a YAML alias bomb, which docker compose and kubectl refuse too)",
                         where=str(path), fix="use fewer nested aliases (*name); write the values out, or use extends/include")


def _refuse_duplicate_keys(node, path: Path) -> None:
    """A key written twice in one mapping: YAML parsers that keep the last value hide the first; compose refuses."""
    seen: dict[str, int] = {}
    for key, _value in node.value:
        if getattr(key, "tag", "") == "tag:yaml.org,2002:merge" or not isinstance(key.value, str):
            continue
        line = key.start_mark.line + 1
        if key.value in seen:
            raise UsageError(f'{path.name}: mapping key "{key.value}" already defined at line {seen[key.value]}',
                             where=f"{path}:{line}:{key.start_mark.column + 1}",
                             fix=f"keep one {key.value}: and merge the two (docker compose refuses the file too)")
        seen[key.value] = line


def _at(path: Path, node) -> str:
    mark = node.start_mark
    return f"{path}:{mark.line + 1}:{mark.column + 1}"
