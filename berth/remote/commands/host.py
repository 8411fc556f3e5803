"""What berth asks a server once, right after connecting (one round trip)."""

from __future__ import annotations

from berth.remote.shell import quote, script

FACTS_SEPARATOR = "---berth-current---"
# prints compose=v2 VERSION or compose=v1 VERSION (nothing without compose); berth doctor asks it too
COMPOSE_VERSION = (
    'if v=$(docker compose version --short 2>/dev/null); then printf "compose=v2 %s\\n" "$v";'
    ' elif command -v docker-compose >/dev/null 2>&1; then printf "compose=v1 %s\\n" "$(docker-compose version --short)"; fi'
)


def facts(state_dir_rel: str, legacy_state_dir_rel: str | None = None) -> str:
    """Home directory, user, docker and compose versions, git, and the current release record.

    `state_dir_rel` is relative to $HOME, so this works before berth knows the home directory.
    Prints `key=value` lines, then the separator, then the current release JSON (if any). With
    `legacy_state_dir_rel` (the state of the name berth used before), prints `legacy=1` and reads that
    record instead when only the legacy name has been deployed here (see `adopts_legacy`).
    """
    legacy = []
    if legacy_state_dir_rel and legacy_state_dir_rel != state_dir_rel:
        legacy = [f"if {adopts_legacy(state_dir_rel, legacy_state_dir_rel)}; then echo legacy=1; "
                  f"state={quote(legacy_state_dir_rel)}; fi"]
    current = '"$HOME"/"$state"/current.json'
    return script([
        f"state={quote(state_dir_rel)}",
        *legacy,
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


def adopts_legacy(state_dir_rel: str, legacy_state_dir_rel: str) -> str:
    """Shell test: true when the server has releases under the legacy state dir and none under the new one.

    Then the app runs there as the legacy compose project, and deploying it under the new name would start a
    second copy next to it (ports taken, two databases): berth keeps the name the server knows.
    """
    return (f'[ ! -e "$HOME"/{quote(state_dir_rel)} ] && [ -e "$HOME"/{quote(legacy_state_dir_rel + "/current.json")} ]')
