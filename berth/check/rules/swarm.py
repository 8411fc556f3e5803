"""What Docker Swarm ignores or changes in a compose file, for environments with engine = "swarm".

`docker stack deploy` skips some service keys ("Ignoring unsupported options: ...": the docker CLI's
UnsupportedProperties and DeprecatedProperties), and swarm has no start order (berth.model.compose.swarm
.IGNORED). Each finding points at the key and says what to write instead.
"""

from __future__ import annotations

from berth.check.findings import Severity, finding, rule
from berth.errors import UsageError
from berth.model.compose.services import at, services
from berth.model.compose.swarm import IGNORED


def _swarm(ctx) -> bool:
    try:
        return ctx.target.engine == "swarm"
    except UsageError:
        return False  # settings.engine reports it


@rule("swarm.ignored-key", Severity.WARNING,
      "a service key that docker stack deploy ignores, so the service runs without it on the swarm",
      "write what the finding names instead (docs/FLEETS.md, Swarm)")
def ignored_key(ctx):
    if not _swarm(ctx):
        return
    for svc in services(ctx):
        for cf, d in svc.defs:
            for key, fix in IGNORED.items():
                if key == "restart" and isinstance(svc.merged("deploy").get("restart_policy"), dict):
                    continue  # kept for docker compose; the swarm follows deploy.restart_policy
                if key in d:
                    yield finding(f"service {svc.name} sets {key}, which docker stack deploy ignores", fix=fix,
                                  **at(cf, "services", svc.name, key))


@rule("swarm.build", Severity.INFO,
      "a service is built: on a swarm, berth builds it on the manager and copies the image to the nodes",
      "nothing to do; set image: to a registry's name to have the nodes pull it instead (docs/FLEETS.md, Swarm)")
def built(ctx):
    if not _swarm(ctx):
        return
    for svc in services(ctx):
        for cf, d in svc.defs:
            if "build" in d:
                yield finding(f"service {svc.name} is built: berth builds it on the swarm manager and copies the "
                              "image to each node that runs it", **at(cf, "services", svc.name, "build"))
