"""engine = "swarm" on a real 3-node swarm of the sandbox's engines (h1 the manager, h2 and h3 workers).

The swarm is formed for this module on the session's hosts and dissolved after it. This machine has no
IPVS: tasks run, but ingress ports and VIPs do not answer, so the example's web publishes its port in host
mode; what the tests look at is what runs on each node's own engine.
"""

from __future__ import annotations

import json
import os
import time

import pytest

from berth.sandbox import swarm as sandbox_swarm
from tests.sandbox.test_fleet import fleet

FAIL_HEALTH = "FAIL_HEALTH=1\n"


@pytest.fixture(scope="module")
def swarm(sandbox):
    sandbox_swarm.form(sandbox)
    yield sandbox
    if not os.environ.get("BERTH_KEEP_SANDBOX"):  # kept to look around after a failure
        sandbox_swarm.dissolve(sandbox)


def stack_app(app, sandbox, tmp_path, keep_releases=5, verify_timeout=90):
    servers = fleet(app, sandbox, tmp_path, engine="swarm", keep_releases=keep_releases,
                    verify_timeout=verify_timeout)
    compose = (app.dir / "docker-compose.yml").read_text()
    compose = compose.replace(
        '    ports:\n      - "${WEB_PORT:-8080}:8080"\n',
        "    ports:\n      - target: 8080\n        published: ${WEB_PORT:-8080}\n        mode: host\n"
        "    secrets: [api_key]\n")
    compose = compose.replace(
        "    deploy:\n      resources:\n        limits:\n          memory: 64M\n",
        "    deploy:\n      replicas: 3\n      update_config:\n        parallelism: 3\n        monitor: 3s\n"
        "      resources:\n        limits:\n          memory: 64M\n", 1)
    compose += "\nsecrets:\n  api_key:\n    file: ./api_key.txt\n"
    (app.dir / "api_key.txt").write_text("key-one\n")
    ignored = (app.dir / ".gitignore").read_text() + "api_key.txt\n"  # berth ships it, as a secret file
    app.commit("a swarm stack", **{"docker-compose.yml": compose, ".gitignore": ignored})
    return servers


@pytest.fixture
def stack_removed(app, swarm):
    yield
    if not os.environ.get("BERTH_KEEP_SANDBOX"):
        app.server.docker("stack", "rm", app.name, check=False)


def web_images(servers, app) -> list[list[str]]:
    """On each node's own engine: the image ids of the web tasks that run there."""
    out = []
    for s in servers:
        ids = s.docker("ps", "-q", "--filter", f"label=com.docker.swarm.service.name={app.name}_web").split()
        out.append(sorted(s.docker("inspect", "--format", "{{.Image}}", *ids).split()) if ids else [])
    return out


def built(app, commit: str) -> str:
    """The id of the web image berth built on the manager for `commit`."""
    return app.server.docker("image", "inspect", "--format", "{{.Id}}",
                             f"berth-releases/{app.name}/web:{commit[:12]}").strip()


def deploy(app, *args):
    result = app.berth("deploy", "--push", "--json", *args, timeout=400)
    outcome = json.loads(result.stdout)
    if result.returncode:
        outcome["stderr"] = result.stderr
        outcome["check"] = app.berth("check").stdout
    return result.returncode, outcome


def test_a_stack_spreads_over_the_nodes_takes_each_new_commit_everywhere_and_is_rolled_back_whole(
        app, swarm, tmp_path, stack_removed):
    servers = stack_app(app, swarm, tmp_path)
    code, outcome = deploy(app)
    assert code == 0, (outcome.get("error"), outcome.get("steps"))
    first = app.git("rev-parse", "HEAD")
    tag = built(app, first)
    assert web_images(servers, app) == [[tag]] * 3  # one replica on each node, the image copied to the workers
    steps = {s["step"]: s["detail"] for s in outcome["steps"]}
    assert steps["swarm"] == "manager of 3 nodes"
    assert steps["converge"].startswith("web 3/3 on 3 nodes")
    first_release = json.loads((servers[0].home() / ".berth" / app.name / "current.json").read_text())["id"]
    (row,) = json.loads(app.berth("status", "--json").stdout)
    assert row["healthy"] and row["running"]["id"] == first_release
    assert {s["service"]: s["description"] for s in row["services"]}["web"] == "3/3 tasks on 3 nodes"

    second = app.commit("version 2", web__VERSION="2\n")
    code, outcome = deploy(app)
    assert code == 0, (outcome.get("error"), outcome.get("steps"))
    assert web_images(servers, app) == [[built(app, second)]] * 3

    # a release whose health check fails: swarm rolls web back by itself, berth puts the whole stack back
    (app.dir / ".env.docker").write_text((app.dir / ".env.docker").read_text() + FAIL_HEALTH)
    app.commit("broken", web__VERSION="broken\n")
    code, outcome = deploy(app)
    assert code == 1, (outcome.get("error"), outcome.get("steps"))
    assert "swarm rolled back web: rollback_" in outcome["error"] and "the stack is back on release" in outcome["error"]
    assert outcome["hosts"][0]["state"] == "rolled-back"
    assert web_images(servers, app) == [[built(app, second)]] * 3
    assert json.loads((servers[0].home() / ".berth" / app.name / "current.json").read_text())["commit"] == second

    # berth rollback: the release before, on every node
    result = app.berth("rollback", "--yes", timeout=400)
    assert result.returncode == 0, result.stdout + result.stderr
    assert web_images(servers, app) == [[tag]] * 3
    current = json.loads((servers[0].home() / ".berth" / app.name / "current.json").read_text())
    assert current["kind"] == "rollback" and current["rollback_of"] == first_release


