"""The steps of a per-host deploy, in order. Each step can say whether it applies, run, and describe the
commands it runs — `berth deploy` runs this list and `berth plan` renders it, so the two cannot drift.

    preflight → sync → env → build → pre-hook → deploy (up) → verify → post-hook, then record

The `Up` step is where a rollout strategy plugs in: today it is compose's own recreate (`up -d`);
a start-first strategy replaces this one step (`deploy_steps`), and every other step stays.
A step that fails raises BerthError; the pipeline then undoes the release (berth.deploy.pipeline).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from berth.configuration.target import Target
from berth.deploy import decide, interrupt
from berth.deploy import release as release_stage
from berth.deploy.spec import DeploySpec
from berth.deploy.stages import compose_up, preflight, shared_build, start_first
from berth.deploy.stages import hooks as hook_stage
from berth.deploy.stages import ship_env as env_stage
from berth.deploy.stages import sync as sync_stage
from berth.deploy.stages import verify as verify_stage
from berth.deploy.steplog import StepLog
from berth.errors import BerthError
from berth.model.release import Release
from berth.remote.commands import files as file_commands
from berth.remote.commands import git as git_commands
from berth.remote.commands import images as image_commands
from berth.remote.commands import preflight as preflight_commands
from berth.remote.commands import proxy as proxy_commands
from berth.remote.commands import release as release_commands
from berth.remote.engines.compose import Compose, in_dir
from berth.remote.session import HostSession


@dataclass(frozen=True)
class Facts:
    """What a step's commands depend on about the host; `known` is False when berth plan has not connected."""

    app_dir: str
    state_dir: str
    compose: Compose
    known: bool = True

    @classmethod
    def of(cls, session: HostSession) -> Facts:
        return cls(session.app_dir, session.state_dir, session.compose)

    @classmethod
    def assumed(cls, target: Target) -> Facts:
        """Without a connection: the settings' app dir, the default state dir, compose v2."""
        from berth.remote.session import compose_files

        state_dir = "~/" + release_commands.state_dir_rel(target.project)
        return cls(target.app_dir, state_dir,
                   Compose("v2", target.project, compose_files(target, state_dir), target.env_file), known=False)


@dataclass
class Progress:
    """How far a release got on one host: what undoing it takes."""

    changed: bool = False  # the checkout or env file changed (sync began)
    up: bool = False  # `docker compose up` began: containers may have been replaced


@dataclass
class HostRun:
    """One host's deploy as it goes: what the steps read and write."""

    spec: DeploySpec
    session: HostSession
    log: StepLog
    release: Release  # the record being built
    current: Release | None  # the release that ran before, as current.json names it
    history: list[Release]
    host_out: dict  # this host's part of the --json document
    progress: Progress = field(default_factory=Progress)
    verified: verify_stage.VerifyResult | None = None
    retired: list[str] = field(default_factory=list)  # containers a start-first switch is stopping
    switch: start_first.Switched = field(default_factory=start_first.Switched)  # how far the switch got
    started: float = field(default_factory=time.monotonic)

    @property
    def target(self) -> Target:
        return self.spec.target

    @property
    def label(self) -> str:
        return self.session.host.label


def proxied(run: HostRun) -> bool:
    """berth's proxy is on and this host's compose can run it (v2.24+); else every service is recreated."""
    return run.target.proxy and start_first.compose_supports_proxy(run.session)


class Step:
    name: str = ""

    def applies(self, run: HostRun) -> bool:
        return True

    def applies_to_plan(self, target: Target) -> bool:
        """Whether `berth plan` shows the step (it runs on some deploys of this target)."""
        return True

    def run(self, run: HostRun) -> str:
        """Do the step; return the detail line the printer shows."""
        raise NotImplementedError

    def after(self, run: HostRun) -> None:
        """Between this step and the next, outside the step's timing."""

    def describe(self, spec: DeploySpec, facts: Facts) -> list[str]:
        """The commands the step runs on the server (one shell text per item), and notes in parentheses."""
        raise NotImplementedError


