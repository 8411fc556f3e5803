"""`berth k8s render`: golden files for the example app and for compose files using each feature;
every rendered manifest passes the schema of Kubernetes 1.30 and the newest shipped version and
`berth k8s check` with no error; secrets never reach a file.

Regenerate the golden files after an intended change with:
    BERTH_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/unit/test_k8s_render.py -q -p no:cacheprovider
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from berth.check.findings import Severity
from berth.configuration.target import load_target
from berth.errors import UsageError
from berth.k8s.check import check_paths, check_rendered
from berth.k8s.render import cpu_quantity, duration_seconds, k8s_name, memory_quantity, render
from berth.k8s.schema import newest_version, shipped_versions
from berth.k8s.settings import load_settings
from berth.ui.output import render_findings
from tests.helpers import run_berth

ROOT = Path(__file__).resolve().parents[3]
GOLDEN = Path(__file__).parents[1] / "golden" / "k8s"
UPDATE = os.environ.get("BERTH_UPDATE_GOLDEN") == "1"
VERSIONS = ("1.30", "newest")

DB_PASSWORD = "pg-Pa55w0rd-not-for-files"
SECRET_KEY = "sk-django-0123456789abcdef"
API_TOKEN = "tok_live_abcdefghijklmnop"
FILE_SECRET = "file-secret-contents-42xyz"

# --------------------------------------------------------------------------- fixture apps (name → files)

APPS: dict[str, dict[str, str]] = {
    "healthchecks": {
        "docker-compose.yml": """\
services:
  api:
    image: ghcr.io/acme/api:1.4.2
    ports: ["8000:8000"]
    healthcheck:
      test: ["CMD", "curl", "-fsS", "http://127.0.0.1:8000/health"]
      interval: 10s
      timeout: 3s
      retries: 5
      start_period: 1m
      start_interval: 2s
  shell-check:
    image: ghcr.io/acme/cron:2.0.0
    expose: ["9000"]
    healthcheck:
      test: ["CMD-SHELL", "pgrep -f cron || exit 1"]
      interval: 1m30s
  string-check:
    image: ghcr.io/acme/queue:3.1.0
    healthcheck:
      test: test -e /tmp/alive
      timeout: 500ms
  no-check:
    image: ghcr.io/acme/batch:1.0.0
    healthcheck:
      disable: true
""",
        ".env.docker": "LOG_LEVEL=info\n",
        "berth.toml": """\
[kubernetes.services.api]
ready_path = "/ready"
run_as_user = 10001
[kubernetes.services.shell-check]
run_as_user = 10002
[kubernetes.services.string-check]
run_as_user = 10003
[kubernetes.services.no-check]
run_as_user = 10004
""",
    },
    "volumes": {
        "docker-compose.yml": """\
services:
  db:
    image: postgres:16.4
    environment:
      POSTGRES_USER: app
      POSTGRES_PASSWORD: ${DB_PASSWORD}
      POSTGRES_DB: app
    volumes:
      - pgdata:/var/lib/postgresql/data
    healthcheck:
      test: ["CMD-SHELL", "pg_isready -U app"]
      interval: 5s
    deploy:
      resources:
        limits: {cpus: "1", memory: 1G}
        reservations: {cpus: "0.25", memory: 256M}
  cache:
    image: redis:7.4-alpine
    command: redis-server --appendonly yes
    volumes:
      - type: volume
        source: redisdata
        target: /data
    healthcheck:
      test: ["CMD", "redis-cli", "ping"]
    mem_limit: 256m
    cpus: 0.5
    mem_reservation: 64m
  app:
    image: ghcr.io/acme/app:2.3.4
    user: "1000:1000"
    ports: ["8080:8080"]
    tmpfs:
      - /tmp:size=64m
    volumes:
      - uploads:/srv/uploads
      - /var/cache/app
      - ./static:/srv/static:ro
    healthcheck:
      test: ["CMD", "wget", "-qO-", "http://127.0.0.1:8080/health"]
    deploy:
      resources:
        limits: {memory: 512M}
        reservations: {cpus: "0.1", memory: 128M}
volumes:
  pgdata:
  redisdata:
  uploads:
""",
        ".env.docker": f"DB_PASSWORD={DB_PASSWORD}\n",
        "berth.toml": """\
[kubernetes]
storage_class = "fast-ssd"
[kubernetes.services.db]
storage = "20Gi"
""",
    },
    "resources-replicas": {
        "docker-compose.yml": """\
services:
  web:
    image: ghcr.io/acme/web:5.0.1
    ports: ["80:8080"]
    healthcheck:
      test: ["CMD", "wget", "-qO-", "http://127.0.0.1:8080/health"]
    deploy:
      replicas: 3
      resources:
        limits: {cpus: "2", memory: 1.5G}
        reservations: {cpus: "0.5", memory: 768M}
  worker:
    image: ghcr.io/acme/worker:5.0.1
    healthcheck:
      test: ["CMD", "/app/healthcheck"]
    deploy:
      resources:
        limits: {cpus: "1", memory: 512M}
        reservations: {cpus: "0.2", memory: 256M}
""",
        ".env.docker": "QUEUE=default\n",
        "berth.toml": """\
