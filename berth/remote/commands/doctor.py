"""What `berth doctor` asks a server: one script that gathers every fact, then small probes.

The gather script prints sections (`@@name` lines) so one round trip answers everything; a
section that cannot run (no docker, no checkout) prints what it knows and the rest go on.
Secret values never leave the server: containers' environments are read as names only (the
daemon's template splits NAME=value), and in-container probes read URLs from the
container's own environment by variable *name*. Env files are compared by checksum and by
which of the local file's names the server's copy has.
"""

from __future__ import annotations

import re

from berth.model.git import public_url
from berth.remote.commands.git import URL_WITHOUT_CREDENTIALS_SED
from berth.remote.commands.host import COMPOSE_VERSION
from berth.remote.engines.compose import INSPECT_FORMAT
from berth.remote.shell import quote

SECTION = "@@"
# one line per container: id, networks, published host ports, the *names* of its environment
CONTAINER_DETAILS_FORMAT = (
    "{{.Id}}\t{{range $net, $cfg := .NetworkSettings.Networks}}{{$net}} {{end}}\t"
    "{{range $port, $binds := .HostConfig.PortBindings}}{{range $binds}}{{.HostPort}}/{{$port}} {{end}}{{end}}\t"
    # the daemon splits NAME=value itself: only names cross the wire, even for multi-line values
    '{{range .Config.Env}}{{index (split . "=") 0}} {{end}}'
)


def remote_path(path: str) -> str:
    """A shell word for a remote path; `~/x` is the login user's home (known only on the server)."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        return '"$HOME"/' + quote(path[2:])
    return quote(path)


def gather(app_dir: str, env_file: str, project: str, remote_url: str | None, env_names: list[str],
           state_rel: str) -> str:
    """`env_names` are the local env file's keys: the server answers which of them its copy has."""
    app = remote_path(app_dir)
    env_path = remote_path(f"{app_dir.rstrip('/')}/{env_file}")
    # the URL berth deploy fetches from, as the server gets it: without credentials
    remote = quote(public_url(remote_url) if remote_url else "")
    ids = ("docker ps --all --quiet --filter " + quote(f"label=com.docker.compose.project={project}")
           + " --filter label=com.docker.compose.oneoff=False")
    # no `set -e`: a failing probe is a finding, and the sections after it must still run
    return "\n".join([
        f"echo {SECTION}facts",
        'printf "home=%s\\n" "$HOME"',
        'printf "user=%s\\n" "$(id -un)"',
        'if v=$(docker version --format "{{.Server.Version}}" 2>&1); then printf "docker=%s\\n" "$v";'
        ' else printf "docker_error=%s\\n" "$(printf "%s" "$v" | tail -n 1)";'
        ' if command -v docker >/dev/null 2>&1; then echo docker_client=yes; fi; fi',
        'printf "docker_host=%s\\n" "${DOCKER_HOST:-unix:///var/run/docker.sock}"',
        COMPOSE_VERSION,
        f"echo {SECTION}repo",
        f"if [ -d {app}/.git ]; then echo present=yes;"
        f" printf 'head=%s\\n' \"$(git -C {app} rev-parse HEAD 2>/dev/null)\";"
        f" origin=$(git -C {app} config --get remote.origin.url);"
        # shown without credentials (the server's own origin may hold some), as berth shows URLs
        f" shown=$(printf '%s' \"$origin\" | sed {quote(URL_WITHOUT_CREDENTIALS_SED)}); printf 'origin=%s\\n' \"$shown\";"
        # berth deploy fetches from its own URL and leaves a different origin alone (as commands/git.sync)
        f" if [ -n {remote} ] && [ \"$shown\" != {remote} ]; then echo origin_is=other; fi;"
        f" printf 'dirty=%s\\n' \"$(git -C {app} status --porcelain --untracked-files=no 2>/dev/null | wc -l)\";"
        # commits that no remote branch holds: berth deploy will not move away from them
        f" printf 'server_commits=%s\\n' \"$(git -C {app} rev-list --count HEAD --not --remotes 2>/dev/null)\";"
        f" url={remote}; [ -n \"$url\" ] || url=$origin;"
        f" elif [ -e {app} ]; then echo present=not-a-repo; url={remote}; else echo present=no; url={remote}; fi",
        'if [ -n "$url" ]; then if out=$(GIT_TERMINAL_PROMPT=0 GIT_SSH_COMMAND="ssh -o BatchMode=yes -o ConnectTimeout=10"'
        ' timeout 30 git -c protocol.ext.allow=never ls-remote -- "$url" HEAD 2>&1); then echo remote=ok;'
        " else printf \"remote_error=%s\\n\" \"$(printf \"%s\" \"$out\" | grep -v '^$' | head -n 4 | tr '\\n' ' ' | cut -c1-500)\"; fi; fi",
        f"echo {SECTION}envfile",
        f"if [ -f {env_path} ]; then printf 'mode=%s\\n' \"$(stat -c %a {env_path})\";"
        f" printf 'sha256=%s\\n' \"$(sha256sum < {env_path} | cut -d' ' -f1)\";"
        f" printf 'has='; for n in {' '.join(quote(n) for n in env_names)}; do"
        f" grep -Eq \"^[[:space:]]*(export[[:space:]]+)?$n[[:space:]]*=\" {env_path} && printf '%s ' \"$n\"; done; echo;"
        " else echo missing=yes; fi",
        f"echo {SECTION}containers",
        f"if ids=$({ids} 2>/dev/null) && [ -n \"$ids\" ]; then docker inspect --format {quote(INSPECT_FORMAT)} $ids; fi",
        f"echo {SECTION}details",
        # values are cut off on the server: only names cross the wire
        f"if [ -n \"$ids\" ]; then docker inspect --format {quote(CONTAINER_DETAILS_FORMAT)} $ids; fi",
        f"echo {SECTION}disk",
        'root=$(docker info --format "{{.DockerRootDir}}" 2>/dev/null)',
        'df -Pk "$HOME" ${root:+"$root"} 2>/dev/null | tail -n +2',
        f"echo {SECTION}memory",
        "grep -E '^(MemTotal|MemAvailable):' /proc/meminfo 2>/dev/null",
        f"echo {SECTION}current",
        # (each JSON file may lack a final newline: echo one, so the next section marker starts a line)
        f"cat \"$HOME\"/{quote(state_rel + '/current.json')} 2>/dev/null; echo",
        f"echo {SECTION}lock",
        f"if [ -d \"$HOME\"/{quote(state_rel + '/lock')} ]; then"
        f" cat \"$HOME\"/{quote(state_rel + '/lock/owner.json')} 2>/dev/null || echo '{{}}'; echo; fi",
        f"echo {SECTION}end",
    ]) + "\n"


