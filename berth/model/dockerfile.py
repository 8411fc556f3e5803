"""A small Dockerfile parser: instructions with their lines, the way BuildKit reads them.

What it follows from BuildKit's frontend (``frontend/dockerfile/parser`` and ``instructions``):

* **Parser directives** (``# syntax=...``, ``# escape=...``, ``# check=...``) count only at the top of
  the file, before any instruction, comment or blank line; an unknown one ends the directive block
  and is a comment. ``escape`` must be ``\\`` or a backtick; a directive may not repeat.
* **Comments** are lines whose first non-blank character is ``#``; there are no trailing comments.
  Inside a continued instruction, comment lines and blank lines are skipped.
* **Line continuation**: the escape character as the last non-blank character of a line joins the
  next line (the escape character and the line break are removed, nothing is inserted).
* **JSON (exec) form**: RUN, CMD, ENTRYPOINT, SHELL, ADD, COPY, VOLUME and HEALTHCHECK CMD arguments
  that parse as a JSON array are the exec form; a JSON array holding anything but strings is an
  error; anything else (``[ "a" `` with a typo, say) is the shell form.
* **Heredocs** (``RUN <<EOF`` ... ``EOF``) on RUN, COPY and ADD: the body lines belong to the
  instruction, and an unterminated heredoc is an error.
* **Stages**: ``FROM [--platform=...] IMAGE [AS name]``; only ARG may come before the first FROM.

Keywords are case-insensitive and reported upper-case. Errors raise `DockerfileError` with the line
they are on, so a malformed Dockerfile becomes one located finding, never a traceback.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

MAX_DOCKERFILE_BYTES = 1024 * 1024

INSTRUCTIONS = frozenset({
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL",
    "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
})
_JSON_FORM = frozenset({"RUN", "CMD", "ENTRYPOINT", "SHELL", "ADD", "COPY", "VOLUME"})
_HEREDOC_FORM = frozenset({"RUN", "COPY", "ADD"})
_DIRECTIVES = frozenset({"syntax", "escape", "check"})

_DIRECTIVE_RE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_WHITESPACE_RE = re.compile(r"[\t\v\f\r ]+")
_HEREDOC_RE = re.compile(r"^(\d*)<<(-?)([^<]*)$")
_STAGE_NAME_RE = re.compile(r"^[a-z][a-z0-9-_.]*$")


class DockerfileError(ValueError):
    """The Dockerfile cannot be read or parsed; `line` is 1-based (None: the file as a whole)."""

    def __init__(self, message: str, line: int | None = None, path: Path | None = None,
                 fix: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.path = path
        self.fix = fix  # None: the rule's own fix (fix the line shown)

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Heredoc:
    name: str  # the terminator word
    content: str  # the body, line breaks included, terminator excluded
    chomp: bool  # <<- : leading tabs are removed
    expand: bool  # unquoted word: variables in the body are expanded


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper-case: FROM, RUN, ...
    value: str  # the arguments: continuation lines joined, flags removed, stripped
    line: int  # 1-based line of the keyword
    end_line: int  # last line that belongs to it (continuations and heredoc bodies included)
    flags: tuple[str, ...] = ()  # ("--from=build", "--chown=app"), as written
    exec_form: tuple[str, ...] | None = None  # the JSON array, when the exec form is used
    heredocs: tuple[Heredoc, ...] = ()
    child: Instruction | None = None  # the instruction an ONBUILD wraps

    @property
    def is_exec_form(self) -> bool:
        return self.exec_form is not None

    def flag(self, name: str) -> str | None:
        """Value of `--name=value` ('' for a bare `--name`), or None when the flag is absent."""
        for f in self.flags:
            key, eq, value = f[2:].partition("=")
            if key.lower() == name.lower():
                return value if eq else ""
        return None

    def words(self, escape: str = "\\") -> list[str]:
        """The arguments split into words with quotes and escapes removed (ENV/LABEL/ARG/FROM style)."""
        return [unquote(w, escape) for w in parse_words(self.value, escape)]

    @property
    def args(self) -> list[str]:
        """Exec-form arguments, or the whitespace-separated arguments of the shell form."""
        if self.exec_form is not None and self.keyword != "HEALTHCHECK":
            return list(self.exec_form)
        return [w for w in _WHITESPACE_RE.split(self.value) if w]


@dataclass(frozen=True)
class Stage:
    index: int
    name: str | None  # the AS name, lower-cased as BuildKit compares them
    base: str  # the image (or earlier stage) it starts from, as written
    from_: Instruction
    instructions: tuple[Instruction, ...]  # after the FROM, up to the next FROM

    @property
    def label(self) -> str:
        return self.name or f"#{self.index}"


@dataclass(frozen=True)
class Dockerfile:
    path: Path | None
    instructions: tuple[Instruction, ...]
    directives: dict[str, str] = field(default_factory=dict)
    escape: str = "\\"

    @property
    def meta_args(self) -> tuple[Instruction, ...]:
        """ARG instructions before the first FROM (they may be used in FROM lines)."""
        out = []
        for ins in self.instructions:
            if ins.keyword == "FROM":
                break
            out.append(ins)
        return tuple(i for i in out if i.keyword == "ARG")

    def meta_arg_defaults(self) -> dict[str, str | None]:
        values: dict[str, str | None] = {}
        for ins in self.meta_args:
            for name, value in arg_pairs(ins, self.escape):
                values[name] = value
        return values

    @property
    def stages(self) -> tuple[Stage, ...]:
        stages: list[Stage] = []
        current: Instruction | None = None
        body: list[Instruction] = []
        for ins in self.instructions:
            if ins.keyword == "FROM":
                if current is not None:
                    stages.append(_stage(len(stages), current, body))
                current, body = ins, []
            elif current is not None:
                body.append(ins)
        if current is not None:
            stages.append(_stage(len(stages), current, body))
        return tuple(stages)

    def stage(self, target: str | None = None) -> Stage | None:
        """The stage `target` names (case-insensitive), or the last stage; None if there is none."""
        stages = self.stages
        if not stages:
            return None
        if target:
            for s in stages:
                if s.name == target.lower():
                    return s
            return None
        return stages[-1]

    def ancestry(self, stage: Stage) -> list[Stage]:
        """The stage and every stage of this file it is built FROM, nearest first.

        Their layers (and their USER, HEALTHCHECK, CMD...) are what the image of `stage` inherits;
        stages only used through `COPY --from` are not part of it.
        """
        by_name = {s.name: s for s in self.stages if s.name}
        chain, seen = [stage], {stage.index}
        while True:
            parent = by_name.get(chain[-1].base.lower())
            if parent is None or parent.index in seen or parent.index >= chain[-1].index:
                return chain
            chain.append(parent)
            seen.add(parent.index)


def _stage(index: int, from_: Instruction, body: list[Instruction]) -> Stage:
    words = from_.args
    name = words[2].lower() if len(words) == 3 else None
    return Stage(index, name, words[0] if words else "", from_, tuple(body))


# --------------------------------------------------------------------------- words and quotes


def parse_words(rest: str, escape: str = "\\") -> list[str]:
    """BuildKit's parseWords: split on blanks outside quotes; quotes and escapes stay in the words."""
    words: list[str] = []
    word: list[str] = []
    in_word = in_quote = False
    quote = ""
    blank_ok = False
    i, n = 0, len(rest)
    while i < n:
        ch = rest[i]
        if not in_word and not in_quote:
            if ch.isspace():
                i += 1
                continue
            in_word = True
        if in_quote:
            if ch == quote:
                in_quote, in_word = False, True
            if ch == escape and quote != "'":
                if i + 1 == n:
                    in_quote, in_word = False, True
                    i += 1
                    continue
                word.append(ch)
                i += 1
                ch = rest[i]
            word.append(ch)
            i += 1
            continue
        # in a word
        if ch.isspace():
            if blank_ok or word:
                words.append("".join(word))
            word, blank_ok, in_word = [], False, False
            i += 1
            continue
        if ch in "'\"":
            quote, blank_ok, in_quote, in_word = ch, True, True, False
        if ch == escape:
            if i + 1 == n:
                i += 1
                continue
            word.append(ch)
            i += 1
            ch = rest[i]
        word.append(ch)
        i += 1
    if (in_word or in_quote) and (blank_ok or word):
        words.append("".join(word))
    return words


