"""Git state: code reaches the server only through git, so what is deployed must be committed and pushed."""

from __future__ import annotations

import fnmatch

from berth import gitlocal
from berth.check.findings import Severity, finding, rule

ENV_FILE_PATTERN = ".env*"
EXAMPLE_SUFFIXES = (".example", ".sample", ".template")


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
        if _is_real_env_file(rel):
            yield finding(f"{rel} is committed: its secrets are in the repository for everyone with access",
                          ctx.root / rel, fix=f"git rm --cached {rel} && echo {rel} >> .gitignore; then rotate its secrets")


@rule("git.env-not-ignored", Severity.ERROR, "an env file is not listed in .gitignore",
      "add it to .gitignore so it is never committed by accident")
def env_not_ignored(ctx):
    if not ctx.is_git_repo:
        return
    for name in (".env", ctx.target.env_file):
        if name in ctx.tracked:
            continue  # reported by git.env-tracked
        if not gitlocal.is_ignored(ctx.root, name):
            yield finding(f"{name} is not ignored by git", ctx.root / ".gitignore", fix=f"echo {name} >> .gitignore")


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
    if ctx.is_git_repo and ctx.remote_url is None:
        yield finding(f"git remote {ctx.target.get('remote', 'origin')!r} does not exist")


@rule("git.unpushed", Severity.ERROR, "HEAD is not on the git remote, so the server cannot fetch it",
      "git push, or run berth deploy --push", stage="git-remote")
def unpushed(ctx):
    if not (ctx.is_git_repo and ctx.head and ctx.branch and ctx.remote_url):
        return
    try:
        pushed, tip = gitlocal.is_pushed(ctx.root, ctx.remote_url, ctx.branch, ctx.head)
    except gitlocal.GitError as exc:
        yield finding(f"cannot read the git remote {ctx.remote_url}: {exc.what}",
                      fix="check the remote URL and your access to it (git ls-remote URL)")
        return
    if pushed:
        return
    where = f"branch {ctx.branch} of {ctx.remote_url}"
    state = "does not exist" if tip is None else f"is at {tip[:7]}"
    yield finding(f"HEAD {ctx.head[:7]} is not pushed: {where} {state}")
