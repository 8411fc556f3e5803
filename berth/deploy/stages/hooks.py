"""Pre- and post-deploy hooks: shell commands run on the server (in the app dir) or locally.

A hook written `local: CMD` runs on this machine in the repo; anything else runs on the server
in the app dir over the deploy's SSH connection. Either way the hook runs under `set -e`: the first
command that fails fails the hook. Both get BERTH_RELEASE, BERTH_COMMIT,
BERTH_ENVIRONMENT and BERTH_HOST in their environment, plus COMPOSE_PROJECT_NAME, COMPOSE_FILE and
COMPOSE_ENV_FILES so plain `docker compose` commands act on the deployed project. Example (berth.toml):
    pre_deploy = ["docker compose run --rm web migrate"]
    post_deploy = ["local: ./scripts/notify-chat"]
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from berth.errors import BerthError
from berth.model.release import Release
from berth.remote.session import HostSession
from berth.remote.shell import quote, script

LOCAL_PREFIX = "local:"


def hook_env(release: Release | dict, compose=None) -> dict[str, str]:
    release = Release.of(release)
    env = {
        "BERTH_RELEASE": release.id,
        "BERTH_COMMIT": release.commit,
        "BERTH_ENVIRONMENT": release.environment or "",
        "BERTH_HOST": release.host or "",
    }
    if compose is not None:
        # so `docker compose run --rm web migrate` in a hook addresses the deployed project as berth does
        env.update(COMPOSE_PROJECT_NAME=compose.project, COMPOSE_FILE=":".join(compose.files),
                   COMPOSE_ENV_FILES=compose.env_file)
    return env


def remote_hook(app_dir: str, command: str, env: dict[str, str]) -> str:
    """The hook as the server runs it: the user's command text as-is, after cd and the BERTH_* exports.

    A script under `set -e`: a hook of several commands (lines, or `a; b`) stops at the first that
    fails and fails with it, instead of being judged by its last command.
    """
    exports = " ".join(f"{k}={quote(v)}" for k, v in env.items())
    return script([f"cd {quote(app_dir)}", f"export {exports}", command])


def local_hook_argv(command: str) -> list[str]:
    """A `local:` hook: the same `set -e` rule as on the server (`sh -e`)."""
    return ["/bin/sh", "-e", "-c", command]


def run_hooks(when: str, commands: tuple[str, ...], session: HostSession, release: Release, root: Path) -> list[str]:
    """Run each hook in order; the first failure raises with its output. Returns what ran."""
    env = hook_env(release, session.compose)
    ran = []
    for command in commands:
        if command.startswith(LOCAL_PREFIX):
            local = command[len(LOCAL_PREFIX):].strip()
            proc = subprocess.run(local_hook_argv(local), cwd=root, env={**os.environ, **env},
                                  capture_output=True, text=True, timeout=3600)
            code, output = proc.returncode, proc.stdout + proc.stderr
        else:
            result = session.conn.run(remote_hook(session.app_dir, command, env), timeout=3600)
            code, output = result.exit_code, result.out + result.err
        if code != 0:
            where = 'locally' if command.startswith(LOCAL_PREFIX) else 'on the server in ' + session.app_dir
            raise BerthError(
                f"{when}-deploy hook `{command}` failed with exit code {code}",
                fix=f"fix the hook or what it checks; it runs {where}",
                details="\n".join(output.rstrip().splitlines()[-30:]),
            )
        ran.append(command)
    return ran
