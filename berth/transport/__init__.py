"""How commands reach a server. One small interface: `run(script, stdin=...) -> Result`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Result:
    command: str
    exit_code: int
    stdout: bytes
    stderr: bytes
    seconds: float

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    @property
    def out(self) -> str:
        return self.stdout.decode("utf-8", "replace")

    @property
    def err(self) -> str:
        return self.stderr.decode("utf-8", "replace")
