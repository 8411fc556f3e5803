"""`berth doctor`: the troubleshooting guide as code, run against every host of an environment.

It only reads: one SSH connection per host, one script that gathers the facts (commands/doctor.py),
then a few probes where a fact needs a closer look (a service's last log lines, a database or Redis
reached from inside the app's container, a published port, a health URL). Each check is a small
function with a stable id that turns facts into findings; a failed finding names its likely
cause and the exact fix. Secret values never leave the server, and everything printed is masked.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from berth.configuration.target import Host, Target
from berth.model.git import public_url
from berth.model.release import Release
from berth.remote.commands import doctor as cmd
from berth.remote.engines.compose import ContainerState, parse_inspect

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"
LOG_LINES = 20
CRASH_LOOP_RESTARTS = 3
RECENT_START_SECONDS = 120  # restarted this recently, and often: a crash loop, not old history
DISK_FAIL_PCT, DISK_WARN_PCT, DISK_MIN_KB = 95, 90, 1024 * 1024
MEMORY_WARN_KB = 128 * 1024
DB_SCHEMES = {"postgres": ("postgres", "postgresql"), "redis": ("redis", "rediss")}
EXIT_CODE_MEANING = {
    0: "its process exited normally",
    1: "the app exited with an error",
    2: "the app exited with a usage error",
    126: "the command is not executable",
    127: "the command was not found in the image",
    137: "it was killed (SIGKILL: out of memory, or `docker kill` / `docker stop` after the timeout)",
    139: "it crashed (segmentation fault)",
    143: "it was stopped (SIGTERM: `docker stop` / `docker compose stop`)",
}


@dataclass
class Finding:
    id: str
    status: str  # ok, warn, fail, skip
    summary: str
    cause: str = ""
    fix: str = ""
    details: str = ""


@dataclass
class Expected:
    """What the local configuration says the server should run (never holds a secret value)."""

    services: dict[str, dict] = field(default_factory=dict)  # name → {"env": [names], "ports": [host ports]}
    env_names: list[str] = field(default_factory=list)  # keys of the local env file
    env_sha256: str | None = None
    db_vars: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # service → [(kind, VAR)]
    url_hosts: dict[tuple[str, str], tuple[str, int | None]] = field(default_factory=dict)  # (svc, VAR) → host, port
    health_urls: tuple[str, ...] = ()
    problem: str | None = None  # why the compose file could not be read


@dataclass
class Container:
    state: ContainerState
    networks: list[str] = field(default_factory=list)
    ports: list[tuple[int, str]] = field(default_factory=list)  # (host port, container port/proto)
    env_names: set[str] = field(default_factory=set)


@dataclass
class HostFacts:
    """What one gather round trip said about the server."""

    facts: dict[str, str]
    repo: dict[str, str]
    envfile: dict[str, str]
    containers: list[Container]
    disk: list[list[str]]
    memory: dict[str, int]
    current: Release | None  # the release current.json names
    app_dir: str
    lock: dict | None = None  # the deploy lock's owner, when it is held

    @property
    def docker_ok(self) -> bool:
        return "docker" in self.facts

    def by_service(self) -> dict[str, list[Container]]:
        out: dict[str, list[Container]] = {}
        for c in self.containers:
            out.setdefault(c.state.service, []).append(c)
        return out


Probe = Callable[[str], str]  # runs a command on the server, returns its stdout


# --------------------------------------------------------------------------- local facts


def for_host(exp: Expected, target: Target, host: Host) -> Expected:
    """What `host` should run: the services of its roles (berth.toml) and their health URLs."""
    from dataclasses import replace

    if not host.services and host.health_urls is None:
        return exp
    keep = set(host.services or exp.services)
    return replace(exp, services={n: s for n, s in exp.services.items() if n in keep},
                   db_vars={n: v for n, v in exp.db_vars.items() if n in keep},
                   url_hosts={k: v for k, v in exp.url_hosts.items() if k[0] in keep},
                   health_urls=target.health_urls_of(host))


def expected_from(target: Target) -> Expected:
    """Services, their variable names and ports, and which services talk to Postgres/Redis."""
    import hashlib

    from berth.errors import BerthError
    from berth.model.compose.resolve import resolve_compose

    exp = Expected(health_urls=target.health_urls)
    env_path = target.root / target.env_file
    if env_path.exists():
        from berth.model.envfile import read_env_bytes, read_env_file

        try:
            exp.env_sha256 = hashlib.sha256(read_env_bytes(env_path)).hexdigest()
            exp.env_names = [e.key for e in read_env_file(env_path).entries]
        except BerthError:
            pass
    try:
        model = resolve_compose(target).model
    except BerthError as exc:
        exp.problem = exc.paragraph()
        return exp
    for name, spec in (model.get("services") or {}).items():
        env = {k: v for k, v in (spec.get("environment") or {}).items() if v is not None}
        ports = [int(p["published"]) for p in spec.get("ports") or [] if str(p.get("published", "")).isdigit()]
        exp.services[name] = {"env": sorted(env), "ports": ports}
        for var, value in env.items():
            scheme = urlsplit(str(value)).scheme.split("+")[0].lower()
            for kind, schemes in DB_SCHEMES.items():
                if scheme in schemes:
                    if cmd.PROBE_VARIABLE.fullmatch(var):  # the probe reads only plain variable names
                        exp.db_vars.setdefault(name, []).append((kind, var))
                    u = urlsplit(str(value))
                    try:
                        port = u.port
                    except ValueError:
                        port = None
                    exp.url_hosts[(name, var)] = (u.hostname or "", port)
    return exp


def check_key_file(host: Host) -> Finding:
    key = host.key_path
    if not key:
        return Finding("ssh.key", OK, "no PEM_KEY_PATH: ssh-agent and ~/.ssh/config choose the key")
    path = Path(key)
    if not path.exists():
        return Finding("ssh.key", FAIL, f"the key file {key} does not exist",
                       cause="PEM_KEY_PATH points at a file that is not there (moved, or a typo)",
                       fix=f"set PEM_KEY_PATH in .env to the private key's path (now {key})")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        return Finding("ssh.key", FAIL, f"the key file {key} has mode {mode:04o}: other users can read it",
                       cause="OpenSSH refuses private keys that others can read (\"UNPROTECTED PRIVATE KEY FILE\") "
                       "and the login fails",
                       fix=f"chmod 600 {key}")
    if not os.access(path, os.R_OK):
        return Finding("ssh.key", FAIL, f"the key file {key} is not readable by you",
                       cause="the file belongs to another user", fix=f"sudo chown $(id -un) {key}")
    return Finding("ssh.key", OK, f"{key} (mode {mode:04o})")


# --------------------------------------------------------------------------- parsing the gather output


def parse_gather(stdout: str, app_dir: str) -> HostFacts:
    sections = cmd.parse_sections(stdout)
    states = {s.id: s for s in parse_inspect("\n".join(sections.get("containers", [])))}
    containers = []
    for line in sections.get("details", []):
        parts = line.split("\t")
        if len(parts) != 4 or parts[0] not in states:
            continue
        ports = []
        for item in parts[2].split():
            host_port, _, container_port = item.partition("/")
            if host_port.isdigit():
                ports.append((int(host_port), container_port))
        containers.append(Container(states.pop(parts[0]), parts[1].split(), ports, set(parts[3].split())))
    containers += [Container(s) for s in states.values()]
    memory = {}
    for line in sections.get("memory", []):
        key, _, rest = line.partition(":")
        if rest.split() and rest.split()[0].isdigit():
            memory[key] = int(rest.split()[0])
    current = None
    raw = "\n".join(sections.get("current", [])).strip()
    if raw:
        try:
            value = json.loads(raw)
        except ValueError:
            value = None
        current = Release.from_record(value) if isinstance(value, dict) else None
    lock = None
    raw_lock = "\n".join(sections.get("lock", [])).strip()
    if raw_lock:
        from berth.deploy.lock import parse_owner

        lock = parse_owner(raw_lock)
    return HostFacts(
        lock=lock,
        facts=cmd.key_values(sections.get("facts", [])),
        repo=cmd.key_values(sections.get("repo", [])),
        envfile=cmd.key_values(sections.get("envfile", [])),
        containers=sorted(containers, key=lambda c: (c.state.service, c.state.name)),
        disk=[line.split() for line in sections.get("disk", []) if len(line.split()) >= 6],
        memory=memory,
        current=current,
        app_dir=app_dir,
    )


# --------------------------------------------------------------------------- checks on the facts


def check_docker(f: HostFacts) -> Finding:
    if f.docker_ok:
        return Finding("docker.daemon", OK, f"docker engine {f.facts['docker']}")
    err = f.facts.get("docker_error", "")
    sock = f.facts.get("docker_host", "unix:///var/run/docker.sock")
    if "docker_client" not in f.facts and ("not found" in err or not err):
        return Finding("docker.daemon", FAIL, "docker is not installed on the server",
                       cause="the `docker` command is not on the login user's PATH",
                       fix="install Docker Engine on the server (https://docs.docker.com/engine/install/)")
    if "permission denied" in err.lower():
        user = f.facts.get("user", "USER")
        return Finding("docker.daemon", FAIL, f"{user} may not use the docker socket ({err})",
                       cause=f"{user} is not in the docker group",
                       fix=f"sudo usermod -aG docker {user}, then log in again")
    return Finding("docker.daemon", FAIL, f"the docker daemon does not answer at {sock}",
                   cause="the docker daemon is not running (stopped, crashed, or not started at boot)",
                   fix="on the server: sudo systemctl start docker (and sudo systemctl enable docker so it starts at "
                   "boot); sudo journalctl -u docker -n 50 shows why it stopped",
                   details=err)


def check_compose(f: HostFacts) -> Finding:
    variant, _, version = f.facts.get("compose", "").partition(" ")
    if not variant:
        return Finding("docker.compose", FAIL, "neither `docker compose` nor `docker-compose` is installed",
                       cause="the Compose plugin is missing on the server",
                       fix="install it: sudo apt-get install docker-compose-plugin")
    if variant == "v1":
        return Finding("docker.compose", WARN, f"only Compose v1 (docker-compose {version})",
                       cause="Compose v1 is end-of-life; berth supports it, but new compose features fail there",
                       fix="install the Compose v2 plugin: sudo apt-get install docker-compose-plugin")
    return Finding("docker.compose", OK, f"docker compose {version}")


def check_repo(f: HostFacts, target: Target) -> list[Finding]:
    present = f.repo.get("present")
    app = f.app_dir
    if present == "no":
        out = [Finding("repo.cloned", FAIL, f"{app} does not exist on the server",
                       cause="the app has never been deployed to this server, or its directory was removed or moved",
                       fix="berth deploy (it clones the repository there)" +
                       (f"; {len(f.containers)} container(s) of the project still run from the old checkout"
                        if f.containers else ""))]
    elif present == "not-a-repo":
        out = [Finding("repo.cloned", FAIL, f"{app} exists but is not a git checkout",
                       cause="the code was copied there (rsync/scp) instead of cloned, so berth cannot check out commits",
                       fix=f"move it away on the server (mv {app} {app}.old), then berth deploy clones it")]
    elif present != "yes":
        return [Finding("repo.cloned", SKIP, f"could not read {app} on the server")]
    else:
        origin = public_url(f.repo.get("origin") or "") or "?"
        also = (" (berth deploy fetches from the URL of GIT_REMOTE / remote instead, into refs/remotes/berth/, and "
                "leaves that origin as it is)") if f.repo.get("origin_is") == "other" else ""
        out = [Finding("repo.cloned", OK, f"{app} at {f.repo.get('head', '')[:7] or '?'} from {origin}{also}")]
        server = f"ssh {target.hosts[0].label if target.hosts else 'server'}"
        dirty = int(f.repo.get("dirty", "0") or 0)
        if dirty:
            # as berth deploy's own refusal words it (berth/deploy/stages/sync.py)
            out.append(Finding("repo.clean", WARN, f"{dirty} file(s) changed by hand on the server",
                               cause="someone edited files in the checkout; berth deploy stops and will not overwrite them",
                               fix=f"look with `{server} git -C {app} status`; commit and push what should stay, "
                               "or discard it on the server with git checkout -- FILE"))
        current = Release.of(f.current).commit if f.current else None
        head = f.repo.get("head", "")
        server_commits = int(f.repo.get("server_commits", "0") or 0)
        if server_commits and head != current:
            out.append(Finding("repo.server-commits", WARN,
                               f"the checkout is at {server_commits} commit(s) made on the server that no remote branch holds",
                               cause="someone committed in the checkout on the server; berth deploy stops rather than "
                               "move away from them, because nothing would keep them",
                               fix=f"look with `{server} git -C {app} log --oneline HEAD --not --remotes`; push them from "
                               f"the server to the remote and merge them, or note their SHAs and run git -C {app} "
                               f"checkout --detach {current or 'COMMIT'} on the server"))
        elif current and head and current != head:
            out.append(Finding("repo.commit", WARN, f"the checkout is at {head[:7]}, the running release is {current[:7]}",
                               cause="the checkout was moved by hand (git pull/checkout on the server) after the deploy",
                               fix="berth deploy (or berth rollback) puts checkout and containers back in step"))
    if "remote_error" in f.repo:
        err = f.repo["remote_error"]
        if "Permission denied" in err or "publickey" in err or "Authentication failed" in err:
            cause = "the server has no credentials for the git remote (no deploy key or token)"
            fix = "add a read-only deploy key on the server (ssh-keygen, then add the .pub to the repository's deploy keys)"
        elif "Could not resolve" in err:
            cause = "the server cannot resolve the git host's name (DNS)"
            fix = "check /etc/resolv.conf on the server, or use the remote's IP address"
        elif "not found" in err.lower() or "does not appear to be a git repository" in err or "does not exist" in err:
            cause = "the remote URL is wrong (or the repository moved)"
            fix = ("set the URL berth deploys from: GIT_REMOTE in .env or remote in berth.toml (or your origin); "
                   "the server fetches from that URL, and its own origin is never rewritten")
        else:
            cause = "the server cannot reach the git remote (firewall, proxy, or the remote is down)"
            fix = "on the server, run `git ls-remote URL` and fix what it says"
        out.append(Finding("repo.remote", FAIL, f"the server cannot read the git remote: {err}", cause=cause, fix=fix))
    elif f.repo.get("remote") == "ok":
        out.append(Finding("repo.remote", OK, "the server can read the git remote"))
    return out


def check_env_file(f: HostFacts, exp: Expected, target: Target) -> list[Finding]:
    name = target.env_file
    if f.envfile.get("missing"):
        return [Finding("env.file", FAIL, f"{name} is not on the server",
                        cause="berth ships it on deploy: never deployed here, or it was removed",
                        fix="berth deploy (it copies your local file over SSH, mode 0600)")]
    out = []
    mode = f.envfile.get("mode", "")
    if mode and mode not in ("600", "400"):
        out.append(Finding("env.mode", WARN, f"{name} on the server has mode {mode}",
                           cause="other users on the server can read the secrets in it",
                           fix=f"chmod 600 {f.app_dir}/{name} (berth deploy writes it 0600)"))
    has = set(f.envfile.get("has", "").split())
    missing = [n for n in exp.env_names if n not in has]
    if missing:
        out.append(Finding("env.file", FAIL, f"the server's {name} lacks {', '.join(missing)}",
                           cause="it was shipped before these variables were added, or edited on the server",
                           fix=f"berth deploy (it ships your {name})"))
    elif exp.env_sha256 and f.envfile.get("sha256") and f.envfile["sha256"] != exp.env_sha256:
        out.append(Finding("env.file", WARN, f"the server's {name} differs from yours",
                           cause="values changed locally since the last deploy, or the file was edited on the server",
                           fix="berth deploy ships yours (berth plan shows what it would do)"))
    if not out:
        out.append(Finding("env.file", OK, f"{name} on the server matches yours (mode {mode})"))
    return out


def _seconds_since(stamp: str) -> float:
    """Seconds since docker's StartedAt (RFC 3339 with nanoseconds); large when unknown."""
    from datetime import datetime, timezone

    try:
        then = datetime.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    except ValueError:
        return float("inf")
    return (datetime.now(timezone.utc) - then).total_seconds()


