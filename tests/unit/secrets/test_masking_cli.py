"""Masking where berth prints (findings 5, 10, 11 and the suspected JSON leak): `berth logs`, `-v`, every
--json document, `berth config`, `berth plan` and `berth k8s render` — driven through the real functions
and commands, with fake servers (no SSH).
"""

from __future__ import annotations

import base64
import json
import stat

import pytest
from click.testing import CliRunner

from berth.cli import Ctx, cli
from berth.configuration.masker import masker_for
from berth.configuration.target import load_target
from berth.remote.engines.compose import Compose
from berth.remote.session import HostSession, debug_hook
from berth.remote.transport import Result
from berth.ui.output import StepPrinter

PEM_BODY = ("MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7",
            "VJTUt9Us8cKjMzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDuic")
PEM = "-----BEGIN " + "PRIVATE KEY-----\n" + "\n".join(PEM_BODY) + "\n-----END PRIVATE KEY-----"
SINGLE = "single-line-secret-99"
API_TOKEN = 'tok"en\\välue-123456'  # JSON escapes its quote, backslash and non-ASCII letter
ESCAPED = json.dumps(API_TOKEN)[1:-1]
ENV = f'JWT_PRIVATE_KEY="{PEM}"\nSECRET_KEY={SINGLE}\nAPI_TOKEN=\'{API_TOKEN}\'\n'


class FakeConn:
    """A server: every command prints `out`; `stream` yields `lines`."""

    def __init__(self, out: str = "", lines: tuple[str, ...] = ()):
        self.out, self.lines = out, lines
        self.lost = None

    def run(self, script, stdin=None, timeout=None, check=False):
        return Result(script, 0, self.out.encode(), b"", 0.01)

    def stream(self, script, on_line):
        for line in self.lines:
            on_line(line)
        return 0

    def close(self):
        pass


def fake_session(target, conn, current=None) -> HostSession:
    host = target.hosts[0]
    return HostSession(host, conn, "/home/deploy", "deploy", Compose("v2", target.project, target.compose_files,
                                                                      target.env_file),
                       "2.26.1", "24.0", "/home/deploy/app", "/home/deploy/.berth/app", current)


@pytest.fixture
def app(project):
    project.write(".env.docker", project.APP_ENV + ENV)
    return project


def printer_for(project, verbose=False) -> StepPrinter:
    return StepPrinter(masker_for(load_target(project.root, None, ())), verbose=verbose)  # as berth.cli._printer


# --------------------------------------------------------------------------- finding 5: multi-line secrets


def test_berth_logs_masks_every_line_of_a_multi_line_secret(app, monkeypatch, capsys):
    from berth.ops import status

    lines = (f"web-1  | loaded key: {PEM.splitlines()[0]}", *(f"web-1  | {ln}" for ln in PEM.splitlines()[1:]),
             f"web-1  | secret key = {SINGLE}")
    target = load_target(app.root, None, ())
    monkeypatch.setattr(status, "_session", lambda t, h, trust, p: fake_session(t, FakeConn(lines=lines)))
    assert status.stream_logs(target, (), 100, False, False, printer_for(app)) == 0
    out = capsys.readouterr().out
    for secret in (*PEM_BODY, SINGLE):
        assert secret not in out
    assert out.count("web-1  | ****") == 3  # the body lines and the single-line secret; the line prefixes stay


def test_verbose_output_masks_a_multi_line_secret_whole_and_line_by_line(app, capsys):
    printer = printer_for(app, verbose=True)
    output = "".join(f"web-1  | {ln}\r\n" for ln in PEM.splitlines()) + PEM.replace("\n", "\r\n")
    debug_hook(printer)("docker compose logs", Result("docker compose logs", 0, output.encode(), b"", 0.1))
    out = capsys.readouterr().out
    for secret in PEM_BODY:
        assert secret not in out
    assert "│ web-1  | ****" in out


# --------------------------------------------------------------------------- finding 11: cut after masking


