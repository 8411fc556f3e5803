"""Env file style and syntax: dotenv-linter's checks, read with compose's parser (docs/ENV_FILES.md).

Every rule here looks at `.env`, the app env file (`.env.docker`) and their `.example` files.
Parse errors of the two real files are `env.syntax` (rules/files.py); those of the examples are
`env.example-syntax` here. Messages never quote a value: it may be a secret.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from berth.check.findings import Severity, finding, rule
from berth.errors import UsageError
from berth.model.envfile import EnvEntry, EnvFile, example_of, read_env_file
from berth.secrets.masking import is_secret_key, url_password

# off unless berth.toml lists them: [check] enable = ["env.unordered-key"]
DEFAULT_OFF = frozenset({"env.unordered-key"})


@dataclass(frozen=True)
class LoadedEnv:
    role: str  # "dotenv" (.env), "app" (.env.docker), "dotenv-example", "app-example"
    path: Path
    env: EnvFile | None  # None: exists but cannot be read (only for examples; see `error`)
    error: UsageError | None = None

    @property
    def example(self) -> bool:
        return self.role.endswith("-example")


def env_files(ctx) -> list[LoadedEnv]:
    """The env files berth knows about that exist, each once (cached on the context)."""
    cached = ctx.__dict__.get("_env_lint_files")
    if cached is not None:
        return cached
    found: list[LoadedEnv] = []
    seen: set[Path] = set()

    def add(role: str, path: Path, env: EnvFile | None) -> None:
        if path in seen or not path.exists():
            return
        seen.add(path)
        if env is not None:
            found.append(LoadedEnv(role, path, env))
        elif role.endswith("-example"):
            try:
                found.append(LoadedEnv(role, path, read_env_file(path)))
            except UsageError as exc:
                found.append(LoadedEnv(role, path, None, exc))
        # a real file that failed to load is reported by files.unreadable

    add("app", ctx.app_env_path, ctx.app_env)  # first: with env_file = ".env" the file is the app's
    add("dotenv", ctx.dotenv_path, ctx.target.dotenv)
    for role, path in (("app-example", ctx.app_env_path), ("dotenv-example", ctx.dotenv_path)):
        add(role, example_of(path), None)
    ctx.__dict__["_env_lint_files"] = found
    return found


def parsed(ctx) -> Iterator[LoadedEnv]:
    for f in env_files(ctx):
        if f.env is not None:
            yield f


def enabled(ctx, rule_id: str) -> bool:
    """A default-off rule runs only when berth.toml's [check] enable names it (an id, an area or a glob)."""
    config = getattr(ctx, "check_config", None)  # set by run_checks from the validated [check] table
    if config is not None and hasattr(config, "enable"):
        return rule_id in config.enable
    from berth.configuration.target import toml_section

    try:
        from berth.check.findings import selector_matches
    except ImportError:  # an older registry without selectors: exact ids only
        def selector_matches(selector: str, rule: str) -> bool:
            return selector == rule
    try:
        enable = toml_section(ctx.root, "check").get("enable", [])
    except (UsageError, AttributeError):
        return False
    return isinstance(enable, list) and any(isinstance(s, str) and selector_matches(s, rule_id) for s in enable)


def secretish(e: EnvEntry) -> bool:
    """Say nothing about this value's contents: its key looks secret or it holds a URL password."""
    return is_secret_key(e.key) or bool(e.value and url_password(e.value))


def inside_values(env: EnvFile) -> set[int]:
    """Lines whose end lies inside a multi-line quoted value (their text belongs to the value)."""
    return {n for e in env.entries for n in range(e.line, e.last_line)}


def value_position(e: EnvEntry, needle: str, nth: int = 0) -> tuple[int, int]:
    """line, col of the nth occurrence of needle in the value as written (the value start if absent)."""
    raw = e.raw_value or ""
    index = -1
    for _ in range(nth + 1):
        index = raw.find(needle, index + 1)
        if index < 0:
            return e.line, e.value_col or e.col
    before = raw[:index]
    newlines = before.count("\n")
    if newlines:
        return e.line + newlines, index - before.rfind("\n")
    return e.line, e.value_col + index


# --------------------------------------------------------------------------- syntax of the examples


@rule("env.example-syntax", Severity.WARNING, "an .example env file has a line compose cannot read",
      "fix the line: whoever copies the example gets a file compose refuses")
def example_syntax(ctx):
    for f in env_files(ctx):
        if not f.example:
            continue
        if f.env is None:
            yield finding(f"{f.path.name}: {f.error.what}", f.path, fix=f.error.fix)
            continue
        for err in f.env.errors:
            yield finding(f"{f.path.name}: {err.message}", f.path, err.line, err.col)


# --------------------------------------------------------------------------- keys


@rule("env.duplicate-key", Severity.WARNING, "a key is set more than once in the same env file",
      "keep one line per key: compose uses the last assignment, which is easy to miss")
