"""The deploy lock on a server, as commands (after Kamal's commands/lock.rb).

The lock is a directory — `mkdir` is atomic — holding owner.json (who, where, when, which commit,
why). Only the owner's token releases it; `force_release` is for a person who has checked.
"""

from __future__ import annotations

from berth.commands.shell import quote, script

HELD = 75  # exit code: someone else holds the lock; stdout is their owner.json
NOT_OURS = 76  # exit code: release refused, the lock belongs to another token


def _paths(state_dir: str) -> tuple[str, str]:
    lock = quote(f"{state_dir}/lock")
    return lock, quote(f"{state_dir}/lock/owner.json")


def acquire(state_dir: str) -> str:
    """stdin: the owner JSON. Exit 0 when acquired, HELD (printing the owner) when not."""
    lock, owner = _paths(state_dir)
    return script([
        f"mkdir -p {quote(state_dir)}",
        f"if mkdir {lock} 2>/dev/null; then cat > {owner}.tmp && mv -f {owner}.tmp {owner}; echo acquired;",
        f"else cat {owner} 2>/dev/null || echo '{{}}'; exit {HELD}; fi",
    ])


def release(state_dir: str, token: str) -> str:
    lock, owner = _paths(state_dir)
    return script([
        f"[ -d {lock} ] || exit 0",
        f"if grep -q {quote(token)} {owner} 2>/dev/null; then rm -rf {lock}; else cat {owner} 2>/dev/null; exit {NOT_OURS}; fi",
    ])


def force_release(state_dir: str) -> str:
    lock, owner = _paths(state_dir)
    return f"cat {owner} 2>/dev/null; rm -rf {lock} && [ ! -e {lock} ]"


def status(state_dir: str) -> str:
    lock, owner = _paths(state_dir)
    return f"if [ -d {lock} ]; then cat {owner} 2>/dev/null || echo '{{}}'; fi"
