"""`berth deploy`: the same pipeline every time — check, confirm, push, then per host connect, lock and
the deploy steps (berth.deploy.steps), then record; a failure after the server changed is undone.
Several hosts go in batches, every host of a batch at once (berth.deploy.fleet); engine = "swarm" is a
stack through its manager (berth.deploy.swarm). Each step is timed and shown as it finishes."""

from __future__ import annotations

import time
from collections.abc import Callable

from berth.configuration.target import Host, Target
from berth.deploy import decide, interrupt
from berth.deploy import lock as lock_stage
from berth.deploy import release as release_stage
from berth.deploy.gate import check_or_stop, confirm, push_if_needed
from berth.deploy.spec import DeployOptions, DeploySpec, for_host, make_spec
from berth.deploy.steplog import StepLog
from berth.deploy.steps import RECORD, HostRun, Progress, Step, VerifyFailed, deploy_steps
from berth.errors import NEEDS_A_PERSON, BerthError
from berth.model import git as gitlocal
from berth.model.release import Release
from berth.remote import session as connect_stage
from berth.remote.session import debug_hook, ssh_options
from berth.remote.transport import Transport
from berth.remote.transport.ssh import SSHConnection
from berth.ui.output import StepPrinter


def run_deploy(target: Target, opts: DeployOptions, printer: StepPrinter, outcome: dict,
               transport: Callable[[Host], Transport] | None = None) -> dict:
    """Deploy to every host of the target; `outcome` is filled in as it goes (for --json, even on failure).

    `transport` makes the connection to a host (default SSH); in-process tests give a scripted one.
    """
    if target.engine == "swarm":  # a stack through the manager (berth.deploy.swarm)
        from berth.deploy.swarm import run_stack_deploy

        return run_stack_deploy(target, opts, printer, outcome, transport)
    log = StepLog(printer)
    started = time.monotonic()
    outcome.update({"ok": False, "environment": target.environment, "commit": None, "hosts": [], "steps": log.steps})
    report = check_or_stop(target, log, skip={"git.unpushed"} if opts.push else set(), outcome=outcome)
    outcome["commit"] = report.context.head
    spec = make_spec(target, opts, report.context)
    printer.line(f"  deploying {spec.commit[:7]} \"{spec.subject}\" to {target.environment}")
    confirm(target, opts.yes, log)
    if opts.push:
        push_if_needed(target, report, log)
    hosts = target.hosts
    try:
        with interrupt.deferred():  # from here a Ctrl-C finishes the step in progress and rolls back
            if len(hosts) > 1:
                _deploy_fleet(spec, target, log, outcome, transport)
            else:
                for host in hosts:
                    host_out = {"host": host.label, "ok": False, "release": None, "state": "not-reached"}
                    outcome["hosts"].append(host_out)
                    deploy_host(spec, host, log, host_out, connection=transport(host) if transport else None)
            if interrupt.requested():
                printer.line(f"  ! {interrupt.requested()} came after the release was verified: it is recorded and stays")
    except BerthError as exc:
        where_hosts_are(outcome["hosts"], [h.label for h in hosts], exc, printer)
        raise
    if len(hosts) > 1:
        printer.line(f"  fleet: all {len(hosts)} hosts run {spec.commit[:7]}")
    outcome["ok"] = all(h["ok"] for h in outcome["hosts"])
    outcome["seconds"] = round(time.monotonic() - started, 3)
    return outcome




def _deploy_fleet(spec: DeploySpec, target: Target, log: StepLog, outcome: dict,
                  transport: Callable[[Host], Transport] | None) -> None:
    """Several hosts, in batches and each batch at once (berth.deploy.fleet); one --json row per host."""
    from berth.deploy import fleet
    from berth.deploy.rollback import roll_back_host

    if target.fleet.build == "once":  # the first host that needs a build builds; the others load its images
        from dataclasses import replace

        from berth.deploy.stages.shared_build import SharedBuild

        spec = replace(spec, shared_build=SharedBuild())
    rows = {h.label: {"host": h.label, "ok": False, "release": None, "state": "not-reached"} for h in target.hosts}
    outcome["hosts"].extend(rows.values())

    def deploy_one(host: Host, hlog: StepLog, row: dict) -> None:
        deploy_host(spec, host, hlog, row, connection=transport(host) if transport else None)

    def return_one(host: Host, release_id: str, hlog: StepLog, row: dict) -> None:
        roll_back_host(target, host, release_id, spec.opts, spec.remote_url, spec.who, spec.services, hlog, row,
                       transport(host) if transport else None, why="another host of the rollout failed")

    outcome["batches"] = [[h.label for h in b.hosts] for b in fleet.batches(target.hosts, target.fleet)]
    fleet.roll_out(target.hosts, target.fleet, log, rows, deploy_one, return_one)


