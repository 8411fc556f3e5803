"""Secrets from .env.docker never appear in the process list, berth's output or the release record."""

from __future__ import annotations

import subprocess
import threading

from tests.sandbox.conftest import SECRET

DB_PASSWORD = "pw-Zq8x7c6v5b4n"


def sample_process_list(stop: threading.Event, samples: list[str]) -> None:
    # every process on the machine: the sandbox hosts are namespaces of this one
    while not stop.is_set():
        samples.append(subprocess.run(["ps", "-eww", "-o", "args="], capture_output=True, text=True).stdout)
        stop.wait(0.02)


def test_secret_never_in_process_list_output_or_release_record(app):
    app.commit("version 2", web__VERSION="2\n")  # a real build, so the deploy runs long enough to sample
    stop, samples = threading.Event(), []
    sampler = threading.Thread(target=sample_process_list, args=(stop, samples))
    sampler.start()
    try:
        result = app.berth("-v", "deploy", "--push")
    finally:
        stop.set()
        sampler.join()
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    seen = "\n".join(samples)
    # the sampler saw the deploy itself (so it could have seen a leak) ...
    assert "ControlPath=" in seen and len(samples) > 20
    # ... and never the secret
    assert SECRET not in seen and DB_PASSWORD not in seen
    assert "$ " in out and "docker compose" in out  # -v shows the remote commands
    assert SECRET not in out and DB_PASSWORD not in out
    for path in app.state_dir.rglob("*"):
        if path.is_file():
            text = path.read_text()
            assert SECRET not in text and DB_PASSWORD not in text, path
    record = (app.state_dir / "current.json").read_text()
    assert "sha256:" in record  # the env file is identified by checksum only


def test_secret_printed_by_the_app_is_masked_in_berth_output(app):
    # a leaky app that logs its secret and then fails its healthcheck
    entry = (app.dir / "web" / "entrypoint.sh").read_text().replace(
        'set -e\n', 'set -e\necho "web: booting with SECRET_KEY=$SECRET_KEY db=$DATABASE_URL"\n', 1)
    app.commit("leaky", **{"web/entrypoint.sh": entry})
    (app.dir / ".env.docker").write_text((app.dir / ".env.docker").read_text() + "FAIL_HEALTH=1\n")
    result = app.berth("-v", "deploy", "--push", "--timeout", "40")
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert "web: booting with SECRET_KEY=****" in out  # the log line is shown, its secret is not
    assert SECRET not in out and DB_PASSWORD not in out
    logs = app.berth("logs", "web")
    assert "SECRET_KEY=****" in logs.stdout and SECRET not in logs.stdout + logs.stderr
