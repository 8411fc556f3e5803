"""Compose best practices: what makes a service survive restarts, deploys and the internet.

Every finding points at the offending key (or, for something missing, at the service's name) in
the compose file that holds it, so `# berth: ignore[practice.RULE]` can sit right there. Values
with `${VAR}` are judged after interpolation with the shipped env file, as compose will see them.
With several compose files, a service is judged on all of its definitions together (an override
file may add the healthcheck the base file lacks). docs/CHECKS_COMPOSE.md explains each heuristic.
"""

from __future__ import annotations

from typing import Any

from berth.check.findings import Severity, finding, rule
from berth.model.compose.services import (
    DATA_PORTS,
    DOCKER_SOCKETS,
    Service,
    at,
    compose_healthcheck,
    depends_on,
    image_name,
    is_data_image,
    is_data_service,
    is_public,
    network_names,
    one_shot_services,
    parse_mount,
    parse_port,
    resolve,
    service_at,
    services,
    truthy,
)


def has_healthcheck(ctx, svc: Service) -> bool:
    """Will the service's containers report health? (compose healthcheck, else its Dockerfile's HEALTHCHECK)"""
    state = compose_healthcheck(svc)
    if state == "on":
        return True
    if state == "off":
        return False
    from berth.check.rules.dockerfile import image_healthcheck

    in_image = image_healthcheck(ctx, svc.name)
    if in_image is None:  # a pulled image: only a healthcheck: that tunes its test says it has one
        return state == "inherit"
    return in_image


# --------------------------------------------------------------------------- rules


@rule("practice.healthcheck-missing", Severity.WARNING,
      "a service has no healthcheck, so berth (and depends_on) can only see that it runs, not that it works",
      "add a healthcheck: test: [\"CMD\", \"wget\", \"-q\", \"-O\", \"/dev/null\", \"http://127.0.0.1:PORT/health\"]")
def healthcheck_missing(ctx):
    from berth.check.rules.dockerfile import image_healthcheck

    all_services = services(ctx)
    one_shot = one_shot_services(all_services)
    for svc in all_services:
        if svc.name in one_shot or compose_healthcheck(svc) != "none":
            continue  # defined, deliberately disabled, or tuning the image's own HEALTHCHECK
        in_image = image_healthcheck(ctx, svc.name)
        if in_image is not None:
            continue  # built here: the Dockerfile has one, or practice/dockerfile.healthcheck-missing says so there
        yield finding(f"service {svc.name} has no healthcheck", **service_at(svc))


@rule("practice.restart-missing", Severity.WARNING,
      "a service has no restart policy, so it stays down after a crash or a server reboot",
      "add restart: unless-stopped (or restart: always)")
def restart_missing(ctx):
    all_services = services(ctx)
    one_shot = one_shot_services(all_services)
    for svc in all_services:
        if svc.name in one_shot or svc.has("restart"):
            continue
        if isinstance(svc.merged("deploy").get("restart_policy"), dict):
            continue
        yield finding(f"service {svc.name} has no restart policy; after a crash or a reboot it stays down",
                      **service_at(svc))


@rule("practice.no-resource-limits", Severity.WARNING,
      "in production, a service has no memory limit, so one leak can take the whole server down",
      "add deploy: resources: limits: memory: 512M (and cpus: \"1.0\") sized for the service")
def no_resource_limits(ctx):
    if ctx.target.environment != "production":
        return
    for svc in services(ctx):
        resources = svc.merged("deploy").get("resources")
        limits = resources.get("limits") if isinstance(resources, dict) else None
        if (isinstance(limits, dict) and limits.get("memory") not in (None, "")) or svc.get("mem_limit") not in (None, ""):
            continue
        yield finding(f"service {svc.name} has no memory limit in production", **service_at(svc))


# tags that name a moving line of releases, not one release: what they run changes under the same name
FLOATING_TAGS = frozenset({"latest", "nightly", "stable", "edge", "release", "main", "master", "dev", "develop",
                           "mainline", "current", "rolling", "canary", "beta", "alpha", "next", "unstable"})


