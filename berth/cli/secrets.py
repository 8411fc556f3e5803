"""`berth secrets generate|rotate`: strong random values for the placeholders of an env file.

Listed in berth/cli/__init__.py's COMMANDS; like every command it imports its modules when it runs. The logic
is berth/secrets/generate.py. Values are printed only with --show; otherwise only key names and what changed.
"""

from __future__ import annotations

import click

ENV_FILE_HELP = "The env file to fill (default: env_file in berth.toml, else .env.docker)."


@click.group("secrets")
def secrets():
    """Generate and rotate the secrets in the app's env file (values never printed without --show)."""


def _render(result, show: bool, dry_run: bool) -> None:
    from berth.ui.output import color_enabled, style

    path = result.path.name
    if result.created_from is not None:
        verb = "would create" if dry_run else "created"
        click.echo(f"{path}: {verb} from {result.created_from.name} (mode {result.mode:04o})")
    elif result.written or (dry_run and any(c.action in ("generated", "updated") for c in result.changes)):
        click.echo(f"{path}: {'would update' if dry_run else 'updated'} (mode {result.mode:04o} kept)")
    else:
        click.echo(f"{path}: nothing to change")
    colors = {"generated": "green", "updated": "green", "needs": "yellow", "kept": "bright_black",
              "skipped": "yellow"}
    width = max((len(c.key) for c in result.changes), default=0)
    for c in result.changes:
        if c.action == "kept" and "weak" not in c.detail and "differs" not in c.detail:
            continue  # a value that is fine needs no line
        action = style(f"{c.action:<9}", fg=colors.get(c.action))
        shown = f" = {c.value}" if show and c.value is not None else ""
        click.echo(f"  {action} {c.key:<{width}}  {c.detail}{shown}", color=color_enabled())
    kept = sum(1 for c in result.changes if c.action == "kept" and "weak" not in c.detail)
    if kept:
        click.echo(f"  ({kept} secret(s) already set, left as they are)")
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    needs = result.needs
    if needs:
        click.echo(f"{len(needs)} key(s) still need a real value: {', '.join(c.key for c in needs)} "
                   f"(berth check refuses to deploy until they are set)")


@secrets.command("generate")
@click.option("--env-file", "env_file", metavar="FILE", help=ENV_FILE_HELP)
@click.option("--from", "example", metavar="FILE",
              help="The example to create the env file from when it does not exist (default: FILE.example).")
@click.option("--show", is_flag=True, help="Print the new values (default: only key names and what changed).")
@click.option("--dry-run", is_flag=True, help="Say what would change; write nothing.")
@click.pass_obj
def generate_cmd(obj, env_file, example, show, dry_run):
    """Fill every placeholder or empty secret with a strong random value.

    Creates the env file from its .example when it does not exist (mode 0600). Keys, JWT secrets and
    tokens get 32 random bytes (hex), passwords 16 (hex, safe inside URLs); a URL's password follows
    its service's password key (DATABASE_URL follows POSTGRES_PASSWORD, REDIS_URL REDIS_PASSWORD).
    Keys only a third party can issue (OPENAI_API_KEY, STRIPE_*, AWS_*...) are listed, not invented.
    Comments, blank lines, order, quoting and the file's mode are kept.
    """
    from berth.scaffold.secrets import generate

    result = generate(obj.project_dir, env_file, example, dry_run=dry_run)
    _render(result, show, dry_run)


@secrets.command("rotate")
@click.argument("name")
@click.option("--env-file", "env_file", metavar="FILE", help=ENV_FILE_HELP)
@click.option("--show", is_flag=True, help="Print the new value(s).")
@click.option("--dry-run", is_flag=True, help="Say what would change; write nothing.")
@click.pass_obj
def rotate_cmd(obj, name, env_file, show, dry_run):
    """Give NAME a new random value, and update the values that depend on it.

    Rotating POSTGRES_PASSWORD also rewrites the password in DATABASE_URL; rotating DATABASE_URL
    rotates the password key it shares with the database. The new value reaches the server with the
    next berth deploy.
    """
    from berth.scaffold.secrets import generate

    result = generate(obj.project_dir, env_file, only=name, dry_run=dry_run)
    _render(result, show, dry_run)
