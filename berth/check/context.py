"""What the rules look at, loaded once and lazily: env files, compose files, git facts."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from berth.configuration.target import Target
from berth.errors import UsageError
from berth.model import git as gitlocal
from berth.model.compose.file import ComposeFile, load_compose_file
from berth.model.envfile import EnvFile, read_env_file


@dataclass
class CheckContext:
    target: Target
    load_errors: list[tuple[Path, UsageError]] = field(default_factory=list)
    include_errors: list[UsageError] = field(default_factory=list)

    @property
    def root(self) -> Path:
        return self.target.root

    @property
    def dotenv_path(self) -> Path:
        return self.root / ".env"

    @property
    def app_env_path(self) -> Path:
        return self.root / self.target.env_file

    @cached_property
    def app_env(self) -> EnvFile | None:
        return self._load(self.app_env_path, read_env_file)

    @cached_property
    def compose_files(self) -> list[ComposeFile]:
        """The project's compose files, then the files their `include:` brings in (see `included`)."""
        return [*self._named_compose_files, *(cf for cf, _ in self.included.values())]

    @cached_property
    def _named_compose_files(self) -> list[ComposeFile]:
        loaded = [self._load(self.root / name, load_compose_file) for name in self.target.compose_files]
        return [c for c in loaded if c is not None]

    @cached_property
    def included(self) -> dict[Path, tuple[ComposeFile, tuple[Path, dict[str, str]]]]:
        """Each file `include:` brings in → (the file, (its project directory, its variables)): an included
        file is a project of its own, as compose reads it. What compose would refuse (a missing file, a
        cycle) is kept in `include_errors` for compose.invalid-project."""
        from berth.model.compose.resolve import included_files
        from berth.model.compose.services import where

        files = self._named_compose_files
        if not any("include" in cf.data for cf in files if isinstance(cf.data, dict)):
            return {}
        try:
            found = included_files(self.root, files, self.app_env.values() if self.app_env else {})
        except UsageError as exc:
            self.include_errors.append(exc)
            return {}
        defined = {(key, str(name)) for cf in files for key in ("services", "volumes", "networks", "secrets", "configs")
                   for name in (cf.data.get(key) or {} if isinstance(cf.data.get(key), dict) else {})}
        for cf, _, _ in found:
            for key in ("services", "volumes", "networks", "secrets", "configs"):
                section = cf.data.get(key)
                for name in section if isinstance(section, dict) else ():
                    if (key, str(name)) in defined:
                        self.include_errors.append(UsageError(
                            f"{key}.{name} conflicts with imported resource: {cf.path.name} defines it too",
                            where=f"{cf.path}:{where(cf, key, name)[0] or 1}",
                            fix="rename one of them; compose does not merge included resources"))
                    defined.add((key, str(name)))
        return {cf.path: (cf, (project_dir, env)) for cf, project_dir, env in found}

    def project_dir_of(self, cf: ComposeFile) -> Path:
        """Where compose resolves the relative paths of a compose file: its included project's directory,
        else the project directory (the first compose file's)."""
        if cf.path in self.included:
            return self.included[cf.path][1][0]
        return self._named_compose_files[0].path.parent if self._named_compose_files else self.root

    def variables_of(self, cf: ComposeFile) -> dict[str, str]:
        """The variables compose interpolates a compose file with (an included one adds its own .env)."""
        if cf.path in self.included:
            return self.included[cf.path][1][1]
        return self.app_env.values() if self.app_env else {}

    def _load(self, path: Path, reader):
        if not path.exists():
            return None
        try:
            return reader(path)
        except UsageError as exc:
            self.load_errors.append((path, exc))
            return None

    @cached_property
    def is_git_repo(self) -> bool:
        return gitlocal.is_repo(self.root)

    @cached_property
    def tracked(self) -> set[str]:
        return set(gitlocal.tracked_files(self.root)) if self.is_git_repo else set()

    def repo_path(self, path: Path | str) -> str | None:
        """`path` (absolute, or relative to the project directory) as a path inside the project, or None when
        it leads outside it (`..`, an absolute path elsewhere, `~`, a symlink out): the server gets only the
        git checkout (and the shipped env file)."""
        try:
            path = Path(path).expanduser()
        except RuntimeError:  # ~user of an unknown user: somewhere in a home directory, not here
            return None
        lexical = Path(os.path.normpath(self.root / path))
        try:
            rel = lexical.relative_to(self.root)
        except ValueError:
            return None
        real_root = Path(os.path.realpath(self.root))
        real = Path(os.path.realpath(lexical))
        if real != real_root and not real.is_relative_to(real_root):
            return None
        return rel.as_posix()

    def tracks(self, rel: str) -> bool:
        """Does git track this file, or some file under this directory ("." is the whole project)?"""
        if rel in self.tracked:
            return True
        prefix = "" if rel == "." else rel.rstrip("/") + "/"
        return any(t.startswith(prefix) for t in self.tracked)

    @cached_property
    def head(self) -> str | None:
        return gitlocal.head_commit(self.root) if self.is_git_repo else None

    @cached_property
    def branch(self) -> str | None:
        return self.target.get("branch") or (gitlocal.current_branch(self.root) if self.is_git_repo else None)

    @cached_property
    def _remote(self) -> tuple[str | None, UsageError | None]:
        if not self.is_git_repo:
            return None, None
        try:
            return gitlocal.target_remote_url(self.target), None
        except UsageError as exc:
            return None, exc

    @property
    def remote_url(self) -> str | None:
        """The URL the server fetches from; None when there is none, or when it is refused (remote_error)."""
        return self._remote[0]

    @property
    def remote_error(self) -> UsageError | None:
        """Why the remote setting is refused (a value git would read as an option), for settings.remote."""
        return self._remote[1]
