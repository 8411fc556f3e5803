"""The release stage against a stand-in server: kept images, records, hooks and verify.

The generated scripts run for real with `sh` (the "server" is a temp dir); `docker` is a stand-in
on PATH that keeps its images and tags in a JSON file and implements the few commands berth uses
with docker's own rules (the `reference` filter is Go's path.Match: `*` does not match `/`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from berth.deploy import release as release_stage
from berth.deploy.stages import hooks as hooks_stage
from berth.deploy.stages import verify as verify_stage
from berth.errors import BerthError
from berth.model.release import Release
from berth.remote.commands import doctor as doctor_commands
from berth.remote.commands import release as release_commands
from berth.remote.engines import compose as compose_engine
from berth.remote.engines.compose import Compose
from berth.remote.transport import Result
from tests.helpers.docker_states import inspect_line

FAKE_DOCKER = r'''
import json, re, sys
from pathlib import Path

state_path = Path(__file__).with_name("state.json")
state = json.loads(state_path.read_text())  # {"tags": {ref: image id}, "images": [image ids]}
log = Path(__file__).with_name("log")
COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
REFERENCE = re.compile(rf"{COMPONENT}(?:/{COMPONENT})*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})?")


def path_match(pattern, name):  # Go's path.Match: * and ? never match "/"
    rx = "".join("[^/]*" if c == "*" else "[^/]" if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(rx, name) is not None


def resolve(what):
    if what in state["images"]:
        return what
    return state["tags"].get(what if ":" in what.rsplit("/", 1)[-1] else what + ":latest")


args = sys.argv[1:]
with log.open("a") as fh:
    fh.write(" ".join(args) + "\n")
if args[0] == "images":
    pattern = args[args.index("--filter") + 1].split("=", 1)[1]
    for ref in sorted(state["tags"]):
        if path_match(pattern, ref.rsplit(":", 1)[0]) or path_match(pattern, ref):
            print(ref)
elif args[0] == "rmi":
    if state["tags"].pop(args[1], None) is None:
        sys.exit(1)
elif args[0] == "tag":
    image, ref = resolve(args[1]), args[2]
    if image is None or not REFERENCE.fullmatch(ref):
        print(f"Error parsing reference: {ref!r} is not a valid repository/tag: invalid reference format",
              file=sys.stderr)
        sys.exit(1)
    state["tags"][ref if ":" in ref.rsplit("/", 1)[-1] else ref + ":latest"] = image
elif args[:2] == ["image", "inspect"]:
    image = resolve(args[-1])
    if image is None:
        sys.exit(1)
    if "--format" in args:
        print(image)
else:
    sys.exit(f"fake docker: {args} is not implemented")
state_path.write_text(json.dumps(state))
'''


class FakeServer:
    """A temp dir as the server: sh runs the scripts, with the stand-in docker first on PATH."""

    def __init__(self, root: Path, tags: dict[str, str] | None = None, images: list[str] | None = None):
        self.root = root
        self.bin = root / "bin"
        self.bin.mkdir(parents=True)
        docker = self.bin / "docker"
        docker.write_text(f"#!{sys.executable}\n{FAKE_DOCKER}")
        docker.chmod(0o755)
        tags = dict(tags or {})
        self.state_file.write_text(json.dumps({"tags": tags, "images": sorted(set(images or []) | set(tags.values()))}))
        self.env = {**os.environ, "PATH": f"{self.bin}:{os.environ['PATH']}"}
        self.scripts: list[str] = []

    @property
    def state_file(self) -> Path:
        return self.bin / "state.json"

    @property
    def tags(self) -> dict[str, str]:
        return json.loads(self.state_file.read_text())["tags"]

    @property
    def log(self) -> list[str]:
        path = self.bin / "log"
        return path.read_text().splitlines() if path.exists() else []

    def run(self, script: str, *, stdin: bytes | None = None, timeout: float | None = None, check: bool = False):
        self.scripts.append(script)
        proc = subprocess.run(["sh", "-c", script], input=stdin or b"", capture_output=True, env=self.env,
                              timeout=timeout or 60)
        return Result(script, proc.returncode, proc.stdout, proc.stderr, 0.0)

    def sh(self, script: str) -> subprocess.CompletedProcess:
        return subprocess.run(["sh", "-c", script], capture_output=True, env=self.env, timeout=60)


def session_on(server: FakeServer, project: str = "app", app_dir: str | None = None):
    return SimpleNamespace(conn=server, state_dir=str(server.root / "state"), app_dir=app_dir or str(server.root / "app"),
                           host=SimpleNamespace(label="web1"),
                           compose=Compose("v2", project, ("docker-compose.yml",), ".env.docker"))


IMG = {c: "sha256:" + c * 64 for c in "abcdef"}


# --------------------------------------------------------------------------- 14: hooks of several commands


MIGRATE_HOOK = "echo running migrations; false  # ./manage.py migrate fails here\necho 'collectstatic ok'"


def test_a_remote_hook_stops_at_its_first_failing_command(tmp_path):
    """The review's repro: the failed migration fails the hook, and collectstatic does not run."""
    script = hooks_stage.remote_hook(str(tmp_path), MIGRATE_HOOK, {"BERTH_RELEASE": "r1", "ODD": "it's $x"})
    result = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert result.stdout == "running migrations\n"


