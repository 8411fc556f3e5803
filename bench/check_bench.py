#!/usr/bin/env python3
"""Times `berth check --offline` (wall clock, a fresh `python -m berth` process each run, median of --runs).

Scenarios (targets from issue #3):
  generated   an 80-service compose file (each service interpolates several variables) with a
              500-key .env.docker, committed in a git repository             target <= 500 ms
  example     examples/app with a filled .env.docker, committed                target <= 300 ms

Needs no root and no sandbox: only git and the project's venv. With --profile, the slowest scenario is
also run once in-process under cProfile and the top functions by cumulative time are printed.

Usage: .venv/bin/python bench/check_bench.py [--runs 5] [--profile]
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GIT_ENV = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com", "GIT_COMMITTER_NAME": "bench",
           "GIT_COMMITTER_EMAIL": "bench@example.com", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
           "NO_COLOR": "1"}
BERTH = [sys.executable, "-m", "berth"]
SERVICES = 80
KEYS = 500


PYCACHE = Path(tempfile.gettempdir()) / "berth-check-bench-pycache"


def env() -> dict[str, str]:
    """Isolated git; bytecode cached (in a temp dir) as an installed berth has it, even where the
    caller's environment sets PYTHONDONTWRITEBYTECODE: compiling every module adds ~60 ms per run."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("GIT_") and k != "PYTHONDONTWRITEBYTECODE"}
    return {**base, **GIT_ENV, "PYTHONPYCACHEPREFIX": str(PYCACHE)}


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, env=env())


def commit(repo: Path) -> None:
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "bench")
    remote = repo.with_name(repo.name + "-remote.git")
    git(repo.parent, "init", "-q", "--bare", str(remote))
    git(repo, "remote", "add", "origin", str(remote))
    git(repo, "push", "-q", "origin", "main")


def generated_project(base: Path) -> Path:
    """80 services, each with an image tag, a port, a healthcheck and environment entries that interpolate
    variables; a 500-key .env.docker that sets them all (plus unused ones), an example beside it."""
    root = base / "generated"
    root.mkdir()
    keys = [f"SVC{i:02d}_SETTING_{j}" for i in range(SERVICES) for j in range(KEYS // SERVICES)]
    keys += [f"EXTRA_{i}" for i in range(KEYS - len(keys))]
    lines = ["services:"]
    for i in range(SERVICES):
        lines += [
            f"  svc{i:02d}:",
            f'    image: "registry.example.com/team/svc{i:02d}:${{SVC{i:02d}_SETTING_0}}"',
            "    restart: unless-stopped",
            "    env_file: .env.docker",
            "    ports:",
            f'      - "127.0.0.1:${{SVC{i:02d}_SETTING_1:-{8000 + i}}}:8080"',
            "    environment:",
            f"      DATABASE_URL: postgres://app:${{SVC{i:02d}_SETTING_2}}@db:5432/app",
            f"      LOG_LEVEL: ${{SVC{i:02d}_SETTING_3:-info}}",
            f"      WORKERS: ${{SVC{i:02d}_SETTING_4}}",
            "    healthcheck:",
            '      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/health"]',
            "      interval: 10s",
            "    deploy:",
            "      resources:",
            "        limits: {cpus: '0.5', memory: 256M}",
        ]
    (root / "docker-compose.yml").write_text("\n".join(lines) + "\n")
    values = {k: (secrets.token_hex(16) if k.endswith("_2") else f"value-{n}") for n, k in enumerate(keys)}
    (root / ".env.docker").write_text("".join(f"{k}={values[k]}\n" for k in sorted(keys)))
    (root / ".env.docker.example").write_text("".join(f"{k}=\n" for k in sorted(keys)))
    _settings(root)
    commit(root)
    return root


def example_project(base: Path) -> Path:
    root = base / "example"
    shutil.copytree(ROOT / "examples" / "app", root)
    example = (root / ".env.docker.example").read_text()
    filled = (example.replace("change_this_to_a_long_random_string", secrets.token_hex(32))
                     .replace("change_me", secrets.token_hex(12))
                     .replace("sk-your-key-here", "sk-bench-" + secrets.token_hex(16)))
    (root / ".env.docker").write_text(filled)
    _settings(root)
    commit(root)
    return root


def _settings(root: Path) -> None:
    (root / ".env").write_text("ENVIRONMENT=staging\nSERVER_IP=203.0.113.10\nSERVER_USER=deploy\n")
    if not (root / ".env.example").exists():
        (root / ".env.example").write_text("ENVIRONMENT=staging\nSERVER_IP=\nSERVER_USER=\n")
    gitignore = root / ".gitignore"
    text = gitignore.read_text() if gitignore.exists() else ""
    gitignore.write_text(text + "".join(f"{n}\n" for n in (".env", ".env.docker") if n not in text.split()))


def time_check(root: Path, runs: int) -> tuple[list[float], list[float], subprocess.CompletedProcess]:
    """Wall-clock and CPU (user+sys of berth and the git it runs) seconds of each run."""
    import resource

    samples, cpu = [], []
    proc = None
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        proc = subprocess.run([*BERTH, "-C", str(root), "check", "--offline"], capture_output=True, text=True,
                              env=env(), cwd=ROOT)
        samples.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        if "Traceback" in proc.stderr:
            raise SystemExit(proc.stderr)
    return samples, cpu, proc


def profile(root: Path) -> None:
    import cProfile
    import pstats

    sys.path.insert(0, str(ROOT))
    os.environ.update(GIT_ENV)
    from berth.check import run_checks
    from berth.configuration.target import load_target

    prof = cProfile.Profile()
    prof.enable()
    run_checks(load_target(root), offline=True)
    prof.disable()
    pstats.Stats(prof).sort_stats("cumulative").print_stats(25)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--profile", action="store_true", help="cProfile the slowest scenario in-process")
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="berth-check-bench-"))
    try:
        scenarios = [
            (f"generated: {SERVICES} services, {KEYS}-key env", generated_project(base), 0.500),
            ("examples/app, filled .env.docker", example_project(base), 0.300),
        ]
        time_check(base / "example", 2)  # warm the page cache and write the .pyc files
        rows = []
        for name, root, target in scenarios:
            samples, cpu, proc = time_check(root, args.runs)
            summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr.strip()
            rows.append((name, statistics.median(samples), min(samples), max(samples), statistics.median(cpu),
                         target, summary))
        load = os.getloadavg()[0]
        print(f"berth check --offline, wall clock, median of {args.runs} (python {sys.version.split()[0]}, "
              f"{os.cpu_count()} cpus, load average {load:.1f})\n")
        print(f"{'scenario':<40} {'median':>8} {'min':>8} {'max':>8} {'cpu':>8} {'target':>8}  ok")
        for name, med, lo, hi, cpu_med, target, _ in rows:
            print(f"{name:<40} {med * 1000:6.0f}ms {lo * 1000:6.0f}ms {hi * 1000:6.0f}ms {cpu_med * 1000:6.0f}ms "
                  f"{target * 1000:6.0f}ms  {'yes' if med <= target else 'NO'}")
        if load > (os.cpu_count() or 1):
            print("\n(the machine is busy: wall-clock times are inflated; the cpu column is less affected)")
        print()
        for name, *_, summary in rows:
            print(f"{name}: {summary}")
        if args.profile:
            slowest = max(zip(rows, scenarios), key=lambda rs: rs[0][1] / rs[0][5])
            print(f"\nprofile of '{slowest[0][0]}' (in-process, start-up excluded):")
            profile(slowest[1][1])
        if any(med > target for _, med, _, _, _, target, _ in rows):
            sys.exit(1)
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
