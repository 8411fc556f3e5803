"""`berth init`: write the deployment files a repository lacks (berth/scaffold/project.py has the logic).

Listed in berth/cli/__init__.py's COMMANDS; like every command it imports its modules when it runs.
"""

from __future__ import annotations

import click


@click.command("init")
@click.option("--dry-run", is_flag=True, help="Show a unified diff of what would change; write nothing.")
@click.option("--force", is_flag=True, help="Replace files that exist (default: never overwrite).")
@click.option("--with-toml", is_flag=True, help="Also write berth.toml with a staging and a production environment.")
@click.pass_obj
def init(obj, dry_run, force, with_toml):
    """Inspect the repository and write what deploying it needs, skipping what exists.

    Detects Python (FastAPI, Django, Flask), Node, Go or a static site, and PostgreSQL/Redis from the
    dependencies. Writes docker-compose.yml (healthchecks, restart policy, limits, an internal backend
    network, named volumes), a multi-stage Dockerfile with a non-root user and HEALTHCHECK,
    .env.example and .env.docker.example (every variable, a comment and a placeholder each),
    .gitignore entries for env files and keys, and docs/DEPLOYMENT.md. Then: berth secrets generate.
    """
    from berth.scaffold.project import apply, diff, plan

    stack, planned = plan(obj.project_dir, force=force, with_toml=with_toml)
    click.echo(f"berth init: {'; '.join(stack.evidence) or 'nothing recognised'}")
    if dry_run:
        text = diff(planned)
        if text:
            click.echo(text, nl=False)
    else:
        apply(obj.project_dir, planned)
    verbs = {"create": "would create" if dry_run else "created", "replace": "would replace" if dry_run else "replaced",
             "update": "would update" if dry_run else "updated", "skip": "kept", "same": "unchanged"}
    width = max(len(p.path) for p in planned)
    for p in planned:
        reason = f"  {p.reason}" if p.reason else ""
        click.echo(f"  {verbs[p.action]:<13} {p.path:<{width}}{reason}")
    changed = [p for p in planned if p.action in ("create", "replace", "update")]
    if not changed:
        click.echo("nothing to write: every file exists")
    elif not dry_run:
        click.echo("next: cp .env.example .env (fill it in), berth secrets generate, berth check, commit, "
                   "berth deploy --push (docs/DEPLOYMENT.md)")