[kubernetes]
ingress_class = "nginx"
[kubernetes.services.web]
host = "shop.example.com"
tls_secret = "shop-tls"
ready_path = "/ready"
run_as_user = 101
metrics_path = "/metrics"
metrics_port = 9102
[kubernetes.services.worker]
run_as_user = 1001
autoscale = { min = 2, max = 8, cpu = 75, memory = 80 }
[kubernetes.environments.production.services.web]
replicas = 4
""",
    },
    "secrets": {
        "docker-compose.yml": """\
services:
  api:
    image: ghcr.io/acme/api:7.0.0
    environment:
      DATABASE_URL: postgres://app:${DB_PASSWORD}@db:5432/app
      SECRET_KEY: ${SECRET_KEY}
      PAYMENT_WEBHOOK: ${PAYMENT_WEBHOOK}
      PUBLIC_KEY_ID: ${PUBLIC_KEY_ID}
      DEBUG: false
      WORKERS: 4
    secrets:
      - api_token
      - source: tls_key
        target: /etc/tls/key.pem
        mode: 0400
    configs:
      - source: app_conf
        target: /etc/app/app.conf
    healthcheck:
      test: ["CMD", "/app/health"]
secrets:
  api_token:
    environment: API_TOKEN
  tls_key:
    file: ./tls.key
configs:
  app_conf:
    file: ./app.conf
""",
        ".env.docker": (f"DB_PASSWORD={DB_PASSWORD}\nSECRET_KEY={SECRET_KEY}\nAPI_TOKEN={API_TOKEN}\n"
                        "PAYMENT_WEBHOOK=https://hooks.example.com/pay\nPUBLIC_KEY_ID=key-2024\n"),
        "tls.key": FILE_SECRET + "\n",
        "app.conf": "[server]\nthreads = 4\n",
        "berth.toml": """\
[kubernetes]
secret_keys = ["PAYMENT_*"]
plain_keys = ["PUBLIC_KEY_ID"]
[kubernetes.services.api]
run_as_user = 1000
""",
    },
    "networks": {
        "docker-compose.yml": """\
services:
  proxy:
    image: nginxinc/nginx-unprivileged:1.27.2
    ports: ["80:8080"]
    networks: [frontend]
    healthcheck:
      test: ["CMD", "curl", "-f", "http://127.0.0.1:8080/"]
    depends_on:
      api:
        condition: service_healthy
  api:
    image: ghcr.io/acme/api:1.0.0
    expose: ["8000"]
    networks:
      frontend:
      backend:
        aliases: [api-internal]
    healthcheck:
      test: ["CMD", "/api/health"]
    depends_on: [db]
  db:
    image: postgres:16.4-alpine
    networks: [backend]
    expose: ["5432"]
    environment:
      POSTGRES_PASSWORD: ${DB_PASSWORD}
    volumes: [dbdata:/var/lib/postgresql/data]
    healthcheck:
      test: ["CMD-SHELL", "pg_isready"]
networks:
  frontend:
  backend:
    internal: true
volumes:
  dbdata:
""",
        ".env.docker": f"DB_PASSWORD={DB_PASSWORD}\n",
        "berth.toml": """\
[kubernetes.services.proxy]
host = "www.example.com"
run_as_user = 101
[kubernetes.services.api]
run_as_user = 1000
""",
    },
    "env-file": {
        "docker-compose.yml": """\
services:
  app:
    image: ghcr.io/acme/app:9.9.9
    env_file:
      - .env.docker
      - config/common.env
      - path: config/optional.env
        required: false
    environment:
      - LOG_LEVEL=debug
      - REGION
      - FROM_SHELL_ONLY
    healthcheck:
      test: ["CMD", "/app/health"]
""",
        ".env.docker": f"REGION=eu-west-1\nLOG_LEVEL=info\nSECRET_KEY={SECRET_KEY}\nHOST=db.internal\n",
        "config/common.env": ("DB_HOST=${HOST}\nLITERAL='${HOST} stays'\nCOMBINED=${DB_HOST}:5432\n"
                              "FEATURE_FLAGS=a,b\nREDIS_URL=redis://:" + DB_PASSWORD + "@cache:6379/0\n"),
        "berth.toml": """\
[kubernetes]
namespace = "acme-env"
[kubernetes.services.app]
run_as_user = 1000
""",
    },
}


def make_app(tmp_path: Path, name: str) -> Path:
    root = tmp_path / name
    for rel, text in APPS[name].items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


def example_app(tmp_path: Path, configured: bool) -> Path:
    root = tmp_path / "app"
    shutil.copytree(ROOT / "examples" / "app", root)
    shutil.copy(root / ".env.docker.example", root / ".env.docker")
    shutil.copy(root / ".env.example", root / ".env")
    if configured:
        (root / "berth.toml").write_text("""\
