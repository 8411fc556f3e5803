"""The compose project name, derived as `docker compose` derives it.

Compose's order: `--project-name`, then COMPOSE_PROJECT_NAME (berth hands compose the shipped env file with
--env-file, so that file's value counts), then the top-level `name:` of the compose files (the last file that
sets it wins; interpolated), then the project directory's name. berth passes --project-name on the server, so
it must derive the same name itself, or `berth` and the user's own `docker compose` would run two copies.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

_TOP_LEVEL_NAME = re.compile(r"^name\s*:", re.MULTILINE)


@dataclass(frozen=True)
class ProjectName:
    name: str  # normalized, as compose uses it
    origin: str  # where it came from: "berth.toml:3 project", ".env.docker:4 COMPOSE_PROJECT_NAME", ...


def normalize(name: str) -> str:
    """As compose normalizes a name: lowercase, only [a-z0-9_-], starting with a letter or digit."""
    return re.sub(r"[^a-z0-9_-]", "", name.lower()).lstrip("_-")


def declared_name(paths: Sequence[Path], env: Mapping[str, str]) -> tuple[str, str] | None:
    """The interpolated top-level `name:` of the last file that sets it, with its file:line; None without one.

    A file that cannot be read or parsed, or a name that cannot be interpolated, counts as no name here:
    `berth check` reports those problems with their own rules.
    """
    from berth.errors import BerthError
    from berth.model.compose.file import parse_compose_text, read_compose_text
    from berth.model.compose.interpolation import InterpolationError, MissingRequiredVariable, interpolate

    found = None
    for path in paths:
        try:
            text = read_compose_text(path) if path.is_file() else ""
            if not _TOP_LEVEL_NAME.search(text):  # most files have none: skip the YAML parse
                continue
            cf = parse_compose_text(text, path)
        except (BerthError, OSError):
            continue
        value = cf.data.get("name")
        if not isinstance(value, str) or not value.strip():
            continue
        try:
            value = interpolate(value, env)
        except (InterpolationError, MissingRequiredVariable):
            continue
        found = (value, f"{path.name}:{cf.line_of('name') or 1} name:")
    return found


def derive(explicit: tuple[str, str] | None, env_file: tuple[str, str] | None, paths: Sequence[Path],
           env: Mapping[str, str], directory: str) -> ProjectName:
    """The first of: berth's own setting, COMPOSE_PROJECT_NAME, `name:`, the directory (each as (value, origin))."""
    for candidate in (explicit, env_file, declared_name(paths, env)):
        if candidate and normalize(candidate[0]):
            return ProjectName(normalize(candidate[0]), candidate[1])
    return ProjectName(normalize(directory) or "app", "the last part of app_dir")
