"""A deploy to three real hosts at once: canary, batches, a failure in a later batch, an unreachable host,
--host. Hosts are ~/.ssh/config-style aliases (each sandbox host has its own deploy user); h2 has Compose v1."""

from __future__ import annotations

import json
import re

from tests.sandbox.conftest import Server

FAIL_HEALTH = "FAIL_HEALTH=1\n"  # the example's web then never answers /health: verify fails


def fleet(app, sandbox, tmp_path, hosts=("h1", "h2", "h3"), verify_timeout=30, **settings) -> list[Server]:
    """berth.toml deploys the app to `hosts` with `settings`; returns the sandbox servers (h1, h2, h3)."""
    ssh_config = tmp_path / "ssh_config"
    ssh_config.write_text("".join(
        f"Host h{h.index}\n  HostName {h.address}\n  User {h.user}\n  IdentityFile {sandbox.key}\n"
        f"  UserKnownHostsFile {sandbox.known_hosts}\n" for h in sandbox.hosts)
        + "Host down\n  HostName 127.0.0.1\n  Port 9\n  ConnectTimeout 3\n")  # nothing listens there
    (app.dir / ".env").unlink(missing_ok=True)
    lines = "".join(f"{k} = {json.dumps(v)}\n" for k, v in settings.items())
    app.commit("berth.toml", **{"berth.toml": (
        f'[environments.staging]\nssh_config = "{ssh_config}"\napp_dir = "~/{app.name}"\n'
        f'health_urls = ["http://localhost:{app.port}/health"]\nverify_timeout = {verify_timeout}\n'
        f"hosts = {json.dumps(list(hosts))}\n{lines}")})
    return [Server(h) for h in sandbox.hosts[:3]]


def deploy(app, *args) -> tuple[int, dict]:
    result = app.berth("deploy", "--push", "--json", *args)
    return result.returncode, json.loads(result.stdout)


def release_of(server: Server, app) -> str | None:
    path = server.home() / ".berth" / app.name / "current.json"
    return json.loads(path.read_text())["id"] if path.exists() else None


def states(outcome) -> list[str]:
    return [h["state"] for h in outcome["hosts"]]


def clean(servers: list[Server], app) -> None:
    for server in servers[1:]:  # the app fixture cleans h1
        ids = server.docker("ps", "-aq", "--filter", f"label=com.docker.compose.project={app.name}").split()
        if ids:
            server.docker("rm", "-f", *ids, check=False)


def test_a_canary_that_fails_verify_touches_no_other_host_and_a_failure_in_batch_2_returns_batch_1(
        app, sandbox, tmp_path):
    servers = fleet(app, sandbox, tmp_path, canary=True, parallel=1)
    squatter = f"squatter-{app.name}"
    try:
        code, outcome = deploy(app)
        assert code == 0 and outcome["ok"], outcome
        assert outcome["batches"] == [["h1"], ["h2"], ["h3"]] and states(outcome) == ["deployed"] * 3
        first = [release_of(s, app) for s in servers]
        containers = [s.containers(app.name) for s in servers]

        # the canary fails verify: it rolls itself back, and no other host is even connected to
        (app.dir / ".env.docker").write_text((app.dir / ".env.docker").read_text() + FAIL_HEALTH)
        app.commit("broken", web__VERSION="broken\n")
        logins = [s.ssh_logins() for s in servers]
        code, outcome = deploy(app)
        assert code == 1 and not outcome["ok"]
        assert outcome["error"].startswith("h1: verify failed on h1")
        assert "the rollout stopped at batch 1 of 3 (h2, h3 not touched)" in outcome["error"]
        assert states(outcome) == ["rolled-back", "not-reached", "not-reached"]
        assert [s.ssh_logins() - n for s, n in zip(servers, logins)] == [1, 0, 0]
        assert [release_of(s, app) for s in servers] == first
        assert [s.containers(app.name) for s in servers[1:]] == containers[1:]  # not a container restarted

        # fixed, but h2 cannot take the release (a port it publishes is taken): h1, updated in batch 1, goes back
        (app.dir / ".env.docker").write_text((app.dir / ".env.docker").read_text().replace(FAIL_HEALTH, ""))
        compose = (app.dir / "docker-compose.yml").read_text()
        app.commit("second port", **{"docker-compose.yml": compose.replace(
            '      - "${WEB_PORT:-8080}:8080"\n', f'      - "${{WEB_PORT:-8080}}:8080"\n      - "{app.port + 500}:8080"\n')})
        servers[1].docker("run", "-d", "--name", squatter, "-p", f"{app.port + 500}:8080", "busybox:1.35",
                          "httpd", "-f", "-p", "8080")
        code, outcome = deploy(app)
        assert code == 1, outcome
        assert outcome["error"].startswith("h2: ") and f"port {app.port + 500}" in outcome["error"]
        assert "the rollout stopped at batch 2 of 3 (h3 not touched)" in outcome["error"]
        assert "h1 went back to its previous release" in outcome["error"]
        assert states(outcome) == ["returned", "unchanged", "not-reached"]
        assert [release_of(s, app) for s in servers[1:]] == first[1:]
        back = json.loads((servers[0].home() / ".berth" / app.name / "current.json").read_text())
        assert back["kind"] == "rollback" and back["rollback_of"] == first[0]
        assert servers[0].containers(app.name)["web"] != containers[0]["web"]  # it had run the new one

        # --host: only the named host, the others not connected to
        servers[1].docker("rm", "-f", squatter)
        logins = [s.ssh_logins() for s in servers]
        code, outcome = deploy(app, "--host", "h3")
        assert code == 0, outcome
        assert [h["host"] for h in outcome["hosts"]] == ["h3"]
        assert [s.ssh_logins() - n for s, n in zip(servers, logins)] == [0, 0, 1]
        commit = app.git("rev-parse", "HEAD")
        assert json.loads((servers[2].home() / ".berth" / app.name / "current.json").read_text())["commit"] == commit
        status = app.berth("status")
        assert status.stdout.splitlines()[0].startswith("fleet: DRIFT across 3 hosts"), status.stdout
    finally:
        servers[1].docker("rm", "-f", squatter, check=False)
        clean(servers, app)