def check_lock(f: HostFacts) -> list[Finding]:
    if f.lock is None:
        return [Finding("deploy.lock", OK, "no deploy holds the lock")]
    from berth.deploy.lock import describe, stale_reason

    holder = describe(f.lock)
    if f.lock.get("command") == "manual lock":
        return [Finding("deploy.lock", WARN, f"deploys are locked by hand: {holder}",
                        cause="someone locked deploys on purpose (berth lock acquire), e.g. for maintenance",
                        fix="berth lock release when the work is done")]
    stale = stale_reason(f.lock)
    if stale:
        return [Finding("deploy.lock", FAIL, f"a stale deploy lock blocks deploys: {holder}",
                        cause=f"the deploy that took it ended without releasing it: {stale}",
                        fix="make sure no deploy is running, then berth lock release --force")]
    return [Finding("deploy.lock", WARN, f"a deploy is running: {holder}",
                    cause="another deploy or rollback holds the lock right now; what doctor sees may be mid-change",
                    fix="wait for it (berth deploy --lock-wait SECONDS), then run doctor again")]


def _exit_meaning(code: int) -> str:
    return EXIT_CODE_MEANING.get(code, f"it exited with code {code}")


def check_services(f: HostFacts, exp: Expected, probe: Probe, target: Target) -> list[Finding]:
    out = []
    running = f.by_service()
    app = f.app_dir
    compose = "docker compose" if f.facts.get("compose", "").startswith("v2") else "docker-compose"
    from berth.remote.commands.proxy import SERVICE as PROXY_SERVICE

    for service in sorted(set(exp.services) | set(running)):
        containers = running.get(service, [])
        if service == PROXY_SERVICE and target.proxy:
            continue  # check_proxy's
        if service not in exp.services:
            out.append(Finding("service.orphan", WARN, f"{service} runs but is not in the compose file",
                               cause="the service was removed from docker-compose.yml after it was deployed",
                               fix="berth deploy removes it (compose --remove-orphans); its volumes stay"))
            continue
        if not containers:
            by_hand = f" (or on the server: cd {app} && {compose} up -d {service})" if f.repo.get("present") == "yes" else ""
            out.append(Finding("service.running", FAIL, f"{service} has no container",
                               cause="it was never deployed here, or its container was removed (docker rm / compose down)",
                               fix=f"berth deploy{by_hand}"))
            continue
        for c in containers:
            out.append(_container_finding(service, c.state, probe, app, compose))
        out += _check_container_env(service, containers, exp, f, target)
    return out