@rule("practice.image-unpinned", Severity.WARNING,
      "an image is :latest, has no tag or has a floating tag (nightly, stable, edge, ...), so a deploy may silently "
      "run a different version",
      "pin the image to a version tag (postgres:16.4) or a digest (@sha256:...)")
def image_unpinned(ctx):
    for svc in services(ctx):
        if svc.has("build") or not svc.has("image"):
            continue  # a built service's image: names what the build produces
        raw = svc.get("image")
        value = resolve(ctx, raw)
        if not isinstance(value, str) or not value.strip():
            continue  # unknowable or empty: the compose.* rules report why
        repo, tag, digest = image_name(value)
        if digest or (tag and tag.lower() not in FLOATING_TAGS):
            continue
        shown = f"{value!r}" + (f" (from {raw!r})" if raw != value else "")
        what = ("has no tag, so it means :latest" if not tag else "is :latest" if tag == "latest"
                else f"has the floating tag :{tag}, which moves to new releases")
        yield finding(f"service {svc.name}: image {shown} {what}", **at(svc.defined_in("image"), "services",
                                                                         svc.name, "image"))


@rule("practice.data-port-public", Severity.ERROR,
      "a database or cache port is published on every interface of the server (Docker's rules bypass ufw/firewalld)",
      "bind it to loopback (\"127.0.0.1:5432:5432\"), or drop the ports: entry and reach it over the compose network")
def data_port_public(ctx):
    for svc in services(ctx):
        data_image = is_data_image(resolve(ctx, svc.get("image")))
        for cf, key, item in svc.items("ports"):
            port = parse_port(resolve(ctx, item))
            if port is None or not is_public(port):
                continue
            known = [p for p in port.targets if p in DATA_PORTS]
            if not known and not data_image:
                continue
            what = f"{DATA_PORTS[known[0]]} port {known[0]}" if known else f"port {port.targets[0]}"
            host = f"host port {port.published}" if port.published else "a random host port"
            yield finding(f"service {svc.name} publishes {what} on all interfaces ({host})",
                          **at(cf, "services", svc.name, "ports", key))
        if data_image and str(resolve(ctx, svc.get("network_mode")) or "") == "host":
            yield finding(f"service {svc.name} is a database on network_mode: host, so it listens on every "
                          "interface of the server", **at(svc.defined_in("network_mode"), "services", svc.name,
                                                          "network_mode"),
                          fix="remove network_mode: host and let other services reach it over the compose network")


@rule("practice.backend-network-not-internal", Severity.WARNING,
      "a network that only connects services to a database is not internal: true, so it has a route to the outside",
      "add internal: true to that network under the top-level networks:")
def backend_network_not_internal(ctx):
    all_services = services(ctx)
    declared: dict[str, Any] = {}
    for cf in ctx.compose_files:
        nets = cf.data.get("networks")
        if isinstance(nets, dict):
            for name, spec in nets.items():
                declared[str(name)] = (cf, spec if isinstance(spec, dict) else {})
    members = {svc.name: network_names(svc) for svc in all_services}
    for net, (cf, spec) in declared.items():
        if truthy(ctx, spec.get("internal")) or spec.get("external") or net == "default":
            continue
        on_net = [s for s in all_services if net in members[s.name]]
        data = [s for s in on_net if is_data_service(ctx, s)]
        if not data:
            continue
        others = [s for s in on_net if s not in data]
        # internal: true would cut off a service that has no other network, and would stop a database's
        # published port from working: then the network is not just a backend, leave it alone
        if any(members[s.name] == {net} for s in others):
            continue
        if any(any(True for _ in s.items("ports")) for s in data):
            continue
        names = ", ".join(s.name for s in data)
        yield finding(f"network {net} carries the database traffic of {names} but is not internal: true",
                      **at(cf, "networks", net))


@rule("practice.depends-on-not-healthy", Severity.WARNING,
      "depends_on waits only for the container to start although the dependency has a healthcheck",
      "use the long syntax: depends_on: {NAME: {condition: service_healthy}}")
