"""The decisions of a deploy, as pure functions of what berth knows: what runs, what is recorded, what is asked.

Kept apart from the steps that act on them so that each is unit-tested on plain data.
"""

from __future__ import annotations

from berth.errors import BerthError
from berth.model.release import Release


def good_release(release: Release | dict | None) -> Release | None:
    """`release` when berth can return to it (it verified, and names its commit and id); else None."""
    release = Release.of(release)
    return release if release is not None and release.good else None


def same_commit(current: Release | dict | None, commit: str) -> bool:
    """The running release is a good one of this very commit: a redeploy."""
    current = Release.of(current)
    return current is not None and current.commit == commit and current.ok


def needs_build(current: Release | dict | None, commit: str) -> bool:
    """A redeploy of the running good commit reuses its images; anything else builds (compose's cache decides)."""
    return not same_commit(current, commit)


def running_as_recorded(containers, services: list[str], current: Release | dict | None) -> bool:
    """Every expected service runs, ready, on the image (and container) the running release recorded."""
    current = Release.of(current)
    if current is None:
        return False
    images = current.images or {}
    # a container recreated by hand (docker compose up on the server) may carry another environment
    recorded = current.containers
    by_service = {c.service: c for c in containers}
    return bool(images) and all(
        s in by_service and by_service[s].ready and by_service[s].status == "running"
        and images.get(s, {}).get("id") == by_service[s].image_id
        and (recorded is None or recorded.get(s) == by_service[s].id)
        for s in services
    )


def skip_up(current: Release | None, commit: str, env_checksum: str, containers, services: list[str],
            files_checksum: str = "") -> bool:
    """Nothing for compose to do: same commit, same env file and secret/config files, every container up on the
    recorded image."""
    return (same_commit(current, commit) and current.env_checksum == env_checksum
            and (current.files_checksum or "") == files_checksum
            and running_as_recorded(containers, services, current))


def file_users_to_recreate(current: Release | None, files: dict[str, list[str]], files_checksum: str) -> list[str]:
    """The services to recreate after `up` because a shipped secret or config file changed: compose does not see
    a file's contents, and a running container keeps the file it started with. None on a first deploy."""
    current = Release.of(current)
    if current is None or not files or (current.files_checksum or "") == files_checksum:
        return []
    return sorted({s for services in files.values() for s in services})


def undo_action(good: Release | None, rollback: bool, containers_touched: bool) -> str:
    """What undoing a failed release on a changed host takes.

    "keep": --no-rollback, the failed release stays; "none": no good release to return to;
    "restore": nothing was restarted, so the checkout, env file and image tags go back;
    "rollback": containers were replaced, so the good release is rolled back to and verified.
    """
    if not rollback:
        return "keep"
    if good is None:
        return "none"
    return "rollback" if containers_touched else "restore"


def pick(history: list[Release | dict], running: Release | dict | None, wanted: str | None) -> Release:
    """The release to return to: `wanted` (an id or commit prefix), else the newest good one that is not running.

    `running` is the release that runs now (berth.deploy.release.running_release: from the containers'
    images, the current.json pointer only when those say nothing). A prefix that matches more than
    one release is refused with the candidates, and so is the running release unless it is named by
    its full id (rolling "back" to it only redeploys it).
    """
    history, running = [Release.of(r) for r in history], Release.of(running)
    good = [r for r in history if r.good]
    running_id = (running.id if running else None)
    if wanted:
        exact = [r for r in good if r.id == wanted]
        if exact:
            return exact[-1]
        matches = [r for r in good if r.id.startswith(wanted) or r.commit.startswith(wanted)]
        if not matches:
            known = ", ".join(r.id for r in good[-5:]) or "none"
            raise BerthError(f"no successful release matches '{wanted}'",
                             fix=f"pick one that `berth releases` lists (recent: {known})", exit_code=2)
        if len(matches) > 1:
            shown = "; ".join(_candidate(r, running_id) for r in matches[-10:])
            raise BerthError(f"'{wanted}' matches {len(matches)} releases, and berth does not guess which one: "
                             f"{shown}{' (and older ones)' if len(matches) > 10 else ''}",
                             fix="name one by its full id, as `berth releases` lists it", exit_code=2)
        if matches[0].id == running_id:
            raise BerthError(f"'{wanted}' is the running release {running_id}; rolling back to it would only "
                             "redeploy it",
                             fix=f"to redeploy it on purpose, name it in full: berth rollback {running_id}",
                             exit_code=2)
        return matches[0]
    older = [r for r in good if not _same_release(r, running)]
    if not older:
        raise BerthError("there is no earlier successful release to roll back to",
                         fix="`berth releases` lists what this host has run")
    return older[-1]


def _same_release(r: Release, running: Release | None) -> bool:
    """Whether returning to `r` would change nothing: it is the running release, or runs its commit and images
    with the same env file and secret and config files (a release that differs only in those is worth returning
    to: a bad secret is undone that way)."""
    if not running:
        return False
    if r.id == running.id or r.id == running.rollback_of:
        return True
    ids = {s: (i or {}).get("id") for s, i in (r.images or {}).items()}
    running_ids = {s: (i or {}).get("id") for s, i in (running.images or {}).items()}
    settings = (r.env_checksum, r.files_checksum) == (running.env_checksum, running.files_checksum)
    return r.commit == running.commit and (not ids or not running_ids or ids == running_ids) and settings


def _candidate(release: Release, current_id: str | None) -> str:
    when = release.finished_at or release.started_at or "?"
    mark = ", running" if release.id == current_id else ""
    return f"{release.id} (commit {release.commit[:7]}, {when}{mark})"


def describe_release(r: Release | dict | None) -> str:
    """`20261201T220440Z-0152026 (failed, commit 0152026)` — for "from X to Y" lines."""
    r = Release.of(r)
    if not r:
        return "containers that match no release record"
    kind = " rollback" if r.kind == "rollback" else ""
    return f"{r.id} ({r.result or '?'}{kind}, commit {(r.commit or '?')[:7]})"
