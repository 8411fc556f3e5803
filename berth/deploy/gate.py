"""What stands between a command and the servers: the checks, the production confirmation, the push."""

from __future__ import annotations

import sys

from berth.check import CheckReport, run_checks
from berth.check.findings import Severity
from berth.configuration.target import Target
from berth.deploy.steplog import StepLog
from berth.errors import BerthError
from berth.model import git as gitlocal
from berth.secrets.masking import masked_tail
from berth.ui.output import render_findings


def check_or_stop(target: Target, log: StepLog, *, skip: set[str] = frozenset(),
                  outcome: dict | None = None) -> CheckReport:
    """`outcome` (the --json document) gets the findings of warning level and above, pass or fail."""
    with log.step("check") as info:
        report = run_checks(target, skip=skip)
        if outcome is not None:
            outcome["findings"] = [f.as_dict(target.root) for f in report.at_least(Severity.WARNING)]
        counts = report.counts()
        info["detail"] = f"{report.rules_run} rules: {counts['error']} errors, {counts['warning']} warnings"
        shown = report.at_least(Severity.WARNING)
        if shown:
            log.printer.block(render_findings(shown, target.root, log.printer.mask), rendered=True)
        if report.errors:
            n = len(report.errors)
            raise BerthError(
                f"check found {n} error{'s' * (n != 1)}; nothing was sent to any server",
                fix="fix the findings listed above, then run berth deploy again (berth check shows them alone)",
                exit_code=1,
            )
    return report


def confirm(target: Target, yes: bool, log: StepLog, action: str = "deploy to", where: str | None = None) -> None:
    """Production (or confirm = true) needs the environment's name typed, or --yes; no terminal → refuse."""
    if not target.confirm:
        return
    with log.step("confirm") as info:
        if yes:
            info["detail"] = "--yes given"
            return
        if not sys.stdin.isatty():
            raise BerthError(
                f"{action} to {target.environment} needs confirmation, and there is no terminal to ask on",
                fix=f"run it in a terminal and type '{target.environment}', or pass --yes (for CI)",
            )
        where = where or ", ".join(h.label for h in target.hosts)
        sys.stderr.write(f"You are about to {action} {target.environment.upper()} ({where}).\n"
                         f"Type the environment name to continue: ")
        sys.stderr.flush()
        answer = sys.stdin.readline().strip()
        if answer != target.environment:
            raise BerthError(f"confirmation did not match ('{answer}' is not '{target.environment}'); nothing was done")
        info["detail"] = "confirmed"


def push_if_needed(target: Target, report: CheckReport, log: StepLog) -> None:
    ctx = report.context
    with log.step("push") as info:
        pushed, _ = gitlocal.is_pushed(target.root, ctx.remote_url, ctx.branch, ctx.head)
        if pushed:
            info["detail"] = f"{ctx.branch} already has {ctx.head[:7]}"
            info["status"] = "skip"
            return
        # `--`: the URL is never read as an option (a value starting with '-' is refused before this, too)
        proc = gitlocal.git(target.root, *gitlocal.REMOTE_OPTIONS, "push", "--quiet", "--", ctx.remote_url,
                            f"HEAD:refs/heads/{ctx.branch}", check=False, timeout=300)
        if proc.returncode != 0:
            raise BerthError(
                f"git push to {gitlocal.public_url(ctx.remote_url)} failed: "
                f"{masked_tail(gitlocal.hide_credentials(proc.stderr, ctx.remote_url), 400, log.printer.mask)}",
                fix="pull and merge (or rebase) the remote branch, then deploy again; berth never force-pushes",
            )
        info["detail"] = f"{ctx.head[:7]} → {ctx.branch}"