def parse_sections(stdout: str) -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in stdout.splitlines():
        if line.startswith(SECTION):
            current = sections.setdefault(line[len(SECTION):].strip(), [])
        elif current is not None:
            current.append(line)
    return sections


def key_values(lines: list[str]) -> dict[str, str]:
    out = {}
    for line in lines:
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip()] = value
    return out


def logs_tail(container_id: str, lines: int = 20) -> str:
    return f"docker logs --tail {int(lines)} {quote(container_id)} 2>&1"


# Runs inside a container: reach the service named by the URL in environment variable $1 (the
# value is read there, never sent). python if the image has it, else nc. Prints one word and a detail:
# ok / dns / refused / timeout / error / notool / unset.
PROBE_PY = r'''
import os, socket, sys
from urllib.parse import urlsplit
kind, name = sys.argv[1], sys.argv[2]
url = os.environ.get(name)
if not url:
    print("unset"); sys.exit()
u = urlsplit(url)
host, port = u.hostname or "localhost", u.port or (5432 if kind == "postgres" else 6379)
import threading
found = []
def resolve():
    try:
        found.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][4])
    except OSError:
        pass
t = threading.Thread(target=resolve, daemon=True)
t.start()
t.join(3)  # a name that does not resolve in 3 s is as good as unknown
if not found:
    print("dns", host, port); sys.exit()
addr = found[0]
try:
    s = socket.create_connection(addr[:2], timeout=3)
except socket.timeout:
    print("timeout", host, port); sys.exit()
except OSError as e:
    print("refused", host, port); sys.exit()
s.settimeout(3)
try:
    if kind == "postgres":
        s.sendall(b"\x00\x00\x00\x08\x04\xd2\x16\x2f")
        answer = s.recv(1)
        print("ok" if answer in (b"S", b"N") else "error", host, port, "postgres" if answer else "no answer")
    else:
        if u.password:
            user = [u.username.encode()] if u.username and u.username != "default" else []
            parts = [b"AUTH", *user, u.password.encode()]
            s.sendall(b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts))
            auth = s.recv(256)
            if not auth.startswith(b"+OK"):
                print("auth", host, port, auth.decode(errors="replace").strip()[:80].replace(" ", "_")); sys.exit()
        s.sendall(b"*1\r\n$4\r\nPING\r\n")
        answer = s.recv(256).decode(errors="replace").strip()
        word = "ok" if answer == "+PONG" else "auth" if "NOAUTH" in answer or "WRONGPASS" in answer else "error"
        print(word, host, port, answer[:80].replace(" ", "_"))
except OSError as e:
    print("error", host, port, type(e).__name__)
'''

