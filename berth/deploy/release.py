"""Stage: record — a release record on the server that `berth status` reads to show what runs where."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from datetime import datetime, timezone

from berth.errors import BerthError
from berth.model.release import COMMIT, Release, checked_records
from berth.remote.commands import release as release_commands
from berth.remote.session import HostSession

RECORD_RETRIES = 5


def new_release_id(commit: str, now: float | None = None, taken: Iterable[str | None] = ()) -> str:
    """`YYYYmmddTHHMMSSZ-sha7`; `-2`, `-3`, … appended while the id is in `taken` (two records in one second)."""
    stamp = datetime.fromtimestamp(now or time.time(), tz=timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    base = f"{stamp}-{commit[:7]}"
    taken = set(taken)
    release_id, n = base, 1
    while release_id in taken:
        n += 1
        release_id = f"{base}-{n}"
    return release_id


def record(session: HostSession, release: Release | dict, env_file: str | None = None,
           files: list[str] | None = None) -> None:
    """Write the record; it holds the env file's checksum, never its contents.

    With `env_file` (the env file that release runs with, on the server) a private copy is kept
    beside the record for rollbacks, and of each of `files` (secret and config files, in the app dir).
    A record never replaces another: if the id is taken on the
    server, the release gets the next free suffix (`release.id` changes).
    """
    release = Release.of(release)
    env_path = f"{session.app_dir}/{env_file}" if env_file else None
    taken = [release.id]
    for _ in range(RECORD_RETRIES):
        line = json.dumps(release.to_record(), sort_keys=True, separators=(",", ":")) + "\n"
        script = release_commands.record(session.state_dir, release.id, make_current=release.ok, env_file=env_path,
                                         app_dir=session.app_dir, files=files or ())
        result = session.conn.run(script, stdin=line.encode(), timeout=60)
        if result.exit_code != release_commands.EXISTS:
            break
        release.id = new_release_id(release.commit, _stamp_of(taken[0]), taken)
        taken.append(release.id)
    if not result.ok:
        raise BerthError(
            f"could not write the release record on {session.host.label}: {result.tail(300)}",
            where=f"{session.host.label}:{session.state_dir}",
        )


def _stamp_of(release_id: str) -> float | None:
    try:
        return datetime.strptime(release_id[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        return None


def read_history(session: HostSession, limit: int = 10) -> tuple[list[Release], list[str]]:
    """Recent releases, newest last; unreadable or unsafe lines are reported and left out, not fatal."""
    result = session.conn.run(release_commands.history(session.state_dir, limit), timeout=60)
    records, problems = read_jsonl(result.out, "history.jsonl")
    records, unsafe = checked_records(records, "history.jsonl")
    return [Release.from_record(r) for r in records], problems + unsafe


def kept_releases(history: list[Release], keep: int) -> list[Release]:
    """The last `keep` successful releases, newest last: their images and env copies stay."""
    return [r for r in history if r.ok and r.id][-keep:]


KEEP_PARTS = ("keep", "prune", "env")


def keep_and_prune(session: HostSession, release: Release | dict, history: list, keep: int) -> list[str]:
    """Tag this release's images so a rollback rebuilds nothing; untag and forget releases past `keep`.

    Returns warnings for the user: the release is recorded either way, but an image that could not
    be kept means a rollback to it will rebuild.
    """

    release, history = Release.of(release), [Release.of(r) for r in history]
    kept = kept_releases([*history, release], keep)
    script = keep_and_prune_script(session.compose.project, release.id, release.images or {}, [r.id for r in kept],
                                   session.state_dir)
    result = session.conn.run(script, timeout=300)
    codes = dict(line[2:].split("=", 1) for line in result.out.splitlines() if line.startswith("@@") and "=" in line)
    why = result.err.strip().splitlines()[-1][-200:] if result.err.strip() else f"exit {result.exit_code}"
    warnings = []
    if codes.get("keep") != "0":
        warnings.append(f"images not kept: a rollback to release {release.id} will rebuild ({why})")
    if codes.get("prune") != "0":
        warnings.append(f"the kept images of older releases were not untagged ({why})")
    if codes.get("env") != "0":
        warnings.append(f"the env copies of older releases were not deleted ({why})")
    return warnings


def keep_and_prune_script(project: str, release_id: str, images: dict[str, dict], kept_ids: list[str],
                          state_dir: str) -> str:
    """One round trip: tag a release's images, untag those of releases not in `kept_ids`, delete their env copies.

    Each part runs in its own subshell (one's `exit` cannot skip the others) and reports `@@PART=CODE`.
    """
    from berth.remote.engines import compose as compose_engine

    # every release tags its own images, a redeploy of the same images too: each kept release
    # must hold its images itself, or they lose their last tag when the first one is pruned
    parts = [
        compose_engine.keep_images(images, project, release_id),
        compose_engine.prune_kept_images(project, kept_ids),
        release_commands.prune_env_copies(state_dir, kept_ids),
    ]
    return "\n".join(f"(\n{p}\n)\necho \"@@{name}=$?\"" for name, p in zip(KEEP_PARTS, parts))


def record_unfinished(session: HostSession, stale: dict, log) -> None:
    """A deploy or rollback whose berth was killed or cut off left its lock: record it as failed, once."""
    if stale.get("command") not in ("deploy", "rollback") or not COMMIT.fullmatch(str(stale.get("commit") or "")):
        return
    history, _ = read_history(session, limit=50)
    unfinished = Release(
        id=new_release_id(stale["commit"], taken={r.id for r in history}), kind=stale["command"],
        commit=stale["commit"], deployed_by=stale.get("who"), host=session.host.address, started_at=stale.get("since"),
        finished_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), result="failed",
        failure=f"the {stale['command']} never finished (berth was killed or lost its connection); "
                "the deploy after it took over")
    record(session, unfinished)
    audit(session, f"{stale['command']}-unfinished", who=stale.get("who"), release=unfinished.id,
          commit=stale["commit"])
    log.printer.line(f"  ! an earlier {stale['command']} of {stale['commit'][:7]} by {stale.get('who')} never "
                     f"finished; recorded as failed release {unfinished.id}, and what it left is replaced now")


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


def running_release(containers, history: list[Release], current: Release | None = None) -> Release | None:
    """The release whose images the containers run now: the newest record that matches them.

    What runs is the truth, not the pointer: after a failed `--no-rollback` deploy the failed
    release runs while current.json still names the one before it. A record matches when every
    service it has an image for and that has a container runs exactly that image id. A failed
    release that was undone (`rolled_back_to`, `returned_to`) no longer runs, whatever its images
    (an env-only change builds the same ones). `current` counts when no history record matches.
    None when nothing runs or no record matches (containers changed by hand, records without images).
    """
    running = {c.service: c.image_id for c in containers if c.image_id and c.status != "missing"}
    if not running:
        return None
    best, best_score = None, 0
    candidates = [r for r in reversed(history) if not (r.rolled_back_to or r.returned_to)]
    if current:
        candidates.append(current)
    for r in candidates:
        images = r.images if isinstance(r.images, dict) else {}
        common = [s for s in images if s in running]
        if not common or any(running[s] != (images[s] or {}).get("id") for s in common):
            continue
        if len(common) > best_score:  # covering more of what runs beats newer; ties keep the first (newest)
            best, best_score = r, len(common)
    return best
