"""The deploy and rollback paths, in process: the real pipeline, check and command builders against a
scripted transport (tests/unit/deploy/fake_host.py) instead of SSH. What the sandbox tier proves on
real servers, this tier proves for each failure path in milliseconds; the sandbox keeps the proof that
the commands work on a real sshd, git and docker engine."""

from __future__ import annotations

import os
import re

import pytest

from berth.configuration.target import load_target
from berth.deploy import lock as lock_stage
from berth.deploy.pipeline import DeployOptions, run_deploy
from berth.deploy.rollback import run_rollback
from berth.errors import NEEDS_A_PERSON, BerthError
from berth.remote.commands import lock as lock_commands
from berth.remote.engines.compose import in_dir
from berth.secrets.masking import Masker
from berth.ui.output import StepPrinter
from tests.unit.deploy.fake_host import FakeHost

TOML_WITH_HOOK = '[defaults]\npre_deploy = ["./manage.py migrate"]\n'


def deploy(project, host: FakeHost, **options):
    """run_deploy on the project's target against `host`: (outcome, the BerthError or None)."""
    target = load_target(project.root, None, ())
    outcome: dict = {}
    try:
        run_deploy(target, DeployOptions(**options), StepPrinter(Masker()), outcome, transport=host.transport)
    except BerthError as exc:
        return outcome, exc
    return outcome, None


def rollback(project, host: FakeHost, wanted=None):
    target = load_target(project.root, None, ())
    outcome: dict = {}
    try:
        run_rollback(target, wanted, DeployOptions(), StepPrinter(Masker()), outcome, transport=host.transport)
    except BerthError as exc:
        return outcome, exc
    return outcome, None


def new_commit(project, env: str | None = None, message: str = "change") -> str:
    project.write("CHANGELOG", f"{message}\n")
    if env is not None:
        project.write(".env.docker", env)
    project.commit(message)
    project.push()
    return project.head()


def steps(outcome) -> list[str]:
    return [s["step"] for s in outcome["steps"]]


def test_a_first_deploy_runs_every_step_records_the_release_and_unlocks(project):
    host = FakeHost()
    outcome, error = deploy(project, host)
    assert error is None, error and error.paragraph()
    assert steps(outcome) == ["check", "connect", "lock", "preflight", "sync", "env", "build", "deploy", "verify",
                              "record"]
    assert host.head == project.head() and host.env == (project.root / ".env.docker").read_bytes()
    assert [r["result"] for r in host.history] == ["ok"] and host.current["commit"] == project.head()
    assert host.current["images"]["web"]["id"] == host.containers["web"].image_id
    assert host.lock is None and host.events() == ["deploy"]
    assert outcome["hosts"][0]["state"] == "deployed"
    assert host.sent() == ["facts", "lock", "history", "preflight", "sync", "env", "build", "up", "inspect", "record",
                           "keep", "audit", "unlock"]
    assert host.conn.calls[5][1] == host.env  # the env file went on stdin, never in a script


def test_a_redeploy_of_the_running_release_builds_nothing_and_restarts_nothing(project):
    host = FakeHost()
    deploy(project, host)
    ups, builds = host.ups, list(host.built)
    outcome, error = deploy(project, host)
    assert error is None
    assert host.ups == ups and host.built == builds  # no `up`, no build
    deploy_step = next(s for s in outcome["steps"] if s["step"] == "deploy")
    assert deploy_step["detail"] == "nothing changed since the running release: up skipped"
    assert "build" not in steps(outcome)
    assert not host.conn.scripts(in_dir(host.app_dir, host.compose.up()))
    assert [r["result"] for r in host.history] == ["ok", "ok"]
    assert host.sent() == ["facts", "lock", "history", "preflight", "sync", "env", "inspect", "inspect", "record",
                           "keep", "audit", "unlock"]  # no build, no up


