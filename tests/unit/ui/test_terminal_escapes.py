"""Finding 18: terminal control sequences in text berth did not write (commit subjects, lock messages, release
records, server output, findings quoting files) are shown escaped, never sent to the terminal; berth's own
colours are added after cleaning and survive."""

from __future__ import annotations

import json

import click
import pytest
from click.testing import CliRunner

from berth.cli import cli
from berth.configuration.target import load_target
from berth.remote.engines.compose import Compose
from berth.remote.session import HostSession
from berth.remote.transport import Result
from berth.secrets.masking import Masker
from berth.ui.output import StepPrinter, clean, render_findings

# the review's commit subject: retitles the window, erases the line, moves up, prints a fake green "✓ verify"
SUBJECT = "fix typo\x1b]0;owned\x07\x1b[2K\x1b[1A\x1b[32m  ✓ verify  all healthy\x1b[0m"
SHOWN = "fix typo\\x1b]0;owned\\x07\\x1b[2K\\x1b[1A\\x1b[32m  ✓ verify  all healthy\\x1b[0m"


def no_controls(text: str) -> bool:
    return not any(ord(c) < 32 and c not in "\t\n" or 0x7f <= ord(c) <= 0x9f for c in text)


@pytest.mark.parametrize("raw, shown", [
    (SUBJECT, SHOWN),
    ("a\rb", "a\\x0db"),  # a carriage return would let the rest overwrite the line
    ("line 1\r\nline 2", "line 1\nline 2"),  # a CRLF line end is a line end
    ("tab\tand\nnewline", "tab\tand\nnewline"),
    ("c1 \x9b31m csi", "c1 \\x9b31m csi"),
    ("nul\x00 del\x7f", "nul\\x00 del\\x7f"),
    ("bidi \u202eevil", "bidi \\u202eevil"),
    ("ünïcödé ✓", "ünïcödé ✓"),
])
def test_clean_shows_control_characters_as_escapes(raw, shown):
    assert clean(raw) == shown


def test_a_commit_subject_with_escape_sequences_prints_neutralised(capsys):
    StepPrinter(Masker()).line(f'  deploying aaaaaaa "{SUBJECT}" to staging')
    out = capsys.readouterr().out
    assert no_controls(out) and SHOWN in out


def test_berth_colours_are_added_after_cleaning(monkeypatch, capsys):
    import berth.ui.output

    monkeypatch.setattr(berth.ui.output, "color_enabled", lambda stream=None: True)
    StepPrinter(Masker()).step("sync", "ok", 0.5, f"at {SUBJECT}")
    out = capsys.readouterr().out
    assert click.style("✓", fg="green") in out  # berth's own mark keeps its colour
    assert SHOWN in out  # the subject's sequences do not reach the terminal
    assert "\x07" not in out and "\x1b]0;" not in out


def _session(target, out: str) -> HostSession:
    class Conn:
        lost = None

        def run(self, script, stdin=None, timeout=None, check=False):
            return Result(script, 0, out.encode(), b"", 0.01)

        def stream(self, script, on_line):
            on_line(f"web-1  | {SUBJECT}")
            return 0

        def close(self):
            pass

    return HostSession(target.hosts[0], Conn(), "/home/deploy", "deploy",
                       Compose("v2", target.project, target.compose_files, target.env_file), "2.26.1", "24.0",
                       "/home/deploy/app", "/home/deploy/.berth/app", None)


def test_berth_status_neutralises_the_subject_from_the_release_record(project, monkeypatch):
    import berth.ops.status

    rows = [{"host": "deploy@203.0.113.5", "environment": "staging", "app_dir": "/home/deploy/app",
             "current": {"commit": "a" * 40, "subject": SUBJECT, "id": "r1", "deployed_by": "me"},
             "running": {"commit": "a" * 40, "subject": SUBJECT, "id": "r1", "deployed_by": "me", "result": "ok"},
             "last_deploy": None, "checkout": None, "services": [], "problems": [], "lock": None, "healthy": True}]
    monkeypatch.setattr(berth.ops.status, "collect_status", lambda *a: rows)
    out = CliRunner().invoke(cli, ["-C", str(project.root), "status"], catch_exceptions=False).output
    assert no_controls(out) and SHOWN in out


def test_a_lock_message_with_escape_sequences_prints_neutralised(project, monkeypatch):
    import berth.ops.status

    owner = {"who": "ops", "machine": "box", "pid": None, "command": "manual lock", "since": "now", "message": SUBJECT}
    target = load_target(project.root, None, ())
    monkeypatch.setattr(berth.ops.status, "_session", lambda t, h, trust, p: _session(target, json.dumps(owner)))
    result = CliRunner().invoke(cli, ["-C", str(project.root), "lock", "status"], catch_exceptions=False)
    assert result.exit_code == 3
    assert no_controls(result.output) and SHOWN in result.output


def test_berth_logs_neutralises_what_the_containers_print(project, monkeypatch, capsys):
    import berth.ops.status

    target = load_target(project.root, None, ())
    monkeypatch.setattr(berth.ops.status, "_session", lambda t, h, trust, p: _session(target, ""))
    berth.ops.status.stream_logs(target, (), 10, False, False, StepPrinter(Masker()))
    out = capsys.readouterr().out
    assert no_controls(out) and f"web-1  | {SHOWN}" in out


def test_errors_quoting_a_server_are_neutralised(capsys):
    from berth.cli import _print_error
    from berth.errors import BerthError

    _print_error(BerthError(f"git on host failed: {SUBJECT}", details=f"remote: {SUBJECT}"))
    err = capsys.readouterr().err
    assert no_controls(err) and err.count(SHOWN) == 2


def test_findings_quoting_file_content_are_neutralised_and_keep_their_colours(tmp_path):
    from berth.check.findings import Finding, Severity

    f = Finding("compose.x", Severity.ERROR, f"service web: {SUBJECT}", tmp_path / "docker-compose.yml", 3, 1,
                f"fix {SUBJECT}")
    out = render_findings([f], tmp_path, Masker(), color=True)
    assert SHOWN in out and "\x1b]0;" not in out and "\x07" not in out
    assert click.style("error", fg="red", bold=True) in out
