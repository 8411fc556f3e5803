"""Git state: code reaches the server only through git, so what is deployed must be committed and pushed."""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path

from berth.check.findings import Severity, finding, rule
from berth.model import git as gitlocal
from berth.model.envfile import EXAMPLE_SUFFIXES

ENV_FILE_PATTERN = ".env*"


def _is_real_env_file(relpath: str) -> bool:
    name = relpath.rsplit("/", 1)[-1]
    looks_like_env = fnmatch.fnmatch(name, ENV_FILE_PATTERN) or name.endswith(".env")  # .env.prod, production.env
    return looks_like_env and not name.endswith(EXAMPLE_SUFFIXES) and name != ".envrc"


@rule("git.not-a-repo", Severity.ERROR, "the project is not a git repository",
      "git init, commit, and add a remote: berth deploys by git only")
def not_a_repo(ctx):
    if not ctx.is_git_repo:
        yield finding(f"{ctx.root} is not inside a git repository")


@rule("git.no-commit", Severity.ERROR, "the repository has no commit to deploy", "commit your code")
def no_commit(ctx):
    if ctx.is_git_repo and ctx.head is None:
        yield finding("HEAD has no commit yet")


@rule("git.env-tracked", Severity.ERROR, "an env file with real settings is tracked by git",
      "git rm --cached FILE, add it to .gitignore, and rotate every secret it held")
def env_tracked(ctx):
    for rel in sorted(ctx.tracked):
        if _is_real_env_file(rel) or rel == ctx.target.env_file:
            yield finding(f"{rel} is committed: its secrets are in the repository for everyone with access",
                          ctx.root / rel, fix=f"git rm --cached {rel} && echo {rel} >> .gitignore; then rotate its secrets")


@rule("git.env-not-ignored", Severity.ERROR, "an env file is not listed in .gitignore",
      "add it to .gitignore so it is never committed by accident")
def env_not_ignored(ctx):
    if not ctx.is_git_repo:
        return
    # .env and the shipped env file always (before they exist, too), and any other real env file beside them
    names = dict.fromkeys([".env", ctx.target.env_file, *_real_env_files_in(ctx.root)])
    names = [n for n in names if n not in ctx.tracked]  # tracked ones are reported by git.env-tracked
    if not names:
        return
    # one `git check-ignore` for all of them: it prints the ones that are ignored
    proc = gitlocal.git(ctx.root, "check-ignore", "--no-index", "--", *names, check=False)  # (-z needs --stdin)
    ignored = set(proc.stdout.splitlines())
    for name in names:
        if name not in ignored:
            yield finding(f"{name} is not ignored by git", ctx.root / ".gitignore", fix=f"echo {name} >> .gitignore")


def _real_env_files_in(root: Path) -> list[str]:
    try:
        return sorted(e.name for e in os.scandir(root) if e.is_file() and _is_real_env_file(e.name))
    except OSError:
        return []


@rule("git.env-in-history", Severity.WARNING, "an env file was committed in the past and is still in git history",
      "rotate every secret it held (anyone with a clone can read them); then rewrite history "
      "(git filter-repo --invert-paths --path FILE) and force-push, or accept it with [check] ignore")
def env_in_history(ctx):
    if not (ctx.is_git_repo and ctx.head):
        return
    for rel, commit in _env_files_in_history(ctx):
        if rel in ctx.tracked:
            continue  # still committed: reported by git.env-tracked
        yield finding(f"{rel} was committed in {commit} and is still in the history of the repository, "
                      "with whatever secrets it held", ctx.root / rel,
                      fix=f"rotate the secrets {rel} held; then remove it from history: git filter-repo --invert-paths "
                          f"--path {rel} (and force-push), or accept it with [check] ignore = [\"git.env-in-history\"]")


def _history_args(ctx) -> list[str]:
    # No pathspec: with glob pathspecs (`**/.env*`) git matches every path of every changed tree and is 2-3x
    # slower than listing every added path and filtering here (20,000 commits: 0.95 s against 0.37 s).
    # --relative: paths relative to the project, which may be a subdirectory of the repository.
    return ["log", "--branches", "--tags", "--remotes", "HEAD", "--no-renames", "--diff-filter=A", "--name-only",
            "--relative", "--format=%x01%h", "-z"]


def prefetch_history(ctx) -> None:
    from berth.check.rules.secrets_scan import start_git

    start_git(ctx, "history", *_history_args(ctx))