def _container_finding(service: str, s: ContainerState, probe: Probe, app: str, compose: str) -> Finding:
    """One container's state as a finding; a failing one carries its last log lines."""
    looping = s.status == "restarting" or (s.status == "running" and s.restarts >= CRASH_LOOP_RESTARTS
                                           and _seconds_since(s.started_at) < RECENT_START_SECONDS)
    if s.ready and not looping:
        return Finding("service.running", WARN if s.restarts >= CRASH_LOOP_RESTARTS else OK,
                       f"{service} ({s.name}) {s.describe()}",
                       cause="it crashed and was restarted; it runs now" if s.restarts else "",
                       fix=f"berth logs {service} shows what happened" if s.restarts else "")
    logs = probe(cmd.logs_tail(s.id, LOG_LINES)).rstrip()
    start_it = f"berth deploy (or on the server: cd {app} && {compose} up -d {service})"
    if looping:
        # a running container's exit code is reset: known only between two restarts
        code = f", last exit code {s.exit_code}" if s.status == "restarting" else ""
        why = f" ({_exit_meaning(s.exit_code)})" if s.status == "restarting" else ""
        return Finding("service.crashloop", FAIL, f"{service} is crash-looping: restarted {s.restarts} times{code}",
                       cause=f"its main process exits soon after it starts{why}; the last log lines below say why",
                       fix="fix the error in the log, commit and berth deploy — or berth rollback to the last good "
                       f"release; watch it with berth logs {service}",
                       details=logs)
    if s.status == "created":
        return Finding("service.stopped", FAIL, f"{service} ({s.name}) was created but never started",
                       cause="compose stopped before starting it: a dependency never became healthy, or its port "
                       "was already taken",
                       fix=f"{start_it}; the deploy's output says which", details=logs)
    if s.status in ("exited", "dead"):
        by_hand = s.exit_code in (0, 137, 143)
        restarts = s.restart_policy in ("always", "unless-stopped")
        cause = "it was stopped (docker stop / compose stop) or killed" if by_hand else \
            f"it crashed: {_exit_meaning(s.exit_code)}"
        if not by_hand and not restarts:
            cause += f"; restart policy '{s.restart_policy or 'no'}' does not bring it back"
        return Finding("service.stopped", FAIL, f"{service} ({s.name}) is not running: {s.describe()}",
                       cause=cause,
                       fix=f"start it: {start_it}" + ("" if by_hand else "; the log lines below say why it exited"),
                       details=logs)
    if s.health == "unhealthy":
        probe = f"--- the healthcheck's own output ---\n{s.health_log}" if s.health_log else ""
        return Finding("service.health", FAIL, f"{service} is running but its healthcheck fails",
                       cause="the healthcheck command fails inside the container: the app is not answering where "
                       "the healthcheck looks, or a dependency is down",
                       fix=f"read the log below and berth logs {service}; check the healthcheck's URL and port "
                       "match what the app listens on", details="\n".join(t for t in (probe, logs) if t))
    return Finding("service.health", WARN, f"{service} is {s.describe()}", cause="it is still starting",
                   fix="wait for its healthcheck, then run doctor again", details=logs)


