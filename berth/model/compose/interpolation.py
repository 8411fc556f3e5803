"""Docker Compose variable interpolation, faithful to compose-go's ``template`` package.

This is a pure-Python port of the algorithm used by Docker Compose v2 (compose-go
``template.Substitute``), including its quirks, rather than an idealised reading of
the compose specification.  The behaviour was checked against ``docker compose
config`` (see ``tests/unit/test_interpolation_differential.py``).

How compose-go works, and therefore how this module works:

* A regular expression finds candidate references, scanning left to right::

      \\$(?i:(?P<escaped>\\$)
            |(?P<named>[_a-z][_a-z0-9]*)
            |{(?:(?P<braced>[_a-z][_a-z0-9]*(?::?[-+?](.*))?)}|(?P<invalid>)))

  - ``$$`` is an escaped ``$``.
  - ``$NAME`` is a plain reference; the name is the longest run of name characters.
  - ``$`` followed by anything else (a digit, ``-``, a space, end of text, ...) is
    **not** a reference and is kept literally (no error).
  - ``${`` not followed by ``NAME}`` or ``NAME<op>...}`` is an invalid template
    (``${}``, ``${A``, ``${A B}``, ``${-x}``, ``${A:x}``, ``${1}``, ...).
  - ``(?i)`` uses Unicode simple case folding, so besides ASCII letters the name
    classes also accept U+017F (long s) and U+212A (Kelvin sign), and nothing else.
  - ``.`` does not match ``\\n``: a braced reference never spans a line break.

* With an operator, ``(.*)`` is greedy, so the regex match runs to the *last* ``}``
  on the line.  compose-go then cuts the match at the first "balanced" closing
  brace, counting **every** ``{`` as an opener (not just ``${``) and skipping the
  character that follows each ``{``.  The part before the cut is the reference,
  the part after it is interpolated as ordinary text.  Hence
  ``${A:-x{}y}`` -> ``x{}y`` (the ``}`` right after a ``{`` is skipped), and
  ``${A-x}}`` -> ``x}``.

* The operator is the one directly after the name (compose-go picks the operator
  that occurs first in the text, which is always that one), and the argument is
  everything after it up to the closing brace, so ``${A:-x:?y}`` has the default
  ``x:?y``.  The argument is interpolated recursively as a standalone string.

* The argument is interpolated **eagerly**, whether or not it is needed: errors
  inside it (an invalid template, an unmet ``:?``) are raised even when the
  variable is set, e.g. ``${SET:-${UNSET:?boom}}`` fails.

* Errors are reported in processing order (left to right, an argument before the
  text after its reference); the first one wins.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "InterpolationError",
    "MissingRequiredVariable",
    "VarRef",
    "find_references",
    "interpolate",
]

# Go's (?i)[_a-z] folds to A-Z plus U+017F and U+212A; Python's re.IGNORECASE would
# additionally accept U+0130 and U+0131, so spell the classes out instead.
_NAME_START = "_a-zA-Z\u017f\u212a"
_NAME_CHAR = "_a-zA-Z0-9\u017f\u212a"
_NAME = f"[{_NAME_START}][{_NAME_CHAR}]*"

_PATTERN = re.compile(
    r"\$(?:"
    r"(?P<escaped>\$)"
    rf"|(?P<named>{_NAME})"
    rf"|\{{(?:(?P<braced>{_NAME}(?::?[-+?](?:.*))?)\}}|(?P<invalid>))"
    r")"
)
_NAME_RE = re.compile(_NAME)

_OPERATORS = (":-", "-", ":?", "?", ":+", "+")


class InterpolationError(ValueError):
    """An invalid interpolation template (compose: "invalid interpolation format")."""

    def __init__(self, text: str, offset: int, reason: str) -> None:
        self.text = text
        self.offset = offset
        self.reason = reason
        super().__init__(
            f"invalid interpolation format at offset {offset} in {text!r}: {reason}"
            " (you may need to escape any $ with another $)"
        )


class MissingRequiredVariable(ValueError):
    """A ``${VAR:?msg}`` / ``${VAR?msg}`` reference whose condition is not met.

    ``message`` is the user's message after interpolation (as compose prints it);
    it may be empty.
    """

    def __init__(self, name: str, message: str) -> None:
        self.name = name
        self.message = message
        text = f"required variable {name} is missing a value"
        if message:
            text += f": {message}"
        super().__init__(text)


@dataclass(frozen=True)
class VarRef:
    name: str
    operator: str | None  # None, ":-", "-", ":?", "?", ":+", "+"
    argument: str | None  # raw text after the operator (unexpanded); None without operator
    start: int  # index of the '$' in the text
    end: int  # index just past the reference

    @property
    def has_default(self) -> bool:
        """True for ":-"/"-" (fallback value) and ":+"/"+" (never fail when unset)."""
        return self.operator in (":-", "-", ":+", "+")

    @property
    def required(self) -> bool:
        return self.operator in (":?", "?")


def _closing_brace(text: str, start: int, end: int) -> int:
    """compose-go's getFirstBraceClosingIndex on text[start:end]; -1 when unbalanced.

    Every '{' opens a level and the character right after it is skipped.
    """
    depth = 0
    i = start
    while i < end:
        c = text[i]
        if c == "}":
            depth -= 1
            if depth == 0:
                return i
        if c == "{":
            depth += 1
            i += 1
        i += 1
    return -1


def _invalid_reason(text: str, i: int, end: int) -> str:
    """Explain why the "${" just before text[i] does not start a valid reference."""
    if i >= end:
        return "'${' at end of text"
    if text[i] == "}":
        return "empty variable name in '${}'"
    name = _NAME_RE.match(text, i, end)
    if name is None:
        return f"variable name must start with a letter or '_', not {text[i]!r}"
    j = name.end()
    if j >= end or text[j] == "\n":
        return f"missing '}}' after '${{{name.group(0)}'"
    two = text[j : min(j + 2, end)]
    op = two if two in (":-", ":?", ":+") else text[j]
    if op in _OPERATORS:
        eol = text.find("\n", j, end)
        where = "before the end of the line" if eol >= 0 else "before the end of the text"
        return f"missing '}}' for '${{{name.group(0)}{op}' {where}"
    return (
        f"unexpected {text[j]!r} after variable name {name.group(0)!r} "
        "(expected '}' or one of :- - :? ? :+ +)"
    )


def _scan(
    text: str,
    pos: int,
    end: int,
    lookup: Mapping[str, str] | None,
    refs: list[VarRef],
) -> str:
    """Interpolate text[pos:end] as a standalone template.

    With ``lookup`` None only references are collected (no value checks).
    """
    out: list[str] = []
    evaluate = lookup is not None
    env: Mapping[str, str] = lookup if lookup is not None else {}
    while True:
        m = _PATTERN.search(text, pos, end)
        if m is None:
            out.append(text[pos:end])
            return "".join(out)
        out.append(text[pos : m.start()])
        start = m.start()

        if m.group("escaped") is not None:
            out.append("$")
            pos = m.end()
            continue

        named = m.group("named")
        if named is not None:
            refs.append(VarRef(named, None, None, start, m.end()))
            if evaluate:
                out.append(env.get(named, ""))
            pos = m.end()
            continue

        braced = m.group("braced")
        if braced is None:
            raise InterpolationError(text, start, _invalid_reason(text, start + 2, end))

        name = _NAME_RE.match(braced).group(0)  # type: ignore[union-attr]  # braced starts with a name
        op_pos = start + 2 + len(name)
        if len(name) == len(braced):  # ${NAME}
            refs.append(VarRef(name, None, None, start, m.end()))
            if evaluate:
                out.append(env.get(name, ""))
            pos = m.end()
            continue

        op = text[op_pos : op_pos + 2] if text[op_pos] == ":" else text[op_pos]
        close = _closing_brace(text, start, m.end())
        ref_end = close + 1 if close >= 0 else m.end()
        arg_start, arg_end = op_pos + len(op), ref_end - 1
        refs.append(VarRef(name, op, text[arg_start:arg_end], start, ref_end))

        # compose-go interpolates the argument eagerly, before looking at the variable.
        arg = _scan(text, arg_start, arg_end, lookup, refs)
        if evaluate:
            is_set = name in env
            value = env.get(name, "")
            if op == ":-":
                out.append(value if value != "" else arg)
            elif op == "-":
                out.append(value if is_set else arg)
            elif op == ":+":
                out.append(arg if value != "" else value)
            elif op == "+":
                out.append(arg if is_set else value)
            elif op == ":?":
                if value == "":
                    raise MissingRequiredVariable(name, arg)
                out.append(value)
            else:  # "?"
                if not is_set:
                    raise MissingRequiredVariable(name, arg)
                out.append(value)
        # Text between the cut and the end of the regex match is ordinary text;
        # scanning on from the cut is equivalent to compose-go's recursion on it.
        pos = ref_end


def find_references(text: str) -> list[VarRef]:
    """Every variable reference in ``text`` (nested ones included), in order of appearance.

    Raises InterpolationError for an invalid template.
    """
    refs: list[VarRef] = []
    _scan(text, 0, len(text), None, refs)
    return refs


def interpolate(text: str, lookup: Mapping[str, str]) -> str:
    """Interpolate ``text`` like Docker Compose does.

    ``lookup`` holds the set variables (a key mapped to "" is set but empty).
    Raises InterpolationError or MissingRequiredVariable (the first error compose
    would report).
    """
    return _scan(text, 0, len(text), lookup, [])
