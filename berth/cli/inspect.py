"""`berth status`, `berth doctor`, `berth logs`: what runs on the servers, read-only."""

from __future__ import annotations

import sys

import click

from berth.cli.context import Ctx, target_options


@click.command()
@target_options
@click.option("--trust-new-host", is_flag=True, help="Accept the host key of a server never connected to before.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def status(obj: Ctx, trust_new_host, as_json):
    """What runs where: the current release and every service's state on each host."""
    from berth.ops.status import collect_status, render_status

    target = obj.target()
    printer = obj.printer()
    rows = collect_status(target, trust_new_host, printer)
    if as_json:
        printer.json(rows)
    else:
        printer.echo(render_status(rows))
    if not all(r.get("healthy") for r in rows):
        if not as_json:
            click.echo("not healthy: `berth doctor` says why and how to fix it", err=True)
        sys.exit(1)


@click.command()
@target_options
@click.option("--trust-new-host", is_flag=True, help="Accept the host key of a server never connected to before.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document: every check of every host.")
@click.option("-v", "--verbose", "list_ok", is_flag=True, help="List the checks that passed too.")
@click.pass_obj
def doctor(obj: Ctx, trust_new_host, as_json, list_ok):
    """Find out why a deploy is unhealthy: each failed check says the likely cause and the fix.

    Read-only. Checks SSH and the key file, the docker daemon and compose, the checkout and its
    git remote, the env file, every container (running, healthy, crash loops with their last log
    lines, the variables compose gives it), Postgres and Redis reached from the app's container,
    disk and memory, published ports and the health URLs. Exit code 1 when a check fails.
    """
    from berth.ops.doctor import render, run_doctor
    from berth.remote.session import debug_hook

    target = obj.target()
    printer = obj.printer()
    rows = run_doctor(target, trust_new_host, on_command=debug_hook(printer))
    if as_json:
        printer.json(rows)
    else:
        printer.echo(render(rows, verbose=obj.verbose or list_ok), nl=False)
    if not all(r["ok"] for r in rows):
        sys.exit(1)


@click.command()
@target_options
@click.argument("services", nargs=-1)
@click.option("-n", "--tail", default=100, show_default=True, help="Lines from the end of each log.")
@click.option("-f", "--follow", is_flag=True, help="Keep streaming new lines.")
@click.option("--trust-new-host", is_flag=True)
@click.pass_obj
def logs(obj: Ctx, services, tail, follow, trust_new_host):
    """Service logs from the server (secret values masked)."""
    from berth.ops.status import stream_logs

    target = obj.target()
    printer = obj.printer()
    sys.exit(stream_logs(target, services, tail, follow, trust_new_host, printer))