def _env_files_in_history(ctx) -> list[tuple[str, str]]:
    """(path, the commit that first added it) for every real env file added on a branch, tag or remote branch.

    One `git log --diff-filter=A` over the history (every path ever added, once), filtered here; --no-renames
    so that a renamed env file still counts as added. refs/stash is left out: `git stash --all` stores
    ignored files, which were never committed.
    """
    from berth.check.rules.secrets_scan import finish_git

    proc = finish_git(ctx, "history", *_history_args(ctx))
    if proc.returncode != 0:
        return []
    first: dict[str, str] = {}
    commit = ""
    env_file = os.fsencode(ctx.target.env_file)
    for item in proc.stdout.split(b"\0"):
        if b"\x01" in item:  # "\x01<hash>\n" heads each commit's NUL-separated paths
            head, _, item = item.partition(b"\x01")[2].partition(b"\n")
            commit = head.decode()
        item = item.strip(b"\n")
        if item and (b".env" in item or item == env_file):  # cheap test on bytes before decoding
            rel = os.fsdecode(item)
            if _is_real_env_file(rel) or rel == ctx.target.env_file:
                first[rel] = commit  # log runs newest first: the last one seen added it first
    return sorted(first.items())


@rule("git.dirty", Severity.ERROR, "the working tree has uncommitted changes; they would not be deployed",
      "commit or stash them, then deploy")
def dirty_tree(ctx):
    if not ctx.is_git_repo or ctx.head is None:
        return
    changes = gitlocal.status_porcelain(ctx.root)
    if changes:
        shown = ", ".join(c[3:] for c in changes[:5]) + (f" and {len(changes) - 5} more" if len(changes) > 5 else "")
        yield finding(f"{len(changes)} uncommitted change(s): {shown}")


@rule("git.no-branch", Severity.ERROR, "HEAD is detached and no branch is configured",
      "check out a branch, or set GIT_BRANCH in .env (branch in berth.toml)")
def no_branch(ctx):
    if ctx.is_git_repo and ctx.head and not ctx.branch:
        yield finding("HEAD is not on a branch, so berth does not know which remote branch must contain it")


@rule("git.no-remote", Severity.ERROR, "the git remote the server fetches from is not known",
      "git remote add origin URL, or set GIT_REMOTE in .env to a remote name or URL")
def no_remote(ctx):
    if ctx.is_git_repo and ctx.remote_url is None and ctx.remote_error is None:  # a refused one: settings.remote
        yield finding(f"git remote {ctx.target.get('remote', 'origin')!r} does not exist")


@rule("git.unpushed", Severity.ERROR, "HEAD is not on the git remote, so the server cannot fetch it",
      "git push, or run berth deploy --push", stage="git-remote")
def unpushed(ctx):
    if not (ctx.is_git_repo and ctx.head and ctx.branch and ctx.remote_url):
        return
    shown = gitlocal.public_url(ctx.remote_url)
    try:
        pushed, tip = gitlocal.is_pushed(ctx.root, ctx.remote_url, ctx.branch, ctx.head)
    except gitlocal.GitError as exc:
        yield finding(f"cannot read the git remote {shown}: {exc.what}",
                      fix="check the remote URL and your access to it (git ls-remote URL)")
        return
    if pushed:
        return
    where = f"branch {ctx.branch} of {shown}"
    state = "does not exist" if tip is None else f"is at {tip[:7]}"
    yield finding(f"HEAD {ctx.head[:7]} is not pushed: {where} {state}")


@rule("git.remote-credentials", Severity.WARNING, "the git remote URL holds a password or token",
      "take the credentials out of the URL: give each server a read-only deploy key and use an ssh URL "
      "(git@host:org/app.git), or set up a git credential helper on the server")
def remote_credentials(ctx):
    if not ctx.remote_url or not gitlocal.url_credentials(ctx.remote_url):
        return
    s = ctx.target.settings.get("remote")
    # GIT_REMOTE / remote holding the URL itself is the line to fix; else the URL is in .git/config
    file, line = (s.file, s.line) if s is not None and s.value == ctx.remote_url else (None, None)
    yield finding(f"the git remote URL {gitlocal.public_url(ctx.remote_url)} holds a password or token; berth "
                  "leaves it out of what it sends to servers, so they need their own access to the remote", file, line)
