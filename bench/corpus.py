#!/usr/bin/env python3
"""Runs berth over a corpus of compose projects (such as docker/awesome-compose) and reports where it breaks.

Usage: .venv/bin/python bench/corpus.py DIR [--json] [--only TEXT]

Every directory under DIR holding a compose file (compose's names, in compose's order: compose.yaml, compose.yml,
docker-compose.yml, docker-compose.yaml) is one project. DIR is never written: each project is copied to a temporary
directory and made a berth project there: a git repository on `main` with everything committed, a `.env` with
berth's deploy settings, and a `.env.docker` (the env file berth ships and compose interpolates with) holding the
sample's own `.env`, or empty. Then, each command with a 60 s timeout:

  check    `berth check --format json`: its errors and warnings. The rules that fire only because of how this
           script builds the project (no git remote; .env committed) are skipped.
  config   `berth config --format json` against `docker compose --env-file .env.docker config --format json`:
           the project name, the services, and for each its image, ports, volumes, environment keys and
           networks; the names of the top-level networks, volumes, secrets and configs. A project compose
           rejects must be one `berth check` reports errors for.
  render   `berth k8s render -o TMP`, then `berth k8s check TMP`: ok, refused (the first line of the message) or
           crash. A refusal saying a secret value would appear outside a Secret is a false refusal (a bug in
           render's guard: the samples hold no secret anywhere but environment:).

A crash is a Python traceback, an exit status other than 0, 1 or 2, or a timeout. The table is followed by a
summary line and, for every crash, false refusal, config difference and compose rejection that check let
through, the message or diff a developer needs. --json prints the rows instead. Exit status 1 when a crash or
a false refusal was found.

Third-party samples stay outside the repository: extract them to /tmp, e.g.
  git --git-dir=MIRROR archive HEAD | tar -x -C /tmp/awesome-compose
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

COMPOSE_FILE_NAMES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")
DEPLOY_SETTINGS = "ENVIRONMENT=staging\nSERVER_IP=203.0.113.10\nSERVER_USER=deploy\n"
TIMEOUT_SECONDS = 60
BERTH = [sys.executable, "-m", "berth"]
GIT_ENV = {"GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": "corpus", "GIT_AUTHOR_EMAIL": "corpus@example.com",
           "GIT_COMMITTER_NAME": "corpus", "GIT_COMMITTER_EMAIL": "corpus@example.com"}
# the project this script builds has no remote and commits its env files: true of every sample, so noise
HARNESS_RULES = ("git.no-remote", "git.env-tracked")
# directories that hold copies of other projects' files, not samples
SKIPPED_DIRS = {".git", "node_modules", ".venv", "vendor"}
SERVICE_FIELDS = ("image", "ports", "volumes", "environment", "networks")
TOP_LEVEL_SECTIONS = ("networks", "volumes", "secrets", "configs")
FALSE_REFUSAL_MARKS = ("secret value would appear", "report this as a bug")


@dataclass
class Outcome:
    """One command's run. returncode is None when it timed out."""

    returncode: int | None
    stdout: str
    stderr: str
    seconds: float

    @property
    def crashed(self) -> bool:
        return self.returncode not in (0, 1, 2) or "Traceback (most recent call last)" in self.stderr

    def crash_summary(self) -> str:
        """The exception and the innermost frame of a traceback, or why else this counts as a crash."""
        if self.returncode is None:
            return f"timed out after {TIMEOUT_SECONDS}s"
        lines = self.stderr.strip().splitlines()
        frames = [line.strip() for line in lines if line.strip().startswith("File ")]
        if frames:
            return f"{lines[-1].strip()} ({frames[-1]})"
        return f"exit status {self.returncode}: " + (lines[-1].strip() if lines else "no output")

    def error_line(self) -> str:
        """The first line of berth's error message (`error: ...`), else the last line of stderr."""
        lines = [line.strip() for line in self.stderr.splitlines() if line.strip()]
        return next((line for line in lines if line.startswith("error:")), lines[-1] if lines else "")