HOST_STATES = {
    "deployed": "runs the new release",
    "rolled-back": "serves the release it ran before",
    "unchanged": "unchanged: serves what it ran before",
    "needs-a-person": "does NOT serve its last good release",
    "not-reached": "not touched",
    "unreachable": "could not be reached: not touched",
    "returned": "went back to the release it ran before",
}


def where_hosts_are(hosts: list[dict], labels: list[str], exc: BerthError, printer: StepPrinter) -> None:
    """After a failed deploy: one line per host saying what it serves, and the next command in `exc.fix`."""
    seen = {h["host"] for h in hosts}
    rows = [*hosts, *({"host": label, "state": "not-reached"} for label in labels if label not in seen)]
    if len(rows) > 1 or exc.exit_code == NEEDS_A_PERSON:
        for h in rows:
            printer.line(f"  {h['host']}: {HOST_STATES.get(h.get('state', ''), h.get('state', '?'))}")
    if exc.exit_code == NEEDS_A_PERSON:
        bad = ", ".join(h["host"] for h in rows if h.get("state") == "needs-a-person")
        exc.fix = (f"{bad} needs a person: `berth status` and `berth doctor` show what runs there; then `berth "
                   "rollback RELEASE` to a release `berth releases` lists as ok, or fix and `berth deploy`")




def deploy_host(spec: DeploySpec, host: Host, log: StepLog, host_out: dict, steps: list[Step] | None = None,
                connection: Transport | None = None) -> None:
    """Connect, lock, run the steps, record; `connection` replaces SSH (in-process tests)."""
    spec = for_host(spec, host)  # the services of its roles
    conn = connection or SSHConnection(host, ssh_options(spec.target, spec.opts.trust_new_host),
                                       on_command=debug_hook(log.printer), mask=log.printer.mask)
    with log.step("connect", host.label) as info:
        try:
            session = connect_stage.connect(spec.target, conn)
        except BerthError:
            host_out["state"] = "unreachable"
            raise
        info["detail"] = (f"{session.user}@{host.address} (docker {session.docker_version}, "
                          f"compose {session.compose.variant} {session.compose_version})")
    for note in session.notes:
        log.printer.line(f"  ! {note}")
    try:
        owner = lock_stage.new_owner(spec.who, spec.commit, "", "deploy")
        with lock_stage.held(session, owner, log, wait=spec.opts.lock_wait):
            run = start_host_run(spec, session, log, host_out)
            good = decide.good_release(run.current)
            host_out["previous"] = good.id if good else None  # what a fleet's on_failure returns it to
            run_steps(run, steps if steps is not None else deploy_steps(spec.target))
    finally:
        session.close()
        host_out["ssh_connections"] = conn.connections_opened


def start_host_run(spec: DeploySpec, session, log: StepLog, host_out: dict) -> HostRun:
    """The release record this deploy will write, from what the host runs and has recorded."""
    history, problems = release_stage.read_history(session, limit=200)
    current = session.current
    if session.current_error:
        log.printer.line(f"  ! {session.current_error}"
                         + ("" if session.current else "; treating this host as having no running release"))
    for p in problems:
        log.printer.line(f"  ! {p}")
    return HostRun(spec, session, log, new_release(spec, session, current, history), current, history, host_out)


def new_release(spec: DeploySpec, session, current: Release | None, history: list[Release]) -> Release:
    return Release(
        id=release_stage.new_release_id(spec.commit, taken={r.id for r in history}),
        kind="deploy",
        commit=spec.commit,
        subject=spec.subject,
        branch=spec.branch,
        environment=spec.target.environment,
        host=session.host.address,
        deployed_by=spec.who,
        started_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        env_checksum=spec.env_checksum,
        files=spec.files or None,
        files_checksum=spec.files_checksum or None,
        compose=f"{session.compose.variant} {session.compose_version}",
        previous=current.commit if current else None,
        services=spec.services,
        health_urls=[gitlocal.public_url(u) for u in spec.health_urls],
        verify_timeout=spec.timeout,
        result="failed",
    )


def run_steps(run: HostRun, steps: list[Step]) -> None:
    """Each step that applies, in order; then the release is recorded, whatever happened once the host changed."""
    try:
        for step in steps:
            if not step.applies(run):
                continue
            with run.log.step(step.name, run.label) as info:
                info["detail"] = step.run(run)
            step.after(run)
        _succeeded(run)
    except BerthError as exc:
        _failed(run, exc)
        raise
    finally:
        _record(run)


def _succeeded(run: HostRun) -> None:
    containers = run.verified.containers if run.verified else []
    run.release.images = _images_of(containers, run.spec.built, run.session.compose.project)
    run.release.containers = {c.service: c.id for c in containers}
    run.release.result = "ok"
    run.host_out["ok"] = True


def _failed(run: HostRun, exc: BerthError) -> None:
    if run.release.failure is None:
        run.release.failure = run.log.printer.mask(exc.what)
    if not run.progress.changed and isinstance(exc, interrupt.Interrupted):
        exc.what += "; nothing on the server had been changed"
    if run.progress.changed:
        _undo(run, exc)
    run.host_out["state"] = _host_state(exc, run.progress)


