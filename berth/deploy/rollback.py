"""Rollback: put a past release back — its commit, its images (kept, so nothing is rebuilt) and its
env file — then verify it. Used by `berth rollback` and automatically when a deploy fails verify."""

from __future__ import annotations

import time

from berth.deploy import decide
from berth.deploy import release as release_stage
from berth.deploy.decide import describe_release, pick
from berth.deploy.spec import switch_plan
from berth.deploy.stages import compose_up as compose_up_stage
from berth.deploy.stages import start_first
from berth.deploy.stages import sync as sync_stage
from berth.deploy.stages import verify as verify_stage
from berth.deploy.stages.compose_up import compose_up
from berth.deploy.steplog import StepLog
from berth.errors import BerthError
from berth.model.release import Release
from berth.remote.commands import release as release_commands
from berth.remote.engines import compose as compose_engine
from berth.remote.session import HostSession


def roll_back(session: HostSession, log: StepLog, to: Release, remote_url: str, services: list[str],
              urls: tuple[str, ...], timeout: float, env_file: str, switch=None,
              keep: frozenset[str] = frozenset()) -> verify_stage.VerifyResult:
    """Return the host to release `to` and verify it. `switch` (berth's proxy on: a SwitchPlan, its
    `rollouts` and `proxy`) makes the start-first services switch as in a deploy."""
    to = Release.of(to)
    label = session.host.label
    with log.step("sync", label) as info:
        running = (session.current.commit if session.current else None)
        info["detail"] = sync_stage.sync(session, remote_url, to.commit, running).describe()
    with log.step("env", label) as info:
        result = session.conn.run(release_commands.restore_env(session.state_dir, to.id,
                                                               f"{session.app_dir}/{env_file}", session.app_dir,
                                                               list(to.files or ())), timeout=60)
        if result.exit_code == 3:
            what = "env file" + (" or a secret or config file" if to.files else "")
            raise BerthError(f"the {what} of release {to.id} is no longer kept on {label}",
                             fix="deploy that commit again with the env file it needs (berth deploy)")
        if not result.ok:
            raise BerthError(f"could not restore the env file on {label}: {result.tail(300)}")
        info["detail"] = f"{', '.join([env_file, *(to.files or ())])} of release {to.id}"
    with log.step("images", label) as info:
        rebuild, info["detail"] = restore_images(session, to)
    retired: list[str] = []
    with log.step("deploy", label) as info:
        if switch is not None and start_first.compose_supports_proxy(session):
            if rebuild:
                compose_up_stage.compose_build(session)
            switched = start_first.deploy(session, services, switch.rollouts, switch.proxy, timeout, keep=keep)
            retired = switched.retired
            info["detail"] = switched.describe() + (" (built)" if rebuild else "")
        else:
            compose_up(session, build=rebuild)
            info["detail"] = "up" + (" (built)" if rebuild else "")
        users = decide.file_users_to_recreate(session.current, to.files or {}, to.files_checksum or "")
        if users:
            compose_up_stage.recreate(session, users)
            info["detail"] += f"; {', '.join(users)} recreated (its secret or config files changed)"
    with log.step("verify", label) as info:
        verified = verify_stage.verify(session, services, urls, timeout, ignore=set(retired))
        info["detail"] = verified.describe()
        if not verified.ok:
            raise BerthError(f"release {to.id} did not come back healthy on {label}: " + "; ".join(verified.problems),
                             fix="look at `berth status` and `berth logs`; the host needs a person now",
                             details="\n".join(f"--- {s} ---\n{t}" for s, t in verified.logs.items()))
    return verified


