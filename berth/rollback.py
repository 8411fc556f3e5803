"""Rollback: put a past release back — its commit, its images (kept, so nothing is rebuilt) and its
env file — then verify it. Used by `berth rollback` and automatically when a deploy fails verify."""

from __future__ import annotations

import time

from berth import release as release_stage
from berth import sync as sync_stage
from berth import verify as verify_stage
from berth.commands import release as release_commands
from berth.connect import HostSession
from berth.deploy import compose_up
from berth.engines import compose as compose_engine
from berth.errors import BerthError
from berth.steps import StepLog


def pick(history: list[dict], current: dict | None, wanted: str | None) -> dict:
    """The release to return to: `wanted` (an id or commit prefix), else the last good one before current."""
    good = [r for r in history if r.get("result") == "ok" and r.get("commit") and r.get("id")]
    if wanted:
        matches = [r for r in good if r["id"] == wanted or r["id"].startswith(wanted) or r["commit"].startswith(wanted)]
        if not matches:
            known = ", ".join(r["id"] for r in good[-5:]) or "none"
            raise BerthError(f"no successful release matches '{wanted}'",
                             fix=f"pick one that `berth releases` lists (recent: {known})", exit_code=2)
        return matches[-1]
    current_id = (current or {}).get("id")
    current_commit = (current or {}).get("commit")
    older = [r for r in good if r["id"] != current_id and r["commit"] != current_commit]
    if not older:
        raise BerthError("there is no earlier successful release to roll back to",
                         fix="`berth releases` lists what this host has run")
    return older[-1]


def roll_back(session: HostSession, log: StepLog, to: dict, remote_url: str, services: list[str],
              urls: tuple[str, ...], timeout: float, env_file: str) -> verify_stage.VerifyResult:
    label = session.host.label
    with log.step("sync", label) as info:
        info["detail"] = sync_stage.sync(session, remote_url, to["commit"]).describe()
    with log.step("env", label) as info:
        result = session.conn.run(release_commands.restore_env(session.state_dir, to["id"],
                                                               f"{session.app_dir}/{env_file}"), timeout=60)
        if result.exit_code == 3:
            raise BerthError(f"the env file of release {to['id']} is no longer kept on {label}",
                             fix="deploy that commit again with the env file it needs (berth deploy)")
        if not result.ok:
            raise BerthError(f"could not restore the env file on {label}: {result.tail(300)}")
        info["detail"] = f"{env_file} of release {to['id']}"
    images = to.get("images") or {}
    with log.step("images", label) as info:
        result = session.conn.run(compose_engine.restore_images(images), timeout=120) if images else None
        rebuild = result is None or result.exit_code == 4
        if result is not None and not result.ok and not rebuild:
            raise BerthError(f"could not restore the images of release {to['id']} on {label}: {result.tail(300)}")
        info["detail"] = "kept images restored, no build" if not rebuild else "images not kept: rebuilding"
    with log.step("deploy", label) as info:
        compose_up(session, build=rebuild)
        info["detail"] = "up" + (" (built)" if rebuild else "")
    with log.step("verify", label) as info:
        verified = verify_stage.verify(session, services, urls, timeout)
        info["detail"] = verified.describe()
        if not verified.ok:
            raise BerthError(f"release {to['id']} did not come back healthy on {label}: " + "; ".join(verified.problems),
                             fix="look at `berth status` and `berth logs`; the host needs a person now",
                             details="\n".join(f"--- {s} ---\n{t}" for s, t in verified.logs.items()))
    return verified


def rollback_record(to: dict, verified: verify_stage.VerifyResult, who: str, host: str, reason: str) -> dict:
    now = time.time()
    return {
        **{k: to[k] for k in ("commit", "subject", "branch", "environment", "env_checksum", "compose") if k in to},
        "id": release_stage.new_release_id(to["commit"], now),
        "kind": "rollback",
        "rollback_of": to["id"],
        "reason": reason,
        "host": host,
        "deployed_by": who,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "images": {c.service: {"name": c.image, "id": c.image_id} for c in verified.containers},
        "result": "ok",
    }


def run_rollback(target, wanted: str | None, opts, printer, outcome: dict) -> dict:
    """`berth rollback [RELEASE]` on every host of the target, under the deploy lock."""
    from berth import connect as connect_stage
    from berth import gitlocal
    from berth import lock as lock_stage
    from berth.pipeline import confirm, debug_hook, ssh_options
    from berth.transport.ssh import SSHConnection

    log = StepLog(printer)
    outcome.update({"ok": False, "environment": target.environment, "hosts": [], "steps": log.steps})
    if not target.hosts:
        raise BerthError(f"no host is configured for {target.environment}", fix="set SERVER_IP or hosts in berth.toml")
    confirm(target, opts.yes, log, action="roll back")
    who = gitlocal.user_identity(target.root)
    remote_url = gitlocal.remote_url(target.root, target.get("remote", "origin")) or ""
    services = _services(target)
    for host in target.hosts:
        host_out = {"host": host.label, "ok": False}
        outcome["hosts"].append(host_out)
        conn = SSHConnection(host, ssh_options(target, opts.trust_new_host), on_command=debug_hook(printer),
                             mask=printer.mask)
        with log.step("connect", host.label):
            session = connect_stage.connect(target, conn)
        try:
            with log.step("lock", host.label) as info:
                held = lock_stage.acquire(session, lock_stage.new_owner(who, None, "", "rollback"), wait=opts.lock_wait)
                info["detail"] = "acquired"
            try:
                history, _ = release_stage.read_history(session, limit=500)
                to = pick(history, session.current, wanted)
                printer.line(f"  rolling back to release {to['id']} ({to['commit'][:7]} \"{to.get('subject', '')}\")")
                verified = roll_back(session, log, to, remote_url, services, target.health_urls,
                                     opts.verify_timeout or target.verify_timeout, target.env_file)
                record = rollback_record(to, verified, who, session.host.address, reason=wanted or "previous")
                with log.step("record", host.label) as info:
                    release_stage.record(session, record, env_file=target.env_file)
                    release_stage.keep_and_prune(session, record, history, target.keep_releases)
                    release_stage.audit(session, "rollback", who=who, to=to["id"], release=record["id"], reason="manual")
                    info["detail"] = f"release {record['id']} (rollback to {to['id']})"
                host_out.update(ok=True, release=record)
            finally:
                held.release()
        finally:
            session.close()
    outcome["ok"] = all(h["ok"] for h in outcome["hosts"])
    return outcome


def _services(target) -> list[str]:
    from berth.compose_file import load_compose_file

    names = []
    for name in target.compose_files:
        cf = load_compose_file(target.root / name)
        names += [n for n, s in cf.services.items() if not (isinstance(s, dict) and s.get("profiles"))]
    return names
