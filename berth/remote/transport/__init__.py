"""How commands reach a server: the `Transport` protocol and the `Result` of a command.

berth's only real transport is SSH (berth.remote.transport.ssh.SSHConnection); the scripted one
(berth.remote.transport.scripted) answers from a table, for in-process tests of the deploy path.
Everything above this package builds commands as text and hands them to `run`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from berth.secrets.masking import masked_tail

if TYPE_CHECKING:
    from berth.configuration.target import Host


@dataclass(frozen=True)
class Result:
    command: str
    exit_code: int
    stdout: bytes
    stderr: bytes
    seconds: float
    # the connection's masker: `tail` masks before it cuts, so a cut never shows part of a secret
    mask: Callable[[str], str] | None = field(default=None, compare=False, repr=False)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    @property
    def out(self) -> str:
        return self.stdout.decode("utf-8", "replace")

    @property
    def err(self) -> str:
        return self.stderr.decode("utf-8", "replace")

    def tail(self, limit: int = 300) -> str:
        """The end of stderr (of stdout when stderr is empty), masked, then cut at a line boundary: for messages."""
        return masked_tail(self.err.strip() or self.out.strip(), limit, self.mask)


class Transport(Protocol):
    """One connection to one host, as the deploy path uses it."""

    host: Host
    lost: str | None  # why the connection is gone (then every run fails at once); None while it works
    connections_opened: int

    def open(self) -> float:
        """Connect (authenticate once); returns the seconds it took."""

    def run(self, script: str, *, stdin: bytes | None = None, timeout: float | None = None,
            check: bool = False) -> Result:
        """Run a shell script on the host, `stdin` as its input (how secrets travel)."""

    def reconnect(self, within: float | None = None, pause: float = 2) -> bool:
        """After `lost`: connect again; True once it works."""

    def stream(self, script: str, on_line: Callable[[str], None]) -> int:
        """Run a long command, passing each output line as it arrives; returns its exit code."""

    def close(self) -> None: ...
