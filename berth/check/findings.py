"""Findings and the rule registry: each rule is one small function with a stable id, a severity and a fix hint."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from enum import IntEnum
from pathlib import Path


class Severity(IntEnum):
    INFO = 0
    WARNING = 1
    ERROR = 2

    def __str__(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: Severity
    message: str
    file: Path | None = None
    line: int | None = None
    col: int | None = None
    fix: str | None = None

    def relpath(self, root: Path | None = None) -> str | None:
        """The file as shown to people: relative to `root` when it is inside it, else as given."""
        if self.file is None:
            return None
        if root is not None:
            try:
                return self.file.relative_to(root).as_posix()
            except ValueError:
                pass
        return str(self.file)

    def location(self, root: Path | None = None) -> str:
        name = self.relpath(root)
        if name is None:
            return ""
        return name + (f":{self.line}" if self.line else "") + (f":{self.col}" if self.line and self.col else "")

    def as_dict(self, root: Path | None = None) -> dict:
        return {
            "rule": self.rule,
            "severity": str(self.severity),
            "message": self.message,
            "file": self.relpath(root),
            "line": self.line,
            "col": self.col,
            "fix": self.fix,
        }


class FindingCounts:
    """What a report of findings answers; mixed into berth check's and berth k8s check's reports."""

    findings: tuple[Finding, ...]

    def at_least(self, severity: Severity) -> list[Finding]:
        return [f for f in self.findings if f.severity >= severity]

    @property
    def errors(self) -> list[Finding]:
        return self.at_least(Severity.ERROR)

    def counts(self) -> dict[str, int]:
        return {str(s): sum(f.severity == s for f in self.findings) for s in Severity}


@dataclass(frozen=True)
class Rule:
    id: str
    severity: Severity
    summary: str
    fix: str
    check: Callable[..., Iterable[Finding]]
    stage: str  # "local": needs only files; "git-remote": asks the git remote (ls-remote)

    def run(self, ctx) -> Iterator[Finding]:
        for f in self.check(ctx):
            # rules yield message + location; id, default severity and fix hint come from the registration
            yield replace(
                f,
                rule=self.id,
                severity=f.severity if f.severity is not None else self.severity,
                fix=f.fix or self.fix,
            )


RULES: dict[str, Rule] = {}


def rule(id: str, severity: Severity, summary: str, fix: str, stage: str = "local"):
    """Register a check. The function yields `finding(...)`s for what it finds wrong."""

    def register(fn):
        if id in RULES:
            raise RuntimeError(f"duplicate rule id {id}")
        RULES[id] = Rule(id, severity, summary, fix, fn, stage)
        return fn

    return register


def finding(
    message: str,
    file: Path | None = None,
    line: int | None = None,
    col: int | None = None,
    *,
    severity: Severity | None = None,
    fix: str | None = None,
) -> Finding:
    return Finding("", severity, message, file, line, col, fix)  # type: ignore[arg-type]


def rules_matching(selector: str) -> list[str]:
    """The registered rule ids a selector names, as `[check] ignore` and `# berth: ignore[...]` use them:
    an exact id (`git.dirty`), an area (`secrets` → every `secrets.*` rule) or a glob (`compose.*-variable`)."""
    import fnmatch

    selector = selector.strip()
    if selector in RULES:
        return [selector]
    if any(ch in selector for ch in "*?["):
        return [r for r in RULES if fnmatch.fnmatchcase(r, selector)]
    return [r for r in RULES if r.startswith(selector + ".")] if selector else []


def selector_matches(selector: str, rule_id: str) -> bool:
    """Does one selector name this rule id? (The same grammar as rules_matching, without the registry.)"""
    import fnmatch

    selector = selector.strip()
    if not selector:
        return False
    if any(ch in selector for ch in "*?["):
        return fnmatch.fnmatchcase(rule_id, selector)
    return rule_id == selector or rule_id.startswith(selector + ".")
