"""berth.model.compose.resolve and `berth config`: the resolved compose model, checked against compose itself.

The differential tests run the real `docker compose config --format json` (Compose v2, no daemon
needed; skipped without it) on the same files and env file and compare the `services` part with
`berth config --show-secrets --format json`.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from berth.cli import Ctx
from berth.cli.config import config
from berth.configuration.target import load_target
from berth.errors import BerthError, UsageError
from berth.model.compose.resolve import byte_size, format_duration, go_duration, resolve_compose
from tests.helpers import compose_available

REPO = Path(__file__).resolve().parents[3]
DOTENV = "ENVIRONMENT=staging\nSERVER_IP=203.0.113.5\nSERVER_USER=deploy\nHEALTH_URL=http://203.0.113.5/health\n"


def make_app(root: Path, compose: str | dict[str, str], app_env: str = "", dotenv: str = DOTENV,
             files: dict[str, str | bytes] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    composes = {"docker-compose.yml": compose} if isinstance(compose, str) else compose
    for name, text in {**composes, ".env": dotenv, ".env.docker": app_env, **(files or {})}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text) if isinstance(text, bytes) else path.write_text(text)
    return root


def berth_config(root: Path, *args: str, environment: str | None = None):
    result = CliRunner().invoke(config, list(args), obj=Ctx(root, environment, (), False))
    return result


def as_json(root: Path, *args: str, environment: str | None = None) -> dict:
    result = berth_config(root, "--format", "json", *args, environment=environment)
    assert result.exit_code == 0, (result.output, result.exception)
    return json.loads(result.output)


# --------------------------------------------------------------------------- conversions


@pytest.mark.parametrize("text, expected", [
    ("2s", "2s"), ("90s", "1m30s"), ("1m", "1m0s"), ("1h", "1h0m0s"), ("1500ms", "1.5s"), ("250ms", "250ms"),
    ("1.5h", "1h30m0s"), ("0", "0s"), ("10us", "10µs"), ("1m30.5s", "1m30.5s"), ("100ns", "100ns"),
    ("2h45m", "2h45m0s"), ("not a duration", "not a duration"),
])
def test_go_duration(text, expected):
    assert go_duration(text) == expected


def test_format_duration_fractions():
    assert format_duration(1_234_567) == "1.234567ms"
    assert format_duration(61_000_000_001) == "1m1.000000001s"


@pytest.mark.parametrize("text, expected", [
    ("512M", "536870912"), ("1.5g", "1610612736"), ("64mb", "67108864"), ("10k", "10240"), ("100", "100"),
    (1024, "1024"), ("1GiB", "1073741824"), ("lots", "lots"),
])
def test_byte_size(text, expected):
    assert byte_size(text) == expected


# --------------------------------------------------------------------------- berth config


APP = """\
services:
  web:
    build: ./web
    restart: unless-stopped
    env_file: .env.docker
    environment:
      APP_ENV: ${APP_ENV:-production}
      DSN: "postgres://app:${DB_PASSWORD}@db/app"
    command: ["serve", "--token", "${API_TOKEN}"]
    ports:
      - "${WEB_PORT:-8080}:8080"
    healthcheck:
      test: wget -q -O /dev/null http://127.0.0.1:8080/health
      interval: 90s
