"""A release record: the Release dataclass, and what of a record read back from a server may go into a script."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from typing import Any

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


@dataclass
class Release:
    """One release record: a deploy or a rollback on one host, as written to and read from
    `~/.berth/PROJECT/releases/ID.json` and `history.jsonl`. Keys berth does not know (from a newer
    berth, or added by hand) are kept in `extra` and written back as they were."""

    id: str | None = None
    commit: str | None = None
    kind: str | None = None  # deploy | rollback
    subject: str | None = None
    branch: str | None = None
    environment: str | None = None
    host: str | None = None
    deployed_by: str | None = None
    started_at: str | None = None
    env_checksum: str | None = None
    # secret and config files berth shipped (path in the app dir → the services that mount it), kept beside it
    files: dict[str, list[str]] | None = None
    files_checksum: str | None = None
    compose: str | None = None  # "v2 2.26.1"
    previous: str | None = None  # the commit that ran before
    # what verify checked: a rollback to this release verifies it the same way
    services: list[str] | None = None
    health_urls: list[str] | None = None
    verify_timeout: float | None = None
    result: str | None = None  # ok | failed
    images: dict[str, dict] | None = None  # service → {name, id, built}
    containers: dict[str, str] | None = None  # service → container id, as verified
    failure: str | None = None
    finished_at: str | None = None
    duration: float | None = None
    rolled_back_to: str | None = None  # a failed deploy: the release berth returned to
    rollback_of: str | None = None  # a rollback: the release it returned to
    reason: str | None = None  # a rollback: why (a release named, or "previous")
    returned_to: str | None = None  # a failed rollback: the release that ran before, back in place
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.result == "ok"

    @property
    def good(self) -> bool:
        """berth can return to it: it verified, and names its commit and id."""
        return self.ok and bool(self.commit) and bool(self.id)

    @classmethod
    def from_record(cls, record: dict) -> Release:
        known = {f.name for f in fields(cls)} - {"extra"}
        values = {k: v for k, v in record.items() if k in known}
        return cls(**values, extra={k: v for k, v in record.items() if k not in known})

    @classmethod
    def of(cls, value: Release | dict | None) -> Release | None:
        """A Release from a Release or a record as read (None stays None)."""
        if value is None or isinstance(value, Release):
            return value
        return cls.from_record(value)

    def to_record(self) -> dict[str, Any]:
        """The JSON object written to the server: set fields in declared order, then the extra keys."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        out = {k: v for k, v in out.items() if v is not None}
        return {**out, **self.extra}


@dataclass
class AppliedRelease:
    """The record of one `berth k8s apply`, kept in the berth-release ConfigMap of the namespace."""

    id: str | None = None
    environment: str | None = None
    applied_by: str | None = None
    applied_at: str | None = None
    images: dict[str, str] = field(default_factory=dict)  # "Kind/name" → image
    workloads: dict[str, str] = field(default_factory=dict)  # "Kind/name" → checksum of its pod template
    changed: list[str] = field(default_factory=list)  # the workloads this apply changed (what rollback undoes)
    previous: str | None = None  # the id of the apply before
    rolled_back: dict | None = None  # {at, by, workloads} once `berth k8s rollback` undid it
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_record(cls, record: dict | None) -> AppliedRelease | None:
        if record is None:
            return None
        known = {f.name for f in fields(cls)} - {"extra"}
        return cls(**{k: v for k, v in record.items() if k in known},
                   extra={k: v for k, v in record.items() if k not in known})

    def to_record(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        return {**{k: v for k, v in out.items() if v is not None}, **self.extra}
