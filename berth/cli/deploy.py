"""`berth deploy` and `berth plan`: the pipeline, run or rendered."""

from __future__ import annotations

import click

from berth.cli.context import Ctx, report_outcome, target_options


@click.command()
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
    from berth.deploy.pipeline import DeployOptions, run_deploy

    target = obj.target()
    printer = obj.printer(quiet=as_json)
    hosts = ", ".join(h.label for h in target.hosts) or "(no host)"
    printer.line(f"berth deploy → {target.environment} ({hosts})")
    opts = DeployOptions(push=push, yes=yes, trust_new_host=trust_new_host, verify_timeout=verify_timeout,
                         lock_wait=lock_wait, rollback=not no_rollback)
    report_outcome(printer, as_json, lambda outcome: run_deploy(target, opts, printer, outcome),
                   lambda o: f"deployed {o['commit'][:7]} to {target.environment} in {o['seconds']:.1f}s")


@click.command()
@target_options
@click.option("--connect", is_flag=True,
              help="Read each host's facts (home, compose v1 or v2) to show the commands exactly; changes nothing.")
@click.option("--trust-new-host", is_flag=True, help="Accept the host key of a server never connected to before.")
@click.pass_obj
def plan(obj: Ctx, connect, trust_new_host):
    """Show what deploy would do — settings, checks, and the commands of every step — touching nothing."""
    from berth.deploy.plan import read_facts, render_plan

    target = obj.target()
    printer = obj.printer()
    facts = read_facts(target, trust_new_host, printer) if connect else None
    printer.echo(render_plan(target, printer.mask, facts))