"""
APP_ENV = "DB_PASSWORD=hunter2hunter2\nAPI_TOKEN=tok_0123456789\nSHORT_KEY=abc\nGREETING=\"hi $$ there\"\n"


def test_yaml_output_has_settings_with_origins_and_masks_secrets(tmp_path):
    root = make_app(tmp_path / "shop", APP, APP_ENV, files={"web/Dockerfile": "FROM busybox:1.36\n"})
    result = berth_config(root)
    assert result.exit_code == 0, result.output
    doc = yaml.safe_load(result.output)
    settings = doc["x-berth"]
    assert settings["environment"] == {"value": "staging", "from": ".env:1"}
    assert settings["hosts"] == {"value": ["203.0.113.5"], "from": ".env:2"}
    assert settings["user"] == {"value": "deploy", "from": ".env:3"}
    assert settings["app_dir"] == {"value": "~/shop", "from": "default"}
    assert settings["project"]["value"] == "shop"
    assert settings["compose_files"] == {"value": ["docker-compose.yml"], "from": "default"}
    assert settings["env_file"] == {"value": ".env.docker", "from": "default"}
    assert settings["health_urls"] == {"value": ["http://203.0.113.5/health"], "from": ".env:4"}
    assert doc["name"] == "shop"
    web = doc["services"]["web"]
    assert web["build"] == {"context": str(root / "web"), "dockerfile": "Dockerfile"}
    env = web["environment"]
    assert env["DB_PASSWORD"] == env["API_TOKEN"] == env["SHORT_KEY"] == env["DSN"] == "****"
    assert env["GREETING"] == "hi $$ there" and env["APP_ENV"] == "production"
    assert web["command"] == ["serve", "--token", "****"]
    assert web["healthcheck"] == {"test": ["CMD-SHELL", "wget -q -O /dev/null http://127.0.0.1:8080/health"],
                                  "interval": "1m30s"}
    assert web["ports"] == [{"mode": "ingress", "target": 8080, "published": "8080", "protocol": "tcp"}]
    for secret in ("hunter2hunter2", "tok_0123456789"):
        assert secret not in result.output


def test_show_secrets_and_json(tmp_path):
    root = make_app(tmp_path / "shop", APP, APP_ENV, files={"web/Dockerfile": "FROM busybox:1.36\n"})
    doc = as_json(root, "--show-secrets")
    env = doc["services"]["web"]["environment"]
    assert env["DSN"] == "postgres://app:hunter2hunter2@db/app"
    assert env["SHORT_KEY"] == "abc"
    assert doc["services"]["web"]["command"][-1] == "tok_0123456789"


def test_environment_flag_and_berth_toml_origins(tmp_path):
    toml = ('[defaults]\nuser = "deploy"\napp_dir = "~/apps/shop"\n\n[environments.production]\n'
            'hosts = ["203.0.113.20", "203.0.113.21"]\nhealth_urls = ["https://shop.example.com/up"]\n'
            'project = "shop-prod"\n')
    root = make_app(tmp_path / "shop", APP, APP_ENV, files={"berth.toml": toml, "web/Dockerfile": "FROM busybox:1\n"})
    doc = as_json(root, environment="production")
    s = doc["x-berth"]
    assert s["environment"] == {"value": "production", "from": "-e"}
    assert s["hosts"] == {"value": ["203.0.113.20", "203.0.113.21"],
                          "from": "berth.toml:6 [environments.production] hosts"}
    assert s["user"]["from"] == "berth.toml:2 [defaults] user"
    assert s["project"] == {"value": "shop-prod", "from": "berth.toml:8 [environments.production] project"}
    assert s["confirm"] == {"value": True, "from": "default"}
    assert doc["name"] == "shop-prod"
    assert doc["networks"]["default"]["name"] == "shop-prod_default"


def test_environment_option_on_the_command_itself(tmp_path):
    toml = '[environments.staging]\nhosts = ["203.0.113.5"]\n\n[environments.production]\nhosts = ["203.0.113.20"]\n'
    root = make_app(tmp_path / "shop", "services:\n  web:\n    image: nginx:1.25\n", files={"berth.toml": toml})
    doc = as_json(root, "-e", "production")
    assert doc["x-berth"]["environment"] == {"value": "production", "from": "-e"}
    assert doc["x-berth"]["hosts"]["value"] == ["203.0.113.20"]
    assert as_json(root)["x-berth"]["environment"] == {"value": "staging", "from": ".env:1"}


def test_missing_env_file_is_a_usage_error(tmp_path):
    root = make_app(tmp_path / "app", "services:\n  web:\n    image: nginx:1.25\n")
    (root / ".env.docker").unlink()
    result = berth_config(root)
    assert isinstance(result.exception, UsageError)
    assert ".env.docker does not exist" in result.exception.what


def test_required_variable_error_is_located(tmp_path):
    root = make_app(tmp_path / "app", "services:\n  web:\n    image: nginx:1.25\n    environment:\n"
                                      "      X: ${NEEDED:?set NEEDED}\n")
    result = berth_config(root)
    assert isinstance(result.exception, BerthError)
    assert result.exception.where == f"{root / 'docker-compose.yml'}:5:10"
    assert "set NEEDED" in result.exception.what


def test_invalid_template_error_is_located(tmp_path):
    root = make_app(tmp_path / "app", 'services:\n  web:\n    image: "nginx:${TAG"\n')
    result = berth_config(root)
    assert isinstance(result.exception, UsageError)
    assert result.exception.where == f"{root / 'docker-compose.yml'}:3:12"


def test_env_file_secrets_are_masked_too(tmp_path):
    compose = "services:\n  web:\n    image: nginx:1.25\n    env_file: [common.env]\n"
    root = make_app(tmp_path / "app", compose, "X=1\n", files={"common.env": "STRIPE_SECRET=sk_live_abcdef\nA=1\n"})
    doc = as_json(root)
    assert doc["services"]["web"]["environment"] == {"A": "1", "STRIPE_SECRET": "****"}


def test_profiles_only_from_compose_profiles(tmp_path):
    compose = ("services:\n  web:\n    image: nginx:1.25\n  debug:\n    image: busybox:1\n    profiles: [debug]\n")
    root = make_app(tmp_path / "app", compose)
    assert set(as_json(root)["services"]) == {"web"}
    (root / ".env.docker").write_text("COMPOSE_PROFILES=debug\n")
    assert set(as_json(root)["services"]) == {"web", "debug"}


def test_resolve_compose_returns_the_unescaped_model(tmp_path):
    root = make_app(tmp_path / "app", "services:\n  web:\n    image: nginx:1.25\n    environment:\n      A: a$$b\n")
    model = resolve_compose(load_target(root)).model
    assert model["services"]["web"]["environment"] == {"A": "a$b"}


@pytest.mark.parametrize("compose, files, message", [
    ("include:\n  - db.yml\nservices:\n  web:\n    image: nginx:1.25\n", {}, "include: db.yml does not exist"),
    ("include:\n  - db.yml\nservices:\n  db:\n    image: nginx:1.25\n",
     {"db.yml": "services:\n  db:\n    image: postgres:16\n"}, "services.db conflicts with imported resource"),
    ("include:\n  - db.yml\nservices:\n  web:\n    image: nginx:1.25\n",
     {"db.yml": "include:\n  - db.yml\nservices:\n  db:\n    image: postgres:16\n"}, "includes itself"),
    ("include:\n  - env_file: x.env\nservices:\n  web:\n    image: nginx:1.25\n", {}, "has no path"),
])
def test_an_include_compose_refuses_is_refused_at_its_line(tmp_path, compose, files, message):
    root = make_app(tmp_path / "app", compose, files=files)
    result = berth_config(root)
    assert isinstance(result.exception, UsageError), result.output
    assert message in result.exception.what
    assert result.exception.where.startswith(str(root))


def test_config_command_help_lists_its_options():
    result = CliRunner().invoke(config, ["--help"])
    assert result.exit_code == 0
    assert "--show-secrets" in result.output and "--format [yaml|json]" in result.output


# --------------------------------------------------------------------------- against docker compose




needs_compose = pytest.mark.skipif(not compose_available(), reason="docker compose (v2) is not installed")


def docker_compose_config(root: Path, files: list[str], project: str, env_file: str = ".env.docker") -> dict:
    argv = ["docker", "compose", "--project-directory", str(root), "--project-name", project]
    for name in files:
        argv += ["--file", str(root / name)]
    argv += ["--env-file", str(root / env_file), "config", "--format", "json"]
    # only PATH and HOME: the shell's variables must not take part in the interpolation
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/root")}
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=root, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


RICH = """\
x-common: &common
  restart: always
  labels:
    team: core
