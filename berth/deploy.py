"""Stage: deploy — build (with the layer cache) and `up -d` through docker compose on the server."""

from __future__ import annotations

from dataclasses import dataclass

from berth.connect import HostSession
from berth.engines.compose import in_dir
from berth.errors import BerthError


@dataclass(frozen=True)
class DeployResult:
    built: bool
    output: str


def compose_up(session: HostSession, build: bool) -> DeployResult:
    compose = session.compose
    output = []
    if build:
        result = session.conn.run(in_dir(session.app_dir, compose.build()), timeout=3600)
        output.append(result.out + result.err)
        if not result.ok:
            raise BerthError(
                f"`{' '.join(compose.build()[:2])} build` failed on {session.host.label}",
                fix="read the build output above; reproduce locally with `docker compose build`",
                details=_tail(result.out + result.err, 40),
            )
    result = session.conn.run(in_dir(session.app_dir, compose.up()), timeout=1800)
    output.append(result.out + result.err)
    if not result.ok:
        raise BerthError(
            f"`{' '.join(compose.up()[:2])} up` failed on {session.host.label}",
            fix="read the compose output above (a port already in use, a missing image or a bad option are common)",
            details=_tail(result.out + result.err, 40),
        )
    return DeployResult(build, "".join(output))


def _tail(text: str, n: int) -> str:
    return "\n".join(text.rstrip().splitlines()[-n:])
