"""The compose best-practice rules (berth/check/rules/compose_practice.py), firing and quiet.

Each case writes a compose file (and, where needed, env values, Dockerfiles or ENVIRONMENT) into a
real project from the `project` fixture, runs every check, and looks at one rule's findings:
where they point (file, line, column of the offending key) and what they say. CASES is collected by
test_check_rules.test_every_rule_has_a_firing_and_a_quiet_case and run here, with the harness in rule_cases.py.
"""

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

import berth.check.rules  # noqa: F401  (registers the rules)
from berth.check import run_checks
from berth.check.findings import Finding, Severity
from berth.configuration.target import load_target
from tests.helpers.rule_cases import Case, both, expect_first, noop, rule_test, write_files

REPO = Path(__file__).resolve().parents[3]


def case(rule: str, fires: bool, name: str, compose: str | None = None, *, files: dict[str, str] | None = None,
         app_env: str = "", environment: str = "staging", at: tuple[int, int | None] | None = None,
         count: int | None = None, contains: str = "", severity: Severity | None = None,
         check: Callable[[list[Finding]], None] | None = None) -> Case:
    """A Case that writes the given files and, when it fires, looks at its first finding (by line, column).

    compose: docker-compose.yml (None: the fixture's well-formed one); files: more files to write
    (Dockerfiles...); app_env: appended to .env.docker; environment: ENVIRONMENT in .env.
    The first finding must be in docker-compose.yml, at: its (line, col); count: how many; contains: a part
    of its message; severity: its severity; check: called with all the findings. None: not checked.
    """
    def set_environment(project) -> None:
        project.write(".env", project.DOTENV.replace("ENVIRONMENT=staging", f"ENVIRONMENT={environment}"))

    setup = both(write_files({"docker-compose.yml": compose, **(files or {})}, app_env),
                 set_environment if environment != "staging" else noop)
    return Case(rule, fires, name, setup, expect_first("docker-compose.yml", at=at, count=count, contains=contains,
                                                       severity=severity, check=check))


WEB = """\
services:
  web:
    image: nginx:1.25
    restart: unless-stopped
    healthcheck:
      test: ["CMD", "true"]
"""

NO_HEALTHCHECK = "services:\n  web:\n    image: nginx:1.25\n    restart: unless-stopped\n"

BUILT = """\
services:
  app:
    build: ./app
    restart: unless-stopped
"""

GOOD_DOCKERFILE = 'FROM python:3.12-slim\nUSER app\nCMD ["python", "-m", "app"]\n'
HEALTHY_DOCKERFILE = GOOD_DOCKERFILE + 'HEALTHCHECK CMD ["python", "-m", "app.ping"]\n'

ONE_SHOT = """\
services:
  migrate:
    image: app:1.0
  web:
    image: nginx:1.25
    restart: unless-stopped
    healthcheck:
      test: ["CMD", "true"]
    depends_on:
      migrate:
        condition: service_completed_successfully
"""

BACKEND = """\
services:
  proxy:
    image: nginx:1.25
    ports: ["80:80"]
    networks: [front]
  app:
    image: app:1.0
    networks: [front, back]
  db:
    image: postgres:16
    networks: [back]
networks:
  front: {}
  back: {}
"""

DEPENDS = """\
services:
  web:
    image: app:1.0
    depends_on:
{deps}
  db:
    image: postgres:16
{db_health}
"""
DB_HEALTH = "    healthcheck:\n      test: [\"CMD\", \"pg_isready\"]\n"


def _ports(*entries: str) -> str:
    return "services:\n  db:\n    image: postgres:16\n    ports:\n" + "".join(f"      - {e}\n" for e in entries)


def _severity(expected: Severity):
    def check(found: list[Finding]) -> None:
        assert [f.severity for f in found] == [expected] * len(found)
    return check


