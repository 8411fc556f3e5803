"""`berth doctor` against real faults injected on a sandbox server.

Each test deploys the example app healthy, breaks one thing the way it breaks in real life, and
asserts that doctor fails the right check and names the cause and the fix, without printing a
secret. (Faults that need a database or Redis are in test_init_fastapi.py, which runs the real ones.)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from berth import sandbox as sb
from berth.errors import NEEDS_A_PERSON
from tests.sandbox.conftest import SECRET

pytestmark = pytest.mark.timeout(600)


def deploy(app, *extra):
    proc = app.berth("deploy", "--push", *extra)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def doctor(app, *args, env=None):
    """Run doctor --json; return (exit code, {check id: [findings]}, the whole output)."""
    proc = app.berth("doctor", "--json", *args, env=env)
    out = proc.stdout + proc.stderr
    assert SECRET not in out and "pw-Zq8x7c6v5b4n" not in out and "Traceback" not in out
    rows = json.loads(proc.stdout)
    by_id: dict[str, list[dict]] = {}
    for finding in rows[0]["checks"]:
        by_id.setdefault(finding["id"], []).append(finding)
    return proc.returncode, by_id, out


def failed(by_id, check_id):
    return [f for f in by_id.get(check_id, []) if f["status"] == "fail"]


def fail_ids(by_id):
    return {i for i, fs in by_id.items() if any(f["status"] == "fail" for f in fs)}


def compose_on_server(app, *args):
    """What a person does by hand on the server: docker compose in the app directory."""
    d = str(app.app_dir)
    env = {**os.environ, "DOCKER_HOST": app.server.host.docker_host}
    subprocess.run(["docker", "compose", "--project-name", app.name, "--file", f"{d}/docker-compose.yml",
                    "--env-file", f"{d}/.env.docker", *args], cwd=d, env=env, check=True, capture_output=True,
                   timeout=180)


def test_healthy_deploy_passes_every_check_except_the_missing_database(app):
    deploy(app)
    code, by_id, out = doctor(app)
    # the example app's DATABASE_URL names a `db` service that the example does not run
    assert fail_ids(by_id) == {"db.reachable"}, out
    assert "not a service in the compose file" in failed(by_id, "db.reachable")[0]["cause"]
    for check in ("ssh.key", "ssh.connect", "docker.daemon", "docker.compose", "repo.cloned", "repo.remote",
                  "env.file", "service.running", "service.env", "ports.published", "host.disk", "host.memory",
                  "health.url"):
        assert by_id[check] and all(f["status"] == "ok" for f in by_id[check]), (check, by_id[check])
    assert code == 1
    text = app.berth("doctor")
    assert "FAIL  db.reachable" in text.stdout and "fix:" in text.stdout


def test_stopped_container(app):
    deploy(app)
    app.server.docker("stop", f"{app.name}-web-1")
    _, by_id, out = doctor(app)
    [finding] = failed(by_id, "service.stopped")
    assert finding["summary"].startswith("web ")
    assert "stopped" in finding["cause"] and "up -d web" in finding["fix"]
    # the health URL's failure points at the same service
    assert "web publishes that port but is not answering" in failed(by_id, "health.url")[0]["cause"]


def test_crash_looping_container_shows_its_last_log_lines(app):
    deploy(app)
    compose = (app.dir / "docker-compose.yml").read_text().replace(
        "    build: ./web\n",
        "    build: ./web\n    command: [\"sh\", \"-c\", \"echo 'fatal: cannot bind queue socket' >&2; exit 3\"]\n", 1)
    app.commit("web crashes at start", **{"docker-compose.yml": compose})
    proc = app.berth("deploy", "--push", "--no-rollback", "--timeout", "6")
    assert proc.returncode == NEEDS_A_PERSON  # --no-rollback: the failed release stays
    _, by_id, out = doctor(app)
    [finding] = failed(by_id, "service.crashloop")
    assert finding["summary"].startswith("web is crash-looping")
    assert "restarted" in finding["summary"]
    assert "fatal: cannot bind queue socket" in finding["details"]
    assert "berth rollback" in finding["fix"]


def test_variable_missing_inside_the_container(app):
    deploy(app)
    env_file = app.app_dir / ".env.docker"
    # someone edits the server's copy and recreates the containers by hand
    env_file.write_text("".join(line + "\n" for line in env_file.read_text().splitlines()
                                if not line.startswith("GREETING=")))
    compose_on_server(app, "up", "-d")
    _, by_id, out = doctor(app)
    missing = failed(by_id, "service.env")
    assert {f["summary"].split()[0] for f in missing} == {"web", "worker"}
    assert all("GREETING" in f["summary"] and "has no GREETING" in f["cause"] for f in missing)
    assert all(f["fix"].startswith("berth deploy") for f in missing)
    assert "GREETING" in failed(by_id, "env.file")[0]["summary"]
    # and the fix it names works
    deploy(app)
    _, by_id, _ = doctor(app)
    assert not failed(by_id, "service.env") and not failed(by_id, "env.file")


def test_wrong_health_url_port(app):
    deploy(app)
    wrong = app.port + 1
    app.write_dotenv(HEALTH_URL=f"http://localhost:{wrong}/health")
    _, by_id, out = doctor(app)
    [finding] = failed(by_id, "health.url")
    assert f"no container publishes port {wrong}" in finding["cause"]
    assert f"{app.port} (web)" in finding["cause"]
    assert f"http://localhost:{app.port}/health" in finding["fix"]


def test_repo_missing_on_the_server(app):
    deploy(app)
    moved = app.app_dir.with_name(app.app_dir.name + ".moved")
    app.app_dir.rename(moved)
    try:
        _, by_id, out = doctor(app)
        [finding] = failed(by_id, "repo.cloned")
        assert "does not exist on the server" in finding["summary"]
        assert "removed or moved" in finding["cause"]
        assert finding["fix"].startswith("berth deploy") and "still run" in finding["fix"]
        # the remote is still checked, from the URL berth would clone
        assert by_id["repo.remote"][0]["status"] == "ok"
    finally:
        moved.rename(app.app_dir)


def test_key_file_readable_by_others(app, tmp_path):
    deploy(app)
    key = tmp_path / "loose.pem"
    shutil.copy(app.env["PEM_KEY_PATH"], key)
    key.chmod(0o644)
    app.write_dotenv(PEM_KEY_PATH=str(key))
    logins = app.server.ssh_logins()
    code, by_id, out = doctor(app)
    assert code == 1
    [finding] = failed(by_id, "ssh.key")
    assert "0644" in finding["summary"] and finding["fix"] == f"chmod 600 {key}"
    assert "UNPROTECTED PRIVATE KEY FILE" in finding["cause"]
    assert failed(by_id, "ssh.connect")  # and ssh did refuse it
    assert app.server.ssh_logins() == logins


def test_docker_daemon_stopped(app):
    deploy(app)
    sb.stop_engine(app.server.host)
    try:
        _, by_id, out = doctor(app)
        [finding] = failed(by_id, "docker.daemon")
        assert "not running" in finding["cause"] and "systemctl start docker" in finding["fix"]
        assert "Cannot connect to the Docker daemon" in finding["details"]
        assert any(f["status"] == "skip" and "docker daemon" in f["summary"] for f in by_id["doctor.skipped"])
        assert by_id["repo.cloned"][0]["status"] == "ok"  # what does not need docker is still checked
        # the health URLs fail because of docker, and doctor says so rather than blaming the port
        assert all("docker daemon does not answer" in f["cause"] for f in failed(by_id, "health.url"))
    finally:
        sb.start_engine(app.server.host)
    # restart: unless-stopped brings the app back with the engine
    for _ in range(60):
        _, by_id, _ = doctor(app)
        if not failed(by_id, "service.stopped") and not failed(by_id, "health.url"):
            break
    assert fail_ids(by_id) == {"db.reachable"}


def test_stale_lock_left_by_a_killed_deploy(app):
    deploy(app)
    app.commit("version 2", web__VERSION="2\n")
    killed = app.berth("deploy", "--push", env={"BERTH_FAILPOINT": "env:kill"})
    assert killed.returncode == -9
    _, by_id, out = doctor(app)
    [finding] = failed(by_id, "deploy.lock")
    assert "a stale deploy lock blocks deploys" in finding["summary"]
    assert "on this machine is gone" in finding["cause"]
    assert finding["fix"].endswith("berth lock release --force")
