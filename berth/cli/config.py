"""`berth config`: the resolved compose model and the deployment settings, as the server will see them.

Listed in berth/cli/__init__.py's COMMANDS; like every command it imports its modules when it runs.
"""

from __future__ import annotations

import click


@click.command("config")
@click.option("-e", "--environment", "environment",
              help="Environment to show (the same as berth's global -e; given here it wins).")
@click.option("--format", "fmt", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True,
              help="Output format.")
@click.option("--show-secrets", is_flag=True,
              help="Print secret values (keys like *_PASSWORD, *_TOKEN, *_KEY, passwords in URLs) instead of ****.")
@click.pass_obj
def config(obj, environment, fmt, show_secrets):
    """Show the compose model compose will run (like `docker compose config`) and the deployment settings.

    Variables are interpolated with the env file berth ships, env_file: contents are merged into
    environment, compose's defaults are filled in, and the settings under x-berth say where each
    came from. Secret values are masked unless --show-secrets. Touches no server and needs no docker.
    """
    from berth.configuration.document import config_document, render
    from berth.configuration.target import load_target
    if environment:
        target = load_target(obj.project_dir, environment, obj.hosts)
    else:
        target = obj.target()
    origin = "-e" if environment or getattr(obj, "environment", None) else None
    doc = config_document(target, show_secrets=show_secrets, environment_from=origin)
    # masked by position in config_document (a substring pass over the rendered text would cut into names);
    # every string of the model is masked, so no path the model does not know can carry a secret
    click.echo(render(doc, fmt).rstrip("\n"))