def unquote(word: str, escape: str = "\\") -> str:
    """Remove quotes and escapes from one word as the shell-lexer does (variables are left alone)."""
    out: list[str] = []
    i, n = 0, len(word)
    while i < n:
        ch = word[i]
        if ch == "'":
            end = word.find("'", i + 1)
            end = n if end < 0 else end
            out.append(word[i + 1:end])
            i = end + 1
        elif ch == '"':
            i += 1
            while i < n and word[i] != '"':
                if word[i] == escape and i + 1 < n and word[i + 1] in ('"', escape, "$"):
                    i += 1
                out.append(word[i])
                i += 1
            i += 1
        elif ch == escape and i + 1 < n:
            out.append(word[i + 1])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def key_value_pairs(ins: Instruction, escape: str = "\\") -> list[tuple[str, str]]:
    """ENV / LABEL as (key, value) pairs, quotes removed; both `K=V ...` and the old `K V` forms."""
    words = parse_words(ins.value, escape)
    if not words:
        return []
    if "=" not in words[0]:
        parts = _WHITESPACE_RE.split(ins.value, maxsplit=1)
        return [(parts[0], unquote(parts[1], escape) if len(parts) > 1 else "")]
    return [(k, unquote(v, escape)) for k, _, v in (w.partition("=") for w in words)]


