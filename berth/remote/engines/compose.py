"""`docker compose` (v2) and `docker-compose` (v1) commands, as data.

Both read the same flags for what berth uses. Never `down -v`, never `volume rm`: named volumes
hold the user's data and no command here removes one.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from berth.remote.shell import case_patterns, join, quote

# docker inspect format: one JSON object per container and line. `json` renders every field, so a
# container without a healthcheck (no .State.Health) or never started (no StartedAt) still gives a
# whole line; .State carries the health probe's own output and the daemon's start error. Never
# .Config.Env: it holds the app's secrets.
INSPECT_FORMAT = (
    '{"service":{{json (index .Config.Labels "com.docker.compose.service")}},"name":{{json .Name}},'
    '"id":{{json .Id}},"state":{{json .State}},"restarts":{{json .RestartCount}},'
    '"policy":{{json .HostConfig.RestartPolicy.Name}},"image":{{json .Config.Image}},"image_id":{{json .Image}}}'
)
KEEP_REPOSITORY = "berth-releases"


@dataclass(frozen=True)
class Compose:
    variant: str  # "v2" or "v1"
    project: str
    files: tuple[str, ...]
    env_file: str
    # a host of roles (berth.toml) runs these services only; empty: all. Their dependencies on other
    # hosts are not started here (--no-deps)
    services: tuple[str, ...] = ()

    @property
    def program(self) -> list[str]:
        return ["docker", "compose"] if self.variant == "v2" else ["docker-compose"]

    def base(self) -> list[str]:
        cmd = [*self.program, "--project-name", self.project]
        for f in self.files:
            cmd += ["--file", f]
        return [*cmd, "--env-file", self.env_file]

    def build(self) -> list[str]:
        return [*self.base(), "build", *self.services]  # layer cache on; never --no-cache

    def up(self) -> list[str]:
        # --remove-orphans removes containers of services deleted from the file; volumes stay
        return [*self.base(), "up", "--detach", "--remove-orphans", *self._only()]

    def _only(self) -> list[str]:
        return ["--no-deps", *self.services] if self.services else []

    def built_image(self, service: str, declared: str | None = None) -> str:
        """The name compose gives the image it builds for `service`: the file's `image:`, else its default."""
        return declared or f"{self.project}{'-' if self.variant == 'v2' else '_'}{service}"

    def recreate(self, services: tuple[str, ...]) -> list[str]:
        """New containers for `services` although their config is the same (a mounted file changed)."""
        return [*self.base(), "up", "--detach", "--no-deps", "--force-recreate", *services]

    def logs(self, services: tuple[str, ...] = (), tail: int = 50, follow: bool = False) -> list[str]:
        cmd = [*self.base(), "logs", "--no-color", "--tail", str(tail)]
        if follow:
            cmd.append("--follow")
        return [*cmd, *services]

    def inspect_containers(self) -> str:
        """Shell text printing INSPECT_FORMAT lines for the project's containers (not one-off `run`s)."""
        ps = join([
            "docker", "ps", "--all", "--quiet",
            "--filter", f"label=com.docker.compose.project={self.project}",
            "--filter", "label=com.docker.compose.oneoff=False",
        ])
        return f"ids=$({ps}); if [ -n \"$ids\" ]; then docker inspect --format {quote(INSPECT_FORMAT)} $ids; fi"


def in_dir(app_dir: str, argv: list[str]) -> str:
    return f"cd {quote(app_dir)} && {join(argv)}"


# every state docker gives a container (.State.Status)
CONTAINER_STATES = ("created", "running", "paused", "restarting", "removing", "exited", "dead")


