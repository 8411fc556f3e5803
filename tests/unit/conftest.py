"""Shared fixtures for the config / check / commands / cli tests: isolated git, real temp repos."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import GIT_ISOLATION, isolated_env


# Git must not read the developer's ~/.gitconfig (a global excludesFile would change what
# `git check-ignore` says, a commit template or hooks could break commits) and needs an identity.
@pytest.fixture
def git_env(monkeypatch):
    """Apply GIT_ISOLATION to this process too (berth.model.git passes os.environ to git)."""
    for key in [k for k in os.environ if k.startswith("GIT_")]:
        monkeypatch.delenv(key, raising=False)
    for key, value in GIT_ISOLATION.items():
        monkeypatch.setenv(key, value)


def git(cwd: Path, *args: str, check: bool = True) -> str:
    proc = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True, env=isolated_env())
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed in {cwd}: {proc.stderr}")
    return proc.stdout.strip()


def init_repo(path: Path, bare: bool = False) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main", *(["--bare"] if bare else []))
    return path


def commit_all(repo: Path, message: str = "commit") -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", message)
    return git(repo, "rev-parse", "HEAD")


COMPOSE_OK = """\
services:
  web:
    image: "nginx:${TAG}"
    ports:
      - "8080:80"
    restart: unless-stopped
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1/"]
"""

DOTENV_OK = "ENVIRONMENT=staging\nSERVER_IP=203.0.113.5\nSERVER_USER=deploy\n"
APP_ENV_OK = "TAG=1.25\n"
GITIGNORE_OK = ".env\n.env.docker\n"


@dataclass
class Project:
    """An app repository as berth expects it: committed, pushed to a bare remote, env files ignored.

    Tests reach it through the fixtures below and the attributes of this class.
    """

    root: Path
    remote: Path

    COMPOSE = COMPOSE_OK
    DOTENV = DOTENV_OK
    APP_ENV = APP_ENV_OK

    def write(self, rel: str, text: str | bytes) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)
        return path

    def remove(self, rel: str) -> None:
        (self.root / rel).unlink()

    def git(self, *args: str, check: bool = True) -> str:
        return git(self.root, *args, check=check)

    def commit(self, message: str = "change") -> str:
        return commit_all(self.root, message)

    def push(self) -> None:
        self.git("push", "-q", "origin", "HEAD:refs/heads/main")

    def head(self) -> str:
        return self.git("rev-parse", "HEAD")

    def reinit_git(self) -> None:
        """Throw the history away: a repository with no commit yet."""
        import shutil

        shutil.rmtree(self.root / ".git")
        init_repo(self.root)


def build_project(base: Path, name: str = "app") -> Project:
    root = init_repo(base / name)
    remote = init_repo(base / f"{name}-remote.git", bare=True)
    project = Project(root, remote)
    project.write("docker-compose.yml", COMPOSE_OK)
    project.write(".gitignore", GITIGNORE_OK)
    project.write(".env.example", "ENVIRONMENT=staging\nSERVER_IP=\nSERVER_USER=\n")
    project.write(".env.docker.example", "TAG=\n")
    project.commit("initial")
    project.write(".env", DOTENV_OK)
    project.write(".env.docker", APP_ENV_OK)
    project.git("remote", "add", "origin", str(remote))
    project.push()
    project.git("branch", "-q", "--set-upstream-to=origin/main", "main", check=False)
    return project


@pytest.fixture
def project(tmp_path, git_env) -> Project:
    """A project on which `berth check` finds nothing at all."""
    return build_project(tmp_path)


@pytest.fixture
def make_project(tmp_path, git_env):
    """Factory: make_project(name) builds another independent project under tmp_path."""
    return lambda name: build_project(tmp_path, name)


@pytest.fixture
def run_git():
    """git(cwd, *args, check=True) -> stdout, with the isolated git environment."""
    return git


@pytest.fixture
def new_repo():
    """new_repo(path, bare=False) -> path: `git init -b main` with the isolated environment."""
    return init_repo


@pytest.fixture
def sub_env():
    """sub_env(**extra) -> an environment for subprocesses with git isolated and colour off."""
    return isolated_env
