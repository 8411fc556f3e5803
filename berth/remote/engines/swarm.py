"""Docker Swarm commands, as data, and what their output means: the stack, its services and tasks, the
nodes, and the images berth copies to them. The stack file itself is berth.model.compose.swarm's."""

from __future__ import annotations

import io
import json
import tarfile
from dataclasses import dataclass, field

from berth.remote.shell import join, quote, script

STACK_LABEL = "com.docker.stack.namespace"
# UpdateStatus.State values that mean swarm gave the new spec up (failure_action: rollback, or pause)
GAVE_UP = ("rollback_started", "rollback_completed", "rollback_paused", "paused")


def release_dir(state_dir: str, release_id: str) -> str:
    """Where a release's stack file and env files live on the manager (kept with the release)."""
    return f"{state_dir}/releases/{release_id}.stack"


def node_state() -> str:
    """This engine's swarm membership: `STATE MANAGER NODE_ID` (active true abc... on a manager)."""
    return "docker info --format '{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}} {{.Swarm.NodeID}}'"


def parse_node_state(out: str) -> tuple[str, bool, str]:
    parts = out.split()
    return (parts[0] if parts else "", len(parts) > 1 and parts[1] == "true", parts[2] if len(parts) > 2 else "")


def nodes() -> str:
    return "docker node ls --format '{{json .}}'"


@dataclass(frozen=True)
class Node:
    id: str
    status: str  # Ready, Down, Unknown
    availability: str  # Active, Pause, Drain
    manager: str  # Leader, Reachable, Unreachable, "" (a worker)


def _json_lines(out: str):
    """docker's `--format '{{json .}}'` output: one object a line (a line that is not one is skipped)."""
    for line in out.splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            yield row


def parse_nodes(out: str) -> list[Node]:
    found = []
    for row in _json_lines(out):
        found.append(Node(str(row.get("ID", "")).rstrip(" *"), row.get("Status", ""), row.get("Availability", ""),
                          row.get("ManagerStatus", "")))
    return found


def write_release(state_dir: str, release_id: str) -> str:
    """stdin (a tar of the stack file and the env files) → the release's directory, every file 0600."""
    d = quote(release_dir(state_dir, release_id))
    return script([
        "umask 077",
        f"rm -rf {d}.tmp && mkdir -p {d}.tmp",
        f"tar -x -o -C {d}.tmp -f - && chmod -R go-rwx {d}.tmp",
        f"rm -rf {d} && mv {d}.tmp {d}",
    ])


