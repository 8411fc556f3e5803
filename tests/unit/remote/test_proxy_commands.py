"""berth's proxy as data (berth.remote.commands.proxy): the compose override is read by the real `docker compose
config` as berth means it, the Caddyfile by the real `caddy adapt`; the switch's commands are shell text."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from berth.model.compose.rollout import Route
from berth.remote.commands import proxy
from tests.helpers import compose_available

ROUTES = [Route("web", "", 8080, 80), Route("web", "127.0.0.1", 8443, 443), Route("api", "", 9000, 9000)]
NETWORKS = {"web": ["default", "front"], "api": ["default"]}
COMPOSE = """\
services:
  web:
    image: nginx:1.25
    ports: ["8080:80", "127.0.0.1:8443:443"]
    networks: [default, front]
  api:
    image: nginx:1.25
    ports: ["9000:9000"]
  db:
    image: postgres:16
    ports: ["127.0.0.1:5432:5432"]
networks:
  front: {}
"""


@pytest.mark.skipif(not compose_available(), reason="docker compose is not installed")
def test_compose_reads_the_override_as_berth_means_it(tmp_path):
    (tmp_path / "docker-compose.yml").write_text(COMPOSE)
    (tmp_path / "proxy.yml").write_text(proxy.override(ROUTES, NETWORKS, "caddy:2.8.4-alpine", "/home/deploy/.berth/shop"))
    proc = subprocess.run(["docker", "compose", "--project-directory", str(tmp_path), "-p", "shop",
                           "-f", str(tmp_path / "docker-compose.yml"), "-f", str(tmp_path / "proxy.yml"),
                           "config", "--format", "json"], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin:/usr/local/bin"})
    assert proc.returncode == 0, proc.stderr
    services = json.loads(proc.stdout)["services"]
    assert "ports" not in services["web"] and "ports" not in services["api"]  # the proxy took them
    assert services["db"]["ports"][0]["published"] == "5432"  # a recreated service keeps its own
    p = services[proxy.SERVICE]
    assert sorted((x.get("host_ip", ""), x["published"], x["target"]) for x in p["ports"]) == [
        ("", "8080", 8080), ("", "9000", 9000), ("127.0.0.1", "8443", 8443)]
    assert set(p["networks"]) == {"default", "front"}
    assert {v["target"] for v in p["volumes"]} == {"/etc/caddy", "/data"}
    assert p["restart"] == "unless-stopped"


@pytest.mark.skipif(shutil.which("caddy") is None, reason="caddy is not installed (scripts/setup.sh installs it)")
def test_caddy_reads_the_caddyfile_the_switch_writes(tmp_path):
    path = tmp_path / "Caddyfile"
    path.write_text(proxy.caddyfile(ROUTES, {"web": ["shop-web-2", "shop-web-1"], "api": ["shop-api-1"]}))
    proc = subprocess.run(["caddy", "adapt", "--config", str(path), "--adapter", "caddyfile"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    config = json.loads(proc.stdout)
    assert config["admin"]["listen"] == proxy.ADMIN
    servers = config["apps"]["http"]["servers"]
    listens = sorted(port for s in servers.values() for port in s["listen"])
    assert listens == [":8080", ":8443", ":9000"]
    handlers = {s["listen"][0]: s["routes"][0]["handle"][0] for s in servers.values()}
    web = handlers[":8080"]
    assert [u["dial"] for u in web["upstreams"]] == ["shop-web-2:80", "shop-web-1:80"]  # the new one first
    assert web["load_balancing"]["selection_policy"]["policy"] == "first"
    assert [u["dial"] for u in handlers[":8443"]["upstreams"]] == ["shop-web-2:443", "shop-web-1:443"]


def test_in_flight_counts_the_requests_to_one_container_on_any_port():
    answer = json.dumps([{"address": "shop-web-1:80", "num_requests": 2}, {"address": "shop-web-1:443", "num_requests": 1},
                         {"address": "shop-web-2:80", "num_requests": 7}])
    assert proxy.in_flight(answer, "shop-web-1") == 3
    assert proxy.in_flight(answer, "shop-web-3") == 0
    assert proxy.in_flight("not json", "shop-web-1") is None


def test_a_retired_container_stops_in_the_background_with_its_own_stop_timeout():
    script = proxy.retire("shop-web-1")
    assert script.startswith("nohup sh -c ") and script.endswith(" &")
    assert "docker stop shop-web-1" in script and "docker rm shop-web-1" in script and "-t" not in script
