"""Server-side git: clone once, then fetch and check out the exact commit that was checked."""

from __future__ import annotations

import re

from berth.errors import BerthError
from berth.model.git import public_url, refuse_option_like
from berth.remote.shell import join, quote, script

# exit codes the sync script uses to say why it stopped
NOT_A_CHECKOUT = 64
DIRTY_CHECKOUT = 65
COMMIT_NOT_FOUND = 66
IGNORED_IN_THE_WAY = 67
SERVER_COMMITS = 68
REPORT_LIMIT = 40

# where the server keeps the branches of a URL that is not its origin (origin itself is never rewritten)
BERTH_REFS = "refs/remotes/berth"
_COMMIT = re.compile(r"^[0-9a-f]{7,64}$")
# gitlocal.public_url for a URL read on the server (its own origin): http(s) loses the whole userinfo,
# ssh:// and the others only the password
URL_WITHOUT_CREDENTIALS_SED = r"s#^\([Hh][Tt][Tt][Pp][Ss]\{0,1\}://\)[^/]*@#\1#;s#^\([A-Za-z+.-]*://[^/@:]*\):[^/]*@#\1@#"

# ext:: runs a command by design; off on the server too, whatever its git config says
_GIT = ["git", "-c", "protocol.ext.allow=never"]

# Paths the target commit tracks where the checkout holds an ignored file: an ignored file at a tracked
# path (file or directory), or under a path the commit tracks as a file. `git checkout` would replace or
# delete them without a word. Input: `ls-tree -r -t` lines ("MODE TYPE SHA<TAB>PATH"), then the ignored
# files as "-<TAB>PATH". Paths are compared as git prints them (core.quotePath=false for both, so
# non-ASCII stays raw; a path with a control character, a quote or a backslash is quoted the same way
# by both commands, so an equal path still matches).
_IGNORED_IN_THE_WAY_AWK = (
    '$1 == "-" { p = $2; if (p in kind) { print p; next }'
    ' q = p; while (sub(/\\/[^\\/]*$/, "", q)) if (kind[q] == "blob") { print p; next }; next }'
    ' { split($1, f, " "); kind[$2] = f[2] }'
)


def valid_commit(commit: str) -> str:
    """A full or abbreviated hex commit id; anything else never reaches a server script.

    Commits also come back from the server's release records (rollback, the running release), so a
    bad one is a BerthError the user can act on, not a traceback.
    """
    if not isinstance(commit, str) or not _COMMIT.match(commit):
        raise BerthError(f"{commit!r} is not a commit id (7 to 64 hex digits); berth does not put it into a server script",
                         fix="if it comes from a server's release records (~/.berth/PROJECT/current.json, "
                             "history.jsonl), correct that record on the server")
    return commit