class Preflight(Step):
    """Refuse what would make `up` fail with the old containers already gone (berth.deploy.stages.preflight)."""

    name = "preflight"

    def run(self, run: HostRun) -> str:
        if run.target.proxy and not proxied(run):
            run.log.printer.line(f"  ! {run.label} has compose {run.session.compose.variant} "
                                 f"{run.session.compose_version}: berth's proxy needs Compose v2.24 or newer, so every "
                                 "service there is recreated (upgrade the Compose plugin for start-first switches)")
        spec, session = run.spec, run.session
        result = session.conn.run(preflight_commands.script(spec.ports, spec.pulled),
                                  timeout=preflight_commands.PULL_TIMEOUT * max(1, len(spec.pulled)) + 60)
        facts = preflight.parse(result.out, spec.pulled)
        found = preflight.problems(facts, spec.ports, session.compose.project, run.label, bool(spec.built))
        if found:
            raise BerthError(
                "; ".join(found) + "; nothing on the server was changed",
                fix="free the port (stop what holds it, or change the published port in the compose file or env "
                    "file), make the image available, or free disk space; then deploy again",
            )
        return preflight.summary(facts, spec.ports, spec.pulled)

    def describe(self, spec: DeploySpec, facts: Facts) -> list[str]:
        return [preflight_commands.script(spec.ports, spec.pulled)]


class Sync(Step):
    name = "sync"

    def run(self, run: HostRun) -> str:
        run.progress.changed = True  # from here on a failure is a failed release that is undone
        try:
            running = run.current.commit if run.current else None
            synced = sync_stage.sync(run.session, run.spec.remote_url, run.spec.commit, running)
        except sync_stage.Refused:
            run.progress.changed = False  # refused before the checkout moved: not a release, nothing to undo
            raise
        detail = synced.describe()
        if synced.untracked:
            detail += f" (untracked on server, left alone: {synced.untracked[:120]})"
        return detail

    def describe(self, spec: DeploySpec, facts: Facts) -> list[str]:
        if not spec.commit:
            return ["(no commit to check out: the check stops the deploy)"]
        # as the first deploy to a host runs it (later ones also pass the running release's commit)
        return [git_commands.sync(facts.app_dir, spec.remote_url or "REMOTE", spec.commit)]


class ShipEnv(Step):
    """The env file, then the secret and config files git does not carry: over stdin, 0600."""

    name = "env"

    def run(self, run: HostRun) -> str:
        env_file = run.target.env_file
        remote_path, size = env_stage.ship_env(run.session, run.spec.env_path, env_file)
        detail = f"{env_file} → {remote_path} (0600, {size} bytes)"
        if run.spec.files:
            kept = env_stage.ship_files(run.session, run.target.root, list(run.spec.files))
            detail += f"; {', '.join(run.spec.files)} (0600)"
            for note in kept:
                run.log.printer.line(f"  ! kept {note}")
        if proxied(run):  # named by every compose command from here on (berth.remote.session.compose_files)
            start_first.write_override(run.session, run.spec.proxy)
            detail += "; the proxy's compose override"
        return detail

    def describe(self, spec: DeploySpec, facts: Facts) -> list[str]:
        env_file = spec.target.env_file
        lines = [f"(stdin: {env_file}, read here; its values never appear in a command)",
                 file_commands.write_private_file(f"{facts.app_dir}/{env_file}")]
        for rel in spec.files:
            lines += [f"(stdin: {rel}, a secret or config file git does not carry)",
                      file_commands.keep_original(f"{facts.app_dir}/{rel}", f"{facts.state_dir}/replaced/{rel}")
                      + " && " + file_commands.write_private_file(f"{facts.app_dir}/{rel}")]
        if spec.target.proxy:
            lines += ["(stdin: the compose override that runs berth's proxy and takes the start-first services' "
                      "ports)", file_commands.write_private_file(proxy_commands.override_path(facts.state_dir))]
            if spec.proxy is not None and spec.proxy.ca_root_pem:
                lines += ["(stdin: acme_ca_root, the certificate the proxy trusts its ACME server by)",
                          file_commands.write_private_file(proxy_commands.ca_root_path(facts.state_dir))]
        return lines


