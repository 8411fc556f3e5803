"""Stage 1, check: validate everything locally before anything touches a server.

`run_checks` runs every registered rule and then applies the project's choices in one place, so no
rule has to know about them:

- `berth.toml` `[check]`: `ignore` (rules not run at all), `[check.severity]` (a rule's severity
  changed, or `"off"`), `exclude` (paths whose findings are dropped), `fail_on` (read by the CLI),
  `enable` (default-off rules switched on; read by those rules);
- comments in the files themselves: `# berth: ignore[RULE,...]` on the offending line or on a
  comment line just above it, and `# berth: allow-secret` (or gitleaks' `gitleaks:allow`) for the
  `secrets.*` rules.

Suppressed findings are not thrown away: they are kept in `CheckReport.suppressed` (SARIF shows
them as suppressed results, the text output counts them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from berth.check.context import CheckContext
from berth.check.findings import RULES, Finding, FindingCounts, Severity, rules_matching, selector_matches
from berth.configuration.target import Target
from berth.errors import UsageError

SEVERITY_NAMES = {"error": Severity.ERROR, "warning": Severity.WARNING, "info": Severity.INFO}
CONFIG_KEYS = {
    "ignore": "rules that are not run, e.g. ignore = [\"compose.default-used\"]",
    "severity": "[check.severity] \"RULE\" = \"warning\" (error, warning, info or off)",
    "exclude": "paths whose findings are dropped, e.g. exclude = [\"tests/fixtures/*\"]",
    "fail_on": "the lowest severity that makes berth check exit 1: \"error\", \"warning\" or \"info\"",
    "enable": "rules that are off by default, switched on",
}


@dataclass(frozen=True)
class CheckConfig:
    """The `[check]` table of berth.toml, validated and resolved against the registered rules."""

    ignore: frozenset[str] = frozenset()
    severity: dict[str, Severity] = field(default_factory=dict)
    enable: frozenset[str] = frozenset()
    exclude: tuple[str, ...] = ()
    fail_on: Severity | None = None


@dataclass(frozen=True)
class CheckReport(FindingCounts):
    findings: tuple[Finding, ...]
    rules_run: int
    context: CheckContext
    suppressed: tuple[Finding, ...] = ()
    config: CheckConfig = field(default_factory=CheckConfig)


def run_checks(target: Target, *, skip: set[str] = frozenset(), offline: bool = False) -> CheckReport:
    """Run every registered rule; `offline` skips the ones that ask the git remote.

    Raises UsageError (exit 2) when berth.toml's [check] table is invalid.
    """
    import berth.check.rules  # noqa: F401  (registers the rules)

    config = load_check_config(target.root)
    ctx = CheckContext(target)
    ctx.check_config = config  # for rules that are off unless `[check] enable` names them
    skipped = set(skip) | config.ignore
    findings: list[Finding] = []
    ran = 0
    try:
        _prefetch(ctx, skipped)
        for rule in RULES.values():
            if rule.id in skipped or (offline and rule.stage == "git-remote"):
                continue
            ran += 1
            findings.extend(rule.run(ctx))
    finally:
        from berth.check.rules.secrets_scan import discard_git_jobs

        discard_git_jobs(ctx)
    kept, suppressed = apply_suppressions(findings, target.root, config)
    kept.sort(key=_order)
    suppressed.sort(key=_order)
    return CheckReport(tuple(kept), ran, ctx, tuple(suppressed), config)


def _prefetch(ctx: CheckContext, skipped: set[str]) -> None:
    """Start the slow git commands of the secrets scan and git.env-in-history now: they run while the other
    rules parse files (on two cores the check finishes ~10 ms sooner)."""
    from berth.check.rules import git as git_rules
    from berth.check.rules import secrets_scan

    if not ctx.is_git_repo:
        return
    if any(r.startswith("secrets.") and r not in skipped for r in RULES):
        secrets_scan.prefetch(ctx)
    if "git.env-in-history" in RULES and "git.env-in-history" not in skipped:
        git_rules.prefetch_history(ctx)


def _order(f: Finding):
    return (-f.severity, str(f.file or ""), f.line or 0, f.col or 0)


# --------------------------------------------------------------------------- [check] in berth.toml


def load_check_config(root: Path) -> CheckConfig:
    """Read and validate `[check]`; every mistake is a UsageError that names the key."""
    import berth.check.rules  # noqa: F401  (rule ids are validated against the registry)
    from berth.configuration.target import toml_section

    table = toml_section(root, "check")
    where = str(root / "berth.toml")
    for key in table:
        if key not in CONFIG_KEYS:
            import difflib

            close = difflib.get_close_matches(key, list(CONFIG_KEYS), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise UsageError(f"berth.toml: unknown key '{key}' in [check]{hint}", where=where,
                             fix="the [check] keys are " + "; ".join(f"{k}: {v}" for k, v in CONFIG_KEYS.items()))
    ignore = set(_rule_list(table, "ignore", where))
    enable = set(_rule_list(table, "enable", where))
    severity: dict[str, Severity] = {}
    raw_severity = table.get("severity", {})
    if not isinstance(raw_severity, dict):
        raise UsageError(f"berth.toml: [check] severity must be a table, not {raw_severity!r}", where=where,
                         fix='write it as [check.severity] with lines like "compose.default-used" = "warning"')
    for selector, value in _flatten(raw_severity).items():
        ids = _resolve(selector, "[check.severity]", where)
        if not isinstance(value, str) or value.lower() not in (*SEVERITY_NAMES, "off"):
            raise UsageError(f"berth.toml: [check.severity] \"{selector}\" must be \"error\", \"warning\", \"info\" "
                             f"or \"off\", not {value!r}", where=where,
                             fix=f'write it as "{selector}" = "warning"')
        for rule_id in ids:
            if value.lower() == "off":
                ignore.add(rule_id)
            else:
                severity[rule_id] = SEVERITY_NAMES[value.lower()]
    exclude = table.get("exclude", [])
    if not (isinstance(exclude, list) and all(isinstance(p, str) and p.strip() for p in exclude)):
        raise UsageError(f"berth.toml: [check] exclude must be a list of path patterns, not {exclude!r}", where=where,
                         fix='write it as exclude = ["tests/fixtures/*"]')
    fail_on = table.get("fail_on")
    if fail_on is not None and (not isinstance(fail_on, str) or fail_on.lower() not in SEVERITY_NAMES):
        raise UsageError(f"berth.toml: [check] fail_on must be \"error\", \"warning\" or \"info\", not {fail_on!r}",
                         where=where, fix='write it as fail_on = "warning"')
    return CheckConfig(
        ignore=frozenset(ignore),
        severity=severity,
        enable=frozenset(enable),
        exclude=tuple(p.strip().strip("/") or "." for p in exclude),
        fail_on=SEVERITY_NAMES[fail_on.lower()] if fail_on else None,
    )


def _rule_list(table: dict[str, Any], key: str, where: str) -> list[str]:
    value = table.get(key, [])
    if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        raise UsageError(f"berth.toml: [check] {key} must be a list of rule ids, not {value!r}", where=where,
                         fix=f'write it as {key} = ["compose.default-used"] (berth check --list-rules lists the ids)')
    ids: list[str] = []
    for selector in value:
        ids.extend(_resolve(selector, f"[check] {key}", where))
    return ids


def _resolve(selector: str, what: str, where: str) -> list[str]:
    ids = rules_matching(selector)
    if not ids:
        import difflib

        close = difflib.get_close_matches(selector, list(RULES), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise UsageError(f"berth.toml: {what} names '{selector}', which is not a rule{hint}", where=where,
                         fix="use a rule id, an area such as \"secrets\", or a glob; berth check --list-rules lists them")
    return ids


def _flatten(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """`compose.default-used = "info"` without quotes is a dotted TOML key, i.e. nested tables: join them back."""
    flat: dict[str, Any] = {}
    for key, value in table.items():
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            flat.update(_flatten(value, name))
        else:
            flat[name] = value
    return flat


# --------------------------------------------------------------------------- suppression


IGNORE_DIRECTIVE = re.compile(r"berth:\s*ignore\[([^\]\n]*)\]")
ALLOW_SECRET_DIRECTIVE = re.compile(r"berth:\s*allow-secret\b|gitleaks:allow\b")
COMMENT_STARTS = ("#", "//", "/*", "*", "--", ";", "<!--")
MAX_DIRECTIVE_FILE_BYTES = 8 * 1024 * 1024


def apply_suppressions(findings: list[Finding], root: Path, config: CheckConfig) -> tuple[list[Finding], list[Finding]]:
    """(kept, suppressed): severity overrides applied, then `exclude` paths and in-file comments honoured."""
    lines = _LineCache()
    kept: list[Finding] = []
    suppressed: list[Finding] = []
    for f in findings:
        if f.rule in config.severity:
            f = replace(f, severity=config.severity[f.rule])
        if _excluded(f, root, config.exclude) or _silenced_in_file(f, lines):
            suppressed.append(f)
        else:
            kept.append(f)
    return kept, suppressed


def _excluded(f: Finding, root: Path, patterns: tuple[str, ...]) -> bool:
    if not patterns or f.file is None:
        return False
    import fnmatch

    try:
        rel = f.file.relative_to(root).as_posix()
    except ValueError:
        return False
    for pattern in patterns:
        if pattern == "." or rel == pattern or rel.startswith(pattern + "/") or fnmatch.fnmatchcase(rel, pattern):
            return True
    return False


class _LineCache:
    """The lines of files that findings point at, read once each (None: unreadable or too big)."""

    def __init__(self) -> None:
        self._files: dict[Path, list[str] | None] = {}

    def get(self, path: Path) -> list[str] | None:
        if path not in self._files:
            self._files[path] = self._read(path)
        return self._files[path]

    @staticmethod
    def _read(path: Path) -> list[str] | None:
        from berth.model.files import read_bytes

        try:  # a finding may point at a FIFO or a device (files.unreadable): bounded, never blocking
            raw = read_bytes(path, limit=MAX_DIRECTIVE_FILE_BYTES)
        except UsageError:
            return None
        if b"\0" in raw[:8192]:
            return None
        return raw.decode("utf-8-sig", errors="replace").splitlines()


def _silenced_in_file(f: Finding, lines: _LineCache) -> bool:
    if f.file is None or not f.line:
        return False
    text = lines.get(f.file)
    if text is None or f.line > len(text):
        return False
    if _directive_for(text[f.line - 1], f.rule, f.file, same_line=True):
        return True
    above = text[f.line - 2] if f.line >= 2 else ""
    return above.lstrip().startswith(COMMENT_STARTS) and _directive_for(above, f.rule, f.file, same_line=False)


def _directive_for(line: str, rule_id: str, path: Path, *, same_line: bool) -> bool:
    """Does this line carry a directive that silences `rule_id`?"""
    if "berth:" not in line and "gitleaks:allow" not in line:
        return False
    hits: list[int] = []
    for m in IGNORE_DIRECTIVE.finditer(line):
        if any(selector_matches(s, rule_id) for s in m.group(1).split(",")):
            hits.append(m.start())
    if rule_id.startswith("secrets."):
        hits.extend(m.start() for m in ALLOW_SECRET_DIRECTIVE.finditer(line))
    if not hits:
        return False
    if not same_line:
        return True
    return any(_is_comment_at(line, start, path) for start in hits)


def _is_comment_at(line: str, start: int, path: Path) -> bool:
    """Is the directive at `start` inside a comment, rather than part of a value?

    In env files and YAML a trailing `# ...` is a comment only after whitespace and outside quotes
    (`KEY=abc#x` keeps `#x` in the value, for compose as for python-dotenv); a directive that is
    part of the value would change what is deployed, so it does not count.
    """
    name = path.name.lower()
    if _looks_like_env_file(name):
        return _env_comment(line, start)
    if name.endswith((".yml", ".yaml")):
        return _yaml_comment(line, start)
    return True  # other files: anywhere on the line, as gitleaks:allow works


def _looks_like_env_file(name: str) -> bool:
    return name.startswith(".env") or name.endswith((".env", ".env.example", ".env.sample", ".env.template"))


def _env_comment(line: str, start: int) -> bool:
    import io

    from dotenv.parser import parse_stream

    if line.lstrip().startswith("#"):
        return True
    try:
        bindings = list(parse_stream(io.StringIO(line)))
    except Exception:  # noqa: BLE001 - an unparsable line carries no trustworthy comment
        return False
    values = [b.value or "" for b in bindings if b.key is not None and not b.error]
    if not values or any("berth:" in v or "gitleaks:allow" in v for v in values):
        return False
    hash_at = line.rfind("#", 0, start)
    return hash_at >= 0 and (hash_at == 0 or line[hash_at - 1] in " \t")


def _yaml_comment(line: str, start: int) -> bool:
    hash_at = -1
    single = double = False
    for i, ch in enumerate(line[:start]):
        if ch == "'" and not double:
            single = not single
        elif ch == '"' and not single and (i == 0 or line[i - 1] != "\\"):
            double = not double
        elif ch == "#" and not single and not double and (i == 0 or line[i - 1] in " \t"):
            hash_at = i
            break
    return hash_at >= 0