def sync(app_dir: str, remote_url: str, commit: str, running: str | None = None) -> str:
    """Clone if needed; refuse to lose anything on the server; check out `commit` detached.

    `running` is the commit of the release running there (None if none): the checkout may sit on it even
    when no remote branch holds it any more.
    Prints `cloned=1`, `previous=SHA`, `fetched=1`, `untracked=...`, `origin=other` lines for the caller.
    Never resets, cleans or stashes, and never rewrites the server's `origin`. It stops, listing what is at
    stake, on uncommitted changes (DIRTY_CHECKOUT), on ignored files that the commit would overwrite
    (IGNORED_IN_THE_WAY) and on commits made on the server that no remote holds (SERVER_COMMITS).
    The URL reaches the server without its credentials (gitlocal.public_url).
    """
    valid_commit(commit)
    if running is not None:
        valid_commit(running)
    url = public_url(remote_url)
    refuse_option_like(url, "the git remote")  # and `--` below: never an option to git
    app, q_url, q_commit = quote(app_dir), quote(url), quote(commit)
    q_commit_obj = quote(commit + "^{commit}")
    fetch_from_url = join([*_GIT, "fetch", "-q", "--", url, f"+refs/heads/*:{BERTH_REFS}/*"])
    # HEAD is safe to move away from when nothing could be lost: it is the target, the running
    # release's commit, or held by a remote-tracking branch (origin's or berth's)
    head_is_safe = ('[ "$head" = "$target" ] || [ "$head" = "$running" ] || '
                    '[ -n "$(git for-each-ref --count=1 --contains "$head" refs/remotes)" ]')
    return script([
        f"app={app}",
        'if [ -e "$app" ] && [ ! -d "$app/.git" ] && [ -n "$(ls -A "$app" 2>/dev/null)" ]; then',
        f'  echo "$app exists but is not a git checkout" >&2; exit {NOT_A_CHECKOUT}',
        "fi",
        "fetched=",
        "fetch() {",
        '  if [ "$origin" = same ]; then ' + join([*_GIT, "fetch", "-q", "origin"]) + "; else " + fetch_from_url + "; fi",
        "  fetched=1; echo fetched=1",
        "}",
        'if [ ! -d "$app/.git" ]; then',
        '  mkdir -p "$(dirname "$app")"',
        f"  {join([*_GIT, 'clone', '-q', '--', url])} \"$app\"",
        "  echo cloned=1",
        '  cd "$app"',
        "  origin=same",
        "else",
        '  cd "$app"',
        f"  dirty=$(git status --porcelain --untracked-files=no | head -n {REPORT_LIMIT})",
        f'  if [ -n "$dirty" ]; then printf "%s\\n" "$dirty" >&2; exit {DIRTY_CHECKOUT}; fi',
        '  printf "previous=%s\\n" "$(git rev-parse -q --verify HEAD || true)"',
        f'  untracked=$(git status --porcelain --untracked-files=normal | grep "^??" | head -n {REPORT_LIMIT} || true)',
        '  if [ -n "$untracked" ]; then printf "untracked=%s\\n" "$untracked" | tr "\\n" " "; echo; fi',
        # the server's origin stays as its owner set it; another URL is fetched into refs/remotes/berth/*.
        # The same URL with the server's own credentials in it (an older berth copied the laptop's there)
        # is the same repository: fetched as origin, so those credentials keep working.
        "  origin_url=$(git config --get remote.origin.url || true)",  # as set: no insteadOf expansion
        f'  if [ "$origin_url" = {q_url} ] || '
        f'[ "$(printf "%s" "$origin_url" | sed {quote(URL_WITHOUT_CREDENTIALS_SED)})" = {q_url} ]; then',
        "    origin=same",
        "  else origin=other; echo origin=other; fi",
        "fi",
        f"if ! git cat-file -e {q_commit_obj} 2>/dev/null; then fetch; fi",
        f"if ! git cat-file -e {q_commit_obj} 2>/dev/null; then",
        f'  echo "commit "{q_commit}" is not on the remote" >&2; exit {COMMIT_NOT_FOUND}',
        "fi",
        f"target=$(git rev-parse -q --verify {q_commit_obj})",
        # (full ids, so that abbreviated ones compare equal; an unknown running commit is no excuse)
        f"running=$(git rev-parse -q --verify {quote(running + '^{commit}')} || echo none)" if running else "running=none",
        'head=$(git rev-parse -q --verify HEAD || true)',
        'if [ -n "$head" ]; then',
        # remote-tracking refs may be stale: fetch once before calling a commit the server's own
        f"  if ! {{ {head_is_safe}; }} && [ -z \"$fetched\" ]; then fetch 2>/dev/null || true; fi",
        f"  if ! {{ {head_is_safe}; }}; then",
        f'    git log --oneline --no-decorate HEAD --not --remotes | head -n {REPORT_LIMIT} >&2; exit {SERVER_COMMITS}',
        "  fi",
        "fi",
        'if [ "$head" != "$target" ]; then',
        f"  in_the_way=$({{ git -c core.quotePath=false ls-tree -r -t \"$target\";"
        " git -c core.quotePath=false ls-files -o -i --exclude-standard | sed 's/^/-\t/'; }"
        f" | LC_ALL=C awk -F '\t' {quote(_IGNORED_IN_THE_WAY_AWK)} | head -n {REPORT_LIMIT})",
        f'  if [ -n "$in_the_way" ]; then printf "%s\\n" "$in_the_way" >&2; exit {IGNORED_IN_THE_WAY}; fi',
        # --no-overwrite-ignore: should the list above miss a case, git refuses instead of overwriting
        "  " + join(["git", "-c", "advice.detachedHead=false", "checkout", "-q", "--no-overwrite-ignore", "--detach"])
        + ' "$target"',
        "fi",
        'printf "head=%s\\n" "$(git rev-parse HEAD)"',
    ])


def checkout_head(app_dir: str) -> str:
    """The commit the server's checkout is at (empty output if there is no checkout)."""
    app = quote(app_dir)
    return f"if [ -d {app}/.git ]; then git -C {app} rev-parse -q --verify HEAD 2>/dev/null || true; fi"
