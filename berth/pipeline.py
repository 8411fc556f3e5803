"""`berth deploy`: the same pipeline every time — check, confirm, push, then per host connect,
sync, env, deploy, verify, record. Each step is timed and shown as it finishes."""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from berth import gitlocal
from berth.check import CheckReport, run_checks
from berth.check.findings import Severity
from berth.config import Target
from berth.errors import BerthError
from berth.output import StepPrinter, render_findings
from berth.secrets import Masker, is_secret_setting, keyed_secrets, masked_tail, remote_url_secrets, secret_values
from berth.steps import StepLog
from berth.transport.ssh import SSHConnection, SSHOptions


@dataclass(frozen=True)
class DeployOptions:
    push: bool = False
    yes: bool = False
    trust_new_host: bool = False
    verify_timeout: int | None = None
    lock_wait: float = 0
    rollback: bool = True  # --no-rollback keeps a failed release running for debugging


def masker_for(target: Target, env: Mapping[str, str] | None = None, compose_files=None) -> Masker:
    """The masker of a command: the secrets of the shipped env file and of the git remote URL, and the public
    names of the app (berth.secrets.Masker), so that masking a password never cuts into a service or image name.

    `env` / `compose_files`: the parsed env file and compose files when the caller has them (berth check).
    Nothing here makes a command fail: what cannot be read is not known to the masker.
    """
    if env is None:
        env = _shipped_env(target)
    secrets = [*secret_values(env), *remote_url_secrets(_remote_url(target))]
    try:
        public = public_strings(target, env, compose_files)
    except Exception:  # noqa: BLE001 - without public names the masker masks more, never less
        public = []
    return Masker(secrets, public=public, keyed=keyed_secrets(env))


def _shipped_env(target: Target) -> dict[str, str]:
    path = target.root / target.env_file
    if not path.exists():
        return {}
    from berth.envfile import read_env_file

    try:
        return read_env_file(path).values()
    except (BerthError, OSError, UnicodeError):
        return {}


def _remote_url(target: Target) -> str | None:
    remote = target.get("remote", "origin")
    if not isinstance(remote, str) or remote.startswith("-"):  # never an option to git
        return None
    try:
        return gitlocal.remote_url(target.root, remote)
    except Exception:  # noqa: BLE001 - no git, no repo: no remote credentials to mask
        return None


_VARIABLE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")


def public_strings(target: Target, env: Mapping[str, str], compose_files=None) -> list[str]:
    """Texts berth, compose and docker print that are not secret and must stay whole when masked: the project,
    environment, hosts, app dir and file names, the env file's KEY names, and from the compose files the
    service, image, container, volume, network, secret and config names and the paths they mention.

    A compose value that interpolates a secret variable is left out (it carries the secret)."""
    out: list[str] = [target.project, target.environment, target.app_dir, target.app_dir.rstrip("/").rsplit("/", 1)[-1],
                      target.env_file, *target.compose_files, f".berth/{target.project}", *env.keys()]
    for host in target.hosts:
        out += [host.address, host.label, host.user or ""]
    if compose_files is None:
        from berth.compose_file import load_compose_file

        compose_files = [load_compose_file(target.root / name) for name in target.compose_files
                         if (target.root / name).is_file()]
    secret_vars = {k for k, v in env.items() if v and is_secret_setting(k, v)}

    def add(value) -> None:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or not value:
            return
        if "$" in value:
            if secret_vars & set(_VARIABLE.findall(value)):
                return
            from berth.check.interpolation import interpolate

            try:
                value = interpolate(value, env)
            except Exception:  # noqa: BLE001 - an unresolvable value is checked elsewhere; here it is just not public
                return
        out.append(value)  # whole: the image `postgres:16` is public, the word `postgres` is not

    def add_names(value) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                add(k)
                if isinstance(v, dict):
                    for field in ("source", "target", "name", "file", "external"):
                        add(v.get(field))
        elif isinstance(value, (list, tuple)):
            for item in value:
                if isinstance(item, dict):
                    for field in ("source", "target", "name", "path", "file"):
                        add(item.get(field))
                else:
                    add(item)
        else:
            add(value)

    for cf in compose_files:
        data = cf.data if isinstance(cf.data, dict) else {}
        for kind in ("volumes", "networks", "secrets", "configs"):
            add_names(data.get(kind) if isinstance(data.get(kind), dict) else None)
        add(data.get("name"))
        for name, spec in cf.services.items():
            add(name)
            if not isinstance(spec, dict):
                continue
            for field in ("image", "container_name", "hostname", "working_dir", "network_mode"):
                add(spec.get(field))
            build = spec.get("build")
            if isinstance(build, dict):
                for field in ("context", "dockerfile", "target"):
                    add(build.get(field))
            else:
                add(build)
            for field in ("env_file", "volumes", "networks", "depends_on", "secrets", "configs", "profiles",
                          "links", "volumes_from"):
                add_names(spec.get(field))
            for volume in spec.get("volumes") or () if isinstance(spec.get("volumes"), list) else ():
                if isinstance(volume, str):  # `SOURCE:TARGET[:MODE]`: the source and the target alone too
                    for part in volume.split(":")[:2]:
                        add(part)
    return out


