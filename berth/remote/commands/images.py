"""Images carried between engines without a registry: `docker save` on the host that built them, `docker load`
on the others (a fleet's one build, berth.deploy.stages.shared_build; a swarm's nodes, berth.deploy.swarm)."""

from __future__ import annotations

from berth.remote.shell import join, quote, script

ABSENT = "-"


def image_id(ref: str) -> str:
    """The id of the image `ref` on this engine; empty when it has none."""
    return f"docker image inspect --format '{{{{.Id}}}}' {quote(ref)} 2>/dev/null || true"


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
    """This engine's platform (`platform=OS/ARCH`), then `have ID` for each of `ids` it already has."""
    lines = ["printf 'platform=%s\\n' \"$(docker version --format '{{.Server.Os}}/{{.Server.Arch}}')\""]
    lines += [f"docker image inspect {quote(i)} >/dev/null 2>&1 && echo {quote('have ' + i)}" for i in ids]
    return script([*lines, "true"])


def parse_holds(out: str) -> tuple[str, set[str]]:
    platform, have = "", set()
    for line in out.splitlines():
        if line.startswith("platform="):
            platform = line.split("=", 1)[1].strip()
        elif line.startswith("have "):
            have.add(line[5:].strip())
    return platform, have


def load_and_tag(pairs: list[tuple[str, str]], load_first: bool) -> str:
    """stdin (a `save` archive) loaded when `load_first`, then each image id tagged with the name compose runs it by
    (`pairs`: (id, name)). An id neither the engine nor the archive has fails its tag: exit non-zero."""
    lines = [f"{load()} >/dev/null"] if load_first else []
    lines += [tag(i, name) for i, name in pairs]
    return script(lines)