def test_a_failed_pre_hook_puts_back_the_checkout_and_env_file_and_restarts_nothing(project):
    project.write("berth.toml", TOML_WITH_HOOK)
    good = new_commit(project, message="hook")
    host = FakeHost()
    assert deploy(project, host)[1] is None
    good_env, ups = host.env, host.ups
    bad = new_commit(project, env=project.APP_ENV + "NEW_SETTING=1\n", message="new setting")
    host.hook_exit = 1
    outcome, error = deploy(project, host)
    assert error is not None and "pre-deploy hook `./manage.py migrate` failed with exit code 1" in error.what
    assert "nothing had been restarted" in error.what
    assert host.head == good and host.env == good_env and host.ups == ups  # back, and nothing restarted
    failed = host.history[-1]
    assert failed["commit"] == bad and failed["result"] == "failed"
    assert failed["rolled_back_to"] == host.current["id"] and host.current["commit"] == good
    assert "restore" in steps(outcome) and host.lock is None
    sent = host.sent()
    assert sent[sent.index("hook"):] == ["hook", "sync", "restore-env", "restore-images", "audit", "record", "audit",
                                         "unlock"]  # put back: checkout, env file, image tags; no up


def test_a_failed_verify_rolls_back_and_records_the_release_with_rolled_back_to(project):
    host = FakeHost()
    deploy(project, host)
    good_release, good_image = host.current, host.containers["web"].image_id
    bad = new_commit(project)
    host.unhealthy, host.unhealthy_commit = {"web"}, bad
    outcome, error = deploy(project, host)
    assert error is not None and error.what.startswith("verify failed on ")
    assert f"rolled back to release {good_release['id']}" in error.what
    assert host.head == good_release["commit"] and host.containers["web"].image_id == good_image
    failed = host.history[-1]
    assert (failed["commit"], failed["result"], failed["rolled_back_to"]) == (bad, "failed", good_release["id"])
    assert host.current == good_release  # a failed release never becomes current
    assert host.events() == ["deploy", "rollback", "deploy"]
    assert outcome["hosts"][0]["state"] == "rolled-back" and error.exit_code != NEEDS_A_PERSON
    sent = host.sent()
    assert sent[sent.index("up"):] == ["up", "inspect", "logs", "inspect", "sync", "restore-env", "restore-images",
                                       "up", "inspect", "audit", "record", "audit", "unlock"]


def test_no_rollback_leaves_the_failed_release_running_and_says_a_person_is_needed(project):
    host = FakeHost()
    deploy(project, host)
    bad = new_commit(project)
    host.unhealthy, host.unhealthy_commit = {"web"}, bad
    outcome, error = deploy(project, host, rollback=False)
    assert "--no-rollback: the failed release stays in place for debugging" in error.what
    assert error.exit_code == NEEDS_A_PERSON
    assert host.head == bad and host.containers["web"].health == "unhealthy"
    assert host.history[-1]["result"] == "failed" and "rolled_back_to" not in host.history[-1]
    assert outcome["hosts"][0]["state"] == "needs-a-person"
    sent = host.sent()
    assert "restore-env" not in sent and sent[-3:] == ["record", "audit", "unlock"]  # recorded, nothing undone


def test_a_record_that_cannot_be_written_for_a_failed_release_does_not_hide_the_failure(project):
    host = FakeHost(up_exit=1)
    host.record_exit = 1
    outcome, error = deploy(project, host)
    assert error is not None and "`docker compose up` failed" in error.what  # the cause, not the record error
    assert "there is no earlier good release on this host to roll back to" in error.what
    assert host.history == [] and host.lock is None
    assert host.sent()[-2:] == ["record", "unlock"]  # the record was tried; the lock is released all the same


def test_a_lost_connection_leaves_the_lock_and_says_so(project, capsys):
    host = FakeHost(lose_at=in_dir(FakeHost().app_dir, FakeHost().compose.up()), can_reconnect=False)
    outcome, error = deploy(project, host)
    assert error.exit_code == NEEDS_A_PERSON and "could not reconnect" in error.what
    assert host.lock is not None  # not released: the connection is gone
    err = capsys.readouterr()
    assert "the deploy lock stays on the server" in err.out + err.err
    assert "no release record was written" in err.out + err.err and host.history == []
    assert host.sent()[-1] == "up" and "unlock" not in host.sent()  # nothing ran after the cut


