"""A release record as berth reads it back from a server: what may go into a server script."""

from __future__ import annotations

import re

# what a release id and a commit read back from the server may look like before they go into a script
RELEASE_ID = re.compile(r"[0-9A-Za-z._-]+")
COMMIT = re.compile(r"[0-9a-f]{7,64}")
IMAGE_ID = re.compile(r"(sha256:)?[0-9a-f]{12,64}")
IMAGE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@-]*")

def check_record(record: dict) -> tuple[bool, str | None]:
    """Whether berth may act on a release record read from the server, and what is wrong with it.

    Ids and commits go into server scripts (rollback, prune), image names and ids into
    `docker tag`: a record edited on the server must not put shell text or an option there. A
    record with a bad id or commit is left out; one with unusable `images` keeps the rest, without
    images (a rollback to it rebuilds).
    """
    rid, commit = record.get("id"), record.get("commit")
    if rid is not None and not (isinstance(rid, str) and RELEASE_ID.fullmatch(rid)):
        return False, "a release record with an invalid release id"
    if commit is not None and not (isinstance(commit, str) and COMMIT.fullmatch(commit)):
        return False, f"release {rid} has an invalid commit"
    images = record.get("images")
    if images is not None and not (isinstance(images, dict) and all(
            isinstance(i, dict) and isinstance(i.get("id"), str) and IMAGE_ID.fullmatch(i["id"])
            and isinstance(i.get("name"), str) and IMAGE_NAME.fullmatch(i["name"]) for i in images.values())):
        record["images"] = {}
        return True, f"release {rid} has image names or ids berth cannot use (a rollback to it rebuilds)"
    return True, None


def checked_records(records: list[dict], what: str) -> tuple[list[dict], list[str]]:
    """The records berth may act on, and one problem line for each record left out or changed."""
    usable, problems = [], []
    for r in records:
        ok, problem = check_record(r)
        if ok:
            usable.append(r)
        if problem:
            problems.append(f"{what}: {problem}" + ("" if ok else " (ignored)"))
    return usable, problems
