"""Every way a deploy or rollback can fail leaves the last good release serving, and `status` says so.

Each test drives the real berth against the sandbox host and then compares what berth says
(releases, audit, status --json) with what docker runs. HTTP is sampled while berth runs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from tests.sandbox.conftest import GIT_ENV
from tests.sandbox.test_release_safety import current, deploy_ok, get, history

FAIL_HEALTH = "FAIL_HEALTH=1\n"


def audit(app) -> list[dict]:
    return [json.loads(line) for line in (app.state_dir / "audit.jsonl").read_text().splitlines()]


def running_images(app) -> dict[str, str]:
    """service → image id of the project's containers, as docker ps sees them."""
    ids = app.server.docker("ps", "-aq", "--filter", f"label=com.docker.compose.project={app.name}").split()
    if not ids:
        return {}
    out = app.server.docker("inspect", "--format", '{{index .Config.Labels "com.docker.compose.service"}} {{.Image}}', *ids)
    return dict(line.split() for line in out.splitlines())


def status_json(app) -> tuple[int, dict]:
    proc = app.berth("status", "--json")
    assert "Traceback" not in proc.stderr
    return proc.returncode, json.loads(proc.stdout)[0]


def assert_status_agrees_with_docker(app) -> dict:
    """status --json names the release whose images docker runs, and lists every expected service."""
    code, row = status_json(app)
    images = running_images(app)
    running = row["running"]
    assert running is not None, row
    assert {s: i["id"] for s, i in running["images"].items() if s in images} == images
    assert {s["service"] for s in row["services"]} >= {"web", "worker"}
    assert code == (0 if row["healthy"] else 1)
    return row


class Sampler:
    """GETs /version every 0.2 s while berth runs (bounded: at most 3000 requests)."""

    def __init__(self, url: str) -> None:
        self.url, self.seen, self._stop = url, [], threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set() and len(self.seen) < 3000:
            self.seen.append(get(self.url))
            time.sleep(0.2)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)

    @property
    def answers(self) -> set:
        return {body for code, body in self.seen if code == 200}

    @property
    def failures(self) -> int:
        return sum(1 for code, _ in self.seen if code != 200)


