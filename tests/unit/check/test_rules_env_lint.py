"""The env.* style and syntax rules (berth/check/rules/env_lint.py), firing and quiet, on real projects.

CASES is collected by test_check_rules.test_every_rule_has_a_firing_and_a_quiet_case and run here,
with the harness in rule_cases.py.
"""


import berth.check.rules  # noqa: F401  (registers the rules)
from berth.check import run_checks
from berth.check.findings import RULES, Severity
from berth.check.rules.env_lint import DEFAULT_OFF
from berth.configuration.target import load_target
from tests.helpers.rule_cases import Case, both, noop, rule_test
from tests.helpers.rule_cases import expect_at as at  # (count findings, the first at rel, line, col)


def app_env(text: str | bytes):
    return lambda p: p.write(".env.docker", text)


def dotenv(extra: str):
    return lambda p: p.write(".env", p.DOTENV + extra)


def example(text: str | bytes, name: str = ".env.docker.example"):
    return lambda p: p.write(name, text)


ENABLE_UNORDERED = lambda p: p.write("berth.toml", '[check]\nenable = ["env.unordered-key"]\n')  # noqa: E731


CASES: list[Case] = [
    # env.syntax (rules/files.py) reads what berth.model.envfile produces: lines compose refuses
    Case("env.syntax", True, "unclosed ${ compose refuses", app_env("TAG=${VERSION\n"), at(".env.docker", 1)),
    Case("env.syntax", True, "required variable missing", app_env("TAG=${VERSION:?set it}\n"), at(".env.docker", 1)),
    Case("env.syntax", True, "a '/' in a key", app_env("TAG=1\nA/B=2\n"), at(".env.docker", 2)),
    Case("env.syntax", True, "bare key on the last line, no line break", app_env("TAG=1\nOTHER"),
         at(".env.docker", 2)),
    Case("env.syntax", True, "text after the closing quote", app_env('TAG="1" B=2\n'), at(".env.docker", 1)),
    Case("env.syntax", True, "YAML-style KEY: value (compose accepts it, berth does not)", app_env("TAG: 1\n"),
         at(".env.docker", 1)),
    Case("env.syntax", False, "tab before '#', '#' without a space, spaces around '='",
         app_env("TAG=x\t#y\nB=1#2\nC = 3\n")),
    # env.example-syntax
    Case("env.example-syntax", True, "unterminated quote in the example", example('TAG="\n'),
         at(".env.docker.example", 1, 5, contains="never closed")),
    Case("env.example-syntax", True, "example not UTF-8", example(b"TAG=caf\xe9\n"),
         at(".env.docker.example", None, contains="not UTF-8")),
    Case("env.example-syntax", True, ".env.example", example("ENVIRONMENT=staging\nA B=1\n", ".env.example"),
         at(".env.example", 2, 1, contains="cannot contain spaces")),
    Case("env.example-syntax", False, "well-formed examples", noop),
    # env.duplicate-key
    Case("env.duplicate-key", True, "twice in the app env", app_env("TAG=1\nTAG=2\n"),
         at(".env.docker", 2, 1, contains="first on line 1")),
    Case("env.duplicate-key", True, "bare key after an assignment", app_env("TAG=1\nTAG\n"),
         at(".env.docker", 2, 1, contains="does not replace")),
    Case("env.duplicate-key", True, "in the example", example("TAG=\nTAG=\n"), at(".env.docker.example", 2, 1)),
    Case("env.duplicate-key", False, "distinct keys", app_env("TAG=1\nOTHER=2\n")),
    # env.lowercase-key
    Case("env.lowercase-key", True, "lowercase", app_env("TAG=1\ndb_host=x\n"),
         at(".env.docker", 2, 1, severity=Severity.INFO, fix="DB_HOST")),
    Case("env.lowercase-key", False, "upper case", noop),
    # env.leading-character
    Case("env.leading-character", True, "starts with a digit", app_env("TAG=1\n1ST=x\n"),
         at(".env.docker", 2, 1, contains="starts with '1'", severity=Severity.WARNING)),
    Case("env.leading-character", True, "indented line", app_env("  TAG=1\n"),
         at(".env.docker", 1, 1, contains="whitespace", severity=Severity.INFO)),
    Case("env.leading-character", False, "underscore and export", app_env("TAG=1\n_X=1\nexport Y=2\n")),
    # env.incorrect-delimiter
    Case("env.incorrect-delimiter", True, "dash", app_env("TAG=1\nMY-KEY=x\n"),
         at(".env.docker", 2, 1, contains="'-'", fix="MY_KEY")),
    Case("env.incorrect-delimiter", True, "dot", app_env("TAG=1\nA.B=x\n"), at(".env.docker", 2, 1, contains="'.'")),
    Case("env.incorrect-delimiter", False, "underscores", app_env("TAG=1\nMY_KEY=x\n")),
    # env.key-without-value
    Case("env.key-without-value", True, "bare key in the app env", app_env("TAG=1\nOTHER\n"),
         at(".env.docker", 2, 1, contains="stays unset", fix="OTHER=")),
    Case("env.key-without-value", True, "bare key in .env", dotenv("SERVER_PORT\n"),
         at(".env", 4, 1, contains="berth reads it as empty")),
    Case("env.key-without-value", False, "empty value", app_env("TAG=1\nOTHER=\n")),
    # env.space-around-equals
    Case("env.space-around-equals", True, "KEY = value", app_env("TAG = 1\n"),
         at(".env.docker", 1, 1, severity=Severity.INFO)),
    Case("env.space-around-equals", True, "KEY= value", app_env("TAG= 1\n"), at(".env.docker", 1, 1)),
    Case("env.space-around-equals", False, "comment after the value", app_env("TAG=1 # the image tag\n")),
    Case("env.space-around-equals", False, "empty value with a comment line", app_env("TAG=\n# note\n")),
    # env.unordered-key (off by default)
    Case("env.unordered-key", True, "enabled in berth.toml", both(ENABLE_UNORDERED, app_env("TAG=1\nALPHA=2\n")),
         at(".env.docker", 2, 1, contains="ALPHA should come before TAG")),
    Case("env.unordered-key", False, "off by default", app_env("TAG=1\nALPHA=2\n")),
    Case("env.unordered-key", False, "groups split by a blank line or a comment",
         both(ENABLE_UNORDERED, app_env("TAG=1\n\nALPHA=2\n# db\nA=1\n"))),
    # env.unquoted-spaces
    Case("env.unquoted-spaces", True, "spaces without quotes", app_env("TAG=1\nGREETING=hello world\n"),
         at(".env.docker", 2, 10, severity=Severity.INFO)),
    Case("env.unquoted-spaces", False, "double quotes", app_env('TAG=1\nGREETING="hello world"\n')),
    # env.unnecessary-quotes
    Case("env.unnecessary-quotes", True, "plain quoted value", app_env('TAG="1.25"\n'), at(".env.docker", 1, 5)),
    Case("env.unnecessary-quotes", True, "single quotes", app_env("TAG='1.25'\n"), at(".env.docker", 1, 5)),
    Case("env.unnecessary-quotes", False, "quotes that matter",
         app_env("TAG=1\nA=\"a b\"\nB='$x'\nC=\"\"\nD=\"a#b\"\nE=\"line\\n\"\n")),
    # env.substitution
    Case("env.substitution", True, "$NAME}", app_env("A=1\nTAG=$A}\n"), at(".env.docker", 2, 5, contains="'$A}'")),
    Case("env.substitution", True, "extra brace", app_env("A=1\nTAG=x${A}}\n"),
         at(".env.docker", 2, 6, contains="extra '}' after ${A}")),
    Case("env.substitution", True, "in a secret, without the name", app_env("TAG=1\nAPI_TOKEN=ab$Qz}cd\n"),
         at(".env.docker", 2, 13, absent="Qz")),
    Case("env.substitution", False, "well-formed", app_env("A=1\nTAG=${A}-${B:-x}-$$}\n")),
    # env.undefined-variable
    Case("env.undefined-variable", True, "never defined", app_env("TAG=${VERSION}\n"),
         at(".env.docker", 1, 5, contains="$VERSION in the value of TAG is not defined above it")),
    Case("env.undefined-variable", True, "defined later", app_env("TAG=$VERSION\nVERSION=1\n"),
         at(".env.docker", 1, 5, contains="set later, on line 2")),
    Case("env.undefined-variable", True, "a $ inside a password", app_env("TAG=1\nDB_PASSWORD=pa$sword99\n"),
         at(".env.docker", 2, 15, contains="substitutes an empty string", absent="sword")),
    Case("env.undefined-variable", False, "defined above, defaults, escaped and single-quoted",
         app_env("V=1\nTAG=$V-${X:-1}-$$Y\nP='pa$sword'\nQ=\"a\\$b\"\n")),
    # env.trailing-whitespace
    Case("env.trailing-whitespace", True, "space after the value", app_env("TAG=1 \n"),
         at(".env.docker", 1, 6, severity=Severity.INFO)),
    Case("env.trailing-whitespace", True, "tab after a comment", app_env("# c\t\nTAG=1\n"), at(".env.docker", 1, 4)),
    Case("env.trailing-whitespace", False, "CRLF line endings", app_env("TAG=1\r\n")),
    Case("env.trailing-whitespace", False, "spaces inside a multi-line value", app_env('TAG=1\nK="a  \nb"\n')),
    # env.no-final-newline
    Case("env.no-final-newline", True, "no line break at the end", app_env("TAG=1"), at(".env.docker", 1)),
    Case("env.no-final-newline", False, "line break at the end", noop),
    # env.extra-blank-line
    Case("env.extra-blank-line", True, "two blank lines", app_env("TAG=1\n\n\nB=2\n"), at(".env.docker", 3)),
    Case("env.extra-blank-line", False, "one blank line", app_env("TAG=1\n\nB=2\n")),
    Case("env.extra-blank-line", False, "blank lines inside a quoted value", app_env('TAG=1\nK="a\n\n\nb"\n')),
]


test_rule = rule_test(CASES)  # online; every finding of a firing case needs a severity and a fix


def test_default_off_rules_exist():
    assert DEFAULT_OFF <= set(RULES)


def test_example_app_env_files_are_clean(tmp_path):
    """The shipped example's env files follow every style rule (berth's own example should)."""
    import shutil
    from pathlib import Path

    app = tmp_path / "app"
    shutil.copytree(Path(__file__).parents[3] / "examples" / "app", app)
    shutil.copy(app / ".env.example", app / ".env")
    shutil.copy(app / ".env.docker.example", app / ".env.docker")
    report = run_checks(load_target(app))
    lint_ids = {r for r in RULES if r.startswith("env.")} - {"env.placeholder", "env.weak-secret"}
    assert [f for f in report.findings if f.rule in lint_ids] == []
