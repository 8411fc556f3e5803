"""`berth deploy`: the same pipeline every time — check, confirm, push, then per host connect,
sync, env, deploy, verify, record. Each step is timed and shown as it finishes."""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

from berth import gitlocal
from berth.check import CheckReport, run_checks
from berth.check.findings import Severity
from berth.config import Target
from berth.errors import BerthError
from berth.output import StepPrinter, render_findings
from berth.secrets import Masker, secret_values
from berth.transport.ssh import SSHConnection, SSHOptions


@dataclass(frozen=True)
class DeployOptions:
    push: bool = False
    yes: bool = False
    trust_new_host: bool = False
    verify_timeout: int | None = None


@dataclass
class StepLog:
    """What ran, for the printer and for --json."""

    printer: StepPrinter
    steps: list[dict] = field(default_factory=list)

    @contextmanager
    def step(self, name: str, host: str | None = None):
        info = {"step": name, "host": host, "ok": False, "seconds": None, "detail": ""}
        started = time.monotonic()
        try:
            yield info
        except BaseException as exc:
            info["seconds"] = round(time.monotonic() - started, 3)
            info["detail"] = info["detail"] or (exc.what if isinstance(exc, BerthError) else type(exc).__name__)
            self.steps.append(info)
            self.printer.step(name, "fail", info["seconds"], self.printer.mask(info["detail"]))
            raise
        info["seconds"] = round(time.monotonic() - started, 3)
        info["ok"] = True
        self.steps.append(info)
        self.printer.step(name, info.pop("status", "ok"), info["seconds"], info["detail"])


def masker_for(target: Target) -> Masker:
    path = target.root / target.env_file
    if not path.exists():
        return Masker()
    from berth.envfile import read_env_file

    try:
        return Masker(secret_values(read_env_file(path).values()))
    except BerthError:
        return Masker()


def check_or_stop(target: Target, log: StepLog, *, skip: set[str] = frozenset()) -> CheckReport:
    with log.step("check") as info:
        report = run_checks(target, skip=skip)
        counts = report.counts()
        info["detail"] = f"{report.rules_run} rules: {counts['error']} errors, {counts['warning']} warnings"
        shown = report.at_least(Severity.WARNING)
        if shown:
            log.printer.block(render_findings(shown, target.root, log.printer.mask))
        if report.errors:
            n = len(report.errors)
            raise BerthError(
                f"check found {n} error{'s' * (n != 1)}; nothing was sent to any server",
                fix="fix the findings listed above, then run berth deploy again (berth check shows them alone)",
                exit_code=1,
            )
    return report


def confirm(target: Target, opts: DeployOptions, log: StepLog, action: str = "deploy") -> None:
    if not target.confirm:
        return
    with log.step("confirm") as info:
        if opts.yes:
            info["detail"] = "--yes given"
            return
        if not sys.stdin.isatty():
            raise BerthError(
                f"{action} to {target.environment} needs confirmation, and there is no terminal to ask on",
                fix=f"run it in a terminal and type '{target.environment}', or pass --yes (for CI)",
            )
        hosts = ", ".join(h.label for h in target.hosts)
        sys.stderr.write(f"You are about to {action} to {target.environment.upper()} ({hosts}).\n"
                         f"Type the environment name to continue: ")
        sys.stderr.flush()
        answer = sys.stdin.readline().strip()
        if answer != target.environment:
            raise BerthError(f"confirmation did not match ('{answer}' is not '{target.environment}'); nothing was done")
        info["detail"] = "confirmed"


def push_if_needed(target: Target, report: CheckReport, log: StepLog) -> None:
    ctx = report.context
    with log.step("push") as info:
        pushed, _ = gitlocal.is_pushed(target.root, ctx.remote_url, ctx.branch, ctx.head)
        if pushed:
            info["detail"] = f"{ctx.branch} already has {ctx.head[:7]}"
            info["status"] = "skip"
            return
        proc = gitlocal.git(target.root, "push", "--quiet", ctx.remote_url, f"HEAD:refs/heads/{ctx.branch}",
                            check=False, timeout=300)
        if proc.returncode != 0:
            raise BerthError(
                f"git push to {ctx.remote_url} failed: {proc.stderr.strip()[-400:]}",
                fix="pull and merge (or rebase) the remote branch, then deploy again; berth never force-pushes",
            )
        info["detail"] = f"{ctx.head[:7]} → {ctx.branch}"


def ssh_options(target: Target, trust_new_host: bool = False) -> SSHOptions:
    return SSHOptions(
        trust_new_host=trust_new_host,
        ssh_config=target.local_path("ssh_config"),
        known_hosts=target.local_path("known_hosts"),
        batch=not sys.stdin.isatty(),
    )


