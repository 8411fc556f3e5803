"""Options every command that acts on servers accepts after its name too (`berth doctor -e production`),
as well as before it (`berth -e production doctor`): people type both."""

from __future__ import annotations

import click


def _set(attribute: str):
    def callback(ctx: click.Context, _param, value):
        if value:
            setattr(ctx.find_root().obj, attribute, tuple(value) if isinstance(value, (list, tuple)) else value)
    return callback


def target_options(command):
    command = click.option("--host", "hosts", multiple=True, expose_value=False, callback=_set("hosts"),
                           help="Act on this host only (repeatable; overrides berth.toml and .env).")(command)
    return click.option("-e", "--environment", expose_value=False, callback=_set("environment"),
                        help="Environment to act on (overrides ENVIRONMENT in .env).")(command)