def test_verbose_output_never_shows_part_of_a_secret_straddling_the_cut(app, capsys):
    secret = "supersecretvalue123"
    app.write(".env.docker", app.APP_ENV + f"SECRET_KEY={secret}\n")
    # the review's case: 2000+ characters of build output, the old cut ([-2000:]) falls 3 characters into it
    after = "".join(f"#{n:02d} building layer {'.' * 40}\n" for n in range(40))
    after = after[:2000 - (len(secret) - 3) - 1]
    output = "Step 1/9 : FROM python:3.12\n" * 20 + f"SECRET_KEY={secret}\n" + after
    assert len(output) - 2000 == output.index(secret) + 3
    debug_hook(printer_for(app, verbose=True))("docker compose build", Result("build", 0, output.encode(), b"", 1.0))
    out = capsys.readouterr().out
    assert not any(secret[i:i + 6] in out for i in range(len(secret) - 5))
    assert after.splitlines()[-1] in out  # the end of the output is shown


def test_server_errors_quoted_in_messages_are_masked_before_they_are_cut(app, monkeypatch):
    import subprocess as sp

    from berth.deploy.stages import sync
    from berth.errors import BerthError
    from berth.remote.session import ssh_options
    from berth.remote.transport import ssh

    secret = "supersecretvalue123"
    app.write(".env.docker", app.APP_ENV + f"SECRET_KEY={secret}\n")
    target = load_target(app.root, None, ())
    err = f"fatal: could not read from remote: token {secret}\n" + "remote: " + "x" * 585 + "\n"
    assert 0 < len(err.strip()) - 600 - err.index(secret) < len(secret)  # the old [-600:] cut falls inside it
    monkeypatch.setattr(ssh.subprocess, "run", lambda argv, **kw: sp.CompletedProcess(argv, 1, b"", err.encode()))
    conn = ssh.SSHConnection(target.hosts[0], ssh_options(target), mask=masker_for(target))
    conn.control_path = app.root / "no-socket"
    with pytest.raises(BerthError) as failed:
        sync.sync(fake_session(target, conn), str(app.remote), "a" * 40, None)
    assert not any(secret[i:i + 6] in failed.value.what for i in range(len(secret) - 5))


# --------------------------------------------------------------------------- never corrupting output

POSTGRES_COMPOSE = """\
services:
  {service}:
    image: postgres:16
    environment:
      POSTGRES_PASSWORD: ${{POSTGRES_PASSWORD}}
    volumes:
      - ./blue-harbor-42/uploads:/app/uploads
"""


def test_a_password_that_is_also_an_image_name_is_masked_and_the_image_kept(project):
    project.write("docker-compose.yml", POSTGRES_COMPOSE.format(service="db"))
    project.write(".env.docker", "POSTGRES_PASSWORD=postgres\n")
    mask = masker_for(load_target(project.root, None, ()))
    assert mask("pulling postgres:16; db-1 | password postgres rejected") == \
        "pulling postgres:16; db-1 | password **** rejected"


def test_a_service_named_like_its_password_keeps_its_name(project):
    """Documented: a secret equal to a name of the app is not masked where that name is printed (it is not a
    secret there: it is in the compose file); where its key names it, it is."""
    project.write("docker-compose.yml", POSTGRES_COMPOSE.format(service="postgres"))
    project.write(".env.docker", "POSTGRES_PASSWORD=postgres\n")
    mask = masker_for(load_target(project.root, None, ()))
    assert mask("app-postgres-1  | database system is ready") == "app-postgres-1  | database system is ready"
    assert mask("POSTGRES_PASSWORD=postgres") == "POSTGRES_PASSWORD=****"


def test_a_path_with_the_secret_as_a_component_is_kept_only_as_the_app_names_it(project):
    """Decided: a path as written in the compose file stays whole; any other text holding the secret is
    masked, even a path that contains it (the masker cannot tell that path from the secret)."""
    project.write("docker-compose.yml", POSTGRES_COMPOSE.format(service="db"))
    project.write(".env.docker", "POSTGRES_PASSWORD=blue-harbor-42\n")
    mask = masker_for(load_target(project.root, None, ()))
    assert mask("bind ./blue-harbor-42/uploads -> /app/uploads") == "bind ./blue-harbor-42/uploads -> /app/uploads"
    assert mask("/home/deploy/app/blue-harbor-42/uploads") == "/home/deploy/app/****/uploads"


