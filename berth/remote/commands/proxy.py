"""berth's proxy on a server, as data: the compose override that runs it, its Caddyfile, and the commands
that switch a service's traffic from one container to another (docs/ROLLOUTS.md).

The proxy is Caddy, a service of the app's own compose project, defined in an override file berth writes
into its state directory (the user's compose file is not edited). It publishes the ports the start-first
services published (the override takes them off those services with compose's `!reset`) and forwards each
port to one container by name. A switch is one graceful reload to `[new, old]` with `lb_policy first`: new
requests go to the new container, and the old one stays an upstream, so Caddy keeps counting the requests
still in flight there. A background job stops the old container once that count is zero (or the drain
timeout has passed); the next switch drops it from the list.

With `domains` in berth.toml the proxy also serves those host names by HTTPS on 80/443: Caddy gets and
renews their certificates by ACME (into its data volume, which outlives every proxy container) and, unless
`https_redirect = false`, answers plain HTTP on port 80 with a redirect to HTTPS.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from berth.configuration.target import DEFAULT_PROXY_IMAGE as DEFAULT_IMAGE
from berth.configuration.target import Tls
from berth.model.compose.rollout import Route, Site
from berth.remote.shell import join, quote

SERVICE = "berth-proxy"  # the proxy's compose service name
DATA_VOLUME = "berth-proxy-data"
CONFIG_DIR_IN_CONTAINER = "/etc/caddy"
ADMIN = "localhost:2019"
RETRY_SECONDS = 10  # Caddy retries a request on another upstream (or the same one) for this long
HTTP_PORT, HTTPS_PORT = 80, 443  # where the proxy serves the domains (and answers ACME's HTTP and TLS challenges)
CA_ROOT_NAME = "acme-ca.pem"  # acme_ca_root, shipped beside the Caddyfile


@dataclass(frozen=True)
class ProxySetup:
    """Everything berth's proxy serves on a host, from the checked repository: the start-first services'
    published ports, the HTTPS sites of berth.toml's domains, the networks it joins, how it gets
    certificates, and its image."""

    routes: list[Route] = field(default_factory=list)
    sites: list[Site] = field(default_factory=list)
    networks: dict[str, list[str]] = field(default_factory=dict)  # service → its networks
    tls: Tls | None = None
    image: str = DEFAULT_IMAGE
    ca_root_pem: bytes = b""  # acme_ca_root's certificate(s), shipped beside the Caddyfile

    def serves(self, service: str) -> bool:
        return any(r.service == service for r in self.routes) or any(s.service == service for s in self.sites)

    def override(self, state_dir: str) -> str:
        return override(self.routes, self.networks, self.image, state_dir, self.sites)

    def caddyfile(self, upstreams: dict[str, list[str]]) -> str:
        return caddyfile(self.routes, upstreams, self.sites, self.tls)


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


def ca_root_path(state_dir: str) -> str:
    return posixpath.join(config_dir(state_dir), CA_ROOT_NAME)


def published(routes: Sequence[Route], sites: Sequence[Site] = ()) -> list[tuple[str, int]]:
    """(host_ip, port) the proxy publishes: the routes' ports, and 80 and 443 when it serves domains."""
    out = {(r.host_ip, r.published) for r in routes}
    if sites:
        out |= {("", HTTP_PORT), ("", HTTPS_PORT)}
    return sorted(out, key=lambda hp: (hp[1], hp[0]))


def override(routes: Sequence[Route], networks: dict[str, list[str]], image: str, state_dir: str,
             sites: Sequence[Site] = ()) -> str:
    """The compose override file: the proxy service, and the start-first services without their ports.

    `networks`: service → the networks it is on (the proxy joins all of them to reach the containers)."""
    services = sorted({r.service for r in routes})
    reached = sorted({*services, *(s.service for s in sites)})
    joined = sorted({n for s in reached for n in networks.get(s, ["default"])})
    lines = ["# written by berth: its proxy publishes these services' ports (docs/ROLLOUTS.md); do not edit",
             "services:"]
    for service in services:
        lines += [f"  {json.dumps(service)}:", "    ports: !reset []"]
    lines += [f"  {SERVICE}:", f"    image: {json.dumps(image)}", "    restart: unless-stopped",
              '    command: ["caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]',
              "    ports:"]
    for host_ip, port in published(routes, sites):
        host = f"{host_ip}:" if host_ip else ""
        lines.append(f"      - {json.dumps(f'{host}{port}:{port}')}")
    lines += ["    volumes:", f"      - {json.dumps(config_dir(state_dir) + ':' + CONFIG_DIR_IN_CONTAINER + ':ro')}",
              f"      - {json.dumps(DATA_VOLUME + ':/data')}",
              "    networks:"]
    lines += [f"      - {json.dumps(n)}" for n in joined]
    # no depends_on: with it, compose 2.26 recreates the proxy on every `up --no-deps` that names it
    lines += ["volumes:", f"  {DATA_VOLUME}: {{}}"]
    return "\n".join(lines) + "\n"


