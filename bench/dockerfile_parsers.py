"""Compare berth's Dockerfile parser with BuildKit's own, over every Dockerfile under the given folders.

    python bench/dockerfile_parsers.py DIR [DIR ...] [--show N]

The reference is the `dockerfile` package from PyPI (`pip install dockerfile==3.4.0`), which wraps
BuildKit's Go parser (`frontend/dockerfile/parser`, BuildKit v0.12.5). For each file both parse it and
the script compares, instruction by instruction: keyword, ONBUILD trigger, exec (JSON) form, first and
last line, flags, arguments and heredoc bodies. A file one rejects and the other reads is a difference
too, except where berth rejects what BuildKit's *instructions* layer rejects (an unknown instruction,
FROM with two words): the wrapped parser is only the layer below, and a build fails on those either way.

It prints one line per file that differs (up to --show) and a summary with the time each parser took.
docs/CHECK.md ("Dockerfiles") says what this comparison decided.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from berth.model.dockerfile import DockerfileError, parse, parse_words

_WS = re.compile(r"[\t\v\f\r ]+")
_NAMES = re.compile(r"(^|[.-])(docker|container)file([.-]|$)", re.I)
# What BuildKit's instructions layer (not the wrapped parser) refuses; berth's parser refuses it too.
_INSTRUCTION_LAYER = ("unknown instruction", "requires", "must have", "can't find =", "names can not be blank",
                      "isn't allowed as an ONBUILD", "before the first FROM", "has no FROM", "duplicate stage",
                      "invalid name for build stage", "takes no arguments", "unknown type", "missing command")


def dockerfiles(roots: list[Path]) -> list[Path]:
    found = []
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.is_file() and (_NAMES.search(path.name) or path.parent.name == "testfiles" or
                                   path.parent.parent.name == "testfiles" and path.name == "Dockerfile"):
                if path.name in ("result", "result.json") or path.suffix in (".md", ".go", ".py", ".json"):
                    continue
                found.append(path)
    return found


def berth_value(ins, escape: str) -> tuple[str, ...]:
    """berth's arguments in the shape the Go parser's node chain has them."""
    kw = ins.keyword
    if kw == "HEALTHCHECK":
        kind, _, cmd = ins.value.partition(" ")
        if kind.upper() == "NONE":
            return (kind,)
        return (kind, *ins.exec_form) if ins.exec_form is not None else (kind, cmd.strip())
    if ins.exec_form is not None:
        return ins.exec_form
    if kw in ("ENV", "LABEL"):
        words = parse_words(ins.value, escape)
        if words and "=" not in words[0]:
            return tuple(_WS.split(ins.value, maxsplit=1))
        return tuple(part for w in words for part in w.partition("=")[::2])
    if kw == "ARG":
        return tuple(parse_words(ins.value, escape))
    if kw in ("RUN", "CMD", "ENTRYPOINT", "MAINTAINER", "SHELL", "USER", "WORKDIR", "STOPSIGNAL"):
        return (ins.value,)
    return tuple(w for w in _WS.split(ins.value) if w)


def berth_rows(text: str) -> list[tuple]:
    df = parse(text)
    rows = []
    for ins in df.instructions:
        shown = ins.child or ins
        rows.append((ins.keyword, ins.child.keyword if ins.child else None, shown.exec_form is not None,
                     ins.line, ins.end_line, tuple(ins.flags),  # the wrapper drops an ONBUILD trigger's flags
                     berth_value(shown, df.escape), tuple((h.name, h.content) for h in shown.heredocs)))
    return rows


def buildkit_rows(text: str) -> list[tuple]:
    import dockerfile

    return [(c.cmd.upper(), c.sub_cmd.upper() if c.sub_cmd else None, c.json, c.start_line, c.end_line,
             tuple(c.flags), tuple(c.value), tuple((h.name, h.content) for h in c.heredocs))
            for c in dockerfile.parse_string(text)]


FIELDS = ("keyword", "trigger", "exec form", "first line", "last line", "flags", "arguments", "heredocs")


def first_difference(ours: list[tuple], theirs: list[tuple]) -> str | None:
    for a, b in zip(ours, theirs):
        for name, x, y in zip(FIELDS, a, b):
            if x != y:
                return f"line {a[3]} {a[0]}: {name} berth={x!r} buildkit={y!r}"
    if len(ours) != len(theirs):
        return f"berth reads {len(ours)} instructions, buildkit {len(theirs)}"
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dirs", nargs="+", type=Path)
    ap.add_argument("--show", type=int, default=20)
    args = ap.parse_args()
    try:
        import dockerfile
    except ImportError:
        print("the reference parser is missing: pip install dockerfile==3.4.0", file=sys.stderr)
        return 2
    files = dockerfiles(args.dirs)
    counts = {"same": 0, "differ": 0, "both reject": 0, "berth rejects (instructions layer)": 0,
              "berth rejects, buildkit reads": 0, "buildkit rejects, berth reads": 0, "not text": 0}
    shown = 0
    t_berth = t_buildkit = 0.0
    for path in files:
        try:
            text = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            counts["not text"] += 1
            continue
        t0 = time.perf_counter()
        try:
            ours, our_error = berth_rows(text), None
        except DockerfileError as exc:
            ours, our_error = None, exc
        t1 = time.perf_counter()
        try:
            theirs, their_error = buildkit_rows(text), None
        except dockerfile.GoParseError as exc:
            theirs, their_error = None, exc
        t2 = time.perf_counter()
        t_berth += t1 - t0
        t_buildkit += t2 - t1
        if our_error and their_error:
            kind, detail = "both reject", None
        elif our_error:
            layer = any(s in our_error.message for s in _INSTRUCTION_LAYER)
            kind = "berth rejects (instructions layer)" if layer else "berth rejects, buildkit reads"
            detail = f"berth: line {our_error.line}: {our_error.message}"
        elif their_error:
            kind, detail = "buildkit rejects, berth reads", f"buildkit: {their_error}"
        else:
            detail = first_difference(ours, theirs)
            kind = "differ" if detail else "same"
        counts[kind] += 1
        if detail and kind != "berth rejects (instructions layer)" and shown < args.show:
            shown += 1
            print(f"{kind:32} {path}: {detail}")
    total = sum(counts.values())
    print(f"\n{total} Dockerfiles: " + ", ".join(f"{v} {k}" for k, v in counts.items() if v))
    print(f"parse time: berth {t_berth * 1000:.1f} ms, buildkit (dockerfile package) {t_buildkit * 1000:.1f} ms")
    bad = counts["differ"] + counts["berth rejects, buildkit reads"] + counts["buildkit rejects, berth reads"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
