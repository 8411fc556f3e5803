"""Stage: connect — one SSH connection per host, and the facts berth needs about the server."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from berth.commands import host as host_commands
from berth.commands import release as release_commands
from berth.config import Host, Target
from berth.engines.compose import Compose
from berth.errors import BerthError
from berth.transport.ssh import SSHConnection


@dataclass
class HostSession:
    """An open connection to one server plus what berth learned about it."""

    host: Host
    conn: SSHConnection
    home: str
    user: str
    compose: Compose
    compose_version: str
    docker_version: str
    app_dir: str
    state_dir: str
    current: dict | None  # the release record that is running, if any
    current_error: str | None = None
    notes: list[str] = field(default_factory=list)

    def close(self) -> None:
        self.conn.close()


def absolute(path: str, home: str) -> str:
    if path == "~":
        return home
    if path.startswith("~/"):
        return home.rstrip("/") + path[1:]
    return path


def connect(target: Target, conn: SSHConnection) -> HostSession:
    """Open the master connection and read the server's facts in one round trip."""
    conn.open()
    try:
        state_rel = release_commands.state_dir_rel(target.project)
        result = conn.run(host_commands.facts(state_rel), timeout=60)
        facts, current_raw = host_commands.parse_facts(result.out)
        if "home" not in facts:
            raise BerthError(f"could not read facts from {conn.host.label}: {result.tail(300)}")
        if "git" not in facts:
            raise BerthError(f"git is not installed on {conn.host.label}", fix="install git on the server (apt-get install git)")
        if "docker" not in facts:
            reason = facts.get("docker_error", "docker is not installed")
            raise BerthError(
                f"docker on {conn.host.label} does not answer: {reason}",
                fix=f"install docker and start it; add {facts.get('user', 'the user')} to the docker group "
                "(sudo usermod -aG docker USER, then log in again)",
            )
        if "compose" not in facts:
            raise BerthError(
                f"neither `docker compose` (v2) nor `docker-compose` (v1) is installed on {conn.host.label}",
                fix="install the Docker Compose plugin (apt-get install docker-compose-plugin) on the server",
            )
        variant, _, version = facts["compose"].partition(" ")
        home = facts["home"]
        current, current_error = None, None
        if current_raw:
            try:
                current = json.loads(current_raw)
            except ValueError:
                current_error = f"~/{state_rel}/current.json is not valid JSON"
            else:
                from berth.release import check_record  # (berth.release imports this module)

                usable, problem = check_record(current) if isinstance(current, dict) else (False, "not a record")
                if not usable:
                    current, current_error = None, f"~/{state_rel}/current.json: {problem}"
                elif problem:
                    current_error = f"~/{state_rel}/current.json: {problem}"
        return HostSession(
            host=conn.host,
            conn=conn,
            home=home,
            user=facts.get("user", ""),
            compose=Compose(variant, target.project, target.compose_files, target.env_file),
            compose_version=version,
            docker_version=facts["docker"],
            app_dir=absolute(target.app_dir, home),
            state_dir=f"{home.rstrip('/')}/{state_rel}",
            current=current,
            current_error=current_error,
        )
    except BaseException:
        conn.close()
        raise