def release_archive(files: dict[str, bytes]) -> bytes:
    """The tar `write_release` reads: each file 0600 (it holds the env file's values)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o600, 0
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def deploy(project: str, stack_file: str) -> str:
    # --prune: services deleted from the file go; --resolve-image never: the images are local, not a registry's
    return join(["docker", "stack", "deploy", "--prune", "--resolve-image", "never", "--compose-file", stack_file,
                 project])


def inspect_services(project: str) -> str:
    ids = join(["docker", "service", "ls", "--quiet", "--filter", f"label={STACK_LABEL}={project}"])
    return f"ids=$({ids}); if [ -n \"$ids\" ]; then docker service inspect --format '{{{{json .}}}}' $ids; fi"


def tasks(project: str) -> str:
    """The stack's tasks as docker inspects them: their node's id, state and error (one JSON object a line)."""
    ps = join(["docker", "stack", "ps", "--quiet", project])
    return (f"ids=$({ps} 2>/dev/null) || true; "
            f"if [ -n \"$ids\" ]; then docker inspect --type task --format '{{{{json .}}}}' $ids; fi")


@dataclass
class Service:
    id: str
    name: str  # without the stack's prefix
    image: str
    replicas: int | None  # None: global
    update: str  # UpdateStatus.State, "" when none ran
    message: str = ""


@dataclass
class Task:
    service: str
    image: str
    node: str  # the node's id (engines may share a host name)
    desired: str  # running, shutdown
    state: str  # new, pending, assigned, preparing, starting, running, complete, failed, rejected, ...
    error: str = ""

    @property
    def running(self) -> bool:
        return self.desired == "running" and self.state == "running"


def parse_services(out: str, project: str) -> list[Service]:
    found = []
    for row in _json_lines(out):
        spec = row.get("Spec") or {}
        name = str(spec.get("Name", "")).removeprefix(f"{project}_")
        replicated = (spec.get("Mode") or {}).get("Replicated")
        image = ((spec.get("TaskTemplate") or {}).get("ContainerSpec") or {}).get("Image", "")
        status = row.get("UpdateStatus") or {}
        found.append(Service(row.get("ID", ""), name, image.split("@", 1)[0],
                             replicated.get("Replicas") if replicated else None,
                             status.get("State", ""), status.get("Message", "")))
    return sorted(found, key=lambda s: s.name)


def parse_tasks(out: str, services: list[Service]) -> list[Task]:
    names = {s.id: s.name for s in services}
    found = []
    for row in _json_lines(out):
        status = row.get("Status") or {}
        image = ((row.get("Spec") or {}).get("ContainerSpec") or {}).get("Image", "")
        found.append(Task(names.get(row.get("ServiceID", ""), row.get("ServiceID", "")), image.split("@", 1)[0],
                          row.get("NodeID", ""), row.get("DesiredState", ""), status.get("State", ""),
                          status.get("Err", "")))
    return found


@dataclass
class Convergence:
    done: bool
    gave_up: list[str] = field(default_factory=list)  # "web: rollback_completed (update paused due to failure)"
    waiting: list[str] = field(default_factory=list)  # what is not there yet
    failing: list[str] = field(default_factory=list)  # tasks that failed, with their errors


def convergence(services: list[Service], tasks: list[Task], images: dict[str, str]) -> Convergence:
    """Whether the stack runs `images` (service → image) on every replica; what swarm gave up on."""
    state = Convergence(done=False)
    by_name = {s.name: s for s in services}
    for name, image in sorted(images.items()):
        service = by_name.get(name)
        if service is None:
            state.waiting.append(f"{name}: no service yet")
            continue
        if service.update in GAVE_UP:
            state.gave_up.append(f"{name}: {service.update}" + (f" ({service.message})" if service.message else ""))
            continue
        running = [t for t in tasks if t.service == name and t.running and t.image == image]
        want = service.replicas
        if service.image != image:
            state.waiting.append(f"{name}: the service runs {service.image}, not {image}")
        elif service.update not in ("", "completed"):
            state.waiting.append(f"{name}: update {service.update}")
        elif want is not None and len(running) < want:
            state.waiting.append(f"{name}: {len(running)} of {want} tasks running")
        elif want is None and not running:
            state.waiting.append(f"{name}: no task running")
        state.failing += [f"{name} on node {t.node[:12]}: {t.error or t.state}" for t in tasks
                          if t.service == name and t.image == image and (t.error or t.state in ("failed", "rejected"))
                          ][:3]
    state.done = not state.waiting and not state.gave_up
    return state


def secrets(project: str) -> str:
    return (f"docker secret ls --filter label={STACK_LABEL}={quote(project)} --format '{{{{.Name}}}}'; "
            f"docker config ls --filter label={STACK_LABEL}={quote(project)} --format 'config {{{{.Name}}}}'")


def prune_objects(project: str, keep: list[str]) -> str:
    """Remove the stack's secrets and configs no kept release names (one in use stays: docker refuses)."""
    return script([
        f"keep={quote(' ' + ' '.join(keep) + ' ')}",
        f"for s in $(docker secret ls --filter label={STACK_LABEL}={quote(project)} --format '{{{{.Name}}}}'); do",
        '  case "$keep" in *" $s "*) ;; *) docker secret rm "$s" >/dev/null 2>&1 || true ;; esac',
        "done",
        f"for c in $(docker config ls --filter label={STACK_LABEL}={quote(project)} --format '{{{{.Name}}}}'); do",
        '  case "$keep" in *" $c "*) ;; *) docker config rm "$c" >/dev/null 2>&1 || true ;; esac',
        "done",
    ])
