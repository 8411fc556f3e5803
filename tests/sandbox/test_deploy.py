"""`berth deploy` end to end against the sandbox: real sshd, real git remote, real docker engine."""

from __future__ import annotations

import json
import stat
import urllib.request

from berth.errors import NEEDS_A_PERSON


def get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.status, resp.read().decode()


def test_first_deploy_from_clean_clone_runs_healthy_and_records_release(app):
    logins = app.server.ssh_logins()
    result = app.berth("deploy", "--push")
    assert result.returncode == 0, result.stdout + result.stderr
    for step in ("check", "push", "connect", "lock", "sync", "env", "deploy", "verify", "record"):
        assert f"✓ {step}" in result.stdout
    commit = app.git("rev-parse", "HEAD")

    assert get(app.url("/health")) == (200, "ok\n")
    assert get(app.url("/ready")) == (200, "ready\n")
    assert get(app.url("/version"))[1].strip() == "1"
    # the server checked out exactly the validated commit, by git
    assert (app.app_dir / ".git").is_dir()
    assert app.server_head() == commit
    # the worker wrote into its named volume
    records = app.server.exec(f"{app.name}-worker-1", "cat", "/data/records.log").decode()
    assert "start" in records
    # the release record says what runs, for berth status
    current = json.loads((app.state_dir / "current.json").read_text())
    assert current["commit"] == commit and current["result"] == "ok" and current["environment"] == "staging"
    assert current["deployed_by"] and current["finished_at"]
    assert app.server.ssh_logins() == logins + 1  # one SSH connection for the whole deploy

    status = app.berth("status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert commit[:7] in status.stdout and "web" in status.stdout and "healthy" in status.stdout


def test_new_commit_redeploy_changes_running_version(app):
    assert app.berth("deploy", "--push").returncode == 0
    new = app.commit("version 2", web__VERSION="2\n")
    result = app.berth("deploy", "--push")
    assert result.returncode == 0, result.stdout + result.stderr
    assert get(app.url("/version"))[1].strip() == "2"
    assert json.loads((app.state_dir / "current.json").read_text())["commit"] == new
    assert "✓ build" in result.stdout and "✓ deploy" in result.stdout


def test_noop_redeploy_restarts_nothing(app):
    assert app.berth("deploy", "--push").returncode == 0
    before = app.server.containers(app.name)
    assert set(before) == {"web", "worker"}
    result = app.berth("deploy")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "nothing changed since the running release" in result.stdout and "already at" in result.stdout
    assert app.server.containers(app.name) == before  # same containers, same start times
    # a container stopped by hand is not "nothing changed": the next deploy starts it again
    app.server.docker("stop", f"{app.name}-worker-1")
    result = app.berth("deploy")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "nothing changed" not in result.stdout
    assert app.server.containers(app.name)["web"] == before["web"]
    assert app.server.containers(app.name)["worker"][0] == before["worker"][0]  # same container, started again


def test_env_values_arrive_byte_identical_in_the_container(app):
    # compose's env-file semantics: single quotes are literal, double quotes process \" and \\
    cases = {
        "V_SPACES": ("'a value  with   spaces'", "a value  with   spaces"),
        "V_DOUBLE": ('"say \\"hi\\" and \'bye\'"', "say \"hi\" and 'bye'"),
        "V_SINGLE": ("'say \"hi\" $NOT_EXPANDED ${HOME}'", 'say "hi" $NOT_EXPANDED ${HOME}'),
        "V_DOLLAR": ("'price: $5, $$ and ${X:-y}'", "price: $5, $$ and ${X:-y}"),
        "V_HASH": ("'value # not a comment'", "value # not a comment"),
        "V_BACKSLASH": ("'C:\\path\\to\\file \\n stays'", "C:\\path\\to\\file \\n stays"),
        "V_EQUALS": ("a=b=c==", "a=b=c=="),
        "V_UNICODE": ("'Grüße, 日本語, ñandú 🚀'", "Grüße, 日本語, ñandú 🚀"),
    }
    env_file = app.dir / ".env.docker"
    env_file.write_text(env_file.read_text() + "".join(f"{k}={raw}\n" for k, (raw, _) in cases.items()))
    result = app.berth("deploy", "--push")
    assert result.returncode == 0, result.stdout + result.stderr
    # the file on the server is the same bytes, private to the deploy user
    remote_env = app.app_dir / ".env.docker"
    assert remote_env.read_bytes() == env_file.read_bytes()
    assert stat.S_IMODE(remote_env.stat().st_mode) == 0o600
    for key, (_, expected) in cases.items():
        value = app.server.exec(f"{app.name}-web-1", "awk", 'BEGIN { printf "%s", ENVIRON[ARGV[1]] }', key)
        assert value == expected.encode(), key


def test_failing_healthcheck_fails_deploy_with_service_logs(app):
    env_file = app.dir / ".env.docker"
    env_file.write_text(env_file.read_text() + "FAIL_HEALTH=1\n")
    result = app.berth("deploy", "--push", "--timeout", "45")
    out = result.stdout + result.stderr
    assert result.returncode == NEEDS_A_PERSON  # a first release: there is nothing to roll back to
    assert "✗ verify" in out
    assert "web" in out and "unhealthy" in out
    assert "FAIL_HEALTH is set" in out  # the failing service's own log line
    last = [json.loads(line) for line in (app.state_dir / "history.jsonl").read_text().splitlines()][-1]
    assert last["result"] == "failed"
    assert not (app.state_dir / "current.json").exists()  # a failed release never becomes current
    status = app.berth("status")
    assert status.returncode == 1 and "FAILED" in status.stdout


def test_broken_build_fails_the_deploy_and_keeps_the_running_release(app):
    assert app.berth("deploy", "--push").returncode == 0
    running = json.loads((app.state_dir / "current.json").read_text())
    before = app.server.containers(app.name)
    app.commit("broken build", **{"web/Dockerfile": "FROM busybox:1.35\nRUN exit 3\n"})
    result = app.berth("deploy", "--push")
    out = result.stdout + result.stderr
    assert result.returncode == 1  # failed, and serving what ran before
    assert "✗ build" in out and "`docker compose build` failed" in out and "✓ restore" in out
    assert "RUN exit 3" in out or "returned a non-zero code: 3" in out  # the build output is shown
    assert json.loads((app.state_dir / "current.json").read_text()) == running
    assert app.server.containers(app.name) == before  # the old containers keep serving
    assert get(app.url("/health"))[0] == 200
    assert app.server_head() == running["commit"]  # the checkout is back at the running release


def test_a_name_added_to_the_compose_file_keeps_the_project_the_server_runs(app):
    """A server deployed before berth read `name:` runs the app under the app dir's name; deploying it under the
    new name would start a second copy beside it (its ports taken). berth keeps the name and says how to move."""
    assert app.berth("deploy", "--push").returncode == 0
    before = app.server.containers(app.name)
    compose = (app.dir / "docker-compose.yml").read_text()
    app.commit("name the project", **{"docker-compose.yml": f"name: {app.name}-renamed\n" + compose})
    shown = json.loads(app.berth("config", "--format", "json", check=True).stdout)
    assert shown["name"] == shown["x-berth"]["project"]["value"] == f"{app.name}-renamed"
    result = app.berth("deploy", "--push")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"berth keeps deploying it as '{app.name}'" in result.stdout
    assert app.server.containers(f"{app.name}-renamed") == {}  # no second copy
    after = app.server.containers(app.name)
    assert set(after) == set(before) == {"web", "worker"}
    assert json.loads((app.state_dir / "current.json").read_text())["commit"] == app.git("rev-parse", "HEAD")
    status = app.berth("status")
    assert status.returncode == 0 and "healthy" in status.stdout and f"compose project '{app.name}'" in status.stdout


def test_a_service_from_an_included_file_is_deployed_verified_and_recorded(app):
    """`include:` (compose 2.20+): the worker lives in worker/compose.yaml, a project of its own whose paths are
    relative to worker/. berth deploys both files' services and waits for the included one to be healthy."""
    import yaml

    compose = yaml.safe_load((app.dir / "docker-compose.yml").read_text())
    worker = compose["services"].pop("worker")
    worker.update({"build": ".", "env_file": "../.env.docker"})
    del compose["volumes"]
    app.commit("the worker in its own compose file",
               **{"docker-compose.yml": yaml.safe_dump({"include": ["worker/compose.yaml"], **compose}),
                  "worker__compose.yaml": yaml.safe_dump({"services": {"worker": worker},
                                                          "volumes": {"records": None}})})
    shown = json.loads(app.berth("config", "--format", "json", check=True).stdout)
    assert shown["services"]["worker"]["build"]["context"] == str(app.dir / "worker")
    result = app.berth("deploy", "--push")
    assert result.returncode == 0, result.stdout + result.stderr
    assert set(app.server.containers(app.name)) == {"web", "worker"}
    current = json.loads((app.state_dir / "current.json").read_text())
    assert current["commit"] == app.git("rev-parse", "HEAD")
    assert sorted(current["services"]) == ["web", "worker"]
