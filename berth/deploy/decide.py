"""The decisions of a deploy, as pure functions of what berth knows: what runs, what is recorded, what is asked.

Kept apart from the steps that act on them so that each is unit-tested on plain data.
"""

from __future__ import annotations

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
