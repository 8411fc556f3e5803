"""Start-first rollouts behind berth's proxy (BERTH_PROXY=true), on a real server: a real Caddy in front of the
example app's web service, requests sent all through the deploy. The worker (a named volume) is recreated."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request

import pytest

from berth.sandbox.proxy_image import import_proxy_image
from tests.sandbox.conftest import Server

LOAD_INTERVAL = 0.02  # at most 50 requests/s, to the sandbox host only, for as long as one deploy takes


class Repeating:
    """Runs `step` from a thread every `interval` seconds while the `with` block runs."""

    interval = LOAD_INTERVAL

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def step(self) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        while not self._stop.is_set():
            self.step()
            time.sleep(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


class Load(Repeating):
    """GETs one URL in a loop: counts answers, keeps the failures."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url, self.ok, self.failures = url, 0, []
        self.bodies: list[str] = []

    def step(self) -> None:
        try:
            with urllib.request.urlopen(self.url, timeout=10) as response:
                self.bodies.append(response.read().decode().strip())
                self.ok += 1
        except (urllib.error.URLError, OSError) as exc:
            self.failures.append(f"{time.strftime('%H:%M:%S')} {exc}")


@pytest.fixture
def proxied(app):
    app.env["BERTH_PROXY_IMAGE"] = import_proxy_image(app.server.host.docker_host)
    app.write_dotenv(BERTH_PROXY="true")
    first = app.berth("deploy", "--push")
    assert first.returncode == 0, first.stdout + first.stderr
    return app


def web_containers(app) -> list[str]:
    out = app.server.docker("ps", "--filter", f"label=com.docker.compose.project={app.name}",
                            "--filter", "label=com.docker.compose.service=web", "--format", "{{.Names}}")
    return sorted(out.split())


class VolumeUsers(Repeating):
    """Samples how many running containers mount a volume; keeps the most seen at once."""

    interval = 0.05

    def __init__(self, server, volume: str) -> None:
        super().__init__()
        self.server, self.volume, self.most = server, volume, 0

    def step(self) -> None:
        names = self.server.docker("ps", "--filter", f"volume={self.volume}", "--format", "{{.Names}}",
                                   check=False).split()
        self.most = max(self.most, len(names))


class SlowRequests(Repeating):
    """Starts a 3 s request every half second; `results` holds each one's answer (or error)."""

    interval = 0.5

    def __init__(self, app) -> None:
        super().__init__()
        self.app, self.results, self.threads = app, [], []

    def step(self) -> None:
        self.threads.append(slow_request(self.app, self.results))

    def __exit__(self, *exc) -> None:
        super().__exit__(*exc)
        for t in self.threads:
            t.join(timeout=30)


def slow_request(app, results: list) -> threading.Thread:
    def get():
        try:
            with urllib.request.urlopen(app.url("/cgi-bin/slow"), timeout=20) as response:
                results.append(response.read().decode().strip())
        except (urllib.error.URLError, OSError) as exc:
            results.append(str(exc))
    thread = threading.Thread(target=get, daemon=True)
    thread.start()
    return thread


