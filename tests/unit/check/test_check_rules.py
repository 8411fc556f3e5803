"""Every check rule, failing and passing, on real temporary git repositories.

CASES below is the table: each registered rule must have at least one case where it fires and one
where it stays quiet, or `test_every_rule_has_a_firing_and_a_quiet_case` fails.
"""

from __future__ import annotations

import functools
import os
import shutil
import sys
from pathlib import Path

import berth.check.rules
from berth.check import run_checks
from berth.check.findings import RULES, Finding, Severity
from berth.configuration.target import load_target
from tests.helpers import rule_cases
from tests.helpers.rule_cases import Case, Project, noop, of_rule, rule_test, run
from tests.unit.conftest import COMPOSE_OK


def pos(text: str, needle: str, nth: int = 0) -> tuple[int, int]:
    """1-based line and column of the nth occurrence of needle in text."""
    index = -1
    for _ in range(nth + 1):
        index = text.index(needle, index + 1)
    line = text.count("\n", 0, index) + 1
    col = index - (text.rfind("\n", 0, index) + 1) + 1
    return line, col


def dotenv(project, extra: str = "", base: str | None = None) -> None:
    project.write(".env", (project.DOTENV if base is None else base) + extra)


def compose(project: Project, text: str) -> None:
    project.write("docker-compose.yml", text)


def app_env(project: Project, text: str) -> None:
    project.write(".env.docker", text)


def key_file(project: Project, mode: int) -> Path:
    # outside the repository, so it does not make the work tree dirty
    path = project.root.parent / "keys" / "deploy.pem"
    path.parent.mkdir(exist_ok=True)
    path.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    path.chmod(mode)
    dotenv(project, f"PEM_KEY_PATH={path}\n")
    return path


# --------------------------------------------------------------------------- the table
# Case, the runner and the test over the table are shared with the test_rules_*.py tables (rule_cases.py).


# count findings, the first at (rel, line, col) with a fix, its message containing `contains`
expect_at = functools.partial(rule_cases.expect_at, fix_required=True)


def expect_compose_pos(needle: str, contains: str = "", nth: int = 0):
    def check(p: Project, found: list[Finding]) -> None:
        text = (p.root / "docker-compose.yml").read_text()
        assert len(found) == 1, found
        assert found[0].file == p.root / "docker-compose.yml"
        assert (found[0].line, found[0].col) == pos(text, needle, nth)
        assert contains in found[0].message
    return check


# -- setups used by several cases

BAD_TEMPLATE = 'services:\n  web:\n    image: "nginx:${TAG"\n'
REQUIRED = 'services:\n  db:\n    image: postgres\n    environment:\n      POSTGRES_PASSWORD: ${DB_PASSWORD:?set DB_PASSWORD}\n'
DEFAULTED = ('services:\n  web:\n    image: nginx\n    ports:\n      - "${PORT:-8080}:80"\n'
             '    environment:\n      - PORT=${PORT:-8080}\n')
ENV_FILE_SERVICE = 'services:\n  web:\n    image: nginx\n    env_file: {entry}\n'
BAD_INDENT = "services:\n  web:\n    image: nginx\n   ports:\n      - 80:80\n"


def _gitignore(text: str):
    def setup(p: Project) -> None:
        p.write(".gitignore", text)
        p.git("commit", "-q", "-m", "gitignore", "--", ".gitignore")  # only this file
        p.push()
    return setup


def _remove_git(p: Project) -> None:
    shutil.rmtree(p.root / ".git")


def _fresh_git(p: Project) -> None:
    p.reinit_git()


def _track(*rels: str):
    def setup(p: Project) -> None:
        for rel in rels:
            if not (p.root / rel).exists():
                p.write(rel, "SECRET=1\n")
        p.git("add", "-f", *rels)
        p.commit("track")
        p.push()
    return setup


def _unpushed_commit(p: Project) -> None:
    p.write("README", "new\n")
    p.commit("not pushed")


def _feature_branch(p: Project) -> None:
    p.git("checkout", "-q", "-b", "feature")
    p.write("README", "feature\n")
    p.commit("feature work")


def _remote_ahead(p: Project) -> None:
    p.write("README", "newer\n")
    p.commit("newer")
    p.push()
    p.git("checkout", "-q", "--detach", "HEAD~1")
    dotenv(p, "GIT_BRANCH=main\n")


TOKEN = "ghp_R3alT0kenR3alT0kenR3alT0ken0000"


def _option_remote(p: Project) -> None:
    """GIT_REMOTE that git would read as an option; PWNED in the project's parent if git ran it."""
    dotenv(p, f"GIT_REMOTE=--upload-pack=touch {p.root.parent / 'PWNED'};:\n")


def _key_in_repo(rel: str, *, track: bool = False, ignore: bool = False):
    """PEM_KEY_PATH=rel, a file in the repository; committed (track), or listed in .gitignore (ignore)."""
    def setup(p: Project) -> None:
        key = p.write(rel, "not a real key, only its place matters here\n")
        key.chmod(0o600)
        if ignore:
            p.write(".gitignore", p.root.joinpath(".gitignore").read_text() + rel + "\n")
            p.git("add", ".gitignore")
        if track:
            p.git("add", "-f", rel)
        p.git("commit", "-q", "--allow-empty", "-m", "key")  # only what was added (not `git add -A`)
        p.push()
        dotenv(p, f"PEM_KEY_PATH={rel}\n")
    return setup


