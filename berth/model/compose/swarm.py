"""What the compose model means on Docker Swarm: the stack file `docker stack deploy` gets.

berth renders the stack itself from the resolved model (berth.model.compose.resolve: the compose files
merged and interpolated as compose reads them) instead of handing the compose file to the docker CLI, whose
stack loader knows only the version 3 schema and reads no env file for `${VAR}`:

* only what the version 3.8 schema allows is kept; what swarm ignores (IGNORED, reported by berth check's
  swarm.ignored-key) is left out, `restart:` becomes `deploy.restart_policy` when that is not set;
* built services run the image berth built and copied to the nodes (`images`);
* `environment:` (the env file's values merged in, as compose does) goes into one env file per service
  beside the stack file on the manager (`Stack.env_files`, written 0600): the stack file itself holds no
  value of the env file, so it can be kept per release for `berth rollback`;
* secret and config files become swarm secrets and configs named by their content
  (PROJECT_NAME_DIGEST: swarm's are immutable, so a changed file is a new one);
* every service updates health-gated: `update_config` start-first (stop-first when it publishes a port in
  host mode, which two tasks on one node cannot share), `failure_action: rollback`, unless the file says
  otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

STACK_VERSION = "3.8"

# service keys `docker stack deploy` ignores (the docker CLI's UnsupportedProperties and
# DeprecatedProperties, and depends_on, which has no start order on a swarm) → what to write instead
IGNORED = {
    "restart": "set deploy.restart_policy.condition (on-failure or any) instead",
    "container_name": "remove it: swarm names each task itself (stack_service.N.ID)",
    "depends_on": "swarm starts services in any order: make the service retry until what it needs answers",
    "links": "remove it: services on the same network reach each other by service name",
    "external_links": "attach the service to the other stack's network (networks: with external: true)",
    "network_mode": "use networks: (an overlay network) instead",
    "cgroup_parent": "remove it: swarm tasks cannot name a cgroup parent",
    "devices": "remove it or run the service with docker compose: swarm tasks get no devices",
    "domainname": "remove it: swarm tasks get no domain name",
    "ipc": "remove it: swarm tasks cannot share an IPC namespace",
    "pid": "remove it: swarm tasks cannot share a PID namespace",
    "mac_address": "remove it: swarm assigns the addresses",
    "privileged": "remove it, or grant only the capabilities needed with cap_add",
    "security_opt": "remove it: swarm tasks run with the engine's default security options",
    "shm_size": "mount a tmpfs at /dev/shm instead",
    "userns_mode": "remove it: swarm follows the engine's user-namespace setting",
    "expose": "remove it: services on the same network reach each other on every port",
}

# what a version 3.8 service may hold, as given (the nested keys of ports, volumes, healthcheck and deploy
# are narrowed below); build, environment and env_file are rendered, not copied
_SERVICE_KEYS = {
    "cap_add", "cap_drop", "command", "configs", "credential_spec", "deploy", "dns", "dns_search", "entrypoint",
    "extra_hosts", "healthcheck", "hostname", "image", "init", "isolation", "labels", "logging", "networks",
    "ports", "read_only", "secrets", "stdin_open", "stop_grace_period", "stop_signal", "sysctls", "tmpfs", "tty",
    "ulimits", "user", "volumes", "working_dir",
}
_PORT_KEYS = ("target", "published", "protocol", "mode")
_VOLUME_KEYS = ("type", "source", "target", "read_only", "consistency")
_HEALTH_KEYS = ("test", "interval", "timeout", "retries", "start_period", "disable")
_DEPLOY_KEYS = ("mode", "endpoint_mode", "replicas", "labels", "rollback_config", "update_config", "resources",
                "restart_policy", "placement")
_REF_KEYS = ("source", "target", "uid", "gid", "mode")
_RESTART = {"always": "any", "unless-stopped": "any", "on-failure": "on-failure", "no": "none"}


class StackError(ValueError):
    """The model cannot be a stack as berth renders it (the message says what and how to fix it)."""


@dataclass
class Stack:
    document: dict  # the stack file: no value of the env file in it
    env_files: dict[str, bytes] = field(default_factory=dict)  # service → its env file (KEY=VALUE lines)
    objects: dict[str, str] = field(default_factory=dict)  # swarm secret/config name → the file it is made from


def object_name(project: str, name: str, digest: str) -> str:
    """A swarm secret's or config's name: its content's digest in it, as swarm's objects never change."""
    return f"{project}_{name}_{digest[:12]}"


def render_stack(model: dict, project: str, images: dict[str, str], digests: dict[str, str], remote_path) -> Stack:
    """The stack of `model` (resolved), its env files (beside the stack file, which names them relative to
    itself: a rollback's copy of the directory works as it is) and the files its secrets and configs are
    made from.

    `images`: service → the image berth built for it; `digests`: a secret's or config's local file → the
    sha256 of its content; `remote_path(local)`: where that file is on the manager.
    """
    stack = Stack({"version": STACK_VERSION, "services": {}})
    objects: dict[tuple[str, str], str] = {}  # (secrets|configs, name) → its swarm name
    for kind in ("secrets", "configs"):
        for name, spec in (model.get(kind) or {}).items():
            spec = spec or {}
            if spec.get("external"):
                stack.document.setdefault(kind, {})[name] = {"external": True, "name": spec.get("name", name)}
                continue
            if not spec.get("file"):
                raise StackError(f"{kind[:-1]} {name} is not made from a file (`file:`); a swarm takes secrets "
                                 "and configs from files or as external ones")
            local = str(spec["file"])
            swarm_name = object_name(project, name, digests[local])
            stack.document.setdefault(kind, {})[name] = {"file": remote_path(local), "name": swarm_name}
            stack.objects[swarm_name] = remote_path(local)
            objects[(kind, name)] = swarm_name
    for name, spec in (model.get("services") or {}).items():
        stack.document["services"][name] = _service(name, spec, images, stack)
    for kind in ("networks", "volumes"):
        for name, spec in (model.get(kind) or {}).items():
            stack.document.setdefault(kind, {})[name] = _top_level(spec or {})
    return stack


def _service(name: str, spec: dict, images: dict[str, str], stack: Stack) -> dict:
    out: dict[str, Any] = {k: v for k, v in spec.items() if k in _SERVICE_KEYS and v is not None}
    image = images.get(name) or spec.get("image")
    if not image:
        raise StackError(f"service {name} has neither an image nor a build berth could make one from")
    out["image"] = image
    env = {k: v for k, v in (spec.get("environment") or {}).items() if v is not None}
    if env:
        for key, value in env.items():
            if "\n" in str(value):
                raise StackError(f"service {name}'s variable {key} holds a line break, which a swarm env file "
                                 "cannot carry; put it in a secret file instead")
        stack.env_files[name] = "".join(f"{k}={v}\n" for k, v in env.items()).encode()
        out["env_file"] = [f"./{name}.env"]
    if "ports" in out:
        out["ports"] = [_port(p) for p in out["ports"]]
    if "volumes" in out:
        out["volumes"] = [_volume(v) for v in out["volumes"]]
    if "healthcheck" in out:
        out["healthcheck"] = {k: v for k, v in out["healthcheck"].items() if k in _HEALTH_KEYS}
    for kind in ("secrets", "configs"):
        if kind in out:
            out[kind] = [{k: v for k, v in ref.items() if k in _REF_KEYS} if isinstance(ref, dict) else ref
                         for ref in out[kind]]
    out["deploy"] = _deploy(spec, out.get("ports", []))
    return out


def _port(port: Any) -> Any:
    if not isinstance(port, dict):
        return port
    out = {k: port[k] for k in _PORT_KEYS if k in port}
    if str(out.get("published", "")).isdigit():
        out["published"] = int(out["published"])
    return out


def _volume(volume: Any) -> Any:
    if not isinstance(volume, dict):
        return volume
    out = {k: volume[k] for k in _VOLUME_KEYS if k in volume}
    if isinstance(volume.get("bind"), dict) and "propagation" in volume["bind"]:
        out["bind"] = {"propagation": volume["bind"]["propagation"]}
    if isinstance(volume.get("volume"), dict) and "nocopy" in volume["volume"]:
        out["volume"] = {"nocopy": volume["volume"]["nocopy"]}
    if isinstance(volume.get("tmpfs"), dict) and "size" in volume["tmpfs"]:
        out["tmpfs"] = {"size": volume["tmpfs"]["size"]}
    return out


def _deploy(spec: dict, ports: list) -> dict:
    given = spec.get("deploy") or {}
    out = {k: v for k, v in given.items() if k in _DEPLOY_KEYS and v not in (None, {})}
    limits = (out.get("resources") or {}).get("limits") or {}
    if "cpus" in limits:
        limits["cpus"] = str(limits["cpus"])
    for part in ("limits", "reservations"):
        if part in (out.get("resources") or {}):
            out["resources"][part] = {k: v for k, v in out["resources"][part].items()
                                      if k in ("cpus", "memory", "generic_resources")}
    if "restart_policy" not in out and spec.get("restart") in _RESTART:
        out["restart_policy"] = {"condition": _RESTART[spec["restart"]]}
    host_ports = any(isinstance(p, dict) and p.get("mode") == "host" for p in ports)
    order = "stop-first" if host_ports else "start-first"
    out["update_config"] = {"parallelism": 1, "order": order, "failure_action": "rollback", "monitor": "5s",
                            **(out.get("update_config") or {})}
    out["rollback_config"] = {"parallelism": 1, "order": order, **(out.get("rollback_config") or {})}
    return out


def _top_level(spec: dict) -> dict:
    """A network or volume: the stack names it PROJECT_NAME itself, unless it is external."""
    if spec.get("external"):
        return {"external": True, "name": spec.get("name")} if spec.get("name") else {"external": True}
    return {k: v for k, v in spec.items() if k in ("driver", "driver_opts", "labels", "internal", "attachable", "ipam")
            and v not in (None, {})}
