"""`berth plan`: what `berth deploy` would do, with the exact remote commands — touching nothing."""

from __future__ import annotations

from berth.check import run_checks
from berth.check.findings import Severity
from berth.commands import files as file_commands
from berth.commands import git as git_commands
from berth.commands import release as release_commands
from berth.config import Target
from berth.engines.compose import Compose, in_dir
from berth.gitlocal import public_url
from berth.output import render_findings
from berth.secrets import redact_setting, redact_url


def render_plan(target: Target, mask=None) -> str:
    """The plan as text; `mask` masks the findings' messages (the caller masks the whole text as well)."""
    report = run_checks(target, offline=True)
    ctx = report.context
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
    shown = report.at_least(Severity.WARNING)
    out.append("")
    steps_before = [("check", f"{len(report.errors)} errors" + (" — deploy would stop here" if report.errors else ""))]
    if target.confirm:
        steps_before.append(("confirm", f"type '{target.environment}' (or pass --yes)"))
    compose = Compose("v2", target.project, target.compose_files, target.env_file)
    app = target.app_dir
    # the script as the first deploy to a host runs it (later ones also pass the running release's commit)
    sync = (git_commands.sync(app, ctx.remote_url or "REMOTE", ctx.head) if ctx.head
            else "(no commit to check out: the check stops the deploy)")
    steps = [
        ("connect", "ssh (ControlMaster, one connection per host): server facts — home, docker, compose v2/v1"),
        ("sync", sync),
        ("env", f"{target.env_file} on stdin → " + file_commands.write_private_file(f"{app}/{target.env_file}")),
        ("deploy", in_dir(app, compose.build()) + "   (skipped when the running release has this commit)\n"
                   + in_dir(app, compose.up())),
        ("verify", compose.inspect_containers() + "\n(repeat until healthy or timeout) then GET "
                   + (", ".join(target.health_urls) or "(no health URL configured)")),
        ("record", "release JSON on stdin → " + release_commands.record(f"~/.berth/{target.project}", "RELEASE_ID", True)),
    ]
    for n, (name, text) in enumerate(steps_before, 1):
        out.append(f"{n}. {name}: {text}")
        if name == "check" and shown:
            out.extend("     " + line for line in render_findings(shown, target.root, mask).splitlines())
    for n, (name, text) in enumerate(steps, len(steps_before) + 1):
        out.append(f"{n}. {name}:")
        out.extend("     " + line for line in text.strip().splitlines())
    out.append("\n(app_dir '~' is resolved to the server user's home when connecting; compose v1 is used where v2 is missing)")
    return "\n".join(line for line in out if line is not None)