@dataclass(frozen=True)
class ContainerState:
    service: str
    name: str
    id: str
    status: str  # one of CONTAINER_STATES, or "missing" for an expected service without a container
    health: str  # healthy, unhealthy, starting, "" (no healthcheck)
    exit_code: int
    restarts: int
    started_at: str
    restart_policy: str
    image: str = ""  # the image reference the container was created from (e.g. app-web)
    image_id: str = ""
    health_log: str = ""  # the output of the last failing health probe (docker keeps the last five)
    error: str = ""  # why the daemon could not start it (a port already taken, a missing mount)
    oom_killed: bool = False

    @property
    def ready(self) -> bool:
        if self.status == "running":
            return self.health in ("", "healthy")
        # a one-shot service (no restart policy) that finished cleanly is done, not failed
        return self.status == "exited" and self.exit_code == 0 and self.restart_policy in ("", "no")

    @property
    def failed(self) -> bool:
        """Will not get better by waiting: verify stops at once."""
        if self.health == "unhealthy" and self.status == "running":
            return True
        # after `up` has returned, a container still in `created` is never started by anyone
        if self.status in ("dead", "missing", "created") or (self.error and self.status != "running"):
            return True
        return self.status == "exited" and not self.ready and self.restart_policy in ("", "no")

    def describe(self) -> str:
        if self.status == "missing":
            return "missing (no container)"
        # a stopped container keeps its last health status; it means nothing once it is not running
        health = f" ({self.health})" if self.health and self.status in ("running", "restarting") else ""
        extra = f", exit code {self.exit_code}" if self.status in ("exited", "restarting", "dead") else ""
        extra += " (out of memory)" if self.oom_killed and self.status != "running" else ""
        extra += f", restarted {self.restarts}x" if self.restarts else ""
        extra += f": {self.error}" if self.error else ""
        if self.status == "created" and not self.error:
            extra += ", never started"
        return f"{self.status}{health}{extra}"


def missing_container(service: str) -> ContainerState:
    """The row of an expected service that has no container at all."""
    return ContainerState(service, "", "", "missing", "", 0, 0, "", "")


def parse_inspect(stdout: str) -> list[ContainerState]:
    """INSPECT_FORMAT lines → states; a line that is not such an object is skipped."""
    import json

    states = []
    for line in stdout.splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if not isinstance(row, dict) or not isinstance(row.get("state"), dict):
            continue
        state = row["state"]
        health = state.get("Health") if isinstance(state.get("Health"), dict) else {}
        states.append(ContainerState(
            service=_text(row.get("service")), name=_text(row.get("name")).lstrip("/"), id=_text(row.get("id")),
            status=_text(state.get("Status")), health=_text(health.get("Status")),
            exit_code=_number(state.get("ExitCode")), restarts=_number(row.get("restarts")),
            started_at=_started(state.get("StartedAt")), restart_policy=_text(row.get("policy")),
            image=_text(row.get("image")), image_id=_text(row.get("image_id")),
            health_log=_health_output(health) if health.get("Status") in ("unhealthy", "starting") else "",
            error=_text(state.get("Error")).strip(), oom_killed=state.get("OOMKilled") is True,
        ))
    return states


def _text(value) -> str:
    return value if isinstance(value, str) else ""


def _number(value) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _started(value) -> str:
    # a container that never started has StartedAt 0001-01-01T00:00:00Z
    text = _text(value)
    return "" if text.startswith("0001-") else text


def _health_output(health: dict) -> str:
    """The output of the newest failed probe (the probe's own words: 'connection refused', a stack trace)."""
    log = [e for e in health.get("Log") or () if isinstance(e, dict)]
    failed = [e for e in log if e.get("ExitCode") != 0] or log
    if not failed:
        return ""
    entry = failed[-1]
    output = _text(entry.get("Output")).strip()
    return output or f"(the probe exited with code {_number(entry.get('ExitCode'))} and printed nothing)"


# one path component of an image reference (docker's grammar; lowercase only)
_REF_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_REF_TAG = re.compile(r"[a-z0-9_][a-z0-9_.-]{0,127}")