def test_the_git_remote_credentials_are_masked_and_plan_does_not_show_them(project, sub_env):
    import subprocess
    import sys

    token = "ghp_" + "R3alT0ken" * 4
    project.git("remote", "set-url", "origin", f"https://deploy:{token}@github.com/org/app.git")
    assert masker_for(load_target(project.root, None, ()))(f"cloning https://deploy:{token}@github.com") == \
        "cloning https://deploy:****@github.com"
    proc = subprocess.run([sys.executable, "-m", "berth", "-C", str(project.root), "plan"], capture_output=True,
                          text=True, env=sub_env(), stdin=subprocess.DEVNULL, timeout=120)
    assert token not in proc.stdout + proc.stderr
    assert "https://github.com/org/app.git" in proc.stdout  # shown as the server gets it: no userinfo


# --------------------------------------------------------------------------- every --json document


def invoke(project, *args):
    return CliRunner().invoke(cli, ["-C", str(project.root), *args], catch_exceptions=False)


def assert_masked_json(output: str) -> dict:
    assert API_TOKEN not in output and ESCAPED not in output
    assert json.dumps(API_TOKEN, ensure_ascii=False)[1:-1] not in output
    return json.loads(output)


def test_deploy_json_is_masked_field_by_field(app, monkeypatch):
    import berth.deploy.pipeline

    def fake_deploy(target, opts, printer, outcome):
        outcome.update(ok=True, commit="a" * 40, seconds=1.0, hosts=[{"host": "h", "release": {"subject": API_TOKEN}}],
                       steps=[{"step": "deploy", "detail": f"token={API_TOKEN}"}])
        return outcome

    monkeypatch.setattr(berth.deploy.pipeline, "run_deploy", fake_deploy)
    doc = assert_masked_json(invoke(app, "deploy", "--json", "--yes").output)
    assert doc["steps"][0]["detail"] == "token=****" and doc["hosts"][0]["release"]["subject"] == "****"


def test_status_and_doctor_json_are_masked_field_by_field(app, monkeypatch):
    import berth.ops.doctor
    import berth.ops.status

    rows = [{"host": "h", "healthy": True, "current": {"subject": f"fix {API_TOKEN}"}, "problems": [API_TOKEN]}]
    monkeypatch.setattr(berth.ops.status, "collect_status", lambda *a: rows)
    assert assert_masked_json(invoke(app, "status", "--json").output)[0]["current"]["subject"] == "fix ****"
    checks = [{"host": "h", "ok": True, "checks": [{"id": "env", "details": f"API_TOKEN={API_TOKEN}"}]}]
    monkeypatch.setattr(berth.ops.doctor, "run_doctor", lambda *a, **k: checks)
    assert assert_masked_json(invoke(app, "doctor", "--json").output)[0]["checks"][0]["details"] == "API_TOKEN=****"


def test_rollback_json_is_masked(app, monkeypatch):
    import berth.deploy.rollback

    def fake_rollback(target, release, opts, printer, outcome):
        outcome.update(ok=True, hosts=[{"host": "h", "to": {"subject": API_TOKEN}}])

    monkeypatch.setattr(berth.deploy.rollback, "run_rollback", fake_rollback)
    assert assert_masked_json(invoke(app, "rollback", "--json", "--yes").output)["hosts"][0]["to"]["subject"] == "****"


@pytest.mark.parametrize("command, key", [("releases", "releases"), ("audit", "events")])
def test_releases_and_audit_json_mask_what_the_server_recorded(app, monkeypatch, command, key):
    import berth.ops.status

    record = {"id": "20261130T100000Z-aaaaaaa", "event": "deploy", "result": "failed",
              "deployed_by": f"token={API_TOKEN}"}
    conn = FakeConn(out=json.dumps(record) + "\n")
    monkeypatch.setattr(berth.ops.status, "_session", lambda t, h, trust, p: fake_session(t, conn))
    doc = assert_masked_json(invoke(app, command, "--json").output)
    assert doc[0][key][0]["deployed_by"] == "token=****"
    text = invoke(app, command).output  # and the text view
    assert API_TOKEN not in text and "token=****" in text


