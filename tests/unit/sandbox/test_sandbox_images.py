"""The stand-in stack images (berth/sandbox/images.py), without docker, network or root: the recipe
hash and names, the image metadata, the entrypoint scripts (run against stub commands), mount
parsing and what the cache trusts after a killed build."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from berth.errors import BerthError
from berth.sandbox import images

# ---------------------------------------------------------------- recipe hash and names


def test_recipe_hash_is_short_hex_and_stable():
    h = images.recipe_hash()
    assert re.fullmatch(r"[0-9a-f]{12}", h)
    assert images.recipe_hash() == h


@pytest.mark.parametrize("change", [
    lambda mp: mp.setattr(images, "PACKAGES", images.PACKAGES + ("procps",)),
    lambda mp: mp.setattr(images, "WHEELHOUSE_REQUIREMENTS", [*images.WHEELHOUSE_REQUIREMENTS, "httpx==0.27.2"]),
    lambda mp: mp.setattr(images, "WHEELHOUSE_REQUIREMENTS", ["fastapi==0.115.0", "uvicorn==0.32.0",
                                                               "psycopg[binary]==3.2.3", "redis==5.2.0"]),
    lambda mp: mp.setitem(images.ENTRYPOINTS, "usr/local/bin/docker-entrypoint.sh",
                          images.POSTGRES_ENTRYPOINT.replace("700", "750")),
    lambda mp: mp.setitem(images.ENTRYPOINTS, "usr/local/bin/redis-entrypoint.sh", images.REDIS_ENTRYPOINT + "\n"),
    lambda mp: mp.setattr(images, "CONFIGURE_SCRIPT", images.CONFIGURE_SCRIPT + "true\n"),
    lambda mp: mp.setattr(images, "RECIPE_VERSION", images.RECIPE_VERSION + 1),
])
def test_recipe_hash_changes_with_the_recipe(monkeypatch, change):
    before = images.recipe_hash()
    change(monkeypatch)
    assert images.recipe_hash() != before


def test_requirement_list_is_the_documented_one():
    assert images.WHEELHOUSE_REQUIREMENTS == ["fastapi==0.115.0", "uvicorn==0.32.1", "psycopg[binary]==3.2.3",
                                              "redis==5.2.0"]
    assert images.STACK_IMAGES == ("python:3.12-slim", "postgres:16.4-alpine", "redis:7.4-alpine")


def test_image_label_follows_image_metadata_but_the_tarball_does_not(monkeypatch):
    rootfs, label = images.recipe_hash(), images.images_label()
    monkeypatch.setitem(images.IMAGE_SPECS, images.REDIS_IMAGE, ("WORKDIR /srv", 'CMD ["redis-server"]'))
    assert images.recipe_hash() == rootfs
    assert images.images_label() != label
    assert images.images_label("0" * 12) != images.images_label("1" * 12)


def test_tar_and_base_names_carry_the_hash():
    assert images.tar_name("abc123def456") == "stack-rootfs-abc123def456.tar"
    assert images.base_tag("abc123def456") == "berth-sandbox/stack-base:abc123def456"


def test_cache_survives_sandbox_down():
    if "BERTH_SANDBOX_CACHE" not in os.environ:
        assert images.CACHE == Path("/var/cache/berth-sandbox")
    assert not str(images.CACHE).startswith("/var/lib/berth-sandbox")


# ---------------------------------------------------------------- image metadata


def _dockerfile(tag: str) -> str:
    return images.image_dockerfile(tag, "berth-sandbox/stack-base:x", "lbl123")


def test_python_image_installs_offline():
    text = _dockerfile(images.PYTHON_IMAGE)
    assert text.startswith("FROM berth-sandbox/stack-base:x\n")
    for needle in ("PIP_NO_INDEX=1", "PIP_FIND_LINKS=/wheels", "PIP_DISABLE_PIP_VERSION_CHECK=1", "LANG=C.UTF-8",
                   "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", 'CMD ["python3"]',
                   "WORKDIR /", f"{images.LABEL_KEY}=lbl123"):
        assert needle in text
    assert "ENTRYPOINT" not in text


def test_postgres_image_runs_the_entrypoint_with_pg_tools_on_path():
    text = _dockerfile(images.POSTGRES_IMAGE)
    assert f"PATH=/usr/lib/postgresql/{images.PG_MAJOR}/bin:" in text
    assert "PGDATA=/var/lib/postgresql/data" in text
    assert 'ENTRYPOINT ["docker-entrypoint.sh"]' in text and 'CMD ["postgres"]' in text
    assert "usr/local/bin/docker-entrypoint.sh" in images.ENTRYPOINTS


def test_redis_image_works_in_data():
    text = _dockerfile(images.REDIS_IMAGE)
    assert "WORKDIR /data" in text and 'CMD ["redis-server"]' in text
    assert 'ENTRYPOINT ["redis-entrypoint.sh"]' in text
    assert "usr/local/bin/redis-entrypoint.sh" in images.ENTRYPOINTS


def test_labels_are_quoted_for_the_dockerfile():
    label_line = _dockerfile(images.PYTHON_IMAGE).splitlines()[-1]
    assert re.fullmatch(r'LABEL berth\.sandbox\.recipe=lbl123 berth\.sandbox\.note="python:3\.12-slim stand-in: [^"]+"',
                        label_line)


def test_configure_script_drops_the_install_cluster_and_build_settings():
    script = images.CONFIGURE_SCRIPT
    assert "/var/lib/postgresql/*" in script and "/etc/postgresql/*" in script
    assert "rm -f /usr/sbin/policy-rc.d" in script
    assert "/var/lib/apt/lists/*" in script and "/usr/share/doc/*" in script
    assert "! -name C.utf8" in script


# ---------------------------------------------------------------- entrypoint scripts against stub commands


def _stub(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)


@pytest.fixture
def pg(tmp_path):
    """Runs the postgres entrypoint as a non-root user with initdb/pg_ctl/psql/postgres stubs that
    log their argv (and initdb the content of --pwfile)."""
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir()
    script = tmp_path / "docker-entrypoint.sh"
    script.write_text(images.POSTGRES_ENTRYPOINT)
    script.chmod(0o755)
    record = f'echo "$(basename "$0") $*" >> {log}\n'
    _stub(bin_dir, "id", "echo 999\n")
    log_pwfile = f'for a; do case "$a" in --pwfile=*) echo "PWFILE $(cat "${{a#--pwfile=}}")" >> {log};; esac; done\n'
    make_cluster = 'touch "$PGDATA/postgresql.conf" "$PGDATA/pg_hba.conf"; echo 15 > "$PGDATA/PG_VERSION"\n'
    _stub(bin_dir, "initdb", record + log_pwfile + make_cluster)
    _stub(bin_dir, "pg_ctl", record)
    _stub(bin_dir, "psql", record + f'echo "STDIN $(cat)" >> {log}\n')
    _stub(bin_dir, "postgres", record)
    pgdata = tmp_path / "data"
    pgdata.mkdir()

    def run(*args: str, **env: str) -> subprocess.CompletedProcess:
        full_env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "PGDATA": str(pgdata), "TMPDIR": str(tmp_path), **env}
        return subprocess.run(["sh", str(script), *args], env=full_env, capture_output=True, text=True, timeout=20)

    run.log, run.pgdata, run.tmp = log, pgdata, tmp_path
    return run


def test_entrypoints_are_valid_sh():
    for text in images.ENTRYPOINTS.values():
        assert subprocess.run(["sh", "-n"], input=text, text=True, capture_output=True).returncode == 0


def test_postgres_refuses_an_empty_password(pg):
    proc = pg(POSTGRES_USER="app")
    assert proc.returncode == 1
    assert "POSTGRES_PASSWORD" in proc.stderr and "superuser password is not specified" in proc.stderr
    assert not pg.log.exists()


def test_postgres_first_start_initialises_without_password_in_argv(pg):
    password = "s3cret pw $x 'q'"
    proc = pg(POSTGRES_USER="app", POSTGRES_PASSWORD=password, POSTGRES_DB="appdb")
    assert proc.returncode == 0, proc.stderr
    calls = pg.log.read_text().splitlines()
    argv_lines = [c for c in calls if not c.startswith(("PWFILE ", "STDIN "))]
    assert all("s3cret" not in c for c in argv_lines)
    assert f"PWFILE {password}" in calls
    initdb = next(c for c in calls if c.startswith("initdb "))
    assert "--username=app" in initdb and "--auth-host=scram-sha-256" in initdb and "--pwfile=" in initdb
    assert any(c.startswith("psql ") and "--set=db=appdb" in c for c in calls)
    assert 'STDIN CREATE DATABASE :"db";' in calls
    assert calls[-1] == "postgres "  # exec'd last, after pg_ctl stop
    assert "listen_addresses = '*'" in (pg.pgdata / "postgresql.conf").read_text()
    assert "host all all all scram-sha-256" in (pg.pgdata / "pg_hba.conf").read_text()
    assert not [p for p in pg.tmp.iterdir() if p.name.startswith("tmp.")]  # the password file is gone


def test_postgres_defaults_db_to_user_and_skips_create_for_postgres(pg):
    assert pg(POSTGRES_PASSWORD="pw").returncode == 0
    calls = pg.log.read_text()
    assert "--username=postgres" in calls and "CREATE DATABASE" not in calls


def test_postgres_second_start_skips_init(pg):
    assert pg(POSTGRES_PASSWORD="pw", POSTGRES_DB="appdb").returncode == 0
    pg.log.unlink()
    proc = pg("-c", "max_connections=50")  # no password needed once initialised
    assert proc.returncode == 0, proc.stderr
    assert "Skipping initialization" in proc.stdout
    assert pg.log.read_text().splitlines() == ["postgres -c max_connections=50"]


def _run_redis_entrypoint(tmp_path: Path, *args: str, uid: str = "999") -> list[str]:
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir(exist_ok=True)
    _stub(bin_dir, "id", f"echo {uid}\n")
    _stub(bin_dir, "find", "")
    for name in ("redis-server", "setpriv", "redis-cli"):
        _stub(bin_dir, name, f'echo "$(basename "$0") $*" >> {log}\n')
    script = tmp_path / "redis-entrypoint.sh"
    script.write_text(images.REDIS_ENTRYPOINT)
    proc = subprocess.run(["sh", str(script), *args], env={"PATH": f"{bin_dir}:/usr/bin:/bin"}, cwd=tmp_path,
                          capture_output=True, text=True, timeout=20)
    assert proc.returncode == 0, proc.stderr
    return log.read_text().splitlines()


def test_redis_entrypoint_turns_protected_mode_off_like_the_official_image(tmp_path):
    assert _run_redis_entrypoint(tmp_path, "redis-server", "--requirepass", "pw", "--appendonly", "yes") == [
        "redis-server --protected-mode no --requirepass pw --appendonly yes"]


def test_redis_entrypoint_leaves_a_config_file_in_charge(tmp_path):
    assert _run_redis_entrypoint(tmp_path, "/etc/redis.conf", "--port", "7000") == [
        "redis-server /etc/redis.conf --port 7000"]


def test_redis_entrypoint_drops_root_and_runs_other_commands_as_is(tmp_path):
    assert _run_redis_entrypoint(tmp_path, "redis-server", uid="0") == [
        "setpriv --reuid=redis --regid=redis --init-groups redis-server --protected-mode no"]
    assert _run_redis_entrypoint(tmp_path, "redis-cli", "ping")[-1] == "redis-cli ping"


# ---------------------------------------------------------------- wheelhouse helpers


def test_pip_platforms_cover_older_manylinux_only():
    tags = images.pip_platforms(36, "x86_64")
    assert tags[0] == "manylinux_2_36_x86_64" and "manylinux_2_17_x86_64" in tags and "manylinux_2_5_x86_64" in tags
    assert {"manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"} <= set(tags)
    assert "manylinux_2_37_x86_64" not in tags
    assert "manylinux2014_x86_64" not in images.pip_platforms(12, "x86_64")


def test_missing_distribution_is_read_from_pips_error():
    out = ("ERROR: Could not find a version that satisfies the requirement async-timeout>=4.0.3 "
           "(from redis) (from versions: none)\nERROR: No matching distribution found for async-timeout>=4.0.3\n")
    assert images.missing_distribution(out) == "async-timeout>=4.0.3"
    assert images.missing_distribution("ERROR: something else") is None


# ---------------------------------------------------------------- mounts and the cache after a killed build

MOUNTINFO = """\
22 1 0:21 / / rw - overlay overlay rw
40 22 0:5 / /var/cache/berth-sandbox/.build-ab/rootfs/proc rw - proc proc rw
41 22 0:6 / /var/cache/berth-sandbox/.build-ab/rootfs/sys rw - sysfs sysfs rw
42 22 0:7 / /var/cache/berth-sandbox/.build-abc/rootfs/proc rw - proc proc rw
43 22 0:8 / /var/cache/berth-sandbox/.build-ab/rootfs/dev/pts rw - devpts devpts rw
44 22 0:9 / /var/cache/with\\040space/x rw - tmpfs tmpfs rw
"""


def test_mounts_under_is_exact_about_the_prefix_and_deepest_first():
    found = images.mounts_under("/var/cache/berth-sandbox/.build-ab", MOUNTINFO)
    assert found[0] == "/var/cache/berth-sandbox/.build-ab/rootfs/dev/pts"
    assert set(found) == {"/var/cache/berth-sandbox/.build-ab/rootfs/proc",
                          "/var/cache/berth-sandbox/.build-ab/rootfs/sys",
                          "/var/cache/berth-sandbox/.build-ab/rootfs/dev/pts"}
    assert images.mounts_under("/var/cache/with space", MOUNTINFO) == ["/var/cache/with space/x"]
    assert images.mounts_under("/nowhere", MOUNTINFO) == []


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setattr(images, "CACHE", tmp_path)
    return tmp_path


def test_cached_tarball_is_reused_and_stale_builds_are_cleaned(cache, monkeypatch):
    monkeypatch.setattr(images, "_build", lambda work, out: pytest.fail("must not rebuild"))
    done = cache / images.tar_name(images.recipe_hash())
    done.write_bytes(b"tar")
    stale = cache / ".build-killed"
    (stale / "rootfs/usr").mkdir(parents=True)
    assert images.stack_rootfs_tar() == done
    assert not stale.exists()


def test_a_half_built_tarball_is_never_trusted(cache, monkeypatch):
    name = images.tar_name(images.recipe_hash())
    stale = cache / ".build-killed"
    stale.mkdir()
    (stale / name).write_bytes(b"half a tar")  # what a SIGKILL during packing leaves

    def failing_build(work: Path, out: Path) -> None:
        assert not stale.exists()  # cleaned before building
        (work / out.name).write_bytes(b"another half")
        raise BerthError("debootstrap failed")

    monkeypatch.setattr(images, "_check_build_prerequisites", lambda: None)
    monkeypatch.setattr(images, "_build", failing_build)
    with pytest.raises(BerthError, match="debootstrap failed"):
        images.stack_rootfs_tar()
    assert sorted(p.name for p in cache.iterdir()) == [".lock"]


def test_a_finished_build_replaces_older_recipes(cache, monkeypatch):
    old = cache / images.tar_name("0" * 12)
    old.write_bytes(b"old")

    def build(work: Path, out: Path) -> None:
        (work / out.name).write_bytes(b"new")
        os.rename(work / out.name, out)

    monkeypatch.setattr(images, "_check_build_prerequisites", lambda: None)
    monkeypatch.setattr(images, "_build", build)
    out = images.stack_rootfs_tar()
    assert out.read_bytes() == b"new" and not old.exists()
    assert sorted(p.name for p in cache.iterdir()) == [".lock", out.name]
