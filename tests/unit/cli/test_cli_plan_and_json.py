"""`berth plan` and `berth deploy --json` on a project, without any server: both stop before SSH."""

from __future__ import annotations

import json

from tests.helpers import run_berth


def berth(project, sub_env, *args):
    return run_berth("-C", str(project.root), *args, env=sub_env())


def test_plan_shows_settings_with_origins_and_the_exact_remote_commands(project, sub_env):
    proc = berth(project, sub_env, "plan")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "hosts        203.0.113.5  ← .env:2" in out
    assert f"commit       {project.head()} on main" in out
    assert "1. check: 0 errors" in out
    assert f"target=$(git rev-parse -q --verify '{project.head()}^{{commit}}')" in out
    assert 'git -c advice.detachedHead=false checkout -q --no-overwrite-ignore --detach "$target"' in out
    assert "docker compose --project-name app --file docker-compose.yml --env-file .env.docker up --detach" in out
    assert "confirm" not in out  # staging does not ask


def test_plan_names_the_services_that_qualify_for_a_start_first_rollout(project, sub_env):
    project.write("docker-compose.yml", project.COMPOSE + "  db:\n    image: postgres:16\n    restart: always\n"
                  "    volumes: [pgdata:/var/lib/postgresql/data]\n"
                  '    healthcheck:\n      test: ["CMD", "pg_isready"]\nvolumes:\n  pgdata: {}\n')
    project.commit("a database beside the web service")
    out = berth(project, sub_env, "plan").stdout
    assert "qualify for a start-first switch: web, publishes HTTP on 80 and has a health gate)" in out, out
    assert "db," not in out.split("start-first switch:")[1].split(")")[0]


def test_plan_with_the_proxy_shows_the_switch_it_runs(project, sub_env):
    project.write(".env", project.DOTENV + "BERTH_PROXY=true\n")
    out = berth(project, sub_env, "plan").stdout
    assert "(web: start-first, publishes HTTP on 80 and has a health gate)" in out, out
    assert "up --detach --no-deps --no-recreate --scale web=N+1 web" in out
    assert "caddy reload --config /etc/caddy/Caddyfile --adapter caddyfile" in out
    assert "/proxy/compose.yml" in out  # the override every compose command names


def test_plan_with_domains_shows_the_https_site_and_the_ca_root_it_ships(project, sub_env, tmp_path):
    import subprocess

    subprocess.run(["openssl", "req", "-x509", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-keyout", str(tmp_path / "k"), "-out", str(tmp_path / "ca.pem"), "-days", "3",
                    "-subj", "/CN=test CA"], check=True, capture_output=True)
    project.write("berth.toml", '[defaults]\ndomains = { web = ["app.example.com"] }\n'
                                f'acme_ca = "https://ca.internal/dir"\nacme_ca_root = "{tmp_path / "ca.pem"}"\n')
    project.commit("https")
    out = berth(project, sub_env, "plan").stdout
    assert "(HTTPS: app.example.com → web:80 on ports 80/443; certificates by ACME from https://ca.internal/dir, " \
           "trusting acme_ca_root, kept in the berth-proxy-data volume; HTTP on port 80 redirects to HTTPS)" in out, out
    assert "/proxy/caddy/acme-ca.pem" in out and "(web: start-first," in out  # domains turn the proxy on
    preflight = next(line for line in out.splitlines() if "listen" in line and "awk" in line)
    assert "0050" in preflight.upper() and "01BB" in preflight.upper(), preflight  # 80 and 443 must be free


def test_plan_of_production_includes_the_confirmation_step(project, sub_env):
    project.write(".env", project.DOTENV.replace("ENVIRONMENT=staging", "ENVIRONMENT=production"))
    out = berth(project, sub_env, "plan").stdout
    assert "2. confirm: type 'production'" in out and "3. connect:" in out


def test_plan_lists_check_errors_and_says_deploy_would_stop(project, sub_env):
    project.write("docker-compose.yml", project.COMPOSE + "    environment:\n      X: ${MISSING_VAR}\n")
    project.commit("uses a missing variable")
    proc = berth(project, sub_env, "plan")
    assert "deploy would stop here" in proc.stdout and "MISSING_VAR" in proc.stdout


def test_deploy_json_reports_a_check_failure_as_one_document(project, sub_env):
    (project.root / "new-file.txt").write_text("not committed\n")
    proc = berth(project, sub_env, "deploy", "--json", "--yes")
    assert proc.returncode == 1
    outcome = json.loads(proc.stdout)  # stdout is exactly one JSON document
    assert outcome["ok"] is False
    assert "nothing was sent to any server" in outcome["error"]
    assert [s["step"] for s in outcome["steps"]] == ["check"] and outcome["steps"][0]["ok"] is False
    assert outcome["hosts"] == []


def test_environment_and_host_work_after_the_command_name_too(project, sub_env):
    """`berth plan -e production --host h` means what `berth -e production --host h plan` means."""
    project.write(".env", project.DOTENV.replace("ENVIRONMENT=staging", "ENVIRONMENT=production"))
    before = berth(project, sub_env, "-e", "production", "--host", "198.51.100.7", "plan")
    after = berth(project, sub_env, "plan", "-e", "production", "--host", "198.51.100.7")
    assert before.returncode == after.returncode == 0, after.stderr
    assert "hosts        198.51.100.7  ← --host" in after.stdout
    assert before.stdout == after.stdout
    # and a wrong one is refused the same way from either place
    wrong = berth(project, sub_env, "doctor", "-e", "staging")
    assert wrong.returncode != 0 and "-e staging was asked for" in wrong.stderr
    assert "Traceback" not in wrong.stderr


def test_plan_with_a_pre_deploy_hook_prints_the_hook_command_the_lock_and_the_record_steps(project, sub_env):
    project.write("berth.toml", '[defaults]\npre_deploy = ["docker compose run --rm web migrate", "local: make notes"]\n')
    project.commit("a migration hook")
    project.push()
    proc = berth(project, sub_env, "plan")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    numbered = [line.split(".", 1)[1].strip().rstrip(":").split(":")[0] for line in out.splitlines()
                if line[:1].isdigit() and ". " in line[:4]]
    assert numbered == ["check", "connect", "lock", "preflight", "sync", "env", "build", "pre-hook", "deploy",
                        "verify", "record", "unlock"]
    assert "docker compose run --rm web migrate" in out and "export BERTH_RELEASE=RELEASE_ID" in out
    assert "locally, in the repository: /bin/sh -e -c make notes" in out
    assert "owner record as JSON" in out and "mkdir '~/.berth/app/lock'" in out  # the lock, with its script
    assert '"$d/history.jsonl"' in out and "@@keep" in out and "docker tag IMAGE_ID" in out  # record, keep, prune
    assert "audit.jsonl" in out  # the audit event
    assert "compose v1 or v2 is unknown until berth connects" in out


def test_plan_without_hooks_has_no_hook_steps(project, sub_env):
    out = berth(project, sub_env, "plan").stdout
    assert "pre-hook" not in out and "post-hook" not in out and "4. preflight:" in out
