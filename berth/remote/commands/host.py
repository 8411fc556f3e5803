"""What berth asks a server once, right after connecting (one round trip)."""

from __future__ import annotations

from berth.remote.shell import quote, script

FACTS_SEPARATOR = "---berth-current---"
# prints compose=v2 VERSION or compose=v1 VERSION (nothing without compose); berth doctor asks it too
COMPOSE_VERSION = (
    'if v=$(docker compose version --short 2>/dev/null); then printf "compose=v2 %s\\n" "$v";'
    ' elif command -v docker-compose >/dev/null 2>&1; then printf "compose=v1 %s\\n" "$(docker-compose version --short)"; fi'
)


def facts(state_dir_rel: str) -> str:
    """Home directory, user, docker and compose versions, git, and the current release record.

    `state_dir_rel` is relative to $HOME, so this works before berth knows the home directory.
    Prints `key=value` lines, then the separator, then the current release JSON (if any).
    """
    current = '"$HOME"/' + quote(f"{state_dir_rel}/current.json")
    return script([
        'printf "home=%s\\n" "$HOME"',
        'printf "user=%s\\n" "$(id -un)"',
        'if command -v git >/dev/null 2>&1; then printf "git=%s\\n" "$(git --version)"; fi',
        # the engine and compose answer in parallel: each costs ~100 ms of process start-up
        'tmp=$(mktemp -d)',
        '(docker version --format "{{.Server.Version}}" > "$tmp/docker" 2>&1; echo $? > "$tmp/docker.rc") &',
        COMPOSE_VERSION,
        "wait",
        'if [ "$(cat "$tmp/docker.rc")" = 0 ]; then printf "docker=%s\\n" "$(cat "$tmp/docker")";'
        ' else printf "docker_error=%s\\n" "$(tail -n 1 "$tmp/docker")"; fi',
        'rm -rf "$tmp"',
        f"echo {FACTS_SEPARATOR}",
        f"cat {current} 2>/dev/null || true",
    ])


def parse_facts(stdout: str) -> tuple[dict[str, str], str]:
    head, _, current = stdout.partition(FACTS_SEPARATOR + "\n")
    values = {}
    for line in head.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key] = value
    return values, current.strip()
