"""Stage: a fleet's one build (build = "once" in berth.toml; the default, "each", builds on every host).

The first host that needs a build builds; every other host loads those very images over SSH (`docker save |
gzip -1` on the builder, through berth, `docker load` on the host) and tags them with the names its compose runs
them by. A fleet of N hosts builds once, and every host runs the same image ids: N builds of one Dockerfile can
differ (a base image or a package that changed in between). A host of another platform, or a fleet whose build
failed or cannot be shared, builds for itself, as a single server does.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from berth.deploy.stages.compose_up import compose_build
from berth.errors import BerthError
from berth.remote.commands import images as image_commands
from berth.remote.session import HostSession

COPY_TIMEOUT = 1800


@dataclass
class Shared:
    """One build and what it made, as the other hosts wait for it."""

    builder: str  # the host that builds
    done: threading.Event = field(default_factory=threading.Event)
    images: dict[str, tuple[str, str]] = field(default_factory=dict)  # service → (image id, os/arch)
    archive: bytes = b""  # `docker save` of those ids, gzipped
    why_not: str = ""  # why the others build for themselves
    # the archive without the layers a host has already, by those layers (hosts of one fleet mostly have the same)
    trimmed: dict[frozenset[str], bytes] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def for_host(self, chains: frozenset[str]) -> bytes:
        with self.lock:
            if chains not in self.trimmed:
                self.trimmed[chains] = image_commands.trim_archive(self.archive, chains)
            return self.trimmed[chains]


class SharedBuild:
    """A fleet's builds: one per set of built services (hosts of different roles build different ones)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._builds: dict[tuple[str, ...], Shared] = {}

    def claim(self, services: tuple[str, ...], host: str) -> tuple[Shared, bool]:
        """The build of `services`, and whether `host` is its builder (the first to ask)."""
        with self._lock:
            if services in self._builds:
                return self._builds[services], False
            shared = self._builds[services] = Shared(builder=host)
            return shared, True


def build(session: HostSession, shared_build: SharedBuild, built: set[str], declared: dict[str, str]) -> str:
    """One host's build step in a fleet: build and share, or load what the builder shared; the step's detail."""
    services = tuple(sorted(built))
    shared, mine = shared_build.claim(services, session.host.label)
    if mine:
        try:
            compose_build(session)
        except BaseException:
            shared.why_not = f"the build on {shared.builder} failed"
            shared.done.set()
            raise
        try:
            _share(session, shared, services, declared)
        finally:
            shared.done.set()
        if shared.why_not:
            return f"built (the other hosts build for themselves: {shared.why_not})"
        return f"built; the other hosts load these images ({_size(len(shared.archive))})"
    shared.done.wait()  # the builder sets it however its build ends
    if shared.why_not:
        compose_build(session)
        return f"built here: {shared.why_not}"
    return _receive(session, shared, declared)


def _share(session: HostSession, shared: Shared, services: tuple[str, ...], declared: dict[str, str]) -> None:
    """The built images' ids, platforms and archive into `shared`; `why_not` says why when they cannot be shared."""
    names = {s: session.compose.built_image(s, declared.get(s)) for s in services}
    try:
        found = image_commands.parse_describe(
            session.conn.run(image_commands.describe(list(names.values())), timeout=60).out)
        missing = [n for n in names.values() if n not in found]
        if missing:
            shared.why_not = f"{', '.join(missing)} not found on {shared.builder} after its build"
            return
        ids = sorted({found[n][0] for n in names.values()})
        saved = session.conn.run(image_commands.save(*ids), timeout=COPY_TIMEOUT)
    except BerthError as exc:  # the connection failed: this host's own next step says so
        shared.why_not = f"the images could not be read on {shared.builder} ({exc.what})"
        return
    if not saved.ok or not saved.stdout:
        shared.why_not = f"docker save failed on {shared.builder}: {saved.tail(200)}"
        return
    shared.images = {s: found[n] for s, n in names.items()}
    shared.archive = saved.stdout


def _receive(session: HostSession, shared: Shared, declared: dict[str, str]) -> str:
    """Load the builder's images this host lacks and name them as its compose does; build here when they do not
    fit (another platform) or cannot be loaded."""
    ids = sorted({image_id for image_id, _ in shared.images.values()})
    holds = image_commands.parse_holds(session.conn.run(image_commands.holds(ids), timeout=60).out)
    wanted = sorted({p for _, p in shared.images.values()})
    if holds.platform and wanted != [holds.platform]:
        compose_build(session)
        return f"built here: {shared.builder}'s images are {', '.join(wanted)}, this host is {holds.platform}"
    pairs = [(image_id, session.compose.built_image(s, declared.get(s))) for s, (image_id, _) in shared.images.items()]
    services = ", ".join(shared.images)
    has_all = all(i in holds.have for i in ids)
    if has_all and session.conn.run(image_commands.load_and_tag(pairs, load_first=False), timeout=60).ok:
        return f"{services}: {shared.builder}'s images were already here"
    archive = shared.for_host(holds.chains)  # only the layers it lacks
    loaded = session.conn.run(image_commands.load_and_tag(pairs, load_first=True), stdin=archive, timeout=COPY_TIMEOUT)
    if not loaded.ok and archive is not shared.archive:  # an engine that wants every layer file: all of them
        archive = shared.archive
        loaded = session.conn.run(image_commands.load_and_tag(pairs, load_first=True), stdin=archive,
                                  timeout=COPY_TIMEOUT)
    if not loaded.ok:
        compose_build(session)
        return f"built here: {shared.builder}'s images did not load ({loaded.tail(200)})"
    if archive is shared.archive:
        return f"{services} loaded from {shared.builder} ({_size(len(archive))})"
    return (f"{services} loaded from {shared.builder} ({_size(len(archive))} of {_size(len(shared.archive))}: "
            "the layers this host lacked)")


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n / 1e3:.0f} kB"
