"""How commands reach a server. One small interface: `run(script, stdin=...) -> Result`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from berth.secrets import masked_tail


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
