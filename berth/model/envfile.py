"""Reading `.env`-style files the way Docker Compose v2 reads them, with where each key came from.

berth never rewrites an env file: it ships `.env.docker` byte for byte and compose reads it on the
server. So this module parses exactly as compose does (compose-go's `dotenv` package, checked
against `docker compose config` 2.26.1 by tests/unit/test_envfile.py), and where compose would refuse
the file it records the line in `bad_lines` / `errors` instead of guessing. docs/ENV_FILES.md lists
the syntax and every difference from python-dotenv, which berth used before.

In short:
  * `KEY=value`, `KEY = value`, `export KEY=value` (compose-go's undocumented `KEY: value` is refused);
  * unquoted values run to the end of the line; ` #` (a space, then `#`) starts a comment; the
    value is trimmed; `$VAR`, `${VAR}`, `${VAR:-default}`... are interpolated;
  * 'single quotes' are literal (only \\' is an escape), may span lines, no interpolation;
  * "double quotes" may span lines, know \\n \\t \\r \\\\ \\" \\$ ... escapes, and are interpolated;
  * a bare `KEY` (no `=`) takes its value from the environment of the process running compose;
  * interpolation sees only the keys defined *above* in the same file (berth assumes the shell that
    runs compose on the server has none of them set).

`EnvEntry.value` is the value compose ends up with (unquoted, unescaped, interpolated);
`EnvEntry.raw_value` is the text as written, for rules that look at the syntax.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from berth.errors import UsageError

# compose-go's isSpace: whitespace that is not a line break (\r counts as a space, not a newline)
SPACE = "\t\v\f\r \x85\xa0"
# characters a key may hold besides letters and digits (compose-go's locateKeyName)
KEY_PUNCTUATION = "_.-[]"


def _is_unicode_space(c: str) -> bool:
    """Go's unicode.IsSpace (Python's str.isspace also counts the \\x1c-\\x1f separators)."""
    return c.isspace() and c not in "\x1c\x1d\x1e\x1f"


def _rstrip_unicode_space(s: str) -> str:
    end = len(s)
    while end and _is_unicode_space(s[end - 1]):
        end -= 1
    return s[:end]


@dataclass(frozen=True)
class EnvEntry:
    key: str
    value: str | None  # None for a bare `KEY` line; otherwise what compose sets it to
    line: int  # where the statement starts (1-based)
    col: int = 1  # column of the key (1-based, in characters)
    end_line: int = 0  # last line of the statement (a quoted value may span lines); 0: same as line
    raw_value: str | None = None  # as written: quotes and escapes included, inline comment excluded
    value_col: int = 0  # column where raw_value starts (0: no value)
    quote: str = ""  # "'", '"' or "" (unquoted)
    separator: str = "="  # "=", ":" (compose's YAML-style form, refused: see EnvError.kind) or "" for a bare KEY
    export: bool = False
    spaced: bool = False  # whitespace between the key and the separator, or between it and the value
    comment: bool = False  # an inline comment follows the value
    stmt_col: int = 1  # column where the statement (the `export` or the key) starts
    template: str | None = None  # unquoted / double-quoted: the text compose interpolates

    @property
    def last_line(self) -> int:
        return self.end_line or self.line


@dataclass(frozen=True)
class EnvError:
    """A statement compose would refuse (it refuses the whole file)."""

    line: int
    col: int
    message: str  # never contains the value: it may be a secret
    key: str | None = None
    # what is wrong: "key" (a character a name cannot hold), "key-space", "key-whitespace" (a tab or
    # similar inside a name: compose keeps it, berth refuses), "no-key", "no-newline", "unterminated",
    # "after-quote" (text after a closing quote: compose reads another statement, berth refuses),
    # "colon" (`KEY: value`, an undocumented form compose accepts and berth refuses), "interpolation",
    # "required"
    kind: str = "syntax"


@dataclass(frozen=True)
class EnvFile:
    path: Path
    entries: tuple[EnvEntry, ...]
    bad_lines: tuple[tuple[int, str], ...] = field(default=())  # (line, text) compose would reject
    errors: tuple[EnvError, ...] = field(default=())  # the same problems, with a column and a reason
    text: str = ""  # the decoded file (for line-level lint: blank lines, trailing whitespace)

    def values(self) -> dict[str, str]:
        """Key → value, last assignment wins, as in compose.

        A bare `KEY` does not change an earlier assignment (compose looks it up in its own
        environment); a bare `KEY` with no assignment counts as set to '' here.
        """
        out: dict[str, str] = {}
        for e in self.entries:
            if e.value is not None:
                out[e.key] = e.value
            else:
                out.setdefault(e.key, "")
        return out

    def line_of(self, key: str) -> int | None:
        lines = [e.line for e in self.entries if e.key == key]
        return lines[-1] if lines else None

    def entry(self, key: str) -> EnvEntry | None:
        """The statement that decides the key's value (the last assignment)."""
        found = [e for e in self.entries if e.key == key]
        assigned = [e for e in found if e.value is not None]
        return (assigned or found or [None])[-1]

    def keys(self) -> list[str]:
        return list(dict.fromkeys(e.key for e in self.entries))

    def __contains__(self, key: str) -> bool:
        return any(e.key == key for e in self.entries)

    @property
    def lines(self) -> list[str]:
        """Physical lines without their line break (a final line break adds no empty line)."""
        text = self.text[:-1] if self.text.endswith("\n") else self.text
        return text.split("\n") if text else []


