"""`berth status` and `berth logs`: read-only views of what runs on each host."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING

from berth.configuration.target import Target
from berth.errors import BerthError
from berth.remote.commands import git as git_commands
from berth.remote.engines.compose import in_dir
from berth.remote.session import HostSession, connect
from berth.remote.transport.ssh import SSHConnection
from berth.ui.output import StepPrinter

if TYPE_CHECKING:
    from berth.model.release import Release


def _session(target: Target, host, trust_new_host: bool, printer: StepPrinter) -> HostSession:
    from berth.remote.session import debug_hook, ssh_options

    return connect(target, SSHConnection(host, ssh_options(target, trust_new_host), on_command=debug_hook(printer),
                                         mask=printer.mask))


def collect_status(target: Target, trust_new_host: bool, printer: StepPrinter) -> list[dict]:
    from berth.deploy import lock as lock_stage
    from berth.deploy.release import read_history
    from berth.deploy.rollback import _services
    from berth.deploy.stages.verify import container_states

    if not target.hosts:
        raise BerthError(f"no host is configured for {target.environment}", fix="set SERVER_IP in .env or hosts in berth.toml")
    if target.engine == "swarm":
        return [swarm_status(target, trust_new_host, printer)]
    try:
        expected = _services(target)
    except BerthError:  # unreadable compose files: status still shows what runs
        expected = []
    from berth.remote.fanout import per_host

    def one(host) -> dict:
        session = _session(target, host, trust_new_host, printer)
        try:
            history, problems = read_history(session, limit=50)
            owner = lock_stage.read(session)
            containers = container_states(session)
            checkout = session.conn.run(git_commands.checkout_head(session.app_dir), timeout=60).out.strip()
            served = None
            if target.proxy:
                from berth.remote.commands import proxy

                served = proxy.serving(session.conn.run(proxy.read_config(session.state_dir), timeout=60).out)
        finally:
            session.close()
        if session.current_error:
            problems.append(session.current_error)
        problems.extend(session.notes)
        mine = [s for s in expected if s in host.services] if host.services else expected  # its roles' services
        return host_row(target, host.label, session.app_dir, session.current, history, containers, mine,
                        checkout, owner, problems, served)

    return per_host(target.hosts, one)  # every host at once: a fleet's status takes one host's time


def swarm_status(target: Target, trust_new_host: bool, printer: StepPrinter) -> dict:
    """A swarm stack, as its manager (the first host) sees it: each service's tasks on the nodes."""
    from berth.deploy import lock as lock_stage
    from berth.deploy.release import read_history
    from berth.remote.engines import swarm

    session = _session(target, target.hosts[0], trust_new_host, printer)
    try:
        project = session.compose.project
        history, problems = read_history(session, limit=50)
        owner = lock_stage.read(session)
        services = swarm.parse_services(session.conn.run(swarm.inspect_services(project), timeout=60).out, project)
        tasks = swarm.parse_tasks(session.conn.run(swarm.tasks(project), timeout=60).out, services)
        checkout = session.conn.run(git_commands.checkout_head(session.app_dir), timeout=60).out.strip()
    finally:
        session.close()
    return swarm_row(target, target.hosts[0].label, session.app_dir, session.current, history, services, tasks,
                     checkout, owner, problems)