def _record(run: HostRun) -> None:
    if run.progress.changed and run.session.conn.lost:
        run.log.printer.line("  ! no release record was written (the connection is gone); `berth status` shows the "
                             "server's state, and deploying again completes it")
    elif run.progress.changed:
        run.release.finished_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        run.release.duration = round(time.monotonic() - run.started, 3)
        try:
            with interrupt.uninterruptible(), run.log.step(RECORD.name, run.label) as info:
                info["detail"] = RECORD.run(run)
                if run.host_out.get("warnings"):  # recorded all the same; the step says what was not kept
                    info["status"] = "warn"
        except BerthError:
            if run.release.ok:
                raise
    if run.host_out.get("ok"):
        run.host_out["state"] = "deployed"


def _images_of(containers, built: set[str], project: str) -> dict:
    from berth.remote.engines import compose as compose_engine

    return {c.service: {"name": c.image, "id": c.image_id, "built": c.service in built or bool(
        compose_engine.builds_image(c.service, {"name": c.image}, project))} for c in containers if c.image_id}


def _undo(run: HostRun, exc: BerthError) -> None:
    """After a failure on a changed server: put the running release back, and say what the host now runs.

    Before `up` only the checkout, env file and image tags changed: those go back (no container was
    touched). From `up` on, the full rollback runs. The outcome is written into `exc` (message, exit code).
    """
    session, label = run.session, run.label
    good = decide.good_release(run.current)
    with interrupt.uninterruptible():
        if session.conn.lost:
            run.log.printer.line(f"  ! {session.conn.lost}; reconnecting to undo the release")
            if not session.conn.reconnect():
                exc.what += (f"; berth could not reconnect to {label}, so the failed release may be half in place "
                             "there: the next berth deploy (or berth rollback) from any machine finishes or undoes it")
                exc.exit_code = NEEDS_A_PERSON
                return
        if run.progress.up:
            _note_failed_images(run)
        action = decide.undo_action(good, run.spec.opts.rollback, run.progress.up)
        if action in ("keep", "none"):
            exc.what += ("; --no-rollback: the failed release stays in place for debugging" if action == "keep"
                         else "; there is no earlier good release on this host to roll back to" if run.progress.up
                         else "")
            if run.progress.up:
                exc.exit_code = NEEDS_A_PERSON
            return
        try:
            exc.what += _put_back(run, good, action)
        except BerthError as undo_error:
            exc.what += f"; undoing it failed too: {undo_error.what}"
            exc.exit_code = NEEDS_A_PERSON
            return
        run.release.rolled_back_to = good.id
        run.host_out["rolled_back_to"] = good.id
        release_stage.audit(session, "rollback", who=run.spec.who, to=good.id, reason=_reason(exc),
                            failed_release=run.release.id)


def _note_failed_images(run: HostRun) -> None:
    """What the failed release ran, so that `status` and `rollback` can recognise it later."""
    from berth.deploy.stages import verify as verify_stage

    try:
        run.release.images = _images_of(verify_stage.container_states(run.session), run.spec.built,
                                        run.session.compose.project)
    except BerthError:
        pass


def _put_back(run: HostRun, good: Release, action: str) -> str:
    """Return the host to `good`: roll back (containers were replaced) or restore (they were not)."""
    from berth.deploy import rollback as rollback_stage

    spec = run.spec
    if action == "rollback":
        back = rollback_stage.roll_back(
            run.session, run.log, good, spec.remote_url, good.services or spec.services,
            tuple(good.health_urls or spec.health_urls),
            float(good.verify_timeout or spec.timeout), spec.target.env_file,
            switch=spec if spec.target.proxy else None,
            # the services a failed deploy never switched still run the good release's container
            keep=frozenset(r.service for r in spec.rollouts) - set(run.switch.switched))
        run.host_out["rollback_images"] = {c.service: c.image_id for c in back.containers}
        return f"; rolled back to release {good.id} ({good.commit[:7]}), which is healthy again"
    with run.log.step("restore", run.label) as info:
        info["detail"] = rollback_stage.restore_unstarted(run.session, good, spec.remote_url, spec.target.env_file)
    return (f"; nothing had been restarted, and the checkout, env file and images of release "
            f"{good.id} ({good.commit[:7]}) are back in place")


def _reason(exc: BerthError) -> str:
    if isinstance(exc, VerifyFailed):
        return "verify failed"
    if isinstance(exc, interrupt.Interrupted):
        return exc.what
    return "deploy failed"


def _host_state(exc: BerthError, progress: Progress) -> str:
    """For --json: what the host serves after a failed deploy."""
    if exc.exit_code == NEEDS_A_PERSON:
        return "needs-a-person"
    return "rolled-back" if progress.changed else "unchanged"
