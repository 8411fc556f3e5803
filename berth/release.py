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


def record(session: HostSession, release: dict) -> None:
    """Write the record; it holds the env file's checksum, never its contents."""
    line = json.dumps(release, sort_keys=True, separators=(",", ":")) + "\n"
    ok = release.get("result") == "ok"
    script = release_commands.record(session.state_dir, release["id"], make_current=ok)
    result = session.conn.run(script, stdin=line.encode(), timeout=60)
    if not result.ok:
        raise BerthError(
            f"could not write the release record on {session.host.label}: {result.err.strip()[-300:]}",
            where=f"{session.host.label}:{session.state_dir}",
        )


def read_history(session: HostSession, limit: int = 10) -> tuple[list[dict], list[str]]:
    """Recent release records, newest last; unreadable lines are reported, not fatal."""
    result = session.conn.run(release_commands.history(session.state_dir, limit), timeout=60)
    records, problems = [], []
    for n, line in enumerate(result.out.splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except ValueError:
            problems.append(f"history line {n} of the last {limit} is not valid JSON (ignored)")
    return records, problems
