"""A fleet's one build (build = "once"): who builds, what the others load, and when they build for themselves.

Logic only, on scripted connections; tests/sandbox/test_fleet.py proves it on real engines."""

from __future__ import annotations

import re
import threading
from types import SimpleNamespace

import pytest

from berth.deploy.stages.shared_build import SharedBuild, build
from berth.errors import BerthError
from berth.remote.commands import images as image_commands
from berth.remote.engines.compose import Compose
from berth.remote.transport.scripted import ScriptedTransport

WEB_ID, WORKER_ID = "sha256:" + "1" * 64, "sha256:" + "2" * 64
BUILD = re.compile(r"compose .* build|docker-compose .* build")
ARCHIVE = "GZIPPED-ARCHIVE"


def session(label: str, table: list, variant: str = "v2"):
    host = SimpleNamespace(label=label)
    return SimpleNamespace(host=host, conn=ScriptedTransport(host, table), app_dir="/srv/shop",
                           compose=Compose(variant, "shop", ("compose.yaml",), ".env.docker"))


def builder_table(build_answer=(0, "", ""), describe_out=None, save_answer=(0, ARCHIVE, "")):
    if describe_out is None:
        describe_out = f"shop-web {WEB_ID} linux/amd64\nregistry.example/worker:1 {WORKER_ID} linux/amd64\n"
    return [(BUILD, build_answer),
            (re.compile(r"image inspect --format"), (0, describe_out, "")),
            (re.compile(r"docker save"), save_answer)]


def receiver_table(platform="linux/amd64", have=(), load_answer=(0, "", "")):
    holds = f"platform={platform}\n" + "".join(f"have {i}\n" for i in have)
    return [(re.compile(r"docker version --format"), (0, holds, "")),
            (re.compile(r"docker tag"), load_answer),
            (BUILD, (0, "", ""))]


BUILT = {"web", "worker"}
DECLARED = {"worker": "registry.example/worker:1"}


def test_the_first_host_builds_and_the_others_load_its_images_under_their_own_compose_names():
    shared = SharedBuild()
    h1 = session("h1", builder_table())
    detail = build(h1, shared, BUILT, DECLARED)
    assert "built; the other hosts load these images" in detail
    assert any(image_commands.save(WEB_ID, WORKER_ID) == s for s, _ in h1.conn.calls)  # one archive, by id

    h2 = session("h2", receiver_table(), variant="v1")  # another compose names a build shop_web
    detail = build(h2, shared, BUILT, DECLARED)
    assert detail.startswith("web, worker loaded from h1")
    scripts = [s for s, _ in h2.conn.calls]
    assert not any(BUILD.search(s) for s in scripts)  # no second build
    load = next((s, stdin) for s, stdin in h2.conn.calls if "docker tag" in s)
    assert load[1] == ARCHIVE.encode()  # the builder's archive, on stdin
    assert load[0] == image_commands.load_and_tag(
        [(WEB_ID, "shop_web"), (WORKER_ID, "registry.example/worker:1")], load_first=True)


def test_a_host_that_has_the_images_already_only_names_them():
    shared = SharedBuild()
    build(session("h1", builder_table()), shared, BUILT, DECLARED)
    h2 = session("h2", receiver_table(have=(WEB_ID, WORKER_ID)))
    assert "images were already here" in build(h2, shared, BUILT, DECLARED)
    load = next((s, stdin) for s, stdin in h2.conn.calls if "docker tag" in s)
    assert load[1] is None and "docker load" not in load[0]


def test_a_failed_build_fails_its_host_and_the_others_build_for_themselves():
    shared = SharedBuild()
    h1 = session("h1", builder_table(build_answer=(1, "", "Dockerfile: no such file")))
    with pytest.raises(BerthError, match="build` failed on h1"):
        build(h1, shared, BUILT, DECLARED)
    h2 = session("h2", receiver_table())
    assert build(h2, shared, BUILT, DECLARED) == "built here: the build on h1 failed"
    assert any(BUILD.search(s) for s, _ in h2.conn.calls)


