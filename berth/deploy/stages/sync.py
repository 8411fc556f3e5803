"""Stage: sync — the server checks out the exact commit that was checked, by git, never by copying files."""

from __future__ import annotations

from dataclasses import dataclass

from berth.errors import BerthError
from berth.model.git import public_url
from berth.remote.commands import git as git_commands
from berth.remote.session import HostSession


@dataclass(frozen=True)
class SyncResult:
    head: str
    previous: str | None
    cloned: bool
    fetched: bool
    untracked: str | None
    origin_differs: bool = False  # the server's origin is another URL: left as it is, fetched from ours

    def describe(self) -> str:
        if self.cloned:
            text = f"cloned, at {self.head[:7]}"
        elif self.previous == self.head:
            text = f"already at {self.head[:7]}"
        else:
            text = f"{(self.previous or 'nothing')[:7]} → {self.head[:7]}"
        if self.origin_differs:
            text += (" (the server's origin is another URL and stays so; berth fetched from its own URL into "
                     f"{git_commands.BERTH_REFS}/)")
        return text


class Refused(BerthError):
    """The server's checkout holds something berth will not overwrite; it was left exactly as it was."""


def sync(session: HostSession, remote_url: str, commit: str, running: str | None) -> SyncResult:
    """Check out `commit` on the server; `running` is the commit of the release running there (None: none)."""
    result = session.conn.run(git_commands.sync(session.app_dir, remote_url, commit, running), timeout=600)
    if not result.ok:
        raise failure(result, session, remote_url, commit, running)
    return parse_sync_output(result.out, commit)


def failure(result, session: HostSession, remote_url: str, commit: str, running: str | None) -> BerthError:
    """The sync script's exit code (git_commands) as the error a person can act on."""
    label = session.host.label
    where = f"{label}:{session.app_dir}"
    if result.exit_code == git_commands.DIRTY_CHECKOUT:
        return Refused(
            f"the checkout on {label} has uncommitted changes; berth will not overwrite them",
            where=where,
            fix="look at them (git -C APP_DIR diff on the server); commit and push what should stay, "
            "or discard it on the server with git checkout -- FILE, then deploy again",
            details="changed on the server:\n" + result.err.rstrip(),
        )
    if result.exit_code == git_commands.IGNORED_IN_THE_WAY:
        return Refused(
            f"ignored files in the checkout on {label} would be overwritten by commit {commit[:7]}, which tracks "
            "those paths; berth will not overwrite them",
            where=where,
            fix="on the server, move them out of the way (mv FILE FILE.keep) and put them back where the app "
            "expects them; or stop ignoring them; or remove those paths from the repository (git rm --cached), "
            "then deploy again",
            details="ignored on the server, tracked by the commit:\n" + result.err.rstrip(),
        )
    if result.exit_code == git_commands.SERVER_COMMITS:
        shown = f" (the running release is {running[:7]})" if running else ""
        return BerthError(
            f"the checkout on {label} is at commits made on the server that no remote branch holds{shown}; "
            "berth will not move away from them, because nothing would keep them",
            where=where,
            fix=f"to keep them, push them from the server to the remote (git -C {session.app_dir} push origin "
            "HEAD:refs/heads/server-fixes), merge them into your branch and deploy that; if they are not wanted, "
            f"note their SHAs (listed below), then run git -C {session.app_dir} checkout --detach "
            + (f"{running} on the server (the running release's commit)" if running
               else "COMMIT on the server (a commit of your branch)")
            + " and deploy again",
            details="commits only on the server:\n" + result.err.rstrip(),
        )
    if result.exit_code == git_commands.NOT_A_CHECKOUT:
        return Refused(
            f"{session.app_dir} on {label} exists but is not a git checkout; berth will not replace it",
            where=where,
            fix="move that directory away on the server, or point APP_DIR somewhere else",
        )
    if result.exit_code == git_commands.COMMIT_NOT_FOUND:
        return Refused(
            f"{label} fetched {public_url(remote_url)} but commit {commit[:7]} is not there",
            fix="push the commit (berth deploy --push), and check that the server's remote URL is the one you push to",
        )
    return BerthError(
        f"git on {label} failed: {result.tail(600)}",
        where=where,
        fix="check that the server can reach the git remote (a deploy key, or the same URL works there with "
        "`git ls-remote URL`); berth sends the URL without credentials, so a remote that needs them needs "
        "a deploy key (ssh URL) or a git credential helper on the server",
    )


def parse_sync_output(out: str, commit: str) -> SyncResult:
    values = {}
    for line in out.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key] = value.strip()
    return SyncResult(
        head=values.get("head", commit),
        previous=values.get("previous") or None,
        cloned="cloned" in values,
        fetched="fetched" in values,
        untracked=values.get("untracked"),
        origin_differs=values.get("origin") == "other",
    )
