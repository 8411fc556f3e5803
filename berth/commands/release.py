"""Release records on the server: `~/.berth/<project>/` holds one JSON file per release,
an append-only history, and `current.json` — the release that is running."""

from __future__ import annotations

from berth.commands.shell import quote, script


def state_dir_rel(project: str) -> str:
    return f".berth/{project}"


def record(state_dir: str, release_id: str, make_current: bool) -> str:
    """stdin (one line of JSON) → releases/ID.json, appended to history.jsonl, and current.json if it succeeded."""
    d = quote(state_dir)
    rid = quote(f"{release_id}.json")
    lines = [
        f"d={d}",
        'umask 077 && mkdir -p "$d/releases"',
        f'cat > "$d/releases/"{rid}.tmp && mv -f "$d/releases/"{rid}.tmp "$d/releases/"{rid}',
        f'cat "$d/releases/"{rid} >> "$d/history.jsonl"',
    ]
    if make_current:
        lines.append(f'cp "$d/releases/"{rid} "$d/current.json.tmp" && mv -f "$d/current.json.tmp" "$d/current.json"')
    return script(lines)


def history(state_dir: str, limit: int = 10) -> str:
    return f"tail -n {int(limit)} {quote(state_dir + '/history.jsonl')} 2>/dev/null || true"
