"""engine = "swarm": the same compose file as a Docker Swarm stack, through the manager berth reaches by SSH.

    check ─ confirm ─ push                        once, locally (as for docker compose)
    connect manager ─ lock ─ swarm ─ sync ─ env   the first host is the manager: its checkout and env file
    build ─ images                                built on the manager, copied to each node that lacks them
    stack ─ converge ─ record                     the rendered stack (berth.model.compose.swarm), swarm's
                                                  health-gated rolling update, then the release record

A failure after `stack` puts the whole stack back on the release that ran before (Docker has no
stack-level rollback): its kept stack file, env files and images, then its checkout and env file.
`berth rollback` does the same for a release it names. docs/FLEETS.md, Swarm.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable
from functools import cached_property

import yaml

from berth.configuration.target import Host, Target
from berth.deploy import interrupt
from berth.deploy import lock as lock_stage
from berth.deploy import release as release_stage
from berth.deploy.gate import check_or_stop, confirm, push_if_needed
from berth.deploy.spec import DeployOptions, DeploySpec, make_spec
from berth.deploy.stages import ship_env as env_stage
from berth.deploy.stages import sync as sync_stage
from berth.deploy.stages.compose_up import compose_build
from berth.deploy.steplog import StepLog
from berth.errors import NEEDS_A_PERSON, BerthError
from berth.model import git as gitlocal
from berth.model.release import Release
from berth.remote import session as connect_stage
from berth.remote.commands import images as image_commands
from berth.remote.commands import release as release_commands
from berth.remote.engines import compose as compose_engine
from berth.remote.engines import swarm
from berth.remote.session import HostSession, debug_hook, ssh_options
from berth.remote.transport import Transport
from berth.remote.transport.ssh import SSHConnection

POLL_SECONDS = 1.0
COPY_TIMEOUT = 900


class ConvergeFailed(BerthError):
    """The stack did not reach the release: swarm rolled a service back, or it did not converge in time."""


class VerifyFailed(BerthError):
    """The stack converged, but a health URL did not answer 2xx."""


def connection(target: Target, host: Host, opts: DeployOptions, printer,
               transport: Callable[[Host], Transport] | None) -> Transport:
    return transport(host) if transport else SSHConnection(host, ssh_options(target, opts.trust_new_host),
                                                           on_command=debug_hook(printer), mask=printer.mask)


def run_stack_deploy(target: Target, opts: DeployOptions, printer, outcome: dict,
                     transport: Callable[[Host], Transport] | None = None) -> dict:
    log = StepLog(printer)
    started = time.monotonic()
    outcome.update({"ok": False, "environment": target.environment, "engine": "swarm", "commit": None,
                    "hosts": [], "steps": log.steps})
    report = check_or_stop(target, log, skip={"git.unpushed"} if opts.push else set(), outcome=outcome)
    outcome["commit"] = report.context.head
    spec = make_spec(target, opts, report.context)
    manager, nodes = target.hosts[0], target.hosts[1:]
    printer.line(f"  deploying {spec.commit[:7]} \"{spec.subject}\" to {target.environment} as a swarm stack "
                 f"(manager {manager.label})")
    confirm(target, opts.yes, log)
    if opts.push:
        push_if_needed(target, report, log)
    row = {"host": manager.label, "role": "manager", "ok": False, "release": None, "state": "not-reached"}
    outcome["hosts"].append(row)
    with interrupt.deferred():
        conn = connection(target, manager, opts, printer, transport)
        with log.step("connect", manager.label) as info:
            session = connect_stage.connect(target, conn)
            info["detail"] = f"{session.user}@{manager.address} (docker {session.docker_version})"
        try:
            owner = lock_stage.new_owner(spec.who, spec.commit, "", "deploy")
            with lock_stage.held(session, owner, log, wait=opts.lock_wait):
                StackRun(spec, session, log, row, nodes, transport).deploy()
        finally:
            session.close()
            row["ssh_connections"] = conn.connections_opened
    outcome["ok"] = row["ok"]
    outcome["seconds"] = round(time.monotonic() - started, 3)
    return outcome


class StackRun:
    """One stack deploy on a manager: the steps in order, and the undo after a failure."""

    def __init__(self, spec: DeploySpec, session: HostSession, log: StepLog, row: dict, nodes: tuple[Host, ...],
                 transport) -> None:
        self.spec, self.session, self.log, self.row, self.nodes, self.transport = (spec, session, log, row, nodes,
                                                                                  transport)
        self.target = spec.target
        self.project = session.compose.project
        self.changed = False  # the checkout or the env file changed
        self.deployed = False  # `docker stack deploy` ran: the services may be updating
        self.ok = False
        self.started = time.monotonic()
        history, _ = release_stage.read_history(session, limit=200)
        self.history = history
        self.current = session.current
        self.release = Release(
            id=release_stage.new_release_id(spec.commit, taken={r.id for r in history}), kind="deploy",
            commit=spec.commit, subject=spec.subject, branch=spec.branch, environment=self.target.environment,
            host=session.host.address, deployed_by=spec.who,
            started_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), env_checksum=spec.env_checksum,
            files=spec.files or None, files_checksum=spec.files_checksum or None,
            previous=self.current.commit if self.current else None, services=spec.services,
            verify_timeout=spec.timeout, health_urls=[gitlocal.public_url(u) for u in spec.health_urls],
            result="failed", extra={"engine": "swarm"})

    def deploy(self) -> None:
        try:
            with self.log.step("swarm", self.session.host.label) as info:
                info["detail"] = self.check_manager()
            with self.log.step("sync", self.session.host.label) as info:
                self.changed = True
                running = self.current.commit if self.current else None
                info["detail"] = sync_stage.sync(self.session, self.spec.remote_url, self.spec.commit,
                                                 running).describe()
            with self.log.step("env", self.session.host.label) as info:
                path, size = env_stage.ship_env(self.session, self.spec.env_path, self.target.env_file)
                env_stage.ship_files(self.session, self.target.root, list(self.spec.files))
                info["detail"] = f"{self.target.env_file} → {path} (0600, {size} bytes)"
            tags = self.images()
            refs = self.refs(tags)
            with self.log.step("images", self.session.host.label) as info:
                info["detail"] = self.distribute(tags, refs)
            with self.log.step("stack", self.session.host.label) as info:
                info["detail"] = self.stack_deploy(tags, refs)
            with self.log.step("converge", self.session.host.label) as info:
                info["detail"] = wait_converged(self.session, self.project, refs, self.spec.timeout)
            if self.spec.health_urls:
                with self.log.step("verify", self.session.host.label) as info:
                    info["detail"] = verify_urls(self.session, self.spec.health_urls, self.spec.timeout)
            self.ok = True
        except BerthError as exc:
            self.failed(exc)
            raise
        finally:
            self.record()

    @cached_property
    def resolved(self):
        """The resolved compose model, made once for the build's image names and the stack."""
        from berth.deploy.spec import _resolved

        return _resolved(self.target)

    def check_manager(self) -> str:
        state, manager, _ = swarm.parse_node_state(self.session.conn.run(swarm.node_state(), timeout=60).out)
        label = self.session.host.label
        if state != "active" or not manager:
            raise BerthError(f"{label} is not a swarm manager (its engine's swarm state: {state or 'unknown'}); "
                             "nothing was changed",
                             fix="make the first host of the environment a manager (docker swarm init there, or "
                                 "docker node promote), or put a manager first in hosts")
        found = swarm.parse_nodes(self.session.conn.run(swarm.nodes(), timeout=60).out)
        ready = [n for n in found if n.status == "Ready"]
        down = len(found) - len(ready)
        return f"manager of {len(found)} node{'s' * (len(found) != 1)}" + (f", {down} not ready" if down else "")

    def images(self) -> dict[str, str]:
        """service → the image the stack runs: built ones tagged by commit, the others as the file names them."""
        model = self.resolved.model if self.resolved else {}
        images: dict[str, str] = {}
        built = [s for s in self.spec.services if s in self.spec.built]
        if built:
            with self.log.step("build", self.session.host.label) as info:
                compose_build(self.session)
                tags = []
                for service in built:
                    source = self.session.compose.built_image(
                        service, (model.get("services", {}).get(service) or {}).get("image"))
                    images[service] = image_tag(self.project, service, self.spec.commit)
                    tags.append(image_commands.tag(source, images[service]))
                result = self.session.conn.run(" && ".join(tags), timeout=120)
                if not result.ok:
                    raise BerthError(f"could not tag the built images on {self.session.host.label}: "
                                     f"{result.tail(300)}")
                info["detail"] = "built " + ", ".join(images.values())
        for service in self.spec.services:
            if service not in images:
                images[service] = (model.get("services", {}).get(service) or {}).get("image") or ""
        return images

    def refs(self, tags: dict[str, str]) -> dict[str, str]:
        """What the stack names: a built image by its id (a node then never asks a registry for it, which it would
        for a tag), a pulled one as the file names it."""
        built = {s: t for s, t in tags.items() if s in self.spec.built}
        found = image_commands.parse_describe(  # every built image in one round trip
            self.session.conn.run(image_commands.describe(list(built.values())), timeout=60).out)
        ids = {s: found.get(t, ("", ""))[0] for s, t in built.items()}
        missing = [tags[s] for s, i in ids.items() if not i]
        if missing:
            raise BerthError(f"the built image {', '.join(missing)} is not on {self.session.host.label}",
                             fix="see the build step's output; deploy again")
        return {s: ids.get(s) or t for s, t in tags.items()}

    def distribute(self, tags: dict[str, str], refs: dict[str, str]) -> str:
        """Each built image to each node that lacks it: `docker save` on the manager, `docker load` there."""
        from berth.remote.fanout import per_host

        ids = {tags[s]: refs[s] for s in self.spec.built if s in tags}  # tag → its id on the manager
        built = sorted(ids)
        if not built or not self.nodes:
            return "no image to copy" if not built else "the manager is the only node berth reaches"
        # a node keeps the images of the releases the manager keeps, and this one's (whatever its outcome): a
        # rollback finds them there, as it copies none
        keep = [r.commit for r in release_stage.kept_releases(self.history, self.target.keep_releases)]
        prune = compose_engine.prune_kept_images(self.project, [c[:12] for c in [*keep, self.spec.commit]])
        archives: dict[str, bytes] = {}
        saving = threading.Lock()  # one `docker save` per image, whichever node needs it first

        def one(host: Host) -> str:
            conn = connection(self.target, host, self.spec.opts, self.log.printer, self.transport)
            conn.open()
            try:
                copied = []
                there = image_commands.parse_describe(conn.run(image_commands.describe(built), timeout=60).out)
                for t in built:
                    if there.get(t, ("", ""))[0] == ids[t]:
                        continue
                    with saving:
                        if t not in archives:
                            archives[t] = self.session.conn.run(image_commands.save(t), timeout=COPY_TIMEOUT).stdout
                    result = conn.run(image_commands.load(), stdin=archives[t], timeout=COPY_TIMEOUT)
                    if not result.ok:
                        raise BerthError(f"could not load {t} on {host.label}: {result.tail(300)}",
                                         fix="check the node's disk and its docker engine, then deploy again")
                    copied.append(t)
                conn.run(prune, timeout=120)
                return f"{host.label}: " + (", ".join(copied) if copied else "had them")
            finally:
                conn.close()

        return "; ".join(per_host(self.nodes, one))

    def stack_deploy(self, tags: dict[str, str], images: dict[str, str]) -> str:
        from berth.model.compose.swarm import StackError, render_stack

        resolved = self.resolved
        if resolved is None:
            raise BerthError("the compose files cannot be resolved into a stack", fix="berth check says why")
        root = self.target.root
        digests, remote = {}, {}
        for kind in ("secrets", "configs"):
            for spec in (resolved.model.get(kind) or {}).values():
                if spec and spec.get("file"):
                    local = str(spec["file"])
                    rel = os.path.relpath(local, root)  # (check refuses files outside the repository)
                    digests[local] = hashlib.sha256(env_stage.read_shipped(root, rel)).hexdigest()
                    remote[local] = f"{self.session.app_dir}/{rel}"
        try:
            stack = render_stack(resolved.model, self.project, images, digests, remote.__getitem__)
        except StackError as exc:
            raise BerthError(f"the compose file cannot run as a swarm stack: {exc}",
                             fix="change it as the message says; berth check lists what a swarm ignores") from None
        text = yaml.safe_dump(stack.document, sort_keys=False)
        if self.log.printer.mask(text) != text:  # a secret interpolated outside `environment:` (a command, a label)
            raise BerthError("the stack would hold a value of the env file outside environment: (in a command, a "
                             "label or a healthcheck), where swarm shows it to anyone who inspects the service",
                             fix="pass it to the service through environment: or a secret file instead")
        self.release.extra["swarm_objects"] = sorted(stack.objects)
        self.release.images = {s: {"name": tags[s], "id": images[s] if s in self.spec.built else None,
                                   "built": s in self.spec.built} for s in images}
        files = {"stack.yml": text.encode(), **{f"{s}.env": data for s, data in stack.env_files.items()}}
        result = self.session.conn.run(swarm.write_release(self.session.state_dir, self.release.id),
                                       stdin=swarm.release_archive(files), timeout=60)
        if not result.ok:
            raise BerthError(f"could not write the stack of release {self.release.id} on {self.session.host.label}: "
                             f"{result.tail(300)}")
        self.deployed = True
        deploy_stack(self.session, self.project, self.release.id)
        return f"{self.project}: {', '.join(sorted(stack.document['services']))}"

    def failed(self, exc: BerthError) -> None:
        self.release.failure = self.log.printer.mask(exc.what)
        good = self.current if self.current and self.current.good else None
        if not self.changed:
            self.row["state"] = "unchanged"
            return
        if good is None:
            exc.what += "; there is no earlier good release to put back"
            exc.exit_code = NEEDS_A_PERSON
            self.row["state"] = "needs-a-person"
            return
        with interrupt.uninterruptible():
            try:
                back = return_to(self.session, self.log, good, self.spec.remote_url, self.target, self.deployed)
            except BerthError as undo:
                exc.what += f"; putting release {good.id} back failed too: {undo.what}"
                exc.exit_code = NEEDS_A_PERSON
                self.row["state"] = "needs-a-person"
                return
        self.release.rolled_back_to = good.id
        exc.what += f"; the stack is back on release {good.id} ({good.commit[:7]}){back}"
        self.row.update(state="rolled-back", rolled_back_to=good.id)
        release_stage.audit(self.session, "rollback", who=self.spec.who, to=good.id, reason="deploy failed",
                            failed_release=self.release.id)

    def record(self) -> None:
        if not self.changed or self.session.conn.lost:
            return
        if self.ok:
            self.release.result = "ok"
            self.row.update(ok=True, state="deployed")
        self.release.finished_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.release.duration = round(time.monotonic() - self.started, 3)
        with interrupt.uninterruptible(), self.log.step("record", self.session.host.label) as info:
            record(self.session, self.release, self.history, self.target)
            release_stage.audit(self.session, "deploy", who=self.spec.who, release=self.release.id,
                                commit=self.release.commit, result=self.release.result)
            info["detail"] = f"release {self.release.id} ({self.release.result})"
        self.row["release"] = self.release.to_record()


