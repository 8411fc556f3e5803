"""`berth check`: every rule, locally, touching no server."""

from __future__ import annotations

import sys

import click

from berth.cli.context import Ctx, target_options, use_masker

MAX_SHOWN_PER_FILE = 100  # check's text output: a 10 MB junk file must not print 200,000 lines


@click.command()
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
    import berth.check.rules  # noqa: F401  (registers the rules)
    from berth.check import run_checks
    from berth.check.findings import RULES, Severity, rules_matching
    from berth.ui.output import color_enabled

    if list_rules:
        from berth.check import formats
        from berth.ui.output import render_rules

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
    from berth.configuration.masker import masker_for

    env = report.context.app_env
    try:
        mask = masker_for(target, env.values() if env is not None else {}, report.context.compose_files)
    except Exception:  # noqa: BLE001 - masking must never be the reason a command fails
        from berth.secrets.masking import Masker, secret_values

        mask = Masker(secret_values(env.values())) if env is not None else Masker()
    use_masker(mask)
    threshold = Severity[fail_on.upper()] if fail_on else (report.config.fail_on or Severity.ERROR)
    exit_code = 1 if report.at_least(threshold) else 0
    if fmt == "text":
        from berth.ui.output import render_check_summary, render_findings

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
            from berth.ui.output import render_check_summary

            annotations = formats.to_github(report.findings, target.root, mask=mask, max_per_file=MAX_SHOWN_PER_FILE)
            if annotations:
                click.echo(annotations)
            click.echo(render_check_summary(report, target.environment, color=False))
    if exit_code:
        sys.exit(exit_code)
