"""The `berth` command line. Start-up stays fast: each command imports what it needs when it runs."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from berth import __version__
from berth.cli_options import target_options

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class Ctx:
    def __init__(self, project_dir: Path, environment: str | None, hosts: tuple[str, ...], verbose: bool):
        self.project_dir = project_dir
        self.environment = environment
        self.hosts = hosts
        self.verbose = verbose

    def target(self):
        from berth.config import load_target

        return load_target(self.project_dir, self.environment, self.hosts)


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, "-V", "--version", prog_name="berth")
@click.option("-C", "--project-dir", type=click.Path(file_okay=False, path_type=Path), default=".",
              help="The app's repository (default: the current directory).")
@click.option("-e", "--environment", help="Environment to act on (overrides ENVIRONMENT in .env).")
@click.option("--host", "hosts", multiple=True, help="Act on this host only (repeatable; overrides berth.toml and .env).")
@click.option("-v", "--verbose", is_flag=True, help="Show every remote command and its output (secrets masked).")
@click.pass_context
def cli(ctx, project_dir, environment, hosts, verbose):
    """Ship a docker-compose app to your own servers: check, sync by git, ship env, deploy, verify, record."""
    ctx.obj = Ctx(project_dir, environment, hosts, verbose)


_active_masker = None  # the masker of the command that is running, so errors are masked too


def _printer(obj: Ctx, quiet: bool = False):
    global _active_masker
    from berth.output import StepPrinter
    from berth.pipeline import masker_for

    try:
        masker = masker_for(obj.target())
    except Exception:  # noqa: BLE001 - masking must never be the reason a command fails
        from berth.secrets import Masker

        masker = Masker()
    _active_masker = masker
    return StepPrinter(masker, quiet=quiet, verbose=obj.verbose)


MAX_SHOWN_PER_FILE = 100  # check's text output: a 10 MB junk file must not print 200,000 lines


@cli.command()
@target_options
@click.option("--format", "fmt", type=click.Choice(["text", "json", "sarif", "github"]), default="text",
              show_default=True,
              help="text: file:line:col lines for people; json; sarif (SARIF 2.1.0, for code scanning); "
                   "github (GitHub Actions annotations).")
@click.option("--fail-on", type=click.Choice(["error", "warning", "info"]), default=None,
              help="Exit 1 when a finding at or above this severity exists (default: fail_on in berth.toml "
                   "[check], else error).")
@click.option("--offline", is_flag=True, help="Skip checks that ask the git remote (is HEAD pushed?).")
@click.option("--skip", "skip", multiple=True, metavar="RULE",
              help="Do not run this rule (an id, an area such as 'secrets', or a glob). Repeatable.")
@click.option("--list-rules", is_flag=True, help="List every rule with its id, severity and fix, then exit.")
@click.pass_obj
def check(obj: Ctx, fmt, fail_on, offline, skip, list_rules):
    """Validate files, env vars, compose interpolation, secrets and git state — locally, touching no server.

    Exit status: 0 no finding at or above --fail-on; 1 there is one (a malformed compose or env file
    is such a finding, files.unreadable); 2 bad usage or input berth needs before it can check:
    flags, berth.toml (including its [check] table), .env, the project directory.
    """
    global _active_masker
    import berth.check.rules  # noqa: F401  (registers the rules)
    from berth.check import run_checks
    from berth.check.findings import RULES, Severity, rules_matching
    from berth.output import color_enabled

    if list_rules:
        from berth.check import formats
        from berth.output import render_rules

        rules = RULES.values()
        if fmt == "json":
            click.echo(formats.rules_json(rules))
        elif fmt == "sarif":
            import json as _json

            click.echo(_json.dumps(formats.sarif_log([], [], obj.project_dir.resolve()), indent=2))
        else:
            click.echo(render_rules(rules), color=color_enabled())
        return
    skipped: set[str] = set()
    for selector in skip:
        ids = rules_matching(selector)
        if not ids:
            raise click.BadParameter(f"'{selector}' is not a rule id, area or glob (berth check --list-rules lists them)",
                                     param_hint="--skip")
        skipped.update(ids)
    target = obj.target()  # .env and berth.toml: bounded reads; one that cannot be read is exit 2
    report = run_checks(target, skip=skipped, offline=offline)
    # the masker comes from the env and compose files the check already parsed (parsing again is slow on big files)
    from berth.pipeline import masker_for

    env = report.context.app_env
    try:
        mask = masker_for(target, env.values() if env is not None else {}, report.context.compose_files)
    except Exception:  # noqa: BLE001 - masking must never be the reason a command fails
        from berth.secrets import Masker, secret_values

        mask = Masker(secret_values(env.values())) if env is not None else Masker()
    _active_masker = mask
    threshold = Severity[fail_on.upper()] if fail_on else (report.config.fail_on or Severity.ERROR)
    exit_code = 1 if report.at_least(threshold) else 0
    if fmt == "text":
        from berth.output import render_check_summary, render_findings

        if report.findings:
            click.echo(render_findings(report.findings, target.root, mask, max_per_file=MAX_SHOWN_PER_FILE),
                       color=color_enabled())
        click.echo(render_check_summary(report, target.environment), color=color_enabled())
    else:
        from berth.check import formats

        if fmt == "json":
            click.echo(formats.to_json(report, target, fail_on=threshold, exit_code=exit_code, mask=mask))
        elif fmt == "sarif":
            click.echo(formats.to_sarif(report, target, exit_code=exit_code, mask=mask))
        else:
            from berth.output import render_check_summary

            annotations = formats.to_github(report.findings, target.root, mask=mask, max_per_file=MAX_SHOWN_PER_FILE)
            if annotations:
                click.echo(annotations)
            click.echo(render_check_summary(report, target.environment, color=False))
    if exit_code:
        sys.exit(exit_code)


@cli.command()
@target_options
@click.option("--push", is_flag=True, help="Push HEAD to the git remote first if it is not there yet.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation (production asks otherwise).")
@click.option("--trust-new-host", is_flag=True,
              help="Accept the host key of a server never connected to before (trust on first use). "
                   "A changed key is refused regardless.")
@click.option("--timeout", "verify_timeout", type=click.IntRange(1, 3600),
              help="Seconds verify waits for health (default 90 or verify_timeout).")
@click.option("--lock-wait", type=click.FloatRange(0, 86400), default=0,
              help="Seconds to wait when another deploy holds the host's lock (default: refuse at once).")
@click.option("--no-rollback", is_flag=True, help="When verify fails, keep the failed release running for debugging.")
@click.option("--json", "as_json", is_flag=True, help="Print one machine-readable result instead of the steps.")
@click.pass_obj
def deploy(obj: Ctx, push, yes, trust_new_host, verify_timeout, lock_wait, no_rollback, as_json):
    """Check, sync by git, ship env, docker compose up, verify, record."""
    from berth.errors import BerthError
    from berth.pipeline import DeployOptions, run_deploy

    target = obj.target()
    printer = _printer(obj, quiet=as_json)
    hosts = ", ".join(h.label for h in target.hosts) or "(no host)"
    printer.line(f"berth deploy → {target.environment} ({hosts})")
    outcome: dict = {}
    opts = DeployOptions(push=push, yes=yes, trust_new_host=trust_new_host, verify_timeout=verify_timeout,
                         lock_wait=lock_wait, rollback=not no_rollback)
    try:
        run_deploy(target, opts, printer, outcome)
    except BerthError as exc:
        outcome.update(ok=False, exit_code=exc.exit_code, error=exc.paragraph())
        if as_json:
            printer.json(outcome)
            sys.exit(exc.exit_code)
        raise
    outcome.update(exit_code=0, error=None)
    if as_json:
        printer.json(outcome)
    else:
        printer.line(f"deployed {outcome['commit'][:7]} to {target.environment} in {outcome['seconds']:.1f}s")


@cli.command()
@target_options
@click.pass_obj
def plan(obj: Ctx):
    """Show what deploy would do — settings, checks, and the exact remote commands — touching nothing."""
    from berth.plan import render_plan

    target = obj.target()
    printer = _printer(obj)
    printer.echo(render_plan(target, printer.mask))


@cli.command()
@target_options
@click.option("--trust-new-host", is_flag=True, help="Accept the host key of a server never connected to before.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def status(obj: Ctx, trust_new_host, as_json):
    """What runs where: the current release and every service's state on each host."""
    from berth.status import collect_status, render_status

    target = obj.target()
    printer = _printer(obj)
    rows = collect_status(target, trust_new_host, printer)
    if as_json:
        printer.json(rows)
    else:
        printer.echo(render_status(rows))
    if not all(r.get("healthy") for r in rows):
        if not as_json:
            click.echo("not healthy: `berth doctor` says why and how to fix it", err=True)
        sys.exit(1)