def restore_images(session: HostSession, to: Release | dict) -> tuple[bool, str]:
    """Put back the images `to` ran; (whether compose must build, what happened, for the step)."""
    to = Release.of(to)
    images = to.images or {}
    if not images:
        return True, "images not kept: rebuilding"
    project = session.compose.project
    result = session.conn.run(compose_engine.restore_images(images, project), timeout=120)
    if not result.ok:
        raise BerthError(f"could not restore the images of release {to.id} on {session.host.label}: "
                         f"{result.err.strip()[-300:]}")
    services = list(images)
    said = [line.split() for line in result.out.splitlines()]
    gone = [services[int(n)] for word, n in said if word == "gone" and n.isdigit() and int(n) < len(services)]
    moved = [services[int(n)] for word, n in said if word == "moved" and n.isdigit() and int(n) < len(services)]
    notes = []
    unknown = [s for s in moved if compose_engine.builds_image(s, images[s], project) is None]
    for s in moved:
        name = images[s]["name"]
        if s in unknown:
            notes.append(f"{name} now points at another image than release {to.id} ran, and its record (from an "
                         "older berth) does not say whether this project builds it: rebuilding")
        else:
            notes.append(f"{name} now points at another image than release {to.id} ran; the rollback uses the "
                         "current one")
    rebuild = bool(gone or unknown)
    head = "images not kept: rebuilding" if gone else ("rebuilding" if rebuild else "kept images restored, no build")
    return rebuild, "; ".join([head, *notes])


def restore_unstarted(session: HostSession, good: Release | dict, remote_url: str, env_file: str) -> str:
    """The checkout, env file and built image tags of `good` again, when no container was replaced yet."""
    good = Release.of(good)
    sync_stage.sync(session, remote_url, good.commit, good.commit)
    result = session.conn.run(release_commands.restore_env(session.state_dir, good.id,
                                                           f"{session.app_dir}/{env_file}", session.app_dir,
                                                           list(good.files or ())), timeout=60)
    if not result.ok:
        raise BerthError(f"could not put back the env file of release {good.id}: {result.tail(300)}")
    _, detail = restore_images(session, good)
    return f"release {good.id}: checkout, env file; {detail}"


def rollback_record(to: Release | dict, verified: verify_stage.VerifyResult, who: str, host: str, reason: str,
                    project: str, taken: set[str] = frozenset()) -> Release:
    """The record of a rollback: `to`'s commit and settings, the images that now run; its id is not in `taken`."""
    to = Release.of(to)
    now = time.time()
    was = to.images or {}
    return _rollback_of(to, taken, now, deployed_by=who, host=host, reason=reason, result="ok",
                        finished_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                        images={c.service: _image_entry(c, was.get(c.service, {}), project) for c in verified.containers})


def _rollback_of(to: Release, taken, now: float, **values) -> Release:
    """A rollback to `to`: its commit and settings, a new id (not in `taken`), started `now`."""
    return Release(id=release_stage.new_release_id(to.commit, now, taken), kind="rollback", commit=to.commit,
                   subject=to.subject, branch=to.branch, environment=to.environment, env_checksum=to.env_checksum,
                   files=to.files, files_checksum=to.files_checksum, compose=to.compose, rollback_of=to.id,
                   started_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)), **values)


def _image_entry(container, was: dict, project: str) -> dict:
    entry = {"name": container.image, "id": container.image_id}
    built = compose_engine.builds_image(container.service, was, project)
    if built is not None:  # unknown stays unknown: the next rollback treats the name as maybe shared
        entry["built"] = built
    return entry


def run_rollback(target, wanted: str | None, opts, printer, outcome: dict, transport=None) -> dict:
    """`berth rollback [RELEASE]` on every host of the target, under the deploy lock."""
    from berth.deploy import interrupt
    from berth.deploy.gate import confirm
    from berth.model import git as gitlocal

    if target.engine == "swarm":  # the whole stack (berth.deploy.swarm)
        from berth.deploy.swarm import run_stack_rollback

        return run_stack_rollback(target, wanted, opts, printer, outcome, transport)
    log = StepLog(printer)
    outcome.update({"ok": False, "environment": target.environment, "hosts": [], "steps": log.steps})
    if not target.hosts:
        raise BerthError(f"no host is configured for {target.environment}", fix="set SERVER_IP or hosts in berth.toml")
    remote_url = gitlocal.target_remote_url(target) or ""  # a refused value stops here, before any host
    confirm(target, opts.yes, log, action="roll back")
    who = gitlocal.user_identity(target.root)
    services = _services(target)
    with interrupt.deferred():  # a Ctrl-C finishes the step in progress, then returns to what ran before
        _each_host(target, wanted, opts, remote_url, who, services, log, outcome, transport)
    outcome["ok"] = all(h["ok"] for h in outcome["hosts"])
    return outcome