def caddyfile(routes: Sequence[Route], upstreams: dict[str, list[str]], sites: Sequence[Site] = (),
              tls: Tls | None = None) -> str:
    """The proxy's configuration: each route to its service's containers (`upstreams`: service → container
    names, the serving one first), and each site's host names by HTTPS (to the service's containers, or to
    its service name when berth does not switch it). `lb_policy first` sends every request to the first one
    that is up."""
    lines = ["{", f"\tadmin {ADMIN}"]
    if not sites:
        lines.append("\tauto_https off")
    else:
        tls = tls or Tls()
        if tls.email:
            lines.append(f"\temail {_word(tls.email)}")
        if tls.ca:
            lines.append(f"\tacme_ca {_word(tls.ca)}")
        if tls.ca_root is not None:
            lines.append(f"\tacme_ca_root {CONFIG_DIR_IN_CONTAINER}/{CA_ROOT_NAME}")
        if not tls.redirect:
            lines.append("\tauto_https disable_redirects")
        # HTTP/3 would need 443/udp published too: offer HTTP/1.1 and HTTP/2, and no Alt-Svc that fails
        lines += ["\tservers {", "\t\tprotocols h1 h2", "\t}"]
    lines.append("}")
    blocks = [(f":{r.published}", r.service, r.target) for r in sorted(routes, key=lambda r: r.published)]
    blocks += [(", ".join(s.names), s.service, s.target) for s in sites]
    for address, service, target in blocks:
        names = upstreams.get(service) or ([service] if not address.startswith(":") else [])
        if not names:
            continue
        dial = " ".join(f"{name}:{target}" for name in names)
        lines += ["", f"{address} {{", f"\treverse_proxy {dial} {{", "\t\tlb_policy first",
                  f"\t\tlb_try_duration {RETRY_SECONDS}s", "\t\tlb_try_interval 250ms", "\t}", "}"]
    return "\n".join(lines) + "\n"


def _word(value: str) -> str:
    """One Caddyfile token (the settings are checked; this keeps a stray space or quote from splitting it)."""
    return value if value and not any(c.isspace() or c in '"{}#' for c in value) else json.dumps(value)


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


IMAGE_FORMAT = "{{.Config.Image}}"


def image_of(container: str) -> str:
    """Shell text printing the image a container was created from, as its compose file named it."""
    return join(["docker", "inspect", "--format", IMAGE_FORMAT, container])


def proxy_exec(proxy: str, argv: Sequence[str]) -> str:
    return join(["docker", "exec", proxy, *argv])


RELOAD_TRIES = 40  # × 0.25 s: how long a proxy that just started has to open its admin endpoint


def reload(proxy: str) -> str:
    """A graceful reload: Caddy keeps its listeners and finishes the requests in flight. A proxy that has just
    started may not listen on its admin endpoint yet ("connection refused"): that is tried again, for a while;
    any other failure is not."""
    once = proxy_exec(proxy, ["caddy", "reload", "--config", f"{CONFIG_DIR_IN_CONTAINER}/Caddyfile",
                              "--adapter", "caddyfile"])
    return (f"i=0; while :; do out=$({once} 2>&1) && break; i=$((i+1)); "
            f"case \"$out\" in *'connection refused'*) if [ $i -lt {RELOAD_TRIES} ]; then sleep 0.25; continue; fi;; "
            "esac; printf '%s\\n' \"$out\" >&2; exit 1; done")


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


CERTIFICATES_DIR = "/data/caddy/certificates"  # Caddy's storage: ISSUER/NAME/NAME.crt in the data volume


def certificates(proxy: str) -> str:
    """Shell text printing every certificate the proxy holds: a line `@@ NAME` before each one's PEM."""
    inner = (f'for f in {CERTIFICATES_DIR}/*/*/*.crt; do [ -r "$f" ] || continue; n=${{f##*/}}; '
             'echo "@@ ${n%.crt}"; cat "$f"; done')
    return proxy_exec(proxy, ["sh", "-c", inner])


def parse_certificates(text: str) -> dict[str, list[str]]:
    """name → the PEM texts `certificates` printed for it (one per ACME issuer that has issued one)."""
    out: dict[str, list[str]] = {}
    name = None
    for line in text.splitlines(keepends=True):
        if line.startswith("@@ "):
            name = line[3:].strip()
            out.setdefault(name, []).append("")
        elif name is not None:
            out[name][-1] += line
    return out


def certificate_log(proxy: str, name: str, lines: int = 400) -> str:
    """Shell text printing the proxy's last log lines about `name` that tell of a failure (at most three)."""
    return (f"docker logs --tail {lines} {quote(proxy)} 2>&1 | grep -F {quote(name)} "
            "| grep -iE 'error|fail|invalid|unauthorized' | tail -3")


def read_config(state_dir: str) -> str:
    """Shell text printing the proxy's Caddyfile, or nothing when there is none."""
    path = quote(caddyfile_path(state_dir))
    return f"[ -r {path} ] && cat {path} || true"


def serving(caddyfile_text: str) -> dict[str, list[str]]:
    """From a Caddyfile berth wrote: container (or service) name → what it serves, `:8080` for a published
    port and `https://app.example.com` for a domain (the first upstream of each; the ones after it get no new
    request)."""
    out: dict[str, list[str]] = {}
    addresses: list[str] | None = None
    for line in caddyfile_text.splitlines():
        if not line.startswith("\t") and line.rstrip().endswith("{") and line.strip() != "{":
            names = [a.strip() for a in line.rstrip()[:-1].split(",") if a.strip()]
            addresses = [a if a.startswith(":") else f"https://{a}" for a in names]
            continue
        words = line.split()
        if words[:1] == ["reverse_proxy"] and len(words) >= 2 and addresses is not None:
            out.setdefault(words[1].rsplit(":", 1)[0], []).extend(addresses)
            addresses = None
    return out
