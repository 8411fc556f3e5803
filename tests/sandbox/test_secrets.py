"""Secrets from .env.docker never appear in the process list, berth's output or the release record."""

from __future__ import annotations

import stat
import subprocess
import threading

from tests.sandbox.conftest import SECRET

DB_PASSWORD = "pw-Zq8x7c6v5b4n"


def leaks(text: str) -> bool:
    # a bool, so a failing assert shows no text (pytest would print a secret it found)
    return SECRET in text or DB_PASSWORD in text


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
    leaked = leaks(seen)
    assert not leaked, "a secret appeared in the process list"
    assert "$ " in out and "docker compose" in out  # -v shows the remote commands
    leaked = leaks(out)
    assert not leaked, "a secret appeared in berth's output"
    records = [p for p in app.state_dir.rglob("*") if p.is_file() and p.suffix != ".env"]
    assert {p.name for p in records} >= {"current.json", "history.jsonl", "audit.jsonl"}
    for path in records:
        leaked = leaks(path.read_text())
        assert not leaked, f"a secret appeared in {path}"
    # the env copy kept for rollbacks is as private as the deployed env file
    for path in app.state_dir.rglob("*.env"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
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
    leaked = leaks(out)
    assert not leaked, "a secret appeared in berth's output"
    logs = app.berth("logs", "web")
    leaked = leaks(logs.stdout + logs.stderr)
    assert "SECRET_KEY=****" in logs.stdout and not leaked