def test_hooks_keep_their_environment_quoting(tmp_path):
    script = hooks_stage.remote_hook(str(tmp_path), 'printf "%s|" "$BERTH_RELEASE" "$ODD"; pwd',
                                     {"BERTH_RELEASE": "r1", "ODD": "it's $x `y`"})
    result = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=60)
    assert result.stdout == f"r1|it's $x `y`|{tmp_path}\n"


@pytest.mark.parametrize("where", ["server", "local"])
def test_run_hooks_fails_the_deploy_on_a_hook_whose_first_command_fails(tmp_path, where):
    server = FakeServer(tmp_path)
    (server.root / "app").mkdir()
    hook = MIGRATE_HOOK if where == "server" else f"local: {MIGRATE_HOOK}"
    release = {"id": "r1", "commit": "abc1234", "environment": "staging", "host": "203.0.113.5"}
    with pytest.raises(BerthError, match="(?s)pre-deploy hook .* failed with exit code 1") as failure:
        hooks_stage.run_hooks("pre", (hook,), session_on(server), release, tmp_path)
    assert "running migrations" in failure.value.details and "collectstatic ok" not in failure.value.details


# --------------------------------------------------------------------------- timeouts


def test_every_command_over_ssh_has_a_finite_timeout(monkeypatch, tmp_path):
    from berth.configuration.target import Host
    from berth.remote.transport import ssh

    seen = []

    def fake_run(argv, **kw):
        seen.append(kw.get("timeout"))
        return subprocess.CompletedProcess(argv, 0, b"", b"")

    monkeypatch.setattr(ssh.subprocess, "run", fake_run)
    conn = ssh.SSHConnection(Host(address="203.0.113.5"), ssh.SSHOptions())
    conn.control_path = tmp_path / "cm"
    conn.run("true")
    conn.run("true", timeout=None)
    conn.run("true", timeout=5)
    conn.control_path.write_text("")
    assert conn.is_alive()
    assert seen == [ssh.DEFAULT_TIMEOUT, ssh.DEFAULT_TIMEOUT, 5, ssh.ALIVE_TIMEOUT]


def test_a_master_connection_that_hangs_is_not_alive(monkeypatch, tmp_path):
    from berth.configuration.target import Host
    from berth.remote.transport import ssh

    def hang(argv, **kw):
        raise subprocess.TimeoutExpired(argv, kw.get("timeout"))

    monkeypatch.setattr(ssh.subprocess, "run", hang)
    conn = ssh.SSHConnection(Host(address="203.0.113.5"), ssh.SSHOptions())
    conn.control_path = tmp_path / "cm"
    conn.control_path.write_text("")
    assert conn.is_alive() is False


def test_status_gives_every_command_a_timeout(monkeypatch, project):
    from berth.configuration.target import load_target
    from berth.ops import status
    from berth.secrets.masking import Masker
    from berth.ui.output import StepPrinter

    calls = []

    class RecordingConn:
        def run(self, script, *, stdin=None, timeout=None, check=False):
            calls.append(timeout)
            return Result(script, 0, b"", b"", 0.0)

        def close(self):
            pass

    session = SimpleNamespace(conn=RecordingConn(), state_dir="/h/.berth/app", app_dir="/srv/app",
                              host=SimpleNamespace(label="web1"), compose=Compose("v2", "app", ("c.yml",), ".env"),
                              current=None, current_error=None, notes=[], close=lambda: None)
    monkeypatch.setattr(status, "_session", lambda *a, **k: session)
    status.collect_status(load_target(project.root), False, StepPrinter(Masker(), quiet=True))
    assert calls and None not in calls


