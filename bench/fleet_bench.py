#!/usr/bin/env python3
"""A changed-commit deploy to 1, 4 and 8 sandbox hosts, in one run (needs root and scripts/setup.sh).

Three copies of the example app, each with its own repo, app dir, compose project and port, deployed with
`berth deploy --push` to the first 1, 4 and 8 hosts of one 8-host sandbox (hosts from berth.toml, every host
of the fleet at once: berth's default; `--build once` sets build = "once"). One size after the other: its app
is deployed once cold (not measured), then --runs times with a new commit each, then its containers are
stopped, so each size is measured with only its own app running (as on real servers); the medians are compared.

Measures:
  changed_commit_{1,4,8}_hosts_s   median seconds of `berth deploy --push` after a new commit
  ratio_8_to_1, ratio_4_to_1       the fleet's time over one host's
  slowest_host_steps_N_hosts_s     the longest time one host spent in its own steps (connect to record)
  around_the_hosts_N_hosts_s       the rest: start-up, check, push, the threads (berth's own overhead)
  ssh_connections_per_host         logins each host's sshd accepted during one 8-host deploy (max over hosts)
  cpu_seconds_N_hosts             CPU time the whole machine spent during the deploy (berth, sshd, 8 engines)
  background_cpu_per_s_8_hosts    CPU the 8-host app uses idle (its healthchecks), per second
  cpu_bound_ratio_8_to_1          cpu_seconds_8_hosts / cpus over the 1-host time: the best ratio this
                                  machine's cores allow for that much work, however well berth overlaps it
The sandbox's hosts share this machine's CPUs: 8 hosts building and starting containers at once contend
for them, as 8 real servers would not; the slowest host's steps and the CPU figures show that part.
Targets (issue #15): ratio_8_to_1 <= 1.3; ssh_connections_per_host == 1.
Results are printed and written to bench/results/fleet.json (fleet-once.json with --build once).

Usage: .venv/bin/python bench/fleet_bench.py [--runs 3]
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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from berth import sandbox as sb  # noqa: E402

GIT_ENV = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com", "NO_COLOR": "1"}
BERTH = [sys.executable, "-m", "berth"]
SIZES = (1, 4, 8)


def sh(argv, cwd=None, check=True) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, env={**os.environ, **GIT_ENV})
    if check and proc.returncode != 0:
        raise SystemExit(f"failed: {argv}\n{proc.stdout.decode()}\n{proc.stderr.decode()}")
    return proc


def make_app(box: sb.Sandbox, work: Path, size: int, port: int, build: str = "each") -> Path:
    """A copy of the example app whose berth.toml deploys it to the first `size` hosts."""
    name = f"fleet{size}"
    repo = work / name
    shutil.copytree(ROOT / "examples" / "app", repo)
    remote = Path(box.root) / "remote" / f"{name}.git"
    sh(["git", "init", "-q", "--bare", "--initial-branch=main", str(remote)])
    (repo / ".env.docker").write_text(
        f"APP_ENV=staging\nWEB_PORT={port}\nSECRET_KEY=bench-secret-0123456789abcdef\n"
        "DATABASE_URL=postgres://app:pw-bench-123@db:5432/app\n")
    # each sandbox host has its own deploy user: the hosts are ~/.ssh/config-style aliases
    ssh_config = work / "ssh_config"
    ssh_config.write_text("".join(
        f"Host h{h.index}\n  HostName {h.address}\n  User {h.user}\n  IdentityFile {box.key}\n"
        f"  UserKnownHostsFile {box.known_hosts}\n" for h in box.hosts))
    hosts = ", ".join(f'"h{h.index}"' for h in box.hosts[:size])
    (repo / "berth.toml").write_text(
        f'[environments.staging]\nhosts = [{hosts}]\nssh_config = "{ssh_config}"\napp_dir = "~/{name}"\n'
        f'health_urls = ["http://localhost:{port}/health"]\n'  # fetched on each server itself
        f'build = "{build}"\n')
    (repo / ".env").unlink(missing_ok=True)
    sh(["git", "init", "-q", "-b", "main"], repo)
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-qm", "example"], repo)
    sh(["git", "remote", "add", "origin", str(remote)], repo)
    return repo


def deploy(repo: Path) -> tuple[float, float]:
    """Seconds of `berth deploy --push`, and the longest time one host spent in its own steps."""
    started = time.perf_counter()
    proc = sh([*BERTH, "deploy", "--push", "--json"], repo, check=False)
    took = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(proc.stdout.decode() + proc.stderr.decode())
    per_host: dict[str, float] = {}
    for step in json.loads(proc.stdout)["steps"]:
        if step.get("host"):
            per_host[step["host"]] = per_host.get(step["host"], 0.0) + (step["seconds"] or 0.0)
    return took, max(per_host.values())


def busy_cpu_seconds() -> float:
    """CPU time the machine has spent busy since boot (/proc/stat: all but idle and iowait)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def stop_app(box: sb.Sandbox, size: int) -> None:
    """The size's containers stopped (not removed): the next size is measured without their healthchecks."""
    for h in box.hosts[:size]:
        ids = sh(["docker", "-H", h.docker_host, "ps", "-q", "--filter",
                  f"label=com.docker.compose.project=fleet{size}"]).stdout.decode().split()
        if ids:
            sh(["docker", "-H", h.docker_host, "stop", *ids])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--build", choices=("each", "once"), default="each", help="the fleets' build setting")
    args = ap.parse_args()

    box = sb.up(hosts=max(SIZES), repo="bench")
    work = Path(tempfile.mkdtemp(prefix="berth-fleet-bench-"))
    try:
        apps = {size: make_app(box, work, size, 8100 + size, args.build) for size in SIZES}
        times: dict[int, list[float]] = {size: [] for size in SIZES}
        host_work: dict[int, list[float]] = {size: [] for size in SIZES}
        cpu: dict[int, list[float]] = {size: [] for size in SIZES}
        logins_per_host: list[int] = []
        background = 0.0
        for size, repo in apps.items():
            deploy(repo)  # cold: builds the image on every host; not measured
            if size == max(SIZES):
                idle = busy_cpu_seconds()
                time.sleep(5)
                background = (busy_cpu_seconds() - idle) / 5
            for run in range(args.runs):
                (repo / "web" / "VERSION").write_text(f"{size}-{run}\n")
                sh(["git", "commit", "-qam", f"run {run}"], repo)
                before = [h.sshd_log.read_text(errors="replace").count("Accepted publickey") for h in box.hosts]
                started = busy_cpu_seconds()
                took, slowest = deploy(repo)
                cpu[size].append(busy_cpu_seconds() - started)
                times[size].append(took)
                host_work[size].append(slowest)
                if size == max(SIZES):
                    after = [h.sshd_log.read_text(errors="replace").count("Accepted publickey") for h in box.hosts]
                    logins_per_host.append(max(a - b for a, b in zip(after, before)))
            stop_app(box, size)
        med = {size: statistics.median(ts) for size, ts in times.items()}
        results: dict[str, object] = {f"changed_commit_{size}_hosts_s": round(med[size], 3) for size in SIZES}
        for size in SIZES:  # the slowest host's own steps, and what berth adds around them
            work_med = statistics.median(host_work[size])
            results[f"slowest_host_steps_{size}_hosts_s"] = round(work_med, 3)
            results[f"around_the_hosts_{size}_hosts_s"] = round(med[size] - work_med, 3)
        for size in SIZES:
            results[f"cpu_seconds_{size}_hosts"] = round(statistics.median(cpu[size]), 2)
        results["background_cpu_per_s_8_hosts"] = round(background, 2)
        results["ratio_4_to_1"] = round(med[4] / med[1], 3)
        results["ratio_8_to_1"] = round(med[8] / med[1], 3)
        results["cpu_bound_ratio_8_to_1"] = round(statistics.median(cpu[8]) / (os.cpu_count() or 1) / med[1], 3)
        results["build"] = args.build
        results["ssh_connections_per_host"] = max(logins_per_host)
        results["runs"] = args.runs
        results["cpus"] = os.cpu_count()
        targets = {"ratio_8_to_1": ("<=", 1.3), "ssh_connections_per_host": ("==", 1)}
        print(f"{'measure':<32} {'value':>10}  target")
        for key, value in results.items():
            verdict = ""
            if key in targets:
                op, limit = targets[key]
                ok = value <= limit if op == "<=" else value == limit
                verdict = f"{op} {limit}  {'ok' if ok else 'MISSED'}"
            print(f"{key:<32} {value:>10}  {verdict}")
        out = ROOT / "bench" / "results"
        out.mkdir(exist_ok=True)
        (out / ("fleet.json" if args.build == "each" else f"fleet-{args.build}.json")).write_text(json.dumps(results, indent=2) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)
        sb.down()


if __name__ == "__main__":
    main()
