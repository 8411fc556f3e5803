"""The sandbox recovers from a killed run (CI starts right after a session's processes are killed).

Runs last (file name): it takes the session's sandbox down and up again.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from berth import sandbox as sb


def _processes_mentioning(text: str) -> list[str]:
    out = subprocess.run(["ps", "-eww", "-o", "pid=,args="], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if text in line and "pytest" not in line]


def _links() -> str:
    return subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout


def test_up_and_down_recover_from_a_killed_run(sandbox):
    h = sandbox.hosts[0]
    cid = subprocess.run(["docker", "-H", h.docker_host, "run", "-d", "--name", "survivor", sb.BASE_IMAGE,
                          "sleep", "987654"], capture_output=True, text=True, check=True).stdout.strip()
    assert cid and _processes_mentioning("sleep 987654")
    # kill -9 everything the sandbox started, as the end of a session does: daemons die, while
    # namespaces, veths, mounts, pid files, sockets and the container (held by its shim) stay
    for pid_line in _processes_mentioning(sb.ROOT.as_posix() + "/h") + _processes_mentioning("/run/berth-sandbox/"):
        try:
            os.kill(int(pid_line.split()[0]), signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert Path(f"/var/run/netns/{h.name}").exists() and "bth-h1" in _links()

    box = sb.up(hosts=1)  # must clean up the leftovers first, then start fresh
    assert [r["sshd"] and r["docker"] for r in sb.status()] == [True]
    assert not _processes_mentioning("sleep 987654")
    assert box.hosts[0].address == h.address

    removed = sb.down()
    assert removed == ["berth-h1"]
    assert not Path(f"/var/run/netns/{h.name}").exists()
    assert "bth-h" not in _links()
    assert not _processes_mentioning(sb.ROOT.as_posix() + "/h") and not _processes_mentioning("/run/berth-sandbox/")
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(sb.ROOT) not in mounts and "/run/berth-sandbox" not in mounts
    assert subprocess.run(["id", "berth-h1"], capture_output=True).returncode != 0
    assert sb.status() == []