@dataclass
class Row:
    project: str
    services: int | None = None
    check_errors: int | None = None
    check_warnings: int | None = None
    check_error_rules: list[str] = field(default_factory=list)
    check_note: str = ""  # why there are no counts (berth check refused its input)
    compose_accepts: bool = False
    compose_error: str = ""
    config: str = ""  # equal | differs | berth failed | compose rejects
    config_diff: list[str] = field(default_factory=list)
    render: str = ""  # ok | refused | false refusal | crash
    render_message: str = ""
    render_details: list[str] = field(default_factory=list)
    k8s_check: str = ""  # the finding counts of `berth k8s check` on the rendered files
    crashes: list[str] = field(default_factory=list)
    seconds: float = 0.0


# --- finding and preparing projects ---------------------------------------------------------------------------

def find_projects(root: Path) -> list[Path]:
    """Every directory under root holding a compose file, sorted by path."""
    found = []
    for current, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
        if any(name in files for name in COMPOSE_FILE_NAMES):
            found.append(Path(current))
    return sorted(found)


def clean_env() -> dict[str, str]:
    """The caller's environment without the variables that would change what compose or berth resolve."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "BERTH_"))}
    return {**env, **GIT_ENV, "NO_COLOR": "1"}


def git(args: list[str], cwd: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, env=clean_env(), check=True, capture_output=True, timeout=TIMEOUT_SECONDS)


def prepare(sample: Path, dest: Path) -> None:
    """Copy the sample to dest and make it a committed berth project; dest's name is the sample's, so compose and
    berth derive the same project name they would in the sample's own directory."""
    shutil.copytree(sample, dest, symlinks=True, ignore=shutil.ignore_patterns(".git"))
    own_env = dest / ".env"
    # berth's .env holds deploy settings; the variables compose interpolates go in the env file berth ships
    compose_vars = own_env.read_text(errors="replace") if own_env.is_file() else ""
    (dest / ".env.docker").write_text(compose_vars)
    own_env.write_text(DEPLOY_SETTINGS)
    git(["init", "-q", "-b", "main"], dest)
    git(["add", "-A"], dest)
    git(["commit", "-q", "--no-verify", "-m", "sample"], dest)


