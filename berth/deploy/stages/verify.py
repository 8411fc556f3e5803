"""Stage: verify — every service running (and healthy where it has a healthcheck), every health URL 2xx.

Waits up to a timeout. On failure it gathers what a person needs to fix it: the failing
services' states and their last log lines.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from berth.deploy import interrupt
from berth.remote.engines.compose import ContainerState, in_dir, parse_inspect
from berth.remote.session import HostSession
from berth.remote.shell import quote

POLL_SECONDS = 0.5
LOG_LINES = 30
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


@dataclass
class VerifyResult:
    ok: bool
    containers: list[ContainerState]
    urls: dict[str, str] = field(default_factory=dict)  # url → "200" or the error
    problems: list[str] = field(default_factory=list)
    logs: dict[str, str] = field(default_factory=dict)  # service → last log lines

    def describe(self) -> str:
        parts = [f"{c.service} {c.health or c.status}" for c in self.containers]
        parts += [f"{u} → {s}" for u, s in self.urls.items()]
        return ", ".join(parts)


def container_states(session: HostSession) -> list[ContainerState]:
    result = session.conn.run(session.compose.inspect_containers(), timeout=60)
    return sorted(parse_inspect(result.out), key=lambda c: (c.service, c.name))


def _probe_url_from_here(url: str, timeout: float) -> str:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="GET"), timeout=timeout) as resp:
            return str(resp.status)
    except urllib.error.HTTPError as exc:
        return str(exc.code)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"error: {reason}"


def probe_url_on_server_command(url: str) -> str:
    """A URL on the server's own loopback is fetched on the server: curl, else busybox/GNU wget."""
    u = quote(url)
    return (
        f"if command -v curl >/dev/null 2>&1; then code=$(curl -s -o /dev/null -m 5 -w '%{{http_code}}' {u}); rc=$?;"
        f" if [ $rc = 0 ]; then echo \"$code\"; elif [ $rc = 7 ]; then echo 'error: connection refused';"
        f" elif [ $rc = 28 ]; then echo 'error: timed out'; else echo \"error: no answer (curl exit $rc)\"; fi;"
        f" elif command -v wget >/dev/null 2>&1; then if wget -q -T 5 -O /dev/null {u}; then echo 200; else echo 'error: wget failed'; fi;"
        " else echo 'error: neither curl nor wget on the server'; fi"
    )


def on_the_server(url: str) -> bool:
    """A localhost URL is fetched on the server itself; any other from here."""
    return (urlsplit(url).hostname or "") in LOCAL_HOSTS


def probe_url(conn, url: str, timeout: float = 5) -> str:
    """A localhost URL is fetched on the server over `conn`; any other from here."""
    if on_the_server(url):
        return conn.run(probe_url_on_server_command(url), timeout=timeout + 10).out.strip()
    return _probe_url_from_here(url, timeout)


NO_SERVICE = ("no service is expected to run: every service in the compose files is behind `profiles:` that "
              "COMPOSE_PROFILES in the env file does not enable (or the files have no services), so compose starts "
              "nothing")


def verify(session: HostSession, expected_services: list[str], urls: tuple[str, ...], timeout: float,
           ignore: set[str] = frozenset()) -> VerifyResult:
    """Fails when anything expected is not up, and also when nothing is: zero containers is no success.

    `ignore`: names of containers a start-first switch retired (stopping in the background)."""
    deadline = time.monotonic() + timeout
    if not expected_services:
        return VerifyResult(False, container_states(session), problems=[NO_SERVICE])
    while True:
        containers = [c for c in container_states(session) if c.name.lstrip("/") not in ignore]
        running = {c.service for c in containers}
        missing = [s for s in expected_services if s not in running]
        failed = [c for c in containers if c.failed]
        pending = [c for c in containers if not c.ready]
        if not missing and not pending:
            break
        if failed or time.monotonic() > deadline:
            problems = [] if containers else [f"no container of project {session.compose.project} exists on the host"]
            problems += [f"service {s} has no container" for s in missing]
            problems += [problem_of(c) for c in pending]
            bad = sorted({c.service for c in pending})
            return VerifyResult(False, containers, problems=problems, logs=service_logs(session, bad))
        interrupt.check("verify")
        time.sleep(POLL_SECONDS)

    results, problem = wait_for_urls(session.conn, urls, deadline, timeout)
    if problem:
        return VerifyResult(False, containers, results, problems=[problem],
                            logs=service_logs(session, sorted({c.service for c in containers})))
    return VerifyResult(True, containers, results)


def wait_for_urls(conn, urls: tuple[str, ...], deadline: float, timeout: float) -> tuple[dict[str, str], str | None]:
    """Each URL until it answers 2xx, one after the other: what each answered, and the problem of the first that did
    not by `deadline` (None when all did). `timeout` is the whole wait's, for the message."""
    results: dict[str, str] = {}
    for url in urls:
        while True:
            status = probe_url(conn, url)
            results[url] = status
            if status.isdigit() and 200 <= int(status) < 300:
                break
            interrupt.check("verify")
            if time.monotonic() > deadline:
                return results, f"{url} answered {status} (wanted 2xx) within {timeout:.0f}s"
            time.sleep(POLL_SECONDS)
    return results, None


def problem_of(c: ContainerState) -> str:
    """One line: the container's state, and the health probe's own output when its healthcheck fails."""
    text = f"service {c.service} ({c.name}) is {c.describe()}"
    if c.health_log:
        probe = " ".join(c.health_log.split())
        text += f"; its healthcheck said: {probe[:300]}{'…' if len(probe) > 300 else ''}"
    return text


def service_logs(session: HostSession, services: list[str], lines: int = LOG_LINES) -> dict[str, str]:
    logs = {}
    for service in services:
        argv = session.compose.logs((service,), tail=lines)
        result = session.conn.run(in_dir(session.app_dir, argv), timeout=60)
        text = (result.out + result.err).rstrip()
        if text:  # an empty section says nothing
            logs[service] = text
    return logs