def arg_pairs(ins: Instruction, escape: str = "\\") -> list[tuple[str, str | None]]:
    """ARG as (name, default or None) pairs."""
    out: list[tuple[str, str | None]] = []
    for w in parse_words(ins.value, escape):
        name, eq, value = w.partition("=")
        out.append((name, unquote(value, escape) if eq else None))
    return out


# --------------------------------------------------------------------------- parsing


def parse_file(path: Path) -> Dockerfile:
    from berth.errors import UsageError
    from berth.model.files import read_bytes

    try:
        raw = read_bytes(path, limit=MAX_DOCKERFILE_BYTES, kind="a Dockerfile")
    except UsageError as exc:  # cannot be opened, not a regular file (a FIFO, /dev/zero), too big
        raise DockerfileError(exc.what, path=path, fix=exc.fix) from None
    if b"\x00" in raw:
        raise DockerfileError(f"{path.name} contains NUL bytes; it is not a text file", path=path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DockerfileError(f"{path.name} is not UTF-8 text", line, path) from None
    try:
        return parse(text, path)
    except DockerfileError as exc:
        exc.path = path
        raise


def parse(text: str, path: Path | None = None) -> Dockerfile:
    """Parse Dockerfile text. Raises DockerfileError (with a line) on what BuildKit would reject."""
    text = text.removeprefix("\ufeff")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    escape = "\\"
    directives: dict[str, str] = {}
    directives_done = False
    instructions: list[Instruction] = []
    i, n = 0, len(lines)

    def continuation(s: str) -> tuple[str, bool]:
        """(text without a trailing escape, True when the instruction ends on this line)."""
        m = re.search(r"(?:^|(?<=[^" + re.escape(escape) + r"]))" + re.escape(escape) + r"[ \t]*$", s)
        if m:
            return s[: m.start()], False
        return s, True

    while i < n:
        token = lines[i].rstrip("\r\n").lstrip()
        i += 1
        start = i
        if not directives_done:
            m = _DIRECTIVE_RE.match(token)
            name = m.group(1).lower() if m else None
            if name in _DIRECTIVES:
                if name in directives:
                    raise DockerfileError(f"only one {name} parser directive can be used", start, path)
                value = m.group(2)
                if name == "escape":
                    if value not in ("\\", "`"):
                        raise DockerfileError(f"invalid escape token {value!r}: it must be \\ or `", start, path)
                    escape = value
                directives[name] = value
                continue
            directives_done = True
        if token.startswith("#"):
            continue
        logical, done = continuation(token)
        if done and logical == "":
            continue
        while not done and i < n:
            raw = lines[i].rstrip("\r\n")
            i += 1
            stripped = raw.lstrip()
            if stripped.startswith("#") or stripped == "":
                continue  # comment lines and blank lines inside a continuation are skipped
            part, done = continuation(raw)
            logical += part
        ins, i = _instruction(logical, start, i, lines, escape, path)
        instructions.append(ins)

    if not instructions:
        raise DockerfileError("the Dockerfile has no instructions", max(n, 1), path)
    seen_from = False
    names: dict[str, int] = {}
    for ins in instructions:
        if ins.keyword == "FROM":
            seen_from = True
            words = ins.args
            if len(words) == 3:
                name = words[2].lower()
                if name in names:
                    raise DockerfileError(f"duplicate stage name {words[2]!r} (first used on line {names[name]})",
                                          ins.line, path)
                names[name] = ins.line
        elif not seen_from and ins.keyword != "ARG":
            raise DockerfileError(f"{ins.keyword} before the first FROM: no build stage in current context",
                                  ins.line, path)
    if not seen_from:
        raise DockerfileError("the Dockerfile has no FROM instruction", instructions[0].line, path)
    return Dockerfile(path, tuple(instructions), directives, escape)


def _split_flags(rest: str) -> tuple[list[str], str]:
    """Leading `--flag[=value]` words (BuildKit's extractBuilderFlags); returns (flags, remaining text)."""
    flags: list[str] = []
    pos, n = 0, len(rest)
    while True:
        while pos < n and rest[pos].isspace():
            pos += 1
        if not rest.startswith("--", pos):
            return flags, rest[pos:]
        word: list[str] = []
        quote = ""
        while pos < n and (quote or not rest[pos].isspace()):
            ch = rest[pos]
            if quote:
                if ch == quote:
                    quote = ""
                elif ch == "\\" and pos + 1 < n:
                    pos += 1
                    word.append(rest[pos])
                else:
                    word.append(ch)
            elif ch in "'\"":
                quote = ch
            elif ch == "\\" and pos + 1 < n:
                pos += 1
                word.append(rest[pos])
            else:
                word.append(ch)
            pos += 1
        text = "".join(word)
        if text == "--":
            return flags, rest[pos:].lstrip()
        flags.append(text)


def _json_array(rest: str, keyword: str, line: int, path: Path | None) -> tuple[str, ...] | None:
    rest = rest.lstrip()
    if not rest.startswith("["):
        return None
    try:
        value = json.loads(rest)
    except ValueError:
        return None  # not JSON: the shell form
    if not isinstance(value, list):
        return None
    if not all(isinstance(v, str) for v in value):
        raise DockerfileError(f"{keyword}: when using JSON array syntax, arrays must be comprised of strings only",
                              line, path)
    return tuple(value)


def _heredoc_words(value: str) -> list[tuple[str, bool, bool]]:
    """(name, chomp, expand) of each heredoc word (`<<EOF`, `<<-'EOF'`, `3<<"X"`) in a line."""
    out = []
    for word in parse_words(value):
        m = _HEREDOC_RE.match(word)
        if not m or not m.group(3):
            continue
        raw_name = m.group(3)
        name = unquote(raw_name)
        if not name or any(c.isspace() for c in name):
            continue
        out.append((name, m.group(2) == "-", name == raw_name))
    return out


def _instruction(logical: str, start: int, i: int, lines: list[str], escape: str,
                 path: Path | None) -> tuple[Instruction, int]:
    """Build one instruction from its logical line; reads heredoc bodies (advancing i)."""
    parts = _WHITESPACE_RE.split(logical.strip(), maxsplit=1)
    word = parts[0]
    keyword = word.upper()
    rest = parts[1] if len(parts) > 1 else ""
    if keyword not in INSTRUCTIONS:
        raise DockerfileError(f"unknown instruction: {word}", start, path)
    flags, rest = _split_flags(rest)
    rest = rest.strip()
    child = None
    exec_form = None
    if keyword == "ONBUILD":
        if not rest:
            raise DockerfileError("ONBUILD requires at least one argument", start, path)
        child, i = _instruction(rest, start, i, lines, escape, path)
        if child.keyword in ("ONBUILD", "FROM", "MAINTAINER"):
            raise DockerfileError(f"{child.keyword} isn't allowed as an ONBUILD trigger", start, path)
    elif keyword in _JSON_FORM:
        exec_form = _json_array(rest, keyword, start, path)
    elif keyword == "HEALTHCHECK":
        kind, cmd = (_WHITESPACE_RE.split(rest, maxsplit=1) + [""])[:2]
        if kind.upper() == "CMD":
            exec_form = _json_array(cmd, keyword, start, path)
    heredocs: list[Heredoc] = []
    if keyword in _HEREDOC_FORM and exec_form is None:
        for name, chomp, expand in _heredoc_words(rest):
            body: list[str] = []
            while True:
                if i >= len(lines):
                    raise DockerfileError(f"unterminated heredoc <<{name} (no line with just {name})", start, path)
                raw = lines[i]
                i += 1
                candidate = raw.rstrip("\r\n")
                if chomp:
                    candidate = candidate.lstrip("\t")
                if candidate == name:
                    break
                body.append(raw + "\n")
            heredocs.append(Heredoc(name, "".join(body), chomp, expand))
    ins = Instruction(keyword, rest, start, i, tuple(flags), exec_form, tuple(heredocs), child)
    _validate(ins, escape, path)
    return ins, i


def _validate(ins: Instruction, escape: str, path: Path | None) -> None:
    """The argument checks of BuildKit's instructions.Parse that a build would fail on."""
    kw, line = ins.keyword, ins.line

    def fail(message: str):
        raise DockerfileError(message, line, path)

    words = ins.args
    if kw == "FROM":
        if len(words) == 3 and words[1].lower() == "as":
            if not _STAGE_NAME_RE.match(words[2].lower()):
                fail(f"invalid name for build stage {words[2]!r}: it must start with a letter and contain "
                     "only letters, digits, '-', '_' and '.'")
        elif len(words) != 1:
            fail("FROM requires either one argument (the image) or three (IMAGE AS name)")
    elif kw in ("ENV", "LABEL"):
        pieces = parse_words(ins.value, escape)
        if not pieces:
            fail(f"{kw} requires at least one argument")
        if "=" not in pieces[0]:
            if len(_WHITESPACE_RE.split(ins.value, maxsplit=1)) < 2:
                fail(f"{kw} must have two arguments (NAME value) or the form NAME=value")
        else:
            for p in pieces:
                if "=" not in p:
                    fail(f"{kw}: can't find = in {p!r}; it must be of the form NAME=value")
                if p.startswith("="):
                    fail(f"{kw} names can not be blank")
    elif kw == "ARG":
        if not ins.value:
            fail("ARG requires at least one argument")
    elif kw in ("ADD", "COPY"):
        if len(words) < 2:
            fail(f"{kw} requires at least two arguments (source and destination)")
    elif kw in ("USER", "WORKDIR", "STOPSIGNAL", "MAINTAINER"):
        if not ins.value:
            fail(f"{kw} requires exactly one argument")
    elif kw in ("EXPOSE", "VOLUME"):
        if not words:
            fail(f"{kw} requires at least one argument")
    elif kw == "SHELL":
        if ins.exec_form is None:
            fail("SHELL requires the arguments to be in JSON form")
    elif kw == "HEALTHCHECK":
        raw = [w for w in _WHITESPACE_RE.split(ins.value) if w]
        if not raw:
            fail("HEALTHCHECK requires at least one argument")
        kind = raw[0].upper()
        if kind == "NONE":
            if len(raw) > 1:
                fail("HEALTHCHECK NONE takes no arguments")
        elif kind != "CMD":
            fail(f"unknown type {raw[0]!r} in HEALTHCHECK (try CMD)")
        elif len(raw) < 2 or ins.exec_form == ():
            fail("missing command after HEALTHCHECK CMD")


def healthcheck_test(ins: Instruction) -> tuple[str, ...]:
    """A HEALTHCHECK instruction as compose writes `test`: ("NONE",), ("CMD", ...), ("CMD-SHELL", "...")."""
    kind, cmd = (_WHITESPACE_RE.split(ins.value, maxsplit=1) + [""])[:2]
    if kind.upper() == "NONE":
        return ("NONE",)
    if ins.exec_form is not None:
        return ("CMD", *ins.exec_form)
    return ("CMD-SHELL", cmd.strip())
