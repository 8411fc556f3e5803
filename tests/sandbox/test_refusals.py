"""Each refusal says why, exits non-zero, and leaves the server exactly as it was."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

from tests.sandbox.conftest import GIT_ENV


def refused(app, *args, env=None):
    before = app.snapshot()
    logins = app.server.ssh_logins()
    result = app.berth("deploy", *args, env=env)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert "Traceback" not in out
    assert app.snapshot() == before, "the server changed although the deploy was refused"
    return out, app.server.ssh_logins() - logins


def test_missing_variable_is_refused_before_any_ssh(app):
    compose = app.dir / "docker-compose.yml"
    text = compose.read_text().replace("      APP_ENV: ${APP_ENV:-production}\n",
                                       "      APP_ENV: ${APP_ENV:-production}\n      LOG_LEVEL: ${LOG_LEVEL}\n")
    app.commit("log level", **{"docker-compose.yml": text})
    app.push()
    line = text.splitlines().index("      LOG_LEVEL: ${LOG_LEVEL}") + 1
    out, logins = refused(app)
    assert re.search(rf"docker-compose\.yml(\n +)?:{line}:18\b", out), out  # the file and the place in it
    assert "LOG_LEVEL" in out and "compose.unset-variable" in out
    assert "nothing was sent to any server" in out
    assert logins == 0


def test_dirty_tree_is_refused(app):
    app.push()
    (app.dir / "web" / "VERSION").write_text("uncommitted\n")
    out, logins = refused(app, "--push")
    assert "uncommitted change" in out and "web/VERSION" in out and "git.dirty" in out
    assert logins == 0


def test_unpushed_head_is_refused(app):
    app.push()
    app.commit("local only", web__VERSION="local\n")
    out, logins = refused(app)
    assert "is not pushed" in out and "git.unpushed" in out and "--push" in out
    assert logins == 0


def test_dirty_server_checkout_is_refused_and_kept(app):
    assert app.berth("deploy", "--push").returncode == 0
    hotfix = app.app_dir / "web" / "VERSION"
    hotfix.write_text("edited on the server\n")
    app.commit("version 2", web__VERSION="2\n")
    out, logins = refused(app, "--push")
    assert "uncommitted changes" in out and "web/VERSION" in out
    assert hotfix.read_text() == "edited on the server\n"
    assert logins == 1


def test_unknown_host_key_is_refused(app, tmp_path):
    app.push()
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    app.write_dotenv(SSH_KNOWN_HOSTS=str(empty))
    out, logins = refused(app)
    assert "host key" in out and "not known" in out and "--trust-new-host" in out
    assert logins == 0
    assert empty.read_text() == ""


def test_trust_new_host_accepts_an_unknown_key_once(app, tmp_path):
    app.push()
    known = tmp_path / "known_hosts"
    known.write_text("")
    app.write_dotenv(SSH_KNOWN_HOSTS=str(known))
    result = app.berth("deploy", "--trust-new-host")
    assert result.returncode == 0, result.stdout + result.stderr
    host_key = (Path(app.server.host.dir) / "ssh_host_ed25519_key.pub").read_text().split()[1]
    found = subprocess.run(["ssh-keygen", "-F", app.server.host.address, "-f", str(known)],
                           capture_output=True, text=True)
    assert found.returncode == 0 and host_key in found.stdout  # the key was learned (Debian hashes names)


def test_changed_host_key_is_refused_even_with_trust_new_host(app, tmp_path):
    app.push()
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    forged = tmp_path / "known_hosts"
    algo, key = other.with_suffix(".pub").read_text().split()[:2]
    forged.write_text(f"{app.server.host.address} {algo} {key}\n")
    app.write_dotenv(SSH_KNOWN_HOSTS=str(forged))
    out, logins = refused(app, "--trust-new-host")
    assert "host key" in out and "changed" in out
    assert logins == 0


def test_production_without_confirmation_is_refused(app):
    app.push()
    app.write_dotenv(ENVIRONMENT="production")
    out, logins = refused(app)  # stdin is not a terminal and no --yes
    assert "needs confirmation" in out and "--yes" in out
    assert logins == 0


def _deploy_on_terminal(app, answer: str) -> tuple[int, str]:
    """Run berth deploy with a real pseudo-terminal and type `answer` at the prompt."""
    pid, fd = pty.fork()
    if pid == 0:  # child
        os.chdir(app.dir)
        os.environ.update({**GIT_ENV, "NO_COLOR": "1"})
        os.execv(sys.executable, [sys.executable, "-m", "berth", "deploy"])
    output = b""
    deadline = time.monotonic() + 120
    typed = False
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
        if not typed and b"Type the environment name" in output:
            os.write(fd, answer.encode() + b"\n")
            typed = True
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), output.decode(errors="replace")


def test_production_confirmation_on_a_terminal(app):
    app.push()
    app.write_dotenv(ENVIRONMENT="production")
    before = app.snapshot()
    code, out = _deploy_on_terminal(app, "staging")
    assert code != 0 and "confirmation did not match" in out
    assert app.snapshot() == before
    code, out = _deploy_on_terminal(app, "production")
    assert code == 0, out
    assert "deployed" in out
