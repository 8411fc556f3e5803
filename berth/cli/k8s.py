"""`berth k8s`: render, check, apply and roll back the compose app on Kubernetes.

Only click is imported at module level (berth --version stays fast); each command imports its modules.
Listed in berth/cli/__init__.py's COMMANDS; the global -C/-e/-v of `berth` apply, and each
command also takes -e itself (`berth k8s render -e production`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from berth.cli.context import ctx_of

FAIL_ON = click.Choice(["error", "warning", "info"])


def _target(ctx: click.Context, environment: str | None):
    return ctx_of(ctx).target(environment)


def _settings(target):
    from berth.k8s.settings import load_settings

    return load_settings(target.root, target.environment, target.project)


def _printer(ctx: click.Context, target, quiet: bool = False):
    return ctx_of(ctx).printer(target, quiet)


env_option = click.option("-e", "--environment", help="Environment (overrides berth's -e and ENVIRONMENT in .env).")
tag_option = click.option("--tag", help="Image tag for services that only build: (default: tag in [kubernetes], "
                                        "else the git HEAD commit).")
monitoring_option = click.option("--monitoring", is_flag=True,
                                 help="Add Prometheus scrape annotations for services with metrics_path/metrics_port.")


@click.group()
def k8s():
    """Kubernetes: render the compose app as manifests, check them offline, apply and roll back with kubectl."""


@k8s.command()
@env_option
@click.option("-o", "--output", "out_dir", type=click.Path(path_type=Path),
              help="Write one file per service into this directory (default: print one YAML stream).")
@tag_option
@monitoring_option
@click.pass_context
def render(ctx, environment, out_dir, tag, monitoring):
    """Manifests from docker-compose.yml, the env files and berth.toml. Secrets are never written: apply builds them."""
    from berth.k8s.render import render as do_render
    from berth.ui.output import render_findings

    target = _target(ctx, environment)
    settings = _settings(target)
    printer = _printer(ctx, target)
    rendered = do_render(target, settings, tag=tag, monitoring=monitoring)
    notes = render_findings(rendered.findings, target.root, printer.mask)
    if out_dir is not None:
        from berth.k8s.manifests import write_dir

        files = rendered.files()
        _assert_no_secret(rendered)
        written = write_dir(out_dir, files)
        if notes:
            click.echo(notes)
        click.echo(f"rendered {len(rendered.docs())} objects for {target.environment} (namespace "
                   f"{rendered.namespace}) into {out_dir}: {', '.join(p.name for p in written)}")
        if rendered.secrets:
            click.echo(f"not written: Secret {', '.join(sorted(rendered.secrets))} — berth k8s apply builds "
                       "them in memory")
    else:
        text = rendered.stream()
        _assert_no_secret(rendered)
        click.echo(text, nl=False)
        if notes:
            click.echo(notes, err=True)


def _assert_no_secret(rendered) -> None:
    """A last guard: nothing render prints or writes may carry a secret outside a Secret (found by position:
    Rendered.secret_leaks)."""
    leaks = rendered.secret_leaks()
    if leaks:
        from berth.errors import BerthError

        raise BerthError("refusing to write manifests: a secret value would appear outside a Secret",
                         fix="pass the secret to the container through environment: (it becomes a Secret) and refer "
                             "to it as $(NAME) in command/args; or mark the key as secret (secret_keys in "
                             "[kubernetes] of berth.toml)",
                         details="\n".join(leaks[:20]))


@k8s.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@env_option
@click.option("--kube-version", "kube_versions", multiple=True, metavar="1.XX",
              help="Validate against this Kubernetes version (repeatable; 'newest' = the newest shipped). "
                   "Default: kube_versions in [kubernetes], else 1.30 and the newest.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--fail-on", type=FAIL_ON, default="error", show_default=True,
              help="Exit 1 when a finding at or above this severity exists.")
@click.option("--list-rules", is_flag=True, help="List every rule with its id, severity and fix, then exit.")
@tag_option
@monitoring_option
@click.pass_context
def check(ctx, paths, environment, kube_versions, fmt, fail_on, list_rules, tag, monitoring):
    """Validate manifests offline (Kubernetes schemas + best practices). Without PATH: what render would produce."""
    from berth.check.findings import Severity
    from berth.k8s.check import K8S_RULES, check_paths, check_rendered
    from berth.k8s.settings import DEFAULT_KUBE_VERSIONS
    from berth.ui.output import render_findings

    if list_rules:
        for r in K8S_RULES.values():
            click.echo(f"{r.id:<24} {str(r.severity):<8} {r.summary}\n{'':<33}fix: {r.fix}")
        return
    threshold = Severity[fail_on.upper()]
    root = Path(ctx_of(ctx).project_dir or ".").resolve()
    render_notes = []
    if paths:
        from berth.secrets.masking import Masker

        mask = Masker()
        versions = tuple(kube_versions) or _versions_from_config(ctx, environment) or DEFAULT_KUBE_VERSIONS
        report = check_paths(list(paths), versions)
        label = ", ".join(str(p) for p in paths)
        root = Path.cwd()
    else:
        from berth.k8s.render import render as do_render

        target = _target(ctx, environment)
        settings = _settings(target)
        mask = _printer(ctx, target).mask
        rendered = do_render(target, settings, tag=tag, monitoring=monitoring)
        render_notes = [f for f in rendered.findings if f.severity >= Severity.WARNING]
        report = check_rendered(rendered, tuple(kube_versions) or settings.kube_versions)
        label = f"the manifests rendered for {target.environment}"
    if fmt == "json":
        from berth.secrets.masking import dumps_masked

        click.echo(dumps_masked({
            "versions": list(report.versions),
            "documents": report.documents,
            "findings": [f.as_dict(root) for f in report.findings],
            "render_notes": [f.as_dict(root) for f in render_notes],
            "counts": report.counts(),
        }, mask))
    else:
        if report.findings:
            click.echo(render_findings(report.findings, root, mask))
        c = report.counts()
        click.echo(f"{report.rules_run} rules, {report.documents} objects in {label}, Kubernetes "
                   f"{', '.join(report.versions)}: {c['error']} errors, {c['warning']} warnings, {c['info']} info")
    if report.at_least(threshold):
        sys.exit(1)


def _versions_from_config(ctx, environment) -> tuple[str, ...]:
    """kube_versions from berth.toml when PATHs are checked inside a project; () when there is none."""
    obj = ctx_of(ctx)
    root = Path(getattr(obj, "project_dir", None) or ".")
    if not (root / "berth.toml").exists():
        return ()
    from berth.configuration.target import toml_section
    from berth.k8s.settings import validate_table

    table = toml_section(root, "kubernetes")
    validate_table(table, str(root / "berth.toml"))
    env = environment or getattr(obj, "environment", None)
    versions = (table.get("environments", {}).get(env, {}) if env else {}).get("kube_versions") or table.get("kube_versions")
    return tuple(versions or ())


def _run(ctx, environment, fn, opts, as_json: bool, title: str):
    from berth.errors import BerthError

    target = _target(ctx, environment)
    settings = _settings(target)
    printer = _printer(ctx, target, quiet=as_json)
    printer.line(f"berth k8s {title} → {target.environment} (namespace {settings.namespace})")
    try:
        outcome = fn(target, settings, opts, printer)
    except BerthError as exc:
        if as_json:
            printer.json({"ok": False, "environment": target.environment, "error": exc.paragraph()})
            sys.exit(exc.exit_code)
        raise
    calls = outcome.pop("calls", [])
    if as_json:
        outcome["kubectl"] = [c.describe() for c in calls]
        printer.json(outcome)
    return outcome, printer


@k8s.command()
@env_option
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation (production asks otherwise).")
@click.option("--timeout", type=click.IntRange(1, 7200), help="Seconds each rollout may take (default rollout_timeout, 300).")
@click.option("--json", "as_json", is_flag=True, help="Print one machine-readable result instead of the steps.")
@tag_option
@monitoring_option
@click.pass_context
def apply(ctx, environment, yes, timeout, as_json, tag, monitoring):
    """Render (Secrets in memory), check, then kubectl apply --server-side with the manifests on stdin; wait for the rollout."""
    from berth.k8s.apply import ApplyOptions, run_apply

    opts = ApplyOptions(yes=yes, tag=tag, monitoring=monitoring, timeout=timeout)
    outcome, printer = _run(ctx, environment, run_apply, opts, as_json, "apply")
    if not as_json:
        printer.line(f"applied release {outcome['release']} to {outcome['environment']} in {outcome['seconds']:.1f}s")


@k8s.command()
@env_option
@click.option("--service", "services", multiple=True, metavar="NAME",
              help="Roll back this service (repeatable). Default: the workloads the last apply changed.")
@click.option("--to-revision", type=click.IntRange(1), help="Go to this revision (kubectl rollout history) instead of the previous one.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation (production asks otherwise).")
@click.option("--timeout", type=click.IntRange(1, 7200), help="Seconds each rollout may take.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def rollback(ctx, environment, services, to_revision, yes, timeout, as_json):
    """kubectl rollout undo of the workloads the last apply changed, then wait until they are ready again."""
    from berth.k8s.apply import ApplyOptions, run_rollback

    opts = ApplyOptions(yes=yes, timeout=timeout, services=tuple(services), to_revision=to_revision)
    outcome, printer = _run(ctx, environment, run_rollback, opts, as_json, "rollback")
    if not as_json:
        printer.line(f"rolled back {', '.join(outcome['rolled_back'])} in {outcome['environment']} "
                     f"in {outcome['seconds']:.1f}s")
