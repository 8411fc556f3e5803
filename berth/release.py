"""Stage: record — a release record on the server that `berth status` reads to show what runs where."""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone

from berth.commands import release as release_commands
from berth.connect import HostSession
from berth.errors import BerthError


def new_release_id(commit: str, now: float | None = None) -> str:
    stamp = datetime.fromtimestamp(now or time.time(), tz=timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{commit[:7]}"


def record(session: HostSession, release: dict, env_file: str | None = None) -> None:
    """Write the record; it holds the env file's checksum, never its contents.

    With `env_file` (the env file that release runs with, on the server) a private copy is kept
    beside the record for rollbacks.
    """
    line = json.dumps(release, sort_keys=True, separators=(",", ":")) + "\n"
    ok = release.get("result") == "ok"
    env_path = f"{session.app_dir}/{env_file}" if env_file else None
    script = release_commands.record(session.state_dir, release["id"], make_current=ok, env_file=env_path)
    result = session.conn.run(script, stdin=line.encode(), timeout=60)
    if not result.ok:
        raise BerthError(
            f"could not write the release record on {session.host.label}: {result.tail(300)}",
            where=f"{session.host.label}:{session.state_dir}",
        )


def read_history(session: HostSession, limit: int = 10) -> tuple[list[dict], list[str]]:
    """Recent release records, newest last; unreadable lines are reported, not fatal."""
    result = session.conn.run(release_commands.history(session.state_dir, limit), timeout=60)
    return read_jsonl(result.out, "history.jsonl")


def kept_releases(history: list[dict], keep: int) -> list[dict]:
    """The last `keep` successful releases, newest last: their images and env copies stay."""
    return [r for r in history if r.get("result") == "ok" and r.get("id")][-keep:]


def keep_and_prune(session: HostSession, release: dict, history: list[dict], keep: int) -> None:
    """Tag this release's images so a rollback rebuilds nothing; untag and forget releases past `keep`."""
    from berth.engines import compose as compose_engine

    kept = kept_releases([*history, release], keep)
    ids = [r["id"] for r in kept]
    previous = kept[-2] if len(kept) > 1 else {}
    if previous.get("images") == release.get("images") and previous.get("commit") == release.get("commit"):
        # a redeploy of the running release: its images are tagged already; only this env copy is new
        session.conn.run(release_commands.prune_env_copies(session.state_dir, ids), timeout=60)
        return
    parts = [
        compose_engine.keep_images(release.get("images") or {}, session.compose.project, release["id"]),
        compose_engine.prune_kept_images(session.compose.project, ids),
        release_commands.prune_env_copies(session.state_dir, ids),
    ]
    # one round trip; each part in its own subshell so one's `exit` cannot skip the others
    session.conn.run("\n".join(f"(\n{p}\n)" for p in parts), timeout=300)


def audit(session: HostSession, event: str, **details) -> None:
    """Append one event to the host's append-only audit log (best effort: never fails a deploy)."""
    entry = {"time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "event": event, **details}
    try:
        session.conn.run(release_commands.audit(session.state_dir),
                         stdin=(json.dumps(entry, sort_keys=True) + "\n").encode(), timeout=30)
    except BerthError:
        pass


def read_jsonl(text: str, what: str) -> tuple[list[dict], list[str]]:
    records, problems = [], []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError:
            value = None
        if isinstance(value, dict):
            records.append(value)
        else:
            problems.append(f"{what} line {n} is not a JSON record (ignored)")
    return records, problems


def read_audit(session: HostSession, limit: int = 50) -> tuple[list[dict], list[str]]:
    result = session.conn.run(release_commands.read_audit(session.state_dir, limit), timeout=60)
    return read_jsonl(result.out, "audit.jsonl")
