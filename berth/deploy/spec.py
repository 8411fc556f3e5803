"""What a deploy was asked to do (the command's options) and what every host gets (decided once, locally)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from berth.configuration.target import Host, Target
from berth.errors import BerthError
from berth.model import git as gitlocal


@dataclass(frozen=True)
class DeployOptions:
    push: bool = False
    yes: bool = False
    trust_new_host: bool = False
    verify_timeout: int | None = None
    lock_wait: float = 0
    rollback: bool = True  # --no-rollback keeps a failed release running for debugging


@dataclass
class DeploySpec:
    """What every host gets: decided once, locally, before any host is touched."""

    target: Target
    opts: DeployOptions
    commit: str
    subject: str
    branch: str
    remote_url: str
    env_path: Path
    env_checksum: str
    services: list[str]  # what verify expects to run (profiles applied)
    built: set[str]  # services compose builds
    timeout: float  # verify's
    who: str
    ports: list = field(default_factory=list)  # host ports the release publishes, for preflight
    pulled: list[str] = field(default_factory=list)  # images it pulls, for preflight
    # secret and config files git does not carry (paths in the repo): shipped like the env file, kept per release
    files: dict[str, list[str]] = field(default_factory=dict)  # path → the services that mount it
    files_checksum: str = ""  # of their names and contents, keyed with the env file (see ship_env.files_digest)
    rollouts: list = field(default_factory=list)  # berth.model.compose.rollout.Rollout per started service
    # with berth's proxy on: what it serves (the start-first services' ports, the domains), how, from where
    proxy: Any = None  # berth.remote.commands.proxy.ProxySetup
    health_urls: tuple[str, ...] = ()  # what verify fetches (a role may set its own: for_host)
    declared_images: dict[str, str] = field(default_factory=dict)  # a built service's `image:`, where it has one
    # a fleet's one build (build = "once"): berth.deploy.stages.shared_build.SharedBuild; None: each host builds
    shared_build: Any = None


def for_host(spec: DeploySpec, host: Host) -> DeploySpec:
    """What `host` gets: the services of its roles (berth.toml), and their health URLs; `spec` itself for a
    host that runs everything."""
    if not host.services and host.health_urls is None:
        return spec
    keep = set(host.services or spec.services)
    rollouts = [r for r in spec.rollouts if r.service in keep]
    proxy = spec.proxy
    if proxy is not None:  # what this host's proxy serves: its own services' routes and sites only
        proxy = proxy_setup(spec.target, rollouts, _resolved(spec.target), strict=False)
    return replace(spec, services=[s for s in spec.services if s in keep], built=spec.built & keep,
                   rollouts=rollouts, proxy=proxy, health_urls=spec.target.health_urls_of(host),
                   ports=[p for p in spec.ports if p.service in keep or p.service not in spec.services])


def make_spec(target: Target, opts: DeployOptions, ctx, strict: bool = True) -> DeploySpec:
    """What every host gets, from the checked repository (`ctx`: the check's context).

    `strict=False` (berth plan) tolerates what the check reports as errors: an unreadable env file or no commit.
    """
    from berth.deploy.stages import preflight
    from berth.deploy.stages import ship_env as env_stage
    from berth.model.compose import resolve as compose_config
    from berth.model.envfile import read_env_bytes

    env_path = target.root / target.env_file
    try:
        env_checksum = env_stage.checksum(read_env_bytes(env_path))
    except (BerthError, OSError):
        if strict:
            raise
        env_checksum = ""
    try:
        services = compose_config.active_services(ctx.compose_files, compose_config.project_environment(target))
    except (BerthError, OSError):
        if strict:
            raise
        services = []
    try:
        timeout = opts.verify_timeout or target.verify_timeout
    except BerthError:
        if strict:
            raise
        timeout = 0  # (check reports the setting)
    spec = DeploySpec(
        target=target, opts=opts, commit=ctx.head or "", subject=gitlocal.head_subject(target.root) if ctx.head else "",
        branch=ctx.branch, remote_url=ctx.remote_url, env_path=env_path, env_checksum=env_checksum,
        services=services, built=compose_config.built_services(ctx.compose_files),
        timeout=timeout, who=gitlocal.user_identity(target.root), health_urls=target.health_urls,
    )
    resolved = _resolved(target)
    model = resolved.model if resolved else {}
    if resolved is not None:
        spec.rollouts = _rollouts(resolved, target)
    if target.proxy:  # (without a model: nothing to route; check has said why)
        spec.proxy = proxy_setup(target, spec.rollouts, resolved, strict)
    if model.get("services"):  # the model also holds the services of included files (include:)
        spec.services = [s for s in services if s in model["services"]] + [
            s for s in model["services"] if s not in services]
        spec.built = spec.built | {n for n, s in model["services"].items() if s.get("build")}
        spec.declared_images = {n: str(s["image"]) for n, s in model["services"].items()
                                if s.get("build") and s.get("image")}
    spec.ports, spec.pulled = preflight.published_ports(model), preflight.pulled_images(model)
    if spec.proxy is not None and spec.proxy.sites:  # the proxy's HTTPS ports: preflight says who else holds them
        from berth.remote.commands import proxy as proxy_commands

        taken = {(p.protocol, p.port) for p in spec.ports}
        spec.ports += [preflight.Port(proxy_commands.SERVICE, port, "tcp", "")
                       for port in (proxy_commands.HTTP_PORT, proxy_commands.HTTPS_PORT) if ("tcp", port) not in taken]
    spec.files = shipped_files(model, ctx)
    if spec.files:
        try:
            spec.files_checksum = env_stage.files_digest(target.root, list(spec.files), read_env_bytes(env_path))
        except (BerthError, OSError):
            if strict:
                raise
    return spec


def proxy_setup(target: Target, rollouts: list, resolved, strict: bool = True):
    """What berth's proxy serves for this app: the start-first services' ports, berth.toml's domains (by
    HTTPS), the networks of those services, and acme_ca_root's certificate (read here, shipped with the
    override). `resolved` None: nothing (check has said why the compose files cannot be read)."""
    from berth.model.compose.rollout import routes, sites
    from berth.remote.commands.proxy import ProxySetup

    if resolved is None:
        return ProxySetup(image=target.proxy_image, tls=target.tls)
    served, networks = routes(rollouts, resolved.model)
    named, site_networks = sites(rollouts, resolved.model, target.domains, resolved.extensions)
    tls = target.tls
    pem = b""
    if tls is not None and tls.ca_root is not None:
        try:
            pem = tls.ca_root.read_bytes()
        except OSError as exc:
            if strict:
                raise BerthError(f"acme_ca_root {tls.ca_root} cannot be read ({exc.strerror})",
                                 where=target.located("acme_ca_root"),
                                 fix="point acme_ca_root at the PEM file of your ACME server's root certificate") from None
    return ProxySetup(served, named, {**networks, **site_networks}, tls, target.proxy_image, pem)


@dataclass(frozen=True)
class SwitchPlan:
    """What a start-first switch needs (berth's proxy on), for a rollback: the rollouts and what the proxy serves."""

    rollouts: list
    proxy: Any  # berth.remote.commands.proxy.ProxySetup


def switch_plan(target: Target) -> SwitchPlan | None:
    """The start-first plan of the app as checked out here, when berth's proxy is on; else None."""
    if not target.proxy:
        return None
    resolved = _resolved(target)
    rollouts = _rollouts(resolved, target) if resolved is not None else []
    return SwitchPlan(rollouts, proxy_setup(target, rollouts, resolved, strict=False))


def _resolved(target: Target):
    """The resolved compose model; None when it cannot be made (check has reported why; compose decides then)."""
    from berth.model.compose import resolve as compose_config

    try:
        return compose_config.resolve_compose(target)
    except BerthError:
        return None


def _rollouts(resolved, target: Target) -> list:
    """How each service would be rolled out; empty when x-berth cannot be followed (compose.x-berth says why)."""
    from berth.model.compose import rollout

    try:
        return rollout.plan(resolved.model, resolved.extensions, target.health_urls, target.domains)
    except (rollout.RolloutSettingsError, BerthError):
        return []


def shipped_files(model: dict, ctx) -> dict[str, list[str]]:
    """The secret and config files the started services mount that git does not carry (berth ships them), each
    with the services that mount it.

    Files outside the repository or missing are check's errors (compose.secret-file); here they are left out.
    """
    from berth.model.compose.resolve import mounted_files

    out: dict[str, set[str]] = {}
    for mounted in mounted_files(model):
        rel = ctx.repo_path(mounted.path)
        if (rel is not None and rel != ctx.target.env_file and mounted.path.is_file()
                and not (ctx.is_git_repo and ctx.tracks(rel))):
            out.setdefault(rel, set()).update(mounted.services)
    return {rel: sorted(users) for rel, users in sorted(out.items())}
