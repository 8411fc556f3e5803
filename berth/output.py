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


def render_findings(findings, root: Path, masker: Masker | None = None) -> str:
    """Compiler-style `file:line:col: severity: message [rule]` lines, grouped by file, each with its fix."""
    mask = masker or Masker()
    colors = {"error": "red", "warning": "yellow", "info": "cyan"}
    by_file: dict[str, list] = {}
    for f in findings:
        by_file.setdefault(f.location(root).split(":")[0] if f.file else "", []).append(f)
    out = []
    for file in sorted(by_file, key=lambda name: (name == "", name)):
        for f in sorted(by_file[file], key=lambda f: (-f.severity, f.line or 0, f.col or 0)):
            where = f.location(root) or "(project)"
            sev = style(str(f.severity), fg=colors[str(f.severity)], bold=True)
            out.append(f"{where}: {sev}: {f.message} [{f.rule}]")
            if f.fix:
                out.append(f"    fix: {f.fix}")
    return mask("\n".join(out))
