"""The lock scripts run for real with sh against a temp dir; stale detection and rollback choice as logic."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from datetime import datetime, timedelta, timezone

import pytest

from berth.deploy import lock as lock_stage
from berth.deploy.rollback import pick
from berth.errors import BerthError
from berth.model.release import Release
from berth.remote.commands import lock as lock_commands


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


def test_release_of_a_lock_without_token_removes_only_a_tokenless_one(tmp_path):
    """`berth lock release --force` on a lock berth cannot read (no token in owner.json)."""
    state = tmp_path / "state"
    (state / "lock").mkdir(parents=True)
    (state / "lock" / "owner.json").write_bytes(b"\x00\x01 not json")
    done = sh(lock_commands.release(str(state), None))
    assert (done.returncode, done.stdout) == (0, b"removed\n") and not (state / "lock").exists()
    assert sh(lock_commands.acquire(str(state)), b'{"token": "x"}').returncode == 0
    refused = sh(lock_commands.release(str(state), None))  # it has a token now: not the lock that was seen
    assert refused.returncode == lock_commands.NOT_OURS and (state / "lock" / "owner.json").exists()
    assert sh(lock_commands.release(str(state), None)).returncode == lock_commands.NOT_OURS
    assert sh(lock_commands.release(str(state), "x")).stdout == b"removed\n"
    assert sh(lock_commands.release(str(state), "x")).stdout == b"gone\n"


def test_release_refuses_a_token_that_is_not_one():
    with pytest.raises(ValueError):
        lock_commands.release("/s", "x'; rm -rf /; '")


def _owner(**kw) -> dict:
    base = {"token": "t", "who": "ann", **lock_stage.machine_identity(), "pid": os.getpid(),
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
    assert pick(H, H[3], None).id == "r2"
    assert pick(H, None, None).id == "r4"


def test_pick_by_id_or_commit_prefix():
    assert pick(H, H[3], "r1").id == "r1"
    assert pick(H, H[3], "bbb").id == "r2"
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
    assert pick(REVIEW_HISTORY, running, running["id"]).to_record() == running
    assert pick(REVIEW_HISTORY, running, "a9f").id == REVIEW_HISTORY[1]["id"]


def test_pick_without_an_earlier_release_says_so():
    with pytest.raises(BerthError, match="no earlier successful release"):
        pick(H[:1], H[0], None)


def test_pick_returns_to_a_release_of_the_same_commit_that_ran_other_secret_files_or_env():
    """A bad secret or setting is undone by a rollback: the release before it differs only in those."""
    images = {"web": {"name": "app-web", "id": "sha256:img"}}
    base = {"commit": "a" * 40, "result": "ok", "images": images, "env_checksum": "sha256:e1"}
    before = {**base, "id": "R1", "files_checksum": "hmac-sha256:f1"}
    for changed in ({"files_checksum": "hmac-sha256:f2"}, {"env_checksum": "sha256:e2", "files_checksum": "hmac-sha256:f1"}):
        running = {**base, "id": "R2", **changed}
        assert pick([before, running], running, None).id == "R1"
    same = {**before, "id": "R2"}
    with pytest.raises(BerthError, match="no earlier successful release"):
        pick([before, same], same, None)


def test_a_changed_secret_file_recreates_the_services_that_mount_it_and_only_after_a_first_deploy():
    from berth.deploy.decide import file_users_to_recreate, skip_up

    files = {"secrets/db.txt": ["db", "web"], "nginx.conf": ["proxy"]}
    current = Release(id="R1", commit="a" * 40, result="ok", files_checksum="hmac-sha256:one")
    assert file_users_to_recreate(current, files, "hmac-sha256:two") == ["db", "proxy", "web"]
    assert file_users_to_recreate(current, files, "hmac-sha256:one") == []
    assert file_users_to_recreate(None, files, "hmac-sha256:two") == []  # new containers read the new files
    assert file_users_to_recreate(Release(id="R0", result="ok"), files, "hmac-sha256:two") == ["db", "proxy", "web"]
    # and a changed file is never "nothing changed"
    assert not skip_up(current, "a" * 40, None, [], [], "hmac-sha256:two")


def test_the_files_digest_is_keyed_with_the_env_file_and_changes_with_any_file(tmp_path):
    from berth.deploy.stages.ship_env import files_digest

    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "pw.txt").write_text("hunter2\n")
    (tmp_path / "c.conf").write_text("a\n")
    one = files_digest(tmp_path, ["s/pw.txt", "c.conf"], b"A=1\n")
    assert one == files_digest(tmp_path, ["c.conf", "s/pw.txt"], b"A=1\n")  # the order is the digest's own
    assert one != files_digest(tmp_path, ["s/pw.txt", "c.conf"], b"A=2\n")
    import hashlib
    assert hashlib.sha256(b"hunter2\n").hexdigest() not in one and "hunter2" not in one
    (tmp_path / "c.conf").write_text("b\n")
    assert one != files_digest(tmp_path, ["s/pw.txt", "c.conf"], b"A=1\n")


def test_noop_deploy_only_when_the_recorded_containers_still_run():
    """A container recreated by hand (same image, maybe another environment) makes the deploy run compose."""
    from berth.deploy.decide import running_as_recorded as _running_as_recorded
    from berth.remote.engines.compose import ContainerState

    def running(cid: str) -> ContainerState:
        return ContainerState("web", "app-web-1", cid, "running", "healthy", 0, 0, "", "unless-stopped", "app-web",
                              "sha256:img")

    current = {"images": {"web": {"name": "app-web", "id": "sha256:img"}}, "containers": {"web": "c1"}}
    assert _running_as_recorded([running("c1")], ["web"], current)
    assert not _running_as_recorded([running("c2")], ["web"], current)
    # releases recorded before container ids were kept still count as running
    assert _running_as_recorded([running("c2")], ["web"], {"images": current["images"]})


# --------------------------------------------------------------------------- stale-lock takeover, for real


class LocalConn:
    """The transport, with the server being this machine's sh (the generated scripts run for real)."""

    def __init__(self, path: str | None = None, before_run=None):
        self.env = {**os.environ, **({"PATH": path} if path else {})}
        self.before_run = before_run  # called with the script about to run (a hook to interleave)

    def run(self, script: str, *, stdin: bytes | None = None, timeout: float | None = None, check: bool = False):
        from berth.remote.transport import Result

        if self.before_run:
            self.before_run(script)
        proc = subprocess.run(["sh", "-c", script], input=stdin or b"", capture_output=True, env=self.env,
                              timeout=timeout or 60)
        return Result(script, proc.returncode, proc.stdout, proc.stderr, 0.0)