def _check_container_env(service: str, containers: list[Container], exp: Expected, f: HostFacts,
                         target: Target) -> list[Finding]:
    wanted = exp.services.get(service, {}).get("env", [])
    out = []
    for c in containers:
        if not c.env_names:  # no details for this container (gone between two commands): nothing to compare
            continue
        missing = [n for n in wanted if n not in c.env_names]
        if not missing:
            if wanted:
                out.append(Finding("service.env", OK, f"{service}: all {len(wanted)} variables present (names checked)"))
            continue
        on_server = set(f.envfile.get("has", "").split())
        absent_on_server = [n for n in missing if n in exp.env_names and n not in on_server]
        if absent_on_server:
            cause = (f"the server's {target.env_file} has no {', '.join(absent_on_server)}: it was shipped before "
                     "they were added, or edited on the server")
        else:
            cause = ("the container was created before these variables were set; a container gets its environment "
                     "only when it is created")
        out.append(Finding("service.env", FAIL,
                           f"{service} ({c.state.name}) lacks {len(missing)} variable(s) the compose file gives it: "
                           f"{', '.join(missing)}",
                           cause=cause,
                           fix=f"berth deploy (ships {target.env_file} and recreates {service})"))
    return out


def check_backing_services(f: HostFacts, exp: Expected, probe: Probe) -> list[Finding]:
    running = f.by_service()
    jobs = []  # (service, container, kind, var): one probe each, all at once (a dead name costs seconds)
    for service, uses in sorted(exp.db_vars.items()):
        containers = [c for c in running.get(service, []) if c.state.status == "running"]
        if containers:
            jobs += [(service, containers[0], kind, var) for kind, var in uses]
    if not jobs:
        return []
    stdout = probe(cmd.in_parallel([cmd.probe_service(c.state.id, kind, var) for _, c, kind, var in jobs]))
    out = []
    for (service, c, kind, var), answer in zip(jobs, cmd.split_parallel(stdout, len(jobs))):
        lines = answer.strip().splitlines()
        word, *rest = (lines[-1].split() if lines else ["error"])
        host, port = (rest + ["?", "?"])[:2]
        out.append(_backing_finding(service, c, kind, var, word, host, port, rest[2:], running, set(exp.services)))
    return out


