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


def deploy_sampled(app, *args: str):
    """`berth -v deploy --push ARGS` while every process on the machine is sampled: (result, samples)."""
    stop, samples = threading.Event(), []
    sampler = threading.Thread(target=sample_process_list, args=(stop, samples))
    sampler.start()
    try:
        return app.berth("-v", "deploy", "--push", *args), samples
    finally:
        stop.set()
        sampler.join()


def test_secret_never_in_process_list_output_or_release_record(app):
    app.commit("version 2", web__VERSION="2\n")  # a real build, so the deploy runs long enough to sample
    result, samples = deploy_sampled(app)
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


TOKEN_ONE = "tok-Vb7nQ2xL9pR4sT6wY8zA"
TOKEN_TWO = "tok-Hc3kM5jD1fG7hJ9kL2qW"
SECRET_COMPOSE = ("    secrets: [api_token]\n", "secrets:\n  api_token:\n    file: ./secrets/api_token.txt\n")


def _with_secret(compose: str) -> str:
    """The example's compose file with a file secret mounted into web."""
    service, top = SECRET_COMPOSE
    return compose.replace("    init: true\n", "    init: true\n" + service, 1).replace("volumes:\n  records:\n",
                                                                                         "volumes:\n  records:\n" + top)


def test_secret_files_git_does_not_carry_are_shipped_kept_per_release_and_rolled_back(app):
    """compose `secrets:` files are gitignored: berth ships them over stdin (0600), never in argv or output,
    keeps them per release, redeploys when one changes and puts the old one back on rollback."""
    compose = (app.dir / "docker-compose.yml").read_text()
    (app.dir / "secrets").mkdir()
    (app.dir / "secrets" / "api_token.txt").write_text(TOKEN_ONE + "\n")
    app.commit("mount a secret file", **{".gitignore": (app.dir / ".gitignore").read_text() + "secrets/\n",
                                         "docker-compose.yml": _with_secret(compose)})
    assert "secrets/api_token.txt" not in app.git("ls-files")
    first, samples = deploy_sampled(app)
    out = first.stdout + first.stderr
    assert first.returncode == 0, out
    assert "secrets/api_token.txt (0600)" in first.stdout
    assert (TOKEN_ONE in out or any(TOKEN_ONE in s for s in samples)) is False
    on_server = app.app_dir / "secrets" / "api_token.txt"
    assert (on_server.read_text() == TOKEN_ONE + "\n") is True and stat.S_IMODE(on_server.stat().st_mode) == 0o600
    web = f"{app.name}-web-1"
    assert (app.server.docker("exec", "-u", "0", web, "cat", "/run/secrets/api_token").strip() == TOKEN_ONE) is True
    one = json.loads((app.state_dir / "current.json").read_text())
    assert one["files"] == {"secrets/api_token.txt": ["web"]} and (TOKEN_ONE not in json.dumps(one)) is True
    kept = app.state_dir / "releases" / f"{one['id']}.files" / "secrets" / "api_token.txt"
    assert (kept.read_text() == TOKEN_ONE + "\n") is True

    # the same commit with a new token is a change: compose recreates web, which sees the new file
    (app.dir / "secrets" / "api_token.txt").write_text(TOKEN_TWO + "\n")
    second = app.berth("deploy")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "nothing changed" not in second.stdout and "web recreated (a secret or config file changed)" in second.stdout
    assert (app.server.docker("exec", "-u", "0", web, "cat", "/run/secrets/api_token").strip() == TOKEN_TWO) is True
    assert "worker" in app.server.containers(app.name)

    rollback = app.berth("rollback", "--yes")
    assert rollback.returncode == 0, rollback.stdout + rollback.stderr
    assert (on_server.read_text() == TOKEN_ONE + "\n") is True
    assert (app.server.docker("exec", "-u", "0", web, "cat", "/run/secrets/api_token").strip() == TOKEN_ONE) is True
    assert (TOKEN_ONE in rollback.stdout + rollback.stderr or TOKEN_TWO in rollback.stdout + rollback.stderr) is False