CASES: list[Case] = [
    # practice.healthcheck-missing
    case("practice.healthcheck-missing", True, "no healthcheck", NO_HEALTHCHECK, at=(2, 3),
         contains="service web has no healthcheck"),
    case("practice.healthcheck-missing", True, "Dockerfile unreadable, so it cannot say",
         BUILT, files={"app/Dockerfile": "FROM python:3.12\nFROBNICATE x\n"}, at=(2, 3)),
    case("practice.healthcheck-missing", False, "healthcheck defined", WEB),
    case("practice.healthcheck-missing", False, "deliberately disabled",
         NO_HEALTHCHECK + "    healthcheck:\n      disable: true\n"),
    case("practice.healthcheck-missing", False, "only tunes the image's own test",
         NO_HEALTHCHECK + "    healthcheck:\n      interval: 5s\n"),
    case("practice.healthcheck-missing", False, "one-shot job others wait for", ONE_SHOT),
    case("practice.healthcheck-missing", False, "Dockerfile has HEALTHCHECK",
         BUILT, files={"app/Dockerfile": HEALTHY_DOCKERFILE}),
    case("practice.healthcheck-missing", False, "built without one: dockerfile.healthcheck-missing says so there",
         BUILT, files={"app/Dockerfile": GOOD_DOCKERFILE}),
    # practice.restart-missing
    case("practice.restart-missing", True, "no restart", "services:\n  web:\n    image: nginx:1.25\n",
         at=(2, 3), contains="service web has no restart policy"),
    case("practice.restart-missing", False, "restart set", WEB),
    # the review's false positive: restart: comes from the service extended
    case("practice.restart-missing", False, "restart through extends",
         "services:\n  base:\n    image: nginx:1.25\n    restart: unless-stopped\n"
         "  web:\n    extends:\n      service: base\n"),
    case("practice.restart-missing", False, "restart through a chain of extends, short form",
         "services:\n  base:\n    image: nginx:1.25\n    restart: always\n"
         "  mid:\n    extends: base\n  web:\n    extends:\n      service: mid\n"),
    case("practice.restart-missing", False, "restart through extends.file",
         "services:\n  web:\n    extends:\n      file: common.yml\n      service: base\n",
         files={"common.yml": "services:\n  base:\n    image: nginx:1.25\n    restart: always\n"}),
    case("practice.restart-missing", True, "extends a service without restart", "services:\n  base:\n"
         "    image: nginx:1.25\n    restart: \"no\"\n  web:\n    extends:\n      service: other\n"
         "  other:\n    image: nginx:1.25\n", at=(5, 3), count=2, contains="service web has no restart policy"),
    case("practice.restart-missing", True, "an extends cycle ends", "services:\n  a:\n    extends: b\n"
         "  b:\n    extends: a\n", at=(2, 3), count=2),
    case("practice.restart-missing", False, "deploy.restart_policy",
         "services:\n  web:\n    image: nginx:1.25\n    deploy:\n      restart_policy:\n        condition: any\n"),
    case("practice.restart-missing", False, "one-shot job", ONE_SHOT),
    # practice.no-resource-limits
    case("practice.no-resource-limits", True, "production without limits", WEB, environment="production",
         at=(2, 3), contains="no memory limit in production"),
    case("practice.no-resource-limits", False, "staging does not need them", WEB),
    case("practice.no-resource-limits", False, "deploy.resources.limits.memory",
         WEB + "    deploy:\n      resources:\n        limits:\n          memory: 256M\n", environment="production"),
    case("practice.no-resource-limits", False, "mem_limit", WEB + "    mem_limit: 256m\n", environment="production"),
    # practice.image-unpinned
    case("practice.image-unpinned", True, "no tag", WEB.replace("nginx:1.25", "nginx"), at=(3, 5),
         contains="'nginx' has no tag"),
    case("practice.image-unpinned", True, ":latest", WEB.replace("nginx:1.25", "nginx:latest"), at=(3, 5),
         contains="is :latest"),
    case("practice.image-unpinned", True, "interpolated to latest", WEB.replace("nginx:1.25", '"${IMAGE}"'),
         app_env="IMAGE=redis:latest\n", at=(3, 5), contains="'redis:latest' (from '${IMAGE}') is :latest"),
    case("practice.image-unpinned", True, "registry with a port, no tag",
         WEB.replace("nginx:1.25", "registry.local:5000/team/app"), contains="has no tag"),
    case("practice.image-unpinned", True, "a floating tag: nightly", WEB.replace("nginx:1.25", "caddy:nightly"),
         at=(3, 5), contains="'caddy:nightly' has the floating tag :nightly, which moves to new releases"),
    case("practice.image-unpinned", True, "a floating tag, in capitals",
         WEB.replace("nginx:1.25", "traefik:STABLE"), contains="floating tag :STABLE"),
    case("practice.image-unpinned", False, "a version tag that contains a floating word",
         WEB.replace("nginx:1.25", "nginx:stable-1.27-alpine")),
    case("practice.image-unpinned", False, "tag from the env file (the fixture)", None),
    case("practice.image-unpinned", False, "digest", WEB.replace("nginx:1.25", "nginx@sha256:" + "a" * 64)),
    case("practice.image-unpinned", False, "built image name", BUILT + "    image: shop/app\n",
         files={"app/Dockerfile": HEALTHY_DOCKERFILE}),
    case("practice.image-unpinned", False, "unset variable: compose.unset-variable says so",
         WEB.replace("nginx:1.25", '"nginx:${NOT_SET}"')),
    # practice.data-port-public
    case("practice.data-port-public", True, "postgres on all interfaces", _ports('"5432:5432"'), at=(5, 9),
         contains="PostgreSQL port 5432 on all interfaces (host port 5432)", severity=Severity.ERROR),
    case("practice.data-port-public", True, "container port only: random host port",
         "services:\n  cache:\n    image: redis:7\n    ports:\n      - 6379\n", at=(5, 9),
         contains="a random host port"),
    case("practice.data-port-public", True, "long syntax without host_ip",
         "services:\n  m:\n    image: mongo:7\n    ports:\n      - target: 27017\n        published: 27017\n",
         at=(5, 9), contains="MongoDB"),
    case("practice.data-port-public", True, "explicit 0.0.0.0 and a range",
         _ports('"0.0.0.0:5432:5432"', '"6378-6379:6378-6379"'), count=2),
    case("practice.data-port-public", True, "a database image on another port",
         "services:\n  db:\n    image: postgres:16\n    ports: [\"15432:15432\"]\n", contains="port 15432"),
    case("practice.data-port-public", True, "interpolated port",
         _ports('"${DB_PORT}:5432"'), app_env="DB_PORT=5433\n", contains="host port 5433"),
    case("practice.data-port-public", True, "a database on the host network",
         "services:\n  cache:\n    image: redis:7\n    network_mode: host\n", at=(4, 5),
         contains="network_mode: host"),
    case("practice.data-port-public", False, "an inactive profile is not deployed",
         "services:\n  adminer:\n    image: postgres:16\n    profiles: [debug]\n    ports: [\"5432:5432\"]\n"),
    case("practice.data-port-public", False, "unset port variable: compose.unset-variable says so",
         _ports('"${NOT_SET}:5432"')),
    case("practice.data-port-public", False, "loopback",
         _ports('"127.0.0.1:5432:5432"', '"[::1]:5433:5432"')),
    case("practice.data-port-public", False, "long syntax on loopback",
         "services:\n  db:\n    image: postgres:16\n    ports:\n      - target: 5432\n        host_ip: 127.0.0.1\n"),
    case("practice.data-port-public", False, "expose only",
         "services:\n  db:\n    image: postgres:16\n    expose: [\"5432\"]\n"),
    case("practice.data-port-public", False, "a web port", None),
    # practice.backend-network-not-internal
    case("practice.backend-network-not-internal", True, "db network with a route out", BACKEND, at=(14, 3),
         contains="network back carries the database traffic of db"),
    case("practice.backend-network-not-internal", False, "internal: true",
         BACKEND.replace("  back: {}", "  back:\n    internal: true")),
    case("practice.backend-network-not-internal", False, "the app has no other network",
         BACKEND.replace("networks: [front, back]", "networks: [back]")),
    case("practice.backend-network-not-internal", False, "the db publishes a port on it",
         BACKEND.replace("    networks: [back]", "    ports: [\"127.0.0.1:5432:5432\"]\n    networks: [back]")),
    case("practice.backend-network-not-internal", False, "everything on the default network",
         "services:\n  web:\n    image: app:1.0\n    ports: [\"80:80\"]\n  db:\n    image: postgres:16\n"),
    # practice.depends-on-not-healthy
    case("practice.depends-on-not-healthy", True, "short syntax",
         DEPENDS.format(deps="      - db", db_health=DB_HEALTH), at=(5, 9),
         contains="depends on db with the short syntax"),
    case("practice.depends-on-not-healthy", True, "service_started",
         DEPENDS.format(deps="      db:\n        condition: service_started", db_health=DB_HEALTH), at=(5, 7),
         contains="condition: service_started"),
    case("practice.depends-on-not-healthy", True, "the dependency's Dockerfile has HEALTHCHECK",
         "services:\n  web:\n    image: nginx:1.25\n    depends_on: [app]\n  app:\n    build: ./app\n",
         files={"app/Dockerfile": HEALTHY_DOCKERFILE}, at=(4, 18)),
    case("practice.depends-on-not-healthy", False, "service_healthy",
         DEPENDS.format(deps="      db:\n        condition: service_healthy", db_health=DB_HEALTH)),
    case("practice.depends-on-not-healthy", False, "dependency without healthcheck",
         DEPENDS.format(deps="      - db", db_health="")),
    # practice.bind-mount-production
    case("practice.bind-mount-production", True, "data on a host path",
         WEB + "    volumes:\n      - ./data:/data\n", environment="production", at=(8, 9),
         contains="bind-mounts host path ./data in production", check=_severity(Severity.WARNING)),
    case("practice.bind-mount-production", True, "read-only is only info",
         WEB + "    volumes:\n      - type: bind\n        source: /etc/app.conf\n        target: /app.conf\n"
               "        read_only: true\n", environment="production", check=_severity(Severity.INFO)),
    case("practice.bind-mount-production", False, "staging", WEB + "    volumes:\n      - ./data:/data\n"),
    case("practice.bind-mount-production", False, "named volume",
         WEB + "    volumes:\n      - data:/data\nvolumes:\n  data: {}\n", environment="production"),
    # practice.privileged
    case("practice.privileged", True, "privileged: true", WEB + "    privileged: true\n", at=(7, 5),
         contains="runs privileged: true"),
    case("practice.privileged", True, "docker socket, short syntax",
         WEB + "    volumes:\n      - /var/run/docker.sock:/var/run/docker.sock:ro\n", at=(8, 9),
         contains="mounts the docker socket"),
    case("practice.privileged", True, "docker socket, long syntax",
         WEB + "    volumes:\n      - type: bind\n        source: /run/docker.sock\n        target: /var/run/docker.sock\n",
         at=(8, 9)),
    case("practice.privileged", False, "privileged: false", WEB + "    privileged: false\n"),
    # practice.container-name
    case("practice.container-name", True, "replicas with a fixed name",
         WEB + "    container_name: web\n    deploy:\n      replicas: 3\n", at=(7, 5),
         contains="asks for 3 replicas", severity=Severity.ERROR),
    case("practice.container-name", True, "stateless app service",
         BUILT + "    container_name: shop-app\n", files={"app/Dockerfile": HEALTHY_DOCKERFILE}, at=(5, 5),
         contains="stateless app service", severity=Severity.WARNING),
    case("practice.container-name", True, "scale: 2", WEB + "    container_name: web\n    scale: 2\n",
         severity=Severity.ERROR),
    case("practice.container-name", False, "a database keeps its name",
         "services:\n  db:\n    image: postgres:16\n    container_name: shop-db\n    volumes:\n"
         "      - pg:/var/lib/postgresql/data\nvolumes:\n  pg: {}\n"),
    case("practice.container-name", False, "a built service that writes to a volume",
         BUILT + "    container_name: shop-app\n    volumes:\n      - uploads:/uploads\nvolumes:\n  uploads: {}\n",
         files={"app/Dockerfile": HEALTHY_DOCKERFILE}),
]


