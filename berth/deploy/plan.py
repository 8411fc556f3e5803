"""`berth plan`: what `berth deploy` would do, rendered from the same steps the deploy runs — touching nothing.

Without a connection the host's facts are assumed (app dir from the settings, compose v2) and the
plan says so; `berth plan --connect` reads them from each host (read-only: no lock, no change).
"""

from __future__ import annotations

from berth.check import run_checks
from berth.check.findings import Severity
from berth.configuration.target import Target
from berth.deploy.spec import DeployOptions
from berth.deploy.steps import RECORD, Facts, deploy_steps
from berth.errors import BerthError
from berth.remote.commands import lock as lock_commands
from berth.secrets.masking import redact_setting, redact_url
from berth.ui.output import render_findings

INDENT = "     "


def render_plan(target: Target, mask=None, facts_by_host: dict[str, Facts] | None = None) -> str:
    """The plan as text; `mask` masks the findings' messages (the caller masks the whole text as well).

    `facts_by_host`: what `--connect` read from each host; hosts not in it get assumed facts.
    """
    from berth.deploy.spec import make_spec

    report = run_checks(target, offline=True)
    ctx = report.context
    out = _settings(target, ctx)
    out.append("")
    n = 1
    out.append(f"{n}. check: {len(report.errors)} errors" + (" — deploy would stop here" if report.errors else ""))
    shown = report.at_least(Severity.WARNING)
    if shown:
        out.extend(INDENT + line for line in render_findings(shown, target.root, mask).splitlines())
    if target.confirm:
        n += 1
        out.append(f"{n}. confirm: type '{target.environment}' (or pass --yes)")
    spec = make_spec(target, DeployOptions(), ctx, strict=False)
    facts = _facts(target, facts_by_host)
    if _engine(target) == "swarm":
        return "\n".join([*out, *_stack_plan(target, spec, facts.facts, n)])
    out.extend(_rollout(target))
    n += 1
    out.append(f"{n}. connect:")
    _block(out, "ssh (ControlMaster, one connection per host): server facts — home, docker, compose v2/v1")
    _block(out, facts.note)
    n += 1
    out.append(f"{n}. lock:")
    _block(out, "(stdin: this run's owner record as JSON; exit 75 when another run holds the lock)")
    _block(out, lock_commands.acquire(facts.facts.state_dir))
    for step in deploy_steps(target):
        if not step.applies_to_plan(target):
            continue
        n += 1
        out.append(f"{n}. {step.name}:")
        for text in step.describe(spec, facts.facts):
            _block(out, text)
    n += 1
    out.append(f"{n}. {RECORD.name}:")
    for text in RECORD.describe(spec, facts.facts):
        _block(out, text)
    n += 1
    out.append(f"{n}. unlock:")
    _block(out, lock_commands.release(facts.facts.state_dir, "TOKEN"))
    out.append("")
    out.append("A failure after sync is a failed release: berth puts back the release that ran before (its checkout, "
               "env file and kept images, verified as it was), records both, and releases the lock.")
    return "\n".join(out)


def _engine(target: Target) -> str:
    try:
        return target.engine
    except BerthError:  # (check reports the setting)
        return "compose"


def _fetched_where(url: str) -> str:
    from berth.deploy.stages.verify import on_the_server, probe_url_on_server_command

    if on_the_server(url):
        return "on the manager: " + probe_url_on_server_command(url)
    return "fetched from here"


def _stack_plan(target: Target, spec, facts: Facts, n: int) -> list[str]:
    """engine = "swarm": the steps berth.deploy.swarm runs on the manager, with their commands."""
    from berth.remote.commands import git as git_commands
    from berth.remote.commands import images as image_commands
    from berth.remote.engines import compose as compose_engine
    from berth.remote.engines import swarm

    project, state = facts.compose.project, facts.state_dir
    built = [s for s in spec.services if s in spec.built]
    tag = f"{compose_engine.KEEP_REPOSITORY}/{project}/SERVICE:{(spec.commit or 'COMMIT')[:12]}"  # deploy.swarm.image_tag
    steps = [
        ("connect", [f"ssh to the manager {_host_labels(target).split(', ')[0]} (ControlMaster)"]),
        ("lock", [lock_commands.acquire(state)]),
        ("swarm", [swarm.node_state(), swarm.nodes()]),
        ("sync", [git_commands.sync(facts.app_dir, spec.remote_url or "REMOTE", spec.commit or "COMMIT", None)]),
        ("env", [f"(stdin: {target.env_file} → {facts.app_dir}/{target.env_file}, mode 0600; and the secret and "
                 "config files git does not carry)"]),
        ("build", [" ".join(facts.compose.build()), image_commands.tag(facts.compose.built_image("SERVICE"), tag)]
         if built else ["(no service is built)"]),
        ("images", [f"on each other node that lacks {tag}: (manager) {image_commands.save(tag)} → (node) "
                    f"{image_commands.load()}",
                    "(each node then untags the images of releases the manager no longer keeps)"]),
        ("stack", ["(stdin: a tar of the stack file berth renders and one env file per service, 0600)",
                   swarm.write_release(state, "RELEASE"),
                   f"cd {swarm.release_dir(state, 'RELEASE')} && {swarm.deploy(project, 'stack.yml')}"]),
        ("converge", [swarm.inspect_services(project), swarm.tasks(project),
                      "(repeat until every service runs its image on every replica, or swarm rolls one back)"]),
        *([("verify", [f"{u}: {_fetched_where(u)}, until it answers 2xx" for u in target.health_urls])]
          if target.health_urls else []),
        ("record", ["(the release record, its env and file copies; older releases' stacks, secrets, configs and "
                    "image tags go)",
                    swarm.prune_objects(project, ["KEPT"]), compose_engine.prune_kept_images(project, ["KEPT"])]),
    ]
    out = [f"then on the swarm manager ({_host_labels(target)}; the others are nodes berth copies images to):"]
    for name, texts in steps:
        n += 1
        out.append(f"{n}. {name}:")
        for text in texts:
            _block(out, text)
    out += ["", "A failure after `stack` puts the whole stack back on the release that ran before (its kept stack file, "
                "env files and images, then its checkout and env file), and records both."]
    return out