def _toml_without_dotenv(p: Project) -> None:
    p.remove(".env")
    p.write("berth.toml", '[environments.staging]\nhosts = ["203.0.113.5"]\n')



def _examples_as(app_suffix: str, dotenv_suffix: str):
    """A setup: the committed examples renamed to another suffix people use for them."""
    def setup(p) -> None:
        (p.root / ".env.docker.example").rename(p.root / f".env.docker{app_suffix}")
        (p.root / ".env.example").rename(p.root / f".env{dotenv_suffix}")
    return setup


CASES: list[Case] = [
    # compose.no-services
    Case("compose.no-services", True, "empty services", lambda p: compose(p, "services: {}\n"),
         expect_at("docker-compose.yml", 1, contains="defines no services")),
    Case("compose.no-services", True, "no services key", lambda p: compose(p, "volumes:\n  data: {}\n"),
         expect_at("docker-compose.yml", 1)),
    Case("compose.no-services", False, "one service", noop),
    # compose.invalid-template
    Case("compose.invalid-template", True, "unclosed brace", lambda p: compose(p, BAD_TEMPLATE),
         expect_compose_pos("${TAG", contains="invalid interpolation")),
    Case("compose.invalid-template", True, "empty name",
         lambda p: compose(p, "services:\n  web:\n    image: nginx\n    command: echo a ${}\n"),
         expect_compose_pos("${}")),
    Case("compose.invalid-template", False, "escaped and literal dollars",
         lambda p: compose(p, 'services:\n  web:\n    image: nginx\n    command: echo $${TAG} $5 $ "$-"\n')),
    # compose.unset-variable
    Case("compose.unset-variable", True, "not in env file", lambda p: app_env(p, "OTHER=1\n"),
         expect_compose_pos("${TAG}", contains="${TAG} is not set in .env.docker")),
    Case("compose.unset-variable", True, "env file missing", lambda p: p.remove(".env.docker"),
         expect_compose_pos("${TAG}")),
    Case("compose.unset-variable", False, "set to empty counts as set", lambda p: app_env(p, "TAG=\n")),
    Case("compose.unset-variable", False, "bare KEY counts as set", lambda p: app_env(p, "TAG\n")),
    Case("compose.unset-variable", False, "has a default",
         lambda p: (app_env(p, ""), compose(p, 'services:\n  web:\n    image: "nginx:${TAG:-1}-${TAG-2}"\n'))),
    Case("compose.unset-variable", False, "escaped $$",
         lambda p: (app_env(p, ""), compose(p, 'services:\n  web:\n    image: "nginx:$${TAG}"\n'))),
    # compose.required-variable
    Case("compose.required-variable", True, ":? unset", lambda p: compose(p, REQUIRED),
         expect_compose_pos("${DB_PASSWORD", contains="required: set DB_PASSWORD")),
    Case("compose.required-variable", True, ":? empty",
         lambda p: (compose(p, REQUIRED), app_env(p, "DB_PASSWORD=\n")),
         expect_compose_pos("${DB_PASSWORD")),
    Case("compose.required-variable", False, ":? set", lambda p: (compose(p, REQUIRED), app_env(p, "DB_PASSWORD=x\n"))),
    Case("compose.required-variable", False, "? allows empty",
         lambda p: (compose(p, REQUIRED.replace(":?", "?")), app_env(p, "DB_PASSWORD=\n"))),
    # compose.default-used
    Case("compose.default-used", True, "reported once per variable", lambda p: compose(p, DEFAULTED),
         lambda p, found: (expect_compose_pos("${PORT", contains="'8080'")(p, found),
                           _assert(found[0].severity == Severity.INFO))),
    Case("compose.default-used", False, "variable set", lambda p: (compose(p, DEFAULTED), app_env(p, "PORT=80\n"))),
    # compose.env-file-not-shipped
    Case("compose.env-file-not-shipped", True, "untracked file",
         lambda p: compose(p, ENV_FILE_SERVICE.format(entry="./secrets.env")),
         expect_at("docker-compose.yml", 4, 5, contains="env_file ./secrets.env is not tracked by git")),
    Case("compose.env-file-not-shipped", True, "list with untracked",
         lambda p: compose(p, ENV_FILE_SERVICE.format(entry="\n      - .env.docker\n      - other.env")),
         expect_at("docker-compose.yml", 6, 9, contains="other.env")),
    Case("compose.env-file-not-shipped", False, "the shipped env file",
         lambda p: compose(p, ENV_FILE_SERVICE.format(entry="./.env.docker"))),
    Case("compose.env-file-not-shipped", False, "committed file",
         lambda p: (p.write("common.env", "A=1\n"), compose(p, ENV_FILE_SERVICE.format(entry="[common.env]")),
                    p.commit())),
    Case("compose.env-file-not-shipped", False, "optional file",
         lambda p: compose(p, ENV_FILE_SERVICE.format(entry="\n      - path: ./opt.env\n        required: false"))),
    # files.missing
    Case("files.missing", True, "app env file", lambda p: p.remove(".env.docker"),
         lambda p, found: (expect_at(".env.docker", contains=".env.docker does not exist")(p, found),
                           _assert(found[0].fix == "cp .env.docker.example .env.docker and fill in the values"))),
    Case("files.missing", True, "no compose file under any name compose looks for",
         lambda p: p.remove("docker-compose.yml"),
         expect_at("docker-compose.yml", contains="no compose file: none of compose.yaml, compose.yml, "
                                                  "docker-compose.yml, docker-compose.yaml exists")),
    Case("files.missing", True, "a named compose file",
         lambda p: p.write(".env", p.DOTENV + "COMPOSE_FILES=docker-compose.prod.yml\n"),
         expect_at("docker-compose.prod.yml", contains="compose file docker-compose.prod.yml does not exist")),
    Case("files.missing", False, "compose.yaml, compose's preferred name",
         lambda p: (p.root / "docker-compose.yml").rename(p.root / "compose.yaml")),
    Case("files.missing", True, "no .env and no berth.toml", lambda p: p.remove(".env"),
         expect_at(".env"), environment="staging"),
    Case("files.missing", False, "berth.toml instead of .env", _toml_without_dotenv),
    # files.example-missing
    Case("files.example-missing", True, "app env example", lambda p: p.remove(".env.docker.example"),
         expect_at(".env.docker.example", contains=".env.docker has no .env.docker.example",
                   severity=Severity.WARNING)),
    Case("files.example-missing", True, "dotenv example", lambda p: p.remove(".env.example"),
         expect_at(".env.example")),
    Case("files.example-missing", False, "both examples", noop),
    Case("files.example-missing", False, "examples named .sample and .dist", _examples_as(".sample", ".dist")),
    Case("files.example-missing", False, "examples named .template", _examples_as(".template", ".template")),
    Case("files.example-missing", False, "no env file, so no example needed",
         lambda p: (_toml_without_dotenv(p), p.remove(".env.example"))),
    # files.unreadable
    Case("files.unreadable", True, "bad YAML indentation", lambda p: compose(p, BAD_INDENT),
         expect_at("docker-compose.yml", 4, 4, contains="not valid YAML")),
    Case("files.unreadable", True, "env file not UTF-8", lambda p: app_env(p, b"TAG=1\nNAME=caf\xe9\n"),
         expect_at(".env.docker", 2, contains="not UTF-8")),
    Case("files.unreadable", True, "compose is a list", lambda p: compose(p, "- a\n- b\n"),
         expect_at("docker-compose.yml", contains="must be a mapping")),
    Case("files.unreadable", False, "well-formed files", noop),
    # env.syntax
    Case("env.syntax", True, "app env bad line", lambda p: app_env(p, "TAG=1\nthis is not a line\nB=2\n"),
         expect_at(".env.docker", 2, contains="cannot parse")),
    Case("env.syntax", True, "unclosed quote in .env", lambda p: dotenv(p, 'HEALTH_URL="http://x\n'),
         expect_at(".env", 4, contains="quotes")),
    Case("env.syntax", False, "export, bare key, comments, quotes",
         lambda p: app_env(p, "# c\nexport TAG=1\nBARE\nQ='a b' # x\nM=\"multi\nline\"\n")),
    # git.not-a-repo
    Case("git.not-a-repo", True, "no .git", _remove_git, expect_at(None, contains="not inside a git repository")),
    Case("git.not-a-repo", False, "a repository", noop),
    # git.no-commit
    Case("git.no-commit", True, "fresh git init", _fresh_git, expect_at(None, contains="no commit")),
    Case("git.no-commit", False, "has a commit", noop),
    # git.env-tracked
    Case("git.env-tracked", True, "app env committed", _track(".env.docker"),
         expect_at(".env.docker", contains=".env.docker is committed")),
    Case("git.env-tracked", True, "env in a subdirectory", _track("config/.env.production"),
         expect_at("config/.env.production")),
    Case("git.env-tracked", False, "examples and .envrc", _track(".env.sample", ".env.template", ".envrc")),
    # git.env-not-ignored
    Case("git.env-not-ignored", True, "app env not ignored",
         _gitignore(".env\n"),
         expect_at(".gitignore", contains=".env.docker is not ignored")),
    Case("git.env-not-ignored", True, "nothing ignored",
         _gitignore("node_modules/\n"),
         lambda p, found: _assert(sorted(f.message for f in found)
                                  == [".env is not ignored by git", ".env.docker is not ignored by git"])),
    Case("git.env-not-ignored", False, "pattern ignores both",
         _gitignore(".env*\n!.env*.example\n")),
    # git.dirty
    Case("git.dirty", True, "modified tracked file",
         lambda p: compose(p, (p.root / "docker-compose.yml").read_text() + "# edited\n"),
         lambda p, found: (expect_at(None, contains="1 uncommitted change(s): docker-compose.yml")(p, found))),
    Case("git.dirty", True, "untracked file", lambda p: p.write("notes.txt", "x\n"),
         expect_at(None, contains="notes.txt")),
    Case("git.dirty", True, "more than five", lambda p: [p.write(f"f{i}.txt", "x") for i in range(7)],
         expect_at(None, contains="7 uncommitted change(s)")),
    Case("git.dirty", False, "ignored files changed",
         lambda p: (dotenv(p, "# changed\n"), app_env(p, p.APP_ENV + "X=1\n"))),
    # git.no-branch
    Case("git.no-branch", True, "detached HEAD", lambda p: p.git("checkout", "-q", "--detach"),
         expect_at(None, contains="not on a branch")),
    Case("git.no-branch", False, "detached HEAD with GIT_BRANCH",
         lambda p: (p.git("checkout", "-q", "--detach"), dotenv(p, "GIT_BRANCH=main\n"))),
    # git.no-remote
    Case("git.no-remote", True, "no origin", lambda p: p.git("remote", "remove", "origin"),
         expect_at(None, contains="'origin' does not exist")),
    Case("git.no-remote", True, "GIT_REMOTE names a missing remote", lambda p: dotenv(p, "GIT_REMOTE=upstream\n"),
         expect_at(None, contains="'upstream' does not exist")),
    Case("git.no-remote", False, "GIT_REMOTE is a URL",
         lambda p: (p.git("remote", "remove", "origin"), dotenv(p, f"GIT_REMOTE={p.remote}\n"))),
    # git.unpushed
    Case("git.unpushed", True, "commit not pushed", _unpushed_commit,
         lambda p, found: (expect_at(None)(p, found),
                           _assert(f"HEAD {p.head()[:7]} is not pushed" in found[0].message),
                           _assert("is at " in found[0].message))),
    Case("git.unpushed", True, "branch not on remote", _feature_branch,
         expect_at(None, contains="branch feature of")),
    Case("git.unpushed", True, "remote unreadable",
         lambda p: dotenv(p, f"GIT_REMOTE={p.root.parent / 'missing.git'}\n"),
         expect_at(None, contains="cannot read the git remote")),
    Case("git.unpushed", False, "pushed", noop),
    Case("git.unpushed", False, "remote is ahead", _remote_ahead),
    Case("git.unpushed", False, "option-like GIT_REMOTE: git is never asked", lambda p: _option_remote(p)),
    Case("git.no-remote", False, "option-like GIT_REMOTE: settings.remote reports it", lambda p: _option_remote(p)),
    # git.remote-credentials
    Case("git.remote-credentials", True, "token as the password of origin",
         lambda p: p.git("remote", "set-url", "origin", f"https://deploy:{TOKEN}@127.0.0.1:9/org/app.git"),
         expect_at(None, contains="https://127.0.0.1:9/org/app.git holds a password or token",
                   severity=Severity.WARNING, fix="deploy key", hidden=[TOKEN])),
    Case("git.remote-credentials", True, "token as the user, GIT_REMOTE a URL",
         lambda p: dotenv(p, f"GIT_REMOTE=https://{TOKEN}@127.0.0.1:9/org/app.git\n"),
         expect_at(".env", 4, contains="https://127.0.0.1:9/org/app.git", fix="credential helper",
                   hidden=[TOKEN])),
    Case("git.remote-credentials", True, "ssh URL with a password", lambda p: p.write(
         "berth.toml", '[environments.staging]\nremote = "ssh://git:hunter2hunter2@127.0.0.1:9/org/app.git"\n'),
         expect_at("berth.toml", 2, contains="ssh://git@127.0.0.1:9/org/app.git", hidden=["hunter2hunter2"])),
    Case("git.remote-credentials", False, "scp-like ssh remote",
         lambda p: p.git("remote", "set-url", "origin", "git@127.0.0.1:org/app.git")),
    Case("git.remote-credentials", False, "https with a user name only",
         lambda p: p.git("remote", "set-url", "origin", "https://alice@127.0.0.1:9/org/app.git")),
    Case("git.remote-credentials", False, "a local path", noop),
    # settings.environment
    Case("settings.environment", True, "typo in .env",
         lambda p: dotenv(p, base=p.DOTENV.replace("staging", "prod")),
         expect_at(".env", 1, contains="'prod' is not one of")),
    Case("settings.environment", False, "known environment", noop),
    Case("settings.environment", False, "defined in berth.toml",
         lambda p: (dotenv(p, base=p.DOTENV.replace("staging", "qa")),
                    p.write("berth.toml", "[environments.qa]\n"))),
    # settings.no-hosts
    Case("settings.no-hosts", True, "no SERVER_IP",
         lambda p: dotenv(p, base="ENVIRONMENT=staging\nSERVER_USER=deploy\n"),
         expect_at(".env", contains="staging")),
    Case("settings.no-hosts", False, "--host given", lambda p: dotenv(p, base="ENVIRONMENT=staging\n"),
         hosts=("203.0.113.7",)),
    # settings.port
    Case("settings.port", True, "not a number", lambda p: dotenv(p, "SERVER_PORT=ssh\n"),
         expect_at(".env", 4, contains="'ssh'")),
    Case("settings.port", True, "zero", lambda p: dotenv(p, "SERVER_PORT=0\n"), expect_at(".env", 4)),
    Case("settings.port", True, "too big", lambda p: dotenv(p, "SERVER_PORT=65536\n"), expect_at(".env", 4)),
    Case("settings.port", True, "from berth.toml",
         lambda p: p.write("berth.toml", "[environments.staging]\nport = 70000\n"),
         expect_at("berth.toml", 2, contains="70000")),
    Case("settings.port", False, "valid port", lambda p: dotenv(p, "SERVER_PORT=65535\n")),
    # settings.host
    Case("settings.host", True, "option-like host",
         lambda p: dotenv(p, base=p.DOTENV.replace("SERVER_IP=203.0.113.5", "SERVER_IP=-oProxyCommand=x")),
         expect_at(".env", 2, contains="'-oProxyCommand=x'")),
    Case("settings.host", False, "ssh alias", lambda p: dotenv(p, base=p.DOTENV.replace("SERVER_IP=203.0.113.5", "SERVER_IP=web-1.prod"))),
    # settings.remote (the review's finding 1: git read the value as an option and ran its command)
    Case("settings.remote", True, "berth.toml remote is an option",
         lambda p: p.write("berth.toml", '[environments.staging]\nhosts = ["203.0.113.10"]\n'
                                         'remote = "--upload-pack=touch PWNED;:"\n'),
         expect_at("berth.toml", 3, contains="'--upload-pack=touch PWNED;:' starts with '-'")),
    Case("settings.remote", True, "GIT_REMOTE is an option", lambda p: _option_remote(p),
         expect_at(".env", 4, contains="would read it as an option")),
    Case("settings.remote", True, "origin's URL is an option",
         lambda p: p.git("config", "remote.origin.url", "--upload-pack=touch PWNED;:"),
         expect_at(None, contains="git remote get-url origin")),
    Case("settings.remote", False, "a remote name", lambda p: dotenv(p, "GIT_REMOTE=origin\n")),
    Case("settings.remote", False, "a URL", lambda p: dotenv(p, f"GIT_REMOTE={p.remote}\n")),
    # the review's case: a NUL byte passed the check, then SSHConnection.open() raised ValueError
    Case("settings.host", True, "NUL byte in berth.toml",
         lambda p: p.write("berth.toml", '[environments.staging]\nhosts = ["203.0.113.10\\u0000"]\n'),
         expect_at("berth.toml", 2, contains="contains a NUL byte")),
    Case("settings.host", True, "control character in .env",
         lambda p: dotenv(p, base=p.DOTENV.replace("SERVER_IP=203.0.113.5", "SERVER_IP=203.0.113.5\x1b[2J")),
         expect_at(".env", 2, contains="U+001B")),
    Case("settings.host", True, "shell metacharacter", lambda p: dotenv(p, base=p.DOTENV.replace(
        "SERVER_IP=203.0.113.5", "SERVER_IP=web$(id)")), expect_at(".env", 2, contains="'$'")),
    Case("settings.host", True, "--host with a bell character", lambda p: None, hosts=("203.0.113.7\x07",),
         expect=expect_at(None, contains="U+0007")),
    Case("settings.host", False, "IPv6 with a zone", lambda p: dotenv(p, base=p.DOTENV.replace(
        "SERVER_IP=203.0.113.5", "SERVER_IP=fe80::1%eth0"))),
    # settings.user
    Case("settings.user", True, "option-like user", lambda p: dotenv(p, base=p.DOTENV.replace(
        "SERVER_USER=deploy", "SERVER_USER=-oProxyCommand=x")), expect_at(".env", 3, contains="starts with '-'")),
    Case("settings.user", True, "NUL byte in berth.toml",
         lambda p: p.write("berth.toml", '[environments.staging]\nuser = "deploy\\u0000"\n'),
         expect_at("berth.toml", 2, contains="contains a NUL byte")),
    Case("settings.user", True, "escape sequence", lambda p: dotenv(p, base=p.DOTENV.replace(
        "SERVER_USER=deploy", "SERVER_USER=deploy\x1b]0;x\x07")), expect_at(".env", 3, contains="U+001B")),
    Case("settings.user", True, "whitespace", lambda p: dotenv(p, base=p.DOTENV.replace(
        "SERVER_USER=deploy", 'SERVER_USER="deploy -oProxyCommand=x"')), expect_at(".env", 3, contains="whitespace")),
    Case("settings.user", True, "shell metacharacter", lambda p: dotenv(p, base=p.DOTENV.replace(
        "SERVER_USER=deploy", "SERVER_USER='a`id`'")), expect_at(".env", 3, contains="'`'")),
    Case("settings.user", False, "plain user", noop),
    Case("settings.user", False, "directory user", lambda p: dotenv(p, base=p.DOTENV.replace(
        "SERVER_USER=deploy", "SERVER_USER=deploy@ad.example.com"))),
    Case("settings.user", False, "no user (ssh's default)", lambda p: dotenv(p, base=p.DOTENV.replace(
        "SERVER_USER=deploy\n", ""))),
    # settings.verify-timeout (the review: VERIFY_TIMEOUT=abc passed the check, then config and deploy crashed)
    *[Case("settings.verify-timeout", True, f"VERIFY_TIMEOUT={value}", lambda p, v=value: dotenv(p, f"VERIFY_TIMEOUT={v}\n"),
           expect_at(".env", 4, contains=f"verify_timeout '{value}' is not a whole number of seconds from 1 to 3600"))
      for value in ("abc", "0", "-5", "99999", "1.5")],
    Case("settings.verify-timeout", True, "zero in berth.toml",
         lambda p: p.write("berth.toml", "[environments.staging]\nverify_timeout = 0\n"),
         expect_at("berth.toml", 2, contains="verify_timeout 0 is not")),
    *[Case("settings.verify-timeout", False, f"VERIFY_TIMEOUT={value}",
           lambda p, v=value: dotenv(p, f"VERIFY_TIMEOUT={v}\n")) for value in ("1", "300", "3600")],
    Case("settings.verify-timeout", False, "default", noop),
    # settings.fleet: how a deploy goes over several hosts
    *[Case("settings.fleet", True, f"{key} = {value}",
           lambda p, k=key, v=value: p.write("berth.toml", f'[environments.staging]\nhosts = ["a", "b"]\n{k} = {v}\n'),
           expect_at("berth.toml", 3, contains=words))
      for key, value, words in (("parallel", 0, "parallel 0 is neither"), ("parallel", '"150%"', "'150%' is neither"),
                                ("canary", '"c"', "canary 'c' is not one of this environment's hosts or roles (a, b)"),
                                ("batch_pause", 99999, "batch_pause 99999 is not"),
                                ("on_failure", '"ignore"', "on_failure 'ignore' is not one of rollback, stop"),
                                ("build", '"twice"', "build 'twice' is not one of each, once"))],
    *[Case("settings.fleet", False, f"{key} = {value}",
           lambda p, k=key, v=value: p.write("berth.toml", f'[environments.staging]\nhosts = ["a", "b"]\n{k} = {v}\n'))
      for key, value in (("parallel", 2), ("parallel", '"50%"'), ("canary", "true"), ("canary", '"b"'),
                         ("batch_pause", 30), ("on_failure", '"stop"'), ("build", '"once"'))],
    # settings.roles
    Case("settings.roles", True, "a role's host is not in hosts", lambda p: p.write("berth.toml", (
        '[environments.staging]\nhosts = ["a", "b"]\n[environments.staging.roles.web]\nhosts = ["a", "c"]\n'
        'services = ["web"]\n')), expect_at("berth.toml", 3, contains="role 'web' names host 'c', which hosts")),
    Case("settings.roles", True, "a role's service is not in the compose file", lambda p: (
        dotenv(p, base=p.DOTENV.replace("SERVER_IP=203.0.113.5\n", "")), p.write("berth.toml", (
            '[environments.staging.roles.jobs]\nhosts = ["a"]\nservices = ["worker"]\n'))),
         expect_at("berth.toml", 1, contains="role 'jobs' runs service 'worker', which the compose file does not")),
    Case("settings.roles", False, "roles of listed hosts and real services", lambda p: p.write("berth.toml", (
        '[environments.staging]\nhosts = ["a", "b"]\n[environments.staging.roles.web]\nhosts = ["a"]\n'
        'services = ["web"]\n'))),
    Case("settings.roles", False, "the roles' hosts are the environment's", lambda p: (
        dotenv(p, base=p.DOTENV.replace("SERVER_IP=203.0.113.5\n", "")), p.write("berth.toml", (
            '[environments.staging.roles.web]\nhosts = ["a", "b"]\n')))),
    # settings.engine, and what a swarm ignores
    Case("settings.engine", True, "a word that is no engine", lambda p: p.write("berth.toml", (
        '[environments.staging]\nengine = "kubernetes"\n')),
         expect_at("berth.toml", 2, contains="engine 'kubernetes' is not one of compose, swarm")),
    Case("settings.engine", False, "swarm", lambda p: p.write("berth.toml", '[environments.staging]\nengine = "swarm"\n')),
    Case("swarm.ignored-key", True, "container_name on a swarm", lambda p: (
        p.write("berth.toml", '[environments.staging]\nengine = "swarm"\n'),
        compose(p, COMPOSE_OK.replace("    restart: unless-stopped\n", "    container_name: shop\n"))),
         expect_at("docker-compose.yml", 6, 5, contains="service web sets container_name, which docker stack deploy",
                   fix="swarm names each task itself")),
    Case("swarm.ignored-key", True, "restart without deploy.restart_policy", lambda p: p.write(
        "berth.toml", '[environments.staging]\nengine = "swarm"\n'),
         expect_at("docker-compose.yml", 6, 5, contains="service web sets restart", fix="deploy.restart_policy")),
    Case("swarm.ignored-key", False, "restart next to deploy.restart_policy", lambda p: (
        p.write("berth.toml", '[environments.staging]\nengine = "swarm"\n'),
        compose(p, COMPOSE_OK + "    deploy:\n      restart_policy:\n        condition: any\n"))),
    Case("swarm.ignored-key", False, "container_name with docker compose", lambda p: compose(
        p, COMPOSE_OK.replace("    restart: unless-stopped\n", "    container_name: shop\n"))),
    Case("swarm.build", True, "a built service on a swarm", lambda p: (
        p.write("berth.toml", '[environments.staging]\nengine = "swarm"\n'),
        p.write("Dockerfile", "FROM busybox:1.35\n"),
        compose(p, COMPOSE_OK.replace('    image: "nginx:${TAG}"\n', "    build: .\n"))),
         expect_at("docker-compose.yml", 3, 5, contains="berth builds it on the swarm manager")),
    Case("swarm.build", False, "a pulled image on a swarm", lambda p: p.write(
        "berth.toml", '[environments.staging]\nengine = "swarm"\n')),
    # settings.health-url
    Case("settings.health-url", True, "no scheme", lambda p: dotenv(p, "HEALTH_URL=localhost:8080/health\n"),
         expect_at(".env", 4, contains="localhost:8080/health")),
    Case("settings.health-url", True, "one bad of two",
         lambda p: dotenv(p, "HEALTH_URL=http://203.0.113.5/up,ftp://203.0.113.5/\n"),
         expect_at(".env", 4, contains="ftp://")),
    Case("settings.health-url", True, "no host", lambda p: dotenv(p, "HEALTH_URL=http:///health\n"),
         expect_at(".env", 4)),
    Case("settings.health-url", False, "http and https",
         lambda p: dotenv(p, "HEALTH_URL=http://203.0.113.5:8080/health,https://example.com/up\n")),
    # ssh.key-missing
    Case("ssh.key-missing", True, "missing key", lambda p: dotenv(p, "PEM_KEY_PATH=keys/nope.pem\n"),
         lambda p, found: (expect_at(".env", 4)(p, found),
                           _assert(str(p.root / "keys/nope.pem") in found[0].message))),
    Case("ssh.key-missing", True, "key path is a directory", lambda p: dotenv(p, f"PEM_KEY_PATH={p.root}\n"),
         expect_at(".env", 4)),
    Case("ssh.key-missing", False, "existing key", lambda p: key_file(p, 0o600)),
    Case("ssh.key-missing", False, "no key (ssh-agent)", noop),
    # ssh.key-mode
    Case("ssh.key-mode", True, "world readable", lambda p: key_file(p, 0o644),
         lambda p, found: (expect_at(".env", 4, contains="mode 0644")(p, found),
                           _assert(found[0].fix.startswith("chmod 600 ")))),
    Case("ssh.key-mode", True, "group readable", lambda p: key_file(p, 0o640), expect_at(".env", 4)),
    Case("ssh.key-mode", False, "0600", lambda p: key_file(p, 0o600)),
    Case("ssh.key-mode", False, "0400", lambda p: key_file(p, 0o400)),
    # ssh.key-in-repo (the review: PEM_KEY_PATH itself committed passed the check)
    Case("ssh.key-in-repo", True, "committed", _key_in_repo("deploy_key", track=True),
         expect_at(".env", 4, contains="the SSH key deploy_key (PEM_KEY_PATH) is committed")),
    Case("ssh.key-in-repo", True, "committed, named by an absolute path",
         lambda p: (_key_in_repo("keys/deploy.pem", track=True)(p), dotenv(p, f"PEM_KEY_PATH={p.root}/keys/deploy.pem\n")),
         expect_at(".env", 4, contains="keys/deploy.pem (PEM_KEY_PATH) is committed")),
    Case("ssh.key-in-repo", True, "untracked and not ignored", _key_in_repo("deploy_key"),
         lambda p, found: (expect_at(".env", 4, contains="one `git add .` away from being committed")(p, found),
                           _assert("echo deploy_key >> .gitignore" in found[0].fix))),
    Case("ssh.key-in-repo", False, "untracked and ignored", _key_in_repo("keys/deploy.pem", ignore=True)),
    Case("ssh.key-in-repo", False, "outside the repository", lambda p: key_file(p, 0o600)),
    Case("ssh.key-in-repo", False, "no key (ssh-agent)", noop),
]


