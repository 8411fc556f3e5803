"""The deploy lock: one deploy (or rollback) per app on a host at a time.

Acquired after connecting, released on every way out — success, error, Ctrl-C. A lock left by a
berth process that no longer exists on this same machine (killed, or its connection cut) is stale
and is taken over with a note; any other held lock is reported with who holds it and how to release it.
"This same machine" is the hostname, the boot and the pid namespace (see machine_identity), and
the takeover removes only the very lock that was judged stale (see berth/remote/commands/lock.py).
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone

from berth.errors import BerthError
from berth.remote.commands import lock as lock_commands
from berth.remote.session import HostSession

STALE_AFTER_SECONDS = 2 * 3600
POLL_SECONDS = 1.0


def _process_start(pid: int) -> str | None:
    """Start time of a local process (to tell a reused pid from the original)."""
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(") ", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _read(path: str) -> str | None:
    try:
        with open(path) as fh:
            return fh.read().strip() or None
    except OSError:
        return None


def machine_identity() -> dict:
    """What tells this machine's processes apart from another's: the hostname alone does not.

    CI containers often share a hostname; each has its own pid namespace, so a pid means nothing
    across them. boot_id changes on reboot (pids restart too). None where there is no /proc.
    """
    try:
        pid_ns = os.readlink("/proc/self/ns/pid")
    except OSError:
        pid_ns = None
    return {"machine": socket.gethostname(), "boot_id": _read("/proc/sys/kernel/random/boot_id"), "pid_ns": pid_ns}


def new_owner(who: str, commit: str | None, message: str, command: str) -> dict:
    return {
        "token": secrets.token_hex(8),
        "who": who,
        **machine_identity(),
        "pid": os.getpid(),
        "pid_start": _process_start(os.getpid()),
        "since": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "commit": commit,
        "message": message,
        "command": command,
    }


def process_gone(owner: dict) -> bool:
    """The owner's berth process is known to be gone: it ran in this very pid namespace of this boot,
    and its pid no longer exists (or is another process now).

    Only then does a pid say anything. Records without the identity fields (older berth) or from
    a machine without /proc never qualify: they go stale by age alone.
    """
    here = machine_identity()
    if not owner.get("pid") or not all(here[k] and owner.get(k) == here[k] for k in here):
        return False
    try:
        pid = int(owner["pid"])
    except (TypeError, ValueError):
        return False
    start = _process_start(pid)
    return start is None or bool(owner.get("pid_start") and start != owner["pid_start"])


def stale_reason(owner: dict, now: float | None = None) -> str | None:
    """Why a held lock is stale, or None if it may still be in use."""
    if process_gone(owner):
        return f"its berth process {owner['pid']} on this machine is gone"
    try:
        since = datetime.strptime(owner.get("since", ""), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except (TypeError, ValueError):
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
    who = f"{owner.get('who', '?')} on {owner.get('machine', '?')} (pid {owner.get('pid', '?')})"
    return f"{who}, {what}, since {owner.get('since', '?')}{msg}"


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
    stale_owner: dict | None = None  # that lock's owner record: a deploy that never finished

    def release(self) -> None:
        release(self.session, self.owner["token"])


def read(session: HostSession) -> dict | None:
    out = session.conn.run(lock_commands.status(session.state_dir), timeout=30).out.strip()
    return parse_owner(out) if out else None


def acquire(session: HostSession, owner: dict, wait: float = 0) -> HeldLock:
    deadline = time.monotonic() + wait
    payload = json.dumps(owner).encode()
    took_over, stale_owner = None, None
    unreadable = 0  # looks that found the lock without a readable owner
    attempts = 0  # takeovers tried: each ends the stale lock or finds it changed, so few are ever needed
    while True:
        result = session.conn.run(lock_commands.acquire(session.state_dir), stdin=payload, timeout=30)
        if result.ok:
            return HeldLock(session, owner, took_over, stale_owner)
        if result.exit_code != lock_commands.HELD:
            raise BerthError(f"could not take the deploy lock on {session.host.label}: {result.tail(300)}")
        holder = parse_owner(result.out)
        if not holder and unreadable < 2:  # released, or its owner record not yet there: look again
            unreadable += 1
            continue
        reason = stale_reason(holder) if holder else "its owner record is unreadable"
        if holder and process_gone(holder) and lock_commands.valid_token(holder.get("token")) and attempts < 5:
            # a berth of ours that was killed: take over exactly that lock (another berth may be doing
            # the same; the server removes it only while it still holds this token)
            attempts += 1
            broke = session.conn.run(lock_commands.release(session.state_dir, holder["token"]), timeout=60)
            if broke.ok and "removed" in broke.out:
                took_over, stale_owner = f"{describe(holder)} ({reason})", holder
            elif not broke.ok and broke.exit_code not in (lock_commands.NOT_OURS, lock_commands.BUSY):
                raise BerthError(f"could not take over the stale deploy lock on {session.host.label}: "
                                 f"{broke.err.strip()[-300:]}")
            continue  # removed, changed hands meanwhile, or the mutex was busy: look again
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
    result = session.conn.run(lock_commands.release(session.state_dir, token), timeout=60)
    if result.exit_code == lock_commands.NOT_OURS:
        raise BerthError(f"the lock on {session.host.label} now belongs to {describe(parse_owner(result.out))}; "
                         "berth left it alone")
    if not result.ok:
        raise BerthError(f"could not release the deploy lock on {session.host.label}: {result.err.strip()[-300:]}",
                         where=f"{session.host.label}:{session.state_dir}/lock",
                         fix="run `berth lock release` once no deploy is running")


def break_lock(session: HostSession, seen: dict) -> bool:
    """Remove the lock a person decided to release (`berth lock release [--force]`): the one `seen`, only.

    False when there was no lock any more. If it changed hands since it was read, nothing is removed.
    """
    token = seen.get("token")
    if token is not None and not lock_commands.valid_token(token):
        raise BerthError(f"the lock on {session.host.label} has an owner record berth cannot use "
                         f"(token {str(token)[:40]!r})",
                         where=f"{session.host.label}:{session.state_dir}/lock",
                         fix="check that no deploy is running, then remove that directory on the server by hand")
    result = session.conn.run(lock_commands.release(session.state_dir, token), timeout=60)
    if result.exit_code == lock_commands.NOT_OURS:
        raise BerthError(f"the lock on {session.host.label} changed hands while berth looked at it: it is now held by "
                         f"{describe(parse_owner(result.out))}; berth left it alone",
                         fix="look again with `berth lock status`")
    if not result.ok:
        raise BerthError(f"could not remove the lock on {session.host.label}: {result.err.strip()[-300:]}",
                         where=f"{session.host.label}:{session.state_dir}/lock",
                         fix="remove that directory on the server by hand (check its owner and permissions)")
    return "removed" in result.out


LOCK_STAYS = ("  ! the deploy lock stays on the server (the connection is gone); the next deploy from this machine "
              "takes it over, `berth lock release --force` removes it")


@contextmanager
def held(session: HostSession, owner: dict, log, wait: float = 0):
    """The host's lock around a deploy or rollback: acquired as the "lock" step, released on every way out.

    A stale lock taken over is audited, and the run it belonged to is recorded as a failed release.
    When the connection is gone the lock cannot be released: berth says so (the next run takes it over).
    """
    from berth.deploy import release as release_stage

    with log.step("lock", session.host.label) as info:
        lock = acquire(session, owner, wait=wait)
        info["detail"] = "acquired" + (f"; took over a stale lock of {lock.took_over}" if lock.took_over else "")
        if lock.took_over:
            release_stage.audit(session, "lock-taken-over", who=owner.get("who"), stale=lock.took_over)
    try:
        if lock.stale_owner:
            release_stage.record_unfinished(session, lock.stale_owner, log)
        yield lock
    finally:
        if session.conn.lost:
            log.printer.line(LOCK_STAYS)
        else:
            try:
                lock.release()
            except BerthError as exc:
                log.printer.line(f"  ! {exc.what}")
