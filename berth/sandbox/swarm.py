"""A real multi-node Docker Swarm of sandbox engines: host 1 the manager, the others workers.

The namespaces reach each other through this machine's veths, so IP forwarding must be on: `form`
turns it on and notes what it was, `restore_forwarding` (called by `berth sandbox down`) puts it back.
This kernel has no IPVS: tasks run, but the routing mesh and service VIPs do not answer here.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from berth.errors import BerthError

FORWARDING = Path("/proc/sys/net/ipv4/ip_forward")
JOIN_TIMEOUT = 60


def _saved(root: Path) -> Path:
    return Path(root) / "ip_forward.before"


def _run(argv: list[str], check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if check and proc.returncode != 0:
        raise BerthError(f"sandbox: `{' '.join(argv)}` failed: {(proc.stderr or proc.stdout).strip()[-500:]}")
    return proc


def form(box) -> list[str]:
    """Init the swarm on host 1, join the others as workers, wait until every node is Ready; their node ids."""
    saved = _saved(box.root)
    if not saved.exists():
        saved.write_text(FORWARDING.read_text().strip() + "\n")
    FORWARDING.write_text("1\n")
    manager = box.hosts[0]

    def docker(h, *args, check=True):
        return _run(["docker", "-H", h.docker_host, *args], check=check)

    docker(manager, "swarm", "init", "--advertise-addr", manager.address, "--listen-addr", f"{manager.address}:2377")
    token = docker(manager, "swarm", "join-token", "--quiet", "worker").stdout.strip()
    for h in box.hosts[1:]:
        docker(h, "swarm", "join", "--token", token, "--advertise-addr", h.address, f"{manager.address}:2377")
    ids = [docker(h, "info", "--format", "{{.Swarm.NodeID}}").stdout.strip() for h in box.hosts]
    deadline = time.monotonic() + JOIN_TIMEOUT
    while True:
        ready = docker(manager, "node", "ls", "--filter", "role=worker", "--format", "{{.Status}}").stdout.split()
        if ready.count("Ready") == len(box.hosts) - 1:
            break
        if time.monotonic() > deadline:
            raise BerthError(f"sandbox: the swarm's workers did not become Ready within {JOIN_TIMEOUT}s ({ready})")
        time.sleep(0.5)
    for h, node in zip(box.hosts, ids):  # every engine reports this machine's host name: label them apart
        docker(manager, "node", "update", "--label-add", f"berth.host=h{h.index}", node)
    return ids


def restore_forwarding(root: Path) -> bool:
    """IP forwarding as it was before `form`; whether there was something to restore."""
    saved = _saved(root)
    if not saved.exists():
        return False
    try:
        FORWARDING.write_text(saved.read_text())
    except OSError:
        pass
    saved.unlink(missing_ok=True)
    return True


def dissolve(box) -> None:
    """The engines leave the swarm (workers first, their tasks with them); forwarding as it was."""
    for h in [*box.hosts[1:], box.hosts[0]]:
        _run(["docker", "-H", h.docker_host, "swarm", "leave", "--force"], check=False)
    restore_forwarding(box.root)
