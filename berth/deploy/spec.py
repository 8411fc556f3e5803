"""What a deploy was asked to do (the command's options) and what every host gets (decided once, locally)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from berth.configuration.target import Target
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


def make_spec(target: Target, opts: DeployOptions, ctx, strict: bool = True) -> DeploySpec:
    """What every host gets, from the checked repository (`ctx`: the check's context).

    `strict=False` (berth plan) tolerates what the check reports as errors: an unreadable env file or no commit.
    """
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
        timeout=timeout, who=gitlocal.user_identity(target.root),
    )
    spec.ports, spec.pulled = _published(target)
    return spec


def _published(target: Target) -> tuple[list, list[str]]:
    """The host ports and pulled images of the release, for preflight (an unresolvable model: none known)."""
    from berth.deploy.stages import preflight
    from berth.model.compose import resolve as compose_config

    try:
        model = compose_config.resolve_compose(target).model
    except BerthError:  # (check has reported what makes it unresolvable; compose itself decides then)
        return [], []
    return preflight.published_ports(model), preflight.pulled_images(model)
