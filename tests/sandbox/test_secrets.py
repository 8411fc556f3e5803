"""Secrets from .env.docker never appear in the process list, berth's output or the release record."""

from __future__ import annotations

import base64
import json
import stat
import subprocess
import threading

from berth.errors import NEEDS_A_PERSON
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
    assert result.returncode == NEEDS_A_PERSON  # a first release that fails verify: nothing to roll back to
    assert "web: booting with SECRET_KEY=****" in out  # the log line is shown, its secret is not
    leaked = leaks(out)
    assert not leaked, "a secret appeared in berth's output"
    logs = app.berth("logs", "web")
    leaked = leaks(logs.stdout + logs.stderr)
    assert "SECRET_KEY=****" in logs.stdout and not leaked


def test_secrets_the_app_logs_in_other_forms_never_reach_any_output(app, tmp_path):
    """Security review 5/10/11: a multi-line private key, a percent-encoded password and a base64 token, logged
    by the app, showed in clear in `berth logs` and `-v`; every JSON document is masked field by field too."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(tmp_path / "tls")], check=True)
    key = (tmp_path / "tls").read_text().strip()
    body = [ln for ln in key.splitlines() if not ln.startswith("-----")]
    password = "p@ss/w0rd-Xy7Q"  # in DATABASE_URL as p%40ss%2Fw0rd-Xy7Q
    token = "at-7Hq2Lm9Xv4Rk8Tz3Wp6Ns1Yd5Fb0Jc"
    token_b64 = base64.b64encode(token.encode()).decode()
    forms = [password, "p%40ss%2Fw0rd-Xy7Q", token, token_b64, json.dumps(key)[1:-1], *body]
    assert len(body) >= 3 and all(len(line) > 20 for line in body)

    def leaked(text: str) -> bool:
        return any(form in text for form in forms)

    entry = (app.dir / "web" / "entrypoint.sh").read_text().replace("set -e\n", (
        "set -e\n"
        'echo "web: tls key follows"; printf "%s\\n" "$TLS_PRIVATE_KEY"\n'
        'pw=${DATABASE_URL#*://app:}; pw=${pw%%@*}\n'
        'echo "web: connecting as app with password $(httpd -d "$pw")"\n'
        'echo "web: api token (base64) $(printf %s "$API_TOKEN" | base64)"\n'), 1)
    app.commit("log the secrets in other forms", **{"web/entrypoint.sh": entry})
    env_docker = app.dir / ".env.docker"
    env_docker.write_text(env_docker.read_text().replace(
        "DATABASE_URL=postgres://app:pw-Zq8x7c6v5b4n@db:5432/app", "DATABASE_URL=postgres://app:p%40ss%2Fw0rd-Xy7Q@db:5432/app")
        + f'TLS_PRIVATE_KEY="{key}\n"\nAPI_TOKEN={token}\n')

    deploy = app.berth("-v", "deploy", "--push")
    assert deploy.returncode == 0, deploy.stdout[-3000:] + deploy.stderr[-3000:]
    outputs = {"deploy -v": deploy.stdout + deploy.stderr}
    logs = app.berth("logs", "web")
    outputs["logs"] = logs.stdout + logs.stderr
    # the app did log all three, so the test could see a leak: the lines are there, their secrets are not
    # (bools first: pytest would print the log it compared, secrets and all, if one failed)
    for line in ("web: tls key follows", "web: connecting as app with password ****", "web: api token (base64) ****"):
        shown = line in logs.stdout
        assert shown, f"berth logs web does not show {line!r}"
    for command in (("status", "--json"), ("releases", "--json"), ("doctor", "--json")):
        result = app.berth(*command)
        json.loads(result.stdout)  # masking never breaks a JSON document
        outputs[" ".join(command)] = result.stdout + result.stderr
    for name, text in outputs.items():
        found = leaked(text)
        assert not found, f"a secret appeared in the output of berth {name}"
    for path in (p for p in app.state_dir.rglob("*") if p.is_file() and p.suffix != ".env"):
        found = leaked(path.read_text())
        assert not found, f"a secret appeared in {path}"
