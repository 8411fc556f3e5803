"""Stage: preflight — refuse on the server, before anything changes, what would make `up` fail late.

The most common first-deploy failure is a published port already taken on the server: compose then
stops the old container, cannot start the new one, and the app is down. So before sync, one script
asks the server which of the release's host ports are listened on (the kernel's socket tables) and
which running containers publish them, whether the images the release pulls are there (pulling
those that are not), and how much disk the docker root has. A port held by this project's own
containers is fine: `up` replaces them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

MIN_FREE_MB = 512  # below this on the docker root a build or pull fails half-way
_WILDCARD = ("", "0.0.0.0", "::", "[::]")


@dataclass(frozen=True)
class Port:
    service: str
    port: int
    protocol: str = "tcp"
    host_ip: str = ""

    def __str__(self) -> str:
        where = f"{self.host_ip}:" if self.host_ip not in _WILDCARD else ""
        return f"{where}{self.port}/{self.protocol}"


@dataclass
class ServerFacts:
    listening: set[tuple[str, int]] = field(default_factory=set)  # (protocol, port) someone listens on
    holders: dict[tuple[str, int], list[tuple[str, str]]] = field(default_factory=dict)  # → [(container, project)]
    missing_images: list[tuple[str, str]] = field(default_factory=list)  # (image, why it could not be pulled)
    free_mb: int | None = None
    docker_root: str = ""


def published_ports(model: dict) -> list[Port]:
    """The host ports the resolved compose model publishes (a port without `published` is ephemeral)."""
    out = []
    for name, spec in (model.get("services") or {}).items():
        for p in spec.get("ports") or ():
            published = str(p.get("published") or "")
            if published.isdigit():
                out.append(Port(name, int(published), str(p.get("protocol") or "tcp"), str(p.get("host_ip") or "")))
    return out


def pulled_images(model: dict) -> list[str]:
    """Images the release runs but does not build: compose would pull them during `up`."""
    return sorted({spec["image"] for spec in (model.get("services") or {}).values()
                   if isinstance(spec.get("image"), str) and spec["image"] and not spec.get("build")})


def parse(stdout: str, images: list[str]) -> ServerFacts:
    facts = ServerFacts()
    for line in stdout.splitlines():
        word, _, rest = line.partition(" ")
        if word == "listen":
            proto, _, hexport = rest.partition(" ")
            try:
                facts.listening.add((proto, int(hexport, 16)))
            except ValueError:
                continue
        elif word == "holder":
            try:
                row = json.loads(rest)
            except ValueError:
                continue
            for key, binds in (row.get("ports") or {}).items():
                _, _, proto = key.partition("/")
                for bind in binds or ():
                    port = str(bind.get("HostPort") or "")
                    if port.isdigit():
                        holder = (str(row.get("name") or "").lstrip("/"), str(row.get("project") or ""))
                        held = facts.holders.setdefault((proto or "tcp", int(port)), [])
                        if holder not in held:  # one per address family
                            held.append(holder)
        elif word == "noimage":
            n, _, why = rest.partition(" ")
            if n.isdigit() and int(n) < len(images):
                facts.missing_images.append((images[int(n)], why.strip()))
        elif word == "disk":
            root, _, kb = rest.rpartition(" ")
            if kb.strip().isdigit():
                facts.docker_root, facts.free_mb = root, int(kb) // 1024
    return facts


def problems(facts: ServerFacts, ports: list[Port], project: str, label: str, builds: bool) -> list[str]:
    """What stops this release on this host, one sentence each (empty: go ahead)."""
    out = []
    for p in ports:
        key = (p.protocol, p.port)
        holders = facts.holders.get(key, [])
        ours = [name for name, proj in holders if proj == project]
        others = [name for name, proj in holders if proj != project]
        if others:
            out.append(f"port {p} (service {p.service}) is already published on {label} by container "
                       f"{', '.join(others)}, which is not part of project {project}")
        elif key in facts.listening and not ours:
            out.append(f"port {p} (service {p.service}) is already in use on {label} by a process that is not a "
                       f"container (see `ss -ltnp` or `ss -lunp` on the server)")
    for image, why in facts.missing_images:
        out.append(f"image {image} is not on {label} and could not be pulled: {why or 'docker pull failed'}")
    if facts.free_mb is not None and facts.free_mb < MIN_FREE_MB:
        need = "the build" if builds else "new containers"
        out.append(f"only {facts.free_mb} MB are free on {label} under {facts.docker_root}; {need} need at least "
                   f"{MIN_FREE_MB} MB")
    return out


def summary(facts: ServerFacts, ports: list[Port], pulled: list[str]) -> str:
    """The step's detail line when nothing stands in the way."""
    parts = [f"{len(ports)} port{'s' * (len(ports) != 1)} free or this project's"] if ports else []
    parts += [f"{len(pulled)} pulled image{'s' * (len(pulled) != 1)} present"] if pulled else []
    if facts.free_mb is not None:
        parts.append(f"{facts.free_mb / 1024:.1f} GB free")
    return ", ".join(parts) or "ok"
