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


def test_a_retired_container_stops_in_the_background_with_its_own_stop_timeout():
    script = proxy.retire("shop-web-1", "/home/deploy/.berth/shop")
    assert script.startswith("echo shop-web-1 >> /home/deploy/.berth/shop/proxy/retired && { nohup sh -c ")
    assert script.endswith(" & }")
    assert "docker stop shop-web-1" in script and "docker rm shop-web-1" in script and "-t" not in script


def test_the_containers_a_switch_retired_are_not_taken_for_serving_ones(tmp_path):
    """The shell text that lists a service's containers, run on fake `docker ps` output."""
    retired = tmp_path / "proxy" / "retired"
    retired.parent.mkdir()
    script = proxy.container_ids("shop", "web", str(tmp_path)).replace(
        proxy.container_ids("shop", "web"), "printf 'c3 shop-web-3\\nc2 shop-web-2\\nc1 shop-web-1\\n'")
    run = lambda: subprocess.run(["sh", "-c", script], capture_output=True, text=True).stdout.split()[1::2]  # noqa: E731
    assert run() == ["shop-web-3", "shop-web-2", "shop-web-1"]  # newest first, none retired
    retired.write_text("shop-web-1\nshop-web-2\n")
    assert run() == ["shop-web-3"]


def test_retiring_returns_at_once_while_the_container_stops(tmp_path):
    """The script, with a `docker` that takes 3 s to stop, returns while the stop goes on in the background."""
    import time

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text("#!/bin/sh\n[ \"$1\" = stop ] && sleep 3\necho \"$@\" >> " + str(tmp_path / "calls") + "\n")
    (bin_dir / "docker").chmod(0o755)
    (tmp_path / "proxy").mkdir()
    started = time.monotonic()
    proc = subprocess.run(["sh", "-c", proxy.retire("shop-web-1", str(tmp_path))], capture_output=True, text=True,
                          env={"PATH": f"{bin_dir}:/usr/bin:/bin"}, timeout=30)
    assert proc.returncode == 0 and time.monotonic() - started < 2
    assert (tmp_path / "proxy" / "retired").read_text() == "shop-web-1\n"  # listed while it stops
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and "rm shop-web-1" not in ((tmp_path / "calls").read_text()
                                                                  if (tmp_path / "calls").exists() else ""):
        time.sleep(0.1)
    time.sleep(0.2)
    assert (tmp_path / "calls").read_text().split("\n")[:2] == ["stop shop-web-1", "rm shop-web-1"]
    assert (tmp_path / "proxy" / "retired").read_text() == ""  # gone from the list once removed


def test_a_retired_container_stops_only_once_its_requests_in_flight_finish(tmp_path):
    """With the proxy: the background job waits while Caddy counts a request in flight to the old container
    (its answer read through a fake `docker exec`), and stops it once the count is 0."""
    import time

    bin_dir, count = tmp_path / "bin", tmp_path / "count"
    bin_dir.mkdir()
    count.write_text("1")
    (bin_dir / "docker").write_text(
        "#!/bin/sh\n"
        f"if [ \"$1\" = exec ]; then printf '[{{\"address\":\"shop-web-1:80\",\"num_requests\":%s,\"fails\":0}}]' "
        f"\"$(cat {count})\"; exit 0; fi\n"
        f"echo \"$@\" >> {tmp_path / 'calls'}\n")
    (bin_dir / "docker").chmod(0o755)
    (tmp_path / "proxy").mkdir()
    script = proxy.retire("shop-web-1", str(tmp_path), "shop-berth-proxy-1", 30)
    subprocess.run(["sh", "-c", script], env={"PATH": f"{bin_dir}:/usr/bin:/bin"}, timeout=30, check=True)
    time.sleep(1.5)
    assert not (tmp_path / "calls").exists()  # a request is in flight: not stopped yet
    count.write_text("0")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not (tmp_path / "calls").exists():
        time.sleep(0.1)
    time.sleep(0.3)
    assert (tmp_path / "calls").read_text().split("\n")[:2] == ["stop shop-web-1", "rm shop-web-1"]


@pytest.mark.parametrize("variant, version, ok", [("v2", "2.26.1-4", True), ("v2", "2.24.0", True),
                                                  ("v2", "2.23.3", False), ("v1", "1.29.2", False), ("v2", "", False)])
def test_the_proxy_needs_a_compose_that_knows_reset(variant, version, ok):
    from types import SimpleNamespace

    from berth.deploy.stages.start_first import compose_supports_proxy

    session = SimpleNamespace(compose=SimpleNamespace(variant=variant), compose_version=version)
    assert compose_supports_proxy(session) is ok


def test_status_reads_which_container_serves_from_the_caddyfile():
    text = proxy.caddyfile(ROUTES, {"web": ["shop-web-2", "shop-web-1"], "api": ["shop-api-1"]})
    assert proxy.serving(text) == {"shop-web-2": [":8080", ":8443"], "shop-api-1": [":9000"]}  # not the old one
    assert proxy.serving("") == {}


def test_reload_waits_for_a_proxy_that_has_just_started_but_not_for_a_broken_config(tmp_path):
    import os
    import subprocess

    from berth.remote.commands.proxy import reload

    fake = tmp_path / "docker"  # refuses twice as a Caddy whose admin endpoint is not up yet, then reloads
    fake.write_text('#!/bin/sh\nn=$(cat "$0.count" 2>/dev/null || echo 0); echo $((n+1)) > "$0.count"\n'
                    'if [ -n "$BROKEN" ]; then echo "Error: adapting config: unknown directive" >&2; exit 1; fi\n'
                    '[ "$n" -ge 2 ] && exit 0\n'
                    'echo \'Error: dial tcp 127.0.0.1:2019: connect: connection refused\' >&2; exit 1\n')
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    proc = subprocess.run(["sh", "-c", reload("px")], env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0 and (tmp_path / "docker.count").read_text().strip() == "3"
    (tmp_path / "docker.count").unlink()
    proc = subprocess.run(["sh", "-c", reload("px")], env={**env, "BROKEN": "1"}, capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 1 and "unknown directive" in proc.stderr
    assert (tmp_path / "docker.count").read_text().strip() == "1"  # not tried again