test_rule = rule_test(CASES, offline=True)  # every finding of a firing case needs a fix


# --------------------------------------------------------------------------- beyond the table


def _copy_example(project) -> None:
    example = REPO / "examples" / "app"
    for item in example.iterdir():
        if item.name in (".env.example", ".env.docker.example", ".gitignore"):
            continue
        dest = project.root / item.name
        if item.is_dir():
            shutil.copytree(item, dest, dirs_exist_ok=True)
        else:
            shutil.copy(item, dest)
    project.write(".env.docker", (example / ".env.docker.example").read_text())


PRACTICE = ("practice.", "dockerfile.")


def test_example_app_is_clean_in_staging(project):
    _copy_example(project)
    report = run_checks(load_target(project.root), offline=True)
    ours = [f for f in report.findings if f.rule.startswith(PRACTICE)]
    assert ours == []


def test_example_app_is_clean_in_production_too(project):
    _copy_example(project)
    project.write(".env", project.DOTENV.replace("ENVIRONMENT=staging", "ENVIRONMENT=production"))
    report = run_checks(load_target(project.root), offline=True)
    ours = [(f.rule, f.severity) for f in report.findings if f.rule.startswith(PRACTICE)]
    assert ours == []  # it has memory limits, healthchecks, restart policies, pinned images


