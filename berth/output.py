"""Rendering for people: step lines with durations, findings, errors. Logic returns data; this prints it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from berth.secrets import Masker


def color_enabled(stream=None) -> bool:
    stream = stream or sys.stdout
    return "NO_COLOR" not in os.environ and hasattr(stream, "isatty") and stream.isatty()


def style(text: str, **kw) -> str:
    return click.style(text, **kw) if color_enabled() else text


class StepPrinter:
    """Prints `  ✓ sync      0.05s  detail` lines as a pipeline runs; silent in --json mode."""

    MARKS = {"ok": ("✓", "green"), "fail": ("✗", "red"), "skip": ("-", "bright_black"), "warn": ("!", "yellow")}

    def __init__(self, masker: Masker, quiet: bool = False, verbose: bool = False):
        self.mask = masker
        self.quiet = quiet
        self.verbose = verbose

    def line(self, text: str = "", err: bool = False) -> None:
        if not self.quiet:
            click.echo(self.mask(text), err=err, color=color_enabled())

    def step(self, name: str, status: str, seconds: float | None, detail: str = "") -> None:
        mark, color = self.MARKS[status]
        took = f"{seconds:6.2f}s" if seconds is not None else "       "
        self.line(f"  {style(mark, fg=color)} {name:<8} {took}  {detail}".rstrip())

    def debug(self, text: str) -> None:
        if self.verbose:
            for ln in text.rstrip("\n").splitlines():
                self.line(style(f"    │ {ln}", fg="bright_black"))

    def block(self, text: str, indent: str = "    ") -> None:
        for ln in text.rstrip("\n").splitlines():
            self.line(f"{indent}{ln}")


SEVERITY_COLORS = {"error": "red", "warning": "yellow", "info": "cyan"}


def render_findings(findings, root: Path, masker: Masker | None = None, *, color: bool | None = None,
                    max_per_file: int | None = None) -> str:
    """Compiler-style `file:line:col: severity: message [rule]` lines, grouped by file, each with its fix.

    Files come in name order, project-wide findings (no file) last; within a file, most severe first,
    then by position. Colour only on a terminal (and never with NO_COLOR), unless `color` says otherwise.
    With `max_per_file`, the rest of a file's findings are counted on one line instead of listed.
    """
    mask = masker or Masker()
    use_color = color_enabled() if color is None else color

    def paint(text: str, **kw) -> str:
        return click.style(text, **kw) if use_color else text

    by_file: dict[str, list] = {}
    for f in findings:
        by_file.setdefault(f.relpath(root) or "", []).append(f)
    out = []
    for file in sorted(by_file, key=lambda name: (name == "", name)):
        ordered = sorted(by_file[file], key=lambda f: (-f.severity, f.line or 0, f.col or 0))
        if max_per_file is not None and len(ordered) > max_per_file:
            hidden = ordered[max_per_file:]
            ordered = ordered[:max_per_file]
            rules = ", ".join(sorted({f.rule for f in hidden}))
            more = (f"{file or '(project)'}: … {len(hidden)} more finding{'s' * (len(hidden) != 1)} not shown [{rules}]"
                    " (--format json lists every one)")
        else:
            more = None
        for f in ordered:
            where = paint(f.location(root) or "(project)", bold=True)
            sev = paint(str(f.severity), fg=SEVERITY_COLORS[str(f.severity)], bold=True)
            rule_id = paint(f"[{f.rule}]", fg="bright_black")
            out.append(mask(f"{where}: {sev}: {f.message} {rule_id}"))
            if f.fix:
                out.append(mask(f"    {paint('fix:', fg='green')} {f.fix}"))
        if more:
            out.append(mask(more))
    return "\n".join(out)


def render_check_summary(report, environment: str, *, color: bool | None = None) -> str:
    """`24 rules checked for staging: 1 error, 0 warnings, 0 info (2 suppressed)`."""
    use_color = color_enabled() if color is None else color
    c = report.counts()
    text = (f"{report.rules_run} rules checked for {environment}: {c['error']} error{'s' * (c['error'] != 1)}, "
            f"{c['warning']} warning{'s' * (c['warning'] != 1)}, {c['info']} info")
    if report.suppressed:
        text += f" ({len(report.suppressed)} suppressed)"
    if use_color:
        text = click.style(text, fg="red" if c["error"] else "yellow" if c["warning"] else "green")
    return text


def render_rules(rules, *, color: bool | None = None) -> str:
    """`berth check --list-rules`: every rule with its id, default severity, summary and fix."""
    use_color = color_enabled() if color is None else color
    rules = list(rules)
    width = max((len(r.id) for r in rules), default=0) + 2
    out = []
    for r in rules:
        sev = str(r.severity)
        shown_sev = click.style(f"{sev:<8}", fg=SEVERITY_COLORS[sev]) if use_color else f"{sev:<8}"
        remote = "  (asks the git remote; skipped with --offline)" if r.stage == "git-remote" else ""
        out.append(f"{r.id:<{width}}{shown_sev} {r.summary}{remote}")
        out.append(f"{'':<{width}}{'':<8} fix: {r.fix}")
    return "\n".join(out)
