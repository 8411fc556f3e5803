"""Server-side git: clone once, then fetch and check out the exact commit that was checked."""

from __future__ import annotations

from berth.commands.shell import join, quote, script

# exit codes the sync script uses to say why it stopped
NOT_A_CHECKOUT = 64
DIRTY_CHECKOUT = 65
COMMIT_NOT_FOUND = 66
REPORT_LIMIT = 40


def sync(app_dir: str, remote_url: str, commit: str) -> str:
    """Clone if needed; refuse a checkout with uncommitted changes; check out `commit` detached.

    Prints `cloned=1`, `previous=SHA`, `fetched=1`, `untracked=...` lines for the caller to report.
    Never resets, cleans or stashes: a dirty server checkout stops the deploy with the changes listed.
    """
    app = quote(app_dir)
    return script([
        f"app={app}",
        'if [ -e "$app" ] && [ ! -d "$app/.git" ] && [ -n "$(ls -A "$app" 2>/dev/null)" ]; then',
        f'  echo "$app exists but is not a git checkout" >&2; exit {NOT_A_CHECKOUT}',
        "fi",
        'if [ ! -d "$app/.git" ]; then',
        '  mkdir -p "$(dirname "$app")"',
        f"  {join(['git', 'clone', '-q', remote_url])} \"$app\"",
        "  echo cloned=1",
        '  cd "$app"',
        "else",
        '  cd "$app"',
        f"  dirty=$(git status --porcelain --untracked-files=no | head -n {REPORT_LIMIT})",
        f'  if [ -n "$dirty" ]; then printf "%s\\n" "$dirty" >&2; exit {DIRTY_CHECKOUT}; fi',
        '  printf "previous=%s\\n" "$(git rev-parse -q --verify HEAD || true)"',
        f'  untracked=$(git status --porcelain --untracked-files=normal | grep "^??" | head -n {REPORT_LIMIT} || true)',
        '  if [ -n "$untracked" ]; then printf "untracked=%s\\n" "$untracked" | tr "\\n" " "; echo; fi',
        f'  if [ "$(git remote get-url origin 2>/dev/null)" != {quote(remote_url)} ]; then',
        f"    git remote set-url origin {quote(remote_url)} 2>/dev/null || git remote add origin {quote(remote_url)}",
        "  fi",
        "fi",
        f"if ! git cat-file -e {quote(commit + '^{commit}')} 2>/dev/null; then",
        "  git fetch -q origin",
        "  echo fetched=1",
        "fi",
        f"if ! git cat-file -e {quote(commit + '^{commit}')} 2>/dev/null; then",
        f'  echo "commit {commit} is not on the remote" >&2; exit {COMMIT_NOT_FOUND}',
        "fi",
        f'if [ "$(git rev-parse -q --verify HEAD || true)" != {quote(commit)} ]; then',
        f"  {join(['git', '-c', 'advice.detachedHead=false', 'checkout', '-q', '--detach', commit])}",
        "fi",
        'printf "head=%s\\n" "$(git rev-parse HEAD)"',
    ])


def checkout_head(app_dir: str) -> str:
    """The commit the server's checkout is at (empty output if there is no checkout)."""
    app = quote(app_dir)
    return f"if [ -d {app}/.git ]; then git -C {app} rev-parse -q --verify HEAD 2>/dev/null || true; fi"