def _backing_finding(service, c: Container, kind, var, word, host, port, extra, running, services: set[str]) -> Finding:
    check_id = "db.reachable" if kind == "postgres" else "redis.ping"
    what = "PostgreSQL" if kind == "postgres" else "Redis"
    where = f"{host}:{port}"
    if word == "ok":
        return Finding(check_id, OK, f"{service} reaches {what} at {where} ({var})")
    if word == "unset":
        return Finding(check_id, SKIP, f"{var} is not set inside {service}", cause="see service.env")
    if word == "notool":
        return Finding(check_id, SKIP, f"cannot probe {where} from {service}: the image has neither python nor nc")
    host_containers = running.get(host, [])
    target_containers = [t for t in host_containers if t.state.status == "running"]
    if host in ("localhost", "127.0.0.1", "::1"):
        cause = (f"{var} points at {host}, which inside a container is the container itself, not the server or "
                 f"the {what} service")
        fix = f"use the compose service name as host in {var} (e.g. db or redis), then berth deploy"
    elif word == "dns":
        if host not in services:
            cause = (f"{var} points at {host}, which is not a service in the compose file and does not resolve "
                     "inside the container")
            fix = (f"add the {what} service to docker-compose.yml, or set {var} to the database's real host name "
                   "(a managed database: check that the server's DNS resolves it)")
        elif not target_containers:
            states = ", ".join(t.state.describe() for t in host_containers) or "no container"
            cause = f"no container answers to the name {host}: the {host} service is not running ({states})"
            fix = f"start it: berth deploy (or on the server: docker compose up -d {host})"
        else:
            theirs = sorted({n for t in target_containers for n in t.networks})
            shared = set(c.networks) & set(theirs)
            if not shared:
                cause = (f"{host} is running but shares no network with {service} ({service}: "
                         f"{', '.join(c.networks) or 'none'}; {host}: {', '.join(theirs) or 'none'}), so its name "
                         "does not resolve")
                fix = (f"put both on one network in docker-compose.yml; if the file already does, the container was "
                       f"disconnected by hand: on the server, docker compose up -d --force-recreate {host}")
            else:
                cause = f"{host} does not resolve inside {service} although they share {', '.join(sorted(shared))}"
                fix = f"recreate both: on the server, docker compose up -d --force-recreate {service} {host}"
    elif word == "refused":
        cause = f"nothing accepts connections at {where}: {host} is down, still starting, or listens on another port"
        fix = f"check berth logs {host}; make the port in {var} the one {what} listens on"
    elif word == "timeout":
        cause = f"connections to {where} time out: a firewall drops them, or {host} is overloaded"
        fix = f"check the host and port in {var} and any firewall between the containers"
    elif word == "auth":
        cause = f"{what} refused the credentials in {var}"
        fix = ("make the password in REDIS_URL equal REDIS_PASSWORD (berth secrets rotate REDIS_PASSWORD keeps both "
               "in step), then berth deploy")
    else:
        cause = f"{where} answered, but not like {what}: {' '.join(extra) or 'no answer'}"
        fix = f"check that {var} points at the {what} service and port"
    return Finding(check_id, FAIL, f"{service} cannot reach {what} at {where} ({var})", cause=cause, fix=fix)


def check_resources(f: HostFacts) -> list[Finding]:
    out = []
    seen = set()
    for fs, _blocks, _used, avail, pct, mount, *_ in f.disk:
        if fs in seen:  # the home and docker's root on one filesystem: one finding
            continue
        seen.add(fs)
        used = int(pct.rstrip("%")) if pct.rstrip("%").isdigit() else 0
        free_kb = int(avail) if avail.isdigit() else 0
        summary = f"{mount}: {used}% used, {free_kb / 1024 / 1024:.1f} GiB free"
        if used >= DISK_FAIL_PCT or free_kb < DISK_MIN_KB:
            out.append(Finding("host.disk", FAIL, summary,
                               cause="builds, pulls and logs fail when the disk fills (the database may stop writing)",
                               fix="docker system prune (stopped containers, unused networks, dangling images; never "
                               "volumes), docker image prune -a for unused images; check log sizes"))
        elif used >= DISK_WARN_PCT:
            out.append(Finding("host.disk", WARN, summary, cause="the disk is nearly full",
                               fix="docker image prune -a removes images no container uses"))
        else:
            out.append(Finding("host.disk", OK, summary))
    total, avail = f.memory.get("MemTotal"), f.memory.get("MemAvailable")
    if total and avail is not None:
        summary = f"{avail / 1024:.0f} MiB of {total / 1024:.0f} MiB memory available"
        if avail < MEMORY_WARN_KB:
            out.append(Finding("host.memory", WARN, summary,
                               cause="containers may be killed by the kernel's OOM killer (exit code 137)",
                               fix="lower the services' memory limits, add swap, or use a bigger server"))
        else:
            out.append(Finding("host.memory", OK, summary))
    return out