class Build(Step):
    """Built before anything restarts: a build error leaves the running containers alone."""

    name = "build"

    def applies(self, run: HostRun) -> bool:
        return decide.needs_build(run.current, run.spec.commit)

    def run(self, run: HostRun) -> str:
        spec = run.spec
        if spec.shared_build is not None and spec.built:  # a fleet builds once (berth.deploy.stages.shared_build)
            return shared_build.build(run.session, spec.shared_build, spec.built, spec.declared_images)
        compose_up.compose_build(run.session)
        return "built"

    def describe(self, spec: DeploySpec, facts: Facts) -> list[str]:
        lines = [in_dir(facts.app_dir, facts.compose.build()),
                 "(skipped when the running release has this commit: its images are reused)"]
        if spec.built and _builds_once(spec.target):
            lines += ["(build = \"once\": only the first host that needs a build runs it; each other host gets its "
                      "images instead:)",
                      f"(on the builder) {image_commands.save('IMAGE_ID')}",
                      f"(on each other host, stdin: that archive) {image_commands.load().strip()} && "
                      + image_commands.tag("IMAGE_ID", facts.compose.built_image("SERVICE"))]
        return lines


def _builds_once(target: Target) -> bool:
    """A fleet whose one build the other hosts load (for the plan; check reports settings it cannot follow)."""
    try:
        return len(target.hosts) > 1 and target.fleet.build == "once"
    except BerthError:
        return False


class Hooks(Step):
    """pre_deploy hooks run with the new images before any restart (migrations); post_deploy after verify."""

    def __init__(self, when: str) -> None:
        self.when = when
        self.name = f"{when}-hook"

    def applies(self, run: HostRun) -> bool:
        return bool(run.target.hooks(self.when))

    def applies_to_plan(self, target: Target) -> bool:
        return bool(target.hooks(self.when))

    def run(self, run: HostRun) -> str:
        ran = hook_stage.run_hooks(self.when, run.target.hooks(self.when), run.session, run.release, run.target.root)
        return ", ".join(ran)

    def describe(self, spec: DeploySpec, facts: Facts) -> list[str]:
        release = Release(id="RELEASE_ID", commit=spec.commit or "COMMIT", environment=spec.target.environment,
                          host="HOST")
        env = hook_stage.hook_env(release, facts.compose)
        out = []
        for command in spec.target.hooks(self.when):
            if command.startswith(hook_stage.LOCAL_PREFIX):
                local = command[len(hook_stage.LOCAL_PREFIX):].strip()
                out.append("locally, in the repository: " + " ".join(hook_stage.local_hook_argv(local)))
            else:
                out.append(hook_stage.remote_hook(facts.app_dir, command, env))
        return out


