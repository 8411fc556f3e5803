"""`berth doctor` without a server: the gather output is parsed, every check maps facts to the right
status / cause / fix, the shell builders are valid sh that leaks no secret value, the in-container
probe (PROBE_PY / PROBE_SH) is run here against tiny local TCP servers, and render / masking.

The server-side script is also run locally once or twice with stub `docker` / `ssh` programs on a
minimal PATH: that is the only way to see what the `@@repo` / `@@envfile` sections really print.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import socket
import subprocess
import sys
import threading
from dataclasses import asdict, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from berth.configuration.target import Host, load_target
from berth.ops import doctor as d
from berth.remote.commands import doctor as cmd
from berth.remote.engines.compose import ContainerState
from berth.secrets.masking import Masker
from tests.helpers.docker_states import inspect_line

PASSWORD = "pw-Zq8x7c6v5b4n"
SH = shutil.which("sh") or "/bin/sh"


# --------------------------------------------------------------------------- helpers


def stamp(seconds_ago: float) -> str:
    """docker's StartedAt: RFC 3339 in UTC with nanoseconds."""
    t = datetime.now(timezone.utc) - timedelta(seconds=seconds_ago)
    return t.strftime("%Y-%m-%dT%H:%M:%S") + ".123456789Z"


def state(service: str, status: str = "running", *, health: str = "", exit_code: int = 0, restarts: int = 0,
          started: float = 3600, policy: str = "unless-stopped", name: str | None = None,
          cid: str | None = None) -> ContainerState:
    return ContainerState(service, name or f"app-{service}-1", cid or f"id-{service}", status, health, exit_code,
                          restarts, stamp(started), policy, f"app-{service}", "sha256:abc")


def box(service: str, status: str = "running", *, networks=("app_default",), ports=(), env=(), **kw) -> d.Container:
    return d.Container(state(service, status, **kw), list(networks), list(ports), set(env))


def host_facts(containers=(), *, facts=None, repo=None, envfile=None, disk=(), memory=None, current=None,
               app_dir="~/app") -> d.HostFacts:
    return d.HostFacts(
        facts={"docker": "27.3.1", "compose": "v2 2.29.7", "user": "deploy"} if facts is None else facts,
        repo={"present": "yes", "head": "a" * 40, "origin": "git@github.com:acme/app.git", "dirty": "0",
              "remote": "ok"} if repo is None else repo,
        envfile={"mode": "600", "sha256": "f" * 64, "has": ""} if envfile is None else envfile,
        containers=list(containers), disk=[list(x) for x in disk], memory=memory or {}, current=current,
        app_dir=app_dir)


def by_id(findings: list[d.Finding], check_id: str) -> list[d.Finding]:
    return [f for f in findings if f.id == check_id]


def one(findings: list[d.Finding], check_id: str) -> d.Finding:
    found = by_id(findings, check_id)
    assert len(found) == 1, (check_id, findings)
    return found[0]


class FakeProbe:
    """Answers the commands doctor would run on the server; records them."""

    def __init__(self, answer=None, logs: str = "", port_state: str = "open"):
        self.answer = answer
        self.logs = logs
        self.port_state = port_state
        self.commands: list[str] = []

    def __call__(self, command: str) -> str:
        self.commands.append(command)
        if command.startswith("docker logs"):
            return self.logs
        if "/dev/tcp/127.0.0.1/" in command:  # all published ports in one parallel command
            return "".join(f"{i}\t{self.port_state}\n" for i in range(command.count("/dev/tcp/127.0.0.1/")))
        return self.answer(command) if callable(self.answer) else (self.answer or "")


@pytest.fixture
def target(tmp_path):
    root = tmp_path / "app"
    root.mkdir()
    (root / ".env").write_text("ENVIRONMENT=staging\nSERVER_IP=203.0.113.5\nSERVER_USER=deploy\n")
    return load_target(root)


# --------------------------------------------------------------------------- parse_gather


def realistic_gather() -> str:
    web = "c0ffee" + "0" * 58
    db = "dbdbdb" + "0" * 58
    worker = "eeeeee" + "0" * 58
    return "\n".join([
        "@@facts",
        "home=/home/deploy",
        "user=deploy",
        "docker=27.3.1",
        "docker_host=unix:///var/run/docker.sock",
        "compose=v2 2.29.7",
        "@@repo",
        "present=yes",
        "head=" + "b" * 40,
        "origin=git@github.com:acme/shop.git",
        "dirty=2",
        "remote_error=git@github.com: Permission denied (publickey).",
        "@@envfile",
        "mode=644",
        "sha256=" + "e" * 64,
        "has=DATABASE_URL SECRET_KEY ",
        "@@containers",
        inspect_line("web", "shop-web-1", web, "running", "healthy", 0, 0),
        inspect_line("db", "shop-db-1", db, "exited", "", 143, 0, policy="always"),
        inspect_line("worker", "shop-worker-1", worker, "restarting", "", 1, 7),
        "Error: No such object: deadbeef",  # garbage: skipped
        "@@details",
        f"{web}\tshop_default shop_back \t8080/80/tcp 8443/443/tcp \tPATH DATABASE_URL SECRET_KEY ",
        f"{db}\tshop_back \t\tPATH POSTGRES_PASSWORD ",
        "unknownid\tx \t\tA ",  # a container not in @@containers: ignored
        "too\tfew",
        "@@disk",
        "/dev/sda1 41152736 30000000 9000000 77% /",
        "/dev/sda1 41152736 30000000 9000000 77% /home",
        "overlay 100 50",  # too short: ignored
        "@@memory",
        "MemTotal:       16314752 kB",
        "MemAvailable:    8123456 kB",
        "MemFree: lots kB",
        "@@current",
        '{"commit": "' + "c" * 40 + '", "release": "20240101-120000"}',
        "@@end",
        "",
    ])


def test_parse_gather_reads_every_section():
    f = d.parse_gather(realistic_gather(), "~/shop")
    assert f.app_dir == "~/shop"
    assert f.facts["docker"] == "27.3.1" and f.facts["compose"] == "v2 2.29.7" and f.facts["user"] == "deploy"
    assert f.docker_ok
    assert f.repo["present"] == "yes" and f.repo["dirty"] == "2"
    assert f.repo["remote_error"] == "git@github.com: Permission denied (publickey)."  # '=' kept in the value
    assert f.envfile == {"mode": "644", "sha256": "e" * 64, "has": "DATABASE_URL SECRET_KEY "}
    assert [c.state.service for c in f.containers] == ["db", "web", "worker"]  # sorted by service
    db, web, worker = f.containers
    assert web.state.name == "shop-web-1"  # the leading / of .Name is stripped
    assert web.state.health == "healthy" and web.state.status == "running"
    assert web.networks == ["shop_default", "shop_back"]
    assert web.ports == [(8080, "80/tcp"), (8443, "443/tcp")]
    assert web.env_names == {"PATH", "DATABASE_URL", "SECRET_KEY"}
    assert (db.state.status, db.state.exit_code, db.state.restart_policy) == ("exited", 143, "always")
    assert db.ports == [] and db.networks == ["shop_back"] and "POSTGRES_PASSWORD" in db.env_names
    # a container without a details line is still a container, with no networks / ports / names
    assert (worker.state.status, worker.state.restarts) == ("restarting", 7)
    assert worker.networks == [] and worker.ports == [] and worker.env_names == set()
    assert f.disk == [["/dev/sda1", "41152736", "30000000", "9000000", "77%", "/"],
                      ["/dev/sda1", "41152736", "30000000", "9000000", "77%", "/home"]]
    assert f.memory == {"MemTotal": 16314752, "MemAvailable": 8123456}
    assert f.current.to_record() == {"commit": "c" * 40, "release": "20240101-120000"}
    assert set(f.by_service()) == {"db", "web", "worker"}


@pytest.mark.parametrize("stdout", [
    "",
    "garbage\nwithout sections\n",
    "@@facts\n@@repo\n@@containers\na\tb\tc\n@@details\n\t\t\t\n@@current\n{not json\n",
    "@@current\n[1, 2\n@@memory\nMemTotal\n:\nMemAvailable: -5 kB\n@@disk\n\n",
    "\x00\x01@@\n@@@@\n=\n",
    "Last login: Mon Jan  1 00:00:00 2024\n@@facts\ndocker_error=Cannot connect\n@@end\n",
])
def test_parse_gather_survives_garbage_and_missing_sections(stdout):
    f = d.parse_gather(stdout, "~/app")
    assert f.containers == [] and f.disk == []
    assert f.current is None
    assert "MemAvailable" not in f.memory
    # and every check can run on what came out
    d.check_docker(f), d.check_compose(f), d.check_resources(f)


def test_parse_gather_motd_before_the_first_section_is_ignored():
    f = d.parse_gather("Welcome to Ubuntu\nhome=/root\n@@facts\nuser=deploy\n", "~/app")
    assert f.facts == {"user": "deploy"}


# --------------------------------------------------------------------------- docker / compose


def test_docker_running():
    x = d.check_docker(host_facts())
    assert (x.id, x.status) == ("docker.daemon", "ok") and "27.3.1" in x.summary