def test_a_stale_lock_of_a_killed_deploy_is_taken_over_audited_and_recorded_as_failed(project):
    host = FakeHost()
    stale = lock_stage.new_owner("someone", "f" * 40, "", "deploy")
    stale["pid"] = _dead_pid()
    host.lock = stale
    outcome, error = deploy(project, host)
    assert error is None, error and error.paragraph()
    assert "took over a stale lock" in next(s for s in outcome["steps"] if s["step"] == "lock")["detail"]
    assert host.events()[:2] == ["lock-taken-over", "deploy-unfinished"]
    unfinished = host.history[0]
    assert unfinished["commit"] == "f" * 40 and unfinished["result"] == "failed"
    assert "never finished" in unfinished["failure"]
    assert host.history[-1]["result"] == "ok" and host.lock is None
    stale_break = lock_commands.release(host.state_dir, stale["token"])
    assert host.conn.scripts(stale_break)  # the stale lock was removed by its own token, and no other
    assert host.sent()[:7] == ["facts", "lock", "unlock", "lock", "audit", "history", "record"]


def test_a_lock_held_by_a_running_deploy_is_refused_and_left_alone(project):
    host = FakeHost()
    running = lock_stage.new_owner("someone", "f" * 40, "", "deploy")  # this very process: alive
    host.lock = dict(running)
    outcome, error = deploy(project, host)
    assert error.exit_code == 3 and "is locked by someone" in error.what
    assert host.lock == running and host.history == [] and host.head is None
    assert host.sent() == ["facts", "lock"]  # refused at the lock: nothing else ran


def test_rollback_when_the_env_copy_of_the_release_is_gone_fails_and_is_recorded(project):
    host = FakeHost()
    deploy(project, host)
    first = host.current
    new_commit(project)
    deploy(project, host)
    del host.env_copies[first["id"]]
    outcome, error = rollback(project, host)
    assert error is not None and f"the env file of release {first['id']} is no longer kept" in error.what
    attempt = host.history[-1]
    assert attempt["kind"] == "rollback" and attempt["result"] == "failed" and attempt["rollback_of"] == first["id"]
    assert host.audit[-1]["event"] == "rollback" and host.audit[-1]["result"] == "failed"
    assert host.lock is None
    sent = host.sent()
    assert sent[sent.index("sync"):sent.index("sync") + 2] == ["sync", "restore-env"]  # stopped at the env copy


def test_rollback_returns_to_the_previous_good_release_and_records_it(project):
    host = FakeHost()
    deploy(project, host)
    first = host.current
    new_commit(project)
    deploy(project, host)
    outcome, error = rollback(project, host)
    assert error is None, error and error.paragraph()
    assert host.head == first["commit"] and host.current["rollback_of"] == first["id"]
    assert host.current["kind"] == "rollback" and host.current["result"] == "ok"
    assert not host.built[2:]  # the kept images came back: nothing was built for the rollback


def test_every_script_of_a_deploy_is_one_berth_plan_shows(project):
    """plan is rendered from the same steps: each remote command a deploy ran appears in the plan (the sync
    script aside, whose running-commit argument the plan cannot know), with this host's paths."""
    from berth.deploy.plan import render_plan
    from berth.deploy.steps import Facts

    project.write("berth.toml", TOML_WITH_HOOK)
    new_commit(project, message="hook")
    host = FakeHost()
    assert deploy(project, host)[1] is None
    target = load_target(project.root, None, ())
    plan = render_plan(target, None, {"h": Facts(host.app_dir, host.state_dir, host.compose)})
    skipped = re.compile(r"target=\$\(git rev-parse|^tail -n |@@keep|docker compose .* logs|lock.break")
    for script in host.conn.scripts():
        first_line = script.strip().splitlines()[0]
        if skipped.search(script) or "BERTH_RELEASE=" in script:
            continue
        assert first_line in plan, f"deploy ran a command berth plan does not show:\n{script}"
    assert "./manage.py migrate" in plan