class Up(Step):
    """The rollout: how the new containers replace the old ones. Today compose's recreate (`up -d`)."""

    name = "deploy"

    def run(self, run: HostRun) -> str:
        spec, current = run.spec, run.current
        same = decide.same_commit(current, spec.commit)
        if same and decide.skip_up(current, spec.commit, spec.env_checksum,
                                   verify_stage.container_states(run.session), spec.services, spec.files_checksum):
            note = None
            if proxied(run):  # a changed proxy image or port set is applied all the same (compose: a no-op else)
                note = start_first.up_proxy(run.session, spec.proxy)
            return "nothing changed since the running release: up skipped" + (f"; {note}" if note else "")
        run.progress.up = True
        if proxied(run):  # berth's proxy serves the start-first services: they switch, the rest recreate
            start_first.deploy(run.session, spec.services, spec.rollouts, spec.proxy, spec.timeout, done=run.switch)
            run.retired = run.switch.retired
            detail = run.switch.describe()
        else:
            compose_up.compose_up(run.session, build=False)
            detail = "up"
        detail += " (same commit as the running release: build skipped)" if same else ""
        users = decide.file_users_to_recreate(current, spec.files, spec.files_checksum)
        if users:
            compose_up.recreate(run.session, users)
            detail += f"; {', '.join(users)} recreated (a secret or config file changed)"
        return detail

    def describe(self, spec: DeploySpec, facts: Facts) -> list[str]:
        if spec.target.proxy:
            return self._describe_switch(spec, facts)
        out = [in_dir(facts.app_dir, facts.compose.up()),
               "(skipped when commit, env file, secret and config files and containers are those of the running "
               "release)"]
        users = sorted({s for services in spec.files.values() for s in services})
        if users:
            out += [in_dir(facts.app_dir, facts.compose.recreate(tuple(users))),
                    "(when a shipped secret or config file changed: a container keeps the file it started with)"]
        starting_first = [r for r in spec.rollouts if r.strategy == "start-first"]
        if starting_first:  # the switch needs berth's proxy, which is off (docs/ROLLOUTS.md)
            out.append("(every service is recreated: berth's proxy is off (proxy = true in berth.toml, or "
                       "BERTH_PROXY=true in .env, turns it on); with it these services qualify for a start-first "
                       "switch: " + "; ".join(f"{r.service}, {r.why}" for r in starting_first) + ")")
        return out


    @staticmethod
    def _describe_switch(spec: DeploySpec, facts: Facts) -> list[str]:
        compose, project = facts.compose, facts.compose.project
        switching = [r for r in spec.rollouts if r.strategy == "start-first" and spec.proxy is not None
                     and spec.proxy.serves(r.service)]
        others = [s for s in spec.services if s not in {r.service for r in switching}]
        out = [f"(stdin: the proxy's Caddyfile) {file_commands.write_private_file(proxy_commands.caddyfile_path(facts.state_dir))}",
               "(the proxy's first start:) " + in_dir(facts.app_dir, [*compose.base(), "up", "--detach",
                                                                     "--remove-orphans", *spec.services]),
               "(then) " + in_dir(facts.app_dir, [*compose.base(), "up", "--detach", "--no-deps",
                                                  proxy_commands.SERVICE]),
               "(otherwise:) " + in_dir(facts.app_dir, [*compose.base(), "up", "--detach", "--remove-orphans",
                                                       "--no-deps", *others, proxy_commands.SERVICE]),
               "(when nothing changed since the running release, only: "
               + in_dir(facts.app_dir, [*compose.base(), "up", "--detach", "--no-deps", proxy_commands.SERVICE])
               + ")"]
        for r in switching:
            out += [f"({r.service}: start-first, {r.why})",
                    in_dir(facts.app_dir, [*compose.base(), "up", "--detach", "--no-deps", "--no-recreate",
                                           "--scale", f"{r.service}=N+1", r.service]),
                    f"(until the new container is healthy) {proxy_commands.health_status('NEW')}",
                    proxy_commands.probe("PROXY", "NEW", r.http_port or 0, r.health_path),
                    f"(Caddyfile: {r.service} → [NEW, OLD], lb_policy first) {proxy_commands.reload('PROXY')}",
                    f"(in the background: until no request is in flight to OLD, at most {r.drain_timeout:.0f}s, "
                    "then stop and remove it) " + proxy_commands.retire("OLD", facts.state_dir, "PROXY",
                                                                        r.drain_timeout),
                    f"(a new container that fails: docker rm -f NEW; OLD keeps serving) "
                    f"{proxy_commands.container_ids(project, r.service, facts.state_dir)}"]
        for r in spec.rollouts:
            if r.strategy != "start-first":
                out.append(f"({r.service}: recreate, {r.why})")
        for site in spec.proxy.sites if spec.proxy is not None else []:
            tls = spec.proxy.tls
            ca = (tls.ca if tls and tls.ca else "Let's Encrypt") + (", trusting acme_ca_root" if tls and tls.ca_root else "")
            redirect = "HTTP on port 80 redirects to HTTPS" if not tls or tls.redirect else "no HTTP redirect"
            out.append(f"(HTTPS: {', '.join(site.names)} → {site.service}:{site.target} on ports 80/443; certificates "
                       f"by ACME from {ca}, kept in the {proxy_commands.DATA_VOLUME} volume; {redirect})")
        return out