services:
  web:
    <<: *common
    build:
      context: ./web
      args:
        - VERSION=${VERSION:-dev}
        - GREETING
      target: prod
    init: true
    env_file:
      - path: ./optional.env
        required: false
      - ./common.env
    environment:
      APP_ENV: ${APP_ENV:-production}
      FROM_ENV_FILE:
      LIST_NOT_SET:
      NUM: 1
      BOOL: true
      DOLLAR: a$$b
    command: sh -c 'echo "$$HOME" && exec httpd -f'
    ports:
      - "${WEB_PORT:-8080}:8080"
      - "127.0.0.1::9000"
      - "9090-9091:8080-8081/udp"
      - target: 443
        published: ${TLS_PORT}
        host_ip: 0.0.0.0
    expose: [80, "90/udp"]
    volumes:
      - ./static:/srv/static:ro,z
      - data:/data
      - /anon
      - ~/cache:/cache
      - type: bind
        source: ./conf
        target: /conf
        read_only: true
      - type: tmpfs
        target: /tmp
    depends_on:
      db:
        condition: service_healthy
        restart: true
      cache:
        condition: service_started
    healthcheck:
      test: wget -q -O /dev/null http://127.0.0.1:8080/health
      interval: 90s
      timeout: 1500ms
      retries: "3"
      start_period: 1m
    deploy:
      replicas: ${REPLICAS:-1}
      resources:
        limits:
          cpus: "0.5"
          memory: 512M
        reservations:
          memory: 1g
      restart_policy:
        condition: on-failure
        delay: 5s
        max_attempts: 3
        window: 120s
    networks: [front, back]
    extra_hosts: ["host.docker.internal:host-gateway"]
    dns: 1.1.1.1
    stop_grace_period: 90s
    privileged: ${PRIVILEGED:-false}
    read_only: false
    secrets: [api_key]
    logging:
      driver: json-file
      options:
        max-size: 10m
  db:
    image: "postgres:${PG_TAG}"
    environment:
      - POSTGRES_PASSWORD=${DB_PASSWORD}
      - POSTGRES_DB
    volumes:
      - pg:/var/lib/postgresql/data
    networks:
      back:
        aliases: [database]
    healthcheck:
      test: ["CMD", "pg_isready"]
    mem_limit: 256m
    cpus: 0.5
    shm_size: 64m
  cache:
    image: redis:7
    extends:
      service: base
    ports: ["127.0.0.1:6379:6379"]
    sysctls: [net.core.somaxconn=1024]
    ulimits:
      nofile:
        soft: 1024
        hard: 2048
  base:
    image: busybox:1.36
    user: "1000:1000"
    cap_drop: [ALL]
    entrypoint: ["/bin/sh", "-c"]
  tools:
    image: busybox:1.36
    profiles: [tools]