def depends_on_not_healthy(ctx):
    by_name = {s.name: s for s in services(ctx)}
    for svc in by_name.values():
        for cf, key, dep, opts in depends_on(svc):
            target = by_name.get(dep)
            if target is None or opts.get("condition") in ("service_healthy", "service_completed_successfully"):
                continue
            if not has_healthcheck(ctx, target):
                continue
            how = "condition: service_started" if opts.get("condition") else "the short syntax"
            yield finding(f"service {svc.name} depends on {dep} with {how}, so it starts before {dep} is healthy",
                          **at(cf, "services", svc.name, "depends_on", key),
                          fix=f"depends_on: {{{dep}: {{condition: service_healthy}}}}")


@rule("practice.bind-mount-production", Severity.WARNING,
      "in production, a service mounts a host path: its data lives outside docker's volumes and depends on the "
      "server's layout",
      "use a named volume for data (and a config/secret or an image COPY for files); mount read-only (:ro) if it "
      "must stay a bind")
def bind_mount_production(ctx):
    if ctx.target.environment != "production":
        return
    for svc in services(ctx):
        for cf, key, item in svc.items("volumes"):
            mount = parse_mount(resolve(ctx, item))
            if mount is None or mount.kind != "bind" or (mount.source or "") in DOCKER_SOCKETS:
                continue  # the docker socket is practice.privileged's
            ro = " (read-only)" if mount.read_only else ""
            yield finding(f"service {svc.name} bind-mounts host path {mount.source}{ro} in production",
                          **at(cf, "services", svc.name, "volumes", key),
                          severity=Severity.INFO if mount.read_only else None)


@rule("practice.privileged", Severity.WARNING,
      "a service runs privileged: true or mounts the docker socket: either gives it root on the server",
      "drop privileged: and add only the capabilities it needs (cap_add); give the docker socket only to a "
      "trusted proxy, read-only, or use a socket proxy")
def privileged(ctx):
    for svc in services(ctx):
        if truthy(ctx, svc.get("privileged")):
            yield finding(f"service {svc.name} runs privileged: true (full access to the server's devices and kernel)",
                          **at(svc.defined_in("privileged"), "services", svc.name, "privileged"))
        for cf, key, item in svc.items("volumes"):
            mount = parse_mount(resolve(ctx, item))
            if mount is not None and (mount.source or "") in DOCKER_SOCKETS:
                yield finding(f"service {svc.name} mounts the docker socket {mount.source}: whoever controls the "
                              "container controls the server", **at(cf, "services", svc.name, "volumes", key))


@rule("practice.container-name", Severity.WARNING,
      "container_name on a service that should scale: a second container (scale, or another project with the "
      "same file on the server) cannot be created",
      "remove container_name; compose names containers PROJECT-SERVICE-N and services find each other by "
      "service name")
def container_name(ctx):
    for svc in services(ctx):
        if not svc.has("container_name"):
            continue
        loc = at(svc.defined_in("container_name"), "services", svc.name, "container_name")
        replicas = resolve(ctx, svc.merged("deploy").get("replicas"))
        scale = resolve(ctx, svc.get("scale"))
        many = [int(v) for v in (replicas, scale) if str(v).strip().isdigit() and int(v) > 1]
        if many:
            yield finding(f"service {svc.name} asks for {max(many)} replicas but has container_name "
                          f"{svc.get('container_name')!r}: compose cannot start more than one container with a "
                          "fixed name", **loc, severity=Severity.ERROR)
            continue
        if not _stateless_app(ctx, svc):
            continue
        yield finding(f"service {svc.name} is a stateless app service but has container_name "
                      f"{svc.get('container_name')!r}, which blocks scaling it and running a second copy of the "
                      "project on the same server", **loc)


def _stateless_app(ctx, svc: Service) -> bool:
    """Built from this repository, not a data service, and writes to no volume."""
    if not svc.has("build") or is_data_service(ctx, svc):
        return False
    for _, _, item in svc.items("volumes"):
        mount = parse_mount(resolve(ctx, item))
        if mount is not None and mount.kind in ("bind", "volume") and not mount.read_only:
            return False
    return True