# --------------------------------------------------------------------------- 17: doctor's probe reads names only


def test_probe_sh_does_not_evaluate_a_variable_name(tmp_path):
    """The review's repro: the name `A:-}$(touch …)${B` creates nothing."""
    injected = tmp_path / "PROBE_INJECTED"
    name = f"A:-}}$(touch {injected})${{B"
    result = subprocess.run(["sh", "-c", doctor_commands.PROBE_SH, "probe", "postgres", name, ""],
                            capture_output=True, text=True, env={"PATH": os.environ["PATH"], "A": "x"}, timeout=10)
    assert not injected.exists()
    assert result.stdout.strip() == "unset"
    with pytest.raises(ValueError):
        doctor_commands.probe_service("cid", "postgres", name)


# --------------------------------------------------------------------------- 15: verify with nothing running


class InspectConn:
    """Answers the container listing with fixed `docker inspect` lines."""

    def __init__(self, lines: list[str]):
        self.lines = lines

    def run(self, script: str, *, stdin=None, timeout=None, check=False):
        out = "\n".join(self.lines) + "\n" if "docker inspect" in script else ""
        return Result(script, 0, out.encode(), b"", 0.0)


def _inspect_line(service: str, status="running", health="") -> str:
    return inspect_line(service, f"app-{service}-1", "c" * 12, status, health or None, image_id=IMG["a"])


def test_verify_fails_when_no_service_is_expected():
    """The review's repro: every service behind `profiles:`, the server has no container: not a success."""
    session = SimpleNamespace(conn=InspectConn([]), compose=Compose("v2", "app", ("c.yml",), ".env.docker"),
                              app_dir="/srv/app", host=SimpleNamespace(label="web1"))
    result = verify_stage.verify(session, [], (), timeout=0)
    assert not result.ok and result.problems == [verify_stage.NO_SERVICE]
    assert "profiles" in result.problems[0] and "COMPOSE_PROFILES" in result.problems[0]


def test_verify_fails_when_no_container_exists_and_says_so():
    session = SimpleNamespace(conn=InspectConn([]), compose=Compose("v2", "app", ("c.yml",), ".env.docker"),
                              app_dir="/srv/app", host=SimpleNamespace(label="web1"))
    result = verify_stage.verify(session, ["web"], (), timeout=0)
    assert not result.ok
    assert result.problems == ["no container of project app exists on the host", "service web has no container"]


def test_verify_still_passes_when_every_expected_service_runs():
    session = SimpleNamespace(conn=InspectConn([_inspect_line("web")]),
                              compose=Compose("v2", "app", ("c.yml",), ".env.docker"), app_dir="/srv/app",
                              host=SimpleNamespace(label="web1"))
    assert verify_stage.verify(session, ["web"], (), timeout=0).ok


PROFILED = """\
services:
  web:
    image: nginx
    profiles: ["web"]
  worker:
    build: .
    profiles: ["jobs"]
  db:
    image: postgres:16
"""


@pytest.mark.parametrize("profiles, expected", [
    (None, ["db"]),
    ("web", ["web", "db"]),
    ("web, jobs", ["web", "worker", "db"]),
    ("*", ["web", "worker", "db"]),
])
def test_deploy_and_rollback_expect_the_services_compose_profiles_enables(project, profiles, expected):
    from berth.configuration.target import load_target
    from berth.deploy.rollback import _services
    from berth.model.compose.file import load_compose_file
    from berth.model.compose.resolve import active_services

    project.write("docker-compose.yml", PROFILED)
    project.write(".env.docker", f"COMPOSE_PROFILES={profiles}\n" if profiles else "TAG=1\n")
    target = load_target(project.root)
    assert _services(target) == expected
    assert active_services([load_compose_file(project.root / "docker-compose.yml")],
                           {"COMPOSE_PROFILES": profiles or ""}) == expected


