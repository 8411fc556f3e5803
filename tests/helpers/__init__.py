"""What the tests share: running berth, the git isolation of test repositories, whether docker compose is here.

rule_cases.py is the harness of the check-rule tables; docker_states.py holds container states as
docker reports them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

# every git a test runs (and every berth it starts) sees no user or system config, and a fixed identity
GIT_ISOLATION = {
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "Berth Test",
    "GIT_AUTHOR_EMAIL": "test@berth.invalid",
    "GIT_COMMITTER_NAME": "Berth Test",
    "GIT_COMMITTER_EMAIL": "test@berth.invalid",
    "GIT_TERMINAL_PROMPT": "0",
    "NO_COLOR": "1",
}


def isolated_env(**extra: str) -> dict[str, str]:
    """os.environ plus the git isolation settings, for subprocesses (sh scripts, `python -m berth`)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_ISOLATION)
    env.update(extra)
    return env


def run_berth(*args: str, cwd: Path | str | None = None, env: dict[str, str] | None = None,
              input: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """`python -m berth ARGS` as a user runs it (a new process, stdin closed unless `input`); never a traceback."""
    proc = subprocess.run([sys.executable, "-m", "berth", *args], capture_output=True, text=True, cwd=cwd,
                          env=env if env is not None else isolated_env(), timeout=timeout,
                          input=input, stdin=None if input is not None else subprocess.DEVNULL)
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    return proc


def invoke(root: Path, *args: str):
    """`berth -C ROOT ARGS` in this process (click's CliRunner): fast, for commands that need no server."""
    from click.testing import CliRunner

    from berth.cli import cli

    return CliRunner().invoke(cli, ["-C", str(root), *args], catch_exceptions=True)


@cache
def compose_available() -> bool:
    """Whether `docker compose` (v2) runs here: the differential tests compare berth with it."""
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False
