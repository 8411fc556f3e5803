"""Images carried between engines without a registry: `docker save` on the host that built them, `docker load`
on the others (a fleet's one build, berth.deploy.stages.shared_build; a swarm's nodes, berth.deploy.swarm)."""

from __future__ import annotations

import hashlib
import json
import posixpath
from dataclasses import dataclass

from berth.remote.shell import join, quote, script

ABSENT = "-"


def tag(source: str, target: str) -> str:
    return join(["docker", "tag", source, target])


def save(*refs: str) -> str:
    """The images as one compressed archive on stdout (berth carries it to the engines that lack them)."""
    names = " ".join(quote(r) for r in refs)
    return f"docker image inspect {names} >/dev/null && docker save {names} | gzip -1"


def load() -> str:
    return "gunzip | docker load --quiet"


def describe(refs: list[str]) -> str:
    """One `REF ID OS/ARCH` line per image (`REF - -` for one this engine lacks)."""
    lines = [f"docker image inspect --format {quote(ref + ' {{.Id}} {{.Os}}/{{.Architecture}}')} {quote(ref)} "
             f"2>/dev/null || echo {quote(f'{ref} {ABSENT} {ABSENT}')}" for ref in refs]
    return "\n".join(lines) + "\n"


def parse_describe(out: str) -> dict[str, tuple[str, str]]:
    """ref → (id, platform) for the images `describe` found."""
    found = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] != ABSENT:
            found[parts[0]] = (parts[1], parts[2])
    return found


def holds(ids: list[str]) -> str:
    """This engine's platform (`platform=OS/ARCH`), `have ID` for each of `ids` it already has, and `layers [...]`:
    the layers (diff ids, base first) of every image it has, so an archive can leave out what it would skip."""
    lines = ["printf 'platform=%s\\n' \"$(docker version --format '{{.Server.Os}}/{{.Server.Arch}}')\""]
    lines += [f"docker image inspect {quote(i)} >/dev/null 2>&1 && echo {quote('have ' + i)}" for i in ids]
    lines += ["all=$(docker image ls --all --quiet)",
              "[ -z \"$all\" ] || docker image inspect --format 'layers {{json .RootFS.Layers}}' $all 2>/dev/null"]
    return script([*lines, "true"])


@dataclass(frozen=True)
class Holds:
    platform: str  # the engine's os/arch
    have: frozenset[str]  # of the image ids asked about, those it has
    chains: frozenset[str]  # the chain id of every layer of its images (docker load skips a layer it has)


def parse_holds(out: str) -> Holds:
    platform, have, chains = "", set(), set()
    for line in out.splitlines():
        if line.startswith("platform="):
            platform = line.split("=", 1)[1].strip()
        elif line.startswith("have "):
            have.add(line[5:].strip())
        elif line.startswith("layers "):
            try:
                layers = json.loads(line[7:])
            except ValueError:
                continue
            if isinstance(layers, list) and all(isinstance(d, str) for d in layers):
                chains.update(chain_ids(layers))
    return Holds(platform, frozenset(have), frozenset(chains))


def chain_ids(diff_ids: list[str]) -> list[str]:
    """The chain id of each layer of an image (its diff id on top of the chain below), as docker's layer store
    names them: the first layer's is its diff id, each next one sha256("CHAIN DIFF")."""
    out: list[str] = []
    for diff in diff_ids:
        out.append(diff if not out else "sha256:" + hashlib.sha256(f"{out[-1]} {diff}".encode()).hexdigest())
    return out


def trim_archive(archive: bytes, chains: frozenset[str]) -> bytes:
    """A `save` archive (gzipped) without the layer files an engine whose layers are `chains` already has: docker
    load skips a layer whose chain it has and never reads its file. The archive itself when none can go, or when it
    is not one docker save wrote as expected."""
    import gzip
    import io
    import tarfile

    try:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
            members = tar.getmembers()
            data = {m.name: tar.extractfile(m).read() for m in members if m.isfile()}
        manifest = json.loads(data["manifest.json"])
        layer_files, needed = set(), set()
        for entry in manifest:
            config = json.loads(data[entry["Config"]])
            for path, chain in zip(entry["Layers"], chain_ids(config["rootfs"]["diff_ids"]), strict=True):
                layer_files.add(path)
                if chain not in chains:
                    needed.add(path)
    except (OSError, EOFError, KeyError, TypeError, ValueError, tarfile.TarError):
        return archive
    by_name = {m.name: m for m in members}
    for path in list(needed):  # a layer file docker save linked to another one's: that one stays too
        member = by_name.get(path)
        if member is not None and member.issym():
            needed.add(posixpath.normpath(posixpath.join(posixpath.dirname(path), member.linkname)))
    drop = layer_files - needed
    if not drop:
        return archive
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=1, mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for member in members:
            if member.name not in drop:
                tar.addfile(member, io.BytesIO(data[member.name]) if member.isfile() else None)
    return out.getvalue()


def load_and_tag(pairs: list[tuple[str, str]], load_first: bool) -> str:
    """stdin (a `save` archive) loaded when `load_first`, then each image id tagged with the name compose runs it by
    (`pairs`: (id, name)). An id neither the engine nor the archive has fails its tag: exit non-zero."""
    lines = [f"{load()} >/dev/null"] if load_first else []
    lines += [tag(i, name) for i, name in pairs]
    return script(lines)
