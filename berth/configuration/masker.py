"""The masker of a target: which strings of this app are secret, and which public names must stay whole."""

from __future__ import annotations

import re
from collections.abc import Mapping

from berth.configuration.target import Target
from berth.errors import BerthError
from berth.model import git as gitlocal
from berth.secrets.masking import Masker, is_secret_setting, keyed_secrets, remote_url_secrets, secret_values


def masker_for(target: Target, env: Mapping[str, str] | None = None, compose_files=None) -> Masker:
    """The masker of a command: the secrets of the shipped env file and of the git remote URL, and the public
    names of the app (berth.secrets.masking.Masker), so that masking a password never cuts into a service or image name.

    `env` / `compose_files`: the parsed env file and compose files when the caller has them (berth check).
    Nothing here makes a command fail: what cannot be read is not known to the masker.
    """
    if env is None:
        env = _shipped_env(target)
    secrets = [*secret_values(env), *remote_url_secrets(_remote_url(target))]
    try:
        public = public_strings(target, env, compose_files)
    except Exception:  # noqa: BLE001 - without public names the masker masks more, never less
        public = []
    return Masker(secrets, public=public, keyed=keyed_secrets(env))


def _shipped_env(target: Target) -> dict[str, str]:
    path = target.root / target.env_file
    if not path.exists():
        return {}
    from berth.model.envfile import read_env_file

    try:
        return read_env_file(path).values()
    except (BerthError, OSError, UnicodeError):
        return {}


def _remote_url(target: Target) -> str | None:
    remote = target.get("remote", "origin")
    if not isinstance(remote, str) or remote.startswith("-"):  # never an option to git
        return None
    try:
        return gitlocal.remote_url(target.root, remote)
    except Exception:  # noqa: BLE001 - no git, no repo: no remote credentials to mask
        return None


_VARIABLE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")


def public_strings(target: Target, env: Mapping[str, str], compose_files=None) -> list[str]:
    """Texts berth, compose and docker print that are not secret and must stay whole when masked: the project,
    environment, hosts, app dir and file names, the env file's KEY names, and from the compose files the
    service, image, container, volume, network, secret and config names and the paths they mention.

    A compose value that interpolates a secret variable is left out (it carries the secret)."""
    out: list[str] = [target.project, target.legacy_project, target.environment, target.app_dir,
                      target.app_dir.rstrip("/").rsplit("/", 1)[-1], target.env_file,
                      *target.compose_files, f".berth/{target.project}", *env.keys()]
    for host in target.hosts:
        out += [host.address, host.label, host.user or ""]
    if compose_files is None:
        from berth.model.compose.file import load_compose_file

        compose_files = [load_compose_file(target.root / name) for name in target.compose_files
                         if (target.root / name).is_file()]
    secret_vars = {k for k, v in env.items() if v and is_secret_setting(k, v)}

    def add(value) -> None:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or not value:
            return
        if "$" in value:
            if secret_vars & set(_VARIABLE.findall(value)):
                return
            from berth.model.compose.interpolation import interpolate

            try:
                value = interpolate(value, env)
            except Exception:  # noqa: BLE001 - an unresolvable value is checked elsewhere; here it is just not public
                return
        out.append(value)  # whole: the image `postgres:16` is public, the word `postgres` is not

    def add_names(value) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                add(k)
                if isinstance(v, dict):
                    for field in ("source", "target", "name", "file", "external"):
                        add(v.get(field))
        elif isinstance(value, (list, tuple)):
            for item in value:
                if isinstance(item, dict):
                    for field in ("source", "target", "name", "path", "file"):
                        add(item.get(field))
                else:
                    add(item)
        else:
            add(value)

    for cf in compose_files:
        data = cf.data if isinstance(cf.data, dict) else {}
        for kind in ("volumes", "networks", "secrets", "configs"):
            add_names(data.get(kind) if isinstance(data.get(kind), dict) else None)
        add(data.get("name"))
        for name, spec in cf.services.items():
            add(name)
            if not isinstance(spec, dict):
                continue
            for key in ("image", "container_name", "hostname", "working_dir", "network_mode"):
                add(spec.get(key))
            build = spec.get("build")
            if isinstance(build, dict):
                for key in ("context", "dockerfile", "target"):
                    add(build.get(key))
            else:
                add(build)
            for key in ("env_file", "volumes", "networks", "depends_on", "secrets", "configs", "profiles",
                        "links", "volumes_from"):
                add_names(spec.get(key))
            for volume in spec.get("volumes") or () if isinstance(spec.get("volumes"), list) else ():
                if isinstance(volume, str):  # `SOURCE:TARGET[:MODE]`: the source and the target alone too
                    for part in volume.split(":")[:2]:
                        add(part)
    return out