def test_docker_daemon_down():
    err = "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?"
    x = d.check_docker(host_facts(facts={"docker_error": err, "docker_client": "yes",
                                         "docker_host": "unix:///var/run/docker.sock"}))
    assert x.status == "fail"
    assert "does not answer at unix:///var/run/docker.sock" in x.summary
    assert "not running" in x.cause
    assert "systemctl start docker" in x.fix and "journalctl -u docker" in x.fix
    assert x.details == err


@pytest.mark.parametrize("err", ["", 'context "prod": context not found: open /root/.docker/contexts/meta: no such file'])
def test_docker_client_present_is_never_not_installed(err):
    x = d.check_docker(host_facts(facts={"docker_error": err, "docker_client": "yes"}))
    assert x.status == "fail" and "not installed" not in x.summary and "systemctl start docker" in x.fix


def test_docker_daemon_down_names_docker_host():
    x = d.check_docker(host_facts(facts={"docker_error": "Cannot connect to the Docker daemon at tcp://10.0.0.5:2375.",
                                         "docker_client": "yes", "docker_host": "tcp://10.0.0.5:2375"}))
    assert "tcp://10.0.0.5:2375" in x.summary


def test_docker_permission_denied():
    err = ("permission denied while trying to connect to the Docker daemon socket at unix:///var/run/docker.sock: "
           "Get \"http://%2Fvar%2Frun%2Fdocker.sock/v1.24/version\": dial unix /var/run/docker.sock: connect: "
           "permission denied")
    x = d.check_docker(host_facts(facts={"docker_error": err, "docker_client": "yes", "user": "deploy"}))
    assert x.status == "fail"
    assert "not in the docker group" in x.cause
    assert x.fix == "sudo usermod -aG docker deploy, then log in again"


@pytest.mark.parametrize("err", ["sh: 1: docker: not found", "bash: line 1: docker: command not found", ""])
def test_docker_not_installed(err):
    x = d.check_docker(host_facts(facts={"docker_error": err, "user": "deploy"}))
    assert x.status == "fail" and x.summary == "docker is not installed on the server"
    assert "docs.docker.com/engine/install" in x.fix


def test_compose_v2_v1_missing():
    ok = d.check_compose(host_facts(facts={"docker": "27", "compose": "v2 2.29.7"}))
    assert (ok.status, ok.summary) == ("ok", "docker compose 2.29.7")
    v1 = d.check_compose(host_facts(facts={"docker": "27", "compose": "v1 1.29.2"}))
    assert v1.status == "warn" and "1.29.2" in v1.summary and "docker-compose-plugin" in v1.fix
    missing = d.check_compose(host_facts(facts={"docker": "27"}))
    assert missing.status == "fail" and "docker-compose-plugin" in missing.fix


# --------------------------------------------------------------------------- repo


def test_repo_healthy(target):
    out = d.check_repo(host_facts(current={"commit": "a" * 40}), target)
    assert [(x.id, x.status) for x in out] == [("repo.cloned", "ok"), ("repo.remote", "ok")]
    assert "aaaaaaa" in out[0].summary and "git@github.com:acme/app.git" in out[0].summary


def test_repo_missing_mentions_old_containers(target):
    out = d.check_repo(host_facts(repo={"present": "no"}), target)
    assert [(x.id, x.status) for x in out] == [("repo.cloned", "fail")]
    assert out[0].summary == "~/app does not exist on the server" and out[0].fix == "berth deploy (it clones the repository there)"
    out = d.check_repo(host_facts([box("web"), box("db")], repo={"present": "no"}), target)
    assert "2 container(s) of the project still run from the old checkout" in out[0].fix


def test_repo_not_a_checkout(target):
    out = d.check_repo(host_facts(repo={"present": "not-a-repo", "remote": "ok"}, app_dir="/srv/shop"), target)
    cloned = one(out, "repo.cloned")
    assert cloned.status == "fail" and "not a git checkout" in cloned.summary
    assert "mv /srv/shop /srv/shop.old" in cloned.fix
    assert one(out, "repo.remote").status == "ok"


def test_repo_dirty(target):
    repo = {"present": "yes", "head": "a" * 40, "dirty": "3"}
    x = one(d.check_repo(host_facts(repo=repo), target), "repo.clean")
    assert x.status == "warn" and x.summary.startswith("3 file(s)")
    assert "ssh deploy@203.0.113.5 git -C ~/app status" in x.fix


def test_repo_dirty_says_what_deploy_does_and_how_to_fix_it(target):
    x = one(d.check_repo(host_facts(repo={"present": "yes", "head": "a" * 40, "dirty": "1"}), target), "repo.clean")
    assert "berth deploy stops" in x.cause
    assert "commit and push what should stay" in x.fix and "git checkout -- FILE" in x.fix and "stash" not in x.fix


def test_repo_server_commits(target):
    repo = {"present": "yes", "head": "1234567" + "0" * 33, "dirty": "0", "server_commits": "2"}
    current = {"commit": "89abcde" + "0" * 33}
    out = d.check_repo(host_facts(repo=repo, current=current), target)
    x = one(out, "repo.server-commits")
    assert x.status == "warn" and "2 commit(s) made on the server" in x.summary and "berth deploy stops" in x.cause
    assert f"checkout --detach {current['commit']}" in x.fix and "push them" in x.fix
    assert not by_id(out, "repo.commit")  # the drift is those commits
    # the running release's commit itself is never the server's own, even when no branch holds it any more
    assert not by_id(d.check_repo(host_facts(repo=repo, current={"commit": repo["head"]}), target),
                     "repo.server-commits")


def test_repo_origin_other_than_the_deploy_url_is_named(target):
    repo = {"present": "yes", "head": "a" * 40, "dirty": "0", "origin": "git@github.com:someone/fork.git",
            "origin_is": "other", "remote": "ok"}
    x = one(d.check_repo(host_facts(repo=repo), target), "repo.cloned")
    assert x.status == "ok" and "someone/fork.git" in x.summary and "leaves that origin as it is" in x.summary


def test_repo_commit_drift(target):
    repo = {"present": "yes", "head": "1234567" + "0" * 33, "dirty": "0"}
    x = one(d.check_repo(host_facts(repo=repo, current={"commit": "89abcde" + "0" * 33}), target), "repo.commit")
    assert x.status == "warn" and "1234567" in x.summary and "89abcde" in x.summary
    # same commit, or no current release: no drift finding
    assert not by_id(d.check_repo(host_facts(repo=repo, current={"commit": repo["head"]}), target), "repo.commit")
    assert not by_id(d.check_repo(host_facts(repo=repo, current=None), target), "repo.commit")


@pytest.mark.parametrize("err, cause_part, fix_part", [
    ("git@github.com: Permission denied (publickey).", "no credentials", "deploy key"),
    ("fatal: Authentication failed for 'https://github.com/acme/app.git/'", "no credentials", "deploy key"),
    ("ssh: Could not resolve hostname github.com: Temporary failure in name resolution", "DNS", "resolv.conf"),
    ("fatal: unable to access 'https://git.example/x/': Could not resolve host: git.example", "DNS", "resolv.conf"),
    ("fatal: repository 'https://github.com/acme/gone/' not found", "remote URL is wrong", "GIT_REMOTE in .env"),
    ("fatal: '/srv/git/app.git' does not appear to be a git repository", "remote URL is wrong", "remote in berth.toml"),
    ("ERROR: Repository not found.", "remote URL is wrong", "origin is never rewritten"),
    ("ssh: connect to host github.com port 22: Connection timed out", "cannot reach the git remote", "git ls-remote"),
])
def test_repo_remote_errors(target, err, cause_part, fix_part):
    repo = {"present": "yes", "head": "a" * 40, "dirty": "0", "remote_error": err}
    x = one(d.check_repo(host_facts(repo=repo), target), "repo.remote")
    assert x.status == "fail" and err in x.summary
    assert cause_part in x.cause and fix_part in x.fix


# --------------------------------------------------------------------------- env file


def test_env_file_missing(target):
    out = d.check_env_file(host_facts(envfile={"missing": "yes"}), d.Expected(env_names=["A"]), target)
    assert [(x.id, x.status) for x in out] == [("env.file", "fail")]
    assert out[0].summary == ".env.docker is not on the server" and "berth deploy" in out[0].fix


def test_env_file_matches(target):
    exp = d.Expected(env_names=["A", "B"], env_sha256="f" * 64)
    out = d.check_env_file(host_facts(envfile={"mode": "600", "sha256": "f" * 64, "has": "A B "}), exp, target)
    assert [(x.id, x.status) for x in out] == [("env.file", "ok")]


def test_env_file_mode_644(target):
    exp = d.Expected(env_names=["A"], env_sha256="f" * 64)
    out = d.check_env_file(host_facts(envfile={"mode": "644", "sha256": "f" * 64, "has": "A "}), exp, target)
    assert [(x.id, x.status) for x in out] == [("env.mode", "warn")]
    assert "644" in out[0].summary and out[0].fix.startswith("chmod 600 ~/app/.env.docker")
    assert not d.check_env_file(host_facts(envfile={"mode": "400", "has": "A"}), exp, target)[0].id == "env.mode"


