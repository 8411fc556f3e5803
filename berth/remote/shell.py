"""Small combinators for building POSIX shell text from argv lists. Quoting happens only here."""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Sequence


def quote(word: str) -> str:
    return shlex.quote(str(word))


def join(argv: Sequence[str]) -> str:
    """argv → one shell command line, every word quoted."""
    return " ".join(quote(w) for w in argv)


def case_patterns(words: Iterable[str]) -> str:
    """Words as the pattern list of one `case` branch (`'a'|'b'`), each matched literally.

    Quoted words inside `" … "` would keep their single quotes and expand `$(…)`: a `case` pattern
    list is the one place a list of words can be compared without that. No words: a pattern that
    matches only the empty string.
    """
    return "|".join(quote(w) for w in words) or "''"


def chain(*commands: str) -> str:
    """Run commands in order, stopping at the first failure."""
    return " && ".join(c for c in commands if c)


def script(lines: Iterable[str]) -> str:
    """A multi-line script run by the remote login shell; `set -e` stops it at the first error."""
    return "\n".join(["set -e", *lines]) + "\n"
