"""From an app with no deployment files to a healthy deploy: `berth init` on a FastAPI app that uses
PostgreSQL and Redis, `berth secrets generate`, `berth check`, `berth deploy` — on a sandbox server,
with the generated compose file, Dockerfile and env files unchanged. Then doctor on the real stack:
clean when healthy, and the right cause when the database is cut off from the app.

The sandbox cannot pull images, so python:3.12-slim, postgres:16.4-alpine and redis:7.4-alpine are
local stand-ins built from Debian (berth/sandbox/images.py); pip in them installs from a wheelhouse.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from berth.sandbox.proxy_image import import_proxy_image
from tests.sandbox.conftest import GIT_ENV, Server, run

pytestmark = pytest.mark.timeout(900)

REQUIREMENTS = "fastapi==0.115.0\nuvicorn==0.32.1\npsycopg[binary]==3.2.3\nredis==5.2.0\n"
MAIN = '''\
import os

import psycopg
import redis
from fastapi import FastAPI, Response

app = FastAPI()
DATABASE_URL = os.environ["DATABASE_URL"]
REDIS_URL = os.environ["REDIS_URL"]
SECRET_KEY = os.environ["SECRET_KEY"]


@app.get("/health")
def health():
    return {"ok": True}


@app.get("/ready")
def ready(response: Response):
    try:
        with psycopg.connect(DATABASE_URL, connect_timeout=3) as conn:
            conn.execute("select 1")
        redis.Redis.from_url(REDIS_URL, socket_timeout=3).ping()
    except Exception as exc:
        response.status_code = 503
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": True}


@app.post("/visits")
def visit():
    with psycopg.connect(DATABASE_URL) as conn:
        conn.execute("create table if not exists visits (id serial primary key, at timestamptz default now())")
        conn.execute("insert into visits default values")
        count = conn.execute("select count(*) from visits").fetchone()[0]
    cached = redis.Redis.from_url(REDIS_URL).incr("visits")
    return {"visits": count, "cached": cached}
'''
PORT = 18990


def berth(root: Path, *args, check=True, timeout=600):
    env = {**os.environ, **GIT_ENV, "NO_COLOR": "1"}
    return run([sys.executable, "-m", "berth", *args], cwd=root, env=env, check=check, timeout=timeout)


def git(root: Path, *args):
    return run(["git", *args], cwd=root, env={**os.environ, **GIT_ENV}).stdout.strip()


def env_values(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if line and not line.startswith("#"))


@pytest.fixture(scope="module")
def shop(sandbox, tmp_path_factory):
    """The FastAPI sample, initialised by berth and deployed; yields (repo, server, project)."""
    from berth.sandbox.images import import_stack_images

    host = sandbox.hosts[0]
    import_stack_images(host.docker_host)
    server = Server(host)
    root = tmp_path_factory.mktemp("fastapi") / "shop"
    (root / "app").mkdir(parents=True)
    (root / "requirements.txt").write_text(REQUIREMENTS)
    (root / "app" / "__init__.py").write_text("")
    (root / "app" / "main.py").write_text(MAIN)
    remote = Path(sandbox.root) / "remote" / "shop.git"
    run(["git", "init", "-q", "--bare", "--initial-branch=main", str(remote)])
    git(root, "init", "-q", "-b", "main")
    git(root, "remote", "add", "origin", str(remote))

    init = berth(root, "init")
    assert "PostgreSQL" in init.stdout and "Redis" in init.stdout
    # the user's part, as docs/DEPLOYMENT.md says: fill .env from the example, generate the secrets
    settings = {**env_values(root / ".env.example"),
                "SERVER_IP": host.address, "SERVER_USER": host.user, "PEM_KEY_PATH": sandbox.key,
                "ENVIRONMENT": "staging", "HEALTH_URL": f"http://{host.address}:{PORT}/health,"
                                                        f"http://{host.address}:{PORT}/ready"}
    settings["SSH_KNOWN_HOSTS"] = sandbox.known_hosts  # the sandbox's host keys, not ~/.ssh/known_hosts
    assert settings["BERTH_PROXY"] == "true"  # init turns berth's proxy on: start-first deploys
    # the sandbox cannot pull the official proxy image (pinned by digest): its stand-in, by name
    settings["BERTH_PROXY_IMAGE"] = import_proxy_image(host.docker_host)
    (root / ".env").write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
    with open(root / ".env.example", "a") as example:  # as berth check's key-parity fix says
        example.write("\n# known_hosts file to verify the servers with (empty: ~/.ssh/known_hosts)\nSSH_KNOWN_HOSTS=\n"
                      "\n# the proxy's image (empty: the official one)\nBERTH_PROXY_IMAGE=\n")
    berth(root, "secrets", "generate")
    docker_env = (root / ".env.docker").read_text().replace("APP_PORT=8000", f"APP_PORT={PORT}")
    (root / ".env.docker").write_text(docker_env)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "FastAPI app with berth init's deployment files")
    check = berth(root, "check", "--offline")
    assert "0 errors, 0 warnings" in check.stdout, check.stdout
    deployed = berth(root, "deploy", "--push", "--json", check=False)
    assert deployed.returncode == 0, deployed.stdout[-4000:] + deployed.stderr[-4000:]
    yield root, server, root.name
    ids = server.docker("ps", "-aq", "--filter", "label=com.docker.compose.project=shop").split()
    if ids:
        server.docker("rm", "-f", *ids, check=False)
    networks = server.docker("network", "ls", "-q", "--filter", "label=com.docker.compose.project=shop").split()
    if networks:
        server.docker("network", "rm", *networks, check=False)


def get(url: str, data: bytes | None = None) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def test_init_sample_deploys_healthy_and_really_uses_postgres_and_redis(shop, sandbox):
    root, server, project = shop
    states = server.docker("ps", "-a", "--filter", f"label=com.docker.compose.project={project}",
                           "--format", "{{.Label \"com.docker.compose.service\"}} {{.Status}}").splitlines()
    assert sorted(s.split()[0] for s in states) == ["app", "berth-proxy", "db", "redis"]
    assert all("(healthy)" in s for s in states if not s.startswith("berth-proxy ")), states
    base = f"http://{sandbox.hosts[0].address}:{PORT}"
    assert get(base + "/ready") == (200, {"ok": True})
    first, second = get(base + "/visits", b""), get(base + "/visits", b"")
    assert first[0] == second[0] == 200
    assert second[1]["visits"] == first[1]["visits"] + 1 and second[1]["cached"] == first[1]["cached"] + 1
    # the app runs as the generated Dockerfile's non-root user
    assert server.docker("exec", f"{project}-app-1", "id", "-u").strip() == "10001"
    # no secret on any process's command line on the server (redis gets its password on stdin)
    secrets = env_values(root / ".env.docker")
    procs = subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True).stdout
    for key in ("POSTGRES_PASSWORD", "REDIS_PASSWORD", "SECRET_KEY"):
        assert secrets[key] not in procs, key


def test_doctor_is_clean_on_the_healthy_stack(shop):
    root, _, _ = shop
    proc = berth(root, "doctor", "--json", check=False)
    rows = json.loads(proc.stdout)
    checks = rows[0]["checks"]
    assert proc.returncode == 0, [c for c in checks if c["status"] == "fail"]
    reached = {c["id"]: c["summary"] for c in checks if c["id"] in ("db.reachable", "redis.ping")}
    assert "reaches PostgreSQL at db:5432" in reached["db.reachable"]
    assert "reaches Redis at redis:6379" in reached["redis.ping"]


def test_doctor_names_a_database_cut_off_from_the_app(shop):
    root, server, project = shop
    network, db = f"{project}_backend", f"{project}-db-1"
    server.docker("network", "disconnect", network, db)
    try:
        proc = berth(root, "doctor", "--json", check=False)
        assert proc.returncode == 1
        secrets = env_values(root / ".env.docker")
        assert not any(secrets[k] in proc.stdout for k in ("POSTGRES_PASSWORD", "REDIS_PASSWORD", "SECRET_KEY"))
        checks = json.loads(proc.stdout)[0]["checks"]
        [finding] = [c for c in checks if c["id"] == "db.reachable" and c["status"] == "fail"]
        assert "app cannot reach PostgreSQL at db:5432" in finding["summary"]
        assert "shares no network with app" in finding["cause"] and network in finding["cause"]
        assert "--force-recreate db" in finding["fix"]
        # /ready fails too (503, or a timeout while the app waits on the name db); /health still answers
        [ready] = [c for c in checks if c["id"] == "health.url" and c["status"] == "fail"]
        assert "/ready → " in ready["summary"]
        assert [c for c in checks if c["id"] == "redis.ping"][0]["status"] == "ok"
    finally:
        server.docker("network", "connect", "--alias", "db", network, db)
    proc = berth(root, "doctor", "--json", check=False)
    assert proc.returncode == 0, proc.stdout[-3000:]


def test_doctor_names_a_wrong_redis_password(shop):
    """The app's REDIS_URL edited on the server and the app recreated by hand: Redis refuses it."""
    root, server, project = shop
    home = Path(server.host.dir) / "home" / project
    env_file = home / ".env.docker"
    original = env_file.read_bytes()
    good = env_values(root / ".env.docker")["REDIS_PASSWORD"]
    env_file.write_text(original.decode().replace(f"redis://:{good}@", "redis://:not-the-password@"))
    # by hand as docs/ROLLOUTS.md says: with berth's proxy's override, which takes the app's port
    compose = ["docker", "compose", "--project-name", project, "--file", f"{home}/docker-compose.yml",
               "--file", f"{home}/../.berth/{project}/proxy/compose.yml", "--env-file", f"{home}/.env.docker"]
    env = {**os.environ, "DOCKER_HOST": server.host.docker_host}
    try:
        subprocess.run([*compose, "up", "-d", "--no-deps", "app"], cwd=home, env=env, check=True,
                       capture_output=True, timeout=180)
        proc = berth(root, "doctor", "--json", check=False)
        assert proc.returncode == 1
        assert good not in proc.stdout and "not-the-password" not in proc.stdout
        checks = json.loads(proc.stdout)[0]["checks"]
        [finding] = [c for c in checks if c["id"] == "redis.ping"]
        assert finding["status"] == "fail"
        assert "Redis refused the credentials in REDIS_URL" in finding["cause"]
        assert "REDIS_PASSWORD" in finding["fix"]
        # the server's env file no longer matches the one berth shipped
        assert [c for c in checks if c["id"] == "env.file"][0]["status"] == "warn"
        assert [c for c in checks if c["id"] == "db.reachable"][0]["status"] == "ok"
    finally:
        env_file.write_bytes(original)
        subprocess.run([*compose, "up", "-d", "--no-deps", "app"], cwd=home, env=env, check=True,
                       capture_output=True, timeout=180)
