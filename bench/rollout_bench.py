#!/usr/bin/env python3
"""Failed requests and deploy time under load: berth with its proxy, and the seed's way, on the sandbox.

The app is written here, not taken from anyone: a web service that takes 2 s to start, whose PID 1 ignores
SIGTERM (docker waits its 10 s stop timeout), with /version and a 3 s /cgi-bin/slow, and a service with a
named volume (recreated, never doubled). A load generator sends GET /version from several threads (about
--rate requests/s, at most --max-requests, for at most the scenario's time, only to the sandbox host) and a
3 s request every half second, while each scenario runs:

  changed commit   berth deploy --push of a new version (start-first switch behind berth's proxy)
  rollback         berth rollback --yes to the version before
  failed deploy    a release whose health never passes (FAIL_HEALTH=1): berth keeps the old one serving
  proxy upgrade    berth deploy with a new proxy_image: compose recreates the proxy (the gap the docs name)
  seed             the seed agent's deploy of a new version on its own copy of the app:
                   `docker compose down && docker compose build --no-cache && docker compose up -d`, with
                   the app's settings passed on its command line, as the seed does

It prints one line per scenario (requests, failed, slow requests completed/failed, seconds, the version
answering after) and the ratio of berth's changed-commit deploy time to the seed's, and writes
bench/results/rollout.json. Needs root and scripts/setup.sh.

Usage: .venv/bin/python bench/rollout_bench.py [--rate 150] [--max-requests 40000]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from berth import sandbox as sb  # noqa: E402
from berth.sandbox.proxy_image import import_proxy_image  # noqa: E402

GIT_ENV = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com", "NO_COLOR": "1"}
BERTH = [sys.executable, "-m", "berth"]
SCENARIO_LIMIT_S = 180  # the load of one scenario never runs longer

COMPOSE = """\
services:
  web:
    build: ./web
    restart: unless-stopped
    env_file: .env.docker
    ports:
      - "${WEB_PORT}:8080"
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/health"]
      interval: 1s
      timeout: 2s
      retries: 3
  store:
    build: ./store
    restart: unless-stopped
    volumes:
      - store-data:/data
volumes:
  store-data:
