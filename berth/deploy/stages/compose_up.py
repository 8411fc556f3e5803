"""Stage: deploy — build (with the layer cache) and `up -d` through docker compose on the server."""

from __future__ import annotations

from dataclasses import dataclass

from berth.errors import BerthError
from berth.remote.engines.compose import in_dir
from berth.remote.session import HostSession

BUILD_TIMEOUT = 3600
UP_TIMEOUT = 1800


@dataclass(frozen=True)
class DeployResult:
    built: bool
    output: str


def compose_up(session: HostSession, build: bool) -> DeployResult:
    compose = session.compose
    output = []
    if build:
        output.append(_run(session, compose.build(), "build", BUILD_TIMEOUT,
                           "reproduce it locally with `docker compose build`"))
    output.append(_run(session, compose.up(), "up", UP_TIMEOUT,
                       "a port already in use, a missing image or a bad option are common causes"))
    return DeployResult(build, "".join(output))


def recreate(session: HostSession, services: list[str]) -> str:
    return _run(session, session.compose.recreate(tuple(services)), "up --force-recreate", UP_TIMEOUT,
                "a port already in use, a missing image or a bad option are common causes")


def compose_build(session: HostSession) -> str:
    """Build alone, for when a pre-deploy hook needs the new images before anything restarts."""
    return _run(session, session.compose.build(), "build", BUILD_TIMEOUT, "reproduce it locally with `docker compose build`")


def _run(session: HostSession, argv: list[str], verb: str, timeout: int, hint: str) -> str:
    result = session.conn.run(in_dir(session.app_dir, argv), timeout=timeout)
    output = result.out + result.err
    if not result.ok:
        raise BerthError(
            f"`{' '.join(session.compose.program)} {verb}` failed on {session.host.label}",
            fix=f"read the compose output below; {hint}",
            details="\n".join(output.rstrip().splitlines()[-40:]),
        )
    return output