def test_a_later_compose_file_can_set_a_services_profiles(tmp_path):
    from berth.model.compose.file import load_compose_file
    from berth.model.compose.resolve import active_services, built_services

    (tmp_path / "a.yml").write_text(PROFILED)
    (tmp_path / "b.yml").write_text("services:\n  web:\n    profiles: []\n  extra:\n    image: busybox\n")
    files = [load_compose_file(tmp_path / "a.yml"), load_compose_file(tmp_path / "b.yml")]
    assert active_services(files, {}) == ["web", "db", "extra"]
    assert built_services(files) == {"worker"}


# --------------------------------------------------------------------------- 2: kept images per project


def test_pruning_kept_images_of_app_leaves_those_of_app_admin_alone(tmp_path):
    """The review's repro: project `app` prunes, project `app-admin` (service web) keeps its rollback images."""
    server = FakeServer(tmp_path, tags={
        compose_engine.keep_ref("app", "web", "20261120T100000Z-aaaaaaa"): IMG["a"],
        compose_engine.keep_ref("app", "web", "20261101T100000Z-0000000"): IMG["d"],
        compose_engine.keep_ref("app-admin", "web", "20261118T090000Z-bbbbbbb"): IMG["b"],
        compose_engine.keep_ref("app-admin", "web", "20261119T090000Z-ccccccc"): IMG["c"],
        # the tags of the review, as berth used to name them
        "berth-releases/app-admin-web:20261118t090000z-bbbbbbb": IMG["b"],
        "berth-releases/app-admin-web:20261119t090000z-ccccccc": IMG["c"],
    })
    result = server.sh(compose_engine.prune_kept_images("app", ["20261120T100000Z-aaaaaaa"]))
    assert result.returncode == 0, result.stderr
    rmi = [line for line in server.log if line.startswith("rmi")]
    assert rmi == ["rmi berth-releases/app/web:20261101t100000z-0000000"]
    assert sum("admin" in ref for ref in server.tags) == 4  # nothing of app-admin, old or new form, was removed


def test_keep_refs_of_different_projects_never_collide():
    rid = "20261201T000000Z-abc1234"
    assert compose_engine.keep_ref("app", "admin-web", rid) != compose_engine.keep_ref("app-admin", "web", rid)
    assert compose_engine.keep_ref("app", "web", rid) == "berth-releases/app/web:20261201t000000z-abc1234"


def test_uppercase_service_names_give_valid_distinct_keep_refs(tmp_path):
    rid = "20261201T000000Z-abc1234"
    upper, lower = compose_engine.keep_ref("app", "Web", rid), compose_engine.keep_ref("app", "web", rid)
    assert upper != lower and upper == upper.lower()
    server = FakeServer(tmp_path, images=[IMG["a"], IMG["b"]])
    images = {"Web": {"name": "app-Web", "id": IMG["a"]}, "web": {"name": "app-web", "id": IMG["b"]}}
    result = server.sh(compose_engine.keep_images(images, "app", rid))
    assert result.returncode == 0, result.stderr
    assert server.tags == {upper: IMG["a"], lower: IMG["b"]}


def test_keep_and_prune_says_when_images_could_not_be_kept(tmp_path):
    """A failed `docker tag` is a warning the user sees (the release is recorded; a rollback will rebuild)."""
    server = FakeServer(tmp_path)  # the image of the release is not on the host: docker tag fails
    release = {"id": "20261201T000000Z-abc1234", "commit": "abc1234" * 5, "result": "ok",
               "images": {"web": {"name": "app-web", "id": IMG["a"]}}}
    warnings = release_stage.keep_and_prune(session_on(server), release, [], keep=5)
    assert len(warnings) == 1 and "images not kept: a rollback to release 20261201T000000Z-abc1234 will rebuild" \
        in warnings[0] and "invalid reference format" in warnings[0]


def test_keep_and_prune_keeps_and_prunes_quietly_when_all_goes_well(tmp_path):
    old = {"id": "20261101T000000Z-0000000", "commit": "0" * 40, "result": "ok"}
    server = FakeServer(tmp_path, tags={compose_engine.keep_ref("app", "web", old["id"]): IMG["d"]}, images=[IMG["a"]])
    (server.root / "state" / "releases").mkdir(parents=True)
    (server.root / "state" / "releases" / f"{old['id']}.env").write_text("A=1\n")
    release = {"id": "20261201T000000Z-abc1234", "commit": "abc1234" * 5, "result": "ok",
               "images": {"web": {"name": "app-web", "id": IMG["a"]}}}
    assert release_stage.keep_and_prune(session_on(server), release, [old], keep=1) == []
    assert server.tags == {compose_engine.keep_ref("app", "web", release["id"]): IMG["a"]}
    assert list((server.root / "state" / "releases").iterdir()) == []