networks:
  front: {}
  back:
    internal: true
  unused: {}
volumes:
  data: {}
  pg:
    name: shop-pg
  unused: {}
secrets:
  api_key:
    file: ./api_key.txt
"""
RICH_ENV = """\
# the app's settings
APP_ENV=staging
VERSION=1.2.3
GREETING="hello ${APP_ENV}"
PG_TAG=16.4
DB_PASSWORD='pa$$word'
TLS_PORT=8443
REPLICAS=2
FROM_ENV_FILE=overridden-by-environment
POSTGRES_DB=shop
export EXPORTED=yes
"""
RICH_FILES = {
    "web/Dockerfile": "FROM busybox:1.36\n",
    "common.env": "COMMON=1\nFROM_ENV_FILE=from-common\nREF=${VERSION}\nLITERAL='${VERSION}'\nBARE_FROM_PROJECT\n"
                  "APP_ENV=from-env-file\n",
    "api_key.txt": "k\n",
}
OVERRIDE = """\
services:
  web:
    command: ["httpd", "-f", "-p", "8080"]
    environment:
      APP_ENV: override
      EXTRA: "1"
    labels:
      extra: "yes"
    ports: ["127.0.0.1:8443:443"]
    volumes:
      - ./static-prod:/srv/static
    healthcheck:
      interval: 10s
    deploy:
      resources:
        limits:
          cpus: "1.0"
    dns: [8.8.8.8]
  db:
    environment:
      POSTGRES_DB: shop_prod
