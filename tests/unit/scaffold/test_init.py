"""`berth init` (berth/scaffold/project.py, berth/cli/init.py) on three sample repositories: what it writes passes
`berth check --offline` once .env / .env.docker are filled from the examples (with `berth secrets
generate`), a second run changes nothing, --dry-run writes nothing and existing files are kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.helpers import invoke


def berth(root: Path, *args: str):
    return invoke(root, *args)


def fastapi_app(root: Path) -> None:
    (root / "app").mkdir()
    (root / "requirements.txt").write_text("fastapi==0.115.0\nuvicorn[standard]==0.32.0\nsqlalchemy==2.0.36\n"
                                           "asyncpg==0.30.0\nredis==5.2.0\n")
    (root / "app/__init__.py").write_text("")
    (root / "app/main.py").write_text(
        "import os\nfrom fastapi import FastAPI\n\napp = FastAPI()\nSECRET_KEY = os.environ['SECRET_KEY']\n"
        "DATABASE_URL = os.environ['DATABASE_URL']\n\n\n@app.get('/health')\ndef health():\n    return {'ok': True}\n")


def node_app(root: Path) -> None:
    (root / "package.json").write_text(json.dumps({
        "name": "shop", "version": "1.0.0", "main": "server.js",
        "scripts": {"start": "node server.js"}, "dependencies": {"express": "4.21.1"}}, indent=2))
    (root / "package-lock.json").write_text("{}\n")
    (root / "server.js").write_text(
        "const express = require('express');\nconst app = express();\n"
        "app.get('/health', (req, res) => res.send('ok'));\n"
        "app.listen(process.env.PORT || 3000);\nconst token = process.env.SESSION_SECRET;\n")


def static_site(root: Path) -> None:
    (root / "index.html").write_text("<!doctype html><title>hi</title><h1>hello</h1>\n")
    (root / "style.css").write_text("h1 { color: teal }\n")


SAMPLES = {"fastapi": fastapi_app, "node": node_app, "static": static_site}


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and ".git" not in p.relative_to(root).parts}


@pytest.fixture
def sample(tmp_path, git_env, new_repo, run_git):
    def make(kind: str) -> Path:
        root = new_repo(tmp_path / kind)
        remote = new_repo(tmp_path / f"{kind}-remote.git", bare=True)
        run_git(root, "remote", "add", "origin", str(remote))
        SAMPLES[kind](root)
        return root
    return make


@pytest.mark.parametrize("kind", ["fastapi", "node", "static"])
def test_init_writes_files_that_pass_check(sample, run_git, kind):
    root = sample(kind)
    result = berth(root, "init")
    assert result.exit_code == 0, result.output
    for rel in ("docker-compose.yml", "Dockerfile", ".dockerignore", ".env.example", ".env.docker.example",
                ".gitignore", "docs/DEPLOYMENT.md"):
        assert (root / rel).is_file(), rel
    # fill the real files from the examples as the docs say: cp .env.example .env; berth secrets generate
    (root / ".env").write_text((root / ".env.example").read_text())
    generated = berth(root, "secrets", "generate")
    assert generated.exit_code == 0, generated.output
    assert "needs" not in generated.output
    run_git(root, "add", "-A")
    run_git(root, "commit", "-q", "-m", "berth init")
    assert run_git(root, "status", "--porcelain") == ""  # .env and .env.docker are ignored
    check = berth(root, "check", "--offline")
    assert check.exit_code == 0, check.output
    assert "0 errors" in check.output

    from berth.check import run_checks
    from berth.configuration.target import load_target

    report = run_checks(load_target(root), offline=True)
    assert not report.errors
    warnings = [(f.rule, f.message) for f in report.findings if f.severity >= 1]
    assert not warnings, warnings

    # a second run changes nothing
    before = snapshot(root)
    again = berth(root, "init")
    assert again.exit_code == 0, again.output
    assert "nothing to write" in again.output
    assert snapshot(root) == before


def test_fastapi_compose_has_what_the_issue_asks(sample):
    root = sample("fastapi")
    assert berth(root, "init").exit_code == 0
    doc = yaml.safe_load((root / "docker-compose.yml").read_text())
    services = doc["services"]
    assert set(services) == {"app", "db", "redis"}
    for name, svc in services.items():
        assert svc["restart"] == "unless-stopped", name
        assert svc["healthcheck"]["test"], name
        assert svc["deploy"]["resources"]["limits"]["memory"], name
    assert services["app"]["depends_on"] == {"db": {"condition": "service_healthy"},
                                             "redis": {"condition": "service_healthy"}}
    assert doc["networks"]["backend"]["internal"] is True
    assert set(doc["volumes"]) == {"db-data", "redis-data"}
    assert "ports" not in services["db"] and "ports" not in services["redis"]
    dockerfile = (root / "Dockerfile").read_text()
    assert dockerfile.count("FROM ") == 2 and " AS builder" in dockerfile
    assert "USER app" in dockerfile and "HEALTHCHECK" in dockerfile and "/health" in dockerfile
    assert '"uvicorn", "app.main:app"' in dockerfile
    example = (root / ".env.docker.example").read_text()
    for key in ("POSTGRES_PASSWORD", "DATABASE_URL", "REDIS_PASSWORD", "REDIS_URL", "SECRET_KEY", "APP_PORT"):
        assert f"\n{key}=" in example
    assert "postgresql+asyncpg://" in example
    # every variable has a comment right above it
    lines = example.splitlines()
    for i, line in enumerate(lines):
        if "=" in line and not line.startswith("#"):
            assert lines[i - 1].startswith("# "), line
    deployment = (root / "docs/DEPLOYMENT.md").read_text()
    for text in ("203.0.113.10", "POSTGRES_PASSWORD", "berth deploy", "berth status", "berth logs",
                 "berth rollback", "| db |"):
        assert text in deployment, text
    # ports as compose publishes them, with the example's APP_PORT (not the ${APP_PORT:-8000}:8000 template)
    app_row = next(line for line in deployment.splitlines() if line.startswith("| app |"))
    assert f"`{example_value(example, 'APP_PORT')}→8000/tcp`" in app_row, app_row
    assert "internal only" in next(line for line in deployment.splitlines() if line.startswith("| db |"))
    gitignore = (root / ".gitignore").read_text().splitlines()
    assert ".env" in gitignore and ".env.docker" in gitignore and "*.pem" in gitignore


def example_value(text: str, key: str) -> str:
    return next(line.split("=", 1)[1] for line in text.splitlines() if line.startswith(f"{key}="))


def test_a_service_behind_a_profile_is_marked_in_the_deployment_doc(tmp_path):
    from berth.scaffold.project import deployment_doc, detect

    (tmp_path / "requirements.txt").write_text("fastapi\n")
    compose = ("services:\n  web:\n    image: nginx:1.25\n    ports: [\"127.0.0.1:8080:80\", \"9000-9001:9000-9001/udp\"]\n"
               "  debug:\n    image: busybox:1.36\n    profiles: [debug]\n")
    doc = deployment_doc(tmp_path, detect(tmp_path), {"docker-compose.yml": compose})
    assert "| web | `nginx:1.25` | `127.0.0.1:8080→80/tcp, 9000-9001→9000-9001/udp` |" in doc
    assert "| debug (profile debug: not started by default) |" in doc


def test_node_and_static_details(sample):
    node = sample("node")
    assert berth(node, "init").exit_code == 0
    dockerfile = (node / "Dockerfile").read_text()
    assert "npm ci" in dockerfile and "USER node" in dockerfile and '["node", "server.js"]' in dockerfile
    assert '"${APP_PORT:-3000}:3000"' in (node / "docker-compose.yml").read_text()
    assert "SESSION_SECRET=change_me" in (node / ".env.docker.example").read_text()  # read by the app
    static = sample("static")
    assert berth(static, "init").exit_code == 0
    compose = yaml.safe_load((static / "docker-compose.yml").read_text())
    assert set(compose["services"]) == {"web"}
    assert "nginx-unprivileged" in (static / "Dockerfile").read_text()


def test_dry_run_shows_a_diff_and_writes_nothing(sample):
    root = sample("static")
    (root / ".gitignore").write_text("node_modules\n")
    before = snapshot(root)
    result = berth(root, "init", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "--- /dev/null\n+++ b/docker-compose.yml" in result.output
    assert "--- a/.gitignore\n+++ b/.gitignore" in result.output and "+.env.docker" in result.output
    assert "would create" in result.output
    assert snapshot(root) == before


def test_existing_files_are_kept_unless_forced(sample):
    root = sample("fastapi")
    (root / "Dockerfile").write_text("FROM python:3.12-slim\nUSER nobody\nCMD [\"python\", \"-m\", \"app\"]\n")
    (root / ".env.docker.example").write_text("SECRET_KEY=\n")
    result = berth(root, "init")
    assert result.exit_code == 0, result.output
    assert (root / "Dockerfile").read_text().startswith("FROM python:3.12-slim\nUSER nobody")
    assert (root / ".env.docker.example").read_text() == "SECRET_KEY=\n"
    assert "kept" in result.output and "--force" in result.output
    forced = berth(root, "init", "--force")
    assert forced.exit_code == 0, forced.output
    assert "POSTGRES_PASSWORD=" in (root / ".env.docker.example").read_text()
    assert (root / "Dockerfile").read_text().startswith("FROM python:3.12-slim\nUSER nobody")  # detected, not planned


def test_existing_compose_file_drives_the_examples(sample):
    root = sample("static")
    (root / "docker-compose.yml").write_text(
        "services:\n  web:\n    image: \"nginx:${NGINX_TAG:-1.27}\"\n    environment:\n"
        "      API_TOKEN: ${API_TOKEN}\n      SITE_NAME: ${SITE_NAME}\n")
    assert berth(root, "init").exit_code == 0
    example = (root / ".env.docker.example").read_text()
    assert "NGINX_TAG=1.27" in example and "API_TOKEN=change_me" in example and "SITE_NAME=" in example
    assert not (root / "Dockerfile").exists()  # nothing is built
    assert (root / "docker-compose.yml").read_text().startswith("services:\n  web:\n    image")


def test_with_toml(sample):
    root = sample("node")
    assert berth(root, "init", "--with-toml").exit_code == 0
    import tomllib

    data = tomllib.loads((root / "berth.toml").read_text())
    assert set(data["environments"]) == {"staging", "production"}
    assert "production" in (root / "docs/DEPLOYMENT.md").read_text()


def test_unknown_repository(tmp_path):
    result = berth(tmp_path, "init")
    from berth.errors import UsageError

    assert isinstance(result.exception, UsageError)
    assert not list(tmp_path.iterdir())
