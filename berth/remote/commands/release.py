"""Release records on the server: `~/.berth/<project>/` holds one JSON file per release,
an append-only history, and `current.json` — the release that is running."""

from __future__ import annotations

import posixpath

from berth.remote.shell import case_patterns, quote, script


def state_dir_rel(project: str) -> str:
    return f".berth/{project}"


EXISTS = 73  # exit code of `record`: a record with that release id is on the server already


def record(state_dir: str, release_id: str, make_current: bool, env_file: str | None = None, app_dir: str = "",
           files: tuple[str, ...] | list[str] = ()) -> str:
    """stdin (one line of JSON) → releases/ID.json, appended to history.jsonl, and current.json if it succeeded.

    An existing releases/ID.json is never overwritten (exit EXISTS, nothing written): `ln` publishes
    the complete file under its name or fails if the name is taken, in one step.
    `env_file` (the deployed env file on the server) is copied to releases/ID.env, mode 0600, so a
    rollback can restore the settings that release ran with; each of `files` (paths in `app_dir`: the
    secret and config files berth shipped) is copied to releases/ID.files/PATH the same way.
    """
    d = quote(state_dir)
    rid = quote(f"{release_id}.json")
    lines = [
        f"d={d}",
        'umask 077 && mkdir -p "$d/releases"',
        f'cat > "$d/releases/"{rid}.tmp',
        f'if ! ln "$d/releases/"{rid}.tmp "$d/releases/"{rid} 2>/dev/null; then rm -f "$d/releases/"{rid}.tmp;'
        f' [ -e "$d/releases/"{rid} ] && exit {EXISTS}; exit 1; fi',
        f'rm -f "$d/releases/"{rid}.tmp',
        f'cat "$d/releases/"{rid} >> "$d/history.jsonl"',
    ]
    if env_file:
        env_copy = quote(f"{release_id}.env")
        lines.append(f'cp {quote(env_file)} "$d/releases/"{env_copy} && chmod 600 "$d/releases/"{env_copy}')
    for rel in files:
        copy = f'"$d/releases/"{quote(f"{release_id}.files/{rel}")}'
        lines.append(f'mkdir -p "$(dirname {copy})" && cp {quote(f"{app_dir}/{rel}")} {copy} && chmod 600 {copy}')
    if make_current:
        lines.append(f'cp "$d/releases/"{rid} "$d/current.json.tmp" && mv -f "$d/current.json.tmp" "$d/current.json"')
    return script(lines)


def audit(state_dir: str) -> str:
    """stdin (one JSON line) appended to the append-only audit log."""
    return f"umask 077 && mkdir -p {quote(state_dir)} && cat >> {quote(state_dir + '/audit.jsonl')}"


def read_audit(state_dir: str, limit: int = 50) -> str:
    return f"tail -n {int(limit)} {quote(state_dir + '/audit.jsonl')} 2>/dev/null || true"


def restore_env(state_dir: str, release_id: str, env_path: str, app_dir: str = "",
                files: tuple[str, ...] | list[str] = ()) -> str:
    """Put the env file of a past release back in place, and its secret and config `files` (paths in `app_dir`);
    exit 3, changing nothing, when one of those copies is gone."""
    copy = quote(f"{state_dir}/releases/{release_id}.env")
    copies = [(quote(f"{state_dir}/releases/{release_id}.files/{rel}"), f"{app_dir}/{rel}") for rel in files]
    lines = [f"[ -f {copy} ] || exit 3", *(f"[ -f {c} ] || exit 3" for c, _ in copies)]
    for source, path in [(copy, env_path), *copies]:
        tmp = quote(path + ".berth-tmp")
        lines.append(f"umask 077 && mkdir -p {quote(posixpath.dirname(path) or '.')} && cp {source} {tmp}"
                     f" && chmod 600 {tmp} && mv -f {tmp} {quote(path)}")
    return script(lines)


def prune_env_copies(state_dir: str, keep_ids: list[str]) -> str:
    """Delete the env copies (ID.env), the secret and config file copies (ID.files/) and a swarm release's stack
    and env files (ID.stack/) of releases that are no longer kept; the records themselves stay."""
    keep = case_patterns([f"{i}.{part}" for i in keep_ids for part in ("env", "files", "stack")])
    return script([
        f"cd {quote(state_dir + '/releases')} 2>/dev/null || exit 0",
        'for f in *.env *.files *.stack; do [ -e "$f" ] || continue',
        f'  case "$f" in {keep}) ;; *) rm -rf -- "$f" ;; esac',
        "done",
    ])


def history(state_dir: str, limit: int = 10) -> str:
    return f"tail -n {int(limit)} {quote(state_dir + '/history.jsonl')} 2>/dev/null || true"