def test_env_file_lacks_names(target):
    exp = d.Expected(env_names=["A", "NEW_ONE", "OTHER"], env_sha256="0" * 64)
    out = d.check_env_file(host_facts(envfile={"mode": "600", "sha256": "f" * 64, "has": "A "}), exp, target)
    x = one(out, "env.file")
    assert x.status == "fail" and x.summary == "the server's .env.docker lacks NEW_ONE, OTHER"
    assert len(out) == 1  # the checksum difference is implied, not reported twice


def test_env_file_checksum_differs(target):
    exp = d.Expected(env_names=["A"], env_sha256="0" * 64)
    x = one(d.check_env_file(host_facts(envfile={"mode": "600", "sha256": "f" * 64, "has": "A "}), exp, target),
            "env.file")
    assert x.status == "warn" and "differs" in x.summary


# --------------------------------------------------------------------------- services


def services_exp(**services) -> d.Expected:
    return d.Expected(services={k: {"env": list(v), "ports": []} for k, v in services.items()}, env_names=[])


def test_service_running_and_orphan(target):
    f = host_facts([box("web"), box("old")])
    out = d.check_services(f, services_exp(web=[]), FakeProbe(), target)
    assert [(x.id, x.status) for x in out] == [("service.orphan", "warn"), ("service.running", "ok")]


def test_service_without_container(target):
    out = d.check_services(host_facts([box("web")]), services_exp(web=[], db=[]), FakeProbe(), target)
    (x,) = [x for x in out if x.status == "fail"]
    assert (x.id, x.summary) == ("service.running", "db has no container")
    assert x.fix == "berth deploy (or on the server: cd ~/app && docker compose up -d db)"


def test_service_without_container_compose_v1(target):
    f = host_facts(facts={"docker": "27", "compose": "v1 1.29.2"})
    x = d.check_services(f, services_exp(db=[]), FakeProbe(), target)[0]
    assert "docker-compose up -d db" in x.fix


@pytest.mark.parametrize("code", [143, 137, 0])
def test_service_stopped_by_hand(target, code):
    probe = FakeProbe(logs="shutting down\n")
    f = host_facts([box("web", "exited", exit_code=code, policy="unless-stopped")])
    x = one(d.check_services(f, services_exp(web=[]), probe, target), "service.stopped")
    assert x.status == "fail"
    assert x.cause == "it was stopped (docker stop / compose stop) or killed"
    assert "up -d web" in x.fix and "say why it exited" not in x.fix
    assert x.details == "shutting down"
    assert probe.commands == ["docker logs --tail 20 id-web 2>&1"]


def test_service_crashed_without_restart_policy(target):
    logs = "Traceback (most recent call last):\nKeyError: 'SECRET_KEY'\n"
    f = host_facts([box("web", "exited", exit_code=1, policy="no")])
    x = one(d.check_services(f, services_exp(web=[]), FakeProbe(logs=logs), target), "service.stopped")
    assert x.status == "fail" and "exit code 1" in x.summary
    assert x.cause == ("it crashed: the app exited with an error; restart policy 'no' does not bring it back")
    assert x.fix.endswith("; the log lines below say why it exited")
    assert "KeyError: 'SECRET_KEY'" in x.details


def test_one_shot_service_that_finished_is_fine(target):
    f = host_facts([box("migrate", "exited", exit_code=0, policy="no")])
    assert one(d.check_services(f, services_exp(migrate=[]), FakeProbe(), target), "service.running").status == "ok"


def test_service_restarting_is_a_crashloop_with_the_last_logs(target):
    logs = "\n".join(f"line {i}" for i in range(20)) + "\nError: cannot bind 0.0.0.0:80\n"
    probe = FakeProbe(logs=logs)
    f = host_facts([box("web", "restarting", exit_code=1, restarts=12, started=5)])
    x = one(d.check_services(f, services_exp(web=[]), probe, target), "service.crashloop")
    assert x.status == "fail"
    assert x.summary == "web is crash-looping: restarted 12 times, last exit code 1"
    assert "(the app exited with an error)" in x.cause
    assert "berth rollback" in x.fix
    assert x.details.endswith("Error: cannot bind 0.0.0.0:80")
    assert probe.commands == ["docker logs --tail 20 id-web 2>&1"]


def test_running_but_restarted_often_and_recently_is_a_crashloop(target):
    f = host_facts([box("web", "running", restarts=3, started=10)])
    x = one(d.check_services(f, services_exp(web=[]), FakeProbe(logs="boom"), target), "service.crashloop")
    assert x.summary == "web is crash-looping: restarted 3 times"  # no exit code: a running one's is reset
    assert x.details == "boom"


def test_running_restarted_long_ago_is_a_warning_not_a_crashloop(target):
    probe = FakeProbe()
    f = host_facts([box("web", "running", restarts=5, started=3600)])
    out = d.check_services(f, services_exp(web=[]), probe, target)
    x = one(out, "service.running")
    assert x.status == "warn" and "restarted 5x" in x.summary and x.fix == "berth logs web shows what happened"
    assert not by_id(out, "service.crashloop") and probe.commands == []
    # fewer restarts than the threshold, recently: fine
    f = host_facts([box("web", "running", restarts=2, started=5)])
    assert one(d.check_services(f, services_exp(web=[]), probe, target), "service.running").status == "ok"


def test_unhealthy_and_starting(target):
    f = host_facts([box("web", health="unhealthy")])
    x = one(d.check_services(f, services_exp(web=[]), FakeProbe(logs="GET /health 500"), target), "service.health")
    assert x.status == "fail" and x.summary == "web is running but its healthcheck fails"
    assert x.details == "GET /health 500"
    probed = d.Container(replace(state("web", health="unhealthy"), health_log="wget: server returned error: 500"))
    x = one(d.check_services(host_facts([probed]), services_exp(web=[]), FakeProbe(logs=""), target), "service.health")
    assert x.details == "--- the healthcheck's own output ---\nwget: server returned error: 500"  # no empty log part
    f = host_facts([box("web", health="starting")])
    x = one(d.check_services(f, services_exp(web=[]), FakeProbe(), target), "service.health")
    assert x.status == "warn" and "still starting" in x.cause


def test_container_lacks_a_variable_the_server_env_file_lacks_too(target):
    exp = services_exp(web=["DATABASE_URL", "NEW_FLAG", "SECRET_KEY"])
    exp.env_names = ["DATABASE_URL", "NEW_FLAG", "SECRET_KEY"]
    f = host_facts([box("web", env={"PATH", "DATABASE_URL", "SECRET_KEY"})],
                   envfile={"mode": "600", "has": "DATABASE_URL SECRET_KEY "})
    x = one(d.check_services(f, exp, FakeProbe(), target), "service.env")
    assert x.status == "fail"
    assert x.summary == "web (app-web-1) lacks 1 variable(s) the compose file gives it: NEW_FLAG"
    assert x.cause.startswith("the server's .env.docker has no NEW_FLAG")
    assert x.fix == "berth deploy (ships .env.docker and recreates web)"


def test_container_lacks_a_variable_the_server_env_file_has(target):
    exp = services_exp(web=["DATABASE_URL", "NEW_FLAG"])
    exp.env_names = ["DATABASE_URL", "NEW_FLAG"]
    f = host_facts([box("web", env={"DATABASE_URL"})], envfile={"mode": "600", "has": "DATABASE_URL NEW_FLAG "})
    x = one(d.check_services(f, exp, FakeProbe(), target), "service.env")
    assert x.status == "fail" and "created before these variables were set" in x.cause


def test_container_env_all_present_and_stopped_without_names_skipped(target):
    exp = services_exp(web=["A", "B"], job=["A"])
    f = host_facts([box("web", env={"A", "B", "PATH"}), box("job", "exited", exit_code=0, policy="no")])
    out = d.check_services(f, exp, FakeProbe(), target)
    envs = by_id(out, "service.env")
    assert [(x.status, x.summary) for x in envs] == [("ok", "web: all 2 variables present (names checked)")]


# --------------------------------------------------------------------------- backing services


def backing_setup(*extra: d.Container, web_networks=("app_default",), services=("web", "db", "redis")):
    web = box("web", networks=web_networks)
    f = host_facts([web, *extra])
    exp = d.Expected(services={s: {"env": [], "ports": []} for s in services},
                     db_vars={"web": [("postgres", "DATABASE_URL")]})
    return f, exp


def answer(line: str, index: int = 0) -> FakeProbe:
    """The probe's output as in_parallel prints it: `INDEX<TAB>line`."""
    return FakeProbe(lambda command: f"{index}\t{line}\n")