@pytest.mark.parametrize(("receiver", "why"), [
    (receiver_table(platform="linux/arm64"), "h1's images are linux/amd64, this host is linux/arm64"),
    (receiver_table(load_answer=(1, "", "no space left on device")), "h1's images did not load (no space left"),
])
def test_a_host_the_images_do_not_fit_builds_for_itself(receiver, why):
    shared = SharedBuild()
    build(session("h1", builder_table()), shared, BUILT, DECLARED)
    h2 = session("h2", receiver)
    detail = build(h2, shared, BUILT, DECLARED)
    assert detail.startswith("built here: ") and why in detail
    assert any(BUILD.search(s) for s, _ in h2.conn.calls)


@pytest.mark.parametrize(("builder", "why"), [
    (builder_table(describe_out=f"shop-web {WEB_ID} linux/amd64\nregistry.example/worker:1 - -\n"),
     "registry.example/worker:1 not found on h1 after its build"),
    (builder_table(save_answer=(1, "", "write error")), "docker save failed on h1: write error"),
])
def test_images_the_builder_cannot_share_are_built_by_every_host(builder, why):
    shared = SharedBuild()
    h1 = session("h1", builder)
    assert why in build(h1, shared, BUILT, DECLARED)  # the builder's own deploy goes on: its images are built
    h2 = session("h2", receiver_table())
    assert build(h2, shared, BUILT, DECLARED) == f"built here: {why}"


def test_the_others_wait_for_the_build_in_progress():
    shared = SharedBuild()
    release = threading.Event()

    def slow_build(script, stdin):
        release.wait(5)
        return 0, "", ""

    h1 = session("h1", [(BUILD, slow_build), *builder_table()[1:]])
    first = threading.Thread(target=build, args=(h1, shared, BUILT, DECLARED))
    first.start()
    while not h1.conn.calls:  # h1 has claimed the build and is in it
        threading.Event().wait(0.01)
    results = []
    second = threading.Thread(target=lambda: results.append(build(session("h2", receiver_table()), shared,
                                                                  BUILT, DECLARED)))
    second.start()
    second.join(0.3)
    assert second.is_alive() and not results  # waits for h1, does not build
    release.set()
    first.join(5)
    second.join(5)
    assert results and results[0].startswith("web, worker loaded from h1")


def test_hosts_of_other_roles_have_their_own_build():
    shared = SharedBuild()
    build(session("web1", builder_table(describe_out=f"shop-web {WEB_ID} linux/amd64\n")), shared, {"web"}, {})
    jobs = session("jobs1", builder_table(describe_out=f"registry.example/worker:1 {WORKER_ID} linux/amd64\n"))
    assert build(jobs, shared, {"worker"}, DECLARED).startswith("built; ")  # a builder too: worker is not web


# ----------------------------------------------------------------------------- archives without known layers

def layer_id(n: int) -> str:
    return "sha256:" + f"{n:x}" * 64


def save_archive(images: list[tuple[str, list[str], list[str]]], links: dict[str, str] = ()) -> bytes:
    """A gzipped archive laid out as `docker save` writes one: (config, layer files, diff ids) per image."""
    import gzip
    import io
    import json
    import tarfile

    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb") as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        def add(name, data: bytes):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        manifest = []
        for config, files, diffs in images:
            add(config, json.dumps({"rootfs": {"type": "layers", "diff_ids": diffs}}).encode())
            for f in files:
                if f in dict(links):
                    info = tarfile.TarInfo(f)
                    info.type, info.linkname = tarfile.SYMTYPE, dict(links)[f]
                    tar.addfile(info)
                elif f not in tar.getnames():
                    add(f, f"content of {f}".encode() * 100)
            manifest.append({"Config": config, "RepoTags": None, "Layers": files})
        add("manifest.json", json.dumps(manifest).encode())
    return buf.getvalue()


