"""`berth sandbox`: local test servers for berth's own tests and demo (root)."""

from __future__ import annotations

import sys

import click


@click.group()
def sandbox():
    """Local test servers: network namespaces with sshd, a docker engine and a git remote (root)."""


@sandbox.command("up")
@click.option("--hosts", default=1, show_default=True, help="How many test servers.")
@click.option("--repo", default="app", show_default=True, help="Name of the bare git repo to create.")
@click.option("--compose-v1", "compose_v1", multiple=True, type=int, metavar="N",
              help="Host N has only Compose v1 (docker-compose), like an older server. Repeatable.")
@click.option("--swarm", is_flag=True, help="The engines form a Docker Swarm: host 1 the manager, the rest workers.")
def sandbox_up(hosts, repo, compose_v1, swarm):
    """Create the test servers and print the .env values to use."""
    from berth import sandbox as sb

    box = sb.up(hosts, repo, tuple(compose_v1), swarm=swarm)
    click.echo(f"sandbox up: {len(box.hosts)} host(s){' as a swarm (h1 the manager)' if swarm else ''}; "
               f"git remote {box.remote}")
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