def ref_component(name: str) -> str:
    """`name` (a compose project or service) as one path component of an image reference.

    A name that already is one stays as it is. Any other (`Web`: docker refuses uppercase) is
    lowercased and gets a hash of the original name, so `Web` and `web` never share a tag.
    """
    if _REF_COMPONENT.fullmatch(name):
        return name
    base = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "x"
    return f"{base}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def _ref_tag(release_id: str) -> str:
    tag = release_id.lower()
    if not _REF_TAG.fullmatch(tag):
        raise ValueError(f"release id {release_id!r} cannot be an image tag")
    return tag


def keep_ref(project: str, service: str, release_id: str) -> str:
    """The tag that keeps a release's image from being garbage: berth-releases/<project>/<service>:<release>.

    `/` separates project and service: compose project names cannot contain it, and docker's
    `reference` filter `*` does not match it, so one project's prune never sees another's tags
    (with `<project>-<service>`, project `app` pruned the tags of project `app-admin`).
    """
    return f"{KEEP_REPOSITORY}/{ref_component(project)}/{ref_component(service)}:{_ref_tag(release_id)}"


def keep_images(images: dict[str, dict], project: str, release_id: str) -> str:
    """Tag every service image of a release so a rollback needs no build; exit 1 if any tag failed."""
    lines = ["rc=0"]
    lines += [f"{join(['docker', 'tag', i['id'], keep_ref(project, service, release_id)])} || rc=1"
              for service, i in images.items()]
    return "\n".join([*lines, "exit $rc"]) + "\n"


def builds_image(service: str, image: dict, project: str) -> bool | None:
    """Whether this project builds the image of `service` (its name is then the project's own).

    Records made by this berth say so (`built`). For older records only compose's default name
    for a built image (`<project>-<service>`, v1 `<project>_<service>`) is known to be the
    project's; any other name may be a shared one (`postgres:16`): None, "cannot tell".
    """
    if "built" in image:
        return bool(image["built"])
    name = str(image.get("name", "")).split(":")[0]
    return True if name in (f"{project}-{service}", f"{project}_{service}") else None


def restore_images(images: dict[str, dict], project: str) -> str:
    """Put back the images of a past release; prints one `gone N` / `moved N` line per service N that needs a word.

    Only the names of images this project builds are re-pointed (`docker tag <old id> <name>`):
    `postgres:16` is the whole daemon's, and re-pointing it would change other projects too. For
    such a name the script only says whether it still points at the image the release ran
    (`moved N` otherwise). `gone N`: the old image of a built service is no longer on the host.
    N is the service's index in `images`.
    """
    lines = []
    for n, (service, i) in enumerate(images.items()):
        image_id, name = quote(i["id"]), quote(i["name"])
        if builds_image(service, i, project):
            lines.append(f"if docker image inspect {image_id} >/dev/null 2>&1; then "
                         f"docker tag {image_id} {name}; else echo 'gone {n}'; fi")
        else:
            lines.append(f"[ \"$(docker image inspect --format '{{{{.Id}}}}' {name} 2>/dev/null)\" = {image_id} ] "
                         f"|| echo 'moved {n}'")
    return "\n".join(["set -e", *lines]) + "\n"


def prune_kept_images(project: str, keep_release_ids: list[str]) -> str:
    """Untag kept images of releases that are no longer kept; images still in use stay (docker refuses).

    Tags of the old `berth-releases/<project>-<service>` form are not touched: they cannot be
    told apart from another project's (docs/RELEASES.md says how to remove them by hand).
    """
    keep = case_patterns(r.lower() for r in keep_release_ids)
    pattern = quote(f"{KEEP_REPOSITORY}/{ref_component(project)}/*")
    return (
        f"docker images --format '{{{{.Repository}}}}:{{{{.Tag}}}}' --filter reference={pattern} | "
        f"while read -r ref; do case \"${{ref##*:}}\" in {keep}) ;; "
        f"*) docker rmi \"$ref\" >/dev/null 2>&1 || true ;; esac; done"
    )