def debug_hook(printer: StepPrinter):
    def on_command(script: str, result) -> None:
        if printer.verbose:
            printer.debug(f"$ {script.strip()}")
            printer.debug(f"→ exit {result.exit_code} in {result.seconds:.3f}s")
            if result.out.strip():
                printer.debug(result.out[-2000:])
            if result.err.strip():
                printer.debug(result.err[-2000:])

    return on_command


def run_deploy(target: Target, opts: DeployOptions, printer: StepPrinter, outcome: dict) -> dict:
    """Deploy to every host of the target; `outcome` is filled in as it goes (for --json, even on failure)."""
    from berth import connect as connect_stage
    from berth import deploy as deploy_stage
    from berth import env as env_stage
    from berth import release as release_stage
    from berth import sync as sync_stage
    from berth import verify as verify_stage

    log = StepLog(printer)
    started = time.monotonic()
    outcome.update({"ok": False, "environment": target.environment, "commit": None, "hosts": [], "steps": log.steps})
    report = check_or_stop(target, log, skip={"git.unpushed"} if opts.push else set())
    ctx = report.context
    commit = ctx.head
    outcome["commit"] = commit
    printer.line(f"  deploying {commit[:7]} \"{gitlocal.head_subject(target.root)}\" to {target.environment}")
    confirm(target, opts, log)
    if opts.push:
        push_if_needed(target, report, log)

    env_path = target.root / target.env_file
    env_bytes = env_path.read_bytes()
    env_sum = env_stage.checksum(env_bytes)
    services = [name for cf in ctx.compose_files for name, s in cf.services.items()
                if not (isinstance(s, dict) and s.get("profiles"))]
    timeout = opts.verify_timeout or target.verify_timeout
    who = gitlocal.user_identity(target.root)

    for host in target.hosts:
        host_out = {"host": host.label, "ok": False, "release": None}
        outcome["hosts"].append(host_out)
        conn = SSHConnection(host, ssh_options(target, opts.trust_new_host), on_command=debug_hook(printer))
        with log.step("connect", host.label) as info:
            session = connect_stage.connect(target, conn)
            info["detail"] = (f"{session.user}@{host.address} (docker {session.docker_version}, "
                              f"compose {session.compose.variant} {session.compose_version})")
        release = {
            "id": release_stage.new_release_id(commit),
            "commit": commit,
            "subject": gitlocal.head_subject(target.root),
            "branch": ctx.branch,
            "environment": target.environment,
            "host": host.address,
            "deployed_by": who,
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "env_checksum": env_sum,
            "compose": f"{session.compose.variant} {session.compose_version}",
            "previous": (session.current or {}).get("commit"),
            "result": "failed",
        }
        changed_server = False
        host_started = time.monotonic()
        try:
            with log.step("sync", host.label) as info:
                synced = sync_stage.sync(session, ctx.remote_url, commit)
                info["detail"] = synced.describe()
                if synced.untracked:
                    info["detail"] += f" (untracked on server, left alone: {synced.untracked[:120]})"
            changed_server = True
            with log.step("env", host.label) as info:
                remote_path, size = env_stage.ship_env(session, env_path, target.env_file)
                info["detail"] = f"{target.env_file} → {remote_path} (0600, {size} bytes)"
            same = session.current or {}
            unchanged = same.get("commit") == commit and same.get("result") == "ok"
            with log.step("deploy", host.label) as info:
                deployed = deploy_stage.compose_up(session, build=not unchanged)
                info["detail"] = ("built and up" if deployed.built else "same commit as the running release: build skipped, up")
            with log.step("verify", host.label) as info:
                verified = verify_stage.verify(session, services, target.health_urls, timeout)
                info["detail"] = verified.describe()
                if not verified.ok:
                    details = "\n".join(verified.problems)
                    for service, text in verified.logs.items():
                        details += f"\n--- last log lines of {service} ---\n{text or '(no output)'}"
                    raise BerthError(
                        f"verify failed on {host.label}: " + "; ".join(verified.problems),
                        fix="read the service's log lines below; `berth logs SERVICE` shows more, "
                        "`berth status` the state of every service",
                        details=printer.mask(details),
                    )
            release["result"] = "ok"
            host_out["ok"] = True
        except BerthError as exc:
            release["failure"] = printer.mask(exc.what)
            raise
        finally:
            if changed_server:
                release["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                release["duration"] = round(time.monotonic() - host_started, 3)
                try:
                    with log.step("record", host.label) as info:
                        release_stage.record(session, release)
                        info["detail"] = f"release {release['id']} ({release['result']})"
                        host_out["release"] = release
                except BerthError:
                    if release["result"] == "ok":
                        raise
            session.close()
            host_out["ssh_connections"] = conn.connections_opened
    outcome["ok"] = all(h["ok"] for h in outcome["hosts"])
    outcome["seconds"] = round(time.monotonic() - started, 3)
    return outcome