def _assert(condition: bool) -> None:
    assert condition


# --------------------------------------------------------------------------- the tests


def _all_cases() -> list:
    """CASES here plus the CASES list of every tests/unit/test_rules_*.py module (objects with .rule/.fires)."""
    import importlib.util

    cases = list(CASES)
    for path in sorted(Path(__file__).parent.glob("test_rules_*.py")):
        spec = importlib.util.spec_from_file_location(f"_cases_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # registered while it runs, as an import would be
        spec.loader.exec_module(module)
        cases += list(getattr(module, "CASES", []))
    return cases


def test_every_rule_has_a_firing_and_a_quiet_case():
    # every rule module registers rules (one that registered none would pass the checks below unseen)
    modules = {p.stem for p in Path(berth.check.rules.__file__).parent.glob("*.py") if p.stem != "__init__"}
    registering = {r.check.__module__.rsplit(".", 1)[-1] for r in RULES.values()}
    assert modules - registering == set()
    cases = _all_cases()
    firing = {c.rule for c in cases if c.fires}
    quiet = {c.rule for c in cases if not c.fires}
    assert set(RULES) - firing == set(), "rules without a failing case"
    assert set(RULES) - quiet == set(), "rules without a passing case"
    assert (firing | quiet) - set(RULES) == set(), "cases for rules that do not exist"
    # a rule that is off by default still needs its cases, run with the rule switched on


def test_clean_project_has_no_findings(project):
    report = run(project)
    assert report.findings == ()
    assert report.rules_run == len(RULES)


# each case on a fresh project: its rule fires (every finding with a severity and a fix) or stays quiet
test_rule = rule_test(CASES)


# --------------------------------------------------------------------------- run_checks itself


def test_offline_skips_only_git_remote_rules(project):
    _unpushed_commit(project)
    assert of_rule(run(project).findings, "git.unpushed")
    offline = run(project, offline=True)
    assert of_rule(offline.findings, "git.unpushed") == []
    assert offline.rules_run == len(RULES) - sum(r.stage == "git-remote" for r in RULES.values())


def test_skip_by_id(project):
    project.write("notes.txt", "x")
    report = run(project, skip={"git.dirty"})
    assert of_rule(report.findings, "git.dirty") == []
    assert report.rules_run == len(RULES) - 1


def test_findings_are_sorted_most_severe_first(project):
    project.remove(".env.docker.example")  # warning
    compose(project, DEFAULTED)  # info + dirty error
    severities = [f.severity for f in run(project).findings]
    assert severities == sorted(severities, reverse=True)
    assert {Severity.ERROR, Severity.WARNING, Severity.INFO} <= set(severities)


def test_report_counts_and_errors(project):
    project.remove(".env.docker.example")
    report = run(project)
    assert report.counts() == {"info": 0, "warning": 1, "error": 1}  # example-missing + dirty (deleted file)
    assert [f.rule for f in report.errors] == ["git.dirty"]


# --------------------------------------------------------------------------- unset-variable positions


POSITIONS = """\
services:
  web:
    image: "registry.test/${IMG_A}:latest"
    ports:
      - ${IMG_B}:80
    environment:
      - URL=http://${IMG_C}/x
      PLAIN: ${IMG_D} and ${IMG_E}
    labels:
      single: 'a ${IMG_F}'
      nested: "${IMG_OK:-${IMG_G}}"
"""


def test_unset_variable_points_at_each_reference(project):
    # environment as a list and a mapping cannot be mixed: use two services
    text = POSITIONS.replace("      PLAIN: ${IMG_D} and ${IMG_E}\n", "").replace(
        "    labels:", "    command: echo ${IMG_D} and ${IMG_E}\n    labels:")
    compose(project, text)
    app_env(project, "")
    found = of_rule(run(project).findings, "compose.unset-variable")
    got = {f.message.split("}")[0][2:]: (f.line, f.col) for f in found}
    expected = {name: pos(text, "${" + name) for name in
                ("IMG_A", "IMG_B", "IMG_C", "IMG_D", "IMG_E", "IMG_F", "IMG_G")}
    assert got == expected
    assert all(f.file == project.root / "docker-compose.yml" for f in found)


def test_unset_variable_in_second_compose_file(project):
    project.write("compose.prod.yml", "services:\n  web:\n    environment:\n      X: ${PROD_ONLY}\n")
    dotenv(project, "COMPOSE_FILES=docker-compose.yml,compose.prod.yml\n")
    found = of_rule(run(project).findings, "compose.unset-variable")
    assert [(f.file.name, f.line, f.col) for f in found] == [("compose.prod.yml", 4, 10)]


def test_unset_variable_position_after_escape_in_double_quotes(project):
    text = 'services:\n  web:\n    image: nginx\n    command: "printf a\\tb ${ESC}"\n'
    compose(project, text)
    found = of_rule(run(project).findings, "compose.unset-variable")
    assert [(f.line, f.col) for f in found] == [pos(text, "${ESC}")]


def test_unset_variable_position_after_escape_in_single_quotes(project):
    text = "services:\n  web:\n    image: nginx\n    command: 'it''s ${ESC}'\n"
    compose(project, text)
    found = of_rule(run(project).findings, "compose.unset-variable")
    assert [(f.line, f.col) for f in found] == [pos(text, "${ESC}")]


def test_unset_variable_line_in_block_scalar(project):
    text = "services:\n  web:\n    image: nginx\n    command: |\n      echo start\n      echo ${BLOCK}\n"
    compose(project, text)
    found = of_rule(run(project).findings, "compose.unset-variable")
    assert [f.line for f in found] == [pos(text, "${BLOCK}")[0]]


def test_unset_variable_col_in_block_scalar(project):
    text = "services:\n  web:\n    image: nginx\n    command: |\n      echo start\n      echo ${BLOCK}\n"
    compose(project, text)
    found = of_rule(run(project).findings, "compose.unset-variable")
    assert [(f.line, f.col) for f in found] == [pos(text, "${BLOCK}")]


def test_unset_variable_position_in_multiline_plain_scalar(project):
    text = "services:\n  web:\n    image: nginx\n    command: echo one\n      ${FOLDED}\n"
    compose(project, text)
    found = of_rule(run(project).findings, "compose.unset-variable")
    assert [(f.line, f.col) for f in found] == [pos(text, "${FOLDED}")]


def test_finding_location_and_json(project):
    app_env(project, "")
    found = of_rule(run(project).findings, "compose.unset-variable")
    assert found[0].location(project.root) == "docker-compose.yml:3:19"
    d = found[0].as_dict(project.root)
    assert (d["file"], d["line"], d["col"], d["severity"]) == ("docker-compose.yml", 3, 19, "error")


def test_second_project_is_independent(make_project, run_git):
    # sanity for the fixture: two projects do not share a remote
    a, b = make_project("a"), make_project("b")
    assert a.remote != b.remote
    assert run_git(a.remote, "rev-parse", "main") == a.head()
    assert os.path.isdir(b.remote / "refs")


def test_unset_variable_inside_a_default_when_the_default_is_needed(project):
    compose(project, 'services:\n  web:\n    image: "${IMAGE:-${REGISTRY}/shop}"\n')
    app_env(project, "")
    found = of_rule(run(project).findings, "compose.unset-variable")
    assert [f.message.split("}")[0] for f in found] == ["${REGISTRY"]


def test_unset_variable_inside_an_unused_default(project):
    compose(project, 'services:\n  web:\n    image: "${IMAGE:-${REGISTRY}/shop}"\n')
    app_env(project, "IMAGE=nginx:1.25\n")
    assert of_rule(run(project).findings, "compose.unset-variable") == []


def test_key_in_repo_above_the_project_directory(project):
    """The project is a subdirectory of the repository; the key is committed beside it, at the top."""
    key = project.write("deploy_key", "not a real key\n")
    key.chmod(0o600)
    project.write("app/docker-compose.yml", project.COMPOSE)
    project.git("add", "-f", "deploy_key", "app/docker-compose.yml")
    project.commit("key at the top")
    project.write("app/.env", project.DOTENV + "PEM_KEY_PATH=../deploy_key\n")
    report = run_checks(load_target(project.root / "app"), offline=True)
    found = of_rule(report.findings, "ssh.key-in-repo")
    assert [(f.file, f.line) for f in found] == [(project.root / "app" / ".env", 4)]
    assert "the SSH key deploy_key (PEM_KEY_PATH) is committed" in found[0].message
