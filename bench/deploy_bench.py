#!/usr/bin/env python3
"""Times berth against the same steps done by hand, on the sandbox (needs root and scripts/setup.sh).

Measures (median of --runs):
  cold deploy          first deploy of the example app to a fresh server
  changed-commit       a new commit: berth deploy --push  vs  git push + ssh git fetch/checkout +
                       ssh env copy + ssh docker compose build && up -d --wait + curl health
  no-op redeploy       nothing changed: berth deploy  vs  the same plain commands
  ssh connections      logins the server's sshd accepted during one berth deploy
  berth --version      start-up time
  berth check          on the example app
  rollback             berth rollback to the previous release (kept images: no build), next to a
                       changed-commit deploy
  doctor               berth doctor on the healthy example app, and its SSH logins
Targets (issue #2): changed-commit within 1 s of plain; no-op <= 2 s; 1 SSH connection per host
per deploy; --version <= 150 ms. Results are printed and written to bench/results/deploy.json.

Usage: .venv/bin/python bench/deploy_bench.py [--runs 3] [--proxy]   (--proxy: with berth's proxy on)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from berth import sandbox as sb  # noqa: E402

GIT_ENV = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com", "NO_COLOR": "1"}
BERTH = [sys.executable, "-m", "berth"]


def sh(argv, cwd=None, input=None, check=True) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, cwd=cwd, input=input, capture_output=True, env={**os.environ, **GIT_ENV})
    if check and proc.returncode != 0:
        raise SystemExit(f"failed: {argv}\n{proc.stdout.decode()}\n{proc.stderr.decode()}")
    return proc


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} never answered 200")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--proxy", action="store_true", help="deploy with berth's proxy on (start-first web)")
    args = ap.parse_args()

    box = sb.up(hosts=1, repo="bench")
    host = box.hosts[0]
    work = Path(tempfile.mkdtemp(prefix="berth-bench-"))
    try:
        repo = work / "berth"
        shutil.copytree(ROOT / "examples" / "app", repo)
        sh(["git", "init", "-q", "-b", "main"], repo)
        sh(["git", "add", "-A"], repo)
        sh(["git", "commit", "-qm", "example"], repo)
        sh(["git", "remote", "add", "origin", box.remote], repo)
        port = 8080
        (repo / ".env.docker").write_text(
            f"APP_ENV=staging\nWEB_PORT={port}\nSECRET_KEY=bench-secret-0123456789abcdef\n"
            "DATABASE_URL=postgres://app:pw-bench-123@db:5432/app\n")
        health = f"http://{host.address}:{port}/health"
        dotenv = box.env_lines() + f"\nENVIRONMENT=staging\nHEALTH_URL={health}\nAPP_DIR=~/berth\n"
        if args.proxy:
            from berth.sandbox.proxy_image import import_proxy_image

            dotenv += f"BERTH_PROXY=true\nBERTH_PROXY_IMAGE={import_proxy_image(host.docker_host)}\n"
        (repo / ".env").write_text(dotenv)
        results: dict[str, object] = {}

        def berth_deploy(*extra):
            proc = sh([*BERTH, "deploy", *extra], repo, check=False)
            if proc.returncode != 0:
                raise SystemExit(proc.stdout.decode() + proc.stderr.decode())

        def logins() -> int:
            return host.sshd_log.read_text(errors="replace").count("Accepted publickey")

        n0 = logins()
        results["cold_deploy_s"] = round(timed(lambda: berth_deploy("--push")), 3)
        results["ssh_connections_per_deploy"] = logins() - n0

        # the plain way: a separate clone deployed by hand-written commands into ~/plain
        plain = work / "plain"
        shutil.copytree(repo, plain, ignore=shutil.ignore_patterns(".git"))
        sh(["git", "init", "-q", "-b", "main"], plain)
        sh(["git", "remote", "add", "origin", box.remote], plain)
        sh(["git", "fetch", "-q", "origin"], plain)
        sh(["git", "reset", "-q", "origin/main"], plain)
        plain_port = 8090
        (plain / ".env.docker").write_text((repo / ".env.docker").read_text().replace(f"WEB_PORT={port}",
                                                                                      f"WEB_PORT={plain_port}"))
        ssh = ["ssh", "-i", box.key, "-o", f"UserKnownHostsFile={box.known_hosts}", "-o", "BatchMode=yes",
               f"{host.user}@{host.address}"]
        plain_health = f"http://{host.address}:{plain_port}/health"

        def plain_deploy():
            sha = sh(["git", "rev-parse", "HEAD"], plain).stdout.decode().strip()
            sh(["git", "push", "-q", "origin", "HEAD:refs/heads/plain"], plain)
            sh([*ssh, f"test -d plain || git clone -q {box.remote} plain; cd plain && git fetch -q origin && "
                      f"git checkout -q --detach {sha}"])
            sh([*ssh, "umask 077; cat > plain/.env.docker"], input=(plain / ".env.docker").read_bytes())
            sh([*ssh, "cd plain && docker compose --env-file .env.docker build -q && "
                      "docker compose --env-file .env.docker up -d --wait"])
            wait_http(plain_health)

        plain_deploy()  # cold, not measured

        changed_berth, changed_plain, noop_berth, noop_plain = [], [], [], []
        for i in range(args.runs):
            (repo / "web" / "VERSION").write_text(f"b{i}\n")
            sh(["git", "commit", "-qam", f"b{i}"], repo)
            changed_berth.append(timed(lambda: berth_deploy("--push")))
            (plain / "web" / "VERSION").write_text(f"p{i}\n")
            sh(["git", "commit", "-qam", f"p{i}"], plain)
            changed_plain.append(timed(plain_deploy))
            noop_berth.append(timed(berth_deploy))
            noop_plain.append(timed(plain_deploy))
        med = lambda xs: round(statistics.median(xs), 3)  # noqa: E731
        results.update({
            "changed_commit_berth_s": med(changed_berth),
            "changed_commit_plain_s": med(changed_plain),
            "changed_commit_overhead_s": round(med(changed_berth) - med(changed_plain), 3),
            "noop_berth_s": med(noop_berth),
            "noop_plain_s": med(noop_plain),
        })
        n0 = logins()
        berth_deploy()
        results["ssh_connections_noop_deploy"] = logins() - n0

        # rollback to the previous release: its images are kept, so nothing is built
        def berth_rollback():
            proc = sh([*BERTH, "rollback", "--yes"], repo, check=False)
            if proc.returncode != 0 or b"no build" not in proc.stdout:
                raise SystemExit(proc.stdout.decode() + proc.stderr.decode())

        rollbacks = []
        for i in range(args.runs):
            rollbacks.append(timed(berth_rollback))
            (repo / "web" / "VERSION").write_text(f"r{i}\n")
            sh(["git", "commit", "-qam", f"r{i}"], repo)
            berth_deploy("--push")
        results["rollback_s"] = med(rollbacks)

        version = [timed(lambda: sh([str(ROOT / ".venv" / "bin" / "berth"), "--version"])) for _ in range(20)]
        results["berth_version_ms"] = round(statistics.median(version) * 1000, 1)
        check = [timed(lambda: sh([*BERTH, "check", "--offline"], repo)) for _ in range(5)]
        results["berth_check_example_ms"] = round(statistics.median(check) * 1000, 1)
        # doctor on the healthy app: one login, the gather round trip, the probes (the example's
        # DATABASE_URL names a db service the example does not run, so doctor exits 1 by design)
        n0 = logins()
        doctor = [timed(lambda: sh([*BERTH, "doctor"], repo, check=False)) for _ in range(args.runs)]
        results["berth_doctor_s"] = med(doctor)
        results["ssh_connections_per_doctor"] = (logins() - n0) / args.runs
        results["runs"] = args.runs

        targets = {
            "changed_commit_overhead_s": ("<=", 1.0),
            "noop_berth_s": ("<=", 2.0),
            "ssh_connections_per_deploy": ("==", 1),
            "berth_version_ms": ("<=", 150),
        }
        print(f"{'measure':<32} {'value':>10}  target")
        for key, value in results.items():
            target = targets.get(key)
            verdict = ""
            if target:
                op, limit = target
                ok = value <= limit if op == "<=" else value == limit
                verdict = f"{op} {limit}  {'ok' if ok else 'MISSED'}"
            print(f"{key:<32} {value:>10}  {verdict}")
        out = ROOT / "bench" / "results"
        out.mkdir(exist_ok=True)
        (out / ("deploy-proxy.json" if args.proxy else "deploy.json")).write_text(json.dumps(results, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)
        sb.down()


if __name__ == "__main__":
    main()
