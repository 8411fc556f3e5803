"""The `berth` command line: what the user typed, parsed, run, and its result or error printed.

One module per command group (check, deploy, inspect, releases, config, secrets, init, k8s, sandbox);
context.py holds what they share.

Start-up stays fast (`berth --version` ≤ 150 ms): the command modules load when their command is
looked up, and each command imports the rest of berth when it runs.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from berth import __version__
from berth.cli.context import Ctx, error_mask

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

# command name → "module:attribute" under berth.cli, in the order `berth --help` lists them
COMMANDS = {
    "check": "check:check",
    "deploy": "deploy:deploy",
    "plan": "deploy:plan",
    "status": "inspect:status",
    "doctor": "inspect:doctor",
    "logs": "inspect:logs",
    "rollback": "releases:rollback",
    "releases": "releases:releases",
    "audit": "releases:audit",
    "lock": "releases:lock",
    "config": "config:config",
    "secrets": "secrets:secrets",
    "init": "init:init",
    "k8s": "k8s:k8s",
    "sandbox": "sandbox:sandbox",
}


class LazyGroup(click.Group):
    """A group whose commands are imported when they are looked up (click's documented lazy-loading pattern)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*COMMANDS, *(name for name in super().list_commands(ctx) if name not in COMMANDS)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands or cmd_name not in COMMANDS:
            return super().get_command(ctx, cmd_name)
        import importlib

        module, attribute = COMMANDS[cmd_name].split(":")
        command = getattr(importlib.import_module(f"berth.cli.{module}"), attribute)
        self.add_command(command, cmd_name)
        return command


@click.group(cls=LazyGroup, context_settings=CONTEXT)
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
        # a second Ctrl-C (berth.deploy.interrupt), or one before berth touched any server
        click.echo("stopped at once; if a deploy or rollback was changing a server, `berth status` shows what "
                   "it left and `berth deploy` or `berth rollback` completes it", err=True)
        import threading

        if threading.active_count() > 1:  # hosts deployed at once: their threads are not waited for
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(130)
        sys.exit(130)


def _print_error(exc) -> None:
    from berth.ui.output import clean, style

    mask = error_mask()
    # masked and cleaned before berth's own colour is added: the paragraph quotes servers and files
    click.echo(style("error: ", fg="red", bold=True) + clean(mask(exc.paragraph())), err=True)
    if exc.details:
        for line in clean(mask(exc.details)).rstrip().splitlines():
            click.echo(f"  {line}", err=True)
