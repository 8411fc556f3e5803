"""Suppression, applied once in run_checks: `# berth: ignore[RULE]` comments, `# berth: allow-secret`,
and berth.toml's [check] table (ignore, severity, exclude, fail_on, enable), which is validated."""

from __future__ import annotations

import random
import string
import subprocess
import sys

import pytest

import berth.check.rules  # noqa: F401  (registers the rules)
from berth.check import load_check_config, run_checks
from berth.check.findings import RULES, Severity
from berth.configuration.target import load_target
from berth.errors import UsageError

_rnd = random.Random(7)
TOKEN = "gh" + "p_" + "".join(_rnd.choice(string.ascii_letters + string.digits) for _ in range(36))
BAD_TEMPLATE_LINE = '    image: "nginx:${TAG"'


def run(project, **kw):
    return run_checks(load_target(project.root), offline=True, **kw)


def rules_of(findings) -> list[str]:
    return sorted(f.rule for f in findings)


def commit(project, rel: str, text: str) -> None:
    project.write(rel, text)
    project.commit(f"add {rel}")
    project.push()


def compose(project, *service_lines: str) -> None:
    project.write("docker-compose.yml", "services:\n  web:\n" + "".join(line + "\n" for line in service_lines))


# --------------------------------------------------------------------------- comments in files


@pytest.mark.parametrize("line", [
    f'TOKEN = "{TOKEN}"  # berth: allow-secret',
    f'TOKEN = "{TOKEN}"  # berth: ignore[secrets.github-token]',
    f'TOKEN = "{TOKEN}"  # berth: ignore[secrets]',
    f'TOKEN = "{TOKEN}"  # berth: ignore[compose.unset-variable, secrets.*]',
    f'TOKEN = "{TOKEN}"  # gitleaks:allow',
    f'const TOKEN = "{TOKEN}";  // berth: allow-secret',
], ids=["allow-secret", "exact id", "area", "glob in a list", "gitleaks", "js comment"])
def test_same_line_directive_silences_a_secret(project, line):
    commit(project, "app/config.py", f"import os\n{line}\n")
    report = run(project)
    assert rules_of(report.findings) == []
    assert rules_of(report.suppressed) == ["secrets.github-token"]


@pytest.mark.parametrize("line", [
    f'TOKEN = "{TOKEN}"  # berth: ignore[secrets.openai-key]',
    f'TOKEN = "{TOKEN}"  # berth: ignore[git]',
    f'TOKEN = "{TOKEN}"  # berth: ignore',
    f'TOKEN = "{TOKEN}"  # berth: allow-secrets-please',
], ids=["other rule", "other area", "no rule list", "misspelt"])
def test_directive_for_something_else_does_not(project, line):
    commit(project, "app/config.py", f"{line}\n")
    assert rules_of(run(project).findings) == ["secrets.github-token"]


def test_comment_line_above(project):
    commit(project, "app/config.py", f"# berth: allow-secret (a revoked token kept as a test fixture)\nTOKEN = '{TOKEN}'\n")
    assert rules_of(run(project).findings) == []


def test_only_the_line_directly_above(project):
    commit(project, "app/config.py", f"# berth: allow-secret\n\nTOKEN = '{TOKEN}'\n")
    assert rules_of(run(project).findings) == ["secrets.github-token"]


def test_code_line_above_does_not_count(project):
    # the directive belongs to the line it is on, not to the next one
    commit(project, "app/config.py", f"A = 'x'  # berth: allow-secret\nTOKEN = '{TOKEN}'\n")
    assert rules_of(run(project).findings) == ["secrets.github-token"]


# -- env files: a trailing comment must really be a comment, or it would change the deployed value


@pytest.mark.parametrize("line, silenced", [
    (f"GH_TOKEN={TOKEN} # berth: allow-secret", True),  # unquoted: ` #` starts a comment (compose and dotenv)
    (f'GH_TOKEN="{TOKEN}" # berth: allow-secret', True),
    (f"GH_TOKEN={TOKEN}\t# berth: allow-secret", True),
    (f"GH_TOKEN={TOKEN}#berth: allow-secret", False),  # no space: `#berth...` is part of the value
    (f'GH_TOKEN="{TOKEN} # berth: allow-secret"', False),  # inside the quotes: part of the value
    (f"GH_TOKEN='{TOKEN} # berth: allow-secret'", False),
], ids=["unquoted", "double-quoted", "tab", "no-space", "inside-double-quotes", "inside-single-quotes"])
def test_env_file_trailing_comment(project, line, silenced):
    commit(project, "ci.env.example", f"A=1\n{line}\n")
    found = rules_of(run(project).findings)
    assert found == ([] if silenced else ["secrets.github-token"])


def test_env_file_comment_line_above(project):
    commit(project, "ci.env.example", f"A=1\n# berth: allow-secret\nGH_TOKEN={TOKEN}\n")
    assert rules_of(run(project).findings) == []


def test_env_syntax_finding_in_the_shipped_env_file(project):
    project.write(".env.docker", "TAG=1\n# berth: ignore[env.syntax]\nthis is not a line\nneither is this\n")
    report = run(project)
    found = [f for f in report.findings if f.rule == "env.syntax"]
    assert [f.line for f in found] == [4]  # line 3 is silenced by the comment above it, line 4 is not
    assert [f.line for f in report.suppressed if f.rule == "env.syntax"] == [3]


# -- YAML


def test_yaml_trailing_comment(project):
    compose(project, BAD_TEMPLATE_LINE + "  # berth: ignore[compose.invalid-template]")
    report = run(project)
    assert "compose.invalid-template" not in rules_of(report.findings)
    assert "compose.invalid-template" in rules_of(report.suppressed)