def test_production_without_memory_limits_is_reported(project):
    _copy_example(project)
    compose = project.root / "docker-compose.yml"
    compose.write_text(compose.read_text().replace("          memory: 64M\n", "          cpus: '0.5'\n"))
    project.write(".env", project.DOTENV.replace("ENVIRONMENT=staging", "ENVIRONMENT=production"))
    report = run_checks(load_target(project.root), offline=True)
    ours = [(f.rule, f.severity) for f in report.findings if f.rule.startswith(PRACTICE)]
    assert ours == [("practice.no-resource-limits", Severity.WARNING)]


def test_override_file_can_supply_what_the_base_lacks(project):
    project.write("docker-compose.yml", "services:\n  web:\n    image: nginx:1.25\n")
    project.write("compose.prod.yml", "services:\n  web:\n    restart: always\n    healthcheck:\n"
                                      "      test: [\"CMD\", \"true\"]\n")
    project.write(".env", project.DOTENV + "COMPOSE_FILES=docker-compose.yml,compose.prod.yml\n")
    report = run_checks(load_target(project.root), offline=True)
    assert [f for f in report.findings if f.rule in ("practice.restart-missing", "practice.healthcheck-missing")] == []


def test_override_tuning_the_healthcheck_keeps_the_base_test(project):
    project.write("docker-compose.yml", BUILT + "    healthcheck:\n      test: [\"CMD\", \"true\"]\n")
    project.write("app/Dockerfile", GOOD_DOCKERFILE)
    project.write("compose.prod.yml", "services:\n  app:\n    healthcheck:\n      interval: 5s\n")
    project.write(".env", project.DOTENV + "COMPOSE_FILES=docker-compose.yml,compose.prod.yml\n")
    report = run_checks(load_target(project.root), offline=True)
    assert [f for f in report.findings if f.rule.endswith("healthcheck-missing")] == []