def swarm_row(target: Target, label: str, app_dir: str, current, history: list, services, tasks, checkout: str | None,
              owner: dict | None, problems: list[str]) -> dict:
    """The status row of a stack (pure): a service is ready when every replica runs its image."""
    from berth.remote.engines.swarm import GAVE_UP

    row = host_row(target, label, app_dir, current, history, [], [], checkout, owner, problems)
    row["engine"] = "swarm"
    recorded = [(r or {}).get("images") or {} for r in [row["current"], *(row.get("last_deploy") or {},)]]
    names = {i.get("id"): i.get("name") for images in recorded for i in images.values() if i and i.get("id")}
    row["running"] = row["current"]  # swarm's services say what runs: the release berth recorded as current
    entries = []
    for s in services:
        mine = [t for t in tasks if t.service == s.name and t.running and t.image == s.image]
        nodes = len({t.node for t in mine})
        want = s.replicas
        ready = (len(mine) >= want if want is not None else bool(mine)) and s.update not in GAVE_UP
        text = f"{len(mine)}/{want if want is not None else 'global'} tasks on {nodes} node{'s' * (nodes != 1)}"
        if s.update and s.update != "completed":
            text += f", update {s.update}"
        failing = [t.error for t in tasks if t.service == s.name and t.error][:1]
        entries.append({"service": s.name, "container": names.get(s.image) or (  # the tag berth built
                            s.image[:19] if s.image.startswith("sha256:") else s.image),
                        "state": "running" if ready else "degraded",
                        "description": text, "health": None, "exit_code": None, "error": failing[0] if failing else None,
                        "health_log": None, "ready": ready, "expected": True, "proxy": False, "serves": None,
                        "started_at": None})
    row["services"] = entries
    row["healthy"] = bool(entries) and all(e["ready"] for e in entries)
    return row


def host_row(target: Target, label: str, app_dir: str, current: Release | dict | None, history: list, containers,
             expected: list[str], checkout: str | None, owner: dict | None, problems: list[str],
             served: dict[str, list[str]] | None = None) -> dict:
    """What one host runs, told from its containers (pure: the unit tests feed it every container state).

    The row is the `status --json` document of the host: releases appear in it as their records. `served`
    (berth's proxy on): container name → what the proxy sends to it (`:8080`, `https://app.example.com`).
    """
    from berth.deploy import lock as lock_stage
    from berth.deploy.release import running_release
    from berth.model.release import Release
    from berth.remote.commands.proxy import SERVICE as PROXY_SERVICE
    from berth.remote.engines.compose import missing_container

    present = {c.service for c in containers}
    listed = sorted([*containers, *(missing_container(s) for s in expected if s not in present)],
                    key=lambda c: (c.service, c.name))
    current, history = Release.of(current), [Release.of(r) for r in history]
    running = running_release(containers, history, current)
    last = history[-1] if history else None
    failed = last if last and not last.ok else None
    expected_set = set(expected) or present
    healthy = bool(listed) and all(c.ready for c in listed if c.service in expected_set)
    return {
        "host": label,
        "environment": target.environment,
        "app_dir": app_dir,
        "current": current.to_record() if current else None,
        # the release whose images run (None: no record matches what runs)
        "running": running.to_record() if running else None,
        "last_deploy": last.to_record() if last else None,
        "last_failure": failed.to_record() if failed else None,
        "checkout": checkout or None,
        "services": [
            {"service": c.service, "container": c.name or None, "state": c.status, "description": c.describe(),
             "health": c.health or None, "exit_code": c.exit_code if c.status in ("exited", "dead", "restarting") else None,
             "error": c.error or None, "health_log": c.health_log or None, "ready": c.ready,
             "expected": c.service in expected_set or (served is not None and c.service == PROXY_SERVICE),
             "proxy": served is not None and c.service == PROXY_SERVICE,
             "serves": (served or {}).get(c.name.lstrip("/")) if c.name else None,
             "started_at": c.started_at or None}
            for c in listed
        ],
        "problems": problems,
        "lock": ({"owner": owner, "holder": lock_stage.describe(owner), "stale": lock_stage.stale_reason(owner)}
                 if owner is not None else None),
        "healthy": healthy,
    }