def _rollout(target: Target) -> list[str]:
    """Which hosts get the steps, in which batches, running which services (berth.deploy.fleet)."""
    from berth.deploy.fleet import batches

    try:
        hosts, fleet = target.hosts, target.fleet
    except BerthError:  # (check reports the setting)
        return [f"then on each host ({_host_labels(target)}):"]
    if len(hosts) <= 1:
        return [f"then on the host ({_host_labels(target)}):"]
    out = [f"then on each of the {len(hosts)} hosts, in batches (every host of a batch at once):"]
    plan = batches(hosts, fleet)
    for n, batch in enumerate(plan, 1):
        note = " (canary: alone, and it must pass verify)" if batch.canary else ""
        out.append(f"{INDENT}batch {n}: {', '.join(h.label for h in batch.hosts)}{note}")
    if fleet.pause and len(plan) > 1:
        out.append(f"{INDENT}a pause of {fleet.pause}s between batches (batch_pause)")
    for h in hosts:
        if h.roles:
            urls = target.health_urls_of(h)
            out.append(f"{INDENT}{h.label} ({', '.join(h.roles)}) runs {', '.join(h.services) or 'every service'}; "
                       f"verify fetches {', '.join(urls) if urls else 'no URL'}")
    then = ("the hosts it updated go back to the release they ran" if fleet.on_failure == "rollback"
            else "the hosts it updated keep the new release")
    out.append(f"{INDENT}a failure stops the rollout after its batch; {then} (on_failure = \"{fleet.on_failure}\"); "
               "a host that cannot be reached fails alone")
    return out


def _host_labels(target: Target) -> str:
    try:
        return ", ".join(h.label for h in target.hosts) or "no host"
    except BerthError:  # (check reports the setting)
        return "hosts unusable: see the check"


def _block(out: list[str], text: str) -> None:
    out.extend(INDENT + line for line in text.strip().splitlines())


def read_facts(target: Target, trust_new_host: bool, printer) -> dict[str, Facts]:
    """`berth plan --connect`: each host's facts, read as a deploy's connect step reads them (nothing changes)."""
    from berth.remote import session as connect_stage
    from berth.remote.session import debug_hook, ssh_options
    from berth.remote.transport.ssh import SSHConnection

    facts = {}
    for host in target.hosts:
        conn = SSHConnection(host, ssh_options(target, trust_new_host), on_command=debug_hook(printer),
                             mask=printer.mask)
        session = connect_stage.connect(target, conn)
        try:
            facts[host.label] = Facts.of(session)
        finally:
            session.close()
    return facts


class _PlanFacts:
    def __init__(self, facts: Facts, note: str) -> None:
        self.facts, self.note = facts, note


def _facts(target: Target, facts_by_host: dict[str, Facts] | None) -> _PlanFacts:
    """The facts the commands are shown for: the first host's as read, else assumed, with a note saying which."""
    assumed = Facts.assumed(target)
    read = [f for f in (facts_by_host or {}).values() if f.known]
    if not read:
        return _PlanFacts(assumed, "(not connected: compose v1 or v2 is unknown until berth connects; shown for "
                                   "compose v2; '~' in paths is the server user's home; `berth plan --connect` reads "
                                   "each host)")
    variants = sorted({f"{f.compose.variant}" for f in read})
    note = f"(read from {len(read)} host{'s' * (len(read) != 1)}: compose {', '.join(variants)}"
    if len(variants) > 1:
        note += "; shown for the first host, the others run the same steps with their compose"
    return _PlanFacts(read[0], note + ")")


def _settings(target: Target, ctx) -> list[str]:
    out = [f"environment  {target.environment}" + ("  (asks for confirmation)" if target.confirm else "")]
    for name in ("hosts", "user", "key", "port", "app_dir", "remote", "branch", "health_urls"):
        value = target.get(name)
        if value not in (None, [], ""):
            # by position: a setting's value is shown without the credentials it carries
            shown = ", ".join(map(str, map(redact_setting, value))) if isinstance(value, list) else redact_setting(value)
            out.append(f"{name:<12} {shown}  ← {target.where(name)}")
    if not target.get("app_dir"):
        out.append(f"{'app_dir':<12} {target.app_dir}  ← default")
    out.append(f"{'project':<12} {target.project}")
    remote_shown = redact_url(ctx.remote_url) if ctx.remote_url else "(no remote)"
    out.append(f"{'commit':<12} {ctx.head or '(none)'} on {ctx.branch or '(no branch)'} → {remote_shown}")
    return out