def _session(state, conn):
    from types import SimpleNamespace

    return SimpleNamespace(conn=conn, state_dir=str(state), host=SimpleNamespace(label="web1"))


def _dead_pid() -> int:
    dead = subprocess.Popen(["true"])
    dead.wait()
    return dead.pid


def _stale_lock(state) -> dict:
    """A lock left by a berth of this machine that was killed."""
    owner = {**lock_stage.new_owner("ci", "0" * 40, "", "deploy"), "pid": _dead_pid()}
    (state / "lock").mkdir(parents=True)
    (state / "lock" / "owner.json").write_text(json.dumps(owner))
    return owner


def _path_without_flock(tmp_path) -> str:
    """A PATH with the tools the lock scripts use, but no flock: the mkdir-mutex fallback."""
    import shutil

    bin_dir = tmp_path / "no-flock-bin"
    bin_dir.mkdir()
    for tool in ("sh", "mkdir", "cat", "mv", "rm", "rmdir", "grep", "find", "sleep"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    return str(bin_dir)


@pytest.mark.parametrize("mutex", ["flock", "mkdir"])
def test_concurrent_takeovers_of_one_stale_lock_leave_exactly_one_holder(tmp_path, mutex):
    """20 berths take over the same stale lock at once, 3 others just acquire: one holds it, the rest are refused."""
    import threading

    state = tmp_path / "state"
    _stale_lock(state)
    path = _path_without_flock(tmp_path) if mutex == "mkdir" else None
    owners = [lock_stage.new_owner(f"ci-{i}", None, "", "deploy") for i in range(23)]
    won, refused = [], []
    start = threading.Barrier(len(owners))

    def deploy(owner: dict) -> None:
        session = _session(state, LocalConn(path))
        start.wait()
        try:
            if owner["who"] in ("ci-20", "ci-21", "ci-22"):  # plain acquires: no takeover logic
                result = session.conn.run(lock_commands.acquire(str(state)), stdin=json.dumps(owner).encode())
                (won if result.ok else refused).append(owner["token"])
            else:
                lock_stage.acquire(session, owner)
                won.append(owner["token"])
        except BerthError as exc:
            assert "is locked by" in exc.what
            refused.append(owner["token"])

    threads = [threading.Thread(target=deploy, args=(o,)) for o in owners]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(won) == 1 and len(refused) == 22, (won, refused)
    assert json.loads((state / "lock" / "owner.json").read_text())["token"] == won[0]
    assert sorted(p.name for p in state.iterdir() if p.name.startswith("lock")) in (
        ["lock", "lock.break"], ["lock"])  # no broken lock left behind, nor a mutex


def test_a_breaker_paused_between_reading_and_breaking_leaves_the_new_lock_alone(tmp_path):
    """The review's interleaving: A and B both see the stale lock; A takes it over; then B goes on."""
    state = tmp_path / "state"
    _stale_lock(state)
    alice = lock_stage.new_owner("alice", "a" * 40, "", "deploy")
    bob = lock_stage.new_owner("bob", "b" * 40, "", "deploy")
    calls = []

    def pause_b(script: str) -> None:
        calls.append(script)
        if len(calls) == 2:  # B has read the stale owner (1st call) and is about to break it: A runs now
            held = lock_stage.acquire(_session(state, LocalConn()), alice)
            assert held.took_over and "ci" in held.took_over

    with pytest.raises(BerthError, match="is locked by alice"):
        lock_stage.acquire(_session(state, LocalConn(before_run=pause_b)), bob)
    assert json.loads((state / "lock" / "owner.json").read_text())["token"] == alice["token"]


def test_an_acquire_between_mkdir_and_writing_its_owner_is_not_broken(tmp_path):
    state = tmp_path / "state"
    stale = _stale_lock(state)
    (state / "lock" / "owner.json").unlink()  # the stale lock is gone and a new acquire has just made the dir
    result = sh(lock_commands.release(str(state), stale["token"]))
    assert result.returncode == lock_commands.NOT_OURS and (state / "lock").is_dir()


def test_a_lock_of_another_pid_namespace_with_the_same_hostname_is_not_ours():
    """CI containers share a hostname; a pid from another pid namespace says nothing about this one."""
    dead = _dead_pid()
    ours = lock_stage.new_owner("ci", None, "", "deploy")
    assert "gone" in lock_stage.stale_reason({**ours, "pid": dead})
    other_container = {**ours, "pid": dead, "pid_ns": "pid:[4026599999]"}
    assert other_container["machine"] == socket.gethostname()
    assert lock_stage.stale_reason(other_container) is None
    rebooted = {**ours, "pid": dead, "boot_id": "00000000-0000-0000-0000-000000000000"}
    assert lock_stage.stale_reason(rebooted) is None


def test_an_owner_record_of_an_older_berth_is_never_judged_by_pid_but_still_by_age():
    old_format = {"token": "t", "who": "ann", "machine": socket.gethostname(), "pid": _dead_pid(), "pid_start": "1",
                  "since": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    assert lock_stage.stale_reason(old_format) is None and not lock_stage.process_gone(old_format)
    old = (datetime.now(timezone.utc) - timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert "3h old" in lock_stage.stale_reason({**old_format, "since": old})


def test_a_lock_of_another_container_is_not_taken_over(tmp_path):
    state = tmp_path / "state"
    owner = {**lock_stage.new_owner("ci", None, "", "deploy"), "pid": _dead_pid(), "pid_ns": "pid:[4026599999]"}
    (state / "lock").mkdir(parents=True)
    (state / "lock" / "owner.json").write_text(json.dumps(owner))
    with pytest.raises(BerthError, match="is locked by ci"):
        lock_stage.acquire(_session(state, LocalConn()), lock_stage.new_owner("bob", None, "", "deploy"))
    assert json.loads((state / "lock" / "owner.json").read_text())["token"] == owner["token"]


def test_lock_release_force_removes_only_the_lock_that_was_seen(tmp_path):
    state = tmp_path / "state"
    seen = _stale_lock(state)
    session = _session(state, LocalConn())
    # meanwhile that lock was released and someone else took one
    assert sh(lock_commands.release(str(state), seen["token"])).returncode == 0
    assert sh(lock_commands.acquire(str(state)), json.dumps({"token": "newer", "who": "carol"}).encode()).returncode == 0
    with pytest.raises(BerthError, match="changed hands.*carol"):
        lock_stage.break_lock(session, seen)
    assert (state / "lock").is_dir()
    assert lock_stage.break_lock(session, {"token": "newer"}) is True and not (state / "lock").exists()
    assert lock_stage.break_lock(session, {"token": "newer"}) is False


def test_a_loser_never_sees_the_winner_without_its_owner_record(tmp_path):
    """The winner's owner record arrives slowly over SSH; whoever loses still reads who holds the lock."""
    import time

    state = str(tmp_path / "state")
    slow = subprocess.Popen(["sh", "-c", lock_commands.acquire(state)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(0.3)  # the slow one started first and is still reading its stdin
    fast = sh(lock_commands.acquire(state), json.dumps({"token": "fast", "who": "fay"}).encode())
    slow_out, _ = slow.communicate(json.dumps({"token": "slow", "who": "sam"}).encode())
    outcomes = {"fast": (fast.returncode, fast.stdout), "slow": (slow.returncode, slow_out)}
    winner = next(name for name, (code, _) in outcomes.items() if code == 0)
    loser_code, loser_out = outcomes["slow" if winner == "fast" else "fast"]
    assert loser_code == lock_commands.HELD and json.loads(loser_out)["token"] == winner
    assert sorted(os.listdir(tmp_path / "state")) == ["lock"]  # no owner record left behind


def test_every_loser_under_contention_reads_the_winners_token(tmp_path):
    state = str(tmp_path / "state")
    procs = [subprocess.Popen(["sh", "-c", lock_commands.acquire(state)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(12)]
    results = []
    for i, p in enumerate(procs):
        out, _ = p.communicate(json.dumps({"token": f"t{i}"}).encode())
        results.append((p.returncode, out))
    winner = next(f"t{i}" for i, (code, _) in enumerate(results) if code == 0)
    assert [json.loads(out)["token"] for code, out in results if code != 0] == [winner] * 11