def test_a_changed_commit_switches_web_without_a_failed_request(proxied):
    """Requests all through the deploy answer; a 3 s request in flight when traffic moves finishes; the worker,
    which mounts the named volume, is recreated and never runs twice."""
    app = proxied
    before = web_containers(app)
    assert len(before) == 1
    worker_before = app.server.containers(app.name)["worker"][0]
    worker = (app.dir / "worker" / "worker.sh").read_text()
    app.commit("version 2", **{"web__VERSION": "2\n", "worker__worker.sh": worker + "# version 2\n"})
    with Load(app.url("/version")) as load, VolumeUsers(app.server, f"{app.name}_records") as volume:
        with SlowRequests(app) as slow_requests:
            result = app.berth("deploy", "--push")
        time.sleep(1)  # requests after the deploy reach the new version
    slow = slow_requests.results
    assert result.returncode == 0, result.stdout + result.stderr
    assert load.failures == [], load.failures[:5]
    assert load.ok > 20 and load.bodies[0] == "1" and load.bodies[-1] == "2"
    assert len(slow) >= 4 and set(slow) == {"slow done"}, slow  # some were in flight at the switch
    assert volume.most == 1  # the worker was recreated, never doubled on its volume
    assert "web: " in result.stdout and " serves" in result.stdout
    after = web_containers(app)
    assert len(after) == 1 and after != before  # the old one was retired, one serves
    status = app.berth("status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert f"{after[0]}  ← serves :{app.port}" in status.stdout and "(berth's proxy)" in status.stdout
    assert app.server.containers(app.name)["worker"][0] != worker_before  # recreated: it mounts a volume


def test_a_new_container_that_fails_its_health_gate_never_gets_traffic(proxied):
    app = proxied
    before = web_containers(app)
    env = (app.dir / ".env.docker").read_text()
    (app.dir / ".env.docker").write_text(env + "FAIL_HEALTH=1\n")
    app.commit("version 3", **{"web__VERSION": "3\n"})
    with Load(app.url("/version")) as load:
        result = app.berth("deploy", "--push")
    assert result.returncode != 0
    assert "did not pass its health gate" in result.stdout + result.stderr
    assert load.failures == [], load.failures[:5]
    assert set(load.bodies) == {"1"}  # only the old version ever answered
    assert web_containers(app) == before


def test_a_rollback_switches_back_without_a_failed_request(proxied):
    app = proxied
    app.commit("version 2", **{"web__VERSION": "2\n"})
    deployed = app.berth("deploy", "--push")
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    serving = web_containers(app)
    with Load(app.url("/version")) as load:
        result = app.berth("rollback", "--yes")
        time.sleep(1)
    assert result.returncode == 0, result.stdout + result.stderr
    assert load.failures == [], load.failures[:5]
    assert load.bodies[0] == "2" and load.bodies[-1] == "1"
    assert " serves" in result.stdout  # switched, not recreated
    after = web_containers(app)
    assert len(after) == 1 and after != serving
    doctor = app.berth("-v", "doctor")
    assert "berth's proxy runs, on port(s)" in doctor.stdout and f"→ {after[0]}" in doctor.stdout, doctor.stdout


def test_a_new_proxy_image_replaces_the_proxy_and_the_app_answers_through_it(proxied):
    """Upgrading the proxy recreates its container (docs/ROLLOUTS.md: a short gap, the one deploy that has
    one); the services keep running and the new proxy serves the same ports; so does a restarted one."""
    app = proxied
    web_before = web_containers(app)
    app.server.docker("tag", app.env["BERTH_PROXY_IMAGE"], "caddy:2.8.5-standin")
    app.write_dotenv(BERTH_PROXY="true", BERTH_PROXY_IMAGE="caddy:2.8.5-standin")
    result = app.berth("deploy")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"berth's proxy changes image ({app.env['BERTH_PROXY_IMAGE']} → caddy:2.8.5-standin)" in result.stdout
    proxy = app.server.docker("ps", "--filter", f"label=com.docker.compose.project={app.name}", "--filter",
                              "label=com.docker.compose.service=berth-proxy", "--format", "{{.Image}}").split()
    assert proxy == ["caddy:2.8.5-standin"]
    assert web_containers(app) == web_before  # the app's containers were not touched
    with urllib.request.urlopen(app.url("/version"), timeout=10) as response:
        assert response.read().decode().strip() == "1"

    # the proxy's container restarted (by hand, or by the engine after a reboot): it reads the Caddyfile
    # berth wrote from its bind mount and serves the same container again
    name = app.server.docker("ps", "--filter", f"label=com.docker.compose.project={app.name}", "--filter",
                             "label=com.docker.compose.service=berth-proxy", "--format", "{{.Names}}").strip()
    app.server.docker("restart", "-t", "5", name)
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(app.url("/version"), timeout=5) as response:
                assert response.read().decode().strip() == "1"
                break
        except (urllib.error.URLError, OSError):
            assert time.monotonic() < deadline, "the restarted proxy never answered"
            time.sleep(0.5)
    assert web_containers(app) == web_before
    doctor = app.berth("doctor", "-v")
    assert any(line.split()[:2] == ["ok", "proxy.upstream"] for line in doctor.stdout.splitlines()), doctor.stdout


def test_a_server_with_compose_v1_is_deployed_without_the_proxy_and_says_so(app, sandbox):
    old = sandbox.hosts[1]  # the sandbox's older server: Compose v1 only
    app.write_dotenv(BERTH_PROXY="true", SERVER_IP=old.address, SERVER_USER=old.user,
                     HEALTH_URL=f"http://{old.address}:{app.port}/health")
    result = app.berth("deploy", "--push")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "berth's proxy needs Compose v2.24 or newer, so every service there is recreated" in result.stdout
    server = Server(old)
    try:
        assert set(server.containers(app.name)) == {"web", "worker"}  # no proxy: web publishes its own port
    finally:
        ids = server.docker("ps", "-aq", "--filter", f"label=com.docker.compose.project={app.name}").split()
        if ids:
            server.docker("rm", "-f", *ids, check=False)