def test_a_host_that_cannot_be_reached_fails_alone(app, sandbox, tmp_path):
    servers = fleet(app, sandbox, tmp_path, hosts=("h1", "down", "h3"))
    try:
        result = app.berth("deploy", "--push")
        assert result.returncode == 1, result.stdout + result.stderr
        out = result.stdout + result.stderr
        commit = app.git("rev-parse", "HEAD")
        for name, server in (("h1", servers[0]), ("h3", servers[2])):
            assert re.search(rf"^  {name} +✓ verify ", out, re.M), out  # every line says which host it is about
            assert json.loads((server.home() / ".berth" / app.name / "current.json").read_text())["commit"] == commit
        assert "error: down could not be reached, so it was not deployed" in out
        assert "the other 2 hosts run the new release" in out and "berth deploy --host down" in out
        assert "  down: could not be reached: not touched" in out
    finally:
        clean(servers, app)


def test_roles_run_their_services_on_their_hosts(app, sandbox, tmp_path):
    servers = fleet(app, sandbox, tmp_path, hosts=("h1", "h3"))
    toml = (app.dir / "berth.toml").read_text()
    app.commit("roles", **{"berth.toml": toml + (
        '[environments.staging.roles.web]\nhosts = ["h1"]\nservices = ["web"]\n'
        # the worker's host has no web to fetch /health from: its containers' health is what verify waits for
        '[environments.staging.roles.jobs]\nhosts = ["h3"]\nservices = ["worker"]\nhealth_urls = []\n')})
    try:
        code, outcome = deploy(app)
        assert code == 0, outcome
        assert set(servers[0].containers(app.name)) == {"web"} and set(servers[2].containers(app.name)) == {"worker"}
        verify = {s["host"]: s["detail"] for s in outcome["steps"] if s["step"] == "verify"}
        assert verify["h1"].startswith("web healthy, http://localhost:") and verify["h3"] == "worker healthy"
        rows = json.loads(app.berth("status", "--json").stdout)
        assert [(r["host"], r["healthy"], [s["service"] for s in r["services"]]) for r in rows] == [
            ("h1", True, ["web"]), ("h3", True, ["worker"])]
        doctor = json.loads(app.berth("doctor", "--json", "--host", "jobs").stdout)
        assert [r["host"] for r in doctor] == ["h3"]
        running = [c["summary"] for c in doctor[0]["checks"] if c["id"] == "service.running"]
        assert len(running) == 1 and running[0].startswith("worker "), doctor[0]["checks"]
    finally:
        clean(servers, app)


def test_a_fleet_builds_once_and_every_host_runs_the_same_image(app, sandbox, tmp_path):
    servers = fleet(app, sandbox, tmp_path, build="once")  # h2 runs Compose v1: it names its build shop_web
    try:
        app.commit("changed", web__VERSION="shared\n")
        code, outcome = deploy(app)
        assert code == 0, outcome
        builds = {s["host"]: s["detail"] for s in outcome["steps"] if s["step"] == "build"}
        builders = [h for h, d in builds.items() if d.startswith("built; the other hosts load these images")]
        assert len(builders) == 1, builds
        # each has busybox, the images' base: its engine loaded an archive without that layer
        assert all(d.startswith(f"web, worker loaded from {builders[0]} (") and d.endswith("the layers this host lacked)")
                   for h, d in builds.items() if h != builders[0]), builds
        # two builds of one Dockerfile never give one id (each image has its build time): these are one build
        ids = {s.docker("inspect", "--format", "{{.Image}}", s.containers(app.name)["web"][0]).strip()
               for s in servers}
        assert len(ids) == 1, ids
        releases = [json.loads((s.home() / ".berth" / app.name / "current.json").read_text()) for s in servers]
        assert {r["images"]["web"]["id"] for r in releases} == ids  # what a rollback puts back
    finally:
        clean(servers, app)