def test_override_deploy_merges_with_the_base(project):
    project.write("docker-compose.yml", WEB + "    deploy:\n      resources:\n        limits:\n          memory: 256M\n")
    project.write("compose.prod.yml", "services:\n  web:\n    deploy:\n      resources:\n        limits:\n"
                                      "          cpus: \"0.5\"\n")
    project.write(".env", project.DOTENV.replace("staging", "production")
                  + "COMPOSE_FILES=docker-compose.yml,compose.prod.yml\n")
    report = run_checks(load_target(project.root), offline=True)
    assert [f for f in report.findings if f.rule == "practice.no-resource-limits"] == []


def test_finding_in_override_file_points_there(project):
    project.write("compose.prod.yml", "services:\n  web:\n    privileged: true\n")
    project.write(".env", project.DOTENV + "COMPOSE_FILES=docker-compose.yml,compose.prod.yml\n")
    report = run_checks(load_target(project.root), offline=True)
    found = [f for f in report.findings if f.rule == "practice.privileged"]
    assert [(f.file.name, f.line, f.col) for f in found] == [("compose.prod.yml", 3, 5)]


def test_ignore_comment_on_the_offending_line_silences_it(project):
    project.write("docker-compose.yml", WEB + "    volumes:\n      # traefik needs it\n"
                  "      - /var/run/docker.sock:/var/run/docker.sock:ro  # berth: ignore[practice.privileged]\n")
    report = run_checks(load_target(project.root), offline=True)
    assert [f for f in report.findings if f.rule == "practice.privileged"] == []


@pytest.mark.parametrize("text", [
    "services:\n  web: nginx\n",
    "services:\n  web:\n    image: [1, 2]\n    ports: {a: b}\n    volumes: 7\n    depends_on: 3\n",
    "services:\n  web:\n    image: nginx:1.25\n    ports: [\"not:a:port:at:all\", {target: x}, null, true]\n"
    "    volumes: [{type: bind}, null, \":\"]\n    networks: {a: null}\n    deploy: {replicas: many}\n"
    "    healthcheck: yes\n    container_name: x\n    build: {context: 5}\n",
    "services:\n  web:\n    image: \"${UNCLOSED\"\n    privileged: \"${P:?needed}\"\n",
    "networks: [a, b]\nservices:\n  db:\n    image: postgres\n    networks: x\n",
])
def test_odd_compose_files_do_not_crash_the_rules(project, text):
    project.write("docker-compose.yml", text)
    report = run_checks(load_target(project.root), offline=True)  # no exception, and what it says is located
    about_compose = [f for f in report.findings if f.file is not None and Path(f.file).name == "docker-compose.yml"]
    assert about_compose, "an odd compose file gets findings, not silence"
    assert all(f.line is not None and f.line >= 1 for f in about_compose), [f.message for f in about_compose]
