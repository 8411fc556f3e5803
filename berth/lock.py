"""The deploy lock: one deploy (or rollback) per app on a host at a time.

Acquired after connecting, released on every way out — success, error, Ctrl-C. A lock left by a
berth process that no longer exists on this same machine (killed, or its connection cut) is stale
and is taken over with a note; any other held lock is reported with who holds it and how to release it.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from berth.commands import lock as lock_commands
from berth.connect import HostSession
from berth.errors import BerthError

STALE_AFTER_SECONDS = 2 * 3600
POLL_SECONDS = 1.0


def _process_start(pid: int) -> str | None:
    """Start time of a local process (to tell a reused pid from the original)."""
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(") ", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def new_owner(who: str, commit: str | None, message: str, command: str) -> dict:
    return {
        "token": secrets.token_hex(8),
        "who": who,
        "machine": socket.gethostname(),
        "pid": os.getpid(),
        "pid_start": _process_start(os.getpid()),
        "since": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "commit": commit,
        "message": message,
        "command": command,
    }


def stale_reason(owner: dict, now: float | None = None) -> str | None:
    """Why a held lock is stale, or None if it may still be in use."""
    if owner.get("machine") == socket.gethostname() and owner.get("pid"):
        start = _process_start(int(owner["pid"]))
        if start is None or (owner.get("pid_start") and start != owner["pid_start"]):
            return f"its berth process {owner['pid']} on this machine is gone"
    try:
        since = datetime.strptime(owner.get("since", ""), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        return "its owner record is unreadable"
    age = (now or time.time()) - since.timestamp()
    if age > STALE_AFTER_SECONDS:
        return f"it is {int(age // 3600)}h old"
    return None


def describe(owner: dict) -> str:
    if not owner:
        return "an owner berth cannot read"
    what = f"{owner.get('command', 'deploy')} of {str(owner.get('commit') or '?')[:7]}"
    msg = f" — \"{owner['message']}\"" if owner.get("message") else ""
    return f"{owner.get('who', '?')} on {owner.get('machine', '?')} (pid {owner.get('pid', '?')}), {what}, since {owner.get('since', '?')}{msg}"


def parse_owner(text: str) -> dict:
    try:
        data = json.loads(text or "{}")
        return data if isinstance(data, dict) else {}
    except ValueError:
        return {}


@dataclass
class HeldLock:
    session: HostSession
    owner: dict
    took_over: str | None = None  # description of a stale lock that was replaced

    def release(self) -> None:
        release(self.session, self.owner["token"])


def read(session: HostSession) -> dict | None:
    out = session.conn.run(lock_commands.status(session.state_dir), timeout=30).out.strip()
    return parse_owner(out) if out else None


def acquire(session: HostSession, owner: dict, wait: float = 0) -> HeldLock:
    deadline = time.monotonic() + wait
    payload = json.dumps(owner).encode()
    took_over = None
    while True:
        result = session.conn.run(lock_commands.acquire(session.state_dir), stdin=payload, timeout=30)
        if result.ok:
            return HeldLock(session, owner, took_over)
        if result.exit_code != lock_commands.HELD:
            raise BerthError(f"could not take the deploy lock on {session.host.label}: {result.tail(300)}")
        holder = parse_owner(result.out)
        reason = stale_reason(holder) if holder else "its owner record is unreadable"
        if reason and holder and holder.get("machine") == owner["machine"] and "gone" in reason:
            # a berth of ours that was killed: safe to take over
            session.conn.run(lock_commands.force_release(session.state_dir), timeout=30)
            took_over = f"{describe(holder)} ({reason})"
            continue
        if time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
            continue
        stale = f" The lock looks stale: {reason}." if reason else ""
        raise BerthError(
            f"{session.host.label} is locked by {describe(holder)}.{stale}",
            where=f"{session.host.label}:{session.state_dir}/lock",
            fix="wait for that deploy to finish (--lock-wait SECONDS waits for it), or, once you are sure it is not "
            "running, release it with `berth lock release --force`",
            exit_code=3,
        )


def release(session: HostSession, token: str) -> None:
    result = session.conn.run(lock_commands.release(session.state_dir, token), timeout=30)
    if result.exit_code == lock_commands.NOT_OURS:
        raise BerthError(f"the lock on {session.host.label} now belongs to {describe(parse_owner(result.out))}; "
                         "berth left it alone")