class VerifyFailed(BerthError):
    pass


class Verify(Step):
    name = "verify"

    def run(self, run: HostRun) -> str:
        verified = verify_stage.verify(run.session, run.spec.services, run.spec.health_urls, run.spec.timeout,
                                       ignore=set(run.retired))
        run.verified = verified
        if not verified.ok:
            raise verify_failure(run.label, verified, run.log.printer.mask)
        return verified.describe()

    def after(self, run: HostRun) -> None:
        interrupt.check("verify")  # a signal while verify waited: the release is undone, verified or not

    def describe(self, spec: DeploySpec, facts: Facts) -> list[str]:
        urls = ", ".join(spec.target.health_urls) or "(no health URL configured)"
        return [facts.compose.inspect_containers(),
                f"(repeat until every service in {', '.join(spec.services) or '(none)'} is running and healthy, "
                f"or {spec.timeout:.0f}s pass) then GET {urls}"]


def verify_failure(label: str, verified, mask) -> VerifyFailed:
    details = "\n".join(verified.problems)
    for service, text in verified.logs.items():
        details += f"\n--- last log lines of {service} ---\n{text}"
    return VerifyFailed(
        f"verify failed on {label}: " + "; ".join(verified.problems),
        fix="read the service's log lines below; `berth doctor` names the likely cause (crash loop, missing variable, "
            "unreachable database, wrong health URL port), `berth logs SERVICE` shows more",
        details=mask(details),
    )


class Record(Step):
    """Written whatever the outcome once the server changed; run by the pipeline after the other steps."""

    name = "record"

    def run(self, run: HostRun) -> str:
        release, target = run.release, run.target
        ok = release.ok
        release_stage.record(run.session, release, env_file=target.env_file if ok else None,
                             files=list(release.files or ()) if ok else None)
        warnings = release_stage.keep_and_prune(run.session, release, run.history, target.keep_releases) if ok else []
        release_stage.audit(run.session, "deploy", who=run.spec.who, release=release.id, commit=run.spec.commit,
                            result=release.result, failure=release.failure)
        if warnings:
            run.host_out["warnings"] = warnings
        run.host_out["release"] = release.to_record()
        return f"release {release.id} ({release.result})" + "".join(f"; {w}" for w in warnings)

    def describe(self, spec: DeploySpec, facts: Facts) -> list[str]:
        env_copy = f"{facts.app_dir}/{spec.target.env_file}"
        images = {service: {"name": "IMAGE", "id": "IMAGE_ID"} for service in spec.services}
        return [
            "(stdin: the release record as JSON; a failed release is recorded too, without becoming current or "
            "keeping a copy of its env file)",
            release_commands.record(facts.state_dir, "RELEASE_ID", True, env_copy),
            f"(an ok release only: tag the images that verify saw running, so a rollback rebuilds nothing; untag "
            f"and forget the releases past keep_releases = {spec.target.keep_releases})",
            release_stage.keep_and_prune_script(facts.compose.project, "RELEASE_ID", images,
                                                ["RELEASE_ID", "KEPT_RELEASE_ID"], facts.state_dir),
            "(stdin: the audit event as JSON)",
            release_commands.audit(facts.state_dir),
        ]


def deploy_steps(target: Target) -> list[Step]:
    """The per-host steps of a deploy, in order (record excluded: it runs whatever happens once a host changed)."""
    return [Preflight(), Sync(), ShipEnv(), Build(), Hooks("pre"), Up(), Verify(), Hooks("post")]


RECORD = Record()