@cli.command()
@target_options
@click.option("--trust-new-host", is_flag=True, help="Accept the host key of a server never connected to before.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document: every check of every host.")
@click.pass_obj
def doctor(obj: Ctx, trust_new_host, as_json):
    """Find out why a deploy is unhealthy: each failed check says the likely cause and the fix.

    Read-only. Checks SSH and the key file, the docker daemon and compose, the checkout and its
    git remote, the env file, every container (running, healthy, crash loops with their last log
    lines, the variables compose gives it), Postgres and Redis reached from the app's container,
    disk and memory, published ports and the health URLs. Exit code 1 when a check fails.
    """
    from berth.doctor import render, run_doctor
    from berth.pipeline import debug_hook

    target = obj.target()
    printer = _printer(obj)
    rows = run_doctor(target, trust_new_host, on_command=debug_hook(printer))
    if as_json:
        printer.json(rows)
    else:
        printer.echo(render(rows, verbose=obj.verbose), nl=False)
    if not all(r["ok"] for r in rows):
        sys.exit(1)


@cli.command()
@target_options
@click.argument("services", nargs=-1)
@click.option("-n", "--tail", default=100, show_default=True, help="Lines from the end of each log.")
@click.option("-f", "--follow", is_flag=True, help="Keep streaming new lines.")
@click.option("--trust-new-host", is_flag=True)
@click.pass_obj
def logs(obj: Ctx, services, tail, follow, trust_new_host):
    """Service logs from the server (secret values masked)."""
    from berth.status import stream_logs

    target = obj.target()
    printer = _printer(obj)
    sys.exit(stream_logs(target, services, tail, follow, trust_new_host, printer))