def _each_host(target, wanted, opts, remote_url: str, who: str, services: list[str], log: StepLog,
               outcome: dict, transport=None) -> None:
    """Each host: connect, lock, roll back (several hosts at once, as a deploy's batch); `transport` makes the
    connection (default SSH)."""
    from berth.deploy import interrupt

    printer = log.printer
    if len(target.hosts) > 1:
        _all_at_once(target, wanted, opts, remote_url, who, services, log, outcome, transport)
        return
    for n, host in enumerate(target.hosts):
        if n and interrupt.requested():  # it came while the last host recorded its rollback
            raise interrupt.Interrupted(interrupt.requested(), f"the record step on {target.hosts[n - 1].label}")
        host_out = {"host": host.label, "ok": False}
        outcome["hosts"].append(host_out)
        roll_back_host(target, host, wanted, opts, remote_url, who, services, log, host_out,
                       transport(host) if transport else None)
    if interrupt.requested():
        printer.line(f"  ! {interrupt.requested()} came after the rollback was verified: it is recorded and stays")


def _all_at_once(target, wanted, opts, remote_url: str, who: str, services: list[str], log: StepLog,
                 outcome: dict, transport=None) -> None:
    """Every host at the same time, each line marked with its host; the first failure is raised once all are
    done, naming the others."""
    from berth.deploy.fleet import each_at_once

    rows = {h.label: {"host": h.label, "ok": False} for h in target.hosts}
    outcome["hosts"].extend(rows.values())
    width = max(len(h.label) for h in target.hosts)
    failed = each_at_once(target.hosts, width, log, lambda h, hlog: roll_back_host(
        target, h, wanted, opts, remote_url, who, services, hlog, rows[h.label], transport(h) if transport else None))
    if failed:
        host, exc = failed[0]
        exc.what = f"{host.label}: {exc.what}" + "".join(f"; {h.label} failed too: {e.what}" for h, e in failed[1:])
        exc.exit_code = max(e.exit_code for _, e in failed)
        raise exc


def roll_back_host(target, host, wanted, opts, remote_url: str, who: str, services: list[str], log: StepLog,
                   host_out: dict, connection=None, why: str = "manual") -> None:
    """One host: connect, lock, roll back to `wanted` (None: the previous good release); `connection`
    replaces SSH (in-process tests). Also how a fleet deploy returns the hosts it updated."""
    from berth.deploy import lock as lock_stage
    from berth.remote import session as connect_stage
    from berth.remote.session import debug_hook, ssh_options
    from berth.remote.transport.ssh import SSHConnection

    printer = log.printer
    conn = connection or SSHConnection(host, ssh_options(target, opts.trust_new_host), on_command=debug_hook(printer),
                                       mask=printer.mask)
    with log.step("connect", host.label):
        session = connect_stage.connect(target, conn)
    for note in session.notes:
        printer.line(f"  ! {note}")
    try:
        with lock_stage.held(session, lock_stage.new_owner(who, None, "", "rollback"), log, wait=opts.lock_wait):
            _roll_back_host(session, log, target, wanted, opts, remote_url, who, services, host_out, why)
    finally:
        session.close()


def _roll_back_host(session: HostSession, log: StepLog, target, wanted, opts, remote_url: str, who: str,
                    services: list[str], host_out: dict, why: str = "manual") -> None:
    """One host: pick, say "from X to Y", roll back, record the attempt whatever its outcome."""
    from berth.deploy import interrupt
    from berth.errors import NEEDS_A_PERSON

    printer = log.printer
    history, _ = release_stage.read_history(session, limit=500)
    running = release_stage.running_release(verify_stage.container_states(session), history, session.current)
    running = running or session.current
    to = pick(history, running, wanted)
    printer.line(f"  rolling back from {describe_release(running)} to release {to.id} "
                 f"({to.commit[:7]} \"{to.subject or ''}\")")
    host_out.update(rolled_back_from=(running.id if running else None), to=to.id)
    taken = {r.id for r in history}
    reason = wanted or "previous"
    try:
        verified = roll_back(session, log, to, remote_url, to.services or services,
                             tuple(to.health_urls or target.health_urls_of(session.host)),
                             float(opts.verify_timeout or to.verify_timeout or target.verify_timeout),
                             target.env_file, switch=switch_plan(target))
    except BerthError as exc:
        with interrupt.uninterruptible():
            record = _failed_rollback_record(session, to, who, reason, exc, taken)
            back = _return_to(session, log, running, to, remote_url, services, target, exc)
            if back is not None:
                record.returned_to = running.id
            _record(session, log, record, history, target, who, to, ok=False, why=why)
            host_out["release"] = record.to_record()
            if back is None:
                exc.exit_code = NEEDS_A_PERSON
                host_out["state"] = "needs-a-person"
            else:
                host_out["state"] = "rolled-back"
        raise
    record = rollback_record(to, verified, who, session.host.address, reason=reason,
                             project=session.compose.project, taken=taken)
    with interrupt.uninterruptible():
        _record(session, log, record, history, target, who, to, ok=True, host_out=host_out, why=why)
    host_out.update(ok=True, release=record.to_record(), state="rolled-back-to")