[kubernetes]
registry = "registry.example.com/berth-example"
[kubernetes.services.web]
host = "app.example.com"
ready_path = "/ready"
run_as_user = 1000
replicas = 2
[kubernetes.services.worker]
run_as_user = 1000
""")
    return root


CASES = [("example-app", None), ("example-app-configured", None), *[(name, name) for name in APPS]]


def _root_for(tmp_path: Path, case: str, app: str | None) -> Path:
    if app is None:
        return example_app(tmp_path, configured=case.endswith("configured"))
    return make_app(tmp_path, app)


def _render(root: Path, environment: str = "staging", **kw):
    target = load_target(root, environment)
    return render(target, load_settings(root, target.environment, target.project), tag="1a2b3c4d5e6f", **kw)


def _golden_files(rendered, root: Path) -> dict[str, str]:
    files = dict(rendered.files())
    notes = render_findings(rendered.findings, root)
    files["notes.txt"] = (notes + "\n") if notes else ""
    return files


def _secret_values(root: Path) -> list[str]:
    return [v for v in (DB_PASSWORD, SECRET_KEY, API_TOKEN, FILE_SECRET) if v]


@pytest.mark.parametrize("case,app", CASES, ids=[c for c, _ in CASES])
def test_golden(tmp_path, case, app):
    root = _root_for(tmp_path, case, app)
    rendered = _render(root)
    files = _golden_files(rendered, root)
    golden = GOLDEN / case
    if UPDATE:
        if golden.exists():
            shutil.rmtree(golden)
        golden.mkdir(parents=True)
        for name, text in files.items():
            (golden / name).write_text(text)
    expected = {p.name: p.read_text() for p in sorted(golden.iterdir())} if golden.exists() else {}
    assert sorted(files) == sorted(expected), f"golden files differ for {case} (BERTH_UPDATE_GOLDEN=1 regenerates)"
    for name in files:
        assert files[name] == expected[name], f"{case}/{name} differs from the golden file"


@pytest.mark.parametrize("case,app", CASES, ids=[c for c, _ in CASES])
def test_rendered_manifests_pass_schema_and_check(tmp_path, case, app):
    root = _root_for(tmp_path, case, app)
    for with_secrets in (False, True):
        rendered = _render(root, with_secrets=with_secrets)
        report = check_rendered(rendered, VERSIONS, include_secrets=with_secrets)
        assert report.versions == ("1.30", newest_version())
        assert not report.errors, render_findings(report.errors, root)
        assert not [f for f in report.findings if f.rule in ("k8s.schema", "k8s.no-schema", "k8s.manifest")]


@pytest.mark.parametrize("case", [c for c, _ in CASES])
def test_golden_files_pass_schema_for_every_version_from_1_30(case):
    """The files on disk, checked by path as a user would, against every shipped version from 1.30 on."""
    versions = tuple(v for v in shipped_versions() if tuple(map(int, v.split("."))) >= (1, 30))
    assert versions[0] == "1.30" and len(versions) >= 2
    report = check_paths([GOLDEN / case], versions)
    assert not report.errors, render_findings(report.errors, GOLDEN)


@pytest.mark.parametrize("case,app", CASES, ids=[c for c, _ in CASES])
def test_no_secret_value_in_rendered_files(tmp_path, case, app):
    root = _root_for(tmp_path, case, app)
    rendered = _render(root)
    text = "".join(rendered.files().values()) + rendered.stream()
    for value in _secret_values(root) + ["change_this_to_a_long_random_string", "sk-your-key-here", "change_me"]:
        assert value not in text
        assert base64.b64encode(value.encode()).decode() not in text
    assert not [m for m in rendered.manifests if m.obj["kind"] == "Secret"]


# --------------------------------------------------------------------------- what the goldens show, asserted


def _objs(rendered, kind):
    return {m.obj["metadata"]["name"]: m.obj for m in rendered.manifests if m.obj["kind"] == kind}


def test_example_app_shapes(tmp_path):
    rendered = _render(example_app(tmp_path, configured=True))
    assert set(_objs(rendered, "Deployment")) == {"web"}
    sts = _objs(rendered, "StatefulSet")["worker"]
    assert sts["spec"]["serviceName"] == "worker-headless"
    assert sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "records"
    assert _objs(rendered, "Service")["worker-headless"]["spec"]["clusterIP"] == "None"
    web = _objs(rendered, "Deployment")["web"]
    c = web["spec"]["template"]["spec"]["containers"][0]
    assert c["image"] == "registry.example.com/berth-example/web:1a2b3c4d5e6f"
    assert c["readinessProbe"]["httpGet"] == {"path": "/ready", "port": 8080}
    assert c["livenessProbe"]["exec"]["command"][-1] == "http://127.0.0.1:8080/health"
    assert web["spec"]["replicas"] == 2 and "web" in _objs(rendered, "PodDisruptionBudget")
    ingress = _objs(rendered, "Ingress")["web"]
    assert ingress["spec"]["rules"][0]["host"] == "app.example.com"
    pod_sc = web["spec"]["template"]["spec"]["securityContext"]
    assert pod_sc["runAsNonRoot"] is True and pod_sc["runAsUser"] == 1000
    assert c["securityContext"] == {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    cm = _objs(rendered, "ConfigMap")["web-config"]["data"]
    assert set(cm) == {"APP_ENV", "GREETING", "WEB_PORT"}
    assert rendered.secrets["web-secrets"] == ["DATABASE_URL", "OPENAI_API_KEY", "SECRET_KEY"]
    labels = web["metadata"]["labels"]
    assert labels["app.kubernetes.io/name"] == "web" and labels["app.kubernetes.io/managed-by"] == "berth"
    assert _objs(rendered, "Namespace") == {"app-staging": _objs(rendered, "Namespace")["app-staging"]}


def test_depends_on_is_explained_not_dropped(tmp_path):
    rendered = _render(example_app(tmp_path, configured=False))
    notes = [f for f in rendered.findings if f.rule == "k8s.render.depends-on"]
    assert len(notes) == 1 and "web" in notes[0].message and "worker" in notes[0].message
    assert "retry" in notes[0].message and notes[0].line == 18
    web = _objs(rendered, "Deployment")["web"]
    assert web["metadata"]["annotations"]["berth.dev/depends-on"] == "worker (service_healthy)"


def compose_app(tmp_path: Path, compose: str, app_env: str = "", **files: str) -> Path:
    """A staging project of one compose file, its .env.docker and other files (`berth.toml`, `nginx.conf`...)."""
    root = tmp_path / "app"
    root.mkdir()
    for rel, text in {".env": "ENVIRONMENT=staging\n", ".env.docker": app_env, **files,
                      "docker-compose.yml": compose}.items():
        (root / rel).write_text(text)
    return root


@pytest.mark.parametrize("profiles, rendered_services", [
    ("", {"web"}),  # as `docker compose up`: a service with profiles starts only when one is enabled
    ("COMPOSE_PROFILES=debug\n", {"web", "debugger"}),
    ("COMPOSE_PROFILES=*\n", {"web", "debugger", "jobs"}),
])
def test_render_starts_what_compose_profiles_enables(tmp_path, profiles, rendered_services):
    image = "    image: nginx:1.25\n"
    rendered = _render(compose_app(tmp_path, "services:\n  web:\n" + image + "  debugger:\n" + image
                                   + "    profiles: [debug]\n  jobs:\n" + image + "    profiles: [jobs]\n", profiles))
    assert set(_objs(rendered, "Deployment")) == rendered_services
    skipped = [f.message for f in rendered.findings if "its profiles are not enabled" in f.message]
    assert len(skipped) == 3 - len(rendered_services)


def test_bind_mounts_of_data_dirs_become_claims_and_config_files_configmaps(tmp_path):
    """What sample apps do: Postgres keeps its data in ./pgdata, nginx reads ./nginx.conf; a socket stays out."""
    root = compose_app(
        tmp_path, "services:\n  db:\n    image: postgres:16\n    environment:\n      POSTGRES_PASSWORD: ${POSTGRES_PASSWORD}\n"
        "    volumes:\n      - ./pgdata:/var/lib/postgresql/data\n"
        "  web:\n    image: nginx:1.25\n    ports: [\"8080:80\"]\n    volumes:\n"
        "      - ./nginx.conf:/etc/nginx/conf.d/default.conf:ro\n      - /var/run/docker.sock:/var/run/docker.sock\n",
        "POSTGRES_PASSWORD=pw-Zq8x7c6v5b4n3m2L\n", **{"nginx.conf": "server { listen 80; }\n"})
    rendered = _render(root)
    db = _objs(rendered, "StatefulSet")["db"]
    assert [c["metadata"]["name"] for c in db["spec"]["volumeClaimTemplates"]] == ["pgdata"]
    mount = db["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    assert {"name": "pgdata", "mountPath": "/var/lib/postgresql/data"} in mount
    assert any("becomes the PersistentVolumeClaim pgdata, which starts empty" in f.message and f.fix
               and "copy the data" in f.fix for f in rendered.findings)
    configs = {name: obj for name, obj in _objs(rendered, "ConfigMap").items() if name.startswith("config-file-")}
    assert [obj["data"] for obj in configs.values()] == [{"file-nginx.conf": "server { listen 80; }\n"}]
    web = _objs(rendered, "Deployment")["web"]["spec"]["template"]["spec"]
    web_mount = [m for m in web["containers"][0]["volumeMounts"] if m["mountPath"] == "/etc/nginx/conf.d/default.conf"]
    assert web_mount and web_mount[0]["subPath"] == "file-nginx.conf" and web_mount[0]["readOnly"]
    assert any("/var/run/docker.sock" in f.message and "reads the host's files" in f.message for f in rendered.findings)
    report = check_rendered(rendered, VERSIONS)
    assert not report.errors, render_findings(report.errors, root)


def test_kompose_labels_are_read_as_settings_and_berth_toml_wins(tmp_path):
    root = compose_app(
        tmp_path, "services:\n  web:\n    image: nginx:1.25\n    ports: [\"8080:80\"]\n    deploy:\n      resources:\n"
        "        reservations:\n          cpus: \"0.1\"\n    labels:\n"
        "      kompose.service.type: loadbalancer\n      kompose.service.expose: shop.example.com/api\n"
        "      kompose.hpa.replicas.min: \"2\"\n      kompose.hpa.replicas.max: \"5\"\n      kompose.hpa.cpu: \"60\"\n"
        "      kompose.image-pull-policy: Always\n"
        "  db:\n    image: postgres:16\n    volumes: [\"data:/var/lib/postgresql/data\"]\n    labels:\n"
        "      - kompose.volume.size=5Gi\n      - kompose.controller.type=statefulset\n"
        "volumes:\n  data: {}\n", **{"berth.toml": '[kubernetes.services.db]\nstorage = "1Gi"\n'})
    rendered = _render(root)
    assert _objs(rendered, "Service")["web"]["spec"]["type"] == "LoadBalancer"
    rule = _objs(rendered, "Ingress")["web"]["spec"]["rules"][0]
    assert rule["host"] == "shop.example.com" and rule["http"]["paths"][0]["path"] == "/api"
    hpa = _objs(rendered, "HorizontalPodAutoscaler")["web"]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 5)
    assert hpa["metrics"][0]["resource"]["target"]["averageUtilization"] == 60
    claim = _objs(rendered, "StatefulSet")["db"]["spec"]["volumeClaimTemplates"][0]
    assert claim["spec"]["resources"]["requests"]["storage"] == "1Gi"  # berth.toml wins over the label
    assert any("label kompose.image-pull-policy is not read by berth" in f.message for f in rendered.findings)


def test_a_user_name_that_equals_the_password_is_a_setting_by_its_position(tmp_path):
    """gitea's and wordpress's samples: DB_USER=gitea beside DB_PASSWD=gitea. The ConfigMap keeps the user name;
    the password goes to the Secret; a secret interpolated into a plain setting goes to the Secret too."""
    compose = ("services:\n  gitea:\n    image: gitea/gitea:1.21\n    environment:\n      - DB_USER=gitea\n"
               "      - DB_PASSWD=gitea\n  db:\n    image: postgres:16\n    environment:\n"
               "      POSTGRES_USER: gitea\n      POSTGRES_PASSWORD: gitea\n      POSTGRES_DB: gitea\n")
    root = compose_app(tmp_path, compose, "API_TOKEN=tok-Vb7nQ2xL9pR4sT6wY8zA\n")
    rendered = _render(root)
    assert rendered.secret_leaks() == []
    assert _objs(rendered, "ConfigMap")["gitea-config"]["data"]["DB_USER"] == "gitea"
    assert "DB_PASSWD" not in _objs(rendered, "ConfigMap")["gitea-config"]["data"]
    (root / "docker-compose.yml").write_text(compose + "    labels: {}\n  hook:\n    image: busybox:1.36\n"
                                             "    environment:\n      GREETING: \"hello ${API_TOKEN}\"\n")
    again = _render(root)  # a plain-looking key that interpolates a secret carries it: a Secret key
    assert again.secret_leaks() == [] and again.secrets["hook-secrets"] == ["GREETING"]


def test_volumes_become_claims_and_database_runs_as_its_user(tmp_path):
    rendered = _render(make_app(tmp_path, "volumes"))
    db = _objs(rendered, "StatefulSet")["db"]
    claim = db["spec"]["volumeClaimTemplates"][0]
    assert claim["spec"] == {"accessModes": ["ReadWriteOnce"], "storageClassName": "fast-ssd",
                             "resources": {"requests": {"storage": "20Gi"}}}
    sc = db["spec"]["template"]["spec"]["securityContext"]
    assert (sc["runAsUser"], sc["fsGroup"], sc["runAsNonRoot"]) == (999, 999, True)
    cache = _objs(rendered, "StatefulSet")["cache"]
    assert cache["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == 999
    assert cache["spec"]["template"]["spec"]["containers"][0]["args"] == ["redis-server", "--appendonly", "yes"]
    assert cache["spec"]["template"]["spec"]["containers"][0]["resources"] == {
        "requests": {"memory": "64Mi"}, "limits": {"memory": "256Mi", "cpu": "500m"}}
    assert db["spec"]["template"]["spec"]["containers"][0]["resources"] == {
        "requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}
    assert _objs(rendered, "ConfigMap")["db-config"]["data"]["PGDATA"] == "/var/lib/postgresql/data/pgdata"
    assert rendered.secrets["db-secrets"] == ["POSTGRES_PASSWORD"]
    app = _objs(rendered, "StatefulSet")["app"]  # a named volume keeps data: StatefulSet
    vols = {v["name"]: v for v in app["spec"]["template"]["spec"]["volumes"]}
    assert vols["tmpfs-tmp"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "64Mi"}
    messages = " ".join(f.message for f in rendered.findings)
    assert "bind mount ./static:/srv/static" in messages and "anonymous volume at /var/cache/app" in messages


def test_replicas_resources_hpa_pdb_ingress_monitoring(tmp_path):
    root = make_app(tmp_path, "resources-replicas")
    rendered = _render(root, monitoring=True)
    web = _objs(rendered, "Deployment")["web"]
    assert web["spec"]["replicas"] == 3
    assert web["spec"]["template"]["spec"]["containers"][0]["resources"] == {
        "requests": {"cpu": "500m", "memory": "768Mi"}, "limits": {"cpu": "2", "memory": "1536Mi"}}
    assert web["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == "9102"
    assert _objs(rendered, "PodDisruptionBudget")["web"]["spec"]["maxUnavailable"] == 1
    worker = _objs(rendered, "Deployment")["worker"]
    assert "replicas" not in worker["spec"]  # the HPA owns it
    hpa = _objs(rendered, "HorizontalPodAutoscaler")["worker"]["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "worker"}
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 8)
    assert "worker" in _objs(rendered, "PodDisruptionBudget")
    ingress = _objs(rendered, "Ingress")["web"]["spec"]
    assert ingress["ingressClassName"] == "nginx" and ingress["tls"] == [{"hosts": ["shop.example.com"],
                                                                          "secretName": "shop-tls"}]
    production = _render(root, "production")
    assert _objs(production, "Deployment")["web"]["spec"]["replicas"] == 4
    assert production.namespace == "resources-replicas-production"
    assert not check_rendered(rendered, VERSIONS).errors


def test_secrets_split_and_policy(tmp_path):
    rendered = _render(make_app(tmp_path, "secrets"))
    cm = _objs(rendered, "ConfigMap")["api-config"]["data"]
    assert cm == {"DEBUG": "false", "PUBLIC_KEY_ID": "key-2024", "WORKERS": "4"}
    assert rendered.secrets["api-secrets"] == ["DATABASE_URL", "PAYMENT_WEBHOOK", "SECRET_KEY"]
    assert rendered.secrets["secret-api-token"] == ["api_token"] and rendered.secrets["secret-tls-key"] == ["tls_key"]
    assert _objs(rendered, "ConfigMap")["config-app-conf"]["data"] == {"app_conf": "[server]\nthreads = 4\n"}
    mounts = {m["mountPath"]: m for m in _objs(rendered, "Deployment")["api"]["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]}
    assert set(mounts) == {"/run/secrets/api_token", "/etc/tls/key.pem", "/etc/app/app.conf"}
    with_secrets = _render(make_app(tmp_path / "b", "secrets"), with_secrets=True)
    secrets = _objs(with_secrets, "Secret")
    assert base64.b64decode(secrets["api-secrets"]["data"]["SECRET_KEY"]).decode() == SECRET_KEY
    assert base64.b64decode(secrets["secret-tls-key"]["data"]["tls_key"]).decode() == FILE_SECRET + "\n"
    assert base64.b64decode(secrets["secret-api-token"]["data"]["api_token"]).decode() == API_TOKEN
    tpl_annotations = _objs(with_secrets, "Deployment")["api"]["spec"]["template"]["metadata"]["annotations"]
    assert "berth.dev/secret-checksum" in tpl_annotations


def test_networks_become_network_policies(tmp_path):
    rendered = _render(make_app(tmp_path, "networks"))
    policies = _objs(rendered, "NetworkPolicy")
    peers = {name: sorted(f["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
                          for f in p["spec"]["ingress"][0]["from"]) for name, p in policies.items()}
    assert peers == {"proxy": ["api", "proxy"], "api": ["api", "db", "proxy"], "db": ["api", "db"]}
    assert policies["proxy"]["spec"]["ingress"][1] == {"ports": [{"port": 8080, "protocol": "TCP"}]}
    db = _objs(rendered, "StatefulSet")["db"]["spec"]["template"]["spec"]["securityContext"]
    assert db["runAsUser"] == 70  # postgres alpine
    messages = [f.message for f in rendered.findings]
    assert any("networks.backend.aliases" in m and "service api" in m for m in messages)
    assert any("network backend: 'internal'" in m for m in messages)


def test_env_file_resolution(tmp_path):
    rendered = _render(make_app(tmp_path, "env-file"))
    cm = _objs(rendered, "ConfigMap")["app-config"]["data"]
    assert cm == {"COMBINED": "db.internal:5432", "DB_HOST": "db.internal", "FEATURE_FLAGS": "a,b",
                  "HOST": "db.internal", "LITERAL": "${HOST} stays", "LOG_LEVEL": "debug", "REGION": "eu-west-1"}
    assert rendered.secrets["app-secrets"] == ["REDIS_URL", "SECRET_KEY"]
    assert rendered.namespace == "acme-env"


def test_missing_required_env_file_is_a_usage_error(tmp_path):
    root = make_app(tmp_path, "env-file")
    (root / "config" / "common.env").unlink()
    with pytest.raises(UsageError, match="env_file config/common.env does not exist"):
        _render(root)


UNSUPPORTED_COMPOSE = """\
services:
  app:
    image: ghcr.io/acme/app:1.0.0
    container_name: app1
    hostname: app-host
    logging: {driver: json-file}
    ulimits: {nofile: 65536}
    devices: ["/dev/fuse"]
    network_mode: bridge
    stop_signal: SIGINT
    security_opt: ["seccomp:unconfined"]
    restart: "no"
    privileged: true
    user: root
    deploy:
      placement: {constraints: ["node.role == manager"]}
      update_config: {parallelism: 2}
      resources:
        limits: {pids: 100}
    healthcheck:
      test: ["CMD", "true"]
    x-custom: ignored
