"""Release-safety commands: rollback, releases, audit, lock. Registered on the main `berth` group."""

from __future__ import annotations

import sys

import click

from berth.cli.context import report_outcome, target_options


@click.command()
@target_options
@click.argument("release", required=False)
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation (production asks otherwise).")
@click.option("--trust-new-host", is_flag=True, help="Accept the host key of a server never connected to before.")
@click.option("--lock-wait", type=click.FloatRange(0, 86400), default=0, help="Seconds to wait for another deploy's lock.")
@click.option("--timeout", "verify_timeout", type=click.IntRange(1, 3600), help="Seconds verify waits for health.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def rollback(obj, release, yes, trust_new_host, lock_wait, verify_timeout, as_json):
    """Return each host to RELEASE (an id or commit prefix from `berth releases`), or to the previous good one."""
    from berth.deploy.pipeline import DeployOptions
    from berth.deploy.rollback import run_rollback

    target = obj.target()
    printer = obj.printer(quiet=as_json)
    printer.line(f"berth rollback → {target.environment} ({', '.join(h.label for h in target.hosts)})")
    opts = DeployOptions(yes=yes, trust_new_host=trust_new_host, lock_wait=lock_wait, verify_timeout=verify_timeout)
    report_outcome(printer, as_json, lambda outcome: run_rollback(target, release, opts, printer, outcome),
                   lambda _: f"rolled back {target.environment}")


def _json(obj, printer, document) -> None:
    """A --json document, masked field by field (a target without hosts has no session, so no printer yet)."""
    if printer is None:

        printer = obj.printer()
    printer.json(document)


def _each_session(obj, trust_new_host):
    from berth.ops.status import _session

    target = obj.target()

    printer = obj.printer()
    for host in target.hosts:
        session = _session(target, host, trust_new_host, printer)
        try:
            yield target, host, session, printer
        finally:
            session.close()


@click.command()
@target_options
@click.option("-n", "--limit", default=20, show_default=True)
@click.option("--trust-new-host", is_flag=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def releases(obj, limit, trust_new_host, as_json):
    """Releases on each host, newest last: id, commit, result, who, when; * marks the running one."""
    from berth.deploy.release import read_history

    rows = []
    printer = None
    for _target, host, session, printer in _each_session(obj, trust_new_host):
        history, problems = read_history(session, limit=limit)
        current = session.current.id if session.current else None
        rows.append({"host": host.label, "current": current, "releases": [r.to_record() for r in history],
                     "problems": problems})
        if not as_json:  # release records come from the server: printed masked and cleaned
            printer.echo(f"{host.label}")
            for r in history:
                mark = "*" if r.id == current else " "
                kind = "rollback" if r.kind == "rollback" else "deploy"
                printer.echo(f" {mark} {r.id or '?':<26} {(r.commit or '?')[:7]}  {r.result or '?':<6} "
                             f"{kind:<8} {r.finished_at or '?'}  {r.deployed_by or '?'}")
            if not history:
                printer.echo("   no releases yet")
            for p in problems:
                printer.echo(f"   ! {p}")
    if as_json:
        _json(obj, printer, rows)


@click.command()
@target_options
@click.option("-n", "--limit", default=50, show_default=True)
@click.option("--trust-new-host", is_flag=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def audit(obj, limit, trust_new_host, as_json):
    """The append-only log of deploys, rollbacks and lock changes on each host."""
    from berth.deploy.release import read_audit

    rows = []
    printer = None
    for _target, host, session, printer in _each_session(obj, trust_new_host):
        events, problems = read_audit(session, limit)
        rows.append({"host": host.label, "events": events, "problems": problems})
        if not as_json:
            printer.echo(host.label)
            for e in events:
                rest = ", ".join(f"{k}={v}" for k, v in e.items() if k not in ("time", "event") and v not in (None, ""))
                printer.echo(f"  {e.get('time', '?')}  {e.get('event', '?'):<16} {rest}")
            for p in problems:
                printer.echo(f"  ! {p}")
    if as_json:
        _json(obj, printer, rows)


@click.group()
def lock():
    """The deploy lock on each host: status, acquire (e.g. for maintenance), release."""


@lock.command("status")
@target_options
@click.option("--trust-new-host", is_flag=True)
@click.pass_obj
def lock_status(obj, trust_new_host):
    from berth.deploy import lock as lock_stage

    held_any = False
    for _t, host, session, printer in _each_session(obj, trust_new_host):
        owner = lock_stage.read(session)
        if owner is None:
            printer.echo(f"{host.label}: unlocked")
            continue
        held_any = True
        stale = lock_stage.stale_reason(owner)
        # the owner's message and machine come from the server: masked and cleaned
        printer.echo(f"{host.label}: locked by {lock_stage.describe(owner)}"
                     + (f"\n  stale: {stale}; release it with `berth lock release --force`" if stale else ""))
    sys.exit(3 if held_any else 0)


@lock.command("acquire")
@target_options
@click.option("-m", "--message", required=True, help="Why (shown to anyone who tries to deploy).")
@click.option("--trust-new-host", is_flag=True)
@click.pass_obj
def lock_acquire(obj, message, trust_new_host):
    from berth.deploy import lock as lock_stage
    from berth.deploy.release import audit as audit_event
    from berth.model import git as gitlocal

    for target, host, session, printer in _each_session(obj, trust_new_host):
        who = gitlocal.user_identity(target.root)
        owner = lock_stage.new_owner(who, None, message, "manual lock")
        owner["pid"] = None  # a manual lock outlives this process: never stale by pid
        lock_stage.acquire(session, owner)
        audit_event(session, "lock-acquired", who=who, message=message)
        printer.echo(f"{host.label}: locked — \"{message}\"; `berth lock release` unlocks it")


@lock.command("release")
@target_options
@click.option("--force", is_flag=True, help="Release whoever holds it (check first that no deploy is running).")
@click.option("--trust-new-host", is_flag=True)
@click.pass_obj
def lock_release(obj, force, trust_new_host):
    from berth.deploy import lock as lock_stage
    from berth.deploy.release import audit as audit_event
    from berth.errors import BerthError
    from berth.model import git as gitlocal

    for target, host, session, printer in _each_session(obj, trust_new_host):
        owner = lock_stage.read(session)
        if owner is None:
            printer.echo(f"{host.label}: was not locked")
            continue
        manual = owner.get("command") == "manual lock"
        if not (force or manual or lock_stage.stale_reason(owner)):
            raise BerthError(f"{host.label} is locked by {lock_stage.describe(owner)}, which may still be running",
                             fix="wait for it, or pass --force once you are sure it is not running", exit_code=3)
        if not lock_stage.break_lock(session, owner):
            click.echo(f"{host.label}: was not locked any more")
            continue
        who = gitlocal.user_identity(target.root)
        audit_event(session, "lock-released", who=who, holder=lock_stage.describe(owner), forced=bool(force))
        printer.echo(f"{host.label}: released the lock of {lock_stage.describe(owner)}")


COMMANDS = [rollback, releases, audit, lock]