def test_a_changed_secret_is_a_new_swarm_secret_and_what_no_kept_release_uses_is_pruned(app, swarm, tmp_path,
                                                                                         stack_removed):
    servers = stack_app(app, swarm, tmp_path, keep_releases=1)
    manager = servers[0]

    def secrets() -> list[str]:
        return sorted(manager.docker("secret", "ls", "--filter", f"label=com.docker.stack.namespace={app.name}",
                                     "--format", "{{.Name}}").split())

    code, outcome = deploy(app)
    assert code == 0, (outcome.get("error"), outcome.get("steps"))
    (old,) = secrets()
    assert old.startswith(f"{app.name}_api_key_")
    (app.dir / "api_key.txt").write_text("key-two\n")
    code, outcome = deploy(app)
    assert code == 0, (outcome.get("error"), outcome.get("steps"))
    (new,) = secrets()  # the old one went with the release that used it (keep_releases = 1)
    assert new != old and new.startswith(f"{app.name}_api_key_")
    task = manager.docker("ps", "-q", "--filter", f"label=com.docker.swarm.service.name={app.name}_web").split()[0]
    assert manager.exec(task, "cat", "/run/secrets/api_key") == b"key-two\n"
    doctor = json.loads(app.berth("doctor", "--json", "--host", "h1").stdout)
    checks = {(c["id"], c["status"], c["summary"]) for c in doctor[0]["checks"] if c["id"].startswith("swarm.")}
    assert ("swarm.nodes", "ok", "3 of 3 nodes ready and active") in checks
    assert {c[1] for c in checks if c[0] == "swarm.service"} == {"ok"} and len(checks) == 3, checks
    stack_file = (manager.home() / ".berth" / app.name / "releases").glob("*.stack/stack.yml")
    for path in stack_file:  # kept per release for a rollback, without a value of the env file
        assert "SECRET_KEY" not in path.read_text() and "tk-" not in path.read_text()

    # the images of releases no longer kept lose their tags on the manager and on the nodes
    def tags(server) -> set[str]:
        return set(server.docker("images", "--format", "{{.Tag}}", f"berth-releases/{app.name}/web").split())

    def only_tasks_of(image_id: str) -> bool:
        """No container of an older web task is left on any node (docker refuses to untag an image one uses)."""
        for s in servers:
            ids = s.docker("ps", "-aq", "--filter", f"label=com.docker.swarm.service.name={app.name}_web").split()
            if ids and set(s.docker("inspect", "--format", "{{.Image}}", *ids).split()) != {image_id}:
                return False
        return True

    manager.docker("swarm", "update", "--task-history-limit", "0")  # swarm drops a replaced task's container
    try:
        a = app.git("rev-parse", "HEAD")
        b = app.commit("version b", web__VERSION="b\n")
        assert deploy(app)[0] == 0
        deadline = time.monotonic() + 60
        while not only_tasks_of(built(app, b)) and time.monotonic() < deadline:
            time.sleep(1)
        assert only_tasks_of(built(app, b))
        c = app.commit("version c", web__VERSION="c\n")
        code, outcome = deploy(app)
        assert code == 0, (outcome.get("error"), outcome.get("steps"))
        # keep_releases = 1: the manager keeps c's image (b's stays while its stopped tasks hold it); a node
        # keeps what the manager kept before this deploy, and this deploy's: b and c
        assert a[:12] not in tags(manager) and c[:12] in tags(manager)
        for node in servers[1:]:
            assert tags(node) == {b[:12], c[:12]}, node
    finally:
        manager.docker("swarm", "update", "--task-history-limit", "5")


def test_a_health_url_that_fails_after_convergence_puts_the_stack_back(app, swarm, tmp_path, stack_removed):
    servers = stack_app(app, swarm, tmp_path, verify_timeout=30)  # the failing URL is waited for that long
    code, outcome = deploy(app)
    assert code == 0, (outcome.get("error"), outcome.get("steps"))
    verify = {s["step"]: s["detail"] for s in outcome["steps"]}["verify"]
    assert verify == f"http://localhost:{app.port}/health → 200"  # fetched on the manager, from its task
    first = json.loads((servers[0].home() / ".berth" / app.name / "current.json").read_text())

    toml = (app.dir / "berth.toml").read_text()  # the tasks stay healthy; the URL berth checks does not answer
    app.commit("a health URL that 404s", **{"berth.toml": toml.replace(f"{app.port}/health", f"{app.port}/missing")})
    code, outcome = deploy(app)
    assert code == 1, (outcome.get("error"), outcome.get("steps"))
    assert outcome["error"].startswith(f"verify failed on h1: http://localhost:{app.port}/missing answered 404")
    assert f"the stack is back on release {first['id']}" in outcome["error"] and "converged again and verified" in \
        outcome["error"]
    assert outcome["hosts"][0]["state"] == "rolled-back"
    current = json.loads((servers[0].home() / ".berth" / app.name / "current.json").read_text())
    assert current["id"] == first["id"] and current["health_urls"] == [f"http://localhost:{app.port}/health"]