def test_yaml_directive_inside_a_quoted_string_does_not_count(project):
    compose(project, '    image: "nginx:${TAG # berth: ignore[compose.invalid-template]"')
    assert "compose.invalid-template" in rules_of(run(project).findings)


def test_yaml_comment_line_above(project):
    compose(project, "    # berth: ignore[compose.invalid-template]", BAD_TEMPLATE_LINE)
    assert "compose.invalid-template" not in rules_of(run(project).findings)


def test_directive_does_not_leak_to_other_rules_on_the_line(project):
    compose(project, '    image: "nginx:${TAG}-${NOPE"  # berth: ignore[compose.unset-variable]')
    project.write(".env.docker", "")
    found = rules_of(run(project).findings)
    assert "compose.invalid-template" in found


# --------------------------------------------------------------------------- berth.toml [check]


def toml(project, text: str) -> None:
    project.write("berth.toml", text)


def test_ignore_does_not_run_the_rule(project):
    project.write("notes.txt", "x")  # git.dirty
    toml(project, '[check]\nignore = ["git.dirty"]\n')
    report = run(project)
    assert "git.dirty" not in rules_of(report.findings)
    assert report.rules_run == len(RULES) - 1 - sum(r.stage == "git-remote" for r in RULES.values())


def test_ignore_by_area_and_glob(project):
    config = load_check_config_of(project, '[check]\nignore = ["secrets", "git.env-*"]\n')
    assert {r for r in RULES if r.startswith("secrets.")} <= config.ignore
    assert {"git.env-tracked", "git.env-not-ignored", "git.env-in-history"} <= config.ignore
    assert "git.dirty" not in config.ignore


def load_check_config_of(project, text: str):
    toml(project, text)
    return load_check_config(project.root)


def test_severity_override(project):
    project.write("notes.txt", "x")
    toml(project, '[check.severity]\n"git.dirty" = "warning"\n')
    report = run(project)
    dirty = [f for f in report.findings if f.rule == "git.dirty"]
    assert [f.severity for f in dirty] == [Severity.WARNING]
    assert report.errors == []


def test_severity_with_an_unquoted_dotted_key(project):
    # TOML reads git.dirty = "info" as a table git with a key dirty: berth joins it back
    config = load_check_config_of(project, '[check.severity]\ngit.dirty = "info"\n')
    assert config.severity == {"git.dirty": Severity.INFO}


def test_severity_off_means_ignore(project):
    config = load_check_config_of(project, '[check.severity]\n"compose.default-used" = "off"\n')
    assert "compose.default-used" in config.ignore


def test_exclude_paths(project):
    commit(project, "tests/fixtures/creds.py", f"TOKEN = '{TOKEN}'\n")
    commit(project, "app/creds.py", f"TOKEN = '{TOKEN}'\n")
    toml(project, '[check]\nexclude = ["tests/fixtures"]\n')
    report = run(project)
    assert [f.file.relative_to(project.root).as_posix() for f in report.findings if f.rule.startswith("secrets.")] \
        == ["app/creds.py"]
    assert [f.rule for f in report.suppressed] == ["secrets.github-token"]


def test_enable_and_fail_on_are_valid_keys(project):
    rule_id = next(iter(RULES))
    config = load_check_config_of(project, f'[check]\nenable = ["{rule_id}"]\nfail_on = "warning"\n')
    assert config.enable == {rule_id}
    assert config.fail_on == Severity.WARNING


@pytest.mark.parametrize("text, says", [
    ('[check]\nignores = ["git.dirty"]\n', "unknown key 'ignores' in [check] (did you mean 'ignore'?)"),
    ('[check]\nfail-on = "warning"\n', "unknown key 'fail-on' in [check] (did you mean 'fail_on'?)"),
    ('[check]\nignore = ["git.dirt"]\n', "names 'git.dirt', which is not a rule (did you mean 'git.dirty'?)"),
    ('[check]\nignore = "git.dirty"\n', "[check] ignore must be a list of rule ids"),
    ('[check]\nenable = [1]\n', "[check] enable must be a list of rule ids"),
    ('[check]\nseverity = "warning"\n', "[check] severity must be a table"),
    ('[check.severity]\n"git.dirty" = "fatal"\n', '"git.dirty" must be "error", "warning", "info" or "off"'),
    ('[check.severity]\n"nope.rule" = "info"\n', "[check.severity] names 'nope.rule', which is not a rule"),
    ('[check]\nexclude = "tests"\n', "[check] exclude must be a list of path patterns"),
    ('[check]\nfail_on = "never"\n', "[check] fail_on must be"),
], ids=["typo-key", "dash-key", "typo-rule", "not-a-list", "not-strings", "severity-not-table", "bad-severity",
        "unknown-rule-in-severity", "exclude-not-list", "bad-fail-on"])
def test_invalid_check_table(project, text, says):
    toml(project, text)
    with pytest.raises(UsageError) as err:
        run(project)
    assert says in err.value.what
    assert err.value.where == str(project.root / "berth.toml")
    assert err.value.exit_code == 2


def test_invalid_check_table_exits_2_from_the_cli(project, sub_env):
    toml(project, '[check]\nignore = ["git.dirt"]\n')
    proc = subprocess.run([sys.executable, "-m", "berth", "-C", str(project.root), "check", "--offline"],
                          capture_output=True, text=True, env=sub_env(), timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: berth.toml: [check] ignore names 'git.dirt'")
    assert "Traceback" not in proc.stderr