@cli.group()
def sandbox():
    """Local test servers: network namespaces with sshd, a docker engine and a git remote (root)."""


@sandbox.command("up")
@click.option("--hosts", default=1, show_default=True, help="How many test servers.")
@click.option("--repo", default="app", show_default=True, help="Name of the bare git repo to create.")
@click.option("--compose-v1", "compose_v1", multiple=True, type=int, metavar="N",
              help="Host N has only Compose v1 (docker-compose), like an older server. Repeatable.")
def sandbox_up(hosts, repo, compose_v1):
    """Create the test servers and print the .env values to use."""
    from berth import sandbox as sb

    box = sb.up(hosts, repo, tuple(compose_v1))
    click.echo(f"sandbox up: {len(box.hosts)} host(s); git remote {box.remote}")
    for h in box.hosts:
        click.echo(f"  {h.name}: ssh {h.user}@{h.address} (key {box.key}), docker {h.docker_host}")
    click.echo("\n# .env values for the first host:")
    click.echo(box.env_lines())


@sandbox.command("down")
def sandbox_down():
    """Stop the test servers and remove their namespaces, users and data."""
    from berth import sandbox as sb

    removed = sb.down()
    click.echo(f"sandbox down: removed {', '.join(removed) if removed else 'nothing (was not up)'}")


@sandbox.command("status")
def sandbox_status():
    """Show whether each test server's sshd and docker engine are running."""
    from berth import sandbox as sb

    rows = sb.status()
    if not rows:
        click.echo("sandbox is not up (berth sandbox up starts it)")
        sys.exit(1)
    for r in rows:
        click.echo(f"{r['host']}: {r['user']}@{r['address']} sshd={'up' if r['sshd'] else 'DOWN'} "
                   f"docker={'up' if r['docker'] else 'DOWN'}")
    if not all(r["sshd"] and r["docker"] for r in rows):
        sys.exit(1)


def _register_more() -> None:
    from berth.cli_release import COMMANDS
    from berth.config_cmd import config as config_command
    from berth.init_cmd import init
    from berth.k8s.cli import k8s as k8s_group
    from berth.secrets_cmd import secrets

    for command in [*COMMANDS, k8s_group, config_command, secrets, init]:
        cli.add_command(command)


_register_more()


def main() -> None:
    from berth.errors import BerthError

    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.exceptions.ClickException as exc:
        exc.show()
        sys.exit(2 if isinstance(exc, click.UsageError) else exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except BerthError as exc:
        _print_error(exc)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        # a second Ctrl-C (berth.interrupt), or one before berth touched any server
        click.echo("stopped at once; if a deploy or rollback was changing a server, `berth status` shows what "
                   "it left and `berth deploy` or `berth rollback` completes it", err=True)
        sys.exit(130)


def _print_error(exc) -> None:
    from berth.output import clean, style

    mask = _active_masker or (lambda text: text)
    # masked and cleaned before berth's own colour is added: the paragraph quotes servers and files
    click.echo(style("error: ", fg="red", bold=True) + clean(mask(exc.paragraph())), err=True)
    if exc.details:
        for line in clean(mask(exc.details)).rstrip().splitlines():
            click.echo(f"  {line}", err=True)