def deploy_stack(session: HostSession, project: str, release_id: str) -> None:
    stack_dir = swarm.release_dir(session.state_dir, release_id)
    for _ in range(3):  # a service swarm was updating at the same moment: "update out of sequence", try again
        result = session.conn.run(f"cd {stack_dir} && {swarm.deploy(project, 'stack.yml')}", timeout=600)
        if result.ok or "out of sequence" not in result.out + result.err:
            break
        time.sleep(POLL_SECONDS)
    if not result.ok:
        raise BerthError(f"`docker stack deploy` failed on {session.host.label}",
                         fix="read its output below; berth check lists what a swarm ignores",
                         details="\n".join((result.out + result.err).rstrip().splitlines()[-30:]))


SETTLE_SECONDS = 60


def settle(session: HostSession, project: str) -> None:
    """Until swarm has finished what it is doing to the stack's services (its own rollback after a failed
    update), so that berth's stack deploy does not race it; at most SETTLE_SECONDS."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while time.monotonic() < deadline:
        services = swarm.parse_services(session.conn.run(swarm.inspect_services(project), timeout=60).out, project)
        if not any(s.update in ("updating", "rollback_started") for s in services):
            return
        time.sleep(POLL_SECONDS)


def wait_converged(session: HostSession, project: str, images: dict[str, str], timeout: float) -> str:
    """Until every service runs its image on every replica; ConvergeFailed when swarm gives a service up
    (its update failed and `failure_action: rollback` took it back) or `timeout` passes."""
    deadline = time.monotonic() + timeout
    wanted = {s: i for s, i in images.items() if i}
    while True:
        interrupt.check("converge")
        services = swarm.parse_services(session.conn.run(swarm.inspect_services(project), timeout=60).out, project)
        tasks = swarm.parse_tasks(session.conn.run(swarm.tasks(project), timeout=60).out, services)
        state = swarm.convergence(services, tasks, wanted)
        if state.done:
            running = {s: sum(1 for t in tasks if t.service == s and t.running) for s in wanted}
            nodes = {s: len({t.node for t in tasks if t.service == s and t.running}) for s in wanted}
            return ", ".join(f"{s} {running[s]}/{running[s]} on {nodes[s]} node{'s' * (nodes[s] != 1)}"
                             for s in sorted(wanted))
        if state.gave_up or time.monotonic() > deadline:
            what = ("swarm rolled back " + "; ".join(state.gave_up)) if state.gave_up else (
                f"the stack did not converge within {timeout:.0f}s: " + "; ".join(state.waiting))
            raise ConvergeFailed(f"{what} on {session.host.label}",
                                 fix="`berth status` shows the services and their tasks; fix the release "
                                     "(its healthcheck, its image) and deploy again",
                                 details="\n".join(state.failing) or None)
        time.sleep(POLL_SECONDS)


def return_to(session: HostSession, log: StepLog, good: Release, remote_url: str, target: Target,
              deployed: bool) -> str:
    """The stack, checkout and env file of `good` again (its kept stack file, env files and images)."""
    with log.step("restore", session.host.label) as info:
        sync_stage.sync(session, remote_url, good.commit, good.commit)
        result = session.conn.run(release_commands.restore_env(
            session.state_dir, good.id, f"{session.app_dir}/{target.env_file}", session.app_dir,
            list(good.files or ())), timeout=60)
        if not result.ok:
            raise BerthError(f"could not put back the env file of release {good.id}: {result.tail(300)}")
        info["detail"] = f"release {good.id}: checkout, env file"
    if not deployed:
        return "; nothing had been restarted"
    stack_of = good.extra.get("stack_of") or good.id
    with log.step("stack", session.host.label) as info:
        settle(session, session.compose.project)
        deploy_stack(session, session.compose.project, stack_of)
        info["detail"] = f"release {good.id}'s stack"
    images = {s: (i or {}).get("id") or (i or {}).get("name", "") for s, i in (good.images or {}).items()}
    timeout = float(good.verify_timeout or target.verify_timeout)
    with log.step("converge", session.host.label) as info:
        info["detail"] = wait_converged(session, session.compose.project, images, timeout)
    urls = tuple(good.health_urls or target.health_urls)
    if urls:
        with log.step("verify", session.host.label) as info:
            info["detail"] = verify_urls(session, urls, timeout)
    return ", converged again" + (" and verified" if urls else "")


def verify_urls(session: HostSession, urls: tuple[str, ...], timeout: float) -> str:
    """health_urls once the stack has converged: a localhost URL is fetched on the manager (a task of the service
    runs there, or the routing mesh answers), any other from here; VerifyFailed when one does not answer 2xx."""
    from berth.deploy.stages.verify import wait_for_urls

    results, problem = wait_for_urls(session.conn, urls, time.monotonic() + timeout, timeout)
    if problem:
        raise VerifyFailed(f"verify failed on {session.host.label}: {problem}",
                           fix="`berth status` shows the services and their tasks; fix the release (or health_urls) "
                               "and deploy again")
    return ", ".join(f"{u} → {code}" for u, code in results.items())


def record(session: HostSession, release: Release, history: list[Release], target: Target) -> None:
    """The record and its copies (env file, shipped files); older releases' copies, stacks and swarm objects go."""
    release_stage.record(session, release, env_file=target.env_file if release.ok else None,
                         files=list(release.files or ()) if release.ok else None)
    kept = release_stage.kept_releases([*history, release], target.keep_releases)
    ids = [r.id for r in kept] + [r.extra.get("stack_of") for r in kept if r.extra.get("stack_of")]
    objects = sorted({o for r in [*kept, release] for o in r.extra.get("swarm_objects", [])})
    session.conn.run(release_commands.prune_env_copies(session.state_dir, [i for i in ids if i]), timeout=120)
    session.conn.run(swarm.prune_objects(session.compose.project, objects), timeout=120)
    session.conn.run(compose_engine.prune_kept_images(session.compose.project, [r.commit[:12] for r in kept]),
                     timeout=120)


