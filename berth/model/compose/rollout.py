"""How each service's new container replaces the old one, decided from the compose model.

* **start-first**: the new container starts beside the old one, must pass its healthcheck and a direct
  probe, then berth's proxy switches traffic to it, requests in flight to the old one drain, and only then
  does the old one stop. It is for stateless services that publish HTTP and can say when they are ready.
* **recreate**: compose stops the old container, then starts the new one (`up -d`). It is for everything a
  second copy would harm or that has no traffic to switch: a database on its volume (two would corrupt it),
  a fixed `container_name`, replicas the user fixed, non-HTTP ports, no health gate.

A service chooses for itself with `x-berth` in its compose definition (compose ignores `x-` keys):

    x-berth:
      rollout: start-first      # or recreate; unset: decided as below
      http_port: 8080           # the container port the proxy forwards to (default: the published TCP port)
      health_path: /ready       # what the direct probe asks (default: the healthcheck's URL path, else /)
      drain_timeout: 30s        # how long requests in flight to the old container may take

Everything here is pure: the same decision is shown by `berth plan` and used by the deploy and rollback.
The switch needs berth's proxy (`proxy = true`, or `domains` in berth.toml); with it off every service is
recreated, and the plan names the services that would switch start-first.

A service named in `domains` is served by the proxy on those host names by HTTPS (a `Site`): it need not
publish a port then (the proxy reaches it on its networks), and it switches start-first when it can say
when it is ready; a recreated one is reached by its service name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

START_FIRST = "start-first"
RECREATE = "recreate"
SETTINGS = ("rollout", "http_port", "health_path", "drain_timeout")
DEFAULT_DRAIN_SECONDS = 30.0
MAX_DRAIN_SECONDS = 3600.0

_URL = re.compile(r"https?://[^\s'\"]+")


class RolloutSettingsError(ValueError):
    """An `x-berth` mapping berth cannot follow; `key` is the setting at fault (None: the mapping)."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.key = key


@dataclass(frozen=True)
class RolloutSettings:
    rollout: str | None = None  # forced strategy
    http_port: int | None = None
    health_path: str | None = None
    drain_timeout: float = DEFAULT_DRAIN_SECONDS


@dataclass(frozen=True)
class Route:
    """One published port berth's proxy serves for a start-first service."""

    service: str
    host_ip: str  # "" for every interface
    published: int  # the host port, which the proxy also listens on inside its container
    target: int  # the service's container port


@dataclass(frozen=True)
class Site:
    """The public host names berth's proxy serves one service on, by HTTPS (certificates by ACME)."""

    service: str
    names: tuple[str, ...]
    target: int  # the service's container port that speaks HTTP


@dataclass(frozen=True)
class Rollout:
    service: str
    strategy: str  # START_FIRST or RECREATE
    why: str  # one clause: "publishes HTTP on 8080 and has a healthcheck", "mounts the named volume db-data"
    http_port: int | None = None  # container port the proxy forwards to (start-first)
    health_path: str = "/"
    drain_timeout: float = DEFAULT_DRAIN_SECONDS

    def describe(self) -> str:
        return f"{self.service}: {self.strategy} ({self.why})"


def settings_of(service: str, x_berth: Any) -> RolloutSettings:
    """A service's `x-berth` mapping (already interpolated), validated; raises RolloutSettingsError."""
    if x_berth is None:
        return RolloutSettings()
    if not isinstance(x_berth, Mapping):
        raise RolloutSettingsError(f"service {service}: x-berth must be a mapping of {', '.join(SETTINGS)}")
    unknown = sorted(str(k) for k in x_berth if k not in SETTINGS)
    if unknown:
        raise RolloutSettingsError(f"service {service}: x-berth has no setting {unknown[0]!r} "
                                   f"(berth knows {', '.join(SETTINGS)})", unknown[0])
    rollout = x_berth.get("rollout")
    if rollout is not None and rollout not in (START_FIRST, RECREATE):
        raise RolloutSettingsError(f"service {service}: x-berth.rollout is {rollout!r}; it must be "
                                   f"{START_FIRST} or {RECREATE}", "rollout")
    port = x_berth.get("http_port")
    if port is not None and (isinstance(port, bool) or not _is_port(port)):
        raise RolloutSettingsError(f"service {service}: x-berth.http_port is {port!r}, not a port number (1-65535)",
                                   "http_port")
    path = x_berth.get("health_path")
    if path is not None and (not isinstance(path, str) or not path.startswith("/") or any(c.isspace() for c in path)):
        raise RolloutSettingsError(f"service {service}: x-berth.health_path is {path!r}; write a path such as "
                                   "/health", "health_path")
    drain = DEFAULT_DRAIN_SECONDS
    if x_berth.get("drain_timeout") is not None:
        from berth.model.compose.resolve import duration_ns

        raw = x_berth["drain_timeout"]
        ns = duration_ns(raw) if isinstance(raw, str) else None
        if not isinstance(ns, int) or ns < 0 or ns / 1e9 > MAX_DRAIN_SECONDS:
            raise RolloutSettingsError(f"service {service}: x-berth.drain_timeout is {raw!r}; write a duration "
                                       "such as 30s or 2m (at most 1h)", "drain_timeout")
        drain = ns / 1e9
    return RolloutSettings(rollout, int(port) if port is not None else None, path, drain)