def test_a_redeploy_of_the_same_images_keeps_them_under_its_own_id_too(tmp_path):
    """Otherwise pruning the first release takes the images' last tag while the redeploy still counts as kept."""
    server = FakeServer(tmp_path, images=[IMG["a"]])
    images = {"web": {"name": "app-web", "id": IMG["a"]}}
    first = {"id": "20261201T000000Z-abc1234", "commit": "abc1234" * 5, "result": "ok", "images": images}
    again = {**first, "id": "20261202T000000Z-abc1234"}
    assert release_stage.keep_and_prune(session_on(server), first, [], keep=5) == []
    assert release_stage.keep_and_prune(session_on(server), again, [first], keep=5) == []
    assert set(server.tags) == {compose_engine.keep_ref("app", "web", r["id"]) for r in (first, again)}


# --------------------------------------------------------------------------- 17: prune scripts quote their lists


def test_prune_env_copies_neither_runs_nor_loses_what_an_id_holds(tmp_path):
    """The review's repro: an id with `$(…)` runs nothing, and the copy of 'keep me' stays."""
    state = tmp_path / "state"
    (state / "releases").mkdir(parents=True)
    for name in ("keep me.env", "old.env", "x$(touch INJECTED_prune).env"):
        (state / "releases" / name).write_text("A=1\n")
    injected = tmp_path / "INJECTED_prune"
    keep = [f"x$(touch {injected})", "keep me", "x$(touch INJECTED_prune)"]
    result = subprocess.run(["sh", "-c", release_commands.prune_env_copies(str(state), keep)], capture_output=True,
                            cwd=tmp_path, timeout=60)
    assert result.returncode == 0, result.stderr
    assert not injected.exists() and not (state / "releases" / "INJECTED_prune").exists()
    assert sorted(p.name for p in (state / "releases").iterdir()) == ["keep me.env", "x$(touch INJECTED_prune).env"]


def test_prune_kept_images_runs_nothing_an_id_holds(tmp_path):
    injected = tmp_path / "injected_images"  # ids are lowercased for tags: so is the path in them
    server = FakeServer(tmp_path, tags={compose_engine.keep_ref("app", "web", "r1"): IMG["a"]})
    result = server.sh(compose_engine.prune_kept_images("app", [f"x$(touch {injected})", "r1"]))
    assert result.returncode == 0 and not injected.exists()
    assert list(server.tags) == [compose_engine.keep_ref("app", "web", "r1")]


# --------------------------------------------------------------------------- rollback restores only its own names


def test_restore_images_repoints_only_names_the_project_builds(tmp_path):
    """`postgres:16` belongs to the whole daemon: it is not re-tagged, and the step says it moved."""
    from berth.deploy.rollback import restore_images

    server = FakeServer(tmp_path, tags={"app-web:latest": IMG["b"], "postgres:16": IMG["d"]},
                        images=[IMG["a"], IMG["c"]])
    to = {"id": "20261201T000000Z-abc1234", "images": {
        "web": {"name": "app-web", "id": IMG["a"], "built": True},
        "db": {"name": "postgres:16", "id": IMG["c"], "built": False},
    }}
    rebuild, detail = restore_images(session_on(server), to)
    assert server.tags == {"app-web:latest": IMG["a"], "postgres:16": IMG["d"]}
    assert not rebuild
    assert detail == ("kept images restored, no build; postgres:16 now points at another image than release "
                      "20261201T000000Z-abc1234 ran; the rollback uses the current one")


def test_restore_images_of_an_older_record_treats_other_names_as_shared(tmp_path):
    """No `built` in the record: only compose's default name (project-service) is known to be the project's."""
    from berth.deploy.rollback import restore_images

    server = FakeServer(tmp_path, tags={"app-web:latest": IMG["b"], "myorg/api:latest": IMG["d"],
                                        "redis:7": IMG["e"]}, images=[IMG["a"], IMG["c"]])
    to = {"id": "r1", "images": {"web": {"name": "app-web", "id": IMG["a"]},
                                 "api": {"name": "myorg/api", "id": IMG["c"]},
                                 "cache": {"name": "redis:7", "id": IMG["e"]}}}
    rebuild, detail = restore_images(session_on(server), to)
    assert server.tags == {"app-web:latest": IMG["a"], "myorg/api:latest": IMG["d"], "redis:7": IMG["e"]}
    assert rebuild and "myorg/api now points at another image" in detail and "redis" not in detail


