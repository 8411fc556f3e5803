"""The decisions of a deploy, as pure functions of what berth knows: what runs, what is recorded, what is asked.

Kept apart from the steps that act on them so that each is unit-tested on plain data.
"""

from __future__ import annotations


def good_release(record: dict | None) -> dict | None:
    """`record` when berth can return to it (it verified, and names its commit and id); else None."""
    if record and record.get("result") == "ok" and record.get("commit") and record.get("id"):
        return record
    return None


def same_commit(current: dict, commit: str) -> bool:
    """The running release is a good one of this very commit: a redeploy."""
    return current.get("commit") == commit and current.get("result") == "ok"


def needs_build(current: dict, commit: str) -> bool:
    """A redeploy of the running good commit reuses its images; anything else builds (compose's cache decides)."""
    return not same_commit(current, commit)


def running_as_recorded(containers, services: list[str], current: dict) -> bool:
    """Every expected service runs, ready, on the image (and container) the running release recorded."""
    images = current.get("images") or {}
    # a container recreated by hand (docker compose up on the server) may carry another environment
    recorded = current.get("containers")
    by_service = {c.service: c for c in containers}
    return bool(images) and all(
        s in by_service and by_service[s].ready and by_service[s].status == "running"
        and images.get(s, {}).get("id") == by_service[s].image_id
        and (recorded is None or recorded.get(s) == by_service[s].id)
        for s in services
    )


def skip_up(current: dict, commit: str, env_checksum: str, containers, services: list[str]) -> bool:
    """Nothing for compose to do: same commit, same env file, every container up on the recorded image."""
    return (same_commit(current, commit) and current.get("env_checksum") == env_checksum
            and running_as_recorded(containers, services, current))


def undo_action(good: dict | None, rollback: bool, containers_touched: bool) -> str:
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
