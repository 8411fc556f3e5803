"""A server as the deploy path sees it, in memory: the table behind a ScriptedTransport.

Each row matches a script that berth's own command functions build (with this host's app dir, state
dir and compose project) and answers as a server would, keeping state between calls: the checkout's
commit, the env file, the containers, the lock, the release records and the audit log. A test
changes one thing (a build that fails, a hook that fails, a container that never gets healthy, a
lost connection at some script) and asserts what berth did, through `conn.calls` and this state.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field

from berth.remote.commands import host as host_commands
from berth.remote.commands import lock as lock_commands
from berth.remote.commands import release as release_commands
from berth.remote.engines.compose import Compose, in_dir
from berth.remote.transport.scripted import ScriptedTransport

HOME = "/home/deploy"
SYNC_TARGET = re.compile(r"target=\$\(git rev-parse -q --verify '([0-9a-f]+)\^\{commit\}'\)")
RECORD_ID = re.compile(r'\$d/releases/"(\S+?)\.json\.tmp')
RESTORE_ENV = re.compile(r"\[ -f '?[^' ]*/releases/(\S+?)\.env'? \] \|\| exit 3")
HISTORY = re.compile(r"^tail -n (\d+) '?\S*/history\.jsonl")


@dataclass
class Container:
    service: str
    image_id: str
    status: str = "running"
    health: str | None = "healthy"
    id: str = ""

    def inspect_line(self, project: str) -> str:
        state = {"Status": self.status, "Running": self.status == "running", "ExitCode": 0}
        if self.health:
            state["Health"] = {"Status": self.health, "Log": []}
        return json.dumps({"service": self.service, "name": f"/{project}-{self.service}-1", "id": self.id,
                           "state": state, "restarts": 0, "policy": "unless-stopped",
                           "image": f"{project}-{self.service}", "image_id": self.image_id})


@dataclass
class FakeHost:
    project: str = "app"
    services: tuple[str, ...] = ("web",)
    compose_files: tuple[str, ...] = ("docker-compose.yml",)
    env_file: str = ".env.docker"
    app_dir: str = f"{HOME}/app"
    only: tuple[str, ...] = ()  # the services of its roles (berth.toml): compose up/build name them
    # what fails: exit codes of steps, and services whose new containers never get healthy
    build_exit: int = 0
    up_exit: int = 0
    hook_exit: int = 0
    record_exit: int = 0
    unhealthy: set[str] = field(default_factory=set)
    lose_at: object = None  # a ScriptedTransport match: the connection drops when such a script runs
    can_reconnect: bool = True
    # the server's state
    head: str | None = None
    env: bytes | None = None
    containers: dict[str, Container] = field(default_factory=dict)
    lock: dict | None = None
    history: list[dict] = field(default_factory=list)
    current: dict | None = None
    env_copies: dict[str, bytes] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)  # shipped secret and config files, by path in the app dir
    file_copies: dict[str, dict[str, bytes]] = field(default_factory=dict)  # release id → its files
    recreated: list[tuple[str, ...]] = field(default_factory=list)  # services of each `up --force-recreate`
    audit: list[dict] = field(default_factory=list)
    built: list[str] = field(default_factory=list)  # commits built
    ups: int = 0
    conn: ScriptedTransport | None = None

    @property
    def state_dir(self) -> str:
        return f"{HOME}/{release_commands.state_dir_rel(self.project)}"

    @property
    def compose(self) -> Compose:
        return Compose("v2", self.project, self.compose_files, self.env_file, services=self.only)

    def transport(self, host) -> ScriptedTransport:
        """The factory run_deploy and run_rollback take: one connection to this host."""
        self.conn = ScriptedTransport(host, self.table(), lose_at=self.lose_at, can_reconnect=self.can_reconnect)
        return self.conn

    def events(self) -> list[str]:
        return [e["event"] for e in self.audit]

    # ------------------------------------------------------------------ the table

    def rows(self) -> list[tuple[str, object, object]]:
        """(what the script is, its match, the answer), in the order they are tried."""
        sd, app, compose = self.state_dir, self.app_dir, self.compose
        return [
            ("facts", host_commands.facts(release_commands.state_dir_rel(self.project)), self._facts),
            ("lock", lock_commands.acquire(sd), self._acquire),
            ("unlock", lambda s: "lock.break" in s, self._release_lock),
            ("history", HISTORY, self._history),
            ("preflight", lambda s: "DockerRootDir" in s, (0, "disk /var/lib/docker 10485760\n", "")),
            ("sync", SYNC_TARGET, self._sync),
            ("env", lambda s: f"{app}/{self.env_file}.berth-tmp" in s and "cat > " in s, self._ship_env),
            ("file", lambda s: "/replaced/" in s and ".berth-tmp" in s and "cat > " in s, self._ship_file),
            ("build", in_dir(app, compose.build()), self._build),
            ("recreate", lambda s: " --force-recreate " in s, self._recreate),
            ("up", in_dir(app, compose.up()), self._up),
            ("inspect", compose.inspect_containers(), self._inspect),
            ("logs", lambda s: " logs --no-color " in s, (0, "the app's last log line\n", "")),
            ("hook", lambda s: "export BERTH_RELEASE=" in s, lambda s, i: (self.hook_exit, "", "hook output\n")),
            ("record", RECORD_ID, self._record),
            ("keep", lambda s: "@@keep" in s, (0, "@@keep=0\n@@prune=0\n@@env=0\n", "")),
            ("audit", release_commands.audit(sd), self._audit),
            ("restore-env", RESTORE_ENV, self._restore_env),
            ("restore-images", lambda s: "docker image inspect" in s or s == "", (0, "", "")),
        ]

    def table(self) -> list:
        return [(match, answer) for _, match, answer in self.rows()]

    def sent(self) -> list[str]:
        """What each script the connection ran was, in order (the names of rows())."""
        from berth.remote.transport.scripted import matches

        rows = self.rows()
        return [next(name for name, match, _ in rows if matches(match, script)) for script in self.conn.scripts()]

    def _facts(self, script, stdin):
        out = f"home={HOME}\nuser=deploy\ngit=git version 2.39.5\ncompose=v2 2.26.1\ndocker=20.10.24\n"
        out += host_commands.FACTS_SEPARATOR + "\n"
        return 0, out + (json.dumps(self.current) + "\n" if self.current else ""), ""

    def _acquire(self, script, stdin):
        if self.lock is not None:
            return lock_commands.HELD, json.dumps(self.lock) + "\n", ""
        self.lock = json.loads(stdin)
        return 0, "acquired\n", ""

    def _release_lock(self, script, stdin):
        if self.lock is None:
            return 0, "gone\n", ""
        if script == lock_commands.release(self.state_dir, self.lock["token"]):
            self.lock = None
            return 0, "removed\n", ""
        return lock_commands.NOT_OURS, json.dumps(self.lock) + "\n", ""

    def _history(self, script, stdin):
        limit = int(HISTORY.search(script).group(1))
        return 0, "".join(json.dumps(r) + "\n" for r in self.history[-limit:]), ""

    def _sync(self, script, stdin):
        previous, self.head = self.head, SYNC_TARGET.search(script).group(1)
        return 0, (f"previous={previous}\n" if previous else "cloned=1\n") + f"head={self.head}\n", ""

    def _ship_env(self, script, stdin):
        self.env = stdin
        return 0, "", ""

    def _ship_file(self, script, stdin):
        rel = re.search(r"cat > '?" + re.escape(self.app_dir) + r"/(.+?)\.berth-tmp", script).group(1)
        self.files[rel] = stdin
        return 0, "", ""

    def _recreate(self, script, stdin):
        services = tuple(script.split(" --force-recreate ", 1)[1].split())
        self.recreated.append(services)
        return 0, "", ""

    def _build(self, script, stdin):
        if self.build_exit:
            return self.build_exit, "", "failed to solve: process did not complete successfully\n"
        self.built.append(self.head)
        return 0, "", ""

    def _up(self, script, stdin):
        self.ups += 1
        if self.up_exit:
            self.containers = {}  # compose removed the old containers and could not start the new ones
            return self.up_exit, "", "Bind for 0.0.0.0:8080 failed: port is already allocated\n"
        for service in self.services:
            bad = service in self.unhealthy and self.unhealthy_commit in (None, self.head)
            image_id = "sha256:" + hashlib.sha256(f"{self.head} {service}".encode()).hexdigest()
            self.containers[service] = Container(service, image_id,
                                                 health="unhealthy" if bad else "healthy",
                                                 id=f"c{self.ups}{service}")
        return 0, "", ""

    unhealthy_commit: str | None = None  # the commit whose containers are unhealthy (default: any)

    def _inspect(self, script, stdin):
        return 0, "".join(c.inspect_line(self.project) + "\n" for c in self.containers.values()), ""

    def _record(self, script, stdin):
        if self.record_exit:
            return self.record_exit, "", "No space left on device\n"
        record = json.loads(stdin)
        self.history.append(record)
        if "current.json.tmp" in script:
            self.current = record
        if "cp " in script and self.env is not None:
            self.env_copies[record["id"]] = self.env
            self.file_copies[record["id"]] = {rel: self.files[rel] for rel in record.get("files") or {}}
        return 0, "", ""

    def _audit(self, script, stdin):
        self.audit.append(json.loads(stdin))
        return 0, "", ""

    def _restore_env(self, script, stdin):
        release_id = RESTORE_ENV.search(script).group(1)
        if release_id not in self.env_copies:
            return 3, "", ""
        self.env = self.env_copies[release_id]
        self.files.update(self.file_copies.get(release_id, {}))
        return 0, "", ""
