"""The lock scripts run for real with sh against a temp dir; stale detection and rollback choice as logic."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from datetime import datetime, timedelta, timezone

import pytest

from berth import lock as lock_stage
from berth.commands import lock as lock_commands
from berth.errors import BerthError
from berth.rollback import pick


def sh(script: str, stdin: bytes = b"") -> subprocess.CompletedProcess:
    return subprocess.run(["sh", "-c", script], input=stdin, capture_output=True)


def test_lock_is_exclusive_and_only_its_token_releases_it(tmp_path):
    state = str(tmp_path / "state")
    first = json.dumps({"token": "aaa", "who": "ann"}).encode()
    assert sh(lock_commands.acquire(state), first).returncode == 0
    second = sh(lock_commands.acquire(state), json.dumps({"token": "bbb"}).encode())
    assert second.returncode == lock_commands.HELD and json.loads(second.stdout)["who"] == "ann"
    refused = sh(lock_commands.release(state, "bbb"))
    assert refused.returncode == lock_commands.NOT_OURS and (tmp_path / "state" / "lock").exists()
    assert sh(lock_commands.release(state, "aaa")).returncode == 0
    assert not (tmp_path / "state" / "lock").exists()
    assert sh(lock_commands.release(state, "aaa")).returncode == 0  # releasing an unlocked host is fine
    assert sh(lock_commands.status(state)).stdout == b""


def test_lock_acquire_is_atomic_under_contention(tmp_path):
    state = str(tmp_path / "state")
    procs = [subprocess.Popen(["sh", "-c", lock_commands.acquire(state)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(20)]
    for i, p in enumerate(procs):
        p.communicate(json.dumps({"token": f"t{i}"}).encode())
    assert sorted(p.returncode for p in procs) == [0] + [lock_commands.HELD] * 19


def test_force_release_reports_a_lock_it_cannot_remove(tmp_path):
    state = tmp_path / "state"
    assert sh(lock_commands.acquire(str(state)), b'{"token": "x"}').returncode == 0
    assert sh(lock_commands.force_release(str(state))).returncode == 0 and not (state / "lock").exists()


def _owner(**kw) -> dict:
    base = {"token": "t", "who": "ann", "machine": socket.gethostname(), "pid": os.getpid(),
            "pid_start": lock_stage._process_start(os.getpid()),
            "since": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    return {**base, **kw}


def test_stale_when_the_owner_process_on_this_machine_is_gone():
    assert lock_stage.stale_reason(_owner()) is None  # this very process: alive
    dead = subprocess.Popen(["true"])
    dead.wait()
    assert "gone" in lock_stage.stale_reason(_owner(pid=dead.pid, pid_start="1"))
    assert "gone" in lock_stage.stale_reason(_owner(pid_start="0"))  # same pid, another process (reused)


def test_stale_when_old_and_not_when_another_machine_holds_it_recently():
    other = _owner(machine="someone-elses-laptop", pid=1)
    assert lock_stage.stale_reason(other) is None
    old = (datetime.now(timezone.utc) - timedelta(hours=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert "5h old" in lock_stage.stale_reason({**other, "since": old})
    assert lock_stage.stale_reason({}) is not None


def test_describe_names_who_what_and_why():
    text = lock_stage.describe(_owner(command="deploy", commit="abcdef1234", message="hotfix"))
    assert "ann" in text and "deploy of abcdef1" in text and '"hotfix"' in text
    assert lock_stage.describe({}) == "an owner berth cannot read"


H = [
    {"id": "r1", "commit": "aaa111", "result": "ok"},
    {"id": "r2", "commit": "bbb222", "result": "ok"},
    {"id": "r3", "commit": "ccc333", "result": "failed"},
    {"id": "r4", "commit": "ccc333", "result": "ok"},
]


def test_pick_previous_good_release_skips_failed_and_the_current_commit():
    assert pick(H, H[3], None)["id"] == "r2"
    assert pick(H, None, None)["id"] == "r4"


def test_pick_by_id_or_commit_prefix():
    assert pick(H, H[3], "r1")["id"] == "r1"
    assert pick(H, H[3], "bbb")["id"] == "r2"
    with pytest.raises(BerthError, match="no successful release matches 'r3'"):
        pick(H, H[3], "r3")  # failed releases are not a target


REVIEW_HISTORY = [
    {"id": "20261120T100000Z-a1b2c3d", "commit": "a1b2c3d" + "0" * 33, "result": "ok", "finished_at": "2026-11-20T10:01:00Z"},
    {"id": "20261125T100000Z-a9f8e7d", "commit": "a9f8e7d" + "0" * 33, "result": "ok", "finished_at": "2026-11-25T10:01:00Z"},
    {"id": "20261130T100000Z-ffee001", "commit": "ffee001" + "0" * 33, "result": "ok", "finished_at": "2026-11-30T10:01:00Z"},
]


def test_pick_refuses_an_ambiguous_prefix_and_lists_the_candidates():
    """The review's `berth rollback a`: two releases match; berth used to take the newest silently."""
    with pytest.raises(BerthError) as refused:
        pick(REVIEW_HISTORY, REVIEW_HISTORY[-1], "a")
    assert refused.value.exit_code == 2 and "'a' matches 2 releases" in refused.value.what
    for r in REVIEW_HISTORY[:2]:
        assert f"{r['id']} (commit {r['commit'][:7]}, {r['finished_at']})" in refused.value.what
    assert REVIEW_HISTORY[2]["id"] not in refused.value.what


def test_pick_refuses_a_prefix_that_also_matches_the_running_release():
    """The review's `berth rollback 2`: every id starts with 2, the newest is the running release."""
    with pytest.raises(BerthError) as refused:
        pick(REVIEW_HISTORY, REVIEW_HISTORY[-1], "2")
    assert refused.value.exit_code == 2 and "matches 3 releases" in refused.value.what
    assert "20261130T100000Z-ffee001 (commit ffee001, 2026-11-30T10:01:00Z, running)" in refused.value.what


def test_pick_refuses_the_running_release_unless_named_in_full():
    running = REVIEW_HISTORY[-1]
    with pytest.raises(BerthError, match="is the running release") as refused:
        pick(REVIEW_HISTORY, running, "ffee")
    assert refused.value.exit_code == 2 and f"berth rollback {running['id']}" in refused.value.fix
    assert pick(REVIEW_HISTORY, running, running["id"]) is running
    assert pick(REVIEW_HISTORY, running, "a9f")["id"] == REVIEW_HISTORY[1]["id"]


def test_pick_without_an_earlier_release_says_so():
    with pytest.raises(BerthError, match="no earlier successful release"):
        pick(H[:1], H[0], None)


def test_noop_deploy_only_when_the_recorded_containers_still_run():
    """A container recreated by hand (same image, maybe another environment) makes the deploy run compose."""
    from berth.engines.compose import ContainerState
    from berth.pipeline import _running_as_recorded

    def running(cid: str) -> ContainerState:
        return ContainerState("web", "app-web-1", cid, "running", "healthy", 0, 0, "", "unless-stopped", "app-web",
                              "sha256:img")

    current = {"images": {"web": {"name": "app-web", "id": "sha256:img"}}, "containers": {"web": "c1"}}
    assert _running_as_recorded([running("c1")], ["web"], current)
    assert not _running_as_recorded([running("c2")], ["web"], current)
    # releases recorded before container ids were kept still count as running
    assert _running_as_recorded([running("c2")], ["web"], {"images": current["images"]})
