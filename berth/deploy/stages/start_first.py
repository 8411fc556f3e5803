"""Stage: deploy with berth's proxy — recreate what must be recreated, then switch each start-first service.

A switch (docs/ROLLOUTS.md): compose starts one more container of the service beside the running one
(`up --no-recreate --scale S=N+1`), which must become healthy and answer a direct probe from the proxy; the
proxy then sends new requests to it (`[new, old]`, lb_policy first). A background job on the server waits
until the old one has no request in flight (Caddy counts them, up to the drain timeout), then stops it with
its own stop timeout and removes it. A new container that fails its health gate is removed with its log
lines kept for the error: traffic never moved, the old one still serves.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from berth.deploy import interrupt
from berth.errors import BerthError
from berth.remote.commands import files as file_commands
from berth.remote.commands import proxy
from berth.remote.engines.compose import in_dir
from berth.remote.session import HostSession
from berth.remote.shell import quote

UP_TIMEOUT = 1800
POLL_SECONDS = 0.2
LOG_LINES = 30


class HealthGateFailed(BerthError):
    """The new container never became ready: it was removed, and the old one kept serving."""


@dataclass
class Switched:
    """What the rollout did on one host: the containers now serving and the ones it retired."""

    serving: dict[str, list[str]] = field(default_factory=dict)  # service → container names the proxy uses
    retired: list[str] = field(default_factory=list)  # container names stopping in the background
    switched: list[str] = field(default_factory=list)  # services whose traffic moved to a new container
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        return "; ".join(self.notes)


def compose_supports_proxy(session: HostSession) -> bool:
    """Compose v2.24 or newer on the host: without it berth recreates every service (and says so)."""
    return proxy.supported(session.compose.variant, session.compose_version)


def write_override(session: HostSession, setup: proxy.ProxySetup) -> None:
    """The override every compose command on the host names; it must exist before the first one (build).
    acme_ca_root's certificate goes beside the Caddyfile (the proxy trusts its ACME server by it)."""
    text = setup.override(session.state_dir) if setup.routes or setup.sites else "services: {}\n"
    _run(session, file_commands.write_private_file(proxy.override_path(session.state_dir)),
         "writing the proxy's compose override", stdin=text.encode())
    if setup.ca_root_pem:
        _run(session, file_commands.write_private_file(proxy.ca_root_path(session.state_dir)),
             "writing acme_ca_root beside the proxy's configuration", stdin=setup.ca_root_pem)


def deploy(session: HostSession, services: list[str], rollouts: list, setup: proxy.ProxySetup, timeout: float,
           done: Switched | None = None, keep: frozenset[str] = frozenset()) -> Switched:
    """Bring every service to the release (a deploy's, or the one a rollback returns to): recreate-strategy
    services and the proxy by `up`, then switch the start-first ones. Raises BerthError (HealthGateFailed when
    a new container failed its gate); `done` shows how far it got either way.

    `keep`: start-first services whose running container already is the release's (a failed deploy never
    switched them): they keep serving untouched."""
    compose, project = session.compose, session.compose.project
    start_first = {r.service: r for r in rollouts if r.strategy == "start-first" and setup.serves(r.service)}
    running = {s: _containers(session, project, s) for s in start_first}
    done = done if done is not None else Switched()
    # nothing serves yet, or the proxy does not run (the first deploy with it: the services still publish their
    # ports themselves): compose starts everything once, in its order, with a short gap the docs name
    proxies = _containers(session, project, proxy.SERVICE)
    first = not any(running.values()) or not proxies
    # the proxy needs a configuration before it starts: the services by name until berth names containers
    serving = {s: names or [s] for s, names in running.items()}
    _write_config(session, setup, serving, only_if_missing=True)
    change = None if first else image_change(session, setup, proxies)
    if change:
        done.notes.append(change)
    if first:  # the services first (they give their ports up), then the proxy takes the ports
        _compose(session, [*compose.base(), "up", "--detach", "--remove-orphans",
                           *(["--no-deps"] if compose.services else []), *services], "up")
        _compose(session, [*compose.base(), "up", "--detach", "--no-deps", proxy.SERVICE], "up")
        done.notes.append("up (the proxy's first start: the services were recreated once)")
    else:
        others = [s for s in services if s not in start_first or not running[s]]  # a new one starts plainly
        _compose(session, [*compose.base(), "up", "--detach", "--remove-orphans", "--no-deps", *others,
                           proxy.SERVICE], "up")
        done.notes.append("up " + ", ".join([*others, proxy.SERVICE]))
    proxy_id = _proxy(session, project)
    for service, rollout in start_first.items():
        old = [] if first else running[service]
        if old and service in keep:
            continue
        if not old:  # first start, or a service new in this release: serve what compose started
            serving[service] = _containers(session, project, service) or [service]
            continue
        started = time.monotonic()
        new = _start_beside(session, service, old)
        try:
            _health_gate(session, proxy_id, service, new, rollout, timeout)
        except BerthError:
            _remove(session, new)
            raise
        ready = time.monotonic()
        # the old ones stay upstreams behind the new one (lb_policy first: they get no new request) so that
        # Caddy keeps counting their requests in flight until those finish; the next switch drops them
        serving[service] = [new, *old]
        _write_config(session, setup, serving)
        _run(session, proxy.reload(proxy_id), "reloading the proxy")
        for name in old:
            _run(session, proxy.retire(name, session.state_dir, proxy_id, rollout.drain_timeout), f"retiring {name}")
        done.retired += old
        done.switched.append(service)
        done.notes.append(f"{service}: {new} serves (ready in {ready - started:.1f}s); {', '.join(old)} stops once "
                          f"its requests in flight finish (at most {rollout.drain_timeout:.0f}s)")
    _write_config(session, setup, serving)
    _run(session, proxy.reload(proxy_id), "reloading the proxy")
    done.serving = serving
    return done


