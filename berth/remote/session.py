"""Stage: connect — one SSH connection per host, and the facts berth needs about the server."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from berth.configuration.target import Host, Target
from berth.errors import BerthError
from berth.model.release import Release, check_record
from berth.remote.commands import host as host_commands
from berth.remote.commands import release as release_commands
from berth.remote.engines.compose import Compose
from berth.remote.transport import Transport
from berth.remote.transport.ssh import SSHOptions
from berth.secrets.masking import masked_tail

if TYPE_CHECKING:
    from berth.ui.output import StepPrinter


@dataclass
class HostSession:
    """An open connection to one server plus what berth learned about it."""

    host: Host
    conn: Transport
    home: str
    user: str
    compose: Compose
    compose_version: str
    docker_version: str
    app_dir: str
    state_dir: str
    current: Release | None  # the release current.json names, if any
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


def connect(target: Target, conn: Transport) -> HostSession:
    """Open the master connection and read the server's facts in one round trip."""
    conn.open()
    try:
        project = target.project
        state_rel = release_commands.state_dir_rel(project)
        legacy_rel = release_commands.state_dir_rel(target.legacy_project)
        result = conn.run(host_commands.facts(state_rel, legacy_rel), timeout=60)
        facts, current_raw = host_commands.parse_facts(result.out)
        notes = []
        if facts.get("legacy") == "1":
            project, state_rel = target.legacy_project, legacy_rel
            notes.append(legacy_note(target))
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
                usable, problem = check_record(current) if isinstance(current, dict) else (False, "not a record")
                if not usable:
                    current, current_error = None, f"~/{state_rel}/current.json: {problem}"
                elif problem:
                    current_error = f"~/{state_rel}/current.json: {problem}"
        state_dir = f"{home.rstrip('/')}/{state_rel}"
        return HostSession(
            host=conn.host,
            conn=conn,
            home=home,
            user=facts.get("user", ""),
            compose=Compose(variant, project, compose_files(target, state_dir, variant, version), target.env_file,
                            services=tuple(getattr(conn.host, "services", ()))),
            compose_version=version,
            docker_version=facts["docker"],
            app_dir=absolute(target.app_dir, home),
            state_dir=state_dir,
            current=Release.from_record(current) if current else None,
            current_error=current_error,
            notes=notes,
        )
    except BaseException:
        conn.close()
        raise


def compose_files(target: Target, state_dir: str, variant: str = "v2", version: str = "2.24") -> tuple[str, ...]:
    """The files every compose command on the host names: the app's, then berth's proxy override when the
    proxy is on and the host's compose can read it (it runs the proxy and takes the start-first services'
    ports; docs/ROLLOUTS.md)."""
    from berth.remote.commands import proxy

    if target.proxy and proxy.supported(variant, version):
        return (*target.compose_files, proxy.override_path(state_dir))
    return tuple(target.compose_files)


def legacy_note(target: Target) -> str:
    """Why berth deploys under the old project name on this host, and how to move to the new one."""
    old, new = target.legacy_project, target.project
    return (f"this host runs the app as compose project {old!r} (the name berth used before it read "
            f"{target.project_name.origin}); berth keeps deploying it as {old!r} so that no second copy starts. "
            f"To move to {new!r}: `docker compose -p {old} down` on the server (never -v: volumes keep the data; "
            f"named volumes are per project, so copy their data across), then deploy again")


def ssh_options(target: Target, trust_new_host: bool = False) -> SSHOptions:
    return SSHOptions(
        trust_new_host=trust_new_host,
        ssh_config=target.local_path("ssh_config"),
        known_hosts=target.local_path("known_hosts"),
        batch=not sys.stdin.isatty(),
        forward_agent=target.forward_agent,
        known_hosts_origin=target.where("known_hosts") if target.get("known_hosts") else None,
    )


DEBUG_OUTPUT_LIMIT = 2000  # characters of a command's stdout and of its stderr that -v shows (the end)


def debug_hook(printer: StepPrinter):
    def on_command(script: str, result) -> None:
        if printer.verbose:
            printer.debug(f"$ {script.strip()}")
            printer.debug(f"→ exit {result.exit_code} in {result.seconds:.3f}s")
            for text in (result.out, result.err):
                if "\x00" in text or "\ufffd" in text:  # an image archive, not words
                    printer.debug(f"({len(text)} characters of binary output)")
                elif text.strip():  # masked before it is cut: a cut through a secret would show the rest of it
                    printer.debug(masked_tail(text, DEBUG_OUTPUT_LIMIT, printer.mask))

    return on_command