def _dead_pid() -> int:
    pid = 4_000_000
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid += 1


@pytest.fixture(autouse=True)
def _no_reconnect_wait(monkeypatch):
    monkeypatch.setenv("BERTH_RECONNECT_SECONDS", "0")


def test_a_project_whose_compose_file_is_compose_yaml_deploys_it(project):
    """compose's preferred name: found as `docker compose` finds it, and passed to compose on the server."""
    project.git("mv", "docker-compose.yml", "compose.yaml")
    new_commit(project, message="compose.yaml")
    host = FakeHost(compose_files=("compose.yaml",))
    outcome, error = deploy(project, host)
    assert error is None, error and error.paragraph()
    assert host.conn.scripts(in_dir(host.app_dir, host.compose.up()))  # … --file compose.yaml … up
    assert "--file compose.yaml" in host.conn.scripts(in_dir(host.app_dir, host.compose.up()))[0]


SECRET_TOKEN = "tok-Vb7nQ2xL9pR4sT6wY8zA"
COMPOSE_WITH_SECRET = ('services:\n  web:\n    image: "nginx:${TAG}"\n    ports:\n      - "8080:80"\n'
                       "    restart: unless-stopped\n    secrets: [api_token]\n    configs: [site]\n"
                       "    healthcheck:\n      test: [\"CMD\", \"wget\", \"-q\", \"-O\", \"/dev/null\", \"http://127.0.0.1/\"]\n"
                       "secrets:\n  api_token:\n    file: ./secrets/api_token.txt\n"
                       "configs:\n  site:\n    file: ./site.conf\n")


def test_secret_files_git_does_not_carry_ship_with_the_release_and_recreate_their_users_when_changed(project):
    """The gitignored secret file goes over stdin (never in a script), the committed config goes by git; a new
    token is a change that recreates web; a rollback puts the old token back."""
    from berth.deploy.plan import render_plan
    from berth.deploy.steps import Facts

    project.write(".gitignore", (project.root / ".gitignore").read_text() + "secrets/\n")
    project.write("site.conf", "server {}\n")
    project.write("docker-compose.yml", COMPOSE_WITH_SECRET)
    project.write("secrets/api_token.txt", SECRET_TOKEN + "\n")
    new_commit(project, message="a secret file")
    host = FakeHost()
    outcome, error = deploy(project, host)
    assert error is None, error
    assert host.files == {"secrets/api_token.txt": (SECRET_TOKEN + "\n").encode()}  # site.conf came by git
    assert host.current["files"] == {"secrets/api_token.txt": ["web"]} and host.recreated == []
    first = host.current["id"]
    assert not any(SECRET_TOKEN in script for script in host.conn.scripts())

    project.write("secrets/api_token.txt", "tok-Hc3kM5jD1fG7hJ9kL2qW\n")
    outcome, error = deploy(project, host)
    assert error is None, error
    assert host.recreated == [("web",)]  # same commit and config, but web must read the new file
    assert host.files["secrets/api_token.txt"] == b"tok-Hc3kM5jD1fG7hJ9kL2qW\n"
    target = load_target(project.root, None, ())
    plan = render_plan(target, None, {"h": Facts(host.app_dir, host.state_dir, host.compose)})
    assert "secrets/api_token.txt" in plan and "--force-recreate web" in plan and SECRET_TOKEN not in plan

    outcome, error = rollback(project, host)
    assert error is None, error
    assert host.current["rollback_of"] == first
    assert host.files["secrets/api_token.txt"] == (SECRET_TOKEN + "\n").encode()
    assert host.recreated[-1] == ("web",)
