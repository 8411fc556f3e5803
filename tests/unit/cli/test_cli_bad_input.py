"""`python -m berth` on bad input: a one-paragraph error naming the file, the right exit code, never a traceback."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

import berth
from tests.helpers import run_berth

# commands that read the project's settings first (none of these reaches a server with bad settings)
SETTINGS_COMMANDS = [["check"], ["check", "--format", "json"], ["plan"], ["deploy", "--yes"], ["status"], ["logs"]]


@pytest.fixture
def berth_cli(sub_env, tmp_path):
    def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
        return run_berth(*args, cwd=cwd or tmp_path, env=sub_env())
    return run


def one_paragraph_error(proc: subprocess.CompletedProcess) -> str:
    err = proc.stderr.strip()
    assert err.startswith("error: "), proc.stderr
    assert "\n" not in err, proc.stderr
    return err


@pytest.fixture
def app(tmp_path) -> Path:
    root = tmp_path / "app"
    root.mkdir()
    return root


# --------------------------------------------------------------------------- settings that cannot be used


@pytest.mark.parametrize("cmd", SETTINGS_COMMANDS, ids=" ".join)
def test_nonexistent_project_dir(berth_cli, tmp_path, cmd):
    missing = tmp_path / "no such dir"
    proc = berth_cli("-C", str(missing), *cmd)
    assert proc.returncode == 2
    err = one_paragraph_error(proc)
    assert str(missing) in err and "does not exist" in err


def test_project_dir_is_a_file(berth_cli, tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    proc = berth_cli("-C", str(f), "check")
    assert proc.returncode == 2
    assert "is a file" in proc.stderr


@pytest.mark.parametrize("cmd", SETTINGS_COMMANDS, ids=" ".join)
def test_no_dotenv_and_no_toml(berth_cli, app, cmd):
    proc = berth_cli("-C", str(app), *cmd)
    assert proc.returncode == 2
    err = one_paragraph_error(proc)
    assert "no environment selected" in err
    assert ".env" in err and str(app) in err


@pytest.mark.parametrize("cmd", SETTINGS_COMMANDS, ids=" ".join)
def test_invalid_toml_syntax(berth_cli, app, cmd):
    (app / "berth.toml").write_text('[environments.staging]\nhosts = ["a"\nuser = "x"\n')
    proc = berth_cli("-C", str(app), *cmd)
    assert proc.returncode == 2
    err = one_paragraph_error(proc)
    assert "berth.toml is not valid TOML" in err
    assert str(app / "berth.toml") in err
    assert "line 3" in err  # tomllib's position is kept


def test_unknown_toml_key(berth_cli, app):
    (app / "berth.toml").write_text('[environments.staging]\nhosts = ["a"]\nverify_timout = 30\n')
    proc = berth_cli("-C", str(app), "check")
    assert proc.returncode == 2
    err = one_paragraph_error(proc)
    assert "unknown key 'verify_timout' in [environments.staging]" in err
    assert "did you mean 'verify_timeout'" in err
    assert str(app / "berth.toml") in err


def test_wrong_type_in_toml(berth_cli, app):
    (app / "berth.toml").write_text('[environments.staging]\nport = "twenty-two"\n')
    proc = berth_cli("-C", str(app), "check")
    assert proc.returncode == 2
    err = one_paragraph_error(proc)
    assert "'port' must be a whole number" in err and "berth.toml [environments.staging] port" in err


def test_toml_not_utf8(berth_cli, app):
    (app / "berth.toml").write_bytes(b"\xff\xfe[\x00d\x00e\x00f\x00")
    proc = berth_cli("-C", str(app), "check")
    assert proc.returncode == 2
    assert "berth.toml" in one_paragraph_error(proc)


def test_toml_environments_not_a_table(berth_cli, app):
    (app / "berth.toml").write_text('environments = "staging"\n')
    proc = berth_cli("-C", str(app), "check")
    assert proc.returncode == 2
    assert "berth.toml" in one_paragraph_error(proc)


def test_other_environment_without_toml(berth_cli, app):
    (app / ".env").write_text("ENVIRONMENT=staging\nSERVER_IP=203.0.113.5\n")
    proc = berth_cli("-C", str(app), "-e", "production", "deploy", "--yes")
    assert proc.returncode == 2
    err = one_paragraph_error(proc)
    assert "-e production" in err and "staging" in err and str(app / ".env") in err


@pytest.mark.parametrize("content, says", [
    (b"ENVIRONMENT=staging\n\x00\x01\x02binary\n", "contains NUL bytes"),
    (b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00", "contains NUL bytes"),
    (b"ENVIRONMENT=staging\nNAME=caf\xe9\n", "is not UTF-8"),
], ids=["nul", "elf", "latin1"])
@pytest.mark.parametrize("cmd", SETTINGS_COMMANDS, ids=" ".join)
def test_binary_dotenv(berth_cli, app, content, says, cmd):
    (app / ".env").write_bytes(content)
    proc = berth_cli("-C", str(app), *cmd)
    assert proc.returncode == 2
    err = one_paragraph_error(proc)
    assert says in err
    assert str(app / ".env") in err


def test_latin1_dotenv_names_the_line(berth_cli, app):
    (app / ".env").write_bytes(b"ENVIRONMENT=staging\nSERVER_IP=1.2.3.4\nNAME=caf\xe9\n")
    err = one_paragraph_error(berth_cli("-C", str(app), "check"))
    assert f"{app / '.env'}:3" in err


def test_dotenv_is_a_directory(berth_cli, app):
    (app / ".env").mkdir()
    proc = berth_cli("-C", str(app), "check")
    assert proc.returncode == 2
    err = one_paragraph_error(proc)
    assert "cannot read .env" in err and str(app / ".env") in err


def test_non_numeric_port_in_dotenv(berth_cli, app):
    (app / ".env").write_text("ENVIRONMENT=staging\nSERVER_IP=203.0.113.5\nSERVER_PORT=ssh\n")
    proc = berth_cli("-C", str(app), "check")
    assert proc.returncode == 1
    assert ".env:3" in proc.stdout and "settings.port" in proc.stdout


@pytest.mark.parametrize("cmd", [c for c in SETTINGS_COMMANDS if c[0] != "check"] + [["doctor"]], ids=" ".join)
def test_host_given_with_a_control_character(berth_cli, app, cmd):
    """--host is validated like SERVER_IP: the commands that connect stop before ssh (review §16)."""
    (app / ".env").write_text("ENVIRONMENT=staging\nSERVER_IP=203.0.113.5\n")
    proc = berth_cli("-C", str(app), "--host", "203.0.113.5\x1b[2J", *cmd)
    if cmd == ["plan"]:
        assert proc.returncode == 0 and "[settings.host]" in proc.stdout  # plan shows the check's finding
        return
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    err = one_paragraph_error(proc)
    assert "host '203.0.113.5\\x1b[2J' contains the control character U+001B" in err and "Where: --host" in err


# --------------------------------------------------------------------------- files that `check` reports


def _checkable(app: Path) -> None:
    (app / ".env").write_text("ENVIRONMENT=staging\nSERVER_IP=203.0.113.5\n")


BAD_INDENT = "services:\n  web:\n    image: nginx\n   ports:\n      - 8080:80\n"


def test_malformed_compose_file(berth_cli, app):
    _checkable(app)
    (app / "docker-compose.yml").write_text(BAD_INDENT)
    proc = berth_cli("-C", str(app), "check", "--offline")
    assert proc.returncode == 1
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("docker-compose.yml:4:4: error: "))
    assert "docker-compose.yml is not valid YAML" in line and "[files.unreadable]" in line


def test_malformed_compose_file_json(berth_cli, app):
    _checkable(app)
    (app / "docker-compose.yml").write_text(BAD_INDENT)
    proc = berth_cli("-C", str(app), "check", "--offline", "--format", "json")
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    unreadable = [f for f in report["findings"] if f["rule"] == "files.unreadable"]
    assert [(f["file"], f["line"], f["col"]) for f in unreadable] == [("docker-compose.yml", 4, 4)]
    assert report["environment"] == "staging"
    assert report["counts"]["error"] >= 1


@pytest.mark.parametrize("content", [
    b"services:\n  web:\n    image: \"unclosed\n",
    b"services: [\n",
    b"\x00\x01\x02\x03",
    b"services:\n  web:\n    image: caf\xe9\n",
    b"- just\n- a list\n",
    b"services:\n  web: &a\n    <<: *nope\n",
], ids=["unclosed-quote", "unclosed-flow", "binary", "latin1", "list", "bad-alias"])
def test_other_unreadable_compose_files(berth_cli, app, content):
    _checkable(app)
    (app / "docker-compose.yml").write_bytes(content)
    proc = berth_cli("-C", str(app), "check", "--offline")
    assert proc.returncode == 1
    assert "docker-compose.yml" in proc.stdout and "[files.unreadable]" in proc.stdout


def test_compose_file_is_a_directory(berth_cli, app):
    _checkable(app)
    (app / "docker-compose.yml").mkdir()
    proc = berth_cli("-C", str(app), "check", "--offline")
    assert proc.returncode == 1
    assert "cannot read docker-compose.yml" in proc.stdout


def test_binary_app_env_file(berth_cli, app):
    _checkable(app)
    (app / "docker-compose.yml").write_text("services:\n  web:\n    image: nginx\n")
    (app / ".env.docker").write_bytes(b"A=1\n\x00\x00\x00")
    proc = berth_cli("-C", str(app), "check", "--offline")
    assert proc.returncode == 1
    assert ".env.docker contains NUL bytes" in proc.stdout and "[files.unreadable]" in proc.stdout


@pytest.mark.parametrize("cmd", [["plan"], ["deploy", "--yes"]], ids=" ".join)
def test_bad_compose_stops_plan_and_deploy_without_traceback(berth_cli, app, cmd):
    _checkable(app)
    (app / "docker-compose.yml").write_text(BAD_INDENT)
    proc = berth_cli("-C", str(app), *cmd)
    if cmd[0] == "deploy":
        assert proc.returncode == 1
        assert "check found" in proc.stderr and "nothing was sent to any server" in proc.stderr
    else:
        assert proc.returncode == 0  # plan only shows what deploy would do
    assert "docker-compose.yml" in proc.stdout


# --------------------------------------------------------------------------- the command line itself


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version(berth_cli, flag):
    proc = berth_cli(flag)
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"berth, version {berth.__version__}"


def test_unknown_command(berth_cli):
    proc = berth_cli("shipit")
    assert proc.returncode == 2
    assert "No such command 'shipit'" in proc.stderr


def test_bad_option_value(berth_cli, app):
    proc = berth_cli("-C", str(app), "check", "--fail-on", "sometimes")
    assert proc.returncode == 2
    assert "--fail-on" in proc.stderr


def test_check_list_rules_needs_no_project(berth_cli, tmp_path):
    proc = berth_cli("-C", str(tmp_path / "nowhere"), "check", "--list-rules")
    assert proc.returncode == 0
    assert "compose.unset-variable" in proc.stdout and "git.unpushed" in proc.stdout