CERTIFICATE_WARN_DAYS = 14  # Caddy renews a 90-day certificate 30 days before it ends: less means renewals fail


def check_proxy(f: HostFacts, config: str, probe: Probe | None = None, now=None) -> list[Finding]:
    """berth's proxy (proxy = true): it runs, publishes the ports, and sends each to a running container,
    and it holds a valid certificate for each of its domains. `config`: its Caddyfile as read from the server
    ("" when there is none); `probe` runs a command there (its certificates and log lines)."""
    from berth.remote.commands import proxy

    proxies = f.by_service().get(proxy.SERVICE, [])
    logs = f"docker logs --tail 50 {proxies[0].state.name.lstrip('/')}" if proxies else ""
    if not proxies:
        return [Finding("proxy.running", FAIL, "berth's proxy is not running",
                        cause="proxy = true, but no deploy has started it here yet, or its container was removed",
                        fix="berth deploy starts it (docs/ROLLOUTS.md)")]
    p = proxies[0].state
    if p.status != "running":
        return [Finding("proxy.running", FAIL, f"berth's proxy is {p.describe()}",
                        cause=p.error or "Caddy exited: a configuration it cannot read, or a port another process holds",
                        fix=f"read `{logs}` on the server; berth deploy writes its configuration again")]
    ports = sorted(port for port, _ in proxies[0].ports)
    out = [Finding("proxy.running", OK, "berth's proxy runs" + (f", on port(s) {', '.join(map(str, ports))}"
                                                               if ports else ""))]
    running = {c.state.name.lstrip("/"): c.state for c in f.containers}
    for name, served in sorted(proxy.serving(config).items()):
        # a recreated service behind a domain is named by its service (compose's DNS name for its container)
        state = running.get(name) or next((c.state for c in f.by_service().get(name, []) if c.state.ready),
                                          next((c.state for c in f.by_service().get(name, [])), None))
        shown = ", ".join(served)
        if state is None or not state.ready:
            out.append(Finding("proxy.upstream", FAIL, f"the proxy sends {shown} to {name}, which is "
                               + ("gone" if state is None else state.describe()),
                               cause="the container that served was removed or stopped after the last deploy",
                               fix="berth deploy (or berth rollback) starts a container and switches the proxy to it"))
        else:
            out.append(Finding("proxy.upstream", OK, f"{shown} → {name} ({state.describe()})"))
    domains = sorted({label[len("https://"):] for labels in proxy.serving(config).values() for label in labels
                      if label.startswith("https://")})
    if domains and probe is not None:
        held = proxy.parse_certificates(probe(proxy.certificates(p.name.lstrip("/"))))
        for domain in domains:
            log = probe(proxy.certificate_log(p.name.lstrip("/"), domain)).strip() if not held.get(domain) else ""
            out.append(check_certificate(domain, held.get(domain, []), log, now))
    return out


def check_certificate(domain: str, pems: list[str], log: str = "", now=None) -> Finding:
    """One domain's certificate in the proxy's storage: there, and not ending within CERTIFICATE_WARN_DAYS."""
    from datetime import datetime, timezone

    from berth.model.certificate import CertificateError, validity

    now = now or datetime.now(timezone.utc)
    ends = []
    for pem in pems:
        try:
            ends.append(validity(pem)[1])
        except CertificateError:
            continue
    if not ends:
        return Finding("proxy.certificate", FAIL, f"{domain}: the proxy holds no certificate for it",
                       cause=("the ACME server has not issued one: " + " | ".join(log.splitlines()[-2:])[:600])
                       if log else "Caddy has not obtained one yet (it orders it when it starts), or the order failed",
                       fix=f"{domain} must resolve to this server, and ports 80 and 443 must reach it from the ACME "
                           "server (a firewall or another proxy in front stops the challenge); read the proxy's "
                           "log (`docker logs` of berth-proxy on the server)")
    end = max(ends)
    days = (end - now).total_seconds() / 86400
    when = end.strftime("%Y-%m-%d")
    if days <= 0:
        return Finding("proxy.certificate", FAIL, f"{domain}: its certificate ended on {when}",
                       cause="Caddy could not renew it: the ACME server refused, or cannot reach the server",
                       fix=f"{domain} must still resolve to this server with ports 80 and 443 open; read the proxy's log")
    if days < CERTIFICATE_WARN_DAYS:
        return Finding("proxy.certificate", WARN, f"{domain}: its certificate ends on {when}, in {days:.0f} day(s)",
                       cause="Caddy renews about 30 days before the end: renewals are failing",
                       fix=f"{domain} must still resolve to this server with ports 80 and 443 open; read the proxy's log")
    return Finding("proxy.certificate", OK, f"{domain}: certificate valid until {when} ({days:.0f} days)")


def published_ports(f: HostFacts) -> dict[int, str]:
    return {port: c.state.service for c in f.containers for port, _ in c.ports}


def _app_port(ports: dict[int, str], exp: Expected) -> int | None:
    """The published port a health URL most likely meant: a service the app's URLs do not point at."""
    backing = {host for host, _ in exp.url_hosts.values()}
    candidates = sorted(p for p, s in ports.items() if s not in backing) or sorted(ports)
    return candidates[0] if candidates else None


