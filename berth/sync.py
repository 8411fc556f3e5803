"""Stage: sync — the server checks out the exact commit that was checked, by git, never by copying files."""

from __future__ import annotations

from dataclasses import dataclass

from berth.commands import git as git_commands
from berth.connect import HostSession
from berth.errors import BerthError


@dataclass(frozen=True)
class SyncResult:
    head: str
    previous: str | None
    cloned: bool
    fetched: bool
    untracked: str | None

    def describe(self) -> str:
        if self.cloned:
            return f"cloned, at {self.head[:7]}"
        if self.previous == self.head:
            return f"already at {self.head[:7]}"
        return f"{(self.previous or 'nothing')[:7]} → {self.head[:7]}"


def sync(session: HostSession, remote_url: str, commit: str) -> SyncResult:
    result = session.conn.run(git_commands.sync(session.app_dir, remote_url, commit), timeout=600)
    label = session.host.label
    if result.exit_code == git_commands.DIRTY_CHECKOUT:
        raise BerthError(
            f"the checkout on {label} has uncommitted changes; berth will not overwrite them",
            where=f"{label}:{session.app_dir}",
            fix="look at them (git -C APP_DIR diff on the server); commit and push what should stay, "
            "or discard it on the server with git checkout -- FILE, then deploy again",
            details="changed on the server:\n" + result.err.rstrip(),
        )
    if result.exit_code == git_commands.NOT_A_CHECKOUT:
        raise BerthError(
            f"{session.app_dir} on {label} exists but is not a git checkout; berth will not replace it",
            where=f"{label}:{session.app_dir}",
            fix="move that directory away on the server, or point APP_DIR somewhere else",
        )
    if result.exit_code == git_commands.COMMIT_NOT_FOUND:
        raise BerthError(
            f"{label} fetched {remote_url} but commit {commit[:7]} is not there",
            fix="push the commit (berth deploy --push), and check that the server's remote URL is the one you push to",
        )
    if not result.ok:
        raise BerthError(
            f"git on {label} failed: {result.tail(600)}",
            where=f"{label}:{session.app_dir}",
            fix="check that the server can reach the git remote (a deploy key, or the same URL works there with "
            "`git ls-remote URL`)",
        )
    values = {}
    for line in result.out.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key] = value.strip()
    return SyncResult(
        head=values.get("head", commit),
        previous=values.get("previous") or None,
        cloned="cloned" in values,
        fetched="fetched" in values,
        untracked=values.get("untracked"),
    )