"""


def test_every_unexpressible_key_is_a_warning_naming_key_and_service(tmp_path):
    root = tmp_path / "u"
    root.mkdir()
    (root / "docker-compose.yml").write_text(UNSUPPORTED_COMPOSE)
    rendered = _render(root)
    warnings = [f for f in rendered.findings if f.severity == Severity.WARNING]
    text = "\n".join(f.message for f in warnings)
    for key in ("container_name", "hostname", "logging", "ulimits", "devices", "network_mode", "stop_signal",
                "security_opt", "deploy.placement", "deploy.update_config", "deploy.resources.limits.pids"):
        assert f"service app: '{key}' is not rendered" in text, key
    assert "restart: no" in text and "privileged: true" in text and "runs as root" in text
    assert "x-custom" not in text
    assert all(f.line for f in warnings if "service app" in f.message)
    report = check_rendered(rendered, VERSIONS)
    assert {"k8s.privileged", "k8s.root"} <= {f.rule for f in report.errors}


# --------------------------------------------------------------------------- conversions


@pytest.mark.parametrize("value,expected", [("2s", 2), ("1m30s", 90), ("500ms", 0.5), ("1h", 3600), ("1.5s", 1.5),
                                            ("10", None), ("", None), ("2x", None), (5_000_000_000, 5)])
def test_duration_seconds(value, expected):
    assert duration_seconds(value) == expected


@pytest.mark.parametrize("value,expected", [("512M", "512Mi"), ("1g", "1Gi"), ("1.5G", "1536Mi"), ("64k", "64Ki"),
                                            ("100", "100"), (1073741824, "1Gi"), ("512mb", "512Mi"), ("lots", None)])
def test_memory_quantity(value, expected):
    assert memory_quantity(value) == expected


@pytest.mark.parametrize("value,expected", [("0.5", "500m"), ("2", "2"), (0.25, "250m"), ("x", None), ("0", None)])
def test_cpu_quantity(value, expected):
    assert cpu_quantity(value) == expected


@pytest.mark.parametrize("value,expected", [("web", "web"), ("my_db", "my-db"), ("API", "api"), ("1st", "s-1st")])
def test_k8s_name(value, expected):
    assert k8s_name(value) == expected


# --------------------------------------------------------------------------- settings


@pytest.mark.parametrize("toml,message", [
    ("[kubernetes]\nregistyr = 'x'\n", "unknown key 'registyr' in [kubernetes] (did you mean 'registry'?)"),
    ("[kubernetes]\nrollout_timeout = '5'\n", "'rollout_timeout' in [kubernetes] must be a whole number"),
    ("[kubernetes.services.web]\nreplica = 2\n", "unknown key 'replica' in [kubernetes.services.web]"),
    ("[kubernetes.services.web]\nautoscale = { min = 3, max = 2, cpu = 50 }\n", "1 <= min <= max"),
    ("[kubernetes.services.web]\nautoscale = { min = 1, max = 2 }\n", "needs a cpu or memory target"),
    ("[kubernetes.services.web]\nready_path = 'ready'\n", "must start with '/'"),
    ("[kubernetes]\nnamespace = 'Bad_NS'\n", "is not a valid namespace name"),
    ("[kubernetes.environments.prod]\nservices = 3\n", "'services' in [kubernetes.environments.prod] must be a table"),
    ("[kubernetes]\nkube_versions = ['1.3']\n", "is not like"),
])
def test_settings_errors_name_the_key(tmp_path, toml, message):
    (tmp_path / "berth.toml").write_text("[environments.staging]\nhosts = ['h']\n" + toml)
    with pytest.raises(UsageError) as exc:
        load_settings(tmp_path, "staging", "app")
    assert message in exc.value.what
    assert exc.value.exit_code == 2


def test_config_for_unknown_service_is_a_warning(tmp_path):
    root = example_app(tmp_path, configured=False)
    (root / "berth.toml").write_text("[kubernetes.services.wbe]\nreplicas = 2\n")
    rendered = _render(root)
    assert any(f.rule == "k8s.render.config" and "wbe" in f.message for f in rendered.findings)


# --------------------------------------------------------------------------- the command


def berth(root: Path, *args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update({"NO_COLOR": "1", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1", **(env_extra or {})})
    return run_berth("-C", str(root), *args, env=env, cwd=root)


def test_render_to_directory_then_check_it(tmp_path):
    root = example_app(tmp_path, configured=True)
    out = tmp_path / "out"
    proc = berth(root, "k8s", "render", "-e", "staging", "-o", str(out), "--tag", "v1")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == [".berth-k8s", "namespace.yaml", "web.yaml", "worker.yaml"]
    assert "not written: Secret web-secrets, worker-secrets" in proc.stdout
    for p in out.iterdir():
        text = p.read_text()
        for value in ("change_this_to_a_long_random_string", "sk-your-key-here", "change_me"):
            assert value not in text
    proc = berth(root, "k8s", "check", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 errors" in proc.stdout
    # a second render removes what the first wrote and no longer renders; a foreign directory is refused
    (root / "docker-compose.yml").write_text((root / "docker-compose.yml").read_text().replace("  worker:", "  jobs:")
                                             .replace("worker:\n        condition", "jobs:\n        condition"))
    proc = berth(root, "k8s", "render", "-o", str(out), "--tag", "v1")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == [".berth-k8s", "jobs.yaml", "namespace.yaml", "web.yaml"]
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("x")
    proc = berth(root, "k8s", "render", "-o", str(foreign), "--tag", "v1")
    assert proc.returncode == 2 and "was not written by berth k8s render" in proc.stderr
    assert proc.stderr.startswith("error: ") and proc.stderr.strip().count("\n") == 0


def test_render_to_stdout_with_notes_on_stderr(tmp_path):
    root = example_app(tmp_path, configured=False)
    proc = berth(root, "k8s", "render", "--tag", "v1")
    assert proc.returncode == 0
    assert proc.stdout.startswith("---\napiVersion: v1\nkind: Namespace")
    assert "[k8s.render.depends-on]" in proc.stderr and "[k8s.render.depends-on]" not in proc.stdout


def test_render_without_tag_uses_the_git_commit(tmp_path):
    root = example_app(tmp_path, configured=True)
    env = {"GIT_CONFIG_GLOBAL": os.devnull, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "x"]):
        subprocess.run(["git", "-C", str(root), *args], check=True, env={**os.environ, **env})
    head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    proc = berth(root, "k8s", "render")
    assert f"registry.example.com/berth-example/web:{head[:12]}" in proc.stdout


def test_render_of_built_service_without_commit_or_tag_is_a_usage_error(tmp_path):
    root = example_app(tmp_path, configured=False)
    proc = berth(root, "k8s", "render")
    assert proc.returncode == 2
    assert "cannot tell the image tag" in proc.stderr and "--tag" in proc.stderr


SAMPLE_APP = {  # the shape of many public sample apps: a weak dev password, a *_FILE secret path, postgres data
    ".env": "ENVIRONMENT=staging\nSERVER_IP=203.0.113.5\n",
    ".env.docker": "POSTGRES_PASSWORD=postgres\n",
    "docker-compose.yml": """\
