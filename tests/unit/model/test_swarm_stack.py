"""The stack file berth renders from the resolved compose model (berth.model.compose.swarm)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from berth.configuration.target import load_target
from berth.model.compose.resolve import resolve_compose
from berth.model.compose.swarm import STACK_VERSION, StackError, object_name, render_stack

ROOT = Path(__file__).resolve().parents[3]

SECRET = "sk-live-0123456789abcdef0123456789"


@pytest.fixture
def example(tmp_path):
    root = tmp_path / "app"
    shutil.copytree(ROOT / "examples" / "app", root)
    (root / ".env.docker").write_text(f"APP_ENV=staging\nWEB_PORT=8088\nSECRET_KEY={SECRET}\n")
    (root / ".env").write_text("ENVIRONMENT=staging\nSERVER_IP=203.0.113.5\n")
    return root


def render(root, **kw):
    model = resolve_compose(load_target(root)).model
    images = kw.pop("images", {"web": "app-web:abc", "worker": "app-worker:abc"})
    return render_stack(model, "app", images, kw.pop("digests", {}),
                        kw.pop("remote_path", lambda p: p))


def test_the_example_becomes_a_version_3_stack_with_the_built_images_and_no_env_value(example):
    stack = render(example)
    doc = stack.document
    assert doc["version"] == STACK_VERSION and set(doc["services"]) == {"web", "worker"}
    web = doc["services"]["web"]
    assert web["image"] == "app-web:abc"
    for ignored in ("build", "restart", "depends_on", "environment", "container_name"):
        assert ignored not in web
    assert web["ports"] == [{"mode": "ingress", "target": 8080, "published": 8088, "protocol": "tcp"}]
    assert web["env_file"] == ["./web.env"]  # beside the stack file
    assert web["deploy"]["restart_policy"] == {"condition": "any"}  # from restart: unless-stopped
    assert web["deploy"]["update_config"] == {"parallelism": 1, "order": "start-first", "failure_action": "rollback",
                                              "monitor": "5s"}
    assert web["deploy"]["resources"] == {"limits": {"memory": "67108864"}}
    assert SECRET not in repr(doc)  # the env file's values live in the env files only
    assert f"SECRET_KEY={SECRET}\n".encode() in stack.env_files["web"]
    assert doc["volumes"] == {"records": {}} and doc["networks"] == {"default": {}}  # the stack names them


def test_a_port_in_host_mode_updates_stop_first_and_the_files_own_update_config_wins(example):
    compose = (example / "docker-compose.yml").read_text()
    compose = compose.replace('      - "${WEB_PORT:-8080}:8080"\n',
                              "      - target: 8080\n        published: 8089\n        mode: host\n")
    compose = compose.replace("      resources:\n        limits:\n          memory: 64M\n",
                              "      update_config:\n        parallelism: 2\n      resources:\n        limits:\n"
                              "          memory: 64M\n")
    (example / "docker-compose.yml").write_text(compose)
    web = render(example).document["services"]["web"]
    assert web["deploy"]["update_config"]["order"] == "stop-first"
    assert web["deploy"]["update_config"]["parallelism"] == 2 and web["deploy"]["rollback_config"]["order"] == "stop-first"


def test_secret_files_become_swarm_secrets_named_by_their_content(example):
    (example / "api_key.txt").write_text("k-1\n")
    compose = (example / "docker-compose.yml").read_text().replace(
        "    env_file: .env.docker\n    environment:", "    env_file: .env.docker\n    secrets: [api_key]\n    environment:", 1)
    (example / "docker-compose.yml").write_text(compose + "\nsecrets:\n  api_key:\n    file: ./api_key.txt\n")
    local = str(example / "api_key.txt")
    stack = render(example, digests={local: "ab" * 32}, remote_path=lambda p: "/srv/app/api_key.txt")
    name = object_name("app", "api_key", "ab" * 32)
    assert name == "app_api_key_abababababab"
    assert stack.document["secrets"] == {"api_key": {"file": "/srv/app/api_key.txt", "name": name}}
    assert stack.objects == {name: "/srv/app/api_key.txt"}
    assert stack.document["services"]["web"]["secrets"] == [{"source": "api_key", "target": "/run/secrets/api_key"}]


def test_a_service_without_image_or_build_and_a_multiline_value_are_refused(example):
    with pytest.raises(StackError, match="service worker has neither an image"):
        render(example, images={"web": "app-web:abc"})
    (example / ".env.docker").write_text('APP_ENV=staging\nKEY="a\nb"\n')
    with pytest.raises(StackError, match="holds a line break"):
        render(example)
