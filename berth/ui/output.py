"""Rendering for people: step lines with durations, findings, errors. Logic returns data; this prints it."""

from __future__ import annotations

import copy
import os
import re
import sys
import threading
from pathlib import Path

import click

from berth.secrets.masking import Masker, dumps_masked

# C0 controls but tab and newline, DEL, C1 controls, and the bidi overrides/isolates (they reorder what
# follows on the line): from a commit subject, a lock message or a server they could rewrite the screen
# (cursor moves, erased lines, a window title, a fake "✓ verify" line)
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def clean(text: str) -> str:
    """External text made harmless for a terminal: each control character is shown as its escape
    (ESC as the four characters \\x1b); a CRLF line end counts as a line end."""
    if not text or not isinstance(text, str):
        return text
    return _UNSAFE.sub(_visible, text.replace("\r\n", "\n"))


def _visible(m: re.Match[str]) -> str:
    code = ord(m.group(0))
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


_WRITING = threading.Lock()  # hosts deployed at once print whole lines, never parts of two


def color_enabled(stream=None) -> bool:
    stream = stream or sys.stdout
    return "NO_COLOR" not in os.environ and hasattr(stream, "isatty") and stream.isatty()


def style(text: str, **kw) -> str:
    return click.style(text, **kw) if color_enabled() else text


class StepPrinter:
    """Prints `  ✓ sync      0.05s  detail` lines as a pipeline runs; silent in --json mode.

    Every text goes one way: masked (berth.secrets.masking.Masker), then cleaned of terminal control characters
    (`clean`), and only then given berth's own colours and marks. `rendered` is for text a renderer of
    berth already built that way (findings with their colours).
    """

    MARKS = {"ok": ("✓", "green"), "fail": ("✗", "red"), "skip": ("-", "bright_black"), "warn": ("!", "yellow")}

    def __init__(self, masker: Masker, quiet: bool = False, verbose: bool = False):
        self.mask = masker
        self.quiet = quiet
        self.verbose = verbose
        self.prefix = ""  # the host a line is about, when several are deployed at once

    def for_host(self, label: str, width: int = 0) -> StepPrinter:
        """The same printer, its lines marked with `label` (padded to `width`): `  h1   ✓ sync   0.05s  ...`."""
        printer = copy.copy(self)
        printer.prefix = f"{self.text(label):<{width}}  "
        return printer

    def text(self, text: str) -> str:
        """External text as berth shows it: masked, then neutralised."""
        return clean(self.mask(text))

    def echo(self, text: str = "", err: bool = False, nl: bool = True) -> None:
        """A command's own output (status, releases, logs): printed even in --json mode's quiet printer."""
        click.echo(self.text(text), err=err, nl=nl, color=color_enabled())

    def json(self, document) -> None:
        """A --json document, masked field by field before it is serialised."""
        click.echo(dumps_masked(document, self.mask, default=str))

    def line(self, text: str = "", err: bool = False) -> None:
        self._emit(self.text(text), err)

    def rendered(self, text: str, err: bool = False) -> None:
        """Text a berth renderer built from masked, cleaned parts and coloured (render_findings)."""
        self._emit(self.mask(text), err)

    def _emit(self, text: str, err: bool = False) -> None:
        if self.quiet:
            return
        if self.prefix:  # after the indent: "  ! note" becomes "  h1  ! note"
            mark = style(self.prefix, bold=True)
            text = "\n".join(f"  {mark}{ln[2:] if ln.startswith('  ') else ln}" for ln in text.split("\n"))
        with _WRITING:
            click.echo(text, err=err, color=color_enabled())

    def step(self, name: str, status: str, seconds: float | None, detail: str = "") -> None:
        mark, color = self.MARKS[status]
        took = f"{seconds:6.2f}s" if seconds is not None else "       "
        self._emit(f"  {style(mark, fg=color)} {self.text(name):<8} {took}  {self.text(detail)}".rstrip())

    def debug(self, text: str) -> None:
        if self.verbose:
            # the whole text is masked before it is split: a multi-line secret is masked whole
            for ln in self.text(text.rstrip("\n")).splitlines():
                self._emit(style(f"    │ {ln}", fg="bright_black"))

    def block(self, text: str, indent: str = "    ", *, rendered: bool = False) -> None:
        """Lines of text, indented; `rendered`: built by a berth renderer (see `rendered`)."""
        text = self.mask(text) if rendered else self.text(text)
        for ln in text.rstrip("\n").splitlines():
            self._emit(f"{indent}{ln}")


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
            # file names and messages can quote file content: masked and cleaned before they are coloured
            where = paint(clean(mask(f.location(root) or "(project)")), bold=True)
            sev = paint(str(f.severity), fg=SEVERITY_COLORS[str(f.severity)], bold=True)
            rule_id = paint(f"[{f.rule}]", fg="bright_black")
            out.append(f"{where}: {sev}: {clean(mask(f.message))} {rule_id}")
            if f.fix:
                out.append(f"    {paint('fix:', fg='green')} {clean(mask(f.fix))}")
        if more:
            out.append(clean(mask(more)))
    return "\n".join(out)


def render_check_summary(report, environment: str, *, color: bool | None = None) -> str:
    """`24 rules checked for staging: 1 error, 0 warnings, 0 info (2 suppressed)`."""
    use_color = color_enabled() if color is None else color
    c = report.counts()
    text = (f"{report.rules_run} rules checked for {clean(environment)}: {c['error']} error{'s' * (c['error'] != 1)}, "
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
