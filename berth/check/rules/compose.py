"""The compose file: every variable it interpolates is set, and every file it needs reaches the server."""

from __future__ import annotations

from berth.check.findings import Severity, finding, rule
from berth.check.interpolation import InterpolationError, find_references


def _references(ctx, only_used: bool = False):
    """(compose file, scalar, reference) for every variable reference; invalid templates are skipped here.

    With `only_used`, a reference nested in a default or alternative that will not be used
    (`${IMAGE:-${REGISTRY}/shop}` with IMAGE set) is left out: its value cannot matter.
    """
    defined = _defined(ctx)
    for cf in ctx.compose_files:
        for scalar in cf.scalars:
            if "$" not in scalar.value:
                continue
            try:
                refs = find_references(scalar.value)
            except InterpolationError:
                continue
            for ref in refs:
                if only_used and not _argument_used_by_all_enclosing(ref, refs, defined):
                    continue
                yield cf, scalar, ref


def _argument_used_by_all_enclosing(ref, refs, defined: dict[str, str]) -> bool:
    for outer in refs:
        if outer is ref or not (outer.start < ref.start and ref.end <= outer.end):
            continue
        value = defined.get(outer.name)
        uses_argument = {
            ":-": value is None or value == "",
            "-": value is None,
            ":+": bool(value),
            "+": value is not None,
            ":?": value is None or value == "",
            "?": value is None,
        }.get(outer.operator, True)
        if not uses_argument:
            return False
    return True


def _defined(ctx) -> dict[str, str]:
    return ctx.app_env.values() if ctx.app_env else {}


@rule("compose.no-services", Severity.ERROR, "the compose file defines no services",
      "add a services: mapping with at least one service")
def no_services(ctx):
    for cf in ctx.compose_files:
        if not cf.services:
            yield finding(f"{cf.path.name} defines no services", cf.path, 1)


@rule("compose.invalid-template", Severity.ERROR, "a ${...} template compose cannot parse",
      "close the brace and use ${VAR}, ${VAR:-default} or ${VAR:?message}; write $$ for a literal $")
def invalid_template(ctx):
    for cf in ctx.compose_files:
        for scalar in cf.scalars:
            if "$" not in scalar.value:
                continue
            try:
                find_references(scalar.value)
            except InterpolationError as exc:
                line, col = scalar.position_of(getattr(exc, "offset", 0) or 0)
                yield finding(f"invalid interpolation {scalar.value!r}: {exc}", cf.path, line, col)


@rule("compose.unset-variable", Severity.ERROR,
      "compose interpolates a variable that the env file does not set, and it has no default",
      "add the variable to the env file, or give it a default with ${VAR:-value}")
def unset_variable(ctx):
    defined = _defined(ctx)
    env_name = ctx.target.env_file
    for cf, scalar, ref in _references(ctx, only_used=True):
        if ref.name in defined or ref.has_default or ref.required:
            continue
        line, col = scalar.position_of(ref.start, ref.end)
        yield finding(f"${{{ref.name}}} is not set in {env_name}; compose would substitute an empty string",
                      cf.path, line, col, fix=f"add {ref.name}=... to {env_name} (and {env_name}.example)")


@rule("compose.required-variable", Severity.ERROR, "a variable marked required with ${VAR:?message} is not set",
      "set the variable in the env file")
def required_variable(ctx):
    defined = _defined(ctx)
    for cf, scalar, ref in _references(ctx):
        if not ref.required:
            continue
        value = defined.get(ref.name)
        if value is None or (ref.operator == ":?" and value == ""):
            line, col = scalar.position_of(ref.start, ref.end)
            msg = f": {ref.argument}" if ref.argument else ""
            yield finding(f"${{{ref.name}}} is required{msg}", cf.path, line, col,
                          fix=f"set {ref.name} in {ctx.target.env_file}")


@rule("compose.default-used", Severity.INFO, "a variable is not set, so compose uses its default",
      "set it in the env file if the default is not what this environment needs")
def default_used(ctx):
    defined = _defined(ctx)
    seen = set()
    for cf, scalar, ref in _references(ctx, only_used=True):
        if ref.has_default and ref.name not in defined and ref.name not in seen:
            seen.add(ref.name)
            line, col = scalar.position_of(ref.start, ref.end)
            yield finding(f"${{{ref.name}}} is not set; the default {ref.argument!r} is used", cf.path, line, col)


@rule("compose.env-file-not-shipped", Severity.ERROR,
      "a service's env_file is neither committed nor the env file berth ships, so it will be missing on the server",
      "put those settings in the shipped env file, or commit the file if it holds no secrets")
def env_file_reaches_server(ctx):
    shipped = ctx.target.env_file
    for cf in ctx.compose_files:
        for name, service in cf.services.items():
            if not isinstance(service, dict):
                continue
            entries = service.get("env_file") or []
            entries = [entries] if isinstance(entries, (str, dict)) else entries
            for entry in entries:
                path = entry.get("path") if isinstance(entry, dict) else entry
                required = entry.get("required", True) if isinstance(entry, dict) else True
                if not isinstance(path, str) or not required:
                    continue
                rel = path.removeprefix("./")
                if rel == shipped or rel in ctx.tracked:
                    continue
                yield finding(f"service {name}: env_file {path} is not committed and is not {shipped}, which berth ships",
                              cf.path, cf.line_of("services", name, "env_file"))
