"""Local git queries for the check and sync stages (the laptop side)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from berth.errors import BerthError, UsageError
from berth.secrets.masking import public_url, url_credentials


class GitError(BerthError):
    pass


def git(root: Path, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(
            ["git", "-C", str(root), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=_git_env(),
        )
    except FileNotFoundError:
        raise GitError("git is not installed", fix="install git (apt-get install git)") from None
    except subprocess.TimeoutExpired:
        raise GitError(f"`git {_shown(args)}` did not finish within {timeout:.0f}s", where=str(root)) from None
    if check and proc.returncode != 0:
        raise GitError(
            f"`git {_shown(args)}` failed: {hide_credentials(proc.stderr.strip() or proc.stdout.strip(), *args)}",
            where=str(root),
        )
    return proc


def _shown(args: tuple[str, ...]) -> str:
    """The command as told in an error: a remote URL's credentials left out."""
    return " ".join(public_url(a) for a in args)


def hide_credentials(text: str, *urls: str) -> str:
    """`text` with the credentials of these URLs replaced: git's messages may repeat a URL it was given."""
    for secret in sorted({c for u in urls for c in url_credentials(u)}, key=len, reverse=True):
        text = text.replace(secret, "****")
    return text


def _git_env() -> dict[str, str]:
    import os

    env = dict(os.environ)
    env.setdefault("GIT_TERMINAL_PROMPT", "0")  # never hang on a credential prompt
    env["LC_ALL"] = "C"
    return env


def is_repo(root: Path) -> bool:
    return git(root, "rev-parse", "--is-inside-work-tree", check=False).stdout.strip() == "true"


def head_commit(root: Path) -> str | None:
    proc = git(root, "rev-parse", "-q", "--verify", "HEAD^{commit}", check=False)
    return proc.stdout.strip() or None


def head_subject(root: Path) -> str:
    return git(root, "log", "-1", "--format=%s", check=False).stdout.strip()


def current_branch(root: Path) -> str | None:
    proc = git(root, "symbolic-ref", "-q", "--short", "HEAD", check=False)
    return proc.stdout.strip() or None


def status_porcelain(root: Path) -> list[str]:
    out = git(root, "status", "--porcelain", "--untracked-files=normal").stdout
    return [line for line in out.splitlines() if line]


def tracked_files(root: Path) -> list[str]:
    return git(root, "ls-files", "-z").stdout.split("\0")[:-1]


def toplevel(root: Path) -> Path | None:
    """The top of the work tree that `root` is in (None: not in one)."""
    proc = git(root, "rev-parse", "--show-toplevel", check=False)
    return Path(proc.stdout.strip()) if proc.returncode == 0 and proc.stdout.strip() else None


def is_ignored(root: Path, relpath: str) -> bool:
    return git(root, "check-ignore", "-q", "--no-index", relpath, check=False).returncode == 0


# Local git calls that contact a remote: the ext:: transport runs a command by design, so it is off
# whatever the user's git config says (git's default is already "never"; this is defence in depth).
REMOTE_OPTIONS = ("-c", "protocol.ext.allow=never")


def refuse_option_like(value: str, where: str) -> None:
    """A remote name or URL that starts with '-' would be read by git as an option (--upload-pack=CMD runs CMD)."""
    if value.startswith("-"):
        raise UsageError(
            f"the git remote {value!r} starts with '-', so git would read it as an option; berth does not use it",
            where=where,
            fix="set the remote to a remote name (origin) or a URL (git@host:org/app.git, https://host/org/app.git)",
        )


def remote_url(root: Path, remote: str, where: str | None = None) -> str | None:
    """The URL of a named remote, or `remote` itself when it already looks like a URL or path.

    `where` names the setting the value came from (`.env:4`, `berth.toml:3 [environments.prod] remote`);
    a value or a configured URL that git would read as an option raises a UsageError that says so.
    """
    refuse_option_like(remote, where or "the git remote setting")
    proc = git(root, "remote", "get-url", "--", remote, check=False)
    if proc.returncode == 0:
        url = proc.stdout.strip()
        refuse_option_like(url, f"the URL of git remote {remote} (git remote get-url {remote})")
        return url
    if "/" in remote or ":" in remote:
        return remote
    return None


def target_remote_url(target) -> str | None:
    """The URL the target deploys from: its `remote` setting (GIT_REMOTE / berth.toml), default origin."""
    setting = target.settings.get("remote")
    where = None
    if setting is not None:  # ".env:4 GIT_REMOTE", "berth.toml:3 [environments.prod] remote"
        where = setting.origin + (" GIT_REMOTE" if setting.origin.startswith(".env") else "")
    return remote_url(target.root, target.get("remote") or "origin", where=where)


def ls_remote_branch(root: Path, url: str, branch: str) -> str | None:
    """The commit the remote's branch points at (None if the branch does not exist there)."""
    refuse_option_like(url, "the git remote")
    proc = git(root, *REMOTE_OPTIONS, "ls-remote", "--", url, f"refs/heads/{branch}", timeout=30)
    line = proc.stdout.strip()
    return line.split()[0] if line else None


def is_pushed(root: Path, url: str, branch: str, commit: str) -> tuple[bool, str | None]:
    """Does the remote's branch contain `commit`? Returns (answer, the branch's tip on the remote)."""
    tip = ls_remote_branch(root, url, branch)
    if tip is None:
        return False, None
    if tip == commit:
        return True, tip
    if not has_commit(root, tip):
        # the remote moved on since our last fetch: fetch that branch (only FETCH_HEAD changes)
        git(root, *REMOTE_OPTIONS, "fetch", "--quiet", "--", url, f"refs/heads/{branch}", check=False, timeout=120)
    return has_commit(root, tip) and is_ancestor(root, commit, tip), tip


def is_ancestor(root: Path, commit: str, of: str) -> bool:
    return git(root, "merge-base", "--is-ancestor", commit, of, check=False).returncode == 0


def has_commit(root: Path, commit: str) -> bool:
    return git(root, "cat-file", "-e", f"{commit}^{{commit}}", check=False).returncode == 0


def user_identity(root: Path) -> str:
    import getpass
    import socket

    email = git(root, "config", "user.email", check=False).stdout.strip()
    local = f"{getpass.getuser()}@{socket.gethostname()}"
    return f"{email} ({local})" if email else local
