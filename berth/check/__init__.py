"""Stage 1, check: validate everything locally before anything touches a server."""

from __future__ import annotations

from dataclasses import dataclass

from berth.check.context import CheckContext
from berth.check.findings import RULES, Finding, Severity
from berth.config import Target


@dataclass(frozen=True)
class CheckReport:
    findings: tuple[Finding, ...]
    rules_run: int
    context: CheckContext

    def at_least(self, severity: Severity) -> list[Finding]:
        return [f for f in self.findings if f.severity >= severity]

    @property
    def errors(self) -> list[Finding]:
        return self.at_least(Severity.ERROR)

    def counts(self) -> dict[str, int]:
        return {str(s): sum(f.severity == s for f in self.findings) for s in Severity}


def run_checks(target: Target, *, skip: set[str] = frozenset(), offline: bool = False) -> CheckReport:
    """Run every registered rule; `offline` skips the ones that ask the git remote."""
    import berth.check.rules  # noqa: F401  (registers the rules)

    ctx = CheckContext(target)
    findings: list[Finding] = []
    ran = 0
    for rule in RULES.values():
        if rule.id in skip or (offline and rule.stage == "git-remote"):
            continue
        ran += 1
        findings.extend(rule.run(ctx))
    findings.sort(key=lambda f: (-f.severity, str(f.file or ""), f.line or 0))
    return CheckReport(tuple(findings), ran, ctx)