def berth_paused_at(app, step: str, marker, *args, send=None, after_release=None, env=None):
    """Run berth ARGS, pausing as STEP starts; `send(proc)` runs during the pause, `after_release(proc)` after."""
    full_env = {**os.environ, **GIT_ENV, "NO_COLOR": "1", "BERTH_FAILPOINT": f"{step}:pause",
                "BERTH_FAILPOINT_FILE": str(marker), **(env or {})}
    # its own process group, as in a terminal: the signal goes to the whole group, like Ctrl-C does
    proc = subprocess.Popen([sys.executable, "-m", "berth", *args], cwd=app.dir, env=full_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    while not marker.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert marker.exists(), "berth never reached " + step
    if send:
        send(proc)
    marker.unlink()
    if after_release:
        after_release(proc)
    out, err = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def killpg(sig):
    def send(proc):
        os.killpg(proc.pid, sig)
        time.sleep(0.3)  # delivered before the step goes on

    return send


def failing_version(app, version: str) -> str:
    """A new commit whose release fails verify (the env file makes /health fail)."""
    (app.dir / ".env.docker").write_text((app.dir / ".env.docker").read_text() + FAIL_HEALTH)
    return app.commit(f"version {version}", web__VERSION=f"{version}\n")


# --------------------------------------------------------------------------- refused before anything changes


def test_a_port_taken_on_the_server_is_refused_before_anything_changes(app):
    deploy_ok(app)
    good = current(app)
    squat, plain = app.port + 1000, app.port + 1001
    squatter = f"squatter-{app.name}"
    app.server.docker("run", "-d", "--name", squatter, "--label", "com.docker.compose.project=someone-else",
                      "-p", f"{squat}:8080", "busybox:1.35", "httpd", "-f", "-p", "8080")
    ns = f"berth-h{app.server.host.index}"
    listener = subprocess.Popen(["ip", "netns", "exec", ns, "busybox", "nc", "-l", "-p", str(plain)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        compose = (app.dir / "docker-compose.yml").read_text().replace(
            '      - "${WEB_PORT:-8080}:8080"\n',
            f'      - "${{WEB_PORT:-8080}}:8080"\n      - "{squat}:8080"\n      - "{plain}:8080"\n')
        app.commit("publish two more ports", **{"docker-compose.yml": compose, "web/VERSION": "2\n"})
        before = app.snapshot()
        with Sampler(app.url("/version")) as sampler:
            result = app.berth("deploy", "--push")
        out = result.stdout + result.stderr
        assert result.returncode == 1, out
        assert f"port {squat}/tcp (service web) is already published" in out and squatter in out
        assert f"port {plain}/tcp (service web) is already in use" in out and "not a container" in out
        assert "nothing on the server was changed" in out and "✓ sync" not in out
        assert app.snapshot() == before  # checkout, env file, records and containers untouched
        assert sampler.answers == {"1\n"} and sampler.failures == 0  # served throughout
        assert current(app) == good and history(app)[-1]["id"] == good["id"]
        assert_status_agrees_with_docker(app)
    finally:
        listener.kill()
        app.server.docker("rm", "-f", squatter, check=False)


def test_a_pulled_image_that_is_missing_is_refused_before_anything_changes(app):
    deploy_ok(app)
    compose = (app.dir / "docker-compose.yml").read_text().replace(
        "volumes:\n  records:", "  cache:\n    image: 127.0.0.1:9/nowhere/cache:1\n\nvolumes:\n  records:")
    app.commit("a cache from a registry the server cannot reach", **{"docker-compose.yml": compose})
    before = app.snapshot()
    result = app.berth("deploy", "--push")
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "image 127.0.0.1:9/nowhere/cache:1 is not on" in out and "could not be pulled" in out
    assert app.snapshot() == before
    assert get(app.url("/version")) == (200, "1\n")


# --------------------------------------------------------------------------- failures after the server changed


def test_up_failing_after_the_old_container_was_replaced_rolls_back(app):
    deploy_ok(app)
    good = current(app)
    compose = (app.dir / "docker-compose.yml").read_text().replace(
        'test: ["CMD", "test", "-s", "/data/records.log"]', 'test: ["CMD", "false"]')
    app.commit("a worker that never gets healthy", **{"docker-compose.yml": compose, "web/VERSION": "2\n"})
    result = app.berth("deploy", "--push")
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "`docker compose up` failed" in out and f"rolled back to release {good['id']}" in out
    assert get(app.url("/version")) == (200, "1\n")
    failed = history(app)[-1]
    assert failed["result"] == "failed" and failed["rolled_back_to"] == good["id"]
    assert current(app) == good
    assert any(e["event"] == "rollback" and e.get("failed_release") == failed["id"] for e in audit(app))
    row = assert_status_agrees_with_docker(app)
    assert row["running"]["id"] == good["id"] and row["healthy"]
    assert row["last_failure"]["id"] == failed["id"]


def test_a_lost_connection_during_up_is_undone_on_reconnect(app, tmp_path):
    deploy_ok(app)
    good = current(app)
    app.commit("version 2", web__VERSION="2\n")
    link = f"bth-h{app.server.host.index}"

    def cut_during_up(proc):
        time.sleep(1.5)  # up is recreating the containers now
        subprocess.run(["ip", "link", "set", link, "down"], check=True)
        subprocess.run(["pkill", "-KILL", "-f", f"ControlMaster=yes.*{app.server.host.address}"], check=False)
        time.sleep(4)
        subprocess.run(["ip", "link", "set", link, "up"], check=True)

    try:
        result = berth_paused_at(app, "deploy", tmp_path / "paused", "deploy", "--push", after_release=cut_during_up)
    finally:
        subprocess.run(["ip", "link", "set", link, "up"], check=True)
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "connection" in out and "reconnecting" in out and f"rolled back to release {good['id']}" in out
    assert get(app.url("/version")) == (200, "1\n")
    assert current(app) == good and history(app)[-1]["rolled_back_to"] == good["id"]
    assert not (app.state_dir / "lock").exists()
    assert_status_agrees_with_docker(app)


DEPLOY_STEPS = ["preflight", "sync", "env", "build", "deploy", "verify", "record"]


@pytest.mark.parametrize("sig,step", [(sig, s) for sig in (signal.SIGINT, signal.SIGTERM) for s in DEPLOY_STEPS])
def test_a_signal_during_a_deploy_step_finishes_it_then_rolls_back(app, sig, step, tmp_path):
    deploy_ok(app)
    good = current(app)
    before = app.server.containers(app.name)
    new = app.commit("version 2", web__VERSION="2\n")
    with Sampler(app.url("/version")) as sampler:
        result = berth_paused_at(app, step, tmp_path / "paused", "deploy", "--push", send=killpg(sig))
    out = result.stdout + result.stderr
    assert "Traceback" not in out and "finishing the step in progress" in out
    assert not (app.state_dir / "lock").exists()  # released
    if step == "record":  # verified before the signal: the release is recorded and stays
        assert result.returncode == 0, out
        assert "came after the release was verified" in out
        assert current(app)["commit"] == new and get(app.url("/version")) == (200, "2\n")
        assert_status_agrees_with_docker(app)
        return
    assert result.returncode == 1, out
    assert "interrupted by" in out
    assert get(app.url("/version")) == (200, "1\n") and app.server_head() == good["commit"]
    assert current(app) == good
    if step in ("preflight", "sync", "env", "build"):  # no container was replaced
        assert app.server.containers(app.name) == before
        assert sampler.answers == {"1\n"} and sampler.failures == 0
    if step == "preflight":
        assert "nothing on the server had been changed" in out and history(app)[-1]["id"] == good["id"]
    else:
        failed = history(app)[-1]
        assert failed["result"] == "failed" and failed["rolled_back_to"] == good["id"] and failed["commit"] == new
    row = assert_status_agrees_with_docker(app)
    assert row["running"]["id"] == good["id"] and row["healthy"]


ROLLBACK_STEPS = ["sync", "env", "images", "deploy", "verify", "record"]


@pytest.mark.parametrize("sig,step", [(sig, s) for sig in (signal.SIGINT, signal.SIGTERM) for s in ROLLBACK_STEPS])
def test_a_signal_during_a_rollback_step_returns_to_what_ran_before(app, sig, step, tmp_path):
    deploy_ok(app)
    first = current(app)
    app.commit("version 2", web__VERSION="2\n")
    deploy_ok(app)
    second = current(app)
    result = berth_paused_at(app, step, tmp_path / "paused", "rollback", send=killpg(sig))
    out = result.stdout + result.stderr
    assert "Traceback" not in out and "finishing the step in progress" in out
    assert f"rolling back from {second['id']}" in out and f"to release {first['id']}" in out
    assert not (app.state_dir / "lock").exists()
    last = history(app)[-1]
    assert last["kind"] == "rollback" and last["rollback_of"] == first["id"]
    if step == "record":
        assert result.returncode == 0, out
        assert get(app.url("/version")) == (200, "1\n") and last["result"] == "ok"
    else:
        assert result.returncode == 1, out
        assert f"back on release {second['id']}" in out
        assert get(app.url("/version")) == (200, "2\n") and last["result"] == "failed"
        assert current(app) == second
    events = [e for e in audit(app) if e["event"] == "rollback"]
    assert events[-1]["result"] == last["result"]
    assert_status_agrees_with_docker(app)


# --------------------------------------------------------------------------- rollback picks from what runs


def test_rollback_after_no_rollback_returns_to_the_last_good_release(app):
    deploy_ok(app)
    old = current(app)
    app.commit("version 2", web__VERSION="2\n")
    deploy_ok(app)
    good = current(app)
    failing_version(app, "3")
    failed = app.berth("deploy", "--push", "--timeout", "20", "--no-rollback")
    assert failed.returncode == 4, failed.stdout + failed.stderr
    assert "--no-rollback" in failed.stderr and "needs a person" in failed.stderr
    assert get(app.url("/version")) == (200, "3\n")
    code, row = status_json(app)
    assert code == 1 and row["running"]["id"] == history(app)[-1]["id"]  # the failed release, not current.json's
    assert "failed verify" in app.berth("status").stdout
    result = app.berth("rollback")
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert f"from {history(app)[-2]['id']} (failed" in out and f"to release {good['id']}" in out
    assert old["id"] not in out  # not one release too far
    assert get(app.url("/version")) == (200, "2\n")
    row = assert_status_agrees_with_docker(app)
    assert row["healthy"] and row["running"]["commit"] == good["commit"]


def test_a_rollback_whose_target_fails_verify_is_recorded_and_needs_a_person(app):
    deploy_ok(app)
    good = current(app)
    failing_version(app, "2")
    assert app.berth("deploy", "--push", "--timeout", "20", "--no-rollback").returncode == 4
    # the good release's kept env file now makes it fail, as a broken dependency would
    kept = app.state_dir / "releases" / f"{good['id']}.env"
    kept.write_bytes(kept.read_bytes() + FAIL_HEALTH.encode())
    result = app.berth("rollback", "--timeout", "15", "--json")
    assert result.returncode == 4, result.stdout + result.stderr
    doc = json.loads(result.stdout)
    assert doc["ok"] is False and doc["exit_code"] == 4 and doc["hosts"][0]["state"] == "needs-a-person"
    assert "did not come back healthy" in doc["error"]
    attempt = history(app)[-1]
    assert attempt["kind"] == "rollback" and attempt["result"] == "failed" and attempt["rollback_of"] == good["id"]
    event = [e for e in audit(app) if e["event"] == "rollback"][-1]
    assert event["result"] == "failed" and event["release"] == attempt["id"]
    code, row = status_json(app)
    assert code == 1 and not row["healthy"] and row["running"]["id"] == attempt["id"]
    text = app.berth("status").stdout
    assert f"running  {good['commit'][:7]} — rollback to {good['id']} failed verify" in text
    assert "healthcheck said" in text or "unhealthy" in text


# --------------------------------------------------------------------------- status tells the truth


def test_a_container_left_in_created_is_listed_and_status_exits_1(app):
    deploy_ok(app)
    app.server.docker("rm", "-f", f"{app.name}-web-1")
    compose = ["docker", "-H", app.server.host.docker_host, "compose", "--project-directory", str(app.app_dir),
               "--project-name", app.name, "--file", str(app.app_dir / "docker-compose.yml"),
               "--env-file", str(app.app_dir / ".env.docker")]
    subprocess.run([*compose, "up", "--no-start", "--no-deps", "web"], check=True, capture_output=True, timeout=120)
    code, row = status_json(app)
    assert code == 1 and not row["healthy"]
    [web] = [s for s in row["services"] if s["service"] == "web"]
    assert web["state"] == "created" and not web["ready"] and "never started" in web["description"]
    text = app.berth("status")
    assert text.returncode == 1 and "✗ web" in text.stdout and "created" in text.stdout
    doctor = app.berth("doctor")
    assert doctor.returncode == 1 and "created but never started" in doctor.stdout
    # a service with no container at all is listed as missing, not left out
    app.server.docker("rm", "-f", f"{app.name}-web-1")
    code, row = status_json(app)
    assert code == 1 and [s["state"] for s in row["services"] if s["service"] == "web"] == ["missing"]


NO_HEALTHCHECK = {
    "alone": """services:
  cache:
    image: busybox:1.35
    command: ["sleep", "100000"]
    init: true
  worker:
    build: ./worker
    init: true
    volumes: [records:/data]
volumes:
  records:
""",
    "healthchecked first": None,  # the example app plus a cache without a healthcheck, after it
    "healthchecked last": None,  # the same cache listed before the others, which depend on it
}


@pytest.mark.parametrize("layout", list(NO_HEALTHCHECK))
def test_services_without_a_healthcheck_deploy_and_show_as_running(app, layout):
    compose = NO_HEALTHCHECK[layout]
    original = (app.dir / "docker-compose.yml").read_text()
    cache = '  cache:\n    image: busybox:1.35\n    command: ["sleep", "100000"]\n    init: true\n'
    if layout == "healthchecked first":
        compose = original.replace("\nvolumes:\n", "\n" + cache + "\nvolumes:\n")
    elif layout == "healthchecked last":
        compose = original.replace("services:\n", "services:\n" + cache + "\n", 1).replace(
            "  worker:\n    build: ./worker\n", "  worker:\n    build: ./worker\n    depends_on: [cache]\n")
    health = "" if layout == "alone" else f"HEALTH_URL={app.url('/health')}"
    if layout == "alone":
        app.write_dotenv(HEALTH_URL=None)
    app.commit(f"services without a healthcheck ({layout})", **{"docker-compose.yml": compose})
    started = time.monotonic()
    result = app.berth("deploy", "--push", "--timeout", "60")
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert time.monotonic() - started < 50  # not the full verify timeout
    assert "cache running" in out and "has no container" not in out
    code, row = status_json(app)
    assert code == 0 and row["healthy"], row
    states = {s["service"]: s for s in row["services"]}
    assert states["cache"]["state"] == "running" and states["cache"]["health"] is None and states["cache"]["ready"]
    doctor = app.berth("doctor", "--json")
    checks = json.loads(doctor.stdout)[0]["checks"]
    assert not [c for c in checks if c["id"].startswith("service.") and c["status"] == "fail"], checks
    if health:
        assert get(app.url("/health"))[0] == 200


def test_every_docker_format_berth_uses_works_on_the_real_engine(sandbox):
    """Each template against containers in every state docker can hold them in here (dead cannot be made on
    purpose), with and without a healthcheck: one whole line per container, exit 0."""
    from berth.remote.engines.compose import parse_inspect
    from tests.sandbox.conftest import Server
    from tests.sandbox.formats import ENGINE_FORMATS

    server = Server(sandbox.hosts[0])
    names = {f"fmt-{kind}": kind for kind in ("created", "running", "healthy", "unhealthy", "paused", "exited",
                                              "restarting")}
    try:
        base = ["--label", "com.docker.compose.service=fmt", "busybox:1.35"]
        server.docker("create", "--name", "fmt-created", "-p", "127.0.0.1::80", *base, "sleep", "600")
        server.docker("run", "-d", "--name", "fmt-running", *base, "sleep", "600")
        server.docker("run", "-d", "--name", "fmt-healthy", "--health-cmd", "true", "--health-interval", "1s",
                      *base, "sleep", "600")
        server.docker("run", "-d", "--name", "fmt-unhealthy", "--health-cmd", "echo probe says no; false",
                      "--health-interval", "1s", "--health-retries", "1", *base, "sleep", "600")
        server.docker("run", "-d", "--name", "fmt-paused", *base, "sleep", "600")
        server.docker("pause", "fmt-paused")
        server.docker("run", "--name", "fmt-exited", *base, "sh", "-c", "exit 3", check=False)
        server.docker("run", "-d", "--name", "fmt-restarting", "--restart", "always", *base, "sh", "-c", "exit 1")
        time.sleep(4)
        for name, argv, objects in ENGINE_FORMATS:
            args = list(names) if objects == "containers" else ["busybox:1.35"] if objects == "images" else []
            out = server.docker(*argv, *args)  # raises on a template error
            lines = out.strip().splitlines()
            assert len(lines) == (len(args) if objects else max(1, len(lines))) and all(lines), (name, out)
        states = {s.name: s for s in parse_inspect(server.docker("inspect", "--format", ENGINE_FORMATS[0][1][2],
                                                                 *names))}
        assert {n: s.status for n, s in states.items()} == {
            "fmt-created": "created", "fmt-running": "running", "fmt-healthy": "running", "fmt-unhealthy": "running",
            "fmt-paused": "paused", "fmt-exited": "exited", "fmt-restarting": states["fmt-restarting"].status}
        assert states["fmt-restarting"].status in ("restarting", "running", "exited")
        assert states["fmt-healthy"].health == "healthy" and states["fmt-running"].health == ""
        assert states["fmt-unhealthy"].health == "unhealthy" and "probe says no" in states["fmt-unhealthy"].health_log
        assert states["fmt-exited"].exit_code == 3 and states["fmt-created"].started_at == ""
    finally:
        server.docker("rm", "-f", *names, check=False)