def image_tag(project: str, service: str, commit: str) -> str:
    """What keeps a release's built image on the manager and the nodes: berth-releases/PROJECT/SERVICE:COMMIT12
    (compose hosts' form, berth.remote.engines.compose.keep_ref, by commit; older releases' tags are pruned)."""
    return compose_engine.keep_ref(project, service, commit[:12])


def run_stack_rollback(target: Target, wanted: str | None, opts, printer, outcome: dict,
                       transport: Callable[[Host], Transport] | None = None) -> dict:
    """`berth rollback` of a swarm stack: a kept release's stack, env files and images, then its checkout."""
    from berth.deploy.decide import describe_release, pick

    log = StepLog(printer)
    outcome.update({"ok": False, "environment": target.environment, "engine": "swarm", "hosts": [],
                    "steps": log.steps})
    remote_url = gitlocal.target_remote_url(target) or ""
    confirm(target, opts.yes, log, action="roll back")
    who = gitlocal.user_identity(target.root)
    manager = target.hosts[0]
    row = {"host": manager.label, "role": "manager", "ok": False}
    outcome["hosts"].append(row)
    with interrupt.deferred():
        conn = connection(target, manager, opts, printer, transport)
        with log.step("connect", manager.label):
            session = connect_stage.connect(target, conn)
        try:
            with lock_stage.held(session, lock_stage.new_owner(who, None, "", "rollback"), log, wait=opts.lock_wait):
                history, _ = release_stage.read_history(session, limit=500)
                running = session.current
                to = pick(history, running, wanted)
                printer.line(f"  rolling back the stack from {describe_release(running)} to release {to.id} "
                             f"({to.commit[:7]} \"{to.subject or ''}\")")
                row.update(rolled_back_from=running.id if running else None, to=to.id)
                return_to(session, log, to, remote_url, target, deployed=True)
                now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                back = Release.from_record(to.to_record())
                back.extra["stack_of"] = to.extra.get("stack_of") or to.id
                back.id = release_stage.new_release_id(to.commit, taken={r.id for r in history})
                back.kind, back.rollback_of, back.reason, back.deployed_by = "rollback", to.id, wanted or "previous", who
                back.started_at = back.finished_at = now
                back.result, back.failure, back.rolled_back_to = "ok", None, None
                with interrupt.uninterruptible(), log.step("record", manager.label) as info:
                    record(session, back, history, target)
                    release_stage.audit(session, "rollback", who=who, to=to.id, release=back.id, reason="manual",
                                        result="ok")
                    info["detail"] = f"release {back.id} (rollback to {to.id}, ok)"
                row.update(ok=True, release=back.to_record(), state="rolled-back-to")
        finally:
            session.close()
    outcome["ok"] = row["ok"]
    return outcome
