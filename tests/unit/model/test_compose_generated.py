"""Generated compose projects, resolved by berth and by the real `docker compose config`: the same model, and the
same accept/reject decision.

Each project is built from a seed: a few services, each with a random handful of the service keys below (every
key of the compose spec that Compose 2.26 accepts outside Swarm, in its short and long forms, interpolated or
not), the top-level volumes, networks, secrets and configs they use, sometimes a `name:`; a quarter of them get
one defect compose refuses. berth must resolve an accepted project exactly as compose does (services, networks,
volumes, secrets, configs, name) and report an error for each one compose rejects (`berth check`'s compose.*
rules, or `berth config`'s refusal). Intended differences are listed in docs/CONFIG.md ("berth config").
Skipped without `docker compose`.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from berth.check import run_checks
from berth.configuration.document import config_document
from berth.configuration.target import load_target
from berth.errors import BerthError
from berth.model.compose.resolve import resolve_compose
from tests.helpers import compose_available

PROJECTS = 400  # seeds 0..PROJECTS-1
DOTENV = "ENVIRONMENT=staging\nSERVER_IP=203.0.113.5\nSERVER_USER=deploy\n"
APP_ENV = "TAG=1.25\nWEB_PORT=8081\nAPP_ENV=staging\nREPLICAS=2\nMEM=256m\nGREETING=\"hello world\"\n"

# service key → YAML values (indented under the key); {n} is the service's index (unique names), {port} a host
# port of its own, {other} another service's index
SERVICE_KEYS: dict[str, list[str]] = {
    "build": [" ./app{n}", "\n  context: ./app{n}\n  dockerfile: Dockerfile\n  args:\n    VERSION: \"${TAG}\"\n",
              "\n  context: ./app{n}\n  target: prod\n  args: [\"A=1\", \"GREETING\"]\n  labels: {a: b}\n"],
    "command": [" echo hello", " [\"sh\", \"-c\", \"echo $$HOME\"]", " sh -c 'echo \"${GREETING}\"'"],
    "entrypoint": [" /bin/sh", " [\"/bin/sh\", \"-c\"]"],
    "environment": ["\n  A: \"1\"\n  B: ${APP_ENV}\n  C:\n", "\n  - A=1\n  - B=${APP_ENV:-x}\n  - TAG\n",
                    "\n  NUM: 3\n  BOOL: true\n  DOLLAR: a$$b\n"],
    "env_file": [" ./common.env", "\n  - ./common.env\n  - path: ./optional.env\n    required: false\n"],
    "ports": ["\n  - \"{port}:80\"\n", "\n  - \"127.0.0.1:{port}:80/tcp\"\n  - \"9{n}00-9{n}01:8000-8001/udp\"\n",
              "\n  - target: 80\n    published: \"{port}\"\n    protocol: tcp\n", "\n  - \"${WEB_PORT:-8080}\"\n",
              "\n  - 80\n"],
    "expose": [" [\"80\", \"90/udp\"]", "\n  - 3000\n"],
    "volumes": ["\n  - data:/data\n", "\n  - ./conf:/etc/conf:ro\n  - /anon\n",
                "\n  - ./conf/:/srv/www/\n  - /anon/\n  - /etc/app/:/etc/app\n",
                "\n  - type: bind\n    source: ./conf\n    target: /conf\n    read_only: true\n"
                "  - type: tmpfs\n    target: /tmp\n    tmpfs:\n      size: 1000\n",
                "\n  - type: volume\n    source: data\n    target: /d\n    volume:\n      nocopy: true\n"],
    "depends_on": ["\n  - s{other}\n", "\n  s{other}:\n    condition: service_started\n",
                   "\n  s{other}:\n    condition: service_healthy\n    restart: true\n"],
    "healthcheck": ["\n  test: [\"CMD\", \"true\"]\n  interval: 90s\n  timeout: 1500ms\n  retries: 3\n"
                    "  start_period: 1m\n", "\n  test: curl -f http://localhost\n", "\n  disable: true\n"],
    "restart": [" always", " unless-stopped", " \"no\"", " on-failure:3"],
    "deploy": ["\n  replicas: ${REPLICAS}\n", "\n  resources:\n    limits:\n      cpus: \"0.5\"\n      memory: ${MEM}\n"
               "    reservations:\n      memory: 64M\n",
               "\n  restart_policy:\n    condition: on-failure\n    delay: 5s\n    max_attempts: 3\n"],
    "labels": ["\n  a: b\n  c: \"1\"\n", "\n  - a=b\n  - c\n"],
    "networks": ["\n  - front\n", "\n  front:\n    aliases: [alias{n}]\n  back: {}\n"],
    "init": [" true", " false"],
    "privileged": [" true", " false"],
    "read_only": [" true"],
    "tty": [" true"],
    "stdin_open": [" true"],
    "user": [" \"1000:1000\"", " nobody"],
    "working_dir": [" /srv"],
    "hostname": [" host{n}"],
    "domainname": [" example.com"],
    "stop_signal": [" SIGTERM"],
    "stop_grace_period": [" 90s", " 1m30s"],
    "cap_add": [" [NET_ADMIN]"],
    "cap_drop": ["\n  - ALL\n"],
    "dns": [" 1.1.1.1", " [8.8.8.8, 1.1.1.1]"],
    "dns_search": [" example.com"],
    "extra_hosts": [" [\"host.docker.internal:host-gateway\"]", "\n  db.local: 10.0.0.5\n"],
    "sysctls": ["\n  net.core.somaxconn: 1024\n", " [net.core.somaxconn=1024]"],
    "ulimits": ["\n  nproc: 65535\n  nofile:\n    soft: 1024\n    hard: 2048\n"],
    "logging": ["\n  driver: json-file\n  options:\n    max-size: 10m\n"],
    "secrets": ["\n  - token\n", "\n  - source: token\n    target: /run/secrets/t\n"],
    "configs": ["\n  - site\n", "\n  - source: site\n    target: /etc/site.conf\n"],
    "tmpfs": [" /run", " [/run, /tmp]"],
    "shm_size": [" 64m"],
    "mem_limit": [" 256m", " ${MEM}"],
    "cpus": [" 0.5", " \"1.5\""],
    "pids_limit": [" 100"],
    "security_opt": [" [no-new-privileges:true]"],
    "group_add": [" [\"1000\"]"],
    "platform": [" linux/amd64"],
    "pull_policy": [" always", " missing"],
    "profiles": [" [debug]", " [jobs]"],
    "container_name": [" c{n}"],
    "ipc": [" private"],
    "oom_score_adj": [" 100"],
    "x-note": [" anything"],
}
IMAGE = [" nginx:1.25", " \"nginx:${TAG}\"", " busybox:1.36"]

# what compose refuses (and berth must too): one per defective project
DEFECTS = ["undeclared volume", "unknown dependency", "network_mode and networks", "not a mapping",
           "undeclared secret", "undeclared network", "duplicate key", "container_name with replicas",
           "distinct memory limits", "depends on a disabled profile", "unknown service key", "unknown top-level key"]


@dataclass
class Project:
    seed: int
    compose: str
    files: dict[str, str] = field(default_factory=dict)
    defect: str | None = None
    keys: set[str] = field(default_factory=set)


def generate(seed: int) -> Project:
    rng = random.Random(seed)
    count = rng.randint(1, 3)
    uses: set[str] = set()
    keys: set[str] = set()
    lines = []
    if rng.random() < 0.2:
        lines.append(f"name: gen-${{APP_ENV}}-{seed}\n")
        keys.add("name")
    lines.append("services:\n")
    for n in range(count):
        chosen = rng.sample(sorted(SERVICE_KEYS), rng.randint(2, 8))
        if n == 0:
            chosen = [k for k in chosen if k != "profiles"]  # one service always starts
        if count == 1:
            chosen = [k for k in chosen if k != "depends_on"]
        body = []
        if "build" not in chosen or rng.random() < 0.5:
            body.append("image:" + rng.choice(IMAGE) + "\n")
            keys.add("image")
        for key in chosen:
            value = (rng.choice(SERVICE_KEYS[key]).replace("{n}", str(n))
                     .replace("{port}", str(8100 + 10 * seed % 800 + n)).replace("{other}", str((n + 1) % count)))
            body.append(f"{key}:{value}" + ("" if value.endswith("\n") else "\n"))
            keys.add(key)
            for name in ("data", "front", "back", "token", "site"):
                if name in value and key in ("volumes", "networks", "secrets", "configs"):
                    uses.add(name)
        lines.append(f"  s{n}:\n" + "".join("    " + line if line.strip() else line
                                             for text in body for line in text.splitlines(keepends=True)))
    project = Project(seed, "", {"common.env": "COMMON=1\nREF=${TAG}\n", "conf/x": "x\n",
                                 "secrets/token.txt": "t0k-Zq8x7c6v5b4n3m2L\n", "site.conf": "server {}\n"},
                      keys=keys)
    for n in range(count):
        project.files[f"app{n}/Dockerfile"] = "FROM busybox:1.36 AS prod\n"
    top = {"volumes": ["data"], "networks": ["front", "back"], "secrets": ["token"], "configs": ["site"]}
    declared = {"volumes": "  data: {}\n", "networks": "  front: {}\n  back:\n    internal: true\n",
                "secrets": "  token:\n    file: ./secrets/token.txt\n", "configs": "  site:\n    file: ./site.conf\n"}
    if rng.random() < 0.25:
        project.defect = rng.choice(DEFECTS)
    for section, names in top.items():
        if uses & set(names) or rng.random() < 0.2:
            lines.append(f"{section}:\n{declared[section]}")
            keys.add(f"top-level {section}")
    text = "".join(lines)
    if project.defect == "unknown dependency":
        text = text.replace("  s0:\n", "  s0:\n    depends_on: [missing]\n", 1)
    elif project.defect == "network_mode and networks":
        text = text.replace("  s0:\n", "  s0:\n    network_mode: host\n    networks: [front]\n", 1)
        if "\nnetworks:" not in text:
            text += "networks:\n" + declared["networks"]
    elif project.defect == "duplicate key":
        text = text.replace("  s0:\n", "  s0:\n    restart: always\n    restart: \"no\"\n", 1)
    elif project.defect == "container_name with replicas":
        text = text.replace("  s0:\n", "  s0:\n    container_name: only-one\n    scale: 3\n", 1)
    elif project.defect == "distinct memory limits":
        text = text.replace("  s0:\n", "  s0:\n    mem_limit: 1g\n    deploy:\n      resources:\n        limits:\n"
                            "          memory: 512m\n", 1)
    elif project.defect == "depends on a disabled profile":
        text = text.replace("services:\n", "services:\n  optional:\n    image: busybox:1.36\n    profiles: [never]\n"
                            "  needy:\n    image: busybox:1.36\n    depends_on: [optional]\n", 1)
    elif project.defect == "unknown service key":
        text = text.replace("  s0:\n", "  s0:\n    enviroment: {A: \"1\"}\n", 1)
    elif project.defect == "unknown top-level key":
        text += "service:\n  web: {}\n"
    elif project.defect == "not a mapping":
        text = text.replace("services:\n", "services:\n  broken: nginx:1.25\n", 1)
    elif project.defect and project.defect.startswith("undeclared"):  # a service of its own uses "ghost"
        reference = {"volume": "volumes: [\"ghost:/g\"]", "network": "networks: [ghost]",
                     "secret": "secrets: [ghost]"}[project.defect.split()[1]]
        text = text.replace("services:\n", f"services:\n  extra:\n    image: busybox:1.36\n    {reference}\n", 1)
    project.compose = text
    return project


def write(project: Project, root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for rel, text in {"docker-compose.yml": project.compose, ".env": DOTENV, ".env.docker": APP_ENV,
                      **project.files}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def compose_config(root: Path) -> tuple[bool, dict | str]:
    """compose's model, its project name derived by compose itself (from name: or the directory)."""
    argv = ["docker", "compose", "--project-directory", str(root), "--file", str(root / "docker-compose.yml"),
            "--env-file", str(root / ".env.docker"), "config", "--format", "json"]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/root")}
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=root, env=env, timeout=120)
    return (True, json.loads(proc.stdout)) if proc.returncode == 0 else (False, proc.stderr.strip())