# \\0 followed by up to three digits is an octal escape written the C way (compose-go rewrites it
# to Go's \\NNN); the other letters are Go's escapes; \\$ becomes $$ (a literal $ for interpolation).
_ESCAPE = re.compile(r'\\(?:[abcfnrtv$"\\]|0\d{0,3})')
_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", '"': '"', "\\": "\\"}


def _expand_escapes(text: str) -> str:
    """compose-go's expandEscapes, applied to double-quoted values before interpolation."""

    def one(m: re.Match[str]) -> str:
        s = m.group(0)
        if s == "\\$":
            return "$$"
        if s.startswith("\\0"):
            s = "\\" + s[2:]
            digits = s[1:]
            # Go's strconv.Unquote takes exactly three octal digits, at most \377
            if len(digits) == 3 and all(c in "01234567" for c in digits) and int(digits, 8) < 256:
                n = int(digits, 8)
                return chr(n) if n < 0x80 else "\ufffd"  # Go puts a raw byte there: not UTF-8 text
            return s  # Unquote fails: compose keeps the rewritten text
        return _SIMPLE_ESCAPES.get(s[1], s)  # \c is no Go escape: kept as written

    return _ESCAPE.sub(one, text)


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.n = len(text)
        self.line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
        self.entries: list[EnvEntry] = []
        self.errors: list[EnvError] = []
        self.env: dict[str, str] = {}  # what interpolation sees: keys assigned so far

    def pos(self, index: int) -> tuple[int, int]:
        """1-based line and column of text[index]."""
        lo, hi = 0, len(self.line_starts) - 1
        while lo < hi:  # last line start <= index
            mid = (lo + hi + 1) // 2
            if self.line_starts[mid] <= index:
                lo = mid
            else:
                hi = mid - 1
        return lo + 1, index - self.line_starts[lo] + 1

    def eol(self, index: int) -> int:
        end = self.text.find("\n", index)
        return self.n if end < 0 else end

    def fail(self, index: int, message: str, key: str | None = None, kind: str = "syntax") -> None:
        line, col = self.pos(index)
        self.errors.append(EnvError(line, col, message, key, kind))

    def parse(self) -> None:
        text, i = self.text, 0
        while True:
            while i < self.n and _is_unicode_space(text[i]):
                i += 1
            if i >= self.n:
                return
            if text[i] == "#":
                i = self.eol(i)
                continue
            i = self.statement(i)

    def statement(self, start: int) -> int:
        """Parse one statement at text[start]; return where the next one may begin."""
        text = self.text
        j = start
        export = False
        if text.startswith("export", j) and j + 6 < self.n and text[j + 6] in SPACE:
            export = True
            j += 6
            while j < self.n and text[j] in SPACE:
                j += 1
        key_start = j
        k = j
        while k < self.n:
            c = text[k]
            if c in "=:\n":
                break
            if c in SPACE or c in KEY_PUNCTUATION or c.isalpha() or c.isnumeric():
                k += 1
                continue
            what = "quote" if c in "'\"" else repr(c)
            hint = " (keys are written without quotes)" if c in "'\"" and k == key_start else ""
            self.fail(k, f"unexpected {what} in a variable name{hint}", kind="key")
            return self.eol(k)
        key = _rstrip_unicode_space(text[key_start:k])
        if k >= self.n:
            if key:  # compose reads this as a variable named '' and fails ("setenv: invalid argument")
                self.fail(key_start, f"{key} has no '=' and no line break after it: compose cannot read it "
                                     "on the last line", key, "no-newline")
            return self.n
        if not key:
            if text[k] == "\n":  # `export ` alone on a line: compose ignores it
                return k
            self.fail(k, f"'{text[k]}' without a variable name before it", kind="no-key")
            return self.eol(k)
        if any(_is_unicode_space(c) for c in key):
            kind = "key-space" if " " in key else "key-whitespace"
            self.fail(key_start, "a variable name cannot contain spaces", key.split()[0], kind)
            return self.eol(k)
        line, col = self.pos(key_start)
        stmt_col = self.pos(start)[1]
        if text[k] == "\n":  # bare KEY: compose takes it from its own environment
            self.entries.append(EnvEntry(key, None, line, col, separator="", export=export, stmt_col=stmt_col))
            return k
        separator = text[k]
        if separator == ":":  # compose-go's undocumented YAML-style form; the entry is kept, the line refused
            self.fail(k, f"{key} is set with ':' (KEY: value): compose's documented syntax, shells and python-dotenv "
                         "need '='", key, "colon")
        spaced = k > key_start + len(key)
        v = k + 1
        while v < self.n and text[v] in SPACE:
            v += 1
        if v > k + 1 and v < self.n and text[v] != "\n":
            spaced = True
        value_col = self.pos(v)[1]
        common = dict(col=col, separator=separator, export=export, spaced=spaced, stmt_col=stmt_col,
                      value_col=value_col)
        if v < self.n and text[v] in "'\"":
            return self.quoted(key, line, v, common)
        end = self.eol(v)
        segment = text[v:end]
        cut = segment.find(" #")
        comment = cut >= 0
        raw = _rstrip_unicode_space(segment[:cut] if comment else segment)
        value = self.interpolate(raw, key, v)
        self.entries.append(EnvEntry(key, value, line, raw_value=raw, template=raw, comment=comment, **common))
        if value is not None:
            self.env[key] = value
        return end

    def quoted(self, key: str, line: int, v: int, common: dict) -> int:
        text, quote = self.text, self.text[v]
        chars: list[str] = []
        escaped = False
        m = v + 1
        while m < self.n:
            c = text[m]
            if c != quote:
                if not escaped and c == "\\":
                    escaped = True
                elif escaped:
                    escaped = False
                    chars += ["\\", c]
                else:
                    chars.append(c)
                m += 1
                continue
            if escaped:  # \" inside "...", \' inside '...'
                escaped = False
                chars.append(c)
                m += 1
                continue
            break
        if m >= self.n:
            kind = "double" if quote == '"' else "single"
            self.fail(v, f"the {kind} quote that starts the value of {key} is never closed", key, "unterminated")
            return self.eol(v)
        content = "".join(chars)
        template = _expand_escapes(content) if quote == '"' else None
        value = self.interpolate(template, key, v) if template is not None else content
        # after the closing quote: spaces, then a comment or the end of the line. (compose would
        # read anything else as a further statement on the same line; berth refuses it.)
        after = m + 1
        while after < self.n and text[after] in SPACE:
            after += 1
        comment = after < self.n and text[after] == "#"
        if after < self.n and text[after] not in "#\n":
            self.fail(after, f"unexpected text after the closing quote of {key}'s value", key, "after-quote")
            return self.eol(after)
        end_line = self.pos(m)[0]
        self.entries.append(EnvEntry(key, value, line, end_line=end_line if end_line != line else 0,
                                     raw_value=text[v:m + 1], quote=quote, comment=comment,
                                     template=template, **common))
        if value is not None:
            self.env[key] = value
        return self.eol(after)

    def interpolate(self, template: str, key: str, index: int) -> str:
        from berth.model.compose.interpolation import InterpolationError, MissingRequiredVariable, interpolate

        try:
            return interpolate(template, self.env)
        except InterpolationError:
            # no reason quoted: it would show part of the value, which may be a secret
            self.fail(index, f"an invalid ${{...}} in the value of {key} (an unclosed '${{', '${{}}' or a character a "
                             "variable name cannot hold; write $$ for a literal $)", key, "interpolation")
        except MissingRequiredVariable as exc:
            from berth.secrets.masking import is_secret_key

            name = "a variable" if is_secret_key(key) else exc.name
            self.fail(index, f"the value of {key} requires {name} (${{...:?}}), which is not set above it", key,
                      "required")
        return template  # compose refuses the file; keep the text so other checks still see the key


