"""A transport that runs nothing: it records every script and answers from a table. For in-process tests.

    conn = ScriptedTransport(host, [(lock_commands.acquire(state_dir), (0, "acquired\\n", "")), ...])

A table row is (match, answer). `match` is the exact script text (build it with the same command
functions berth uses), a compiled regex searched in the script, or a callable(script) -> bool.
`answer` is (exit code, stdout, stderr) or a callable(script, stdin) -> that triple. The first
matching row answers; a script no row matches fails the test with the script in the message, so a
new remote command cannot slip through unseen. `lose_at` (a match) cuts the connection when such a
script runs, as a dropped network would: that run and every later one raise SSHError until `reconnect`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from berth.remote.transport import Result

Answer = tuple[int, str, str]
Match = str | re.Pattern | Callable[[str], bool]


def matches(match: Match, script: str) -> bool:
    if isinstance(match, str):
        return script == match
    if isinstance(match, re.Pattern):
        return match.search(script) is not None
    return bool(match(script))


class UnexpectedScript(AssertionError):
    pass


@dataclass
class ScriptedTransport:
    host: object
    table: list[tuple[Match, Answer | Callable[[str, bytes | None], Answer]]] = field(default_factory=list)
    lose_at: Match | None = None
    can_reconnect: bool = True
    mask: Callable[[str], str] | None = None
    calls: list[tuple[str, bytes | None]] = field(default_factory=list)
    lost: str | None = None
    connections_opened: int = 0
    closed: bool = False

    def open(self) -> float:
        self.connections_opened += 1
        return 0.0

    def run(self, script: str, *, stdin: bytes | None = None, timeout: float | None = None,
            check: bool = False) -> Result:
        from berth.remote.transport.ssh import SSHError

        if self.lost:
            raise SSHError(self.lost)
        self.calls.append((script, stdin))
        if self.lose_at is not None and matches(self.lose_at, script):
            self.lose_at = None  # once: the reconnect that follows works
            self.lost = f"the SSH connection to {getattr(self.host, 'label', self.host)} was lost: scripted"
            raise SSHError(self.lost)
        for match, answer in self.table:
            if matches(match, script):
                code, out, err = answer(script, stdin) if callable(answer) else answer
                result = Result(script, code, out.encode(), err.encode(), 0.0, self.mask)
                if check and not result.ok:
                    raise SSHError(f"command failed (exit {code}): {result.tail(500)}")
                return result
        raise UnexpectedScript(f"no answer for this script:\n{script}")

    def reconnect(self, within: float | None = None, pause: float = 2) -> bool:
        if not self.can_reconnect:
            return False
        self.lost = None
        self.connections_opened += 1
        return True

    def stream(self, script: str, on_line: Callable[[str], None]) -> int:
        result = self.run(script)
        for line in result.out.splitlines():
            on_line(line)
        return result.exit_code

    def close(self) -> None:
        self.closed = True

    def scripts(self, match: Match | None = None) -> list[str]:
        """The scripts that ran (those `match` matches)."""
        return [s for s, _ in self.calls if match is None or matches(match, s)]