def _is_port(value: Any) -> bool:
    try:
        return 1 <= int(str(value)) <= 65535 and str(value).strip().isdigit()
    except ValueError:
        return False


def decide(name: str, service: Mapping[str, Any], settings: RolloutSettings,
           health_urls: tuple[str, ...] = (), has_domains: bool = False) -> Rollout:
    """The strategy for one service of the compose model (berth.model.compose.resolve's long syntax).
    `has_domains`: berth.toml names public host names for it, so the proxy serves it even when it publishes
    no port (on x-berth.http_port, else the one port it publishes or exposes).

    Raises RolloutSettingsError when `x-berth` forces start-first where it cannot work."""
    from berth.model.compose.services import DATA_PORTS, is_data_image

    ports = [p for p in service.get("ports") or [] if isinstance(p, dict)]
    published_tcp = _published_tcp(service)
    http_port = settings.http_port or next((p for p in published_tcp if p not in DATA_PORTS), None)
    if has_domains and http_port is None:
        http_port = site_port(service, settings)
    path = settings.health_path or _healthcheck_path(service, http_port) or "/"

    def rollout(strategy: str, why: str) -> Rollout:
        return Rollout(name, strategy, why, http_port if strategy == START_FIRST else None, path,
                       settings.drain_timeout)

    if service.get("container_name"):
        if settings.rollout == START_FIRST:
            raise RolloutSettingsError(f"service {name}: x-berth.rollout is start-first, but container_name "
                                       f"{service['container_name']!r} lets only one container exist", "rollout")
        return rollout(RECREATE, "container_name allows one container at a time")
    if settings.rollout == RECREATE:
        return rollout(RECREATE, "x-berth.rollout: recreate")
    if settings.http_port is not None and settings.http_port not in published_tcp and not has_domains:
        raise RolloutSettingsError(f"service {name}: x-berth.http_port {settings.http_port} is not a TCP port the "
                                   f"service publishes ({', '.join(map(str, published_tcp)) or 'none'})", "http_port")
    if settings.rollout == START_FIRST:
        if http_port is None:
            raise RolloutSettingsError(f"service {name}: x-berth.rollout is start-first, but the service publishes "
                                       "no HTTP port for the proxy to switch (with domains in berth.toml, set "
                                       "x-berth.http_port)", "rollout")
        return rollout(START_FIRST, "x-berth.rollout: start-first")
    volume = next((v for v in service.get("volumes") or [] if isinstance(v, dict) and v.get("type") == "volume"), None)
    if volume is not None:
        if volume.get("source"):
            return rollout(RECREATE, f"it mounts the named volume {volume['source']}: two containers would share "
                                     "its data")
        return rollout(RECREATE, f"its anonymous volume at {volume.get('target')} moves only to a recreated container")
    if is_data_image(service.get("image")):
        return rollout(RECREATE, f"{service['image']} keeps data: it is never run twice")
    replicas = (service.get("deploy") or {}).get("replicas") if isinstance(service.get("deploy"), Mapping) else None
    if replicas is not None or service.get("scale") is not None:
        return rollout(RECREATE, "its replicas are fixed in the compose file")
    if service.get("network_mode"):
        return rollout(RECREATE, "network_mode: the proxy cannot reach it by name")
    if not ports and not (has_domains and http_port is not None):
        return rollout(RECREATE, "it publishes no port: there is no traffic to switch")
    loose = next((p for p in ports if not str(p.get("published", "")).isdigit()), None)
    if loose is not None:
        return rollout(RECREATE, f"its port {loose.get('target')} is published on "
                                 f"{'a random host port' if not loose.get('published') else 'the range ' + str(loose['published'])}"
                                 "; the proxy serves fixed ports")
    if http_port is None:
        shown = ", ".join(f"{p.get('target')}/{p.get('protocol', 'tcp')}" for p in ports)
        return rollout(RECREATE, f"it publishes no HTTP port ({shown}); the proxy switches HTTP only")
    if not _has_healthcheck(service) and not _health_url_for(service, health_urls):
        return rollout(RECREATE, "it has no healthcheck, so nothing says when a new container is ready")
    serves = "publishes HTTP" if ports else "serves its domains over HTTP"
    return rollout(START_FIRST, f"{serves} on {http_port} and has a health gate")