services:
  db:
    image: postgres:16
    environment:
      POSTGRES_USER: app
      POSTGRES_PASSWORD: ${POSTGRES_PASSWORD}
      POSTGRES_PASSWORD_FILE: /run/secrets/db-password
    volumes:
      - dbdata:/var/lib/postgresql/data
volumes:
  dbdata: {}
""",
}


def test_a_weak_password_that_is_part_of_a_path_or_image_is_not_a_leak(tmp_path):
    """`postgres` as the password: the image postgres:16 and PGDATA=/var/lib/postgresql/... do not carry it."""
    root = tmp_path / "sample"
    for rel, text in SAMPLE_APP.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    rendered = _render(root)
    assert rendered.secret_leaks() == []
    data = _objs(rendered, "ConfigMap")["db-config"]["data"]
    assert data["POSTGRES_PASSWORD_FILE"] == "/run/secrets/db-password"  # the path to a secret is not one
    assert data["PGDATA"] == "/var/lib/postgresql/data/pgdata"
    assert rendered.secrets["db-secrets"] == ["POSTGRES_PASSWORD"]


def test_a_leak_names_the_setting_whose_value_it_is_never_the_value(tmp_path):
    root = tmp_path / "sample"
    for rel, text in SAMPLE_APP.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    strong = "Zq8x7c6v5b4n3m2l1k0j"
    (root / ".env.docker").write_text(f"POSTGRES_PASSWORD={strong}\n")
    rendered = _render(root)
    config_map = next(m.obj for m in rendered.manifests if m.obj.get("kind") == "ConfigMap")
    config_map["data"]["LEAKED"] = f"postgres://app:{strong}@db/app"  # as a bug would put it
    leaks = rendered.secret_leaks()
    assert leaks and all(strong not in leak for leak in leaks)
    assert any("data.LEAKED holds the value of POSTGRES_PASSWORD" in leak for leak in leaks)


@pytest.mark.parametrize("text, secret, held", [
    ("/var/lib/postgresql/data", "postgres", False),
    ("user=postgres host=db", "postgres", True),
    ("postgres", "postgres", True),
    ("xZq8x7c6v5b4n3m2l1k0jy", "Zq8x7c6v5b4n3m2l1k0j", True),  # a long secret counts anywhere
])
def test_holds_secret(text, secret, held):
    from berth.k8s.env import holds_secret

    assert holds_secret(text, secret) is held


def test_render_merges_override_files_and_follows_extends_as_compose_does(tmp_path):
    """The compose model's merge: environment lists of two files are merged by key (a naive merge kept only the
    override's), a service that only `extends:` another gets its image and ports, and an override's port is
    added to the base's."""
    root = compose_app(
        tmp_path,
        "x-base: &base\n  image: nginx:1.25\nservices:\n  web:\n    image: nginx:1.25\n    ports: [\"8080:80\"]\n"
        "    environment: [LOG_LEVEL=info, WORKERS=2]\n  admin:\n    extends: web\n    environment: [ROLE=admin]\n",
        **{".env": "ENVIRONMENT=staging\nCOMPOSE_FILES=docker-compose.yml,docker-compose.prod.yml\n",
           "docker-compose.prod.yml": "services:\n  web:\n    environment: [WORKERS=8]\n    ports: [\"9090:9090\"]\n"})
    rendered = _render(root)
    configs = _objs(rendered, "ConfigMap")
    assert configs["web-config"]["data"] == {"LOG_LEVEL": "info", "WORKERS": "8"}
    assert configs["admin-config"]["data"] == {"LOG_LEVEL": "info", "ROLE": "admin", "WORKERS": "2"}
    admin = _objs(rendered, "Deployment")["admin"]["spec"]["template"]["spec"]["containers"][0]
    assert admin["image"] == "nginx:1.25"
    assert sorted(p["port"] for p in _objs(rendered, "Service")["web"]["spec"]["ports"]) == [80, 9090]


def test_render_reads_env_files_as_compose_does(tmp_path):
    """env_file values see the project's variables first, as compose-go reads them; a later file wins."""
    root = compose_app(
        tmp_path, "services:\n  web:\n    image: nginx:1.25\n    env_file: [common.env, web.env]\n",
        "REGION=eu-west-1\n", **{"common.env": "REGION=us-east-1\nBUCKET=assets-${REGION}\nMODE=base\n",
                                 "web.env": "MODE=web\n"})
    data = _objs(_render(root), "ConfigMap")["web-config"]["data"]
    assert data == {"BUCKET": "assets-eu-west-1", "MODE": "web", "REGION": "us-east-1"}