def duplicate_key(ctx):
    for f in parsed(ctx):
        first: dict[str, EnvEntry] = {}
        for e in f.env.entries:
            if e.key not in first:
                first[e.key] = e
                continue
            if e.value is None:
                what = "a bare key does not replace the earlier value"
            else:
                what = "compose uses this later value"
            yield finding(f"{e.key} is set again (first on line {first[e.key].line}); {what}", f.path, e.line, e.col,
                          fix=f"remove one of the two {e.key} lines")


@rule("env.lowercase-key", Severity.INFO, "a key has lowercase letters",
      "use UPPER_CASE keys, the convention for environment variables")
def lowercase_key(ctx):
    for f in parsed(ctx):
        for e in f.env.entries:
            if e.key != e.key.upper():
                yield finding(f"{e.key} has lowercase letters", f.path, e.line, e.col,
                              fix=f"rename it to {e.key.upper()} (and wherever it is read)")


@rule("env.leading-character", Severity.WARNING, "a key does not start with a letter or '_', or the line is indented",
      "start keys with A-Z or '_' at the beginning of the line")
def leading_character(ctx):
    for f in parsed(ctx):
        for e in f.env.entries:
            first = e.key[0]
            if not (first == "_" or ("A" <= first.upper() <= "Z" and first.isascii())):
                yield finding(f"{e.key} starts with {first!r}: compose-file ${{...}} and shells cannot refer to it",
                              f.path, e.line, e.col)
            elif e.stmt_col > 1:
                yield finding(f"the line of {e.key} starts with whitespace", f.path, e.line, 1,
                              severity=Severity.INFO, fix=f"remove the whitespace before {e.key}")


@rule("env.incorrect-delimiter", Severity.WARNING, "a key holds characters other than letters, digits and '_'",
      "separate words with '_': compose-file ${...} and shells accept only [A-Za-z0-9_] in names")
def incorrect_delimiter(ctx):
    for f in parsed(ctx):
        for e in f.env.entries:
            bad = sorted(set(re.findall(r"[^A-Za-z0-9_]", e.key[1:])))
            if bad:
                shown = ", ".join(repr(c) for c in bad)
                suggestion = re.sub(r"[^A-Za-z0-9_]", "_", e.key)
                yield finding(f"{e.key} contains {shown}: it cannot be referenced as ${{{e.key}}}",
                              f.path, e.line, e.col, fix=f"rename it to {suggestion}")


@rule("env.key-without-value", Severity.WARNING, "a key without '=' (compose takes its value from its own environment)",
      "write KEY= for an empty value, or KEY=value")
def key_without_value(ctx):
    for f in parsed(ctx):
        for e in f.env.entries:
            if e.value is None and f.role.startswith("dotenv"):
                yield finding(f"{e.key} has no '=': berth reads it as empty, while compose and shells take it from "
                              "their own environment", f.path, e.line, e.col,
                              fix=f"write {e.key}= for an empty value, or {e.key}=value")
            elif e.value is None:
                yield finding(f"{e.key} has no '=': compose takes its value from the environment of the shell that "
                              "runs it on the server, where it is normally not set, so the variable stays unset",
                              f.path, e.line, e.col, fix=f"write {e.key}= for an empty value, or {e.key}=value")


@rule("env.space-around-equals", Severity.INFO, "whitespace around '=' (KEY = value)",
      "write KEY=value: compose trims the spaces, but a shell reading the file does not")
def space_around_equals(ctx):
    for f in parsed(ctx):
        for e in f.env.entries:
            if e.spaced:
                yield finding(f"whitespace around the '{e.separator}' of {e.key}", f.path, e.line, e.col,
                              fix=f"write {e.key}{e.separator}value without spaces")


@rule("env.unordered-key", Severity.INFO, "keys are not in alphabetical order (off by default)",
      'sort the keys; a blank line or a comment starts a new group. Enable with [check] enable = ["env.unordered-key"]')
def unordered_key(ctx):
    if not enabled(ctx, "env.unordered-key"):
        return
    for f in parsed(ctx):
        lines = f.env.lines
        previous: EnvEntry | None = None
        for e in f.env.entries:
            between = lines[previous.last_line:e.line - 1] if previous else []
            if previous is not None and any(not t.strip() or t.lstrip().startswith("#") for t in between):
                previous = None  # a new group
            if previous is not None and e.key.upper() < previous.key.upper():
                yield finding(f"{e.key} should come before {previous.key}", f.path, e.line, e.col)
            previous = e


# --------------------------------------------------------------------------- values


def _has_space(s: str) -> bool:
    return any(c.isspace() for c in s)


@rule("env.unquoted-spaces", Severity.INFO, "a value with spaces is not quoted",
      "put the value in double quotes (single quotes if it holds a literal $)")
def unquoted_spaces(ctx):
    for f in parsed(ctx):
        for e in f.env.entries:
            if e.value is not None and not e.quote and _has_space(e.raw_value or ""):
                yield finding(f"the value of {e.key} has spaces but no quotes: compose keeps them, but ' #' inside "
                              "would start a comment and a shell splits the value", f.path, e.line, e.value_col)


