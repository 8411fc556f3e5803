"""The harness shared by the check-rule case tables.

A table is the CASES list of tests/unit/test_check_rules.py or of a tests/unit/test_rules_*.py module.
`rule_test(CASES)` makes the table's parametrized `test_rule`, and
test_check_rules.test_every_rule_has_a_firing_and_a_quiet_case reads every table.

A case sets up a project (conftest's `project` fixture: a committed, pushed app on which `berth check`
finds nothing), runs every check on it and looks at one rule's findings: a firing case needs some,
and its `expect` looks closer at them; a quiet case needs none.

This is not a test module: the test modules import it as `tests.helpers.rule_cases`; tests/conftest.py
registers tests.helpers for pytest's assert rewriting, so its asserts explain themselves like theirs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import pytest

import berth.check.rules  # noqa: F401  (registers the rules)
from berth.check import CheckReport, run_checks
from berth.check.findings import Finding, Severity
from berth.configuration.target import load_target

Project = object  # tests/unit/conftest.py's Project (duck-typed here: a helper does not import a conftest)
Setup = Callable[[Project], None]
Expect = Callable[[Project, list[Finding]], None]


# --------------------------------------------------------------------------- setups


def noop(p: Project) -> None:
    pass


def both(*setups: Setup) -> Setup:
    """One setup that runs the given ones in order."""
    def setup(p: Project) -> None:
        for s in setups:
            s(p)
    return setup


def write_files(files: dict[str, str | bytes | None], app_env: str = "") -> Setup:
    """A setup that writes the files in order (None: not written) and appends app_env to .env.docker."""
    def setup(p: Project) -> None:
        for rel, text in files.items():
            if text is not None:
                p.write(rel, text)
        if app_env:
            p.write(".env.docker", p.APP_ENV + app_env)
    return setup


# --------------------------------------------------------------------------- the case


@dataclass(frozen=True)
class Case:
    rule: str
    fires: bool
    name: str
    setup: Setup = noop
    expect: Expect | None = None  # looks closer at the findings of a firing case
    environment: str | None = None  # load_target's environment and hosts (berth's --env and --host)
    hosts: tuple[str, ...] = ()
    bug: str | None = None  # a known berth bug: the case is a strict xfail until it is fixed


def case_id(case: Case) -> str:
    return f"{case.rule}:{'fires' if case.fires else 'quiet'}:{case.name}"


# --------------------------------------------------------------------------- running


def run(project: Project, environment: str | None = None, hosts: tuple[str, ...] = (), **kw) -> CheckReport:
    """Every check on the project; kw goes to run_checks (offline, skip)."""
    return run_checks(load_target(project.root, environment, hosts), **kw)


def of_rule(findings: Iterable[Finding], rule_id: str) -> list[Finding]:
    return [f for f in findings if f.rule == rule_id]


def run_case(project: Project, case: Case, *, offline: bool = False) -> tuple[CheckReport, list[Finding]]:
    """Set the case up, run every check; the report and the findings of the case's rule."""
    case.setup(project)
    report = run(project, case.environment, case.hosts, offline=offline)
    return report, of_rule(report.findings, case.rule)


def check_case(project: Project, case: Case, *, offline: bool = False, fix_required: bool = True) -> None:
    """Run the case and assert that its rule fires (with fix_required: every finding has a fix) or not."""
    report, found = run_case(project, case, offline=offline)
    if not case.fires:
        assert found == [], found
        return
    assert found, f"{case.rule} did not fire; all findings: {report.findings}"
    if fix_required:
        assert all(f.severity is not None and f.fix for f in found)
    if case.expect is not None:
        case.expect(project, found)


def rule_test(cases: Sequence[Case], *, offline: bool = False, fix_required: bool = True):
    """The test `test_rule(project, case)` over a CASES table, one test per case, id `rule:fires|quiet:name`.

    Assign it to a name starting with test_ in the test module; offline and fix_required go to check_case.
    """
    params = [pytest.param(case, id=case_id(case),
                           marks=[pytest.mark.xfail(reason=case.bug, strict=True)] if case.bug else [])
              for case in cases]

    @pytest.mark.parametrize("case", params)
    def test_rule(project, case: Case) -> None:
        check_case(project, case, offline=offline, fix_required=fix_required)

    return test_rule


# --------------------------------------------------------------------------- expectations


def expect_at(rel: str | None, line: int | None = None, col: int | None = None, *, contains: str = "",
              count: int = 1, severity: Severity | None = None, fix: str | None = None, absent: str = "",
              fix_required: bool = False, hidden: Iterable[str] = ()) -> Expect:
    """count findings, the first at rel (None: no file), line and col, its message containing `contains`.

    severity: the first one's; fix: a part of its fix; absent: in neither its message nor its fix;
    fix_required: it has a fix; hidden: strings (secrets) that neither its message nor its fix shows.
    """
    hidden = tuple(hidden)

    def check(p: Project, found: list[Finding]) -> None:
        assert len(found) == count, found
        f = found[0]
        assert f.file == (p.root / rel if rel is not None else None), f
        assert (f.line, f.col) == (line, col), f
        assert contains in f.message, f
        assert not absent or absent not in f.message + (f.fix or ""), f
        if fix_required:
            assert f.fix, f
        if severity is not None:
            assert f.severity == severity, f
        if fix is not None:
            assert fix in (f.fix or ""), f
        for secret in hidden:
            assert secret not in f.message and secret not in (f.fix or ""), "a finding shows the secret"
    return check


def expect_first(rel: str, *, at: tuple[int, int | None] | None = None, line: int | None = None,
                 count: int | None = None, contains: str = "", severity: Severity | None = None,
                 check: Callable[[list[Finding]], None] | None = None, by_column: bool = True) -> Expect:
    """The first finding (by line, then column unless by_column is False) is in rel and says `contains`.

    at: its (line, col); line: its line alone; count: how many findings; severity: the first one's;
    check: called with all the findings. None: not checked.
    """
    def key(f: Finding):
        return (f.line or 0, f.col or 0) if by_column else f.line or 0

    def expect(p: Project, found: list[Finding]) -> None:
        if count is not None:
            assert len(found) == count, found
        first = sorted(found, key=key)[0]
        assert first.file == p.root / rel, first
        if at is not None:
            assert (first.line, first.col) == at, first
        if line is not None:
            assert first.line == line, first
        assert contains in first.message, first.message
        if severity is not None:
            assert first.severity == severity
        if check is not None:
            check(found)
    return expect