def test_backing_probe_command_names_the_variable_never_a_value():
    f, exp = backing_setup(box("db"))
    exp.db_vars["web"].append(("redis", "REDIS_URL"))
    probe = FakeProbe(lambda c: "1\tok redis 6379 +PONG\n0\tok db 5432 postgres\n")
    out = d.check_backing_services(f, exp, probe)
    assert [(x.id, x.status, x.summary) for x in out] == [
        ("db.reachable", "ok", "web reaches PostgreSQL at db:5432 (DATABASE_URL)"),
        ("redis.ping", "ok", "web reaches Redis at redis:6379 (REDIS_URL)"),
    ]
    (command,) = probe.commands
    assert "docker exec id-web sh -c" in command and "DATABASE_URL" in command and "REDIS_URL" in command
    assert "postgres://" not in command and PASSWORD not in command


def test_backing_no_running_app_container_no_probe():
    f = host_facts([box("web", "exited", exit_code=1)])
    exp = d.Expected(services={"web": {}}, db_vars={"web": [("postgres", "DATABASE_URL")]})
    probe = FakeProbe("0\tok db 5432\n")
    assert d.check_backing_services(f, exp, probe) == [] and probe.commands == []


def test_backing_dns_host_not_a_compose_service():
    f, exp = backing_setup()
    x = d.check_backing_services(f, exp, answer("dns mydb.internal 5432"))[0]
    assert x.status == "fail" and x.summary == "web cannot reach PostgreSQL at mydb.internal:5432 (DATABASE_URL)"
    assert "mydb.internal, which is not a service in the compose file" in x.cause
    assert "add the PostgreSQL service" in x.fix


def test_backing_dns_host_service_has_no_container():
    f, exp = backing_setup()
    x = d.check_backing_services(f, exp, answer("dns db 5432"))[0]
    assert x.cause == "no container answers to the name db: the db service is not running (no container)"
    assert "docker compose up -d db" in x.fix


def test_backing_dns_host_service_stopped():
    # `docker compose stop db`: the container exists (exited), docker still lists its networks, and its name no
    # longer resolves for the others
    f, exp = backing_setup(box("db", "exited", exit_code=0, networks=("app_default",)))
    x = d.check_backing_services(f, exp, answer("dns db 5432"))[0]
    assert "not running" in x.cause
    assert "up -d db" in x.fix


def test_backing_dns_no_shared_network_lists_both():
    f, exp = backing_setup(box("db", networks=("app_back",)), web_networks=("app_front",))
    x = d.check_backing_services(f, exp, answer("dns db 5432"))[0]
    assert "db is running but shares no network with web" in x.cause
    assert "web: app_front" in x.cause and "db: app_back" in x.cause
    assert "docker compose up -d --force-recreate db" in x.fix


def test_backing_dns_shared_network_yet_unresolved():
    f, exp = backing_setup(box("db", networks=("app_default",)))
    x = d.check_backing_services(f, exp, answer("dns db 5432"))[0]
    assert "although they share app_default" in x.cause and "--force-recreate web db" in x.fix


@pytest.mark.parametrize("line, cause_part, fix_part", [
    ("refused db 5432", "nothing accepts connections at db:5432", "berth logs db"),
    ("timeout db 5432", "connections to db:5432 time out", "firewall"),
    ("error db 5432 no answer", "db:5432 answered, but not like PostgreSQL: no answer", "points at the PostgreSQL"),
])
def test_backing_words(line, cause_part, fix_part):
    f, exp = backing_setup(box("db"))
    x = d.check_backing_services(f, exp, answer(line))[0]
    assert x.status == "fail" and cause_part in x.cause and fix_part in x.fix


def test_backing_redis_auth():
    f, exp = backing_setup(box("redis"))
    exp.db_vars = {"web": [("redis", "REDIS_URL")]}
    x = d.check_backing_services(f, exp, answer("auth redis 6379 -WRONGPASS_invalid_username-password_pair"))[0]
    assert (x.id, x.status) == ("redis.ping", "fail")
    assert x.cause == "Redis refused the credentials in REDIS_URL" and "REDIS_PASSWORD" in x.fix


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_backing_localhost_is_the_container_itself(host):
    f, exp = backing_setup(box("db"))
    for word in ("refused", "dns"):
        x = d.check_backing_services(f, exp, answer(f"{word} {host} 5432"))[0]
        assert "inside a container is the container itself" in x.cause
        assert "compose service name" in x.fix


def test_backing_unset_and_notool_are_skips():
    f, exp = backing_setup()
    x = d.check_backing_services(f, exp, answer("unset"))[0]
    assert (x.status, x.summary) == ("skip", "DATABASE_URL is not set inside web")
    x = d.check_backing_services(f, exp, answer("notool db 5432"))[0]
    assert x.status == "skip" and "neither python nor nc" in x.summary


def test_backing_garbled_or_empty_probe_output_is_a_failure_not_a_crash():
    f, exp = backing_setup()
    for out in ("", "no index here\n", "0\t\n", "Error response from daemon: container is restarting\n"):
        x = d.check_backing_services(f, exp, FakeProbe(out))[0]
        assert x.status == "fail"
    x = d.check_backing_services(f, exp, FakeProbe("0\tError response from daemon: gone\n"))[0]
    assert x.status == "fail"


# --------------------------------------------------------------------------- resources, ports, health


def test_disk_thresholds_and_one_finding_per_filesystem():
    gib = 1024 * 1024
    disk = [
        ["/dev/sda1", "100", "50", str(20 * gib), "50%", "/"],
        ["/dev/sda1", "100", "50", str(20 * gib), "50%", "/var/lib/docker"],  # same filesystem: once
        ["/dev/sdb1", "100", "90", str(5 * gib), "90%", "/data"],
        ["/dev/sdc1", "100", "95", str(5 * gib), "95%", "/big"],
        ["/dev/sdd1", "100", "10", str(gib - 1), "10%", "/small"],  # < 1 GiB free: fail at any percentage
        ["/dev/sde1", "100", "89", str(2 * gib), "89%", "/fine"],
    ]
    out = d.check_resources(host_facts(disk=disk))
    assert [(x.id, x.status, x.summary.split(":")[0]) for x in out] == [
        ("host.disk", "ok", "/"), ("host.disk", "warn", "/data"), ("host.disk", "fail", "/big"),
        ("host.disk", "fail", "/small"), ("host.disk", "ok", "/fine")]
    assert out[0].summary == "/: 50% used, 20.0 GiB free"
    assert "docker system prune" in out[2].fix and "never volumes" in out[2].fix


def test_memory():
    low = d.check_resources(host_facts(memory={"MemTotal": 1024 * 1024, "MemAvailable": 100 * 1024}))
    assert [(x.id, x.status) for x in low] == [("host.memory", "warn")]
    assert low[0].summary == "100 MiB of 1024 MiB memory available" and "137" in low[0].cause
    ok = d.check_resources(host_facts(memory={"MemTotal": 1024 * 1024, "MemAvailable": 512 * 1024}))
    assert ok[0].status == "ok"
    assert d.check_resources(host_facts(memory={"MemTotal": 1024})) == []  # no MemAvailable: nothing to say


def test_ports_open_closed_and_stopped_skipped():
    f = host_facts([box("web", ports=[(8080, "80/tcp")]), box("old", "exited", ports=[(9000, "9000/tcp")])])
    probe = FakeProbe(port_state="open")
    out = d.check_ports(f, probe)
    assert [(x.id, x.status, x.summary) for x in out] == [("ports.published", "ok", "web: port 8080 → 80/tcp answers")]
    assert len(probe.commands) == 1 and "/dev/tcp/127.0.0.1/8080" in probe.commands[0]
    x = d.check_ports(f, FakeProbe(port_state="closed"))[0]
    assert x.status == "fail" and "another port than 80" in x.cause and "0.0.0.0" in x.fix


def health(urls, fetch_answer, containers=None):
    f = host_facts(containers if containers is not None else [box("web", ports=[(8080, "80/tcp")])])
    return d.check_health_urls(f, d.Expected(health_urls=tuple(urls)), lambda url: fetch_answer)


def test_health_ok():
    x = health(["http://localhost:8080/health"], "200")[0]
    assert (x.id, x.status, x.summary) == ("health.url", "ok", "http://localhost:8080/health → 200")


def test_health_port_not_published_names_the_published_one():
    x = health(["http://localhost:8000/health"], "000error: no answer")[0]
    assert x.status == "fail"
    assert x.cause == "no container publishes port 8000; published ports: 8080 (web)"
    assert "http://localhost:8080/health" in x.fix


def test_health_port_not_published_and_nothing_published():
    x = health(["http://127.0.0.1:8000/"], "000error: no answer", containers=[box("web")])[0]
    assert "published ports: none" in x.cause and "publish the app's port" in x.fix


def test_health_404_and_500():
    x = health(["http://localhost:8080/healthz"], "404")[0]
    assert x.status == "fail" and x.cause == "the app answers on port 8080 but has no route /healthz"
    x = health(["http://localhost:8080/health"], "500")[0]
    assert "the app answers 500" in x.cause and x.fix == "read berth logs web around the time of the request"


def test_health_connection_error():
    x = health(["http://localhost:8080/health"], "000error: no answer")[0]
    assert x.status == "fail" and "nothing answers at http://localhost:8080/health" in x.cause
    assert "web publishes that port but is not answering" in x.cause
    x = health(["https://app.example.com/health"], "error: [Errno 111] Connection refused")[0]
    assert x.status == "fail" and "publishes" not in x.cause