def berth_rejects(root: Path) -> list[str]:
    """berth's errors about the project: `berth config`'s refusal, or `berth check`'s compose.* errors."""
    target = load_target(root)
    problems = []
    try:
        resolve_compose(target)
    except BerthError as exc:
        problems.append(f"config: {exc.what}")
    report = run_checks(target, offline=True)
    problems += [f"{f.rule}: {f.message}" for f in report.findings
                 if f.rule.startswith("compose.") and f.severity.name == "ERROR"]
    return problems


needs_compose = pytest.mark.skipif(not compose_available(), reason="docker compose (v2) is not installed")


def test_the_generated_projects_cover_every_key_and_every_defect():
    projects = [generate(seed) for seed in range(PROJECTS)]
    covered = set().union(*(p.keys for p in projects))
    assert set(SERVICE_KEYS) | {"image", "name"} <= covered
    assert {"top-level volumes", "top-level networks", "top-level secrets", "top-level configs"} <= covered
    assert {p.defect for p in projects if p.defect} == set(DEFECTS)


@needs_compose
@pytest.mark.parametrize("seed", range(PROJECTS))
def test_berth_resolves_and_decides_as_docker_compose(tmp_path, seed):
    project = generate(seed)
    root = write(project, tmp_path / f"gen{seed}")
    target = load_target(root)
    accepted, theirs = compose_config(root)
    refusals = berth_rejects(root)
    if not accepted:
        assert refusals, f"compose rejects seed {seed} ({theirs}) and berth accepts it:\n{project.compose}"
        return
    assert not [r for r in refusals if r.startswith(("config:", "compose.invalid-project"))], \
        f"compose accepts seed {seed} and berth refuses it: {refusals}\n{project.compose}"
    ours = config_document(target, show_secrets=True)  # what `berth config` prints (`$` escaped as `$$`)
    assert ours["name"] == theirs["name"]
    assert ours["services"] == theirs["services"], f"seed {seed}:\n{project.compose}"
    for key in ("networks", "volumes", "secrets", "configs"):
        assert ours.get(key) == theirs.get(key), f"{key} of seed {seed}:\n{project.compose}"
