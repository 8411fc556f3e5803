"""Release safety on the sandbox: lock, rollback (automatic and manual), hooks, interruptions."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.sandbox.conftest import GIT_ENV


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except OSError as exc:
        return 0, str(exc)


def current(app) -> dict:
    return json.loads((app.state_dir / "current.json").read_text())


def history(app) -> list[dict]:
    return [json.loads(line) for line in (app.state_dir / "history.jsonl").read_text().splitlines()]


def deploy_ok(app, *args) -> str:
    result = app.berth("deploy", "--push", *args)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def test_failing_release_is_rolled_back_automatically_and_verified(app):
    deploy_ok(app)
    good = current(app)
    (app.dir / ".env.docker").write_text((app.dir / ".env.docker").read_text() + "FAIL_HEALTH=1\n")
    app.commit("version 2", web__VERSION="2\n")
    result = app.berth("deploy", "--push", "--timeout", "40")
    out = result.stdout + result.stderr
    assert result.returncode == 1
    assert "verify failed" in out and f"rolled back to release {good['id']}" in out and "healthy again" in out
    assert get(app.url("/version")) == (200, "1\n")  # the previous release serves again...
    assert get(app.url("/health"))[0] == 200  # ...healthy, with its own env file
    assert b"FAIL_HEALTH" not in (app.app_dir / ".env.docker").read_bytes()
    assert app.server_head() == good["commit"]
    assert current(app) == good
    failed = history(app)[-1]
    assert failed["result"] == "failed" and failed["rolled_back_to"] == good["id"]
    assert "rollback" in (app.state_dir / "audit.jsonl").read_text()


def test_no_rollback_keeps_the_failed_release_for_debugging(app):
    deploy_ok(app)
    (app.dir / ".env.docker").write_text((app.dir / ".env.docker").read_text() + "FAIL_HEALTH=1\n")
    app.commit("version 2", web__VERSION="2\n")
    result = app.berth("deploy", "--push", "--timeout", "40", "--no-rollback")
    assert result.returncode == 4 and "--no-rollback" in result.stderr  # the host needs a person
    assert get(app.url("/version")) == (200, "2\n")


def test_manual_rollback_reuses_kept_images_and_can_go_forward_again(app):
    deploy_ok(app)
    first = current(app)
    app.commit("version 2", web__VERSION="2\n")
    deploy_ok(app)
    second = current(app)
    result = app.berth("rollback")
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "kept images restored, no build" in out
    assert f"from {second['id']} (ok, commit {second['commit'][:7]}) to release {first['id']}" in out
    assert get(app.url("/version")) == (200, "1\n")
    now = current(app)
    assert now["kind"] == "rollback" and now["rollback_of"] == first["id"] and now["commit"] == first["commit"]
    # forward again to a chosen release, by id prefix
    result = app.berth("rollback", second["id"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert get(app.url("/version")) == (200, "2\n")
    listing = app.berth("releases").stdout
    assert first["id"] in listing and second["id"] in listing and "rollback" in listing


def test_a_held_lock_refuses_naming_the_owner_and_lock_wait_waits(app):
    deploy_ok(app)
    held = app.berth("lock", "acquire", "-m", "db maintenance")
    assert held.returncode == 0, held.stderr
    result = app.berth("deploy")
    assert result.returncode == 3
    assert "is locked by" in result.stderr and "db maintenance" in result.stderr and "--lock-wait" in result.stderr
    status = app.berth("lock", "status")
    assert status.returncode == 3 and "db maintenance" in status.stdout
    # a deploy that waits gets through once the lock is released
    env = {**__import__("os").environ, **GIT_ENV, "NO_COLOR": "1"}
    waiting = subprocess.Popen([sys.executable, "-m", "berth", "deploy", "--lock-wait", "60"], cwd=app.dir, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(3)
    assert waiting.poll() is None  # still waiting
    assert app.berth("lock", "release").returncode == 0
    out, _ = waiting.communicate(timeout=120)
    assert waiting.returncode == 0, out
    audit = (app.state_dir / "audit.jsonl").read_text()
    assert "lock-acquired" in audit and "lock-released" in audit


def test_two_concurrent_deploys_exactly_one_runs(app):
    deploy_ok(app)
    app.commit("version 2", web__VERSION="2\n")
    app.push()
    env = {**__import__("os").environ, **GIT_ENV, "NO_COLOR": "1"}
    procs = [subprocess.Popen([sys.executable, "-m", "berth", "deploy"], cwd=app.dir, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=180)[0] for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 3], outs
    loser = outs[[p.returncode for p in procs].index(3)]
    assert "is locked by" in loser and "deploy of" in loser
    assert get(app.url("/version")) == (200, "2\n")
    assert len([r for r in history(app) if r["commit"] == current(app)["commit"]]) == 1


STEPS = ["lock", "sync", "env", "deploy", "verify", "record"]


def cut_network_during(app, step: str, marker) -> subprocess.CompletedProcess:
    """Run a deploy that pauses as `step` starts; cut the host's link and its SSH connection, let it go on."""
    env = {**__import__("os").environ, **GIT_ENV, "NO_COLOR": "1", "BERTH_RECONNECT_SECONDS": "3",
           "BERTH_FAILPOINT": f"{step}:pause", "BERTH_FAILPOINT_FILE": str(marker)}
    proc = subprocess.Popen([sys.executable, "-m", "berth", "deploy", "--push"], cwd=app.dir, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    link = f"bth-h{app.server.host.index}"
    try:
        subprocess.run(["ip", "link", "set", link, "down"], check=True)
        # the established TCP connection would only notice after keepalives; end it as a cut would
        subprocess.run(["pkill", "-KILL", "-f", f"ControlMaster=yes.*{app.server.host.address}"], check=False)
        marker.unlink()
        out, err = proc.communicate(timeout=180)
    finally:
        subprocess.run(["ip", "link", "set", link, "up"], check=True)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.mark.parametrize("action,step", [("kill", s) for s in STEPS] + [("cut", s) for s in STEPS[1:]])
def test_interrupted_deploy_is_reported_and_a_rerun_converges(app, action, step, tmp_path):
    deploy_ok(app)
    app.commit("version 2", web__VERSION="2\n")
    target = app.git("rev-parse", "HEAD")
    if action == "kill":
        broken = app.berth("deploy", "--push", env={"BERTH_FAILPOINT": f"{step}:kill"})
    else:
        broken = cut_network_during(app, step, tmp_path / "paused")
    out = broken.stdout + broken.stderr
    assert "Traceback" not in out
    if action == "kill":
        assert broken.returncode == -9
    else:
        assert broken.returncode not in (0, -9) and "connection" in out.lower()
    status = app.berth("status")
    assert "Traceback" not in status.stdout + status.stderr
    lock_left = (app.state_dir / "lock").exists()
    if lock_left:
        assert "LOCKED" in status.stdout and "stale" in status.stdout and "berth lock release" in status.stdout
    if action == "kill" and step != "lock":
        assert lock_left  # a killed berth cannot release it; status shows it
    rerun = app.berth("deploy")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    if lock_left and step not in ("lock", "preflight"):  # the next run records the unfinished deploy as failed
        unfinished = [r for r in history(app) if "never finished" in r.get("failure", "")]
        assert [r["commit"] for r in unfinished] == [target] and "never finished" in rerun.stdout + rerun.stderr
    assert current(app)["commit"] == target and app.server_head() == target
    assert get(app.url("/version")) == (200, "2\n")
    assert not (app.state_dir / "lock").exists()


def test_named_volume_records_survive_10_deploys_and_3_rollbacks(app):
    def records() -> list[str]:
        out = app.server.exec(f"{app.name}-worker-1", "cat", "/data/records.log").decode()
        return out.splitlines()

    deploy_ok(app)
    seen = records()
    worker = (app.dir / "worker" / "worker.sh").read_text()
    deploys, rollbacks = 1, 0
    for i in range(9):  # each new worker image recreates the worker, which appends a record
        app.commit(f"worker {i}", **{"worker/worker.sh": worker + f"# build {i}\n"})
        deploy_ok(app)
        deploys += 1
        if i in (2, 5, 8):
            assert app.berth("rollback").returncode == 0
            rollbacks += 1
        now = records()
        assert now[: len(seen)] == seen  # nothing written before is ever lost
        seen = now
    assert (deploys, rollbacks) == (10, 3)
    assert len(seen) >= 1 + 9 + 3  # one record per worker start: first deploy, 9 deploys, 3 rollbacks


def test_corrupted_records_and_lock_are_reported_not_a_traceback(app):
    deploy_ok(app)
    (app.state_dir / "current.json").write_text("{not json")
    with (app.state_dir / "history.jsonl").open("a") as fh:
        fh.write("garbage line\n")
    status = app.berth("status")
    out = status.stdout + status.stderr
    assert "Traceback" not in out and "current.json is not valid JSON" in out and "not a JSON record" in out
    (app.state_dir / "lock").mkdir()
    (app.state_dir / "lock" / "owner.json").write_text("\x00\x01 not json")
    user = app.server.host.user
    subprocess.run(["chown", "-R", f"{user}:{user}", str(app.state_dir)], check=True)
    result = app.berth("deploy")
    out = result.stdout + result.stderr
    assert result.returncode == 3 and "Traceback" not in out
    assert "an owner berth cannot read" in out and "berth lock release --force" in out
    assert app.berth("lock", "release", "--force").returncode == 0
    result = app.berth("deploy")
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "treating this host as having no running release" in out
    assert current(app)["result"] == "ok"


def test_pre_deploy_hook_failure_changes_nothing_running_and_hooks_get_their_environment(app, tmp_path):
    deploy_ok(app)
    good = current(app)
    before = app.server.containers(app.name)
    marker = tmp_path / "post-hook.txt"
    app.commit("hooks", **{"berth.toml": f'''
[environments.staging]
pre_deploy = ["docker compose config | grep -q 'published: \\"{app.port}\\"'", "test -f web/FAIL_PRE && exit 7 || true"]
post_deploy = ["local: echo \\"$BERTH_RELEASE $BERTH_COMMIT $BERTH_ENVIRONMENT\\" > {marker}"]
''', "web/FAIL_PRE": "x\n", "web/VERSION": "2\n"})
    result = app.berth("deploy", "--push")
    out = result.stdout + result.stderr
    assert result.returncode == 1 and "pre-deploy hook" in out and "exit code 7" in out
    assert app.server.containers(app.name) == before  # nothing running changed
    assert app.server_head() == good["commit"]  # the checkout is back at the running release
    assert current(app) == good and not marker.exists()
    app.git("rm", "-q", "web/FAIL_PRE")
    new = app.commit("hooks pass")
    deploy_ok(app)
    assert get(app.url("/version")) == (200, "2\n")
    release_id, commit, environment = marker.read_text().split()
    assert (release_id, commit, environment) == (current(app)["id"], new, "staging")