PROBE_SH = r'''
kind=$1; name=$2
# $name is a plain variable name or nothing is read: only then is the indirect read below safe
# (printenv would do without eval, but small images have no printenv)
case $name in ''|[!A-Za-z_]*|*[!A-Za-z0-9_]*) echo unset; exit 0;; esac
eval "url=\${$name:-}"
[ -n "$url" ] || { echo unset; exit 0; }
hp=${url#*://}; hp=${hp##*@}; hp=${hp%%/*}; hp=${hp%%\?*}
host=${hp%:*}; port=${hp##*:}
[ "$host" = "$hp" ] && { [ "$kind" = postgres ] && port=5432 || port=6379; }
if command -v python3 >/dev/null 2>&1; then exec python3 -c "$3" "$kind" "$name"; fi
if command -v python >/dev/null 2>&1; then exec python -c "$3" "$kind" "$name"; fi
command -v nc >/dev/null 2>&1 || { echo notool "$host" "$port"; exit 0; }
case $host in *[!0-9.]*)
  if ! timeout 3 nslookup "$host" >/dev/null 2>&1 && ! timeout 3 getent hosts "$host" >/dev/null 2>&1; then
    echo dns "$host" "$port"; exit 0
  fi;;
esac
if [ "$kind" = redis ]; then
  answer=$(printf 'PING\r\n' | nc -w 3 "$host" "$port" 2>/dev/null | tr -d '\r' | head -n 1)
  case $answer in +PONG) echo ok "$host" "$port" PONG;; *NOAUTH*) echo ok "$host" "$port" reachable_auth_not_checked;;
    "") echo refused "$host" "$port";; *) echo error "$host" "$port" "$answer";; esac
elif nc -z -w 3 "$host" "$port" 2>/dev/null || nc -w 3 "$host" "$port" </dev/null >/dev/null 2>&1; then
  echo ok "$host" "$port" tcp
else echo refused "$host" "$port"; fi
'''


PROBE_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def probe_service(container_id: str, kind: str, variable: str) -> str:
    """Reach the postgres/redis that $variable points at, from inside the container.

    `variable` is a key of the repo's compose file: only a plain variable name is accepted, here
    and again by the probe itself before it reads the variable.
    """
    if not PROBE_VARIABLE.fullmatch(variable):
        raise ValueError(f"not a variable name berth probes: {variable!r}")
    return " ".join(["docker", "exec", quote(container_id), "sh", "-c", quote(PROBE_SH), "probe",
                     quote(kind), quote(variable), quote(PROBE_PY), "2>&1"])


def port_answers(port: int) -> str:
    """Does anything accept TCP on the server's loopback at `port`? Prints open/closed."""
    p = int(port)
    return (f"if command -v bash >/dev/null 2>&1; then timeout 3 bash -c 'exec 3<>/dev/tcp/127.0.0.1/{p}' 2>/dev/null;"
            f" elif command -v nc >/dev/null 2>&1; then nc -z -w 3 127.0.0.1 {p}; else false; fi"
            " && echo open || echo closed")


def in_parallel(commands: list[str]) -> str:
    """Run commands at once; each output line is prefixed with the command's index and a tab."""
    parts = [f"( {c} ) 2>&1 | sed 's/^/{i}\t/' &" for i, c in enumerate(commands)]
    return "\n".join([*parts, "wait"]) + "\n"


def split_parallel(stdout: str, count: int) -> list[str]:
    outs: list[list[str]] = [[] for _ in range(count)]
    for line in stdout.splitlines():
        index, sep, rest = line.partition("\t")
        if sep and index.isdigit() and int(index) < count:
            outs[int(index)].append(rest)
    return ["\n".join(o) for o in outs]