_SAFE_UNQUOTED = re.compile(r"[^\s#'\"\\]+")


@rule("env.unnecessary-quotes", Severity.INFO, "a value is quoted but reads the same without quotes",
      "drop the quotes")
def unnecessary_quotes(ctx):
    for f in parsed(ctx):
        for e in f.env.entries:
            if not e.quote or e.raw_value is None:
                continue
            content = e.raw_value[1:-1]
            if not _SAFE_UNQUOTED.fullmatch(content):
                continue  # empty, spaces, '#', quotes or escapes: the quotes matter (or say "empty")
            if e.quote == "'" and "$" in content:
                continue  # single quotes keep $ literal
            yield finding(f"the quotes around the value of {e.key} change nothing", f.path, e.line, e.value_col,
                          fix=f"write {e.key}=value without quotes")


def _references(e: EnvEntry):
    """Top-level variable references of an interpolated value; [] if none or invalid (env.syntax)."""
    from berth.model.compose.interpolation import InterpolationError, find_references

    if e.template is None or "$" not in e.template:
        return [], []
    try:
        refs = find_references(e.template)
    except InterpolationError:
        return [], []
    top = [r for r in refs if not any(o is not r and o.start < r.start and r.end <= o.end for o in refs)]
    return top, refs


@rule("env.substitution", Severity.WARNING, "a ${...} substitution is malformed in a way compose accepts silently",
      "write ${NAME} with exactly one closing brace; write $$ for a literal $")
def substitution(ctx):
    for f in parsed(ctx):
        for e in f.env.entries:
            top, _ = _references(e)
            text = e.template or ""
            for ref in top:
                if text[ref.end:ref.end + 1] != "}":
                    continue
                braced = text[ref.start + 1:ref.start + 2] == "{"
                snippet = text[ref.start:ref.end + 1]
                line, col = value_position(e, snippet)
                if secretish(e):
                    what = "a stray '}' after a $ reference"
                elif braced:
                    what = f"an extra '}}' after {text[ref.start:ref.end]}"
                else:
                    what = f"'${ref.name}}}' (a '}}' without '${{')"
                yield finding(f"the value of {e.key} has {what}: compose keeps the '}}' as text", f.path, line, col)


@rule("env.undefined-variable", Severity.WARNING,
      "a value refers to a variable that is not defined above it in the same file",
      "define the variable above this line, write $$ for a literal $, or single-quote the value")
def undefined_variable(ctx):
    for f in parsed(ctx):
        defined: set[str] = set()
        later = {e.key: e.line for e in reversed(f.env.entries) if e.value is not None}
        for e in f.env.entries:
            top, _ = _references(e)
            for ref in top:
                if ref.operator is not None or ref.name in defined:
                    continue  # defaults handle unset; :? and ? are env.syntax errors
                text = e.template or ""
                line, col = value_position(e, text[ref.start:ref.end])
                if secretish(e):
                    yield finding(f"the value of {e.key} contains a '$' that compose reads as a variable reference; "
                                  "it is not defined in this file, so compose substitutes an empty string (or "
                                  "whatever the server's shell has)", f.path, line, col,
                                  fix="write $$ for each literal $, or put the value in single quotes")
                    break
                where = f" (it is set later, on line {later[ref.name]}: the file is read top to bottom)" \
                    if later.get(ref.name, 0) > e.line else ""
                becomes = ("berth reads it as an empty string" if f.role == "dotenv" else
                           "compose substitutes the value in its own environment on the server, normally none")
                yield finding(f"${ref.name} in the value of {e.key} is not defined above it{where}; {becomes}",
                              f.path, line, col)
            if e.value is not None:
                defined.add(e.key)


# --------------------------------------------------------------------------- layout


@rule("env.trailing-whitespace", Severity.INFO, "a line ends with spaces or tabs", "remove the trailing whitespace")
def trailing_whitespace(ctx):
    for f in parsed(ctx):
        skip = inside_values(f.env)
        for n, text in enumerate(f.env.lines, start=1):
            if n in skip:
                continue
            body = text[:-1] if text.endswith("\r") else text  # CRLF line endings are not whitespace
            stripped = body.rstrip()
            if stripped != body:
                yield finding(f"line {n} ends with whitespace", f.path, n, len(stripped) + 1)


@rule("env.no-final-newline", Severity.INFO, "the file does not end with a line break",
      "end the last line with a line break")
def no_final_newline(ctx):
    for f in parsed(ctx):
        if f.env.text and not f.env.text.endswith("\n"):
            yield finding(f"{f.path.name} does not end with a line break", f.path, len(f.env.lines))


@rule("env.extra-blank-line", Severity.INFO, "more than one blank line in a row", "keep at most one blank line")
def extra_blank_line(ctx):
    for f in parsed(ctx):
        skip = inside_values(f.env)
        run = 0
        for n, text in enumerate(f.env.lines, start=1):
            blank = n not in skip and not text.strip()
            run = run + 1 if blank else 0
            if run >= 2:
                yield finding(f"line {n} is an extra blank line", f.path, n)