# --------------------------------------------------------------------------- ssh key file


def key_host(path) -> Host:
    return Host("203.0.113.5", "deploy", None, path)


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_key_file_private(tmp_path, mode):
    key = tmp_path / "id.pem"
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    key.chmod(mode)
    x = d.check_key_file(key_host(key))
    assert (x.id, x.status) == ("ssh.key", "ok") and f"{mode:04o}" in x.summary


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_key_file_readable_by_others(tmp_path, mode):
    key = tmp_path / "id.pem"
    key.write_text("x")
    key.chmod(mode)
    x = d.check_key_file(key_host(key))
    assert x.status == "fail" and f"mode {mode:04o}" in x.summary and "UNPROTECTED" in x.cause
    assert x.fix == f"chmod 600 {key}"


def test_key_file_missing_and_unset(tmp_path):
    x = d.check_key_file(key_host(tmp_path / "nope.pem"))
    assert x.status == "fail" and "does not exist" in x.summary and "PEM_KEY_PATH" in x.fix
    assert d.check_key_file(key_host(None)).status == "ok"


# --------------------------------------------------------------------------- the gather script (text)


def run_sh(script: str, *args: str, env=None, cwd=None, timeout=10) -> subprocess.CompletedProcess:
    return subprocess.run([SH, "-c", script, "sh", *args], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=timeout)


NASTY_DIR = "/srv/my app's \"dir\" $(touch PWNED) `x`"


