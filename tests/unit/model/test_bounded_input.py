"""The user's files are read bounded (berth.model.files.read_bytes) and YAML alias bombs are refused before they are
expanded (berth.model.compose.file.refuse_unbounded_graph): review §6."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from berth.errors import UsageError
from berth.model.compose.file import MAX_YAML_DEPTH, allowed_alias_ratio, excessive_aliasing, load_compose_file, parse_compose_text
from berth.model.files import read_bytes


def bomb(levels: int, width: int = 9) -> str:
    """The review's alias bomb: each level a list of `width` aliases of the level below (about 500 bytes)."""
    lines = [f'x-l0: &l0 [{", ".join(["lol"] * width)}]']
    lines += [f"x-l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, levels + 1)]
    return "\n".join([*lines, "services:", "  web:", "    image: nginx", f"    command: *l{levels}", ""])


# --------------------------------------------------------------------------- the bounded reader


def test_regular_file_up_to_the_limit(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"x" * 100)
    assert read_bytes(path, limit=100) == b"x" * 100


def test_one_byte_over_the_limit(tmp_path):
    path = tmp_path / "docker-compose.yml"
    path.write_bytes(b"x" * 2049)
    with pytest.raises(UsageError) as info:
        read_bytes(path, limit=2048, kind="a compose file", fix="point compose_files at the real one")
    assert info.value.what == ("docker-compose.yml is 2 KiB; a compose file over 2 KiB is not plausible, so berth "
                               "does not read it")
    assert info.value.where == str(path) and info.value.fix == "point compose_files at the real one"
    assert info.value.exit_code == 2


@pytest.mark.timeout(10)
def test_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    path = tmp_path / ".env.docker"
    os.mkfifo(path)
    with pytest.raises(UsageError) as info:
        read_bytes(path, limit=1024)
    assert info.value.what == "cannot read .env.docker: it is a FIFO (named pipe), not a regular file"
    assert info.value.where == str(path)


@pytest.mark.timeout(10)
@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom", "/dev/null"])
def test_device_behind_a_symlink_is_refused(tmp_path, device):
    path = tmp_path / "docker-compose.yml"
    path.symlink_to(device)
    with pytest.raises(UsageError) as info:
        read_bytes(path, limit=1024)
    assert info.value.what == (f"cannot read docker-compose.yml: it is a character device (a symlink to {device}), "
                               "not a regular file")


def test_directory_is_refused(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(UsageError, match="cannot read d: it is a directory, not a regular file"):
        read_bytes(tmp_path / "d", limit=10)


def test_socket_is_refused(tmp_path):
    path = tmp_path / "s"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(path))
        with pytest.raises(UsageError, match="cannot read s: it is a socket, not a regular file"):
            read_bytes(path, limit=10)


def test_missing_file(tmp_path):
    with pytest.raises(UsageError) as info:
        read_bytes(tmp_path / "nope", limit=10, fix_unreadable="create it")
    assert info.value.what == "cannot read nope: No such file or directory" and info.value.fix == "create it"


def test_a_file_bigger_than_its_size_says_is_still_bounded():
    """/proc files say size 0 and have content: the limit holds for what is read, not for st_size."""
    path = Path("/proc/self/maps")
    assert path.stat().st_size == 0
    with pytest.raises(UsageError, match=r"maps is over 64 bytes; this file over 64 bytes is not plausible"):
        read_bytes(path, limit=64)


# --------------------------------------------------------------------------- YAML: aliases, cycles, depth


def test_yaml_v3_alias_ratio():
    assert allowed_alias_ratio(1000) == allowed_alias_ratio(400_000) == 0.99
    assert allowed_alias_ratio(4_000_000) == allowed_alias_ratio(10**9) == 0.10
    assert allowed_alias_ratio(2_200_000) == pytest.approx(0.545)
    assert not excessive_aliasing(1000, 999)  # too small to judge
    assert not excessive_aliasing(100_000, 100)
    assert excessive_aliasing(1001, 995)
    assert not excessive_aliasing(1001, 990)


@pytest.mark.parametrize("levels", [3, 4, 6, 9, 30])
def test_alias_bomb_is_refused_quickly(tmp_path, levels):
    """The review: 6 levels (506 bytes) took 74 s and 6 GB; 9 levels never finished."""
    path = tmp_path / "docker-compose.yml"
    path.write_text(bomb(levels))
    started = time.monotonic()
    with pytest.raises(UsageError) as info:
        load_compose_file(path)
    assert time.monotonic() - started < 1
    assert "docker-compose.yml contains excessive aliasing" in info.value.what
    assert info.value.where == str(path)


def test_aliases_as_compose_files_use_them_are_fine(tmp_path):
    common = "x-common: &common\n  restart: unless-stopped\n  logging: &logging\n    driver: json-file\n" \
             "    options: {max-size: 10m, max-file: '3'}\n  environment: &env\n" + \
             "".join(f"    VAR_{i}: value{i}\n" for i in range(40))
    services = "".join(f"  s{i}:\n    <<: *common\n    image: app:{i}\n    logging: *logging\n    environment: *env\n"
                       for i in range(60))
    cf = parse_compose_text(common + "services:\n" + services, tmp_path / "docker-compose.yml")
    assert len(cf.services) == 60
    assert cf.services["s59"]["environment"]["VAR_39"] == "value39"


@pytest.mark.parametrize("aliases, refused", [(60, False), (300, True)])
def test_alias_expansion_is_judged_as_yaml_v3_judges_it(tmp_path, aliases, refused):
    """Parity with compose: a list of 20 values aliased 60 times is ~98% alias expansion (allowed up to 99%),
    300 times ~99.7% (refused)."""
    items = ", ".join(f"v{i}" for i in range(20))
    text = f"x-l0: &l0 [{items}]\nx-l1: [{', '.join(['*l0'] * aliases)}]\nservices:\n  web:\n    image: nginx\n"
    if refused:
        with pytest.raises(UsageError, match="excessive aliasing"):
            parse_compose_text(text, tmp_path / "c.yml")
    else:
        assert parse_compose_text(text, tmp_path / "c.yml").services == {"web": {"image": "nginx"}}


def test_alias_inside_its_own_anchor_is_refused(tmp_path):
    """It made every walk of the data recurse until RecursionError (a traceback)."""
    with pytest.raises(UsageError) as info:
        parse_compose_text("services:\n  web: &a\n    image: nginx\n    x: [*a]\n", tmp_path / "c.yml")
    assert "contains itself" in info.value.what
    assert info.value.where == f"{tmp_path / 'c.yml'}:2:8"


@pytest.mark.parametrize("depth", [MAX_YAML_DEPTH + 5, 5000])
def test_deep_nesting_is_refused(tmp_path, depth):
    text = "services:\n  web:\n    image: nginx\n    x: " + "[" * depth + "]" * depth + "\n"
    with pytest.raises(UsageError) as info:
        parse_compose_text(text, tmp_path / "c.yml")
    assert f"nests more than {MAX_YAML_DEPTH} levels deep" in info.value.what
    assert info.value.where.startswith(f"{tmp_path / 'c.yml'}:4:")


def test_nesting_that_is_deep_only_through_aliases_is_refused(tmp_path):
    half = MAX_YAML_DEPTH // 2 + 5
    text = ("x-deep: &deep " + "[" * half + "]" * half + "\nservices:\n  web:\n    image: nginx\n    x: "
            + "[" * half + "*deep" + "]" * half + "\n")
    with pytest.raises(UsageError, match="levels deep through its aliases"):
        parse_compose_text(text, tmp_path / "c.yml")


def test_moderate_nesting_is_fine(tmp_path):
    text = "services:\n  web:\n    image: nginx\n    x: " + "[" * 50 + "]" * 50 + "\n"
    assert parse_compose_text(text, tmp_path / "c.yml").services["web"]["image"] == "nginx"


def test_k8s_manifests_get_the_same_guard(tmp_path):
    from berth.k8s.manifests import read_manifest_file

    path = tmp_path / "deploy.yaml"
    path.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n" + bomb(6).split("services:")[0])
    with pytest.raises(UsageError, match="deploy.yaml contains excessive aliasing"):
        read_manifest_file(path)


@pytest.mark.parametrize("text, line, key", [
    ("services:\n  web:\n    image: a\n    image: b\n", 4, "image"),  # PyYAML alone keeps "b" without a word
    ("services:\n  web:\n    image: a\nservices:\n  db:\n    image: b\n", 4, "services"),
    ("x: {a: 1, a: 2}\nservices: {}\n", 1, "a"),
])
def test_a_key_written_twice_is_refused_where_the_second_one_is(tmp_path, text, line, key):
    with pytest.raises(UsageError) as refused:
        parse_compose_text(text, tmp_path / "compose.yaml")
    assert f'mapping key "{key}" already defined' in refused.value.what
    assert refused.value.where.startswith(f"{tmp_path / 'compose.yaml'}:{line}:")


def test_merge_keys_may_repeat_and_override():
    text = "x: &a {image: a}\nservices:\n  web:\n    <<: *a\n    image: b\n"
    assert parse_compose_text(text, Path("compose.yaml")).data["services"]["web"]["image"] == "b"