def test_restore_images_rebuilds_when_a_built_image_is_gone(tmp_path):
    from berth.deploy.rollback import restore_images

    server = FakeServer(tmp_path, tags={"app-web:latest": IMG["b"]})
    rebuild, detail = restore_images(session_on(server), {"id": "r1", "images": {
        "web": {"name": "app-web", "id": IMG["a"], "built": True}}})
    assert rebuild and detail == "images not kept: rebuilding" and server.tags == {"app-web:latest": IMG["b"]}


def test_builds_image_from_the_record_or_compose_default_name():
    assert compose_engine.builds_image("web", {"name": "x/y", "built": True}, "app") is True
    assert compose_engine.builds_image("db", {"name": "app-db", "built": False}, "app") is False
    assert compose_engine.builds_image("web", {"name": "app-web"}, "app") is True
    assert compose_engine.builds_image("web", {"name": "app_web:latest"}, "app") is True  # compose v1
    assert compose_engine.builds_image("db", {"name": "postgres:16"}, "app") is None


# --------------------------------------------------------------------------- 17: records read back from the server


def test_history_records_that_would_put_shell_text_in_a_script_are_left_out(tmp_path):
    server = FakeServer(tmp_path)
    state = server.root / "state"
    state.mkdir()
    good = {"id": "20251201T000000Z-abc1234", "commit": "abc1234" * 5, "result": "ok"}
    lines = [good,
             {**good, "id": "x$(touch /tmp/INJECTED)"},
             {**good, "id": "r2", "commit": "deadbee$(id)"},
             {**good, "id": "r3", "images": {"web": {"name": "--help", "id": IMG["a"]}}}]
    (state / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    records, problems = release_stage.read_history(session_on(server), limit=10)
    assert [r.id for r in records] == [good["id"], "r3"] and records[1].images == {}
    assert problems == ["history.jsonl: a release record with an invalid release id (ignored)",
                        "history.jsonl: release r2 has an invalid commit (ignored)",
                        "history.jsonl: release r3 has image names or ids berth cannot use (a rollback to it rebuilds)"]


# --------------------------------------------------------------------------- records and ids


def test_two_releases_in_one_second_get_different_ids():
    now = 1764547200.0  # 2025-12-01T00:00:00Z
    first = release_stage.new_release_id("abc1234def", now)
    assert first == "20251201T000000Z-abc1234"
    assert release_stage.new_release_id("abc1234def", now, taken=[first]) == f"{first}-2"
    assert release_stage.new_release_id("abc1234def", now, taken=[first, f"{first}-2"]) == f"{first}-3"


def test_record_never_overwrites_a_release_and_takes_the_next_id(tmp_path):
    server = FakeServer(tmp_path)
    session = session_on(server)
    (server.root / "app").mkdir()
    (server.root / "app" / ".env.docker").write_text("A=1\n")
    first = Release.from_record({"id": "20251201T000000Z-abc1234", "commit": "abc1234" * 5, "result": "ok", "n": 1})
    release_stage.record(session, first, env_file=".env.docker")
    (server.root / "app" / ".env.docker").write_text("A=2\n")
    second = Release.from_record({**first.to_record(), "n": 2})
    release_stage.record(session, second, env_file=".env.docker")
    assert second.id == "20251201T000000Z-abc1234-2"
    releases = server.root / "state" / "releases"
    assert json.loads((releases / f"{first.id}.json").read_text())["n"] == 1
    assert (releases / f"{first.id}.env").read_text() == "A=1\n"
    assert json.loads((releases / f"{second.id}.json").read_text()) == second.to_record()
    assert (releases / f"{second.id}.env").read_text() == "A=2\n"
    assert [json.loads(x)["id"] for x in (server.root / "state" / "history.jsonl").read_text().splitlines()] == [
        first.id, second.id]
    assert not [p for p in releases.iterdir() if p.name.endswith(".tmp")]
