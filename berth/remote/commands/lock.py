"""The deploy lock on a server, as commands (after Kamal's commands/lock.rb).

The lock is a directory — `mkdir` is atomic — holding owner.json (who, where, when, which commit,
why, and a random token). It is removed only by `release(token)`: by its owner at the end of a
deploy, or by a breaker that read that token from a lock it judged stale (`token=None` for a lock
whose owner.json has no token at all, e.g. one left half-written).

Why removal is safe against other breakers (two CI retries taking over one stale lock):
* every removal runs under one breaker mutex: `flock` on `lock.break` (the kernel drops it when the
  process dies, so it never goes stale), or where `flock` is missing, `mkdir lock.break.d` with a
  trap that removes it; a leftover of a breaker killed (SIGKILL) inside its few-millisecond
  critical section is cleaned once it is a minute old.
* under the mutex, nothing else can remove or replace `lock`: acquirers only `mkdir`, which fails
  while it exists, and every remover holds the mutex. So the owner.json read under the mutex is the
  one removed: check and removal are one step for everyone who could interfere.
* the token is compared, not the fact "a lock exists": a breaker that saw lock L (token S) and was
  paused until L was broken and lock N acquired finds N's token, not S, and leaves N alone.
* an acquire between `mkdir lock` and renaming its owner.json into it has no owner.json yet, so no token
  matches: only `token=None` could remove it, and only a person (`berth lock release --force` on a
  lock berth cannot read) asks for that.
* `mv` then `rm -rf`: the lock vanishes in one rename, so an acquirer never sees it half-deleted.
The fallback mutex has one gap: after a breaker was SIGKILLed while holding it, two breakers that
both find the leftover in the same instant can both clean it. flock has none (util-linux and
busybox both ship it).
"""

from __future__ import annotations

import re

from berth.remote.shell import quote, script

HELD = 75  # exit code: someone else holds the lock; stdout is their owner.json
NOT_OURS = 76  # exit code: release refused, the lock belongs to another token (or none); stdout is its owner.json
BUSY = 78  # exit code: the breaker mutex was not free within MUTEX_WAIT seconds
MUTEX_WAIT = 10
_TOKEN = re.compile(r"[0-9A-Za-z_-]{1,128}")


def valid_token(token: object) -> bool:
    return isinstance(token, str) and bool(_TOKEN.fullmatch(token))


def _paths(state_dir: str) -> tuple[str, str]:
    lock = quote(f"{state_dir}/lock")
    return lock, quote(f"{state_dir}/lock/owner.json")


def acquire(state_dir: str) -> str:
    """stdin: the owner JSON. Exit 0 when acquired, HELD (printing the owner) when not."""
    lock, owner = _paths(state_dir)
    # the owner record is read from stdin before `mkdir`, so the lock is without it only for the
    # instant of one rename; a loser that looks in that instant waits for it rather than reporting
    # an unreadable lock (up to 2 s: an owner.json that stays missing is a killed acquirer's)
    tmp = quote(f"{state_dir}/lock-owner.") + '"$$"'
    return script([
        f"mkdir -p {quote(state_dir)}",
        f"cat > {tmp}",
        f"if mkdir {lock} 2>/dev/null; then mv -f {tmp} {owner}; echo acquired;",
        f"else rm -f {tmp}; i=0; while [ -d {lock} ] && [ ! -s {owner} ] && [ $i -lt 20 ]; do sleep 0.1; i=$((i + 1)); done;",
        f"  cat {owner} 2>/dev/null || echo '{{}}'; exit {HELD}; fi",
    ])


def _breaker_mutex(state_dir: str) -> list[str]:
    d = quote(state_dir)
    return [
        f"mkdir -p {d}",
        "if command -v flock >/dev/null 2>&1; then",
        f"  exec 9>>{quote(state_dir + '/lock.break')}",
        f"  flock -w {MUTEX_WAIT} 9 || exit {BUSY}",
        "else",
        f"  mutex={quote(state_dir + '/lock.break.d')}; tries=0",
        '  until mkdir "$mutex" 2>/dev/null; do',
        '    if [ -n "$(find "$mutex" -maxdepth 0 -mmin +1 2>/dev/null)" ]; then rmdir "$mutex" 2>/dev/null || true; continue; fi',
        f"    tries=$((tries + 1)); [ $tries -le {MUTEX_WAIT * 10} ] || exit {BUSY}; sleep 0.1",
        "  done",
        "  trap 'rmdir \"$mutex\" 2>/dev/null || true' EXIT; trap 'exit 1' HUP INT TERM",
        "fi",
    ]


def release(state_dir: str, token: str | None) -> str:
    """Remove the lock if owner.json still holds `token` (None: if it holds no token). Exit 0 when
    unlocked afterwards (prints `removed`, or `gone` if there was no lock), NOT_OURS when the lock
    is someone else's (left alone), BUSY when the breaker mutex stayed taken."""
    if token is not None and not valid_token(token):
        raise ValueError(f"not a lock token: {token!r}")
    lock, owner = _paths(state_dir)
    # in JSON a quote inside a value is escaped, so `"token":` can only be the key itself (the token
    # is [0-9A-Za-z_-]: no regex character)
    key = '"token"[[:space:]]*:[[:space:]]*'
    if token is not None:
        pattern = f'{key}"{token}"'
        held = f"grep -qE {quote(pattern)} {owner} 2>/dev/null"
    else:
        held = f"! grep -qE {quote(key)} {owner} 2>/dev/null"
    broken = quote(f"{state_dir}/lock.broken") + ".$$"
    return script([
        *_breaker_mutex(state_dir),
        f"[ -d {lock} ] || {{ echo gone; exit 0; }}",
        f"if {held}; then :; else cat {owner} 2>/dev/null || echo '{{}}'; exit {NOT_OURS}; fi",
        f"mv {lock} {broken} && rm -rf {broken}",
        "echo removed",
    ])


def status(state_dir: str) -> str:
    lock, owner = _paths(state_dir)
    return f"if [ -d {lock} ]; then cat {owner} 2>/dev/null || echo '{{}}'; fi"