def _published_tcp(service: Mapping[str, Any]) -> list[int]:
    """The container ports a service publishes over TCP, sorted."""
    return sorted({int(p["target"]) for p in service.get("ports") or [] if isinstance(p, dict)
                   and str(p.get("protocol", "tcp")) == "tcp" and str(p.get("target", "")).isdigit()})


def _networks(service: Mapping[str, Any]) -> list[str]:
    """The networks a service is on (the proxy joins them to reach it)."""
    return sorted(service.get("networks") or {"default": None})


def site_port(service: Mapping[str, Any], settings: RolloutSettings) -> int | None:
    """The container port the proxy sends a domain's requests to: x-berth.http_port, else the one TCP port
    the service publishes (not a data port), else the one it exposes; None when that is not one port."""
    from berth.model.compose.services import DATA_PORTS

    if settings.http_port is not None:
        return settings.http_port
    published = [port for port in _published_tcp(service) if port not in DATA_PORTS]
    if published:
        return published[0] if len(published) == 1 else None
    exposed = sorted({int(str(e).split("/")[0]) for e in service.get("expose") or []
                      if str(e).split("/")[0].isdigit() and not str(e).endswith("/udp")})
    return exposed[0] if len(exposed) == 1 else None


def plan(model: Mapping[str, Any], extensions: Mapping[str, Mapping[str, Any]],
         health_urls: tuple[str, ...] = (), domains: Mapping[str, Any] = {}) -> list[Rollout]:
    """Every started service's rollout, in the model's order; raises RolloutSettingsError."""
    services = model.get("services") or {}
    return [decide(name, svc, settings_of(name, (extensions.get(name) or {}).get("x-berth")), health_urls,
                   has_domains=bool(domains.get(name)))
            for name, svc in services.items()]


def _has_healthcheck(service: Mapping[str, Any]) -> bool:
    hc = service.get("healthcheck")
    if not isinstance(hc, Mapping) or hc.get("disable"):
        return False
    test = hc.get("test")
    return bool(test) and test != ["NONE"]


def _healthcheck_path(service: Mapping[str, Any], port: int | None) -> str | None:
    """The path of the URL the healthcheck asks on `port` (`wget http://127.0.0.1:8080/health` → /health)."""
    if not _has_healthcheck(service) or port is None:
        return None
    test = service["healthcheck"]["test"]
    text = " ".join(str(t) for t in test) if isinstance(test, list) else str(test)
    for url in _URL.findall(text):
        parts = urlsplit(url)
        try:
            url_port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            continue
        if url_port == port:
            return parts.path or "/"
    return None


def _health_url_for(service: Mapping[str, Any], health_urls: tuple[str, ...]) -> bool:
    """Does one of berth's health URLs reach a port this service publishes?"""
    published = {str(p.get("published")) for p in service.get("ports") or [] if isinstance(p, dict)}
    for url in health_urls:
        try:
            parts = urlsplit(url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            continue
        if str(port) in published:
            return True
    return False


def routes(rollouts: list[Rollout], model: Mapping[str, Any]) -> tuple[list[Route], dict[str, list[str]]]:
    """The ports berth's proxy serves for the start-first services (every TCP port they publish), and the
    networks each of them is on (the proxy joins them)."""
    out: list[Route] = []
    networks: dict[str, list[str]] = {}
    services = model.get("services") or {}
    for r in rollouts:
        if r.strategy != START_FIRST:
            continue
        svc = services.get(r.service) or {}
        for p in svc.get("ports") or []:
            if isinstance(p, dict) and str(p.get("protocol", "tcp")) == "tcp" and str(p.get("published", "")).isdigit():
                out.append(Route(r.service, str(p.get("host_ip") or ""), int(p["published"]), int(p["target"])))
        networks[r.service] = _networks(svc)
    return out, networks


def sites(rollouts: list[Rollout], model: Mapping[str, Any], domains: Mapping[str, Any],
          extensions: Mapping[str, Mapping[str, Any]] = {}) -> tuple[list[Site], dict[str, list[str]]]:
    """The HTTPS sites berth's proxy serves (berth.toml's domains, for the services the model starts and the
    proxy can reach on one HTTP port), and the networks of those services."""
    out: list[Site] = []
    networks: dict[str, list[str]] = {}
    services = model.get("services") or {}
    by_service = {r.service: r for r in rollouts}
    for service, names in domains.items():
        svc = services.get(service)
        if not isinstance(svc, Mapping) or not names or svc.get("network_mode"):
            continue  # (settings.domains reports it)
        rollout = by_service.get(service)
        try:
            port = (rollout.http_port if rollout and rollout.http_port else None) or site_port(
                svc, settings_of(service, (extensions.get(service) or {}).get("x-berth")))
        except RolloutSettingsError:
            port = None
        if port is None:
            continue
        out.append(Site(service, tuple(names), port))
        networks[service] = _networks(svc)
    return out, networks