def check_ports(f: HostFacts, probe: Probe) -> list[Finding]:
    published = [(c, port, inner) for c in f.containers if c.state.status == "running" for port, inner in c.ports]
    if not published:
        return []
    answers = cmd.split_parallel(probe(cmd.in_parallel([cmd.port_answers(port) for _, port, _ in published])),
                                 len(published))
    out = []
    for (c, port, inner), answer in zip(published, answers):
        if answer.strip().endswith("open"):
            out.append(Finding("ports.published", OK, f"{c.state.service}: port {port} → {inner} answers"))
        else:
            out.append(Finding("ports.published", FAIL, f"{c.state.service} publishes {port} → {inner}, but nothing "
                               "answers on it",
                               cause=f"the app inside listens on another port than {inner.split('/')[0]}, or on "
                               "127.0.0.1 instead of 0.0.0.0",
                               fix="make the app listen on 0.0.0.0 at the container port the `ports:` entry names"))
    return out


def check_health_urls(f: HostFacts, exp: Expected, fetch: Callable[[str], str],
                      server_names: frozenset[str] = frozenset()) -> list[Finding]:
    """`server_names`: how the URL may name the server itself (its address), besides localhost."""
    out = []
    ports = published_ports(f)
    for url in exp.health_urls:
        status = fetch(url)
        if status.isdigit() and 200 <= int(status) < 300:
            out.append(Finding("health.url", OK, f"{url} → {status}"))
            continue
        parts = urlsplit(url)
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            port = None
        local = (parts.hostname or "") in {"localhost", "127.0.0.1", "::1", *server_names}
        listing = ", ".join(f"{p} ({s})" for p, s in sorted(ports.items())) or "none"
        declared = {p: name for name, spec in exp.services.items() for p in spec.get("ports", [])}
        if local and not f.docker_ok:
            cause = "the docker daemon does not answer, so no container serves it"
            fix = "start docker first (see docker.daemon); containers with a restart policy come back with it"
        elif local and port not in ports and port in declared:
            cause = f"{declared[port]} should publish port {port}, but its container is not running"
            fix = f"see the service checks above; berth deploy starts {declared[port]}"
        elif local and port not in ports:
            right = _app_port(ports, exp)
            cause = f"no container publishes port {port}; published ports: {listing}"
            fix = (f"set HEALTH_URL in .env (or health_urls in berth.toml) to "
                   f"{parts.scheme}://{parts.hostname}:{right}{parts.path or '/'}" if right else
                   "publish the app's port in docker-compose.yml (ports:) or fix HEALTH_URL")
        elif status.isdigit() and int(status) == 404:
            cause = f"the app answers on port {port} but has no route {parts.path or '/'}"
            fix = "fix the path in HEALTH_URL, or add the route to the app"
        elif status.isdigit():
            cause = f"the app answers {status}: it runs but reports an error (a dependency down, a bad setting)"
            fix = f"read berth logs {ports.get(port, '')}".rstrip() + " around the time of the request"
        else:
            cause = f"nothing answers at {url} ({status})" + (f"; {ports[port]} publishes that port but is not "
                                                                 "answering" if port in ports else "")
            fix = "check that the service is running (see the service checks above) and the URL's host and port"
        out.append(Finding("health.url", FAIL, f"{url} → {status}", cause=cause, fix=fix))
    return out


# --------------------------------------------------------------------------- running it


def diagnose_host(target: Target, host: Host, exp: Expected, masker, trust_new_host: bool = False,
                  on_command=None, remote_url: str | None = None) -> list[Finding]:
    from berth.deploy.stages.verify import probe_url
    from berth.remote.commands.host import adopts_legacy
    from berth.remote.commands.release import state_dir_rel
    from berth.remote.session import legacy_note, ssh_options
    from berth.remote.transport.ssh import SSHConnection, SSHError

    findings = [check_key_file(host)]
    conn = SSHConnection(host, ssh_options(target, trust_new_host), on_command=on_command, mask=masker)
    try:
        seconds = conn.open()
    except SSHError as exc:
        findings.append(Finding("ssh.connect", FAIL, f"cannot log in to {host.label}",
                                cause=exc.what + (f" ({exc.where})" if exc.where else ""), fix=exc.fix or ""))
        findings.append(Finding("doctor.skipped", SKIP, "the server checks need an SSH connection"))
        return [mask_finding(x, masker) for x in findings]
    try:
        findings.append(Finding("ssh.connect", OK, f"logged in as {host.user or 'your ssh user'} in {seconds:.1f}s"))
        project = target.project
        if project != target.legacy_project and conn.run(
                f"if {adopts_legacy(state_dir_rel(project), state_dir_rel(target.legacy_project))}; then echo legacy; fi",
                timeout=60).out.strip() == "legacy":
            project = target.legacy_project
            findings.append(Finding("project.name", WARN, f"this host runs the app as compose project {project!r}",
                                    cause=legacy_note(target), fix=f"berth keeps deploying it as {project!r}; "
                                    "move it as the cause says, or set project in berth.toml to keep the name"))
        script = cmd.gather(target.app_dir, target.env_file, project, remote_url, exp.env_names,
                            state_dir_rel(project))
        result = conn.run(script, timeout=120)
        facts = parse_gather(result.out, target.app_dir)

        def probe(command: str) -> str:
            r = conn.run(command, timeout=60)
            return r.out + r.err

        findings.append(check_docker(facts))
        findings.append(check_compose(facts))
        findings += check_lock(facts)
        findings += check_repo(facts, target)
        findings += check_env_file(facts, exp, target)
        if exp.problem:
            findings.append(Finding("compose.file", FAIL, "the compose file cannot be read", cause=exp.problem,
                                    fix="berth check shows every problem"))
        if facts.docker_ok and target.engine == "swarm":  # the stack's services and nodes, from the manager
            if host == target.hosts[0]:
                findings += check_swarm(probe, project)
        elif facts.docker_ok:
            findings += check_services(facts, exp, probe, target)
            findings += check_backing_services(facts, exp, probe)
            findings += check_ports(facts, probe)
            if target.proxy:
                from berth.remote.commands.proxy import read_config

                findings += check_proxy(facts, probe(read_config(state_dir_rel(project))), probe)
        else:
            findings.append(Finding("doctor.skipped", SKIP, "container checks skipped: the docker daemon does not answer"))
        findings += check_resources(facts)
        findings += check_health_urls(facts, exp, lambda url: probe_url(conn, url), frozenset({host.address}))
    finally:
        conn.close()
    return [mask_finding(x, masker) for x in findings]