def names_in(archive: bytes) -> set[str]:
    import io
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        return set(tar.getnames())


def test_chain_ids_stack_each_layer_on_the_ones_below():
    import hashlib

    first, second = layer_id(1), layer_id(2)
    assert image_commands.chain_ids([first]) == [first]
    chains = image_commands.chain_ids([first, second, layer_id(3)])
    assert chains[1] == "sha256:" + hashlib.sha256(f"{first} {second}".encode()).hexdigest()
    assert len(set(chains)) == 3 and image_commands.chain_ids([second, first])[1] != chains[1]  # order matters


def test_an_archive_leaves_out_the_layers_the_host_has_and_keeps_the_rest():
    base, app = layer_id(1), layer_id(2)
    archive = save_archive([("img.json", ["a/layer.tar", "b/layer.tar"], [base, app])])
    have_base = frozenset(image_commands.chain_ids([base]))
    trimmed = image_commands.trim_archive(archive, have_base)
    assert names_in(trimmed) == {"img.json", "b/layer.tar", "manifest.json"}
    assert image_commands.trim_archive(archive, frozenset()) is archive  # a host with nothing gets everything
    # the same diff id on another base is another layer: it is sent
    assert image_commands.trim_archive(archive, frozenset(image_commands.chain_ids([app]))) is archive


def test_a_layer_file_linked_to_another_keeps_what_it_links_to():
    base, app, other = layer_id(1), layer_id(2), layer_id(3)
    archive = save_archive([("one.json", ["a/layer.tar", "b/layer.tar"], [base, app]),
                            ("two.json", ["c/layer.tar"], [other])], links={"c/layer.tar": "../b/layer.tar"})
    have = frozenset(image_commands.chain_ids([base, app]))  # one's layers are there; two's is not
    assert {"b/layer.tar", "c/layer.tar"} <= names_in(image_commands.trim_archive(archive, have))


def test_an_archive_that_is_not_docker_saves_goes_whole():
    assert image_commands.trim_archive(b"not gzip", frozenset({layer_id(1)})) == b"not gzip"


def test_holds_reads_the_platform_the_ids_and_the_layers_of_every_image():
    base, app = layer_id(1), layer_id(2)
    holds = image_commands.parse_holds(f"platform=linux/amd64\nhave {WEB_ID}\nlayers [\"{base}\",\"{app}\"]\n"
                                       "layers null\nlayers {broken\n")
    assert holds.platform == "linux/amd64" and holds.have == {WEB_ID}
    assert holds.chains == set(image_commands.chain_ids([base, app]))


def test_a_host_gets_only_the_layers_it_lacks_and_the_whole_archive_when_its_engine_refuses_that():
    base, app = layer_id(1), layer_id(2)
    archive = save_archive([("img.json", ["a/layer.tar", "b/layer.tar"], [base, app])])
    shared = SharedBuild()
    group, _ = shared.claim(("web",), "h1")  # h1 has built and shared this archive
    group.images, group.archive = {"web": (WEB_ID, "linux/amd64")}, archive
    group.done.set()
    sent = []

    def load(script, stdin):
        sent.append(stdin)
        return (1, "", "layer does not exist") if len(sent) == 1 else (0, "", "")

    holds = f"platform=linux/amd64\nlayers [\"{base}\"]\n"
    h2 = session("h2", [(re.compile(r"docker version --format"), (0, holds, "")), (re.compile("docker tag"), load)])
    detail = build(h2, shared, {"web"}, {})
    assert len(sent) == 2 and "a/layer.tar" not in names_in(sent[0]) and sent[1] == archive
    assert detail.startswith(f"web loaded from h1 ({len(archive) / 1e3:.0f} kB)")
    h3 = session("h3", [(re.compile(r"docker version --format"), (0, holds, "")),
                        (re.compile("docker tag"), (0, "", ""))])
    assert "the layers this host lacked" in build(h3, shared, {"web"}, {})