"""

EXAMPLE = REPO / "examples" / "app"

DIFFERENTIAL = {
    "fixture project": ({"docker-compose.yml": "services:\n  web:\n    image: \"nginx:${TAG}\"\n    ports:\n"
                                               "      - \"8080:80\"\n    restart: unless-stopped\n    healthcheck:\n"
                                               "      test: [\"CMD\", \"wget\", \"-q\", \"-O\", \"/dev/null\", "
                                               "\"http://127.0.0.1/\"]\n"},
                        "TAG=1.25\n", {}, ""),
    "example app": ({"docker-compose.yml": (EXAMPLE / "docker-compose.yml").read_text()},
                    (EXAMPLE / ".env.docker.example").read_text(),
                    {"web/Dockerfile": "FROM busybox:1.35\n", "worker/Dockerfile": "FROM busybox:1.35\n"}, ""),
    "rich": ({"docker-compose.yml": RICH}, RICH_ENV, RICH_FILES, ""),
    "rich + override": ({"docker-compose.yml": RICH, "compose.prod.yml": OVERRIDE}, RICH_ENV, RICH_FILES,
                        "COMPOSE_FILES=docker-compose.yml,compose.prod.yml\n"),
    "rich + profile": ({"docker-compose.yml": RICH}, RICH_ENV + "COMPOSE_PROFILES=tools\n", RICH_FILES, ""),
    "extends from another file": (
        {"docker-compose.yml": "services:\n  web:\n    extends:\n      file: common/base.yml\n      service: base\n"
                               "    image: nginx:1.25\n    environment:\n      B: \"2\"\n"},
        "TAG=7\n",
        {"common/base.yml": "services:\n  base:\n    build: ./ctx\n    environment:\n      A: \"${TAG}\"\n"
                            "    volumes:\n      - ./data:/data\n    env_file: base.env\n",
         "common/base.env": "X=1\n", "common/ctx/Dockerfile": "FROM busybox:1.36\n"},
        ""),
    # include: a project of its own (paths from its directory, its .env under the project's variables)
    "include": (
        {"docker-compose.yml": "include:\n  - db/compose.yaml\nservices:\n  web:\n    image: nginx:${TAG}\n"
                               "    depends_on: [db]\n    volumes: [db-data:/srv]\n"},
        "TAG=1.25\nPGTAG=16\n",
        {"db/compose.yaml": "services:\n  db:\n    image: postgres:${PGTAG:-15}\n    env_file: db.env\n"
                            "    volumes: [./data:/var/lib/postgresql/data, db-data:/backup]\n"
                            "    environment: {FROM_DOTENV: \"${ONLY_HERE:-unset}\", TAG: \"${TAG}\"}\n"
                            "    secrets: [db-password]\nvolumes:\n  db-data: {}\n"
                            "secrets:\n  db-password:\n    file: ./password.txt\n",
         "db/.env": "PGTAG=14\nONLY_HERE=from-db-dotenv\n", "db/db.env": "POSTGRES_DB=app\n",
         "db/password.txt": "x\n"},
        ""),
    "include, long form and nested": (
        {"docker-compose.yml": "include:\n  - path: [stack/cache.yml]\n    project_directory: stack\n"
                               "    env_file: stack/cache.env\nservices:\n  web:\n    image: nginx:1.25\n"},
        "",
        {"stack/cache.yml": "include:\n  - queue.yml\nservices:\n  cache:\n    image: redis:${REDIS_TAG}\n"
                            "    volumes: [./conf:/usr/local/etc/redis]\n",
         "stack/queue.yml": "services:\n  queue:\n    image: rabbitmq:${RABBIT_TAG:-3}\n",
         "stack/cache.env": "REDIS_TAG=7.2\nRABBIT_TAG=3.13\n"},
        ""),
    # compose follows extends inside each file before it merges the files: admin gets the base file's WORKERS
    "extends, then an override": (
        {"docker-compose.yml": "services:\n  web:\n    image: nginx:1.25\n    environment: [LOG=info, WORKERS=2]\n"
                               "  admin:\n    extends: web\n    environment: [ROLE=admin]\n",
         "compose.prod.yml": "services:\n  web:\n    environment: [WORKERS=8]\n"},
        "", {}, "COMPOSE_FILES=docker-compose.yml,compose.prod.yml\n"),
}


@needs_compose
@pytest.mark.parametrize("name", list(DIFFERENTIAL))
def test_services_match_docker_compose_config(tmp_path, name):
    composes, app_env, files, dotenv_extra = DIFFERENTIAL[name]
    root = make_app(tmp_path / "shop", composes, app_env, DOTENV + dotenv_extra, files)
    ours = as_json(root, "--show-secrets")
    target = load_target(root)
    theirs = docker_compose_config(root, list(target.compose_files), target.project)
    assert ours["services"] == theirs["services"]
    for key in ("networks", "volumes", "secrets"):
        assert ours.get(key) == theirs.get(key), key


@needs_compose
def test_yaml_output_is_itself_a_compose_file_compose_reads_the_same(tmp_path):
    root = make_app(tmp_path / "shop", RICH, RICH_ENV, files=RICH_FILES)
    result = berth_config(root, "--show-secrets")
    assert result.exit_code == 0, result.output
    (root / "resolved.yml").write_text(result.output)
    (root / "empty.env").write_text("")
    again = docker_compose_config(root, ["resolved.yml"], "shop", env_file="empty.env")
    original = docker_compose_config(root, ["docker-compose.yml"], "shop")
    assert again["services"] == original["services"]
