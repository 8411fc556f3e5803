"""The preflight script: what the server says about the ports, images and disk a release needs (berth.deploy.stages.preflight)."""

from __future__ import annotations

from berth.remote.shell import quote

PULL_TIMEOUT = 900
# one JSON object per running container: its name, compose project and published ports
LISTEN_FORMAT = ('{"name":{{json .Name}},"project":{{json (index .Config.Labels "com.docker.compose.project")}},'
                 '"ports":{{json .NetworkSettings.Ports}}}')


def script(ports, images: list[str]) -> str:
    """One round trip for `ports` (berth.deploy.stages.preflight.Port) and the pulled `images`. It prints lines
    `listen PROTO HEXPORT`, `holder JSON`, `noimage N TEXT` (image N is missing and cannot be pulled)
    and `disk ROOT AVAIL_KB`."""
    wanted = sorted({(p.protocol, p.port) for p in ports})
    lines = []
    if wanted:
        # /proc/net/{tcp,udp}{,6}: local address is column 2 (HEX_IP:HEX_PORT), state column 4 (0A = LISTEN)
        for proto in ("tcp", "udp"):
            hexes = " ".join(f"{port:04X}" for pr, port in wanted if pr == proto)
            if not hexes:
                continue
            state = '$4 == "0A"' if proto == "tcp" else '$4 == "07"'
            lines.append(
                f"cat /proc/net/{proto} /proc/net/{proto}6 2>/dev/null | awk -v want={quote(hexes)} "
                f"'BEGIN {{ n = split(want, w, \" \"); for (i = 1; i <= n; i++) p[w[i]] = 1 }} "
                f"{state} {{ split($2, a, \":\"); if (a[2] in p) print \"listen {proto} \" a[2] }}' | sort -u")
        lines.append("ids=$(docker ps --quiet)")
        lines.append(f"if [ -n \"$ids\" ]; then docker inspect --format {quote(LISTEN_FORMAT)} $ids "
                     "| sed 's/^/holder /'; fi")
    for n, image in enumerate(images):
        name = quote(image)
        lines.append(f"if ! docker image inspect {name} >/dev/null 2>&1; then "
                     f"if ! out=$(timeout {PULL_TIMEOUT} docker pull --quiet {name} 2>&1); then "
                     f"printf 'noimage {n} %s\\n' \"$(printf '%s' \"$out\" | tail -n 1 | cut -c1-300)\"; fi; fi")
    lines.append('root=$(docker info --format "{{.DockerRootDir}}" 2>/dev/null)')
    lines.append('if [ -n "$root" ]; then printf "disk %s " "$root"; df -Pk "$root" 2>/dev/null | '
                 "awk 'NR == 2 { print $4 }'; fi")
    return "\n".join(lines) + "\n"