def check_or_stop(target: Target, log: StepLog, *, skip: set[str] = frozenset(),
                  outcome: dict | None = None) -> CheckReport:
    """`outcome` (the --json document) gets the findings of warning level and above, pass or fail."""
    with log.step("check") as info:
        report = run_checks(target, skip=skip)
        if outcome is not None:
            outcome["findings"] = [f.as_dict(target.root) for f in report.at_least(Severity.WARNING)]
        counts = report.counts()
        info["detail"] = f"{report.rules_run} rules: {counts['error']} errors, {counts['warning']} warnings"
        shown = report.at_least(Severity.WARNING)
        if shown:
            log.printer.block(render_findings(shown, target.root, log.printer.mask), rendered=True)
        if report.errors:
            n = len(report.errors)
            raise BerthError(
                f"check found {n} error{'s' * (n != 1)}; nothing was sent to any server",
                fix="fix the findings listed above, then run berth deploy again (berth check shows them alone)",
                exit_code=1,
            )
    return report


def confirm(target: Target, yes: bool, log: StepLog, action: str = "deploy to", where: str | None = None) -> None:
    """Production (or confirm = true) needs the environment's name typed, or --yes; no terminal → refuse."""
    if not target.confirm:
        return
    with log.step("confirm") as info:
        if yes:
            info["detail"] = "--yes given"
            return
        if not sys.stdin.isatty():
            raise BerthError(
                f"{action} to {target.environment} needs confirmation, and there is no terminal to ask on",
                fix=f"run it in a terminal and type '{target.environment}', or pass --yes (for CI)",
            )
        where = where or ", ".join(h.label for h in target.hosts)
        sys.stderr.write(f"You are about to {action} {target.environment.upper()} ({where}).\n"
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
        # `--`: the URL is never read as an option (a value starting with '-' is refused before this, too)
        proc = gitlocal.git(target.root, *gitlocal.REMOTE_OPTIONS, "push", "--quiet", "--", ctx.remote_url,
                            f"HEAD:refs/heads/{ctx.branch}", check=False, timeout=300)
        if proc.returncode != 0:
            raise BerthError(
                f"git push to {gitlocal.public_url(ctx.remote_url)} failed: "
                f"{masked_tail(gitlocal.hide_credentials(proc.stderr, ctx.remote_url), 400, log.printer.mask)}",
                fix="pull and merge (or rebase) the remote branch, then deploy again; berth never force-pushes",
            )
        info["detail"] = f"{ctx.head[:7]} → {ctx.branch}"


def ssh_options(target: Target, trust_new_host: bool = False) -> SSHOptions:
    return SSHOptions(
        trust_new_host=trust_new_host,
        ssh_config=target.local_path("ssh_config"),
        known_hosts=target.local_path("known_hosts"),
        batch=not sys.stdin.isatty(),
        forward_agent=target.forward_agent,
        known_hosts_origin=target.where("known_hosts") if target.get("known_hosts") else None,
    )


DEBUG_OUTPUT_LIMIT = 2000  # characters of a command's stdout and of its stderr that -v shows (the end)


def debug_hook(printer: StepPrinter):
    def on_command(script: str, result) -> None:
        if printer.verbose:
            printer.debug(f"$ {script.strip()}")
            printer.debug(f"→ exit {result.exit_code} in {result.seconds:.3f}s")
            for text in (result.out, result.err):
                if text.strip():  # masked before it is cut: a cut through a secret would show the rest of it
                    printer.debug(masked_tail(text, DEBUG_OUTPUT_LIMIT, printer.mask))

    return on_command


@dataclass
class Plan:
    """What every host gets: decided once, locally, before any host is touched."""

    target: Target
    opts: DeployOptions
    commit: str
    subject: str
    branch: str
    remote_url: str
    env_path: object
    env_checksum: str
    services: list[str]  # the services compose starts (profiles enabled by COMPOSE_PROFILES)
    timeout: float
    who: str
    built: set[str] = field(default_factory=set)  # services with `build:`: their image names are the project's
    ports: list = field(default_factory=list)  # preflight.Port: the host ports the release publishes
    pulled: list[str] = field(default_factory=list)  # images it runs without building them


def run_deploy(target: Target, opts: DeployOptions, printer: StepPrinter, outcome: dict) -> dict:
    """Deploy to every host of the target; `outcome` is filled in as it goes (for --json, even on failure)."""
    from berth import compose_config
    from berth import env as env_stage
    from berth.envfile import read_env_bytes

    log = StepLog(printer)
    started = time.monotonic()
    outcome.update({"ok": False, "environment": target.environment, "commit": None, "hosts": [], "steps": log.steps})
    report = check_or_stop(target, log, skip={"git.unpushed"} if opts.push else set(), outcome=outcome)
    ctx = report.context
    outcome["commit"] = ctx.head
    subject = gitlocal.head_subject(target.root)
    printer.line(f"  deploying {ctx.head[:7]} \"{subject}\" to {target.environment}")
    confirm(target, opts.yes, log)
    if opts.push:
        push_if_needed(target, report, log)
    env_path = target.root / target.env_file
    plan = Plan(
        target=target, opts=opts, commit=ctx.head, subject=subject, branch=ctx.branch, remote_url=ctx.remote_url,
        env_path=env_path, env_checksum=env_stage.checksum(read_env_bytes(env_path)),
        services=compose_config.active_services(ctx.compose_files, compose_config.project_environment(target)),
        built=compose_config.built_services(ctx.compose_files),
        timeout=opts.verify_timeout or target.verify_timeout,
        who=gitlocal.user_identity(target.root),
    )
    plan.ports, plan.pulled = _published(target)
    from berth import interrupt

    try:
        with interrupt.deferred():  # from here a Ctrl-C finishes the step in progress and rolls back
            for n, host in enumerate(target.hosts):
                if n and interrupt.requested():  # it came while the last host recorded its release
                    raise interrupt.Interrupted(interrupt.requested(), f"the record step on {target.hosts[n - 1].label}")
                host_out = {"host": host.label, "ok": False, "release": None, "state": "not-reached"}
                outcome["hosts"].append(host_out)
                deploy_host(plan, host, log, host_out)
            if interrupt.requested():
                printer.line(f"  ! {interrupt.requested()} came after the release was verified: it is recorded and stays")
    except BerthError as exc:
        where_hosts_are(outcome["hosts"], [h.label for h in target.hosts], exc, printer)
        raise
    outcome["ok"] = all(h["ok"] for h in outcome["hosts"])
    outcome["seconds"] = round(time.monotonic() - started, 3)
    return outcome


HOST_STATES = {
    "deployed": "runs the new release",
    "rolled-back": "serves the release it ran before",
    "unchanged": "unchanged: serves what it ran before",
    "needs-a-person": "does NOT serve its last good release",
    "not-reached": "not touched",
}


def where_hosts_are(hosts: list[dict], labels: list[str], exc: BerthError, printer: StepPrinter) -> None:
    """After a failed deploy: one line per host saying what it serves, and the next command in `exc.fix`."""
    from berth.errors import NEEDS_A_PERSON

    seen = {h["host"] for h in hosts}
    rows = [*hosts, *({"host": label, "state": "not-reached"} for label in labels if label not in seen)]
    if len(rows) > 1 or exc.exit_code == NEEDS_A_PERSON:
        for h in rows:
            printer.line(f"  {h['host']}: {HOST_STATES.get(h.get('state', ''), h.get('state', '?'))}")
    if exc.exit_code == NEEDS_A_PERSON:
        bad = ", ".join(h["host"] for h in rows if h.get("state") == "needs-a-person")
        exc.fix = (f"{bad} needs a person: `berth status` and `berth doctor` show what runs there; then `berth "
                   "rollback RELEASE` to a release `berth releases` lists as ok, or fix and `berth deploy`")


def _published(target: Target) -> tuple[list, list[str]]:
    """The host ports and pulled images of the release, for preflight (an unresolvable model: none known)."""
    from berth import compose_config, preflight

    try:
        model = compose_config.resolve_compose(target).model
    except BerthError:  # (check has reported what makes it unresolvable; compose itself decides then)
        return [], []
    return preflight.published_ports(model), preflight.pulled_images(model)


def deploy_host(plan: Plan, host, log: StepLog, host_out: dict) -> None:
    from berth import connect as connect_stage
    from berth import interrupt
    from berth import lock as lock_stage
    from berth import release as release_stage

    conn = SSHConnection(host, ssh_options(plan.target, plan.opts.trust_new_host), on_command=debug_hook(log.printer),
                         mask=log.printer.mask)
    with log.step("connect", host.label) as info:
        session = connect_stage.connect(plan.target, conn)
        info["detail"] = (f"{session.user}@{host.address} (docker {session.docker_version}, "
                          f"compose {session.compose.variant} {session.compose_version})")
    try:
        with log.step("lock", host.label) as info:
            owner = lock_stage.new_owner(plan.who, plan.commit, "", "deploy")
            held = lock_stage.acquire(session, owner, wait=plan.opts.lock_wait)
            info["detail"] = "acquired" + (f"; took over a stale lock of {held.took_over}" if held.took_over else "")
            if held.took_over:
                release_stage.audit(session, "lock-taken-over", who=plan.who, stale=held.took_over)
        try:
            if held.stale_owner:
                _record_unfinished(session, held.stale_owner, log)
            _deploy_locked(plan, session, log, host_out)
        finally:
            if conn.lost:
                log.printer.line("  ! the deploy lock stays on the server (the connection is gone); the next deploy "
                                 "from this machine takes it over, `berth lock release --force` removes it")
            else:
                try:
                    held.release()
                except BerthError as exc:
                    log.printer.line(f"  ! {exc.what}")
    finally:
        session.close()
        host_out["ssh_connections"] = conn.connections_opened


class Progress:
    """How far a release got on one host: what undoing it takes."""

    def __init__(self) -> None:
        self.changed = False  # the checkout or env file changed (sync began)
        self.up = False  # `docker compose up` began: containers may have been replaced


def _record_unfinished(session, stale: dict, log: StepLog) -> None:
    """A deploy or rollback whose berth was killed or cut off left its lock: record it as failed, once."""
    from berth import release as release_stage
    from berth.release import COMMIT

    if stale.get("command") not in ("deploy", "rollback") or not COMMIT.fullmatch(str(stale.get("commit") or "")):
        return
    history, _ = release_stage.read_history(session, limit=50)
    record = {"id": release_stage.new_release_id(stale["commit"], taken={r.get("id") for r in history}),
              "kind": stale["command"], "commit": stale["commit"], "deployed_by": stale.get("who"),
              "host": session.host.address, "started_at": stale.get("since"),
              "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "result": "failed",
              "failure": f"the {stale['command']} never finished (berth was killed or lost its connection); "
                         "the deploy after it took over"}
    release_stage.record(session, record)
    release_stage.audit(session, f"{stale['command']}-unfinished", who=stale.get("who"), release=record["id"],
                        commit=stale["commit"])
    log.printer.line(f"  ! an earlier {stale['command']} of {stale['commit'][:7]} by {stale.get('who')} never "
                     f"finished; recorded as failed release {record['id']}, and this deploy replaces what it left")


def _deploy_locked(plan: Plan, session, log: StepLog, host_out: dict) -> None:
    from berth import deploy as deploy_stage
    from berth import env as env_stage
    from berth import hooks as hooks_stage
    from berth import release as release_stage
    from berth import sync as sync_stage
    from berth import verify as verify_stage

    from berth import interrupt

    target, label = plan.target, session.host.label
    current = session.current or {}
    history, problems = release_stage.read_history(session, limit=200)
    release = {
        "id": release_stage.new_release_id(plan.commit, taken={r.get("id") for r in history}),
        "kind": "deploy",
        "commit": plan.commit,
        "subject": plan.subject,
        "branch": plan.branch,
        "environment": target.environment,
        "host": session.host.address,
        "deployed_by": plan.who,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "env_checksum": plan.env_checksum,
        "compose": f"{session.compose.variant} {session.compose_version}",
        "previous": current.get("commit"),
        # what verify checked: a rollback to this release verifies it the same way
        "services": plan.services,
        "health_urls": [gitlocal.public_url(u) for u in target.health_urls],
        "verify_timeout": plan.timeout,
        "result": "failed",
    }
    if session.current_error:
        log.printer.line(f"  ! {session.current_error}"
                         + ("" if session.current else "; treating this host as having no running release"))
    for p in problems:
        log.printer.line(f"  ! {p}")
    host_started = time.monotonic()
    progress = Progress()
    try:
        with log.step("preflight", label) as info:
            info["detail"] = _preflight(plan, session)
        with log.step("sync", label) as info:
            progress.changed = True  # from here on a failure is a failed release that is undone
            try:
                synced = sync_stage.sync(session, plan.remote_url, plan.commit, current.get("commit"))
            except sync_stage.Refused:
                progress.changed = False  # refused before the checkout moved: not a release, nothing to undo
                raise
            info["detail"] = synced.describe()
            if synced.untracked:
                info["detail"] += f" (untracked on server, left alone: {synced.untracked[:120]})"
        with log.step("env", label) as info:
            remote_path, size = env_stage.ship_env(session, plan.env_path, target.env_file)
            info["detail"] = f"{target.env_file} → {remote_path} (0600, {size} bytes)"
        unchanged = current.get("commit") == plan.commit and current.get("result") == "ok"
        needs_build = not unchanged
        if needs_build:  # built before anything restarts: a build error leaves the running containers alone
            with log.step("build", label) as info:
                deploy_stage.compose_build(session)
                info["detail"] = "built"
        if target.hooks("pre"):
            with log.step("pre-hook", label) as info:  # migrations run with the new images, before any restart
                info["detail"] = ", ".join(hooks_stage.run_hooks("pre", target.hooks("pre"), session, release, target.root))
        with log.step("deploy", label) as info:
            if unchanged and current.get("env_checksum") == plan.env_checksum and _running_as_recorded(
                    verify_stage.container_states(session), plan.services, current):
                # same commit, same env file, every container up on the recorded image: compose has nothing to do
                info["detail"] = "nothing changed since the running release: up skipped"
            else:
                progress.up = True
                deploy_stage.compose_up(session, build=False)
                info["detail"] = "up" + (" (same commit as the running release: build skipped)" if unchanged else "")
        with log.step("verify", label) as info:
            verified = verify_stage.verify(session, plan.services, target.health_urls, plan.timeout)
            info["detail"] = verified.describe()
            if not verified.ok:
                raise _verify_failure(label, verified, log.printer)
        interrupt.check("verify")  # a signal while verify waited: the release is undone, verified or not
        if target.hooks("post"):
            with log.step("post-hook", label) as info:
                info["detail"] = ", ".join(hooks_stage.run_hooks("post", target.hooks("post"), session, release, target.root))
        release["images"] = _images_of(verified.containers, plan.built, session.compose.project)
        release["containers"] = {c.service: c.id for c in verified.containers}
        release["result"] = "ok"
        host_out["ok"] = True
    except BerthError as exc:
        release.setdefault("failure", log.printer.mask(exc.what))
        if not progress.changed and isinstance(exc, interrupt.Interrupted):
            exc.what += "; nothing on the server had been changed"
        if progress.changed:
            _undo(plan, session, log, current, progress, exc, release, host_out)
        host_out["state"] = _host_state(exc, progress)
        raise
    finally:
        if progress.changed and session.conn.lost:
            log.printer.line("  ! no release record was written (the connection is gone); `berth status` shows the "
                             "server's state, and deploying again completes it")
        elif progress.changed:
            release["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            release["duration"] = round(time.monotonic() - host_started, 3)
            try:
                with interrupt.uninterruptible(), log.step("record", label) as info:
                    ok = release["result"] == "ok"
                    release_stage.record(session, release, env_file=target.env_file if ok else None)
                    warnings = release_stage.keep_and_prune(session, release, history, target.keep_releases) if ok else []
                    release_stage.audit(session, "deploy", who=plan.who, release=release["id"], commit=plan.commit,
                                        result=release["result"], failure=release.get("failure"))
                    info["detail"] = f"release {release['id']} ({release['result']})" + "".join(f"; {w}" for w in warnings)
                    if warnings:  # recorded all the same; the step says what was not kept
                        info["status"] = "warn"
                        host_out["warnings"] = warnings
                    host_out["release"] = release
            except BerthError:
                if release["result"] == "ok":
                    raise
        if host_out.get("ok"):
            host_out["state"] = "deployed"


def _images_of(containers, built: set[str], project: str) -> dict:
    from berth.engines import compose as compose_engine

    return {c.service: {"name": c.image, "id": c.image_id, "built": c.service in built or bool(
        compose_engine.builds_image(c.service, {"name": c.image}, project))} for c in containers if c.image_id}


def _preflight(plan: Plan, session) -> str:
    """Refuse what would make `up` fail with the old containers already gone (berth.preflight)."""
    from berth import preflight

    result = session.conn.run(preflight.script(plan.ports, plan.pulled),
                              timeout=preflight.PULL_TIMEOUT * max(1, len(plan.pulled)) + 60)
    facts = preflight.parse(result.out, plan.pulled)
    found = preflight.problems(facts, plan.ports, session.compose.project, session.host.label, bool(plan.built))
    if found:
        raise BerthError(
            "; ".join(found) + "; nothing on the server was changed",
            fix="free the port (stop what holds it, or change the published port in the compose file or env file), "
                "make the image available, or free disk space; then deploy again",
        )
    parts = [f"{len(plan.ports)} port{'s' * (len(plan.ports) != 1)} free or this project's"] if plan.ports else []
    parts += [f"{len(plan.pulled)} pulled image{'s' * (len(plan.pulled) != 1)} present"] if plan.pulled else []
    if facts.free_mb is not None:
        parts.append(f"{facts.free_mb / 1024:.1f} GB free")
    return ", ".join(parts) or "ok"


def _undo(plan: Plan, session, log: StepLog, current: dict, progress: Progress, exc: BerthError, release: dict,
          host_out: dict) -> None:
    """After a failure on a changed server: put the running release back, and say what the host now runs.

    Before `up` only the checkout, env file and image tags changed: those go back (no container was
    touched). From `up` on, the full rollback runs. The outcome is written into `exc` (message, exit code).
    """
    from berth import interrupt
    from berth import release as release_stage
    from berth import rollback as rollback_stage
    from berth import verify as verify_stage
    from berth.errors import NEEDS_A_PERSON

    label = session.host.label
    good = current if current.get("result") == "ok" and current.get("commit") and current.get("id") else None
    with interrupt.uninterruptible():
        if session.conn.lost:
            log.printer.line(f"  ! {session.conn.lost}; reconnecting to undo the release")
            if not session.conn.reconnect():
                exc.what += (f"; berth could not reconnect to {label}, so the failed release may be half in place "
                             "there: the next berth deploy (or berth rollback) from any machine finishes or undoes it")
                exc.exit_code = NEEDS_A_PERSON
                return
        if progress.up:
            try:  # what the failed release ran, so that `status` and `rollback` can recognise it later
                release["images"] = _images_of(verify_stage.container_states(session), plan.built,
                                               session.compose.project)
            except BerthError:
                pass
        if not plan.opts.rollback:
            exc.what += "; --no-rollback: the failed release stays in place for debugging"
            if progress.up:
                exc.exit_code = NEEDS_A_PERSON
            return
        if not good:
            if progress.up:
                exc.what += "; there is no earlier good release on this host to roll back to"
                exc.exit_code = NEEDS_A_PERSON
            return
        try:
            if progress.up:
                back = rollback_stage.roll_back(
                    session, log, good, plan.remote_url, good.get("services") or plan.services,
                    tuple(good.get("health_urls") or plan.target.health_urls),
                    float(good.get("verify_timeout") or plan.timeout), plan.target.env_file)
                host_out["rollback_images"] = {c.service: c.image_id for c in back.containers}
                exc.what += f"; rolled back to release {good['id']} ({good['commit'][:7]}), which is healthy again"
            else:
                with log.step("restore", label) as info:
                    info["detail"] = _restore_unstarted(session, good, plan)
                exc.what += (f"; nothing had been restarted, and the checkout, env file and images of release "
                             f"{good['id']} ({good['commit'][:7]}) are back in place")
        except BerthError as undo_error:
            exc.what += f"; undoing it failed too: {undo_error.what}"
            exc.exit_code = NEEDS_A_PERSON
            return
        release["rolled_back_to"] = good["id"]
        host_out["rolled_back_to"] = good["id"]
        release_stage.audit(session, "rollback", who=plan.who, to=good["id"], reason=_reason(exc),
                            failed_release=release["id"])


def _reason(exc: BerthError) -> str:
    from berth.interrupt import Interrupted

    if isinstance(exc, VerifyFailed):
        return "verify failed"
    if isinstance(exc, Interrupted):
        return exc.what
    return "deploy failed"


def _host_state(exc: BerthError, progress: Progress) -> str:
    """For --json: what the host serves after a failed deploy."""
    from berth.errors import NEEDS_A_PERSON

    if exc.exit_code == NEEDS_A_PERSON:
        return "needs-a-person"
    return "rolled-back" if progress.changed else "unchanged"


def _restore_unstarted(session, good: dict, plan: Plan) -> str:
    """The checkout, env file and built image tags of `good` again; no container was replaced yet."""
    from berth import sync as sync_stage
    from berth.commands import release as release_commands
    from berth.rollback import _restore_images

    sync_stage.sync(session, plan.remote_url, good["commit"], good["commit"])
    result = session.conn.run(release_commands.restore_env(session.state_dir, good["id"],
                                                           f"{session.app_dir}/{plan.target.env_file}"), timeout=60)
    if not result.ok:
        raise BerthError(f"could not put back the env file of release {good['id']}: {result.tail(300)}")
    _, detail = _restore_images(session, good)
    return f"release {good['id']}: checkout, env file; {detail}"


def _running_as_recorded(containers, services: list[str], current: dict) -> bool:
    images = current.get("images") or {}
    # a container recreated by hand (docker compose up on the server) may carry another environment
    recorded = current.get("containers")
    by_service = {c.service: c for c in containers}
    return bool(images) and all(
        s in by_service and by_service[s].ready and by_service[s].status == "running"
        and images.get(s, {}).get("id") == by_service[s].image_id
        and (recorded is None or recorded.get(s) == by_service[s].id)
        for s in services
    )


class VerifyFailed(BerthError):
    pass


def _verify_failure(label: str, verified, printer: StepPrinter) -> VerifyFailed:
    details = "\n".join(verified.problems)
    for service, text in verified.logs.items():
        details += f"\n--- last log lines of {service} ---\n{text}"
    return VerifyFailed(
        f"verify failed on {label}: " + "; ".join(verified.problems),
        fix="read the service's log lines below; `berth doctor` names the likely cause (crash loop, missing variable, "
            "unreachable database, wrong health URL port), `berth logs SERVICE` shows more",
        details=printer.mask(details),
    )