"""
WEB_DOCKERFILE = """\
FROM busybox:1.35
COPY VERSION start.sh /app/
COPY slow /www/cgi-bin/slow
RUN chmod 755 /app/start.sh /www/cgi-bin/slow
EXPOSE 8080
CMD ["/app/start.sh"]
"""
# PID 1 is httpd, which installs no SIGTERM handler: the kernel ignores the signal, docker waits 10 s
WEB_START = """\
#!/bin/sh
sleep 2
cp /app/VERSION /www/version
[ -n "$FAIL_HEALTH" ] || echo ok > /www/health
exec httpd -f -p 8080 -h /www
"""
SLOW_CGI = """\
#!/bin/sh
sleep 3
printf 'Content-Type: text/plain\\r\\n\\r\\nslow done\\n'
"""
STORE_DOCKERFILE = """\
FROM busybox:1.35
CMD ["sh", "-c", "trap 'exit 0' TERM; while :; do date >> /data/log; sleep 1 & wait $!; done"]
"""


class Load:
    """GET /version from `threads` threads at about `rate` requests/s in all, and GET /cgi-bin/slow (3 s) every
    half second, until stopped; bounded by `max_requests` and SCENARIO_LIMIT_S."""

    def __init__(self, base: str, rate: int, max_requests: int, threads: int = 48) -> None:
        self.base, self.interval, self.max = base, threads / rate, max_requests
        parts = urllib.parse.urlsplit(base)
        self.host, self.port = parts.hostname, parts.port or 80
        self.ok = self.failed = self.slow_ok = self.slow_failed = 0
        self.errors: list[str] = []
        self.last = ""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._fast, daemon=True) for _ in range(threads)]
        self._threads.append(threading.Thread(target=self._slow_starter, daemon=True))
        self._slow: list[threading.Thread] = []
        self.started = self.ended = 0.0

    def _get(self, path: str, timeout: float) -> str:
        # http.client, not urllib: the same new connection per request at a fraction of the client's CPU
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.request("GET", path)
            answer = conn.getresponse()
            body = answer.read().decode().strip()
            if answer.status != 200:
                raise OSError(f"HTTP {answer.status}")
            return body
        finally:
            conn.close()

    def _done(self) -> bool:
        return self._stop.is_set() or self.ok + self.failed >= self.max or \
            time.monotonic() - self.started > SCENARIO_LIMIT_S

    def _fast(self) -> None:
        while not self._done():
            t = time.monotonic()
            try:  # a new connection per request: the hardest case for a switch (no client retry)
                body = self._get("/version", 10)
                with self._lock:
                    self.ok += 1
                    self.last = body
            except (http.client.HTTPException, OSError) as exc:
                with self._lock:
                    self.failed += 1
                    if len(self.errors) < 5:
                        self.errors.append(str(exc))
            time.sleep(max(0.0, self.interval - (time.monotonic() - t)))

    def _slow_one(self) -> None:
        try:
            ok = self._get("/cgi-bin/slow", 20) == "slow done"
        except (http.client.HTTPException, OSError):
            ok = False
        with self._lock:
            if ok:
                self.slow_ok += 1
            else:
                self.slow_failed += 1

    def _slow_starter(self) -> None:
        while not self._done():
            t = threading.Thread(target=self._slow_one, daemon=True)
            t.start()
            self._slow.append(t)
            time.sleep(0.5)

    def __enter__(self) -> Load:
        self.started = time.monotonic()
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        time.sleep(1)  # requests after the change reach what serves now
        self._stop.set()
        self.ended = time.monotonic()  # the rate counts the time the load ran, not the wait for slow requests
        for t in self._threads + self._slow:
            t.join(timeout=30)

    def row(self, seconds: float) -> dict:
        elapsed = (self.ended or time.monotonic()) - self.started
        return {"requests": self.ok + self.failed, "failed": self.failed,
                "requests_per_s": round((self.ok + self.failed) / elapsed, 1),
                "slow_completed": self.slow_ok, "slow_failed": self.slow_failed,
                "seconds": round(seconds, 2), "version_after": self.last, "errors": self.errors}


def sh(argv, cwd=None, input=None, check=True, env=None) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, cwd=cwd, input=input, capture_output=True, env={**os.environ, **GIT_ENV, **(env or {})})
    if check and proc.returncode != 0:
        raise SystemExit(f"failed: {argv}\n{proc.stdout.decode()}\n{proc.stderr.decode()}")
    return proc


def write_app(repo: Path, version: str) -> None:
    for rel, text in {"docker-compose.yml": COMPOSE, "web/Dockerfile": WEB_DOCKERFILE, "web/start.sh": WEB_START,
                      "web/slow": SLOW_CGI, "web/VERSION": version + "\n", "store/Dockerfile": STORE_DOCKERFILE,
                      ".gitignore": ".env\n.env.docker\n"}.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)


def wait_version(url: str, want: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.read().decode().strip() == want:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} never answered {want}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=int, default=150, help="requests per second of the load (about)")
    ap.add_argument("--max-requests", type=int, default=40000, help="at most this many per scenario")
    args = ap.parse_args()

    box = sb.up(hosts=1, repo="rollout-bench")
    host = box.hosts[0]
    proxy_image = import_proxy_image(host.docker_host)
    work = Path(tempfile.mkdtemp(prefix="berth-rollout-bench-"))
    results: dict[str, object] = {}
    try:
        repo = work / "app"
        write_app(repo, "1")
        sh(["git", "init", "-q", "-b", "main"], repo)
        sh(["git", "add", "-A"], repo)
        sh(["git", "commit", "-qm", "v1"], repo)
        sh(["git", "remote", "add", "origin", box.remote], repo)
        port, seed_port = 8080, 8090
        app_env = f"WEB_PORT={port}\n"
        (repo / ".env.docker").write_text(app_env)
        (repo / ".env").write_text(box.env_lines() + "\nENVIRONMENT=staging\nAPP_DIR=~/rollout\nBERTH_PROXY=true\n"
                                   f"BERTH_PROXY_IMAGE={proxy_image}\n"
                                   f"HEALTH_URL=http://{host.address}:{port}/version\nVERIFY_TIMEOUT=60\n")
        base = f"http://{host.address}:{port}"

        steps: dict[str, list[str]] = {}

        def berth(*cmd, ok=True, scenario="") -> float:
            t = time.perf_counter()
            proc = sh([*BERTH, *cmd], repo, check=False)
            took = time.perf_counter() - t
            steps[scenario or " ".join(cmd)] = [ln.strip() for ln in proc.stdout.decode().splitlines() if ln.strip()[:1] in "✓✗"]
            if (proc.returncode == 0) != ok:
                raise SystemExit(f"berth {' '.join(cmd)}: exit {proc.returncode}\n{proc.stdout.decode()}"
                                 f"{proc.stderr.decode()}")
            return took

        def commit(version: str) -> None:
            (repo / "web" / "VERSION").write_text(version + "\n")
            sh(["git", "commit", "-qam", f"v{version}"], repo)

        berth("deploy", "--push")  # the proxy's first start: not measured
        wait_version(base + "/version", "1")

        commit("2")
        with Load(base, args.rate, args.max_requests) as load:
            took = berth("deploy", "--push", scenario="changed_commit")
        results["changed_commit"] = load.row(took)

        with Load(base, args.rate, args.max_requests) as load:
            took = berth("rollback", "--yes", scenario="rollback")
        results["rollback"] = load.row(took)

        commit("3")
        (repo / ".env.docker").write_text(app_env + "FAIL_HEALTH=1\n")
        with Load(base, args.rate, args.max_requests) as load:
            took = berth("deploy", "--push", ok=False, scenario="failed_deploy")
        results["failed_deploy"] = load.row(took)
        (repo / ".env.docker").write_text(app_env)

        # a new proxy image: compose recreates the proxy container (docs/ROLLOUTS.md names this gap)
        sh(["docker", "-H", host.docker_host, "tag", proxy_image, "berth-sandbox/caddy:upgraded"])
        env_text = (repo / ".env").read_text()
        (repo / ".env").write_text(env_text.replace(f"BERTH_PROXY_IMAGE={proxy_image}",
                                                    "BERTH_PROXY_IMAGE=berth-sandbox/caddy:upgraded"))
        with Load(base, args.rate, args.max_requests) as load:
            took = berth("deploy", scenario="proxy_upgrade")
        results["proxy_upgrade"] = load.row(took)

        # the seed's agent: its own copy of the app on the same server, deployed its way
        ssh = ["ssh", "-i", box.key, "-o", f"UserKnownHostsFile={box.known_hosts}", "-o", "BatchMode=yes",
               f"{host.user}@{host.address}"]
        sh([*ssh, f"rm -rf seed && git clone -q {box.remote} seed"])
        seed_env = f"WEB_PORT={seed_port}"  # on the command line, as the seed passes it
        seed_cmd = (f"cd seed && git fetch -q origin && git checkout -q --detach origin/main && touch .env.docker && "
                    f"{seed_env} docker compose -p seed down && {seed_env} docker compose -p seed build --no-cache -q "
                    f"&& {seed_env} docker compose -p seed up -d")
        sh([*ssh, seed_cmd])
        seed_base = f"http://{host.address}:{seed_port}"
        wait_version(seed_base + "/version", "3")
        commit("4")
        sh(["git", "push", "-q", "origin", "HEAD:refs/heads/main"], repo)
        with Load(seed_base, args.rate, args.max_requests) as load:
            t = time.perf_counter()
            sh([*ssh, seed_cmd])
            wait_version(seed_base + "/version", "4", timeout=120)
            took = time.perf_counter() - t
        results["seed_changed_commit"] = load.row(took)
        sh([*ssh, f"cd seed && {seed_env} docker compose -p seed stop -t 1"], check=False)
        results["steps"] = steps
        results["deploy_time_ratio_berth_to_seed"] = round(
            results["changed_commit"]["seconds"] / results["seed_changed_commit"]["seconds"], 2)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        sb.down()

    print(f"{'scenario':22} {'requests':>8} {'req/s':>6} {'failed':>6} {'slow ok':>7} {'slow failed':>11} "
          f"{'seconds':>7}  version after")
    for name in ("changed_commit", "rollback", "failed_deploy", "proxy_upgrade", "seed_changed_commit"):
        r = results[name]
        print(f"{name:22} {r['requests']:>8} {r['requests_per_s']:>6} {r['failed']:>6} {r['slow_completed']:>7} "
              f"{r['slow_failed']:>11} {r['seconds']:>7}  {r['version_after']}")
    print(f"changed-commit deploy time, berth / seed: {results['deploy_time_ratio_berth_to_seed']} (target <= 0.5)")
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "rollout.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