def mask_finding(finding: Finding, masker) -> Finding:
    return Finding(finding.id, finding.status, masker(finding.summary), masker(finding.cause), masker(finding.fix),
                   masker(finding.details))


def run_doctor(target: Target, trust_new_host: bool = False, on_command=None) -> list[dict]:
    from berth.configuration.masker import masker_for
    from berth.errors import BerthError

    if not target.hosts:
        raise BerthError(f"no host is configured for {target.environment}",
                         fix="set SERVER_IP in .env or hosts in berth.toml")
    from berth.model import git as gitlocal

    remote_url = gitlocal.target_remote_url(target)  # a value git would read as an option stops here
    exp = expected_from(target)
    masker = masker_for(target)
    from berth.remote.fanout import per_host

    def one(host: Host) -> dict:
        findings = diagnose_host(target, host, for_host(exp, target, host), masker, trust_new_host, on_command,
                                 remote_url)
        return {"host": host.label, "environment": target.environment,
                "ok": not any(x.status == FAIL for x in findings), "checks": [asdict(x) for x in findings]}

    return per_host(target.hosts, one)  # every host at once: a fleet's doctor takes one host's time


MARKS = {OK: "ok  ", WARN: "warn", FAIL: "FAIL", SKIP: "skip"}


def check_swarm(probe: Callable[[str], str], project: str) -> list[Finding]:
    """A swarm stack, from its manager: nodes that are down or drained, services that do not run their
    replicas (or that swarm rolled back), and the errors of their failing tasks."""
    from berth.remote.engines import swarm

    state, manager, _ = swarm.parse_node_state(probe(swarm.node_state()))
    if state != "active" or not manager:
        return [Finding("swarm.manager", FAIL, f"this engine is not a swarm manager (swarm state {state or 'unknown'})",
                        fix="put a manager first in hosts (docker node ls on one lists them)")]
    out = []
    nodes = swarm.parse_nodes(probe(swarm.nodes()))
    down = [n for n in nodes if n.status != "Ready" or n.availability != "Active"]
    out.append(Finding("swarm.nodes", WARN if down else OK,
                       f"{len(nodes) - len(down)} of {len(nodes)} nodes ready and active",
                       cause="; ".join(f"node {n.id[:12]} is {n.status.lower()}, {n.availability.lower()}"
                                       for n in down),
                       fix="docker node ls on the manager; bring the node back (its engine, its network) or "
                           "docker node rm it" if down else ""))
    services = swarm.parse_services(probe(swarm.inspect_services(project)), project)
    tasks = swarm.parse_tasks(probe(swarm.tasks(project)), services)
    if not services:
        out.append(Finding("swarm.service", FAIL, f"no service of the stack {project} runs",
                           fix="berth deploy"))
    for s in services:
        state = swarm.convergence([s], tasks, {s.name: s.image})
        errors = sorted({t.error for t in tasks if t.service == s.name and t.error})
        if state.done:
            out.append(Finding("swarm.service", OK, f"{s.name}: every replica runs {s.image}"))
        else:
            out.append(Finding("swarm.service", FAIL, "; ".join(state.gave_up or state.waiting),
                               cause="; ".join(errors[:3]),
                               fix="berth status shows its tasks; docker service ps --no-trunc "
                                   f"{project}_{s.name} on the manager shows why they stop"))
    return out


def fleet_summary(rows: list[dict]) -> list[str]:
    """Several hosts: one line each, the worst first (most failures, then warnings), before the details."""
    if len(rows) < 2:
        return []

    def counts(row) -> tuple[int, int]:
        return (sum(x["status"] == FAIL for x in row["checks"]), sum(x["status"] == WARN for x in row["checks"]))

    out = [f"fleet: {len(rows)} hosts"]
    for row in sorted(rows, key=lambda r: tuple(-n for n in counts(r))):  # (stable: the hosts' order otherwise)
        fails, warns = counts(row)
        first = next((x for x in row["checks"] if x["status"] == (FAIL if fails else WARN)), None)
        mark = MARKS[FAIL] if fails else MARKS[WARN] if warns else MARKS[OK]
        what = f"{fails} failure(s), {warns} warning(s)" + (f" — {first['id']}: {first['summary']}" if first else "")
        out.append(f"  {mark}  {row['host']:<20} {what if fails or warns else 'all checks ok'}")
    return [*out, ""]


def render(rows: list[dict], verbose: bool = False) -> str:
    out = fleet_summary(rows)
    for row in rows:
        out.append(f"{row['host']} ({row['environment']})")
        for x in row["checks"]:
            if x["status"] == OK and not verbose and x["id"] not in ("ssh.connect", "docker.daemon"):
                continue
            out.append(f"  {MARKS[x['status']]}  {x['id']:<18} {x['summary']}")
            if x["status"] in (FAIL, WARN):
                if x["cause"]:
                    out.append(f"        cause: {x['cause']}")
                if x["fix"]:
                    out.append(f"        fix:   {x['fix']}")
            if x["details"] and x["status"] in (FAIL, WARN):
                out += ["        | " + line for line in x["details"].splitlines()[-LOG_LINES:]]
        fails = sum(x["status"] == FAIL for x in row["checks"])
        warns = sum(x["status"] == WARN for x in row["checks"])
        oks = sum(x["status"] == OK for x in row["checks"])
        out.append(f"  {oks} ok, {warns} warning(s), {fails} failure(s)" + ("" if verbose else " (-v lists the ok checks)"))
        out.append("")
    return "\n".join(out).rstrip() + "\n"
