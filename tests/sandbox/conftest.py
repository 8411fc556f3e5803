"""Fixtures for tests against the sandbox: real sshd, real git remote, real docker engines in network
namespaces. The sandbox starts once per test session and stops at its end."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from berth import sandbox as sb
from tests.helpers import GIT_ISOLATION

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "app"
SECRET = "tk-9f3b1c2d8e7a6f5b4c3d2e1f0a9b8c7d"  # SECRET_KEY: must never show up anywhere but the container
GIT_ENV = GIT_ISOLATION  # one git isolation for every tier: no user or system config, a fixed identity
_ports = itertools.count(18080)
_names = itertools.count(1)


@pytest.fixture(scope="session")
def sandbox():
    missing = sb.missing_prerequisites()
    if missing:
        pytest.fail("sandbox prerequisites missing (run scripts/setup.sh): " + "; ".join(missing))
    box = sb.up(hosts=3, compose_v1=(2,))  # host 2 is an older server with Compose v1 only; 3 for fleets
    yield box
    if not os.environ.get("BERTH_KEEP_SANDBOX"):  # keep it to look around after a failure
        sb.down()


def run(argv, cwd=None, env=None, input=None, check=True, timeout=300) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, cwd=cwd, env=env, input=input, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{argv} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@dataclass
class Server:
    """One sandbox host, seen from the test (root on the same machine): files, docker, sshd log."""

    host: sb.SandboxHost

    def docker(self, *args, check=True) -> str:
        return run(["docker", "-H", self.host.docker_host, *args], check=check).stdout

    def home(self) -> Path:
        return Path(self.host.dir) / "home"

    def ssh_logins(self) -> int:
        log = self.host.sshd_log
        return log.read_text(errors="replace").count("Accepted publickey") if log.exists() else 0

    def containers(self, project: str) -> dict[str, tuple[str, str]]:
        """service → (container id, started at)"""
        ids = self.docker("ps", "-aq", "--filter", f"label=com.docker.compose.project={project}").split()
        if not ids:
            return {}
        out = self.docker("inspect", "--format",
                          '{{index .Config.Labels "com.docker.compose.service"}} {{.Id}} {{.State.StartedAt}}', *ids)
        return {svc: (cid, started) for svc, cid, started in (line.split() for line in out.splitlines())}

    def exec(self, container: str, *cmd) -> bytes:
        return subprocess.run(["docker", "-H", self.host.docker_host, "exec", container, *cmd],
                              capture_output=True, check=True).stdout


@dataclass
class App:
    """A fresh clone of the example app with its own git remote, app dir, compose project and port."""

    dir: Path
    server: Server
    name: str
    port: int
    remote: Path
    env: dict = field(default_factory=dict)

    @property
    def app_dir(self) -> Path:
        return self.server.home() / self.name

    @property
    def state_dir(self) -> Path:
        return self.server.home() / ".berth" / self.name

    def berth(self, *args, check=False, input=None, env=None, timeout=300) -> subprocess.CompletedProcess:
        full_env = {**os.environ, **GIT_ENV, "NO_COLOR": "1", **(env or {})}
        return run([sys.executable, "-m", "berth", *args], cwd=self.dir, env=full_env, input=input,
                   check=check, timeout=timeout)

    def git(self, *args) -> str:
        return run(["git", *args], cwd=self.dir, env={**os.environ, **GIT_ENV}).stdout.strip()

    def commit(self, message: str, **files: str) -> str:
        for rel, text in files.items():
            path = self.dir / rel.replace("__", "/")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        self.git("add", "-A")
        self.git("commit", "-qm", message)
        return self.git("rev-parse", "HEAD")

    def push(self) -> None:
        self.git("push", "-q", "origin", "HEAD:refs/heads/main")

    def write_dotenv(self, **overrides) -> None:
        values = {**self.env, **overrides}
        (self.dir / ".env").write_text("".join(f"{k}={v}\n" for k, v in values.items() if v is not None))

    def url(self, path: str) -> str:
        return f"http://{self.server.host.address}:{self.port}{path}"

    def snapshot(self) -> dict:
        """Everything a refused deploy must leave alone on the server."""
        files = {}
        for base in (self.app_dir, self.state_dir):
            if base.exists():
                for p in sorted(base.rglob("*")):
                    if p.is_file() and "/.git/" not in str(p) and "/.git" != str(p)[-5:]:
                        files[str(p)] = p.read_bytes()
        return {"files": files, "head": self.server_head(), "containers": self.server.containers(self.name)}

    def server_git(self, *args) -> str:
        # the checkout belongs to the deploy user; root reads it with safe.directory
        return run(["git", "-c", "safe.directory=*", "-C", str(self.app_dir), *args], check=False).stdout.strip()

    def server_head(self) -> str | None:
        return self.server_git("rev-parse", "HEAD") if (self.app_dir / ".git").exists() else None


def default_app_env(port: int) -> str:
    return (
        "APP_ENV=staging\n"
        f"WEB_PORT={port}\n"
        f"SECRET_KEY={SECRET}\n"
        "DATABASE_URL=postgres://app:pw-Zq8x7c6v5b4n@db:5432/app\n"
        "OPENAI_API_KEY=sk-test-0123456789abcdef\n"
        'GREETING="Hello from berth"\n'
    )


@pytest.fixture
def app(sandbox, tmp_path, request) -> App:
    server = Server(sandbox.hosts[0])
    n = next(_names)
    name = f"app{n}-{request.node.name[5:25].replace('_', '-').strip('-')}".lower()
    port = next(_ports)
    remote = Path(sandbox.root) / "remote" / f"{name}.git"
    run(["git", "init", "-q", "--bare", "--initial-branch=main", str(remote)])
    d = tmp_path / "repo"
    shutil.copytree(EXAMPLE, d)
    a = App(d, server, name, port, remote)
    a.git("init", "-q", "-b", "main")
    a.git("remote", "add", "origin", str(remote))
    a.commit("example app")
    (d / ".env.docker").write_text(default_app_env(port))
    a.env = {
        "SERVER_IP": server.host.address,
        "SERVER_USER": server.host.user,
        "PEM_KEY_PATH": sandbox.key,
        "SSH_KNOWN_HOSTS": sandbox.known_hosts,
        "ENVIRONMENT": "staging",
        "APP_DIR": f"~/{name}",
        "HEALTH_URL": f"{a.url('/health')},{a.url('/ready')}",
        "VERIFY_TIMEOUT": "60",
    }
    a.write_dotenv()
    yield a
    # free the port and the engine for the next test; volumes stay, as they would on a real server
    ids = server.docker("ps", "-aq", "--filter", f"label=com.docker.compose.project={name}").split()
    if ids:
        server.docker("rm", "-f", *ids, check=False)
    networks = server.docker("network", "ls", "-q", "--filter", f"label=com.docker.compose.project={name}").split()
    if networks:
        server.docker("network", "rm", *networks, check=False)
