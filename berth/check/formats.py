"""`berth check --format json|sarif|github`: the check report for machines.

Every format carries, for each finding: rule id, severity, file (relative to the project), line,
column, message and fix. All text passes through the command's Masker, field by field, before it
is serialized (masking serialized JSON could miss an escaped secret). Findings never hold secret
values themselves; the masker is the second line of defence.

- json:   berth's own shape (`findings`, `counts`, `environment`, ...); stable keys.
- sarif:  SARIF 2.1.0, as GitHub code scanning and other viewers read it: every rule in
          `runs[0].tool.driver.rules`, one result per finding with its physical location; suppressed
          findings are included with `suppressions`, as the standard says.
- github: GitHub Actions workflow commands (`::error file=F,line=L,col=C,title=RULE::message`),
          which the runner turns into annotations on the pull request.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from urllib.parse import quote

from berth import __version__
from berth.check.findings import RULES, Finding, Rule, Severity

SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
SARIF_LEVELS = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}
GITHUB_COMMANDS = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}

Mask = Callable[[str], str]


def _identity(text: str) -> str:
    return text


# --------------------------------------------------------------------------- json


def to_json(report, target, *, fail_on: Severity, exit_code: int, mask: Mask = _identity) -> str:
    root = target.root
    return json.dumps({
        "tool": "berth",
        "version": __version__,
        "environment": target.environment,
        "rules_run": report.rules_run,
        "fail_on": str(fail_on),
        "exit_code": exit_code,
        "counts": report.counts(),
        "suppressed": len(report.suppressed),
        "findings": [_masked_dict(f, root, mask) for f in report.findings],
    }, indent=2)


def _masked_dict(f: Finding, root: Path, mask: Mask) -> dict:
    d = f.as_dict(root)
    d["message"] = mask(d["message"])
    d["fix"] = mask(d["fix"]) if d["fix"] else d["fix"]
    return d


def rules_json(rules: Iterable[Rule]) -> str:
    return json.dumps({"rules": [rule_dict(r) for r in rules]}, indent=2)


def rule_dict(r: Rule) -> dict:
    return {"id": r.id, "severity": str(r.severity), "summary": r.summary, "fix": r.fix,
            "needs_remote": r.stage == "git-remote"}


# --------------------------------------------------------------------------- sarif


def to_sarif(report, target, *, exit_code: int, mask: Mask = _identity) -> str:
    return json.dumps(sarif_log(report.findings, report.suppressed, target.root, exit_code=exit_code,
                                anchor=_project_anchor(target), mask=mask), indent=2)


def sarif_log(findings: Iterable[Finding], suppressed: Iterable[Finding], root: Path, *, exit_code: int = 0,
              anchor: str | None = None, mask: Mask = _identity, rules: Iterable[Rule] | None = None) -> dict:
    """A SARIF 2.1.0 log with one run. `anchor` is the file that project-wide findings point at:
    GitHub code scanning rejects a result without a location."""
    rules = list(RULES.values() if rules is None else rules)
    index = {r.id: i for i, r in enumerate(rules)}
    results = [_sarif_result(f, root, index, anchor, mask) for f in findings]
    for f in suppressed:
        result = _sarif_result(f, root, index, anchor, mask)
        result["suppressions"] = [{"kind": "inSource", "status": "accepted",
                                   "justification": "berth: ignore comment or berth.toml [check]"}]
        results.append(result)
    run: dict = {
        "tool": {"driver": {
            "name": "berth",
            "version": __version__,
            "semanticVersion": __version__,
            "rules": [_sarif_rule(r) for r in rules],
        }},
        "originalUriBaseIds": {"%SRCROOT%": {"uri": root.resolve().as_uri() + "/"}},
        "columnKind": "unicodeCodePoints",
        "invocations": [{"executionSuccessful": exit_code in (0, 1), "exitCode": exit_code}],
        "results": results,
    }
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}


def _sarif_rule(r: Rule) -> dict:
    return {
        "id": r.id,
        "shortDescription": {"text": r.summary},
        "fullDescription": {"text": r.summary},
        "help": {"text": f"Fix: {r.fix}", "markdown": f"**Fix:** {r.fix}"},
        "defaultConfiguration": {"level": SARIF_LEVELS[r.severity]},
        "properties": {"tags": [r.id.split(".", 1)[0]]},
    }


def _sarif_result(f: Finding, root: Path, index: dict[str, int], anchor: str | None, mask: Mask) -> dict:
    text = mask(f.message) + (f"\nFix: {mask(f.fix)}" if f.fix else "")
    result: dict = {"ruleId": f.rule, "level": SARIF_LEVELS[f.severity], "message": {"text": text}}
    if f.rule in index:
        result["ruleIndex"] = index[f.rule]
    location = _sarif_location(f, root, anchor)
    if location is not None:
        result["locations"] = [location]
    return result


def _sarif_location(f: Finding, root: Path, anchor: str | None) -> dict | None:
    if f.file is None:
        if anchor is None:
            return None
        artifact = {"uri": quote(anchor), "uriBaseId": "%SRCROOT%"}
        return {"physicalLocation": {"artifactLocation": artifact},
                "message": {"text": "the project as a whole (no single file)"}}
    try:
        artifact = {"uri": quote(f.file.relative_to(root).as_posix()), "uriBaseId": "%SRCROOT%"}
    except ValueError:  # outside the project: an ssh key in ~/.ssh
        artifact = {"uri": f.file.resolve().as_uri()}
    physical: dict = {"artifactLocation": artifact}
    if f.line:
        physical["region"] = {"startLine": f.line, **({"startColumn": f.col} if f.col else {})}
    return {"physicalLocation": physical}


def _project_anchor(target) -> str | None:
    """Where project-wide findings (git state, settings without a file) are anchored in SARIF."""
    root = target.root
    for name in ("berth.toml", ".env", *target.compose_files, ".gitignore"):
        if (root / name).is_file():
            return name
    return None


# --------------------------------------------------------------------------- github


def to_github(findings: Iterable[Finding], root: Path, *, mask: Mask = _identity, max_per_file: int | None = None) -> str:
    """One workflow command per finding; the runner shows each as an annotation at file:line:col.

    With `max_per_file`, the rest of a file's findings become one notice that counts them."""
    lines = []
    shown: dict[str | None, int] = {}
    hidden: dict[str | None, int] = {}
    for f in findings:
        key = f.relpath(root)
        if max_per_file is not None and shown.get(key, 0) >= max_per_file:
            hidden[key] = hidden.get(key, 0) + 1
            continue
        shown[key] = shown.get(key, 0) + 1
        props = []
        rel = f.relpath(root)
        if rel is not None:
            props.append(f"file={_escape_property(rel)}")
            if f.line:
                props.append(f"line={f.line}")
                if f.col:
                    props.append(f"col={f.col}")
        props.append(f"title={_escape_property(f'berth {f.rule}')}")
        text = mask(f.message) + (f"\nfix: {mask(f.fix)}" if f.fix else "")
        lines.append(f"::{GITHUB_COMMANDS[f.severity]} {','.join(props)}::{_escape_data(text)}")
    for key, count in hidden.items():
        where = f"file={_escape_property(key)}," if key else ""
        lines.append(f"::notice {where}title=berth::{count} more findings not shown (--format json lists every one)")
    return "\n".join(lines)


def _escape_data(text: str) -> str:
    # as @actions/core escapes a command's message
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")
