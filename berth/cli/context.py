"""What every command shares: the global options (-C, -e, --host, -v), the target they name, and the printer
whose masker also masks the error a command ends with.

Options that pick the target are accepted after a command's name too (`berth doctor -e production`), as
well as before it (`berth -e production doctor`): people type both.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

# the masker of the command that is running, so that the error it ends with is masked too (berth.cli.main)
_active_masker: Callable[[str], str] | None = None


def use_masker(masker: Callable[[str], str]) -> None:
    global _active_masker
    _active_masker = masker


def error_mask() -> Callable[[str], str]:
    return _active_masker or (lambda text: text)


class Ctx:
    """The root command's options, as every command sees them (`click.pass_obj`)."""

    def __init__(self, project_dir: Path, environment: str | None, hosts: tuple[str, ...], verbose: bool):
        self.project_dir = project_dir
        self.environment = environment
        self.hosts = hosts
        self.verbose = verbose

    def target(self, environment: str | None = None):
        """The target the options name; `environment` given to a subcommand wins over the global -e."""
        from berth.configuration.target import load_target

        return load_target(Path(self.project_dir), environment or self.environment, tuple(self.hosts or ()))

    def printer(self, target=None, quiet: bool = False):
        """A step printer masking the target's secrets (and the command's final error, see use_masker)."""
        from berth.configuration.masker import masker_for
        from berth.secrets.masking import Masker
        from berth.ui.output import StepPrinter

        try:
            masker = masker_for(target if target is not None else self.target())
        except Exception:  # noqa: BLE001 - masking must never be the reason a command fails
            masker = Masker()
        use_masker(masker)
        return StepPrinter(masker, quiet=quiet, verbose=self.verbose)


def ctx_of(click_ctx: click.Context) -> Ctx:
    return click_ctx.find_root().obj


def _set(attribute: str):
    def callback(ctx: click.Context, _param, value):
        if value:
            setattr(ctx.find_root().obj, attribute, tuple(value) if isinstance(value, (list, tuple)) else value)
    return callback


def target_options(command):
    """-e and --host on a command itself, setting the same values as the global options."""
    command = click.option("--host", "hosts", multiple=True, expose_value=False, callback=_set("hosts"),
                           help="Act on this host only (repeatable; overrides berth.toml and .env).")(command)
    return click.option("-e", "--environment", expose_value=False, callback=_set("environment"),
                        help="Environment to act on (overrides ENVIRONMENT in .env).")(command)


def report_outcome(printer, as_json: bool, run, done: Callable[[dict], str]) -> None:
    """Run a pipeline that fills an outcome document (deploy, rollback) and report it: with --json one masked
    document, whether it succeeded or not (exit code inside and as the process's); else the steps it printed,
    then `done(outcome)` on success, or the error paragraph (berth.cli.main prints it)."""
    from berth.errors import BerthError

    outcome: dict = {}
    try:
        run(outcome)
    except BerthError as exc:
        outcome.update(ok=False, exit_code=exc.exit_code, error=exc.paragraph())
        if as_json:
            printer.json(outcome)
            raise SystemExit(exc.exit_code) from None
        raise
    outcome.update(exit_code=0, error=None)
    if as_json:
        printer.json(outcome)
    else:
        printer.line(done(outcome))