def parse_env_text(text: str, path: Path) -> EnvFile:
    text = text.removeprefix("\ufeff")
    parser = _Parser(text)
    parser.parse()
    lines = parser.text.split("\n")
    errors = sorted(parser.errors, key=lambda e: (e.line, e.col))
    bad = tuple(dict.fromkeys((e.line, lines[e.line - 1].rstrip("\r")) for e in errors))  # one per line
    return EnvFile(path, tuple(parser.entries), bad, tuple(errors), text)


MAX_ENV_BYTES = 1024 * 1024  # 500 keys are ~20 KiB; parsing (and linting) a 10 MB file would take minutes


def read_env_bytes(path: Path) -> bytes:
    """The bytes of an env file, through the bounded reader (not a FIFO or device, at most MAX_ENV_BYTES)."""
    from berth.model.files import read_bytes

    return read_bytes(path, limit=MAX_ENV_BYTES, kind="an env file",
                      fix="keep only KEY=value settings in it (a few KiB), or point env_file at the real env file",
                      fix_unreadable="create the file (copy its .example) or fix its permissions")


def read_env_file(path: Path) -> EnvFile:
    raw = read_env_bytes(path)
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


# the suffixes of a committed example of an env file, in the order berth looks for them
EXAMPLE_SUFFIXES = (".example", ".sample", ".dist", ".template")


def example_of(path: Path) -> Path:
    """The committed example of the env file `path` (`.env.docker.example`, `.sample`, `.dist` or `.template`):
    the first that exists, else the `.example` name (for messages that ask for one)."""
    for suffix in EXAMPLE_SUFFIXES:
        candidate = path.with_name(path.name + suffix)
        if candidate.is_file():
            return candidate
    return path.with_name(path.name + EXAMPLE_SUFFIXES[0])