@pytest.mark.parametrize("app_dir", ["~/shop", "/srv/shop", NASTY_DIR, "~/it's here"])
def test_gather_is_valid_sh_without_set_e(app_dir):
    script = cmd.gather(app_dir, ".env.docker", "shop", "git@github.com:acme/shop.git",
                        ["DATABASE_URL", "SECRET_KEY"], ".berth/shop")
    check = subprocess.run([SH, "-n"], input=script, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    assert "set -e" not in script
    assert [line[5:] for line in script.splitlines() if line.startswith("echo @@")] == [
        "@@facts", "@@repo", "@@envfile", "@@containers", "@@details", "@@disk", "@@memory", "@@current", "@@lock", "@@end"]


def test_gather_with_no_names_and_no_remote_is_valid_sh():
    script = cmd.gather("~/shop", ".env.docker", "shop", None, [], ".berth/shop")
    check = subprocess.run([SH, "-n"], input=script, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def test_remote_path_expands_home_and_quotes_the_rest(tmp_path):
    env = {"HOME": "/home/deploy", "PATH": os.environ["PATH"]}
    out = run_sh(f"printf '%s|' {cmd.remote_path('~/x y')} {cmd.remote_path('~')} {cmd.remote_path(NASTY_DIR)}",
                 env=env, cwd=tmp_path)
    assert out.stdout.split("|")[:3] == ["/home/deploy/x y", "/home/deploy", NASTY_DIR]
    assert not (tmp_path / "PWNED").exists()


# --------------------------------------------------------------------------- the gather script, run here


TOOLS = ["sh", "git", "timeout", "stat", "sha256sum", "cut", "grep", "tail", "head", "wc", "id", "df", "cat",
         "sed", "tr", "printf", "env"]


def toolbox(tmp_path: Path, stubs: dict[str, str]) -> str:
    """A PATH with only the tools the gather script needs, plus stub programs (no real docker, no real ssh)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in TOOLS:
        found = shutil.which(tool)
        if found and not (bin_dir / tool).exists():
            (bin_dir / tool).symlink_to(found)
    for name, body in stubs.items():
        path = bin_dir / name
        path.write_text("#!/bin/sh\n" + body)
        path.chmod(0o755)
    return str(bin_dir)


DOCKER_DOWN = ('echo "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. '
               'Is the docker daemon running?" >&2\nexit 1\n')


def gather_here(tmp_path, sub_env, app_dir: Path, stubs, remote=None, env_names=("DATABASE_URL", "SECRET_KEY"),
                home=None):
    home = home or tmp_path / "home"
    home.mkdir(exist_ok=True)
    script = cmd.gather(str(app_dir), ".env.docker", "shop", remote, list(env_names), ".berth/shop")
    env = sub_env(HOME=str(home), PATH=toolbox(tmp_path, stubs))
    env.pop("DOCKER_HOST", None)
    proc = subprocess.run([SH, "-s"], input=script, capture_output=True, text=True, env=env, timeout=30,
                          cwd=tmp_path)
    return d.parse_gather(proc.stdout, str(app_dir)), proc


def test_gather_run_here_docker_down_dirty_repo_drift_env_mode(tmp_path, sub_env, run_git, new_repo, target):
    app = new_repo(tmp_path / "my app's \"dir\" $(touch PWNED)")
    bare = new_repo(tmp_path / "remote.git", bare=True)
    (app / "README").write_text("hello\n")
    run_git(app, "add", "-A")
    run_git(app, "commit", "-qm", "one")
    run_git(app, "remote", "add", "origin", str(bare))
    run_git(app, "push", "-q", "origin", "HEAD:refs/heads/main")  # (so HEAD is on a remote branch)
    head = run_git(app, "rev-parse", "HEAD")
    (app / "README").write_text("edited on the server\n")  # dirty
    env_file = app / ".env.docker"
    env_file.write_text(f"DATABASE_URL=postgres://u:{PASSWORD}@db/app\n  export SECRET_KEY = x\nSECRET_KEYS=no\n")
    env_file.chmod(0o644)
    home = tmp_path / "home"
    (home / ".berth/shop").mkdir(parents=True)
    # as berth writes them: JSON without a final newline
    (home / ".berth/shop/current.json").write_text('{"commit": "%s"}' % ("9" * 40))
    (home / ".berth/shop/lock").mkdir()
    (home / ".berth/shop/lock/owner.json").write_text('{"who": "ana", "command": "deploy"}')

    f, proc = gather_here(tmp_path, sub_env, app, {"docker": DOCKER_DOWN},
                          env_names=("DATABASE_URL", "SECRET_KEY", "MISSING_ONE"))
    assert PASSWORD not in proc.stdout + proc.stderr  # only a checksum and names leave the env file
    assert f.current.to_record() == {"commit": "9" * 40} and f.lock == {"who": "ana", "command": "deploy"}
    assert not (tmp_path / "PWNED").exists()
    assert f.facts["home"] == str(home) and f.facts["docker_client"] == "yes" and "docker" not in f.facts
    assert "Cannot connect to the Docker daemon" in f.facts["docker_error"]
    assert "compose" not in f.facts
    assert d.check_docker(f).summary == "the docker daemon does not answer at unix:///var/run/docker.sock"
    assert d.check_compose(f).status == "fail"
    assert f.repo["present"] == "yes" and f.repo["head"] == head and f.repo["origin"] == str(bare)
    assert int(f.repo["dirty"]) == 1 and f.repo["remote"] == "ok"
    repo = {x.id: x for x in d.check_repo(f, target)}
    assert repo["repo.clean"].status == "warn" and repo["repo.commit"].status == "warn"
    assert repo["repo.remote"].status == "ok"
    assert f.envfile["mode"] == "644"
    assert f.envfile["sha256"] == hashlib.sha256(env_file.read_bytes()).hexdigest()
    assert f.envfile["has"].split() == ["DATABASE_URL", "SECRET_KEY"]  # SECRET_KEYS is not SECRET_KEY
    exp = d.Expected(env_names=["DATABASE_URL", "SECRET_KEY", "MISSING_ONE"])
    env_checks = {x.id: x for x in d.check_env_file(f, exp, target)}
    assert env_checks["env.mode"].status == "warn"
    assert env_checks["env.file"].summary == "the server's .env.docker lacks MISSING_ONE"
    assert f.containers == [] and f.current.to_record() == {"commit": "9" * 40}
    assert f.disk and f.memory.get("MemTotal", 0) > 0


def test_gather_run_here_shows_no_origin_credentials_and_tests_the_deploy_url(tmp_path, sub_env, run_git, new_repo,
                                                                              target):
    # the review's finding 8: doctor printed the server's origin with its token; and since berth deploy now
    # fetches from its own URL (leaving a different origin alone), that URL is the one doctor tries
    token = "ghp_R3alT0kenR3alT0kenR3alT0ken0000"
    bare = new_repo(tmp_path / "remote.git", bare=True)
    app = new_repo(tmp_path / "app")
    (app / "README").write_text("hello\n")
    run_git(app, "add", "-A")
    run_git(app, "commit", "-qm", "one")
    run_git(app, "remote", "add", "origin", f"https://deploy:{token}@127.0.0.1:9/org/app.git")
    run_git(app, "commit", "-q", "--allow-empty", "-m", "made on the server")
    f, proc = gather_here(tmp_path, sub_env, app, {"docker": DOCKER_DOWN}, remote=f"https://x:{token}@h/y.git")
    assert token not in proc.stdout + proc.stderr
    assert f.repo["origin"] == "https://127.0.0.1:9/org/app.git" and f.repo["origin_is"] == "other"
    assert f.repo["server_commits"] == "2"  # no remote branch holds either commit
    assert "remote_error" in f.repo  # it tried https://h/y.git (without credentials), not the origin
    script = cmd.gather(str(app), ".env.docker", "shop", str(bare), [], ".berth/shop")
    assert "ls-remote -- " in script
    f, _ = gather_here(tmp_path, sub_env, app, {"docker": DOCKER_DOWN}, remote=str(bare))
    assert f.repo["remote"] == "ok"
    repo = {x.id: x for x in d.check_repo(f, target)}
    assert repo["repo.server-commits"].status == "warn" and token not in repo["repo.cloned"].summary


def test_gather_run_here_docker_missing_and_no_checkout(tmp_path, sub_env, target):
    f, _ = gather_here(tmp_path, sub_env, tmp_path / "nothing here", {}, remote=None)
    assert d.check_docker(f).summary == "docker is not installed on the server"
    assert f.repo == {"present": "no"}
    assert f.envfile == {"missing": "yes"}
    (tmp_path / "copied").mkdir()
    f, _ = gather_here(tmp_path, sub_env, tmp_path / "copied", {})
    assert f.repo["present"] == "not-a-repo"


SSH_NO_KEY = 'echo "git@github.com: Permission denied (publickey)." >&2\nexit 255\n'
SSH_NO_DNS = 'echo "ssh: Could not resolve hostname github.com: Name or service not known" >&2\nexit 255\n'
SSH_NO_REPO = 'echo "ERROR: Repository not found." >&2\nexit 1\n'


@pytest.mark.parametrize("ssh, cause_part", [
    (SSH_NO_KEY, "no credentials"),
    (SSH_NO_DNS, "cannot resolve"),
    (SSH_NO_REPO, "remote URL is wrong"),
])
def test_gather_run_here_ssh_remote_errors_keep_their_cause(tmp_path, sub_env, target, ssh, cause_part):
    f, _ = gather_here(tmp_path, sub_env, tmp_path / "absent", {"docker": DOCKER_DOWN, "ssh": ssh},
                       remote="git@github.com:acme/shop.git")
    x = one(d.check_repo(f, target), "repo.remote")
    assert x.status == "fail"
    assert cause_part in x.cause, (f.repo, x.cause)


DOCKER_UP = r'''
case "$1 $2" in
  "version --format") echo 27.3.1;;
  "compose version") echo 2.29.7;;
  "ps --all") printf 'aaa\nbbb\n';;
  "info --format") echo "$HOME";;
  "inspect --format")
    shift 3
    [ "$*" = "aaa bbb" ] || { echo "bad ids: $*" >&2; exit 1; }
    case "$FMT" in *com.docker.compose.service*) cat "$STUBS/containers";; *) cat "$STUBS/details";; esac;;
  *) exit 1;;
esac
'''


def test_gather_run_here_with_containers(tmp_path, sub_env, target):
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    (stubs / "containers").write_text(
        inspect_line("web", "shop-web-1", "aaa", "running", "healthy") + "\n"
        + inspect_line("db", "shop-db-1", "bbb", "exited", "", 143) + "\n")
    (stubs / "details").write_text("aaa\tshop_default \t8080/80/tcp \tPATH DATABASE_URL \n"
                                   "bbb\tshop_default \t\tPATH POSTGRES_PASSWORD \n")
    # the stub sees the --format argument as $3: remember it, then dispatch on it
    docker = DOCKER_UP.replace('case "$1 $2" in', f'STUBS={str(stubs)!r}; FMT="$3"\ncase "$1 $2" in', 1)
    f, proc = gather_here(tmp_path, sub_env, tmp_path / "absent", {"docker": docker})
    assert "bad ids" not in proc.stderr
    assert d.check_docker(f).status == "ok" and d.check_compose(f).summary == "docker compose 2.29.7"
    web = f.by_service()["web"][0]
    assert web.ports == [(8080, "80/tcp")] and web.env_names == {"PATH", "DATABASE_URL"}
    assert f.by_service()["db"][0].state.exit_code == 143
    assert len(f.disk) == 2  # $HOME and docker's root dir...
    assert len(by_id(d.check_resources(f), "host.disk")) == 1  # ...on one filesystem: one finding


# --------------------------------------------------------------------------- in_parallel / split_parallel


def test_in_parallel_round_trip():
    commands = ["echo a; echo b", "echo to-stderr >&2", "printf 'x\\ty\\n'", "true", "echo 'it''s'"]
    out = run_sh(cmd.in_parallel(commands)).stdout
    assert cmd.split_parallel(out, len(commands)) == ["a\nb", "to-stderr", "x\ty", "", "its"]


def test_split_parallel_ignores_foreign_lines():
    out = "1\tsecond\nnoise\n7\tout of range\nx\tnot an index\n0\tfirst\n1\tsecond again\n"
    assert cmd.split_parallel(out, 2) == ["first", "second\nsecond again"]


def test_probe_service_quotes_and_carries_only_names():
    command = cmd.probe_service("abc123", "postgres", "DATABASE_URL")
    assert command.startswith("docker exec abc123 sh -c ")
    assert command.endswith(" 2>&1")
    check = subprocess.run([SH, "-n"], input=command, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    # the variable travels as a quoted name; probe_service has no parameter a value could come through
    assert " postgres DATABASE_URL " in command


# --------------------------------------------------------------------------- the in-container probe


class TinyServer:
    """A TCP server on 127.0.0.1 that answers each received chunk with the next canned reply."""

    def __init__(self, *replies: bytes):
        self.replies = list(replies)
        self.received: list[bytes] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(3)
            for reply in self.replies:
                try:
                    data = conn.recv(4096)
                except OSError:
                    return
                self.received.append(data)
                conn.sendall(reply)

    def close(self):
        self.sock.close()


@pytest.fixture
def server():
    made = []

    def make(*replies):
        made.append(TinyServer(*replies))
        return made[-1]

    yield make
    for s in made:
        s.close()


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def probe_py(kind: str, url: str | None, name: str = "DATABASE_URL") -> str:
    """PROBE_PY as `python3 -c PROBE_PY KIND NAME` runs it, but in this process (an interpreter start per case
    would cost more than the rest of the file); test_probe_command_run_through_a_fake_docker_exec runs it for real."""
    saved_argv, saved_value = sys.argv, os.environ.pop(name, None)
    if url is not None:
        os.environ[name] = url
    sys.argv = ["-c", kind, name]
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            try:
                exec(compile(cmd.PROBE_PY, "<PROBE_PY>", "exec"), {"__name__": "__main__"})
            except SystemExit:
                pass
    finally:
        sys.argv = saved_argv
        os.environ.pop(name, None)
        if saved_value is not None:
            os.environ[name] = saved_value
    out = buf.getvalue()
    assert PASSWORD not in out
    return out.strip()


def test_probe_py_postgres_ok(server):
    s = server(b"N")
    assert probe_py("postgres", f"postgres://app:{PASSWORD}@127.0.0.1:{s.port}/app") == \
        f"ok 127.0.0.1 {s.port} postgres"
    assert s.received == [b"\x00\x00\x00\x08\x04\xd2\x16\x2f"]  # an SSLRequest: no credentials sent


def test_probe_py_postgres_wrong_service(server):
    s = server(b"")
    assert probe_py("postgres", f"postgres://u:{PASSWORD}@127.0.0.1:{s.port}/x").startswith("error 127.0.0.1")


def test_probe_py_refused_and_dns():
    port = closed_port()
    assert probe_py("postgres", f"postgresql+asyncpg://u:{PASSWORD}@127.0.0.1:{port}/db") == f"refused 127.0.0.1 {port}"
    assert probe_py("postgres", f"postgres://u:{PASSWORD}@nonexistent.invalid/db") == "dns nonexistent.invalid 5432"


def test_probe_py_unset():
    assert probe_py("redis", None, "REDIS_URL") == "unset"
    assert probe_py("redis", "", "REDIS_URL") == "unset"


def test_probe_py_redis_pong(server):
    s = server(b"+PONG\r\n")
    assert probe_py("redis", f"redis://127.0.0.1:{s.port}/0", "REDIS_URL") == f"ok 127.0.0.1 {s.port} +PONG"


def test_probe_py_redis_noauth(server):
    s = server(b"-NOAUTH Authentication required.\r\n")
    out = probe_py("redis", f"redis://127.0.0.1:{s.port}/0", "REDIS_URL")
    assert out == f"auth 127.0.0.1 {s.port} -NOAUTH_Authentication_required."


def test_probe_py_redis_password_ok_and_wrong(server):
    s = server(b"+OK\r\n", b"+PONG\r\n")
    assert probe_py("redis", f"redis://:{PASSWORD}@127.0.0.1:{s.port}/0", "REDIS_URL").startswith("ok ")
    assert s.received[0] == b"*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n" % (len(PASSWORD), PASSWORD.encode())
    s = server(b"-WRONGPASS invalid username-password pair or user is disabled.\r\n")
    out = probe_py("redis", f"redis://default:{PASSWORD}@127.0.0.1:{s.port}/0", "REDIS_URL")
    assert out.startswith(f"auth 127.0.0.1 {s.port} -WRONGPASS")
    s = server(b"-WRONGPASS nope\r\n")
    probe_py("redis", f"redis://alice:{PASSWORD}@127.0.0.1:{s.port}/0", "REDIS_URL")
    assert s.received[0].startswith(b"*3\r\n$4\r\nAUTH\r\n$5\r\nalice\r\n")  # an ACL user is sent along


def test_probe_py_answers_parse_into_findings(server):
    """The probe's real output, fed through check_backing_services, gives the right finding."""
    s = server(b"-NOAUTH Authentication required.\r\n")
    line = probe_py("redis", f"redis://127.0.0.1:{s.port}/0", "REDIS_URL")
    f, exp = backing_setup(box("redis"))
    exp.db_vars = {"web": [("redis", "REDIS_URL")]}
    x = d.check_backing_services(f, exp, FakeProbe(lambda c: f"0\t{line}\n"))[0]
    assert x.status == "fail" and x.summary == f"web cannot reach Redis at 127.0.0.1:{s.port} (REDIS_URL)"


def probe_sh(tmp_path: Path, kind: str, url: str | None, name="DATABASE_URL", with_python=False) -> str:
    """PROBE_SH in a PATH with no python and no nc (unless with_python): the shell's own URL parsing."""
    bin_dir = tmp_path / ("py" if with_python else "empty")
    bin_dir.mkdir(exist_ok=True)
    if with_python and not (bin_dir / "python3").exists():
        (bin_dir / "python3").symlink_to(sys.executable)
    env = {"PATH": str(bin_dir)}
    if url is not None:
        env[name] = url
    proc = subprocess.run([SH, "-c", cmd.PROBE_SH, "probe", kind, name, cmd.PROBE_PY if with_python else ""],
                          capture_output=True, text=True, env=env, timeout=10)
    out = proc.stdout + proc.stderr
    assert PASSWORD not in out
    return out.strip()


@pytest.mark.parametrize("kind, url, expected", [
    ("postgres", f"postgres://u:{PASSWORD}@127.0.0.1:1/db", "notool 127.0.0.1 1"),
    ("postgres", f"postgres://u:{PASSWORD}@db/app", "notool db 5432"),
    ("postgres", f"postgresql://u:{PASSWORD}@db.example.com:5433/app?sslmode=require", "notool db.example.com 5433"),
    ("postgres", f"postgres://u:{PASSWORD}@db?sslmode=disable", "notool db 5432"),
    ("postgres", "postgres://u:p@ss:w/rd@db:6543/app", "notool db 6543"),
    ("redis", f"redis://:{PASSWORD}@cache:6380/0", "notool cache 6380"),
    ("redis", "redis://cache", "notool cache 6379"),
    ("redis", "rediss://default:x@cache.example.com:25061", "notool cache.example.com 25061"),
    ("redis", None, "unset"),
])
def test_probe_sh_parses_host_and_port(tmp_path, kind, url, expected):
    assert probe_sh(tmp_path, kind, url, "DATABASE_URL") == expected


def test_probe_command_run_through_a_fake_docker_exec(tmp_path, server):
    """probe_service's whole command line, with `docker exec ID` replaced by running the rest here."""
    s = server(b"+PONG\r\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text('#!/bin/sh\nshift 2\nexec "$@"\n')  # docker exec ID CMD... → CMD...
    (bin_dir / "docker").chmod(0o755)
    (bin_dir / "python3").symlink_to(sys.executable)
    for tool in ("sh", "sed"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    env = {"PATH": str(bin_dir), "REDIS_URL": f"redis://127.0.0.1:{s.port}/0",
           "DATABASE_URL": f"postgres://u:{PASSWORD}@127.0.0.1:{closed_port()}/db"}
    script = cmd.in_parallel([cmd.probe_service("cid", "redis", "REDIS_URL"),
                              cmd.probe_service("cid", "postgres", "DATABASE_URL")])
    out = run_sh(script, env=env).stdout
    assert PASSWORD not in out
    redis, pg = cmd.split_parallel(out, 2)
    assert redis == f"ok 127.0.0.1 {s.port} +PONG"
    assert pg.startswith("refused 127.0.0.1 ")


# --------------------------------------------------------------------------- render / mask


def row(*findings: d.Finding) -> dict:
    return {"host": "deploy@203.0.113.5", "environment": "staging", "ok": True,
            "checks": [asdict(x) for x in findings]}


def sample_findings() -> list[d.Finding]:
    return [
        d.Finding("ssh.key", "ok", "key fine"),
        d.Finding("ssh.connect", "ok", "logged in as deploy in 0.3s"),
        d.Finding("docker.daemon", "ok", "docker engine 27.3.1"),
        d.Finding("repo.cloned", "ok", "~/app at abcdef0"),
        d.Finding("env.mode", "warn", "mode 644", cause="others can read", fix="chmod 600 x"),
        d.Finding("service.crashloop", "fail", "web is crash-looping", cause="it exits", fix="fix it",
                  details="\n".join(f"log {i}" for i in range(25))),
        d.Finding("db.reachable", "skip", "cannot probe", cause="hidden for skips"),
    ]


def test_render_hides_ok_checks_unless_verbose():
    text = d.render([row(*sample_findings())])
    lines = text.splitlines()
    assert lines[0] == "deploy@203.0.113.5 (staging)"
    assert "ssh.connect" in text and "docker.daemon" in text  # always shown
    assert "ssh.key" not in text and "repo.cloned" not in text
    assert "  FAIL  service.crashloop  web is crash-looping" in lines
    assert "        cause: it exits" in lines and "        fix:   fix it" in lines
    assert "        cause: others can read" in lines
    # the last LOG_LINES lines of details, for a failure
    shown = [line for line in lines if line.startswith("        | ")]
    assert shown == [f"        | log {i}" for i in range(5, 25)]
    assert "  skip  db.reachable" in text and "hidden for skips" not in text
    assert "  4 ok, 1 warning(s), 1 failure(s) (-v lists the ok checks)" in lines
    assert text.endswith("\n") and not text.endswith("\n\n")


def test_render_verbose_lists_everything():
    text = d.render([row(*sample_findings()), row(d.Finding("ssh.connect", "fail", "cannot log in", cause="c"))],
                    verbose=True)
    assert "ssh.key" in text and "repo.cloned" in text
    assert "  4 ok, 1 warning(s), 1 failure(s)" in text.splitlines()
    assert "(-v lists" not in text
    assert "  0 ok, 0 warning(s), 1 failure(s)" in text.splitlines()
    assert text.count("deploy@203.0.113.5 (staging)") == 2


def test_render_ok_details_not_shown():
    text = d.render([row(d.Finding("docker.daemon", "ok", "fine", cause="x", fix="y", details="secret-ish log"))],
                    verbose=True)
    assert "cause:" not in text and "fix:" not in text and "secret-ish" not in text


def test_mask_finding_hides_secret_everywhere():
    x = d.Finding("service.crashloop", "fail", f"summary {PASSWORD}", cause=f"cause {PASSWORD}",
                  fix=f"fix {PASSWORD}", details=f"line\npassword={PASSWORD} rejected")
    masked = d.mask_finding(x, Masker([PASSWORD]))
    assert PASSWORD not in str(asdict(masked))
    assert (masked.id, masked.status) == ("service.crashloop", "fail")
    assert masked.summary == "summary ****" and masked.details == "line\npassword=**** rejected"


# --------------------------------------------------------------------------- expected_from


def test_expected_from_reads_names_ports_and_backing_urls_without_values(tmp_path):
    root = tmp_path / "shop"
    root.mkdir()
    (root / ".env").write_text("ENVIRONMENT=staging\nSERVER_IP=203.0.113.5\nSERVER_USER=deploy\n"
                               "HEALTH_URL=http://localhost:8080/health\n")
    (root / ".env.docker").write_text(
        f"DATABASE_URL=postgresql+asyncpg://app:{PASSWORD}@db:5432/app\nREDIS_URL=redis://:{PASSWORD}@redis/0\n"
        "SECRET_KEY=" + PASSWORD + "\n")
    (root / "docker-compose.yml").write_text(
        "services:\n"
        "  web:\n    image: shop\n    ports: ['8080:80']\n"
        "    environment:\n      DATABASE_URL: ${DATABASE_URL}\n      REDIS_URL: ${REDIS_URL}\n"
        "      SECRET_KEY: ${SECRET_KEY}\n"
        "  db:\n    image: postgres:16\n"
        "  redis:\n    image: redis:7\n")
    exp = d.expected_from(load_target(root))
    assert exp.problem is None
    assert exp.env_names == ["DATABASE_URL", "REDIS_URL", "SECRET_KEY"]
    assert exp.services["web"] == {"env": ["DATABASE_URL", "REDIS_URL", "SECRET_KEY"], "ports": [8080]}
    assert exp.db_vars == {"web": [("postgres", "DATABASE_URL"), ("redis", "REDIS_URL")]}
    assert exp.url_hosts == {("web", "DATABASE_URL"): ("db", 5432), ("web", "REDIS_URL"): ("redis", None)}
    assert exp.health_urls == ("http://localhost:8080/health",)
    assert PASSWORD not in repr(exp)



def test_health_url_naming_the_server_address_gets_the_port_hint():
    f = host_facts([box("web", ports=((8080, "8080/tcp"),))])
    exp = d.Expected(health_urls=("http://203.0.113.5:8081/health",))
    x = d.check_health_urls(f, exp, lambda url: "error: connection refused", frozenset({"203.0.113.5"}))[0]
    assert x.status == "fail" and "no container publishes port 8081" in x.cause
    assert "http://203.0.113.5:8080/health" in x.fix


def test_lock_free_held_manual_and_stale():
    from datetime import datetime, timezone

    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert one(d.check_lock(host_facts()), "deploy.lock").status == "ok"
    running = host_facts()
    running.lock = {"who": "ana", "machine": "elsewhere", "pid": 4242, "command": "deploy", "since": now}
    x = one(d.check_lock(running), "deploy.lock")
    assert x.status == "warn" and "a deploy is running: ana" in x.summary and "--lock-wait" in x.fix
    manual = host_facts()
    manual.lock = {"who": "ana", "machine": "elsewhere", "pid": None, "command": "manual lock",
                   "since": "2020-01-01T00:00:00Z", "message": "db maintenance"}
    x = one(d.check_lock(manual), "deploy.lock")
    assert x.status == "warn" and "locked by hand" in x.summary and "db maintenance" in x.summary
    stale = host_facts()
    stale.lock = {"who": "ana", "machine": "elsewhere", "pid": 4242, "command": "deploy",
                  "since": "2020-01-01T00:00:00Z"}
    x = one(d.check_lock(stale), "deploy.lock")
    assert x.status == "fail" and "h old" in x.cause and x.fix.endswith("berth lock release --force")


def test_parse_gather_reads_the_lock_owner():
    out = "@@facts\ndocker=27.3.1\n@@lock\n{\"who\": \"ana\", \"command\": \"deploy\"}\n@@end\n"
    assert d.parse_gather(out, "~/app").lock == {"who": "ana", "command": "deploy"}
    assert d.parse_gather("@@facts\n@@lock\n@@end\n", "~/app").lock is None


def test_health_url_when_docker_is_down_blames_docker_not_the_port():
    f = host_facts([], facts={"docker_error": "Cannot connect to the Docker daemon", "docker_client": "yes"})
    x = d.check_health_urls(f, d.Expected(health_urls=("http://localhost:8080/health",)),
                            lambda url: "error: connection refused")[0]
    assert x.status == "fail" and "docker daemon does not answer" in x.cause and "publish" not in x.fix


def test_health_url_port_declared_by_a_service_that_is_not_running():
    exp = d.Expected(health_urls=("http://localhost:8080/health",), services={"web": {"env": [], "ports": [8080]}})
    x = d.check_health_urls(host_facts([]), exp, lambda url: "error: connection refused")[0]
    assert "web should publish port 8080, but its container is not running" in x.cause


# --------------------------------------------------------------------------- berth's proxy (proxy = true)


def proxy_config(*names: str) -> str:
    from berth.model.compose.rollout import Route
    from berth.remote.commands import proxy

    return proxy.caddyfile([Route("web", "", 8080, 8080)], {"web": list(names)})


def test_the_proxy_is_not_taken_for_an_orphan_when_it_is_on(target):
    f = host_facts([box("web"), box("berth-proxy", ports=[(8080, "8080/tcp")])])
    off = d.check_services(f, services_exp(web=[]), FakeProbe(), target)
    assert [x.id for x in off] == ["service.orphan", "service.running"]  # proxy off: it is an orphan
    (target.root / ".env").write_text((target.root / ".env").read_text() + "BERTH_PROXY=true\n")
    on = d.check_services(f, services_exp(web=[]), FakeProbe(), load_target(target.root))
    assert [x.id for x in on] == ["service.running"]  # check_proxy looks at it


def test_proxy_findings_name_what_is_wrong():
    running = host_facts([box("web", name="app-web-2"), box("berth-proxy", ports=[(8080, "8080/tcp")],
                                                              name="app-berth-proxy-1")])
    out = d.check_proxy(running, proxy_config("app-web-2", "app-web-1"))
    assert [(x.id, x.status) for x in out] == [("proxy.running", "ok"), ("proxy.upstream", "ok")]
    assert out[0].summary == "berth's proxy runs, on port(s) 8080" and out[1].summary.startswith(":8080 → app-web-2")
    gone = d.check_proxy(running, proxy_config("app-web-7"))
    assert (gone[1].status, gone[1].summary) == ("fail", "the proxy sends :8080 to app-web-7, which is gone")
    stopped = d.check_proxy(host_facts([box("berth-proxy", "exited", exit_code=1, name="app-berth-proxy-1")]), "")
    assert stopped[0].status == "fail" and "docker logs --tail 50 app-berth-proxy-1" in stopped[0].fix
    assert d.check_proxy(host_facts([box("web")]), "")[0].summary == "berth's proxy is not running"


def https_config(upstream: str = "app-web-2") -> str:
    from berth.configuration.target import Tls
    from berth.model.compose.rollout import Site
    from berth.remote.commands import proxy

    return proxy.caddyfile([], {"web": [upstream]}, [Site("web", ("app.example.com",), 8080)], Tls())


def test_proxy_certificate_findings_read_the_certificates_the_proxy_holds(tmp_path):
    import shutil
    import subprocess
    from datetime import datetime, timedelta, timezone

    if shutil.which("openssl") is None:
        pytest.skip("needs openssl")
    subprocess.run(["openssl", "req", "-x509", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-keyout", str(tmp_path / "k"), "-out", str(tmp_path / "c"), "-days", "90",
                    "-subj", "/CN=app.example.com"], check=True, capture_output=True)
    pem = (tmp_path / "c").read_text()
    f = host_facts([box("web", name="app-web-2"), box("berth-proxy", ports=[(443, "443/tcp")], name="app-berth-proxy-1")])
    asked = []

    def probe(command: str) -> str:
        asked.append(command)
        return f"@@ app.example.com\n{pem}" if "certificates" in command else ""

    out = d.check_proxy(f, https_config(), probe)
    assert [(x.id, x.status) for x in out] == [("proxy.running", "ok"), ("proxy.upstream", "ok"),
                                               ("proxy.certificate", "ok")]
    assert out[1].summary.startswith("https://app.example.com → app-web-2")
    assert out[2].summary.startswith("app.example.com: certificate valid until ")
    assert "docker exec app-berth-proxy-1 sh -c" in asked[0]
    ends = d.check_certificate("app.example.com", [pem], now=datetime.now(timezone.utc) + timedelta(days=80))
    assert ends.status == "warn" and "renewals are failing" in ends.cause
    ended = d.check_certificate("app.example.com", [pem], now=datetime.now(timezone.utc) + timedelta(days=91))
    assert ended.status == "fail" and "ended on" in ended.summary


def test_proxy_certificate_missing_shows_what_the_acme_server_said():
    f = host_facts([box("web", name="app-web-2"), box("berth-proxy", ports=[(443, "443/tcp")], name="app-berth-proxy-1")])
    said = ('{"level":"error","msg":"could not get certificate from issuer","identifier":"app.example.com",'
            '"error":"HTTP 403 urn:ietf:params:acme:error:unauthorized"}')

    def probe(command: str) -> str:
        return said if "docker logs" in command else ""

    finding = d.check_proxy(f, https_config(), probe)[-1]
    assert (finding.id, finding.status) == ("proxy.certificate", "fail")
    assert finding.summary == "app.example.com: the proxy holds no certificate for it"
    assert "acme:error:unauthorized" in finding.cause and "ports 80 and 443" in finding.fix


def test_a_recreated_service_behind_a_domain_is_an_upstream_by_its_service_name():
    f = host_facts([box("web", name="app-web-1"), box("berth-proxy", ports=[(443, "443/tcp")], name="app-berth-proxy-1")])
    out = d.check_proxy(f, https_config("web"))
    assert (out[1].id, out[1].status) == ("proxy.upstream", "ok") and "→ web" in out[1].summary


def test_render_of_several_hosts_starts_with_one_line_per_host_worst_first():
    healthy = {**row(d.Finding("ssh.connect", "ok", "logged in")), "host": "h1"}
    warned = {**row(d.Finding("env.mode", "warn", "mode 644")), "host": "h2"}
    broken = {**row(*sample_findings()), "host": "h3"}
    lines = d.render([healthy, warned, broken]).splitlines()
    assert lines[:5] == [
        "fleet: 3 hosts",
        "  FAIL  h3                   1 failure(s), 1 warning(s) — service.crashloop: web is crash-looping",
        "  warn  h2                   0 failure(s), 1 warning(s) — env.mode: mode 644",
        "  ok    h1                   all checks ok",
        "",
    ]
    assert lines[5] == "h1 (staging)"  # then each host's details, in the hosts' order
    assert not d.render([healthy]).startswith("fleet:")