def test_k8s_apply_json_is_masked_field_by_field(app, monkeypatch):
    import berth.k8s.apply

    def fake_apply(target, settings, opts, printer):
        return {"ok": True, "release": "r1", "environment": "staging", "seconds": 1.0, "notes": [API_TOKEN]}

    monkeypatch.setattr(berth.k8s.apply, "run_apply", fake_apply)
    assert assert_masked_json(invoke(app, "k8s", "apply", "--json", "--yes").output)["notes"] == ["****"]


# --------------------------------------------------------------------------- finding 10: config and k8s render

STRIPE_SK = "sk_" + "live_" + "51Habcdefghijklmnop"
SLACK_WEBHOOK = "https://hooks.slack.com/services/T0000/B0000/" + "XXXXXXXXXXXXXXXXXXXX"
NAMED_ENV = f"DB_PWD=hunter2hunter2\nSTRIPE_SK={STRIPE_SK}\nSLACK_WEBHOOK_URL={SLACK_WEBHOOK}\nPOSTGRES_PASSWORD=postgres\n"
NAMED_COMPOSE = """\
services:
  web:
    image: postgres:16
    command: ["postgres", "-c", "log_min_messages=warning"]
    environment: [DB_PWD, STRIPE_SK, SLACK_WEBHOOK_URL, POSTGRES_PASSWORD, APP_NAME=shop]
"""
NAMED_SECRETS = ("hunter2hunter2", STRIPE_SK, SLACK_WEBHOOK)


def named_app(project):
    project.write("docker-compose.yml", NAMED_COMPOSE)
    project.write(".env.docker", NAMED_ENV)
    return project


def test_berth_config_masks_secrets_recognised_beyond_their_key_names(project):
    from berth.cli.config import config

    named_app(project)
    result = CliRunner().invoke(config, ["--format", "json"], obj=Ctx(project.root, None, (), False))
    assert result.exit_code == 0, result.output
    for secret in NAMED_SECRETS:
        assert secret not in result.output
    web = json.loads(result.output)["services"]["web"]
    assert web["environment"] == {"DB_PWD": "****", "STRIPE_SK": "****", "SLACK_WEBHOOK_URL": "****",
                                  "POSTGRES_PASSWORD": "****", "APP_NAME": "shop"}
    # by position: the password `postgres` does not turn the image or the command into ****
    assert web["image"] == "postgres:16" and web["command"] == ["postgres", "-c", "log_min_messages=warning"]


def test_k8s_render_puts_recognised_secrets_in_the_secret_and_writes_files_0600(project, tmp_path):
    named_app(project)
    out_dir = tmp_path / "k8sout"
    result = invoke(project, "k8s", "render", "-o", str(out_dir))
    assert result.exit_code == 0, result.output  # the image postgres:16 is no reason to refuse
    files = sorted(p for p in out_dir.iterdir() if p.suffix == ".yaml")
    assert files
    for path in files:
        text = path.read_text()
        for secret in (*NAMED_SECRETS, base64.b64encode(STRIPE_SK.encode()).decode()):
            assert secret not in text
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "DB_PWD, POSTGRES_PASSWORD, SLACK_WEBHOOK_URL, STRIPE_SK" in result.output  # named in the Secret note
    assert "image: postgres:16" in (out_dir / "web.yaml").read_text()


def test_k8s_render_refuses_a_secret_interpolated_outside_environment(project, tmp_path):
    from berth.errors import BerthError

    named_app(project)
    project.write("docker-compose.yml", NAMED_COMPOSE.replace('"log_min_messages=warning"', '"--token=${DB_PWD}"'))
    with pytest.raises(BerthError) as refused:
        invoke(project, "k8s", "render", "-o", str(tmp_path / "out"))
    assert "outside a Secret" in refused.value.what
    assert "services.web.command" in refused.value.details and "DB_PWD" in refused.value.details
    assert "hunter2hunter2" not in refused.value.details
    assert not (tmp_path / "out").exists()