def _failed_rollback_record(session: HostSession, to: Release, who: str, reason: str, exc: BerthError,
                            taken: set) -> Release:
    """The record of a rollback that failed: what runs now is `to`'s attempt, so `status` can name it."""
    record = _rollback_of(to, taken, time.time(), reason=reason, host=session.host.address, deployed_by=who,
                          result="failed", failure=exc.what)
    if not session.conn.lost:
        try:
            containers = verify_stage.container_states(session)
            was = to.images or {}
            record.images = {c.service: _image_entry(c, was.get(c.service, {}), session.compose.project)
                             for c in containers if c.image_id}
        except BerthError:
            pass
    return record


def _return_to(session: HostSession, log: StepLog, before: Release | None, to: Release, remote_url: str,
               services: list[str], target, exc: BerthError):
    """After a failed rollback: back to the release that ran before it, when that one was good. None: not back."""
    if session.conn.lost and not session.conn.reconnect():
        exc.what += f"; berth could not reconnect to {session.host.label}, so the rollback may be half done there"
        return None
    if not before or not before.ok or before.id == to.id:
        what = describe_release(before)
        exc.what += f"; what ran before ({what}) was not a good release either, so {session.host.label} is left as it is"
        return None
    try:
        back = roll_back(session, log, before, remote_url, before.services or services,
                         tuple(before.health_urls or target.health_urls_of(session.host)),
                         float(before.verify_timeout or target.verify_timeout), target.env_file,
                         switch=switch_plan(target))
    except BerthError as again:
        exc.what += f"; returning to {before.id}, which ran before, failed too: {again.what}"
        return None
    exc.what += f"; {session.host.label} is back on release {before.id}, which ran before and is healthy"
    return back


def _record(session: HostSession, log: StepLog, record: Release, history: list[Release], target, who: str,
            to: Release,
            ok: bool, host_out: dict | None = None, why: str = "manual") -> None:
    if session.conn.lost:
        return
    with log.step("record", session.host.label) as info:
        release_stage.record(session, record, env_file=target.env_file if ok else None,
                             files=list(record.files or ()) if ok else None)
        warnings = release_stage.keep_and_prune(session, record, history, target.keep_releases) if ok else []
        release_stage.audit(session, "rollback", who=who, to=to.id, release=record.id, reason=why,
                            result="ok" if ok else "failed", failure=record.failure)
        info["detail"] = (f"release {record.id} (rollback to {to.id}, {'ok' if ok else 'failed'})"
                          + "".join(f"; {w}" for w in warnings))
        if warnings and host_out is not None:  # recorded all the same; the step says what was not kept
            info["status"] = "warn"
            host_out["warnings"] = warnings


def _services(target) -> list[str]:
    """The services verify expects: those compose starts, with COMPOSE_PROFILES from the local env file."""
    from berth.model.compose import resolve as compose_config
    from berth.model.compose.file import load_compose_file

    files = [load_compose_file(target.root / name) for name in target.compose_files]
    env = compose_config.project_environment(target) if (target.root / target.env_file).exists() else {}
    written = compose_config.active_services(files, env)
    try:  # the model also holds the services of included files (include:)
        started = compose_config.resolve_compose(target, env).model["services"]
    except BerthError:
        return written
    return [s for s in written if s in started] + [s for s in started if s not in written]