def up_proxy(session: HostSession, setup: proxy.ProxySetup | None = None) -> str | None:
    """`up` of the proxy alone: nothing when it is as the override says, else compose recreates it. Returns
    a note when its image changes (the one case with a gap, docs/ROLLOUTS.md)."""
    note = image_change(session, setup) if setup is not None else None
    _compose(session, [*session.compose.base(), "up", "--detach", "--no-deps", proxy.SERVICE], "up")
    return note


def image_change(session: HostSession, setup: proxy.ProxySetup, names: list[str] | None = None) -> str | None:
    """A note when the running proxy has another image than the release names: compose recreates it then,
    and the host's ports refuse connections until the new one listens. `names`: the proxy's containers, when
    the caller has listed them already."""
    names = _containers(session, session.compose.project, proxy.SERVICE) if names is None else names
    if not names:
        return None
    running = session.conn.run(proxy.image_of(names[0]), timeout=60).out.strip()
    if not running or running == setup.image:
        return None
    return (f"berth's proxy changes image ({running} → {setup.image}): compose recreates it, and its ports refuse "
            "new connections for the few seconds that takes (docs/ROLLOUTS.md)")


def _start_beside(session: HostSession, service: str, old: list[str]) -> str:
    compose = session.compose
    # compose counts every container of the service, retired ones still stopping too
    before = _containers(session, compose.project, service, all_of_them=True)
    scale = len(before) + 1
    _compose(session, [*compose.base(), "up", "--detach", "--no-deps", "--no-recreate", "--scale",
                       f"{service}={scale}", service], f"up --scale {service}={scale}")
    new = [n for n in _containers(session, compose.project, service) if n not in before]
    if len(new) != 1:
        raise BerthError(f"compose did not start one new container of {service} beside {', '.join(old)}",
                         fix="run `docker compose ps` on the server; berth deploy again recreates it")
    return new[0]


def _health_gate(session: HostSession, proxy_id: str, service: str, name: str, rollout, timeout: float) -> None:
    """Healthy by its healthcheck (when it has one), then a 2xx/3xx answer to the probe, within `timeout`."""
    deadline = time.monotonic() + timeout
    state = ""
    while True:
        result = session.conn.run(proxy.health_status(name), timeout=30)
        state = result.out.strip()
        status, _, health = state.partition(" ")
        if status == "running" and health in ("healthy", "none"):
            probe = session.conn.run(proxy.probe(proxy_id, name, rollout.http_port, rollout.health_path), timeout=30)
            if probe.ok:
                return
            state = f"running, but GET {rollout.health_path} on port {rollout.http_port} did not answer 2xx/3xx"
        elif status in ("exited", "dead") or health == "unhealthy":
            break
        if time.monotonic() > deadline:
            break
        interrupt.check("deploy")
        time.sleep(POLL_SECONDS)
    logs = session.conn.run(f"docker logs --tail {LOG_LINES} {name} 2>&1", timeout=30).out
    raise HealthGateFailed(
        f"the new container of {service} ({name}) did not pass its health gate ({state or 'no state'}); "
        "it was removed, and the running one kept serving",
        fix=f"read its log lines below; `berth logs {service}` shows more",
        details=f"--- last log lines of {name} ---\n{logs}")


def _containers(session: HostSession, project: str, service: str, all_of_them: bool = False) -> list[str]:
    """A service's running containers, newest first, without the ones a switch retired that still stop
    (with `all_of_them`, those too)."""
    result = session.conn.run(proxy.container_ids(project, service, None if all_of_them else session.state_dir),
                              timeout=60)
    return [line.split()[1] for line in result.out.splitlines() if len(line.split()) == 2]


def _proxy(session: HostSession, project: str) -> str:
    names = _containers(session, project, proxy.SERVICE)
    if not names:
        raise BerthError(f"berth's proxy ({proxy.SERVICE}) is not running after up",
                         fix=f"read `docker logs {project}-{proxy.SERVICE}-1` on the server; `berth doctor` checks it")
    return names[0]


def _write_config(session: HostSession, setup: proxy.ProxySetup, serving: dict[str, list[str]],
                  only_if_missing: bool = False) -> None:
    path = proxy.caddyfile_path(session.state_dir)
    write = file_commands.write_private_file(path)
    if only_if_missing:
        write = f"[ -e {quote(path)} ] || {{ {write}; }}"
    _run(session, write, "writing the proxy's configuration", stdin=setup.caddyfile(serving).encode())


def _remove(session: HostSession, name: str) -> None:
    session.conn.run(f"docker rm -f {quote(name)} >/dev/null 2>&1", timeout=120)


def _compose(session: HostSession, argv: list[str], verb: str) -> None:
    result = session.conn.run(in_dir(session.app_dir, argv), timeout=UP_TIMEOUT)
    if not result.ok:
        raise BerthError(f"`{' '.join(session.compose.program)} {verb}` failed on {session.host.label}",
                         fix="read the compose output below; a port already in use or a missing image are common causes",
                         details="\n".join((result.out + result.err).rstrip().splitlines()[-40:]))


def _run(session: HostSession, script: str, what: str, stdin: bytes | None = None) -> str:
    result = session.conn.run(script, stdin=stdin, timeout=300)
    if not result.ok:
        raise BerthError(f"{what} failed on {session.host.label}",
                         details="\n".join((result.out + result.err).rstrip().splitlines()[-20:]))
    return result.out
