"""berth.remote.commands and berth.remote.engines: the exact argv / shell text, and the scripts executed for real with `sh`."""

from __future__ import annotations

import ast
import inspect
import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

import berth.remote.commands
import berth.remote.engines
from berth.deploy.stages.preflight import Port
from berth.errors import BerthError, UsageError
from berth.remote import shell
from berth.remote.commands import doctor as doctor_commands
from berth.remote.commands import files as file_commands
from berth.remote.commands import git as git_commands
from berth.remote.commands import host as host_commands
from berth.remote.commands import images as image_commands
from berth.remote.commands import lock as lock_commands
from berth.remote.commands import preflight as preflight_commands
from berth.remote.commands import release as release_commands
from berth.remote.engines import compose as compose_engine
from berth.remote.engines import kubernetes as kubernetes_engine
from berth.remote.engines.compose import Compose, ContainerState, in_dir, parse_inspect
from tests.helpers.docker_states import inspect_line

pytestmark = pytest.mark.usefixtures("git_env")

SHA = "0123456789abcdef0123456789abcdef01234567"


def sh(script: str, env: dict, stdin: bytes = b"", cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", "-c", script], input=stdin, capture_output=True, env=env, cwd=cwd, timeout=120)


# --------------------------------------------------------------------------- compose argv


def test_compose_v2_argv():
    c = Compose("v2", "shop", ("docker-compose.yml", "docker-compose.prod.yml"), ".env.docker")
    assert c.base() == ["docker", "compose", "--project-name", "shop", "--file", "docker-compose.yml",
                        "--file", "docker-compose.prod.yml", "--env-file", ".env.docker"]
    assert c.build() == [*c.base(), "build"]
    assert c.up() == [*c.base(), "up", "--detach", "--remove-orphans"]
    assert c.logs() == [*c.base(), "logs", "--no-color", "--tail", "50"]
    assert c.logs(("web", "db"), tail=5, follow=True) == [*c.base(), "logs", "--no-color", "--tail", "5",
                                                          "--follow", "web", "db"]


def test_compose_v1_argv():
    c = Compose("v1", "shop", ("docker-compose.yml",), "conf/app env")
    assert c.base() == ["docker-compose", "--project-name", "shop", "--file", "docker-compose.yml",
                        "--env-file", "conf/app env"]
    assert c.up()[0] == "docker-compose" and "compose" not in c.up()[1:2]
    assert c.build()[-1] == "build"


def _fake_docker(tmp_path: Path) -> dict:
    """`docker`/`docker-compose` on PATH that log their cwd and argv to bin/calls.log.

    Each call is one record: cwd NUL, then every argument NUL-terminated, then \\x1e.
    `docker ps` prints two container ids, as the real one would.
    """
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("docker", "docker-compose"):
        exe = bin_dir / name
        exe.write_text(
            "#!/bin/sh\n"
            'log="$(dirname "$0")/calls.log"\n'
            '{ printf "%s\\0" "$(pwd)" "$(basename "$0")" "$@"; printf "\\036"; } >> "$log"\n'
            'if [ "$1" = ps ]; then printf "id1\\nid2\\n"; fi\n'
        )
        exe.chmod(0o755)
    env = dict(os.environ)
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    return env


def _calls(tmp_path: Path) -> list[tuple[str, list[str]]]:
    log = tmp_path / "bin" / "calls.log"
    if not log.exists():
        return []
    calls = []
    for record in log.read_bytes().decode().split("\x1e")[:-1]:
        cwd, *argv = record.split("\0")[:-1]
        calls.append((cwd, argv))
    return calls


@pytest.mark.parametrize("variant", ["v2", "v1"])
def test_in_dir_runs_the_argv_unchanged_in_the_app_dir(tmp_path, variant):
    app = tmp_path / "my app's \"dir\" $HOME `id`"
    app.mkdir()
    c = Compose(variant, "shop", ("docker-compose.yml", "over ride.yml"), ".env docker $X")
    proc = sh(in_dir(str(app), c.up()), _fake_docker(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert _calls(tmp_path) == [(str(app), c.up())]


def test_inspect_containers_passes_the_format_verbatim(tmp_path):
    c = Compose("v2", "shop", ("docker-compose.yml",), ".env.docker")
    proc = sh(c.inspect_containers(), _fake_docker(tmp_path))
    assert proc.returncode == 0, proc.stderr
    (_, ps), (_, inspect_argv) = _calls(tmp_path)
    assert ps == ["docker", "ps", "--all", "--quiet", "--filter", "label=com.docker.compose.project=shop",
                  "--filter", "label=com.docker.compose.oneoff=False"]
    assert inspect_argv == ["docker", "inspect", "--format", compose_engine.INSPECT_FORMAT, "id1", "id2"]


def test_inspect_containers_skips_inspect_without_containers(tmp_path):
    env = _fake_docker(tmp_path)
    (tmp_path / "bin" / "docker").write_text('#!/bin/sh\necho "$@" >> "$0.log"\n')
    proc = sh(Compose("v2", "shop", (), ".env").inspect_containers(), env)
    assert proc.returncode == 0
    assert (tmp_path / "bin" / "docker.log").read_text().startswith("ps ")
    assert "inspect" not in (tmp_path / "bin" / "docker.log").read_text()


def test_parse_inspect_and_states():
    out = "\n".join([
        inspect_line("web", "shop-web-1", "c1", "running", "healthy", policy="always", image="shop-web", image_id="sha256:1"),
        inspect_line("db", "shop-db-1", "c2", "running", "unhealthy", 0, 3, policy="always", image="postgres:16",
                     image_id="sha256:2", probe=(1, "pg_isready: no response\n")),
        inspect_line("migrate", "shop-migrate-1", "c3", "exited", policy="no", image="shop-web", image_id="sha256:1"),
        inspect_line("worker", "shop-worker-1", "c4", "exited", code=2, policy="", image="shop-worker"),
        inspect_line("api", "shop-api-1", "c5", "restarting", code=1, restarts=7, policy="always"),
        "garbage line",
        "[1, 2]",
        '{"service": "x", "state": "not a mapping"}',
    ])
    states = {s.service: s for s in parse_inspect(out)}
    assert set(states) == {"web", "db", "migrate", "worker", "api"}
    assert states["web"].name == "shop-web-1" and states["web"].ready and not states["web"].failed
    assert states["db"].failed and not states["db"].ready
    assert states["db"].health_log == "pg_isready: no response"  # the probe's own words, not "(no output)"
    assert states["migrate"].ready and not states["migrate"].failed
    assert states["worker"].failed and states["worker"].describe() == "exited, exit code 2"
    assert not states["api"].ready and not states["api"].failed
    assert states["api"].describe() == "restarting, exit code 1, restarted 7x"
    assert isinstance(states["db"], ContainerState) and states["db"].restarts == 3
    assert (states["db"].image, states["db"].image_id) == ("postgres:16", "sha256:2")


# --------------------------------------------------------------------------- never destructive

FORBIDDEN = ("down -v", "--volumes", "volume rm", "--no-cache", "reset --hard", "clean -f", "stash")
WEIRD = "x'; y \"$z\" `w`"

# every public command builder, called with representative arguments
GENERATORS = {
    "berth.remote.commands.files.write_private_file": lambda: [file_commands.write_private_file("/srv/app/.env.docker")],
    "berth.remote.commands.files.keep_original": lambda: [file_commands.keep_original(f"/srv/app/{WEIRD}",
                                                                                      f"/h/.berth/replaced/{WEIRD}")],
    "berth.remote.commands.git.sync": lambda: [git_commands.sync("/srv/app", "git@example.com:o/r.git", SHA),
                                        git_commands.sync(f"/srv/{WEIRD}", f"/r/{WEIRD}", SHA, SHA[:7])],
    "berth.remote.commands.git.valid_commit": lambda: [],  # a validator, returns no command
    "berth.remote.commands.git.checkout_head": lambda: [git_commands.checkout_head(f"/srv/{WEIRD}")],
    "berth.remote.commands.host.facts": lambda: [host_commands.facts(".berth/shop"),
                                                 host_commands.facts(".berth/my-shop", f".berth/{WEIRD}")],
    "berth.remote.commands.host.adopts_legacy": lambda: [host_commands.adopts_legacy(".berth/a", f".berth/{WEIRD}")],
    "berth.remote.commands.host.parse_facts": lambda: [],  # a parser, returns no command
    "berth.remote.commands.release.state_dir_rel": lambda: [release_commands.state_dir_rel("shop")],
    "berth.remote.commands.release.record": lambda: [release_commands.record("/h/.berth/shop", "ID", True),
                                              release_commands.record("/h/.berth/shop", "ID", False),
                                              release_commands.record("/h/.berth/shop", "ID", True, "/srv/a/.env",
                                                                      "/srv/a", ["secrets/db.txt", WEIRD])],
    "berth.remote.commands.release.history": lambda: [release_commands.history("/h/.berth/shop", 5)],
    "berth.remote.shell.quote": lambda: [shell.quote(WEIRD)],
    "berth.remote.shell.join": lambda: [shell.join(["a", WEIRD])],
    "berth.remote.shell.chain": lambda: [shell.chain("a", "", "b")],
    "berth.remote.shell.case_patterns": lambda: [shell.case_patterns(["a", WEIRD])],
    "berth.remote.shell.script": lambda: [shell.script(["a", "b"])],
    "berth.remote.engines.compose.in_dir": lambda: [in_dir("/srv/app", ["docker", "compose", "up"])],
    "berth.remote.engines.compose.parse_inspect": lambda: [],
    "berth.remote.engines.compose.Compose": lambda: [
        " ".join(argv)
        for variant in ("v2", "v1")
        for c in [Compose(variant, "shop", ("a.yml", "b.yml"), ".env.docker")]
        for argv in (c.base(), c.build(), c.up(), c.recreate(("web", WEIRD)), c.logs(), c.logs(("web",), 10, True))
    ] + [Compose("v2", "shop", ("a.yml",), ".env").inspect_containers()],
    "berth.remote.engines.compose.ContainerState": lambda: [],
    "berth.remote.engines.compose.missing_container": lambda: [],  # a state, not a command
    "berth.remote.commands.preflight.script": lambda: [
        preflight_commands.script([Port("web", 8080), Port("dns", 53, "udp")], ["postgres:16", WEIRD])],
    "berth.remote.engines.compose.keep_ref": lambda: [compose_engine.keep_ref("shop", "web", "20261127T001918Z-abc1234")],
    "berth.remote.engines.compose.ref_component": lambda: [],  # a name, not a command
    "berth.remote.engines.compose.builds_image": lambda: [],  # a predicate
    "berth.remote.engines.compose.keep_images": lambda: [
        compose_engine.keep_images({"web": {"name": "shop-web", "id": "sha256:1"}}, "shop", "R1")],
    "berth.remote.engines.compose.restore_images": lambda: [
        compose_engine.restore_images({"web": {"name": "shop-web", "id": "sha256:1"},
                                       "db": {"name": "postgres:16", "id": "sha256:2", "built": False}}, "shop")],
    "berth.remote.engines.compose.prune_kept_images": lambda: [compose_engine.prune_kept_images("shop", ["R1", "R2"])],
    "berth.remote.commands.release.audit": lambda: [release_commands.audit("/h/.berth/shop")],
    "berth.remote.commands.release.read_audit": lambda: [release_commands.read_audit("/h/.berth/shop", 5)],
    "berth.remote.commands.release.restore_env": lambda: [
        release_commands.restore_env("/h/.berth/shop", "R1", "/srv/app/.env"),
        release_commands.restore_env("/h/.berth/shop", "R1", "/srv/app/.env", "/srv/app", ["secrets/db.txt", WEIRD])],
    "berth.remote.commands.release.prune_env_copies": lambda: [release_commands.prune_env_copies("/h/.berth/shop", ["R1"])],
    "berth.remote.commands.lock.acquire": lambda: [lock_commands.acquire("/h/.berth/shop")],
    "berth.remote.commands.lock.release": lambda: [lock_commands.release("/h/.berth/shop", "tok"),
                                            lock_commands.release("/h/.berth/shop", None)],
    "berth.remote.commands.lock.valid_token": lambda: [],  # a predicate
    "berth.remote.commands.lock.status": lambda: [lock_commands.status("/h/.berth/shop")],
    "berth.remote.commands.doctor.remote_path": lambda: [doctor_commands.remote_path("~/shop")],
    "berth.remote.commands.doctor.gather": lambda: [
        doctor_commands.gather("~/shop", ".env.docker", "shop", "https://git.example/shop.git", ["A", "B"],
                               ".berth/shop")],
    "berth.remote.commands.doctor.parse_sections": lambda: [],  # parsers
    "berth.remote.commands.doctor.key_values": lambda: [],
    "berth.remote.commands.doctor.split_parallel": lambda: [],
    "berth.remote.commands.doctor.logs_tail": lambda: [doctor_commands.logs_tail("abc123", 20)],
    "berth.remote.commands.doctor.probe_service": lambda: [doctor_commands.probe_service("abc123", "postgres",
                                                                                         "DATABASE_URL")],
    "berth.remote.commands.doctor.port_answers": lambda: [doctor_commands.port_answers(8080)],
    "berth.remote.commands.doctor.in_parallel": lambda: [doctor_commands.in_parallel(["true", "false"])],
    "berth.remote.engines.kubernetes.Kubectl": lambda: [" ".join(i.argv) for i in (
        KUBECTL.current_context(), KUBECTL.apply(b"", dry_run=True), KUBECTL.apply(b""), KUBECTL.get_release(),
        KUBECTL.rollout_status("Deployment", "web", 60), KUBECTL.rollout_undo("Deployment", "web"),
        KUBECTL.rollout_undo("StatefulSet", "db", 3), KUBECTL.get_workloads("app=shop"),
        KUBECTL.logs("Deployment", "web"))],
    "berth.remote.commands.images.tag": lambda: [image_commands.tag("sha256:1", WEIRD)],
    "berth.remote.commands.images.save": lambda: [image_commands.save("sha256:1", WEIRD)],
    "berth.remote.commands.images.load": lambda: [image_commands.load()],
    "berth.remote.commands.images.describe": lambda: [image_commands.describe(["shop-web", WEIRD])],
    "berth.remote.commands.images.parse_describe": lambda: [],  # parsers
    "berth.remote.commands.images.holds": lambda: [image_commands.holds(["sha256:1", WEIRD])],
    "berth.remote.commands.images.parse_holds": lambda: [],
    "berth.remote.commands.images.Holds": lambda: [],
    "berth.remote.commands.images.chain_ids": lambda: [],  # ids, not commands
    "berth.remote.commands.images.trim_archive": lambda: [],  # an archive, not a command
    "berth.remote.commands.images.load_and_tag": lambda: [image_commands.load_and_tag([("sha256:1", WEIRD)], True),
                                                        image_commands.load_and_tag([("sha256:1", "a")], False)],
    "berth.remote.engines.kubernetes.Invocation": lambda: [],
    "berth.remote.engines.kubernetes.WorkloadStatus": lambda: [],
    "berth.remote.engines.kubernetes.parse_workloads": lambda: [],
    "berth.remote.engines.kubernetes.parse_release": lambda: [],
}

MODULES = [file_commands, git_commands, host_commands, release_commands, shell, compose_engine, lock_commands,
           preflight_commands, doctor_commands, kubernetes_engine, image_commands]
KUBECTL = kubernetes_engine.Kubectl("shop", context="prod", kubeconfig="/home/me/.kube/config")


def _public_callables():
    for module in MODULES:
        for name, obj in vars(module).items():
            if name.startswith("_") or not callable(obj) or getattr(obj, "__module__", None) != module.__name__:
                continue
            yield f"{module.__name__}.{name}"


def test_generator_table_covers_every_public_builder():
    assert set(_public_callables()) == set(GENERATORS)
    public_methods = {n for n, _ in inspect.getmembers(Compose, inspect.isfunction) if not n.startswith("_")}
    assert public_methods == {"base", "build", "up", "recreate", "logs", "inspect_containers", "built_image"}  # all called above


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_no_generated_command_is_destructive(name):
    for text in GENERATORS[name]():
        for bad in FORBIDDEN:
            assert bad not in text, f"{name} produced {bad!r}: {text}"
        # `down` is not used at all, and no `-v` follows a compose `down` / `rm`
        assert " down" not in text and "volume" not in text


def _string_literals(path: Path):
    """Every string constant in a module except docstrings (docs may say what is never done)."""
    tree = ast.parse(path.read_text())
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node.value


def _source_files():
    for package in (berth.remote.commands, berth.remote.engines):
        yield from sorted(Path(package.__file__).parent.glob("*.py"))


@pytest.mark.parametrize("path", list(_source_files()), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_destructive_fragment_in_source_strings(path):
    literals = list(_string_literals(path))
    joined = "\n".join(literals)
    for bad in FORBIDDEN:
        assert bad not in joined, f"{path.name} contains {bad!r}"
    # argv lists spell flags as separate words: look for the dangerous words on their own too
    words = set(literals)
    assert not ({"--volumes", "--no-cache", "--hard", "stash"} & words)
    assert not ({"down", "-v"} <= words)


def test_source_scan_would_see_a_forbidden_word(tmp_path):
    # the scanner ignores docstrings but not code
    f = tmp_path / "m.py"
    f.write_text('"""never down -v"""\ndef f():\n    """doc: --no-cache"""\n    return ["docker", "--no-cache"]\n')
    assert list(_string_literals(f)) == ["docker", "--no-cache"]


# --------------------------------------------------------------------------- git sync, executed


@pytest.fixture
def origin(tmp_path, new_repo, run_git):
    """A bare remote with two commits on main, and the work repo that pushes to it."""
    remote = new_repo(tmp_path / "remote dir" / "app.git", bare=True)
    work = new_repo(tmp_path / "work")
    run_git(work, "remote", "add", "origin", str(remote))

    def commit(name: str, text: str) -> str:
        (work / name).write_text(text)
        run_git(work, "add", "-A")
        run_git(work, "commit", "-q", "-m", f"edit {name}")
        run_git(work, "push", "-q", "origin", "HEAD:refs/heads/main")
        return run_git(work, "rev-parse", "HEAD")

    first = commit("app.py", "print('v1')\n")
    second = commit("app.py", "print('v2')\n")
    return type("Origin", (), {"remote": remote, "work": work, "commit": staticmethod(commit),
                               "first": first, "second": second})


def values(stdout: bytes) -> dict[str, str]:
    out = {}
    for line in stdout.decode().splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key] = value
    return out


def run_sync(app: Path, remote: Path | str, commit: str, env: dict, running: str | None = None) -> subprocess.CompletedProcess:
    return sh(git_commands.sync(str(app), str(remote), commit, running), env)


def head_of(app: Path, run_git) -> str:
    return run_git(app, "rev-parse", "HEAD")


def test_sync_first_run_clones_and_checks_out_detached(tmp_path, origin, sub_env, run_git):
    app = tmp_path / "server" / "srv" / "app"  # parents do not exist yet
    proc = run_sync(app, origin.remote, origin.first, sub_env())
    assert proc.returncode == 0, proc.stderr
    v = values(proc.stdout)
    assert v["cloned"] == "1" and v["head"] == origin.first
    assert "previous" not in v
    assert head_of(app, run_git) == origin.first  # not the tip of main
    assert run_git(app, "symbolic-ref", "-q", "HEAD", check=False) == ""  # detached
    assert (app / "app.py").read_text() == "print('v1')\n"


def test_sync_second_run_fetches_and_moves(tmp_path, origin, sub_env, run_git):
    app = tmp_path / "app"
    assert run_sync(app, origin.remote, origin.first, sub_env()).returncode == 0
    third = origin.commit("app.py", "print('v3')\n")  # pushed after the clone: must be fetched
    proc = run_sync(app, origin.remote, third, sub_env())
    assert proc.returncode == 0, proc.stderr
    v = values(proc.stdout)
    assert v == {"previous": origin.first, "fetched": "1", "head": third}
    assert (app / "app.py").read_text() == "print('v3')\n"
    # the same commit again: nothing fetched, nothing moved
    again = run_sync(app, origin.remote, third, sub_env())
    assert again.returncode == 0
    assert values(again.stdout) == {"previous": third, "head": third}
    # and back to an older commit that is already there: no fetch
    back = run_sync(app, origin.remote, origin.second, sub_env())
    assert values(back.stdout) == {"previous": third, "head": origin.second}


def test_sync_dirty_checkout_stops_and_keeps_the_change(tmp_path, origin, sub_env, run_git):
    app = tmp_path / "app"
    assert run_sync(app, origin.remote, origin.first, sub_env()).returncode == 0
    (app / "app.py").write_text("hotfix on the server\n")
    proc = run_sync(app, origin.remote, origin.second, sub_env())
    assert proc.returncode == git_commands.DIRTY_CHECKOUT == 65
    assert b" M app.py" in proc.stderr
    assert (app / "app.py").read_text() == "hotfix on the server\n"
    assert head_of(app, run_git) == origin.first
    assert run_git(app, "stash", "list") == ""  # nothing stashed away either


def test_sync_staged_change_is_dirty_too(tmp_path, origin, sub_env, run_git):
    app = tmp_path / "app"
    assert run_sync(app, origin.remote, origin.first, sub_env()).returncode == 0
    (app / "new.py").write_text("x\n")
    run_git(app, "add", "new.py")
    proc = run_sync(app, origin.remote, origin.second, sub_env())
    assert proc.returncode == 65
    assert (app / "new.py").exists()


def test_sync_reports_and_keeps_untracked_files(tmp_path, origin, sub_env, run_git):
    app = tmp_path / "app"
    assert run_sync(app, origin.remote, origin.first, sub_env()).returncode == 0
    (app / "uploads").mkdir()
    (app / "uploads" / "a.png").write_bytes(b"\x89PNG")
    (app / ".env.docker").write_text("SECRET=1\n")
    proc = run_sync(app, origin.remote, origin.second, sub_env())
    assert proc.returncode == 0, proc.stderr
    untracked = values(proc.stdout)["untracked"]
    assert "?? uploads/" in untracked and "?? .env.docker" in untracked
    assert (app / "uploads" / "a.png").read_bytes() == b"\x89PNG"
    assert head_of(app, run_git) == origin.second


def test_sync_refuses_a_non_git_directory(tmp_path, origin, sub_env):
    app = tmp_path / "app"
    app.mkdir()
    (app / "index.html").write_text("hand-copied site\n")
    proc = run_sync(app, origin.remote, origin.first, sub_env())
    assert proc.returncode == git_commands.NOT_A_CHECKOUT == 64
    assert b"is not a git checkout" in proc.stderr
    assert [p.name for p in app.iterdir()] == ["index.html"]
    assert (app / "index.html").read_text() == "hand-copied site\n"


def test_sync_refuses_a_regular_file_at_the_app_path(tmp_path, origin, sub_env):
    app = tmp_path / "app"
    app.write_text("not a dir")
    assert run_sync(app, origin.remote, origin.first, sub_env()).returncode == 64
    assert app.read_text() == "not a dir"


def test_sync_clones_into_an_existing_empty_directory(tmp_path, origin, sub_env, run_git):
    app = tmp_path / "app"
    app.mkdir()
    proc = run_sync(app, origin.remote, origin.first, sub_env())
    assert proc.returncode == 0, proc.stderr
    assert head_of(app, run_git) == origin.first


@pytest.mark.parametrize("existing", [False, True])
def test_sync_unknown_commit(tmp_path, origin, sub_env, run_git, existing):
    app = tmp_path / "app"
    if existing:
        assert run_sync(app, origin.remote, origin.first, sub_env()).returncode == 0
    proc = run_sync(app, origin.remote, "f" * 40, sub_env())
    assert proc.returncode == git_commands.COMMIT_NOT_FOUND == 66
    assert b"is not on the remote" in proc.stderr
    assert b"fetched=1" in proc.stdout  # it did try the remote before giving up
    if existing:
        assert head_of(app, run_git) == origin.first


@pytest.mark.parametrize("name", ["my app", "it's", 'say "hi"', "$HOME and `id`", "semi;colon && x", "-dash"])
def test_sync_app_dir_with_special_characters(tmp_path, origin, sub_env, run_git, name):
    parent = tmp_path / "srv"
    app = parent / name / "checkout"
    proc = run_sync(app, origin.remote, origin.first, sub_env())
    assert proc.returncode == 0, proc.stderr
    assert head_of(app, run_git) == origin.first
    assert sorted(p.name for p in parent.iterdir()) == [name]  # nothing created beside it
    assert run_sync(app, origin.remote, origin.second, sub_env()).returncode == 0
    assert head_of(app, run_git) == origin.second


def test_sync_leaves_a_different_origin_alone_and_fetches_from_the_url(tmp_path, origin, sub_env, run_git):
    # the review's case (finding 4, related): the server's origin was rewritten to whoever deployed last
    app = tmp_path / "app"
    assert run_sync(app, origin.remote, origin.first, sub_env()).returncode == 0
    moved = tmp_path / "moved.git"
    run_git(tmp_path, "clone", "-q", "--bare", str(origin.remote), str(moved))
    third = origin.commit("app.py", "v3")
    run_git(origin.work, "push", "-q", str(moved), "HEAD:refs/heads/main")
    config_before = (app / ".git" / "config").read_text()
    proc = run_sync(app, moved, third, sub_env(), running=origin.first)
    assert proc.returncode == 0, proc.stderr
    assert values(proc.stdout)["origin"] == "other"
    assert run_git(app, "remote", "get-url", "origin") == str(origin.remote)  # not rewritten
    assert (app / ".git" / "config").read_text() == config_before
    assert head_of(app, run_git) == third
    # the URL's branches are kept apart from origin's, so the commits berth deployed stay on a remote ref
    assert run_git(app, "rev-parse", "refs/remotes/berth/main") == third
    assert run_git(app, "rev-parse", "refs/remotes/origin/main") == origin.second
    # and the next deploy from the same URL sees HEAD as held by a remote ref (no refusal)
    fourth = origin.commit("app.py", "v4")
    run_git(origin.work, "push", "-q", str(moved), "HEAD:refs/heads/main")
    again = run_sync(app, moved, fourth, sub_env(), running=third)
    assert again.returncode == 0, again.stderr
    assert head_of(app, run_git) == fourth


def test_sync_with_the_same_origin_fetches_origin(tmp_path, origin, sub_env, run_git):
    app = tmp_path / "app"
    assert run_sync(app, origin.remote, origin.first, sub_env()).returncode == 0
    third = origin.commit("app.py", "v3")
    proc = run_sync(app, origin.remote, third, sub_env(), running=origin.first)
    assert proc.returncode == 0, proc.stderr
    assert "origin" not in values(proc.stdout)
    assert run_git(app, "rev-parse", "refs/remotes/origin/main") == third
    assert run_git(app, "for-each-ref", "refs/remotes/berth") == ""


# ---- finding 3: ignored files on the server that the commit tracks


def _commit_forced(origin, run_git, files: dict[str, str], message: str = "placeholder") -> str:
    """Commit files in the work repo with `git add -f` (paths its .gitignore ignores), push, return the commit."""
    for rel, text in files.items():
        path = origin.work / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    run_git(origin.work, "add", "-f", *files)
    run_git(origin.work, "commit", "-q", "-m", message)
    run_git(origin.work, "push", "-q", "origin", "HEAD:refs/heads/main")
    return run_git(origin.work, "rev-parse", "HEAD")


@pytest.fixture
def ignoring(origin, tmp_path, sub_env, run_git):
    """The server checkout at a commit whose .gitignore ignores uploads/, build and cache, as berth deployed it."""
    c1 = origin.commit(".gitignore", "uploads/\nbuild\ncache\nnode_modules/\n*.log\n")
    app = tmp_path / "server" / "app"
    assert run_sync(app, origin.remote, c1, sub_env()).returncode == 0
    return type("Ignoring", (), {"app": app, "c1": c1})


def test_sync_refuses_to_overwrite_an_ignored_file_the_commit_tracks(ignoring, origin, sub_env, run_git):
    # the review's repro: the app writes user data into the ignored uploads/ dir on the server ...
    app = ignoring.app
    (app / "uploads").mkdir()
    (app / "uploads" / "avatar.png").write_bytes(b"PRECIOUS USER DATA\n")
    # ... and a developer commits a placeholder at that path (git add -f) and deploys it
    c2 = _commit_forced(origin, run_git, {"uploads/avatar.png": "placeholder from repo\n"})
    proc = run_sync(app, origin.remote, c2, sub_env(), running=ignoring.c1)
    assert proc.returncode == git_commands.IGNORED_IN_THE_WAY == 67, proc.stderr
    assert proc.stderr.decode().splitlines() == ["uploads/avatar.png"]
    assert (app / "uploads" / "avatar.png").read_bytes() == b"PRECIOUS USER DATA\n"
    assert head_of(app, run_git) == ignoring.c1
    assert b"head=" not in proc.stdout


def test_sync_refuses_ignored_files_in_the_way_of_a_tracked_file_or_directory(ignoring, origin, sub_env, run_git):
    app = ignoring.app
    (app / "build").mkdir()
    (app / "build" / "out.bin").write_text("built on the server\n")  # the commit tracks `build` as a file
    (app / "cache").write_text("a cache file\n")  # the commit tracks cache/ as a directory
    c2 = _commit_forced(origin, run_git, {"build": "now a tracked file\n", "cache/README": "tracked\n"})
    proc = run_sync(app, origin.remote, c2, sub_env(), running=ignoring.c1)
    assert proc.returncode == 67, proc.stderr
    assert sorted(proc.stderr.decode().splitlines()) == ["build/out.bin", "cache"]
    assert (app / "build" / "out.bin").read_text() == "built on the server\n"
    assert (app / "cache").read_text() == "a cache file\n"
    assert head_of(app, run_git) == ignoring.c1


def test_sync_lists_ignored_paths_with_spaces_and_non_ascii_names(ignoring, origin, sub_env, run_git):
    app = ignoring.app
    names = ["uploads/my photo.png", "uploads/été ü.txt", "uploads/tab\there.log"]
    (app / "uploads").mkdir()
    for name in names:
        (app / name).write_text("user data\n")
    (app / "uploads" / "only on the server.png").write_text("not in the commit\n")
    c2 = _commit_forced(origin, run_git, {name: "placeholder\n" for name in names})
    proc = run_sync(app, origin.remote, c2, sub_env(), running=ignoring.c1)
    assert proc.returncode == 67, proc.stderr
    # as git prints paths with core.quotePath=false: raw UTF-8, and a control character C-quoted
    assert sorted(proc.stderr.decode().splitlines()) == sorted(
        ["uploads/my photo.png", "uploads/été ü.txt", '"uploads/tab\\there.log"'])
    assert all((app / name).read_text() == "user data\n" for name in names)
    assert head_of(app, run_git) == ignoring.c1


def test_sync_leaves_ignored_files_the_commit_does_not_track(ignoring, origin, sub_env, run_git):
    app = ignoring.app
    (app / "uploads").mkdir()
    (app / "uploads" / "avatar.png").write_bytes(b"user data")  # beside a tracked uploads/.gitkeep: fine
    (app / "node_modules" / "x").mkdir(parents=True)
    (app / "node_modules" / "x" / "index.js").write_text("module\n")
    (app / "server.log").write_text("log\n")
    c2 = _commit_forced(origin, run_git, {"uploads/.gitkeep": ""})
    proc = run_sync(app, origin.remote, c2, sub_env(), running=ignoring.c1)
    assert proc.returncode == 0, proc.stderr
    assert head_of(app, run_git) == c2
    assert (app / "uploads" / "avatar.png").read_bytes() == b"user data"
    assert (app / "node_modules" / "x" / "index.js").exists() and (app / "server.log").exists()


# ---- finding 4: commits made on the server


def test_sync_refuses_to_orphan_a_commit_made_on_the_server(tmp_path, origin, sub_env, run_git):
    # the review's repro: a hotfix committed on the server's detached HEAD, then the next deploy
    app = tmp_path / "server" / "app"
    assert run_sync(app, origin.remote, origin.first, sub_env()).returncode == 0
    (app / "app.py").write_text("hotfix\n")
    run_git(app, "commit", "-qam", "hotfix on server (detached)")
    hotfix = head_of(app, run_git)
    for running in (origin.first, None):  # a recorded running release, or none
        proc = run_sync(app, origin.remote, origin.second, sub_env(), running=running)
        assert proc.returncode == git_commands.SERVER_COMMITS == 68, proc.stderr
        assert proc.stderr.decode().splitlines() == [f"{hotfix[:7]} hotfix on server (detached)"]
        assert head_of(app, run_git) == hotfix  # HEAD did not move: the hotfix stays reachable
        assert (app / "app.py").read_text() == "hotfix\n"
    # pushed from the server to the remote, it is held by a remote branch and the deploy goes on
    run_git(app, "push", "-q", "origin", "HEAD:refs/heads/server-fixes")
    proc = run_sync(app, origin.remote, origin.second, sub_env(), running=origin.first)
    assert proc.returncode == 0, proc.stderr
    assert head_of(app, run_git) == origin.second


def test_sync_moves_away_from_the_running_release_even_when_no_branch_holds_it(tmp_path, origin, sub_env, run_git):
    app = tmp_path / "app"
    assert run_sync(app, origin.remote, origin.second, sub_env()).returncode == 0
    # main is force-pushed back past the running release's commit, then moves on
    run_git(origin.work, "checkout", "-q", "--detach", origin.first)
    (origin.work / "other.py").write_text("x\n")
    run_git(origin.work, "add", "other.py")
    run_git(origin.work, "commit", "-q", "-m", "rewritten history")
    third = run_git(origin.work, "rev-parse", "HEAD")
    run_git(origin.work, "push", "-q", "-f", "origin", "HEAD:refs/heads/main")
    run_git(app, "fetch", "-q", "origin")  # the server's remote-tracking branch no longer holds origin.second
    assert run_git(app, "for-each-ref", "--contains", origin.second, "refs/remotes") == ""
    refused = run_sync(app, origin.remote, third, sub_env(), running=None)
    assert refused.returncode == 68 and head_of(app, run_git) == origin.second
    proc = run_sync(app, origin.remote, third, sub_env(), running=origin.second)
    assert proc.returncode == 0, proc.stderr
    assert head_of(app, run_git) == third
    # an abbreviated running commit means the same commit
    assert run_sync(app, origin.remote, origin.first, sub_env(), running=third[:7]).returncode == 0


def test_sync_of_a_checkout_berth_never_deployed_whose_head_is_on_the_remote(tmp_path, origin, sub_env, run_git):
    app = tmp_path / "app"
    run_git(tmp_path, "clone", "-q", str(origin.remote), str(app))  # cloned by hand, on main
    proc = run_sync(app, origin.remote, origin.first, sub_env(), running=None)
    assert proc.returncode == 0, proc.stderr
    assert head_of(app, run_git) == origin.first


def test_sync_fetches_before_calling_head_a_server_commit(tmp_path, origin, sub_env, run_git):
    # HEAD was pushed (elsewhere) after the server last fetched: refs are stale, the commit is not the server's
    app = tmp_path / "app"
    assert run_sync(app, origin.remote, origin.first, sub_env()).returncode == 0
    (app / "app.py").write_text("made here, pushed from another clone\n")
    run_git(app, "commit", "-qam", "pushed later")
    mine = head_of(app, run_git)
    run_git(origin.work, "fetch", "-q", str(app), mine)
    run_git(origin.work, "push", "-q", "origin", f"{mine}:refs/heads/feature")
    run_git(app, "update-ref", "-d", "refs/remotes/origin/feature")  # not known on the server yet
    proc = run_sync(app, origin.remote, origin.second, sub_env(), running=origin.first)
    assert proc.returncode == 0, proc.stderr
    assert head_of(app, run_git) == origin.second


# ---- finding 8: credentials in the remote URL


def test_sync_sends_and_stores_no_credentials(tmp_path, origin, sub_env, run_git):
    token = "ghp_R3alT0kenR3alT0kenR3alT0ken0000"
    url = f"https://deploy:{token}@github.invalid/org/app.git"
    # the stand-in server maps the https URL (with or without credentials) to the local remote
    config = tmp_path / "server-gitconfig"
    base = f"{origin.remote.parent}/"
    config.write_text(f'[url "{base}"]\n\tinsteadOf = https://github.invalid/org/\n'
                      f'\tinsteadOf = https://deploy:{token}@github.invalid/org/\n')
    env = sub_env(GIT_CONFIG_GLOBAL=str(config))
    script = git_commands.sync(str(tmp_path / "app"), url, origin.first)
    assert token not in script and "deploy:" not in script
    assert "https://github.invalid/org/app.git" in script
    proc = sh(script, env)
    assert proc.returncode == 0, proc.stderr
    app_config = (tmp_path / "app" / ".git" / "config").read_text()
    assert token not in app_config and "url = https://github.invalid/org/app.git" in app_config
    assert token.encode() not in proc.stdout + proc.stderr
    # a later deploy (fetch) neither sends nor stores it either
    third = origin.commit("app.py", "v3")
    later = git_commands.sync(str(tmp_path / "app"), url, third, origin.first)
    assert token not in later
    assert sh(later, env).returncode == 0
    assert token not in (tmp_path / "app" / ".git" / "config").read_text()


def test_sync_fetches_an_origin_that_is_the_url_with_the_servers_own_credentials(tmp_path, origin, sub_env, run_git):
    # an older berth stored the laptop's URL, token and all, as origin: the same repository, fetched as origin
    token = "ghp_S3rv3rT0kenS3rv3rT0kenS3rv3rT0ke00"
    config = tmp_path / "server-gitconfig"
    config.write_text(f'[url "{origin.remote.parent}/"]\n\tinsteadOf = https://github.invalid/org/\n'
                      f'\tinsteadOf = https://deploy:{token}@github.invalid/org/\n')
    env = sub_env(GIT_CONFIG_GLOBAL=str(config))
    app = tmp_path / "app"
    sh(f"git clone -q 'https://deploy:{token}@github.invalid/org/app.git' '{app}'", env)
    third = origin.commit("app.py", "v3")
    proc = sh(git_commands.sync(str(app), "https://github.invalid/org/app.git", third), env)
    assert proc.returncode == 0, proc.stderr
    assert "origin" not in values(proc.stdout)
    assert run_git(app, "rev-parse", "refs/remotes/origin/main") == third
    assert token in run_git(app, "remote", "get-url", "origin")  # the server's own setting, left as it is


def test_sync_keeps_the_ssh_user_and_drops_only_the_password():
    script = git_commands.sync("/srv/app", "ssh://git:s3cr3t-pass@git.example:2222/org/app.git", SHA)
    assert "s3cr3t-pass" not in script and "ssh://git@git.example:2222/org/app.git" in script


# ---- finding 1 (server side) and 17: nothing from a setting or a record runs on the server


def test_sync_refuses_an_option_like_url_before_building_anything():
    with pytest.raises(UsageError, match="would read it as an option"):
        git_commands.sync("/srv/app", "--upload-pack=touch /tmp/x;:", SHA)


@pytest.mark.parametrize("existing", [False, True])
def test_sync_puts_the_url_after_a_double_dash(tmp_path, origin, sub_env, run_git, monkeypatch, existing):
    # with the refusal taken away, `--` alone still keeps the URL out of git's options
    app = tmp_path / "app"
    if existing:
        assert run_sync(app, origin.remote, origin.first, sub_env()).returncode == 0
    third = origin.commit("app.py", "v3")  # not on the server yet: the script must clone or fetch
    flag = tmp_path / "PWNED"
    monkeypatch.setattr(git_commands, "refuse_option_like", lambda value, where: None)
    proc = sh(git_commands.sync(str(app), f"--upload-pack=touch {flag};:", third), sub_env())
    assert proc.returncode != 0
    assert not flag.exists()


def test_sync_never_uses_the_ext_transport(tmp_path, sub_env):
    flag = tmp_path / "PWNED"
    config = tmp_path / "gitconfig"
    config.write_text("[protocol]\n\tallow = always\n")  # even where the server's git config allows it
    proc = sh(git_commands.sync(str(tmp_path / "app"), f"ext::sh -c touch% {flag}", SHA),
              sub_env(GIT_CONFIG_GLOBAL=str(config)))
    assert proc.returncode != 0
    assert not flag.exists()


@pytest.mark.parametrize("bad", ["deadbee$(touch {flag})", "main", "HEAD~1", "abc", "g" * 40, "-" + "a" * 39, ""])
def test_sync_refuses_anything_but_a_hex_commit(tmp_path, origin, sub_env, bad):
    # the review's case (finding 17): a commit read back from the server's records went into the script unquoted
    flag = tmp_path / "INJECTED_sync"
    bad = bad.format(flag=flag)
    for args in ((bad, None), (origin.first, bad)):  # as the target, and as the running release's commit
        try:
            script = git_commands.sync(str(tmp_path / "app"), str(origin.remote), *args)
        except BerthError as exc:
            assert "is not a commit id" in exc.what
        else:
            sh(script, sub_env())
            pytest.fail(f"sync() built a script for commit {args!r}")
        assert not flag.exists()


def test_sync_quotes_the_commit_in_its_messages():
    script = git_commands.sync("/srv/app", "/r.git", SHA)
    assert f'echo "commit "{SHA}" is not on the remote"' in script


def test_sync_unreachable_remote_fails_with_git_error(tmp_path, sub_env):
    proc = run_sync(tmp_path / "app", tmp_path / "missing.git", SHA, sub_env())
    assert proc.returncode not in (0, 64, 65, 66)
    assert not (tmp_path / "app").exists() or not any((tmp_path / "app").iterdir())


def test_checkout_head(tmp_path, origin, sub_env):
    app = tmp_path / "it's an app"
    assert run_sync(app, origin.remote, origin.first, sub_env()).returncode == 0
    proc = sh(git_commands.checkout_head(str(app)), sub_env())
    assert (proc.returncode, proc.stdout.decode().strip()) == (0, origin.first)
    missing = sh(git_commands.checkout_head(str(tmp_path / "nothing here")), sub_env())
    assert (missing.returncode, missing.stdout) == (0, b"")


# --------------------------------------------------------------------------- private file, executed

ALL_BYTES = bytes(range(256)) * 3 + b"\n\r\n\x00last line without newline"


def test_write_private_file_is_byte_identical_and_0600(tmp_path):
    path = tmp_path / "srv" / "my app" / "conf dir" / ".env.docker"
    proc = sh(file_commands.write_private_file(str(path)), dict(os.environ), stdin=ALL_BYTES)
    assert proc.returncode == 0, proc.stderr
    assert path.read_bytes() == ALL_BYTES
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == [".env.docker"]  # no temp file left


def test_write_private_file_replaces_a_readable_file(tmp_path):
    path = tmp_path / "app" / ".env.docker"
    path.parent.mkdir()
    path.write_text("OLD=1\n")
    path.chmod(0o644)
    proc = sh(file_commands.write_private_file(str(path)), dict(os.environ), stdin=b"NEW=2\n")
    assert proc.returncode == 0, proc.stderr
    assert path.read_bytes() == b"NEW=2\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_write_private_file_stale_readable_temp_file(tmp_path):
    # a connection cut mid-write can leave NAME.berth-tmp behind, maybe with a looser mode
    path = tmp_path / "app" / ".env.docker"
    path.parent.mkdir()
    stale = path.parent / ".env.docker.berth-tmp"
    stale.write_text("half a file that is much longer than the new one\n")
    stale.chmod(0o644)
    proc = sh(file_commands.write_private_file(str(path)), dict(os.environ), stdin=b"NEW=2\n")
    assert proc.returncode == 0, proc.stderr
    assert path.read_bytes() == b"NEW=2\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not stale.exists()


def test_write_private_file_empty_stdin(tmp_path):
    path = tmp_path / "x" / "empty.env"
    assert sh(file_commands.write_private_file(str(path)), dict(os.environ)).returncode == 0
    assert path.read_bytes() == b""


@pytest.mark.parametrize("name", ["it's.env", "$(touch pwned).env", "a b\nc.env"])
def test_write_private_file_special_names(tmp_path, name):
    path = tmp_path / "app" / name
    proc = sh(file_commands.write_private_file(str(path)), dict(os.environ), stdin=b"A=1\n", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert path.read_bytes() == b"A=1\n"
    assert not (tmp_path / "pwned").exists()


def test_write_private_file_relative_name_without_directory(tmp_path):
    proc = sh(file_commands.write_private_file(".env.docker"), dict(os.environ), stdin=b"A=1\n", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / ".env.docker").is_file()
    assert (tmp_path / ".env.docker").read_bytes() == b"A=1\n"


# --------------------------------------------------------------------------- release records, executed


def _record(state: Path, rid: str, payload: dict, make_current: bool) -> bytes:
    line = (json.dumps(payload, sort_keys=True) + "\n").encode()
    proc = sh(release_commands.record(str(state), rid, make_current), dict(os.environ), stdin=line)
    assert proc.returncode == 0, proc.stderr
    return line


def test_release_record_files(tmp_path):
    state = tmp_path / "home" / ".berth" / "my shop"
    first = _record(state, "20250101T000000Z-aaaaaaa", {"id": 1, "result": "ok"}, True)
    assert (state / "releases" / "20250101T000000Z-aaaaaaa.json").read_bytes() == first
    assert (state / "history.jsonl").read_bytes() == first
    assert (state / "current.json").read_bytes() == first

    failed = _record(state, "20250102T000000Z-bbbbbbb", {"id": 2, "result": "failed"}, False)
    assert (state / "releases" / "20250102T000000Z-bbbbbbb.json").read_bytes() == failed
    assert (state / "history.jsonl").read_bytes() == first + failed
    assert (state / "current.json").read_bytes() == first  # a failed release is not current

    third = _record(state, "20250103T000000Z-ccccccc", {"id": 3, "result": "ok"}, True)
    assert (state / "history.jsonl").read_bytes() == first + failed + third
    assert (state / "current.json").read_bytes() == third
    assert sorted(p.name for p in state.iterdir()) == ["current.json", "history.jsonl", "releases"]
    assert sorted(p.name for p in (state / "releases").iterdir()) == [
        "20250101T000000Z-aaaaaaa.json", "20250102T000000Z-bbbbbbb.json", "20250103T000000Z-ccccccc.json"]
    for p in [state / "current.json", state / "history.jsonl", *(state / "releases").iterdir()]:
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p


def test_release_history_reads_the_last_lines(tmp_path):
    state = tmp_path / "st ate"
    lines = [_record(state, f"r{i}", {"i": i}, i % 2 == 0) for i in range(5)]
    proc = sh(release_commands.history(str(state), 3), dict(os.environ))
    assert proc.returncode == 0
    assert proc.stdout == b"".join(lines[-3:])
    missing = sh(release_commands.history(str(tmp_path / "none"), 3), dict(os.environ))
    assert (missing.returncode, missing.stdout) == (0, b"")


def test_release_state_dir_rel():
    assert release_commands.state_dir_rel("shop") == ".berth/shop"


# --------------------------------------------------------------------------- server facts, executed


def test_facts_script_reads_home_user_and_current_release(tmp_path, sub_env):
    home = tmp_path / "home dir"
    state = home / ".berth" / "shop"
    state.mkdir(parents=True)
    (state / "current.json").write_text('{"commit": "abc", "result": "ok"}\n')
    env = sub_env(HOME=str(home))
    proc = subprocess.run(["sh", "-c", host_commands.facts(".berth/shop")], capture_output=True, env=env,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    facts, current = host_commands.parse_facts(proc.stdout.decode())
    assert facts["home"] == str(home)
    assert facts["user"]
    assert facts["git"].startswith("git version")
    assert "docker" in facts or "docker_error" in facts
    assert json.loads(current) == {"commit": "abc", "result": "ok"}


def test_parse_facts_without_current_release():
    facts, current = host_commands.parse_facts("home=/h\nuser=u\nnoise\ncompose=v2 2.26.1\n---berth-current---\n")
    assert facts == {"home": "/h", "user": "u", "compose": "v2 2.26.1"}
    assert current == ""


@pytest.mark.parametrize("layout, adopted", [
    ({"legacy": True}, True),  # deployed before berth read name: — keep the name the server runs
    ({"legacy": True, "new": True}, False),  # deployed under the new name already
    ({}, False),  # a new server
])
def test_facts_adopt_the_legacy_project_only_when_the_server_knows_only_it(tmp_path, sub_env, layout, adopted):
    home = tmp_path / "home"
    for name, present in (("legacy", layout.get("legacy")), ("new", layout.get("new"))):
        if present:
            (home / ".berth" / name).mkdir(parents=True)
            (home / ".berth" / name / "current.json").write_text(f'{{"id": "{name}"}}\n')
    home.mkdir(exist_ok=True)
    proc = subprocess.run(["sh", "-c", host_commands.facts(".berth/new", ".berth/legacy")], capture_output=True,
                          env=sub_env(HOME=str(home)), timeout=120)
    assert proc.returncode == 0, proc.stderr
    facts, current = host_commands.parse_facts(proc.stdout.decode())
    assert (facts.get("legacy") == "1") is adopted
    expected = "legacy" if adopted else "new" if layout.get("new") else None
    assert (json.loads(current)["id"] if current else None) == expected


def test_secret_files_are_kept_per_release_restored_and_pruned(tmp_path):
    """The shipped secret and config files: the server's own copy is kept the first time, each release keeps its
    files (0600) beside its record, a rollback puts them back, a pruned release's copies go."""
    app, state = tmp_path / "app dir", tmp_path / "home" / ".berth" / "shop"
    (app / "secrets").mkdir(parents=True)
    (app / "secrets" / "db.txt").write_bytes(b"placed by hand\n")
    (app / ".env.docker").write_bytes(b"A=1\n")
    rels = ["secrets/db.txt", "conf/it's.conf"]

    def ship(rel: str, data: bytes) -> bytes:
        script = (file_commands.keep_original(f"{app}/{rel}", f"{state}/replaced/{rel}") + " && "
                  + file_commands.write_private_file(f"{app}/{rel}"))
        proc = sh(script, dict(os.environ), stdin=data)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    assert ship(rels[0], b"release one\n") == b"kept\n"
    assert ship(rels[1], b"conf one\n") == b""  # nothing was there: nothing to keep
    assert (state / "replaced" / "secrets" / "db.txt").read_bytes() == b"placed by hand\n"
    line = b'{"id": "R1"}\n'
    proc = sh(release_commands.record(str(state), "R1", True, f"{app}/.env.docker", str(app), rels),
              dict(os.environ), stdin=line)
    assert proc.returncode == 0, proc.stderr
    assert ship(rels[0], b"release two\n") == b""  # berth's own file now: the hand-placed copy stays as it was
    assert (state / "replaced" / "secrets" / "db.txt").read_bytes() == b"placed by hand\n"
    copies = state / "releases" / "R1.files"
    assert (copies / "secrets" / "db.txt").read_bytes() == b"release one\n"
    for path in [copies / rels[0], copies / rels[1], app / rels[0], app / rels[1]]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path

    proc = sh(release_commands.restore_env(str(state), "R1", f"{app}/.env.docker", str(app), rels), dict(os.environ))
    assert proc.returncode == 0, proc.stderr
    assert (app / rels[0]).read_bytes() == b"release one\n"
    # a copy gone: exit 3, nothing changed
    (app / rels[0]).write_bytes(b"release two\n")
    (copies / rels[1]).unlink()
    proc = sh(release_commands.restore_env(str(state), "R1", f"{app}/.env.docker", str(app), rels), dict(os.environ))
    assert proc.returncode == 3 and (app / rels[0]).read_bytes() == b"release two\n"

    proc = sh(release_commands.prune_env_copies(str(state), ["R2"]), dict(os.environ))
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (state / "releases").iterdir()) == ["R1.json"]