def _running_line(r: dict) -> str:
    running, cur = r.get("running"), r.get("current")
    if running:
        commit = str(running.get("commit", "?"))[:7]
        if running.get("result") == "ok":
            return (f"  running  {commit} \"{running.get('subject', '')}\" release {running.get('id')} "
                    f"by {running.get('deployed_by')} {_ago(running.get('finished_at'))}")
        what = (f"rollback to {running.get('rollback_of')}" if running.get("kind") == "rollback"
                else f"deploy {running.get('id')}")
        failure = str(running.get("failure", ""))
        why = "failed verify" if "verify failed" in failure or "did not come back healthy" in failure else "failed"
        return f"  running  {commit} — {what} {why}"
    if any(s["state"] != "missing" for s in r["services"]):
        recorded = f"; the last recorded release is {cur.get('id')} ({str(cur.get('commit', '?'))[:7]})" if cur else ""
        return f"  running  containers whose images match no release record (changed by hand?){recorded}"
    if cur:
        return f"  running  nothing (release {cur.get('id')} was the last to run)"
    return "  running  nothing deployed by berth yet"


def _ago(stamp: str | None) -> str:
    if not stamp:
        return "?"
    try:
        then = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        return stamp
    secs = int((datetime.now(timezone.utc) - then).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= size:
            return f"{secs // size}{unit} ago"
    return f"{secs}s ago"


def fleet_line(rows: list[dict]) -> str | None:
    """With several hosts: which commit runs where, and whether the hosts drift apart (None for one host)."""
    if len(rows) < 2:
        return None
    where: dict[str, list[str]] = {}
    for r in rows:
        running = r.get("running")
        commit = str(running.get("commit", ""))[:7] if running and running.get("commit") else "nothing berth deployed"
        where.setdefault(commit, []).append(r["host"])
    if len(where) == 1:
        commit = next(iter(where))
        return f"fleet: all {len(rows)} hosts run {commit}"
    parts = [f"{commit} on {', '.join(hosts)}" for commit, hosts in sorted(where.items(), key=lambda kv: -len(kv[1]))]
    return f"fleet: DRIFT across {len(rows)} hosts — " + "; ".join(parts) + " (`berth deploy` brings them together)"


def render_status(rows: list[dict]) -> str:
    out = []
    fleet = fleet_line(rows)
    if fleet:
        out.append(fleet)
    for r in rows:
        out.append(f"{r['host']} ({r['environment']}) {r['app_dir']}")
        out.append(_running_line(r))
        failed = r.get("last_failure")
        if failed:
            out.append(f"  last {failed.get('kind', 'deploy')} FAILED: {str(failed.get('commit', '?'))[:7]} "
                       f"{_ago(failed.get('finished_at'))}: {failed.get('failure', '')}")
        lock = r.get("lock")
        if lock:
            out.append(f"  LOCKED   by {lock['holder']}")
            if lock["stale"]:
                out.append(f"           stale: {lock['stale']}; `berth lock release --force` releases it")
        shown = r.get("running") or r.get("current")
        if r["checkout"] and shown and r["checkout"] != shown.get("commit"):
            out.append(f"  checkout {r['checkout'][:7]} differs from the running release")
        for s in r["services"]:
            mark = "✓" if s["ready"] else "✗"
            extra = "" if s["expected"] else "  (not in the compose file)"
            if s.get("proxy"):
                extra = "  (berth's proxy)"
            elif s.get("serves"):
                extra = f"  ← serves {', '.join(s['serves'])}"
            out.append(f"  {mark} {s['service']:<16} {s['description']:<28} {s['container'] or ''}{extra}")
            if s.get("health_log") and not s["ready"]:
                out.append(f"      healthcheck said: {' '.join(s['health_log'].split())[:300]}")
        if not r["services"]:
            out.append("  no containers")
        for p in r["problems"]:
            out.append(f"  ! {p}")
    return "\n".join(out)


def stream_logs(target: Target, services: tuple[str, ...], tail: int, follow: bool, trust_new_host: bool,
                printer: StepPrinter) -> int:
    code = 0
    for host in target.hosts:
        session = _session(target, host, trust_new_host, printer)
        try:
            if len(target.hosts) > 1:
                printer.echo(f"== {host.label}")
            argv = session.compose.logs(services, tail=tail, follow=follow)
            # line by line: each line of a multi-line secret is a secret of its own (berth.secrets.masking.secret_forms)
            code = max(code, session.conn.stream(in_dir(session.app_dir, argv), printer.echo))
        finally:
            session.close()
    return code