def run(argv: list[str], cwd: Path) -> Outcome:
    start = time.perf_counter()
    try:
        proc = subprocess.run(argv, cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else exc.stdout or ""
        return Outcome(None, out, "", time.perf_counter() - start)
    return Outcome(proc.returncode, proc.stdout, proc.stderr, time.perf_counter() - start)


# --- step 1: berth check --------------------------------------------------------------------------------------

def run_check(project: Path, row: Row) -> None:
    skips = [arg for rule in HARNESS_RULES for arg in ("--skip", rule)]
    outcome = run([*BERTH, "check", "--format", "json", "--offline", *skips], project)
    if outcome.crashed:
        row.crashes.append("check: " + outcome.crash_summary())
        return
    try:
        report = json.loads(outcome.stdout)
    except json.JSONDecodeError:
        # exit 2: berth needs something before it can check (said on stderr); not a crash
        row.check_note = outcome.error_line() or f"no JSON (exit status {outcome.returncode})"
        return
    row.check_errors = report["counts"]["error"]
    row.check_warnings = report["counts"]["warning"]
    row.check_error_rules = sorted({f["rule"] for f in report["findings"] if f["severity"] == "error"})


# --- step 2: berth config against docker compose config -------------------------------------------------------

def comparable(model: dict) -> dict:
    """The parts of a compose model both tools must agree on: environment values are left out (berth masks
    secrets), top-level sections are compared by name."""
    services = {}
    for name, service in (model.get("services") or {}).items():
        view = {key: service.get(key) for key in SERVICE_FIELDS}
        view["environment"] = sorted(service.get("environment") or {})
        services[name] = view
    top = {section: sorted(model.get(section) or {}) for section in TOP_LEVEL_SECTIONS}
    return {"name": model.get("name"), "services": services, **top}


def short(value) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return text if len(text) <= 300 else text[:297] + "..."


def model_diff(berth_model: dict, compose_model: dict) -> list[str]:
    """One line per difference: what berth says, then what compose says."""
    ours, theirs = comparable(berth_model), comparable(compose_model)
    diff = []
    if ours["name"] != theirs["name"]:
        diff.append(f"name: berth {short(ours['name'])} compose {short(theirs['name'])}")
    for name in sorted(ours["services"].keys() | theirs["services"].keys()):
        mine, real = ours["services"].get(name), theirs["services"].get(name)
        if mine is None or real is None:
            diff.append(f"service {name}: only in {'compose' if mine is None else 'berth'}")
            continue
        diff += [f"{name}.{key}: berth {short(mine[key])} compose {short(real[key])}"
                 for key in SERVICE_FIELDS if mine[key] != real[key]]
    diff += [f"{section}: berth {short(ours[section])} compose {short(theirs[section])}"
             for section in TOP_LEVEL_SECTIONS if ours[section] != theirs[section]]
    return diff


def run_config(project: Path, row: Row) -> None:
    compose = run(["docker", "compose", "--env-file", ".env.docker", "config", "--format", "json"], project)
    ours = run([*BERTH, "config", "--format", "json"], project)
    row.compose_accepts = compose.returncode == 0
    if ours.crashed:
        row.crashes.append("config: " + ours.crash_summary())
    if not row.compose_accepts:
        row.config = "compose rejects"
        row.compose_error = compose.error_line() if compose.returncode is not None else "timed out"
        return
    compose_model = json.loads(compose.stdout)
    row.services = len(compose_model.get("services") or {})
    if ours.returncode != 0:
        row.config = "berth failed"
        row.config_diff = [ours.crash_summary() if ours.crashed else ours.error_line()]
        return
    row.config_diff = model_diff(json.loads(ours.stdout), compose_model)
    row.config = "differs" if row.config_diff else "equal"


# --- step 3: berth k8s render and k8s check -------------------------------------------------------------------

def finding_counts(report: dict) -> str:
    severities = [f["severity"] for f in report.get("findings", [])]
    return f"{severities.count('error')} errors, {severities.count('warning')} warnings"


def run_render(project: Path, out_dir: Path, row: Row) -> None:
    render = run([*BERTH, "k8s", "render", "-o", str(out_dir)], project)
    if render.crashed:
        row.render = "crash"
        row.crashes.append("k8s render: " + render.crash_summary())
        return
    if render.returncode != 0:
        row.render_message = render.error_line()
        false = any(mark in render.stderr for mark in FALSE_REFUSAL_MARKS)
        row.render = "false refusal" if false else "refused"
        # the indented lines under berth's error say where (never the secret itself)
        row.render_details = [line.strip() for line in render.stderr.splitlines() if line.startswith("  ")][:10]
        return
    row.render = "ok"
    if not out_dir.is_dir():
        row.k8s_check = "nothing written"
        return
    checked = run([*BERTH, "k8s", "check", "--format", "json", str(out_dir)], project)
    if checked.crashed:
        row.render = "crash"
        row.crashes.append("k8s check: " + checked.crash_summary())
        return
    try:
        row.k8s_check = finding_counts(json.loads(checked.stdout))
    except json.JSONDecodeError:
        row.k8s_check = "refused: " + checked.error_line()


def examine(sample: Path, corpus: Path, work: Path) -> Row:
    row = Row(str(sample.relative_to(corpus)) if sample != corpus else sample.name)
    start = time.perf_counter()
    project = work / "project" / sample.name
    prepare(sample, project)
    run_check(project, row)
    run_config(project, row)
    run_render(project, work / "k8s", row)
    row.seconds = round(time.perf_counter() - start, 2)
    return row


# --- reporting ------------------------------------------------------------------------------------------------

def check_cell(row: Row) -> str:
    return "-" if row.check_errors is None else f"{row.check_errors}/{row.check_warnings}"


def render_cell(row: Row) -> str:
    if row.render == "ok":
        return "ok" + (f" ({row.k8s_check})" if row.k8s_check else "")
    return row.render + (f": {row.render_message.removeprefix('error: ')}" if row.render_message else "")


def config_cell(row: Row) -> str:
    if row.config == "differs":
        fields = sorted({line.split(":", 1)[0] for line in row.config_diff})
        return "differs: " + ", ".join(fields)
    return row.config


def table(rows: list[Row]) -> str:
    def clip(text: str, width: int) -> str:
        return text if len(text) <= width else text[: width - 1] + "…"

    header = f"{'project':<30} {'svc':>3} {'err/warn':>8}  {'config':<34} {'render (k8s check)':<44} {'time':>5}"
    lines = [header, "-" * len(header)]
    for r in rows:
        services = "-" if r.services is None else str(r.services)
        lines.append(f"{clip(r.project, 30):<30} {services:>3} {check_cell(r):>8}  {clip(config_cell(r), 34):<34} "
                     f"{clip(render_cell(r), 44):<44} {r.seconds:>5.1f}" + ("  CRASH" if r.crashes else ""))
    return "\n".join(lines)


def summary(rows: list[Row]) -> str:
    accepted = [r for r in rows if r.compose_accepts]
    rejected = [r for r in rows if not r.compose_accepts]
    caught = [r for r in rejected if (r.check_errors or 0) > 0]
    return (f"{len(rows)} projects, {sum(bool(r.crashes) for r in rows)} with crashes, "
            f"{sum(r.render == 'false refusal' for r in rows)} false render refusals, "
            f"{sum(r.render == 'refused' for r in rows)} other render refusals; "
            f"config of the {len(accepted)} compose accepts: {sum(r.config == 'equal' for r in accepted)} equal, "
            f"{sum(r.config == 'differs' for r in accepted)} differ, {sum(r.config == 'berth failed' for r in accepted)} "
            f"berth failed; {len(caught)} of {len(rejected)} compose rejects also rejected by berth check; "
            f"{sum(r.seconds for r in rows):.1f}s")


def details(rows: list[Row]) -> str:
    """What a developer needs for each problem: the crash, the refusal, the diff, the rejection check missed."""
    out = []
    for r in rows:
        lines = [f"crash in {c}" for c in r.crashes]
        if r.render == "false refusal":
            lines += [f"false render refusal: {r.render_message}", *(f"  {d}" for d in r.render_details)]
        if r.config in ("differs", "berth failed"):
            lines += [f"config {r.config}:", *(f"  {d}" for d in r.config_diff)]
        if not r.compose_accepts and not r.check_errors:
            lines.append(f"compose rejects, berth check has no error ({check_cell(r)} {r.check_note}): "
                         f"{r.compose_error}")
        if lines:
            out += [f"{r.project}:", *(f"  {line}" for line in lines)]
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path, help="the corpus: a directory of compose projects")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    parser.add_argument("--only", help="examine only the projects whose path contains this text")
    args = parser.parse_args()
    corpus = args.dir.resolve()
    samples = [p for p in find_projects(corpus) if not args.only or args.only in str(p.relative_to(corpus))]
    if not samples:
        print(f"no compose project under {corpus}", file=sys.stderr)
        return 2
    rows = []
    for number, sample in enumerate(samples, 1):
        print(f"[{number}/{len(samples)}] {sample.relative_to(corpus)}", file=sys.stderr, flush=True)
        # a directory per project, so a failing sample leaves nothing behind for the next
        with tempfile.TemporaryDirectory(prefix="berth-corpus-") as work:
            rows.append(examine(sample, corpus, Path(work)))
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=2))
    else:
        print(table(rows))
        print()
        print(summary(rows))
        problems = details(rows)
        if problems:
            print()
            print(problems)
    return 1 if any(r.crashes or r.render == "false refusal" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
