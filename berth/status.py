"""`berth status` and `berth logs`: read-only views of what runs on each host."""

from __future__ import annotations

from datetime import datetime, timezone

from berth.commands import git as git_commands
from berth.config import Target
from berth.connect import HostSession, connect
from berth.engines.compose import in_dir
from berth.errors import BerthError
from berth.output import StepPrinter
from berth.transport.ssh import SSHConnection


def _session(target: Target, host, trust_new_host: bool, printer: StepPrinter) -> HostSession:
    from berth.pipeline import debug_hook, ssh_options

    return connect(target, SSHConnection(host, ssh_options(target, trust_new_host), on_command=debug_hook(printer),
                                         mask=printer.mask))


def collect_status(target: Target, trust_new_host: bool, printer: StepPrinter) -> list[dict]:
    from berth import lock as lock_stage
    from berth.release import read_history
    from berth.verify import container_states

    if not target.hosts:
        raise BerthError(f"no host is configured for {target.environment}", fix="set SERVER_IP in .env or hosts in berth.toml")
    rows = []
    for host in target.hosts:
        session = _session(target, host, trust_new_host, printer)
        try:
            history, problems = read_history(session, limit=5)
            owner = lock_stage.read(session)
            containers = container_states(session)
            checkout = session.conn.run(git_commands.checkout_head(session.app_dir), timeout=60).out.strip()
        finally:
            session.close()
        if session.current_error:
            problems.append(session.current_error)
        current = session.current or {}
        last = history[-1] if history else None
        rows.append({
            "host": host.label,
            "environment": target.environment,
            "app_dir": session.app_dir,
            "current": current or None,
            "last_deploy": last,
            "checkout": checkout or None,
            "services": [
                {"service": c.service, "container": c.name, "state": c.describe(), "ready": c.ready,
                 "started_at": c.started_at}
                for c in containers
            ],
            "problems": problems,
            "lock": ({"owner": owner, "holder": lock_stage.describe(owner), "stale": lock_stage.stale_reason(owner)}
                     if owner is not None else None),
            "healthy": bool(containers) and all(c.ready for c in containers),
        })
    return rows


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


def render_status(rows: list[dict]) -> str:
    out = []
    for r in rows:
        out.append(f"{r['host']} ({r['environment']}) {r['app_dir']}")
        cur = r["current"]
        if cur:
            out.append(f"  running  {cur.get('commit', '?')[:7]} \"{cur.get('subject', '')}\" release {cur.get('id')} "
                       f"by {cur.get('deployed_by')} {_ago(cur.get('finished_at'))}")
        else:
            out.append("  running  nothing deployed by berth yet")
        last = r["last_deploy"]
        if last and last.get("result") != "ok":
            out.append(f"  last deploy FAILED: {last.get('commit', '?')[:7]} {_ago(last.get('finished_at'))}: "
                       f"{last.get('failure', '')}")
        lock = r.get("lock")
        if lock:
            out.append(f"  LOCKED   by {lock['holder']}")
            if lock["stale"]:
                out.append(f"           stale: {lock['stale']}; `berth lock release --force` releases it")
        if r["checkout"] and cur and r["checkout"] != cur.get("commit"):
            out.append(f"  checkout {r['checkout'][:7]} differs from the running release")
        for s in r["services"]:
            mark = "✓" if s["ready"] else "✗"
            out.append(f"  {mark} {s['service']:<16} {s['state']:<28} {s['container']}")
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
            # line by line: each line of a multi-line secret is a secret of its own (berth.secrets.secret_forms)
            code = max(code, session.conn.stream(in_dir(session.app_dir, argv), printer.echo))
        finally:
            session.close()
    return code
