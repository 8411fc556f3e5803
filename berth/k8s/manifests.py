"""Manifests as YAML: written deterministically, read back with the line of every key for findings."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from berth.errors import UsageError

HEADER = "# Rendered by `berth k8s render` from the compose file; edit the compose file or berth.toml, not this.\n"
MARKER = ".berth-k8s"  # lists the files berth wrote into an output directory
MAX_MANIFEST_BYTES = 10 * 1024 * 1024


def _dumper():
    import yaml

    class Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):
        def ignore_aliases(self, data):  # a shared dict is written out twice, never as &anchor/*alias
            return True

    def str_presenter(dumper, data):
        style = "|" if "\n" in data else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)

    Dumper.add_representer(str, str_presenter)
    return Dumper


def dump_docs(docs: list[dict]) -> str:
    """Documents as one YAML stream, keys in the order built (not sorted), no line folding."""
    import yaml

    dumper = _dumper()
    return "".join("---\n" + yaml.dump(d, Dumper=dumper, sort_keys=False, default_flow_style=False,
                                        allow_unicode=True, width=10_000) for d in docs)


@dataclass
class Doc:
    """One manifest read from a file: its data and where each key path starts."""

    data: Any
    file: Path
    line: int  # where the document starts
    lines: dict[tuple, int] = field(default_factory=dict)

    def line_of(self, *path) -> int:
        """The line of the deepest part of `path` that exists (the document start when none)."""
        for n in range(len(path), 0, -1):
            found = self.lines.get(tuple(path[:n]))
            if found:
                return found
        return self.line

    @property
    def kind(self) -> str:
        return str(self.data.get("kind", "")) if isinstance(self.data, dict) else ""

    @property
    def name(self) -> str:
        meta = self.data.get("metadata") if isinstance(self.data, dict) else None
        return str(meta.get("name", "")) if isinstance(meta, dict) else ""

    @property
    def namespace(self) -> str | None:
        meta = self.data.get("metadata") if isinstance(self.data, dict) else None
        ns = meta.get("namespace") if isinstance(meta, dict) else None
        return str(ns) if ns else None

    @property
    def label(self) -> str:
        return f"{self.kind or '?'}/{self.name or '?'}"


def _positions(node, path: tuple, out: dict) -> None:
    import yaml

    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            p = (*path, str(key.value))
            out.setdefault(p, key.start_mark.line + 1)
            _positions(value, p, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, child in enumerate(node.value):
            p = (*path, i)
            out.setdefault(p, child.start_mark.line + 1)
            _positions(child, p, out)


def parse_docs(text: str, file: Path) -> list[Doc]:
    """Every non-empty document of a YAML stream; `kind: List` is expanded into its items."""
    import yaml

    from berth.model.compose.file import refuse_unbounded_graph

    loader_cls = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    loader = loader_cls(text)
    docs: list[Doc] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            refuse_unbounded_graph(node, file)  # before the aliases are expanded by the walks below
            data = loader.construct_document(node)
            if data is None:
                continue
            lines: dict[tuple, int] = {}
            _positions(node, (), lines)
            start = node.start_mark.line + 1
            if isinstance(data, dict) and data.get("kind") == "List" and isinstance(data.get("items"), list):
                for i, item in enumerate(data["items"]):
                    sub = {p[2:]: ln for p, ln in lines.items() if p[:2] == ("items", i)}
                    docs.append(Doc(item, file, lines.get(("items", i), start), sub))
            else:
                docs.append(Doc(data, file, start, lines))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"{file}:{mark.line + 1}:{mark.column + 1}" if mark else str(file)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UsageError(f"{file.name} is not valid YAML: {problem}", where=where,
                         fix="fix the YAML at that position") from None
    finally:
        loader.dispose()
    return docs


def read_manifest_file(path: Path) -> list[Doc]:
    from berth.model.files import read_bytes

    raw = read_bytes(path, limit=MAX_MANIFEST_BYTES, kind="a manifest file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise UsageError(f"{path.name} is not UTF-8 text", where=f"{path}:{line}", fix="save it as UTF-8") from None
    return parse_docs(text, path)


def manifest_paths(paths: list[Path]) -> list[Path]:
    """The .yaml/.yml files named, or found (recursively, sorted) under the directories named."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            found = sorted(q for q in p.rglob("*") if q.suffix in (".yaml", ".yml") and q.is_file())
            if not found:
                raise UsageError(f"{p} holds no .yaml or .yml file", where=str(p),
                                 fix="pass the directory berth k8s render -o wrote, or manifest files")
            out.extend(found)
        elif p.exists():
            out.append(p)
        else:
            raise UsageError(f"{p} does not exist", where=str(p), fix="pass manifest files or directories")
    return out


def write_dir(out_dir: Path, files: dict[str, str]) -> list[Path]:
    """Write `files` (name → text) into out_dir; files an earlier render wrote and this one does not are removed.

    A directory that holds other files and no marker of an earlier render is refused, so a typo in -o
    cannot mix manifests into (or delete from) an unrelated directory.
    """
    out_dir = out_dir.resolve()
    marker = out_dir / MARKER
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"{out_dir} is a file, not a directory", where=str(out_dir), fix="pass a directory to -o")
    previous: list[str] = []
    if out_dir.exists():
        if marker.exists():
            from berth.model.files import read_bytes

            listed = read_bytes(marker, limit=1024 * 1024, kind="a list of rendered files").decode(errors="replace")
            previous = [n for n in listed.split() if n and "/" not in n and n != MARKER]
        elif any(out_dir.iterdir()):
            raise UsageError(f"{out_dir} is not empty and was not written by berth k8s render",
                             where=str(out_dir), fix="pass a new or empty directory to -o")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in files.items():
        path = out_dir / name
        tmp = path.with_name(f".{name}.tmp")
        # 0600 like every file berth writes that describes the app's configuration (a ConfigMap can hold a value
        # that is a secret in all but name)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            os.fchmod(f.fileno(), 0o600)
            f.write(text)
        os.replace(tmp, path)
        written.append(path)
    for name in previous:
        if name not in files and (out_dir / name).is_file():
            (out_dir / name).unlink()
    marker.write_text("".join(f"{n}\n" for n in files))
    return written
