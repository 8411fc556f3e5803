"""berth's proxy on a server, as data: the compose override that runs it, its Caddyfile, and the commands
that switch a service's traffic from one container to another (docs/ROLLOUTS.md).

The proxy is Caddy, a service of the app's own compose project, defined in an override file berth writes
into its state directory (the user's compose file is not edited). It publishes the ports the start-first
services published (the override takes them off those services with compose's `!reset`) and forwards each
port to one container by name. A switch is one graceful reload to `[new, old]` with `lb_policy first`: new
requests go to the new container, and the old one stays an upstream, so Caddy keeps counting the requests
still in flight there. A background job stops the old container once that count is zero (or the drain
timeout has passed); the next switch drops it from the list.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Sequence

from berth.configuration.target import DEFAULT_PROXY_IMAGE as DEFAULT_IMAGE  # noqa: F401  (re-exported)
from berth.model.compose.rollout import Route
from berth.remote.shell import join, quote

SERVICE = "berth-proxy"  # the proxy's compose service name
DATA_VOLUME = "berth-proxy-data"
CONFIG_DIR_IN_CONTAINER = "/etc/caddy"
ADMIN = "localhost:2019"
RETRY_SECONDS = 10  # Caddy retries a request on another upstream (or the same one) for this long


def supported(variant: str, version: str) -> bool:
    """Compose v2.24 or newer: the override's `!reset` (the tag that takes the services' ports) exists there."""
    if variant != "v2":
        return False
    numbers = [int(n) for n in re.findall(r"\d+", version)[:2]]
    return len(numbers) == 2 and tuple(numbers) >= (2, 24)


def override_path(state_dir: str) -> str:
    return posixpath.join(state_dir, "proxy", "compose.yml")


def config_dir(state_dir: str) -> str:
    return posixpath.join(state_dir, "proxy", "caddy")


def caddyfile_path(state_dir: str) -> str:
    return posixpath.join(config_dir(state_dir), "Caddyfile")


def override(routes: Sequence[Route], networks: dict[str, list[str]], image: str, state_dir: str) -> str:
    """The compose override file: the proxy service, and the start-first services without their ports.

    `networks`: service → the networks it is on (the proxy joins all of them to reach the containers)."""
    services = sorted({r.service for r in routes})
    joined = sorted({n for s in services for n in networks.get(s, ["default"])})
    lines = ["# written by berth: its proxy publishes these services' ports (docs/ROLLOUTS.md); do not edit",
             "services:"]
    for service in services:
        lines += [f"  {json.dumps(service)}:", "    ports: !reset []"]
    lines += [f"  {SERVICE}:", f"    image: {json.dumps(image)}", "    restart: unless-stopped",
              '    command: ["caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]',
              "    ports:"]
    for r in sorted(routes, key=lambda r: (r.published, r.host_ip)):
        host = f"{r.host_ip}:" if r.host_ip else ""
        lines.append(f"      - {json.dumps(f'{host}{r.published}:{r.published}')}")
    lines += ["    volumes:", f"      - {json.dumps(config_dir(state_dir) + ':' + CONFIG_DIR_IN_CONTAINER + ':ro')}",
              f"      - {json.dumps(DATA_VOLUME + ':/data')}",
              "    networks:"]
    lines += [f"      - {json.dumps(n)}" for n in joined]
    # no depends_on: with it, compose 2.26 recreates the proxy on every `up --no-deps` that names it
    lines += ["volumes:", f"  {DATA_VOLUME}: {{}}"]
    return "\n".join(lines) + "\n"


def caddyfile(routes: Sequence[Route], upstreams: dict[str, list[str]]) -> str:
    """The proxy's configuration: each route to its service's containers (`upstreams`: service → container
    names, the serving one first). `lb_policy first` sends every request to the first one that is up."""
    lines = ["{", f"\tadmin {ADMIN}", "\tauto_https off", "}"]
    for r in sorted(routes, key=lambda r: r.published):
        names = upstreams.get(r.service) or []
        if not names:
            continue
        dial = " ".join(f"{name}:{r.target}" for name in names)
        lines += ["", f":{r.published} {{", f"\treverse_proxy {dial} {{", "\t\tlb_policy first",
                  f"\t\tlb_try_duration {RETRY_SECONDS}s", "\t\tlb_try_interval 250ms", "\t}", "}"]
    return "\n".join(lines) + "\n"


def retired_path(state_dir: str) -> str:
    """Names of containers berth retired that are still stopping (one per line; each removes itself)."""
    return posixpath.join(state_dir, "proxy", "retired")


def container_ids(project: str, service: str, state_dir: str | None = None) -> str:
    """Shell text printing the ids and names of a service's running containers, newest first: `ID NAME` per
    line; with `state_dir`, without the ones berth retired that are still stopping."""
    ps = join(["docker", "ps", "--filter", f"label=com.docker.compose.project={project}",
               "--filter", f"label=com.docker.compose.service={service}",
               "--filter", "label=com.docker.compose.oneoff=False", "--format", "{{.ID}} {{.Names}}"])
    if state_dir is None:
        return ps
    retired = quote(retired_path(state_dir))
    return f"{ps} | {{ if [ -s {retired} ]; then awk 'NR==FNR {{gone[$0]=1; next}} !($2 in gone)' {retired} -; else cat; fi; }}"


def health_status(container: str) -> str:
    """Shell text printing `STATUS HEALTH` (`running healthy`, `exited none`) of one container."""
    return join(["docker", "inspect", "--format",
                 "{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}", container])


def proxy_exec(proxy: str, argv: Sequence[str]) -> str:
    return join(["docker", "exec", proxy, *argv])


def reload(proxy: str) -> str:
    """A graceful reload: Caddy keeps its listeners and finishes the requests in flight."""
    return proxy_exec(proxy, ["caddy", "reload", "--config", f"{CONFIG_DIR_IN_CONTAINER}/Caddyfile",
                              "--adapter", "caddyfile"])


def probe(proxy: str, container: str, port: int, path: str, timeout: int = 5) -> str:
    """GET `path` on one container, from the proxy (on its networks): exit 0 for a 2xx/3xx answer."""
    # `timeout`, not wget's -T: busybox 1.35's wget crashes on -T
    return proxy_exec(proxy, ["timeout", str(timeout), "wget", "-q", "-O", "/dev/null", f"http://{container}:{port}{path}"])


def retire(container: str, state_dir: str, proxy: str | None = None, drain_seconds: float = 0) -> str:
    """Retire a container that no longer gets new requests, in the background so that neither the drain nor a
    slow stop costs the deploy time: with `proxy`, first wait (at most `drain_seconds`) until the proxy has no
    request in flight to it; then stop it with its own stop timeout and remove it. Until it is gone its name
    is in the retired list, so the next switch does not take it for a serving container."""
    retired = quote(retired_path(state_dir))
    name = quote(container)
    drain = ""
    if proxy is not None:
        # Caddy's upstream list, as JSON; an answer that cannot be read means: wait on
        pattern = quote(f'"address":"{container}:[0-9]*","num_requests":[0-9]*')
        fetch = join(["docker", "exec", proxy, "timeout", "5", "wget", "-q", "-O", "-",
                      f"http://{ADMIN}/reverse_proxy/upstreams"])
        drain = (f"end=$(( $(date +%s) + {max(0, int(drain_seconds))} )); "
                 f"while [ \"$(date +%s)\" -lt \"$end\" ]; do "
                 f"if j=$({fetch} 2>/dev/null); then "
                 f"n=$(printf '%s' \"$j\" | grep -o {pattern} | sed 's/.*://' | awk '{{s+=$1}} END {{print s+0}}'); "
                 f"[ \"$n\" = 0 ] && break; fi; sleep 0.2; done; ")
    inner = (f"{drain}docker stop {name} >/dev/null 2>&1; docker rm {name} >/dev/null 2>&1; "
             f"grep -vxF {name} {retired} > {retired}.tmp; mv -f {retired}.tmp {retired}")
    # only the nohup runs in the background, with every fd away from the SSH session (which would wait for it)
    return f"echo {name} >> {retired} && {{ nohup sh -c {quote(inner)} </dev/null >/dev/null 2>&1 & }}"


def read_config(state_dir: str) -> str:
    """Shell text printing the proxy's Caddyfile, or nothing when there is none."""
    path = quote(caddyfile_path(state_dir))
    return f"[ -r {path} ] && cat {path} || true"


def serving(caddyfile_text: str) -> dict[str, list[int]]:
    """From a Caddyfile berth wrote: container name → the published ports it serves (the first upstream of
    each port; the ones after it get no new request)."""
    out: dict[str, list[int]] = {}
    port = None
    for line in caddyfile_text.splitlines():
        words = line.split()
        if len(words) == 2 and words[0].startswith(":") and words[0][1:].isdigit() and words[1] == "{":
            port = int(words[0][1:])
        elif words[:1] == ["reverse_proxy"] and len(words) >= 2 and port is not None:
            out.setdefault(words[1].rsplit(":", 1)[0], []).append(port)
            port = None
    return out
