"""The secrets.* rules and git.env-in-history, firing and quiet, on real temporary git repositories.

CASES is collected by test_check_rules.test_every_rule_has_a_firing_and_a_quiet_case and run here,
with the harness in rule_cases.py. Every token is made at test time from a seeded generator, with its prefix split in the source, so this
file holds nothing that a secret scanner (berth's own, GitHub push protection) would take for a key.
"""

import base64
import itertools
import random
import shutil
import string
import subprocess

import pytest

import berth.check.rules  # noqa: F401  (registers the rules)
from berth.check import run_checks
from berth.check.findings import Severity
from berth.check.rules.secrets_scan import is_placeholder, scan_text_line, shannon_entropy
from berth.configuration.target import load_target
from tests.helpers import rule_cases
from tests.helpers.rule_cases import Case, rule_test

ALNUM = string.ascii_letters + string.digits
_rnd = random.Random(20261127)


def rand(n: int, chars: str = ALNUM) -> str:
    return "".join(_rnd.choice(chars) for _ in range(n))


# tokens in the formats of gitleaks' default rules; prefixes are joined at run time
AWS_KEY = "AK" + "IA" + rand(16, string.ascii_uppercase + "234567")
GITHUB_PAT = "gh" + "p_" + rand(36)
GITHUB_FINE = "github" + "_pat_" + rand(22) + "_" + rand(59)
SLACK_BOT = "xo" + "xb-" + rand(12, string.digits) + "-" + rand(13, string.digits) + "-" + rand(24)
STRIPE_LIVE = "sk" + "_live_" + rand(24)
STRIPE_RESTRICTED = "rk" + "_live_" + rand(24)
OPENAI_PROJ = "sk-" + "proj-" + rand(74, ALNUM + "_-") + "T3BlbkFJ" + rand(74, ALNUM + "_-")
OPENAI_LEGACY = "sk-" + rand(20) + "T3BlbkFJ" + rand(20)
GENERIC = rand(28)
PEM_BODY = [base64.b64encode(bytes(_rnd.randrange(256) for _ in range(48))).decode() for _ in range(6)]
PRIVATE_KEY = "\n".join(["-----BEGIN RSA " + "PRIVATE KEY-----", *PEM_BODY, "-----END RSA " + "PRIVATE KEY-----"]) + "\n"
PUBLIC_PREFIXES = ["sk-" + "proj-", "github" + "_pat_", "sk" + "_live_", "rk" + "_live_", "xo" + "xb-", "gh" + "p_",
                   "AK" + "IA", "sk-"]
ALL_TOKENS = [AWS_KEY, GITHUB_PAT, GITHUB_FINE, SLACK_BOT, STRIPE_LIVE, STRIPE_RESTRICTED, OPENAI_PROJ,
              OPENAI_LEGACY, GENERIC, *PEM_BODY]

def commit_file(rel: str, text: str, *, untrack_after: bool = False):
    def setup(p) -> None:
        p.write(rel, text)
        p.git("add", "-f", rel)
        p.git("commit", "-q", "-m", f"add {rel}")
        if untrack_after:
            p.git("rm", "-q", "--cached", rel)
            p.git("commit", "-q", "-m", f"untrack {rel}")
        p.push()
    return setup


def at(rel: str, line: int, col: int, contains: str = "", count: int = 1):
    """count findings, the first at rel, line, col with a fix, showing none of the tokens."""
    return rule_cases.expect_at(rel, line, col, contains=contains, count=count, fix_required=True,
                                hidden=ALL_TOKENS)


def col_of(text: str, needle: str) -> int:
    line = next(ln for ln in text.splitlines() if needle in ln)
    return line.index(needle) + 1


SETTINGS_PY = f'import os\n\nAWS_ACCESS_KEY_ID = "{AWS_KEY}"\nDEBUG = False\n'
WORKFLOW = f"env:\n  GH_TOKEN: {GITHUB_FINE}\n"
README = f"Use the token\n\n    curl -H 'Authorization: token {GITHUB_PAT}' https://api.example.com/\n"
SLACK_ENV = f"# notifications\nSLACK_BOT_TOKEN={SLACK_BOT}\n"
BILLING_JS = f"const stripe = require('stripe')('{STRIPE_LIVE}');\n"
OPENAI_EXAMPLE = f"TAG=\nOPENAI_API_KEY={OPENAI_PROJ}\n"
JSON_KEY = '{"type": "service_account", "private_key": "-----BEGIN ' + 'PRIVATE KEY-----\\n' + PEM_BODY[0] + PEM_BODY[1] \
    + '\\n-----END ' + 'PRIVATE KEY-----\\n"}\n'
GENERIC_YAML = f'database:\n  host: db\n  password: "{GENERIC}"\n'

# -- private keys, made at test time (never committed): every format ssh-keygen and openssl write.
_key_numbers = itertools.count()
OPENSSH = "OPENSSH " + "PRIVATE KEY"
OPENSSH_HEADER = "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW"  # of every ed25519 key


def make_key(p, tool: str, *args: str) -> str:
    """The text of a new private key: `ssh-keygen -f FILE ARGS` or `openssl genpkey ARGS`, in a directory
    outside the repository (skipped when the tool cannot make that kind of key)."""
    if shutil.which(tool) is None:
        pytest.skip(f"no {tool}")
    path = p.root.parent / "keygen" / f"key{next(_key_numbers)}"
    path.parent.mkdir(exist_ok=True)
    argv = ["ssh-keygen", "-q", "-C", "", "-f", str(path), *args] if tool == "ssh-keygen" else \
        ["openssl", "genpkey", "-out", str(path), *args]
    proc = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
    if proc.returncode != 0:
        pytest.skip(f"this {tool} cannot make {' '.join(args)}: {proc.stderr.strip()}")
    return path.read_text()


def commit_key(rel: str, tool: str, *args: str):
    def setup(p) -> None:
        p.key_text = make_key(p, tool, *args)
        commit_file(rel, p.key_text)(p)
    return setup


def key_at(rel: str, begin: str):
    """One finding at rel:1:1 naming the BEGIN line, and no line of the key's body in it."""
    def check(p, found) -> None:
        rule_cases.expect_at(rel, 1, 1, contains=f"{rel} contains a private key (BEGIN {begin})",
                             fix_required=True)(p, found)
        body = [ln for ln in p.key_text.splitlines()[1:-1] if len(ln) > 20]
        assert body and not [ln for ln in body if ln in found[0].message + found[0].fix]
    return check


PEM_ONLY = "-----BEGIN RSA " + "PRIVATE KEY-----\n...\n-----END RSA " + "PRIVATE KEY-----\n"

CASES: list[Case] = [
    # secrets.private-key
    Case("secrets.private-key", True, "PEM file committed", commit_file("deploy/id_rsa", PRIVATE_KEY),
         at("deploy/id_rsa", 1, 1, contains="contains a private key (BEGIN RSA PRIVATE KEY)")),
    Case("secrets.private-key", True, "key inside a JSON credentials file", commit_file("gcp.json", JSON_KEY),
         at("gcp.json", 1, col_of(JSON_KEY, "-----BEGIN"))),
    Case("secrets.private-key", False, "code that only names the header",
         commit_file("keys.py", 'def is_key(text):\n    return text.startswith("-----BEGIN RSA ' + 'PRIVATE KEY-----")\n')),
    Case("secrets.private-key", False, "key file that git does not track",
         lambda p: p.write("id_rsa", PRIVATE_KEY)),
    # the review: an unencrypted ed25519 (or ECDSA) OpenSSH key was never flagged (its first body line is a
    # fixed header, below the entropy threshold); every format ssh-keygen and openssl write is a key
    Case("secrets.private-key", True, "ed25519 (OpenSSH)", commit_key("deploy_key", "ssh-keygen", "-t", "ed25519", "-N", ""),
         key_at("deploy_key", OPENSSH)),
    Case("secrets.private-key", True, "ed25519, encrypted", commit_key("deploy_key", "ssh-keygen", "-t", "ed25519",
                                                                        "-N", "passphrase"), key_at("deploy_key", OPENSSH)),
    Case("secrets.private-key", True, "ECDSA (OpenSSH)", commit_key("id_ecdsa", "ssh-keygen", "-t", "ecdsa", "-N", ""),
         key_at("id_ecdsa", OPENSSH)),
    Case("secrets.private-key", True, "ECDSA (PEM)", commit_key("id_ecdsa", "ssh-keygen", "-t", "ecdsa", "-m", "PEM",
                                                                 "-N", ""), key_at("id_ecdsa", "EC " + "PRIVATE KEY")),
    Case("secrets.private-key", True, "RSA (OpenSSH)", commit_key("id_rsa", "ssh-keygen", "-t", "rsa", "-b", "2048",
                                                                   "-N", ""), key_at("id_rsa", OPENSSH)),
    Case("secrets.private-key", True, "RSA (PEM)", commit_key("id_rsa", "ssh-keygen", "-t", "rsa", "-b", "2048", "-m",
                                                               "PEM", "-N", ""), key_at("id_rsa", "RSA " + "PRIVATE KEY")),
    Case("secrets.private-key", True, "RSA (PEM), encrypted",
         commit_key("id_rsa", "ssh-keygen", "-t", "rsa", "-b", "2048", "-m", "PEM", "-N", "passphrase"),
         key_at("id_rsa", "RSA " + "PRIVATE KEY")),
    Case("secrets.private-key", True, "DSA (OpenSSH)", commit_key("id_dsa", "ssh-keygen", "-t", "dsa", "-N", ""),
         key_at("id_dsa", OPENSSH)),
    Case("secrets.private-key", True, "DSA (PEM)", commit_key("id_dsa", "ssh-keygen", "-t", "dsa", "-m", "PEM", "-N", ""),
         key_at("id_dsa", "DSA " + "PRIVATE KEY")),
    Case("secrets.private-key", True, "PKCS#8 (ed25519, the smallest body)",
         commit_key("key.pem", "openssl", "-algorithm", "ed25519"), key_at("key.pem", "PRIVATE KEY")),
    Case("secrets.private-key", True, "PKCS#8 ed25519 whose body ends in '+' (one key in 64)", lambda p: (
        setattr(p, "key_text", "-----BEGIN " + "PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEI" + "Q7xk2Lp9Vb3Rz0sT" * 2
                + "Q7xk2Lp9Va+\n-----END " + "PRIVATE KEY-----\n"),
        commit_file("key.pem", p.key_text)(p)), key_at("key.pem", "PRIVATE KEY")),
    Case("secrets.private-key", True, "PKCS#8, encrypted",
         commit_key("key.pem", "openssl", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-aes-128-cbc",
                    "-pass", "pass:passphrase"), key_at("key.pem", "ENCRYPTED " + "PRIVATE KEY")),
    Case("secrets.private-key", True, "ed25519 in a YAML block scalar", lambda p: (
        setattr(p, "key_text", make_key(p, "ssh-keygen", "-t", "ed25519", "-N", "")),
        commit_file("deploy.yml", "ssh:\n  key: |\n" + "".join(f"    {ln}\n" for ln in p.key_text.splitlines()))(p)),
         lambda p, found: rule_cases.expect_at("deploy.yml", 3, 5, contains="(BEGIN " + OPENSSH + ")")(p, found)),
    Case("secrets.private-key", False, "docs that show only the first lines of a key", commit_file("docs/keys.md", (
        "An unencrypted ed25519 key starts like this:\n\n    -----BEGIN " + OPENSSH + "-----\n    " + OPENSSH_HEADER
        + "\n\nand never belongs in the repository.\n"))),
    Case("secrets.private-key", False, "a placeholder between BEGIN and END", commit_file("docs/keys.md", PEM_ONLY)),
    # secrets.aws-access-key
    Case("secrets.aws-access-key", True, "access key id in settings.py", commit_file("app/settings.py", SETTINGS_PY),
         at("app/settings.py", 3, col_of(SETTINGS_PY, AWS_KEY), contains="an AWS access key id (AKIA…, 20 characters)")),
    Case("secrets.aws-access-key", False, "AWS's documented example key",
         commit_file("docs/aws.md", "aws_access_key_id = AKIA" + "IOSFODNN7EXAMPLE\n")),
    Case("secrets.aws-access-key", False, "low entropy", commit_file("docs/aws.md", "key = AKIA" + "X" * 16 + "\n")),
    # secrets.github-token
    Case("secrets.github-token", True, "classic PAT in a README", commit_file("README.md", README),
         at("README.md", 3, col_of(README, GITHUB_PAT), contains="a GitHub token (ghp_…")),
    Case("secrets.github-token", True, "fine-grained PAT in a workflow", commit_file(".github/ci.yml", WORKFLOW),
         at(".github/ci.yml", 2, col_of(WORKFLOW, GITHUB_FINE), contains="(github_pat_…")),
    Case("secrets.github-token", False, "placeholder", commit_file("README.md", "GH_TOKEN=gh" + "p_" + "x" * 36 + "\n")),
    # secrets.slack-token
    Case("secrets.slack-token", True, "bot token in a committed env example", commit_file("slack.env.example", SLACK_ENV),
         at("slack.env.example", 2, col_of(SLACK_ENV, SLACK_BOT), contains="a Slack token (xoxb-…")),
    Case("secrets.slack-token", False, "placeholder", commit_file("slack.env.example",
                                                                   "SLACK_BOT_TOKEN=xo" + "xb-xxxxxxxxxx-xxxxxxxxxxxx\n")),
    # secrets.stripe-key
    Case("secrets.stripe-key", True, "live secret key in JS", commit_file("web/billing.js", BILLING_JS),
         at("web/billing.js", 1, col_of(BILLING_JS, STRIPE_LIVE), contains="a Stripe live key (sk_live_…")),
    Case("secrets.stripe-key", True, "restricted key",
         commit_file("config.yml", f"stripe:\n  key: {STRIPE_RESTRICTED}\n"), at("config.yml", 2, 8)),
    Case("secrets.stripe-key", False, "test mode key", commit_file("web/billing.js", "x = 'sk" + "_test_" + rand(24) + "'\n")),
    # secrets.openai-key
    Case("secrets.openai-key", True, "project key in the committed example",
         commit_file(".env.docker.example", OPENAI_EXAMPLE),
         at(".env.docker.example", 2, 16, contains="an OpenAI API key (sk-proj-…")),
    Case("secrets.openai-key", True, "legacy key in Python",
         commit_file("bot.py", f'openai.api_key = "{OPENAI_LEGACY}"\n'), at("bot.py", 1, 19, contains="(sk-…")),
    Case("secrets.openai-key", False, "the example app's placeholder",
         commit_file(".env.docker.example", "TAG=\nOPENAI_API_KEY=sk-your-key-here\n")),
    # secrets.generic-token
    Case("secrets.generic-token", True, "random password in YAML", commit_file("config/app.yml", GENERIC_YAML),
         lambda p, found: (at("config/app.yml", 3, col_of(GENERIC_YAML, GENERIC), contains="password is assigned")(p, found),
                           _assert(found[0].severity == Severity.WARNING))),
    Case("secrets.generic-token", True, "hex secret key in a tracked example",
         commit_file(".env.docker.example", "TAG=\nSECRET_KEY=" + rand(64, "0123456789abcdef") + "\n"),
         at(".env.docker.example", 2, 12, contains="SECRET_KEY is assigned")),
    Case("secrets.generic-token", False, "placeholders, references and paths", commit_file(".env.docker.example", (
        "TAG=\nSECRET_KEY=change_this_to_a_long_random_string\nDB_PASSWORD=${DB_PASSWORD}\n"
        "PASSWORD_FILE=/run/secrets/db_password_2024\nAPI_TOKEN=your-token-here-1234\nAUTH_KEY_ID=" + rand(20) + "\n"))),
    Case("secrets.generic-token", False, "real env file is ignored by git, so it is not scanned",
         lambda p: p.write(".env.docker", "TAG=1\nSECRET_KEY=" + rand(40) + "\n")),
    # git.env-in-history
    Case("git.env-in-history", True, "committed, then untracked",
         commit_file(".env.docker", "TAG=1\nSECRET_KEY=x\n", untrack_after=True),
         lambda p, found: (at(".env.docker", None, None, contains="was committed in")(p, found),
                           _assert(p.git("rev-parse", "--short", "HEAD~1") in found[0].message),
                           _assert(found[0].severity == Severity.WARNING))),
    Case("git.env-in-history", True, "env file in a subdirectory, on another branch only", lambda p: (
        p.git("checkout", "-q", "-b", "old"),
        p.write("deploy/production.env", "A=1\n"),
        p.git("add", "-f", "deploy/production.env"),
        p.git("commit", "-q", "-m", "production settings"),
        p.git("checkout", "-q", "main")),
         at("deploy/production.env", None, None)),
    Case("git.env-in-history", False, "only examples were ever committed", lambda p: None),
    Case("git.env-in-history", False, "still tracked: git.env-tracked reports it",
         commit_file(".env.docker", "TAG=1\n")),
]


def _assert(condition: bool) -> None:
    assert condition


# offline; a firing case's expect (at) looks at the first finding's fix, the others' are not required
test_rule = rule_test(CASES, offline=True, fix_required=False)


# --------------------------------------------------------------------------- the scan itself


def test_findings_never_contain_a_secret(project):
    for i, text in enumerate([SETTINGS_PY, WORKFLOW, README, SLACK_ENV, BILLING_JS, OPENAI_EXAMPLE, JSON_KEY,
                              GENERIC_YAML, PRIVATE_KEY]):
        project.write(f"leaks/f{i}.txt", text)
    project.commit("leaks")
    report = run_checks(load_target(project.root), offline=True)
    secrets = [f for f in report.findings if f.rule.startswith("secrets.")]
    assert len(secrets) >= 9
    shown = "\n".join(f"{f.message} {f.fix}" for f in secrets)
    for token in ALL_TOKENS:
        public = next((len(p) for p in PUBLIC_PREFIXES if token.startswith(p)), 0)  # sk-proj-, ghp_: not secret
        secret = token[public:]
        for start in range(0, len(secret) - 6):
            assert secret[start:start + 6] not in shown, "six characters of a secret are shown"


def test_one_git_grep_for_the_whole_scan(project, monkeypatch):
    import subprocess as sp

    greps = []
    real_popen = sp.Popen

    class CountingPopen(real_popen):
        def __init__(self, argv, *a, **kw):
            if list(argv[:1]) == ["git"] and "grep" in argv:
                greps.append(argv)
            super().__init__(argv, *a, **kw)

    monkeypatch.setattr(sp, "Popen", CountingPopen)
    commit_file("a.py", f'KEY = "{GITHUB_PAT}"\n')(project)
    report = run_checks(load_target(project.root), offline=True)
    assert [f.rule for f in report.findings if f.rule.startswith("secrets.")] == ["secrets.github-token"]
    assert len(greps) == 1


def test_prefetched_git_commands_are_not_left_running(project, monkeypatch):
    from berth.check.rules import secrets_scan

    started = []
    real_start = secrets_scan.start_git

    def start(ctx, key, *args):
        real_start(ctx, key, *args)
        started.append(ctx.__dict__["_berth_git_jobs"][key][1])

    monkeypatch.setattr(secrets_scan, "start_git", start)
    monkeypatch.setattr(secrets_scan, "_report", lambda ctx, rule_id: iter(()))  # nothing collects the grep
    report = run_checks(load_target(project.root), offline=True)
    assert report.findings == ()
    assert len(started) == 2  # the grep and the history log
    assert all(proc.returncode is not None for proc in started)  # ended and reaped, not left running


def test_binary_and_big_files_are_skipped(project):
    project.write("blob.bin", b"\x00\x01" + f"KEY={GITHUB_PAT}".encode() + b"\x00" * 100)
    project.write("big.txt", f"KEY={GITHUB_PAT}\n" + "x" * (1024 * 1024 + 10) + "\n")
    project.write("small.txt", f"KEY={GITHUB_PAT}\n")
    project.commit("files")
    found = [f for f in run_checks(load_target(project.root), offline=True).findings if f.rule == "secrets.github-token"]
    assert [f.file.name for f in found] == ["small.txt"]


def test_crlf_bom_and_latin1_files(project):
    project.write("crlf.env.example", f"A=1\r\nTOKEN={GITHUB_PAT}\r\n".encode())
    project.write("bom.txt", ("\ufeff" + f"TOKEN={GITHUB_PAT}\n").encode())
    project.write("latin1.txt", b"caf\xe9 = 1\nTOKEN=" + GITHUB_PAT.encode() + b"\n")
    project.commit("encodings")
    found = sorted((f.file.name, f.line, f.col) for f in run_checks(load_target(project.root), offline=True).findings
                   if f.rule == "secrets.github-token")
    assert found == [("bom.txt", 1, 7), ("crlf.env.example", 2, 7), ("latin1.txt", 2, 7)]


def test_file_names_with_spaces_and_unicode(project):
    project.write("docs/my notes ü.md", f"token: {GITHUB_PAT}\n")
    project.commit("notes")
    found = [f for f in run_checks(load_target(project.root), offline=True).findings if f.rule == "secrets.github-token"]
    assert [(f.file, f.line) for f in found] == [(project.root / "docs/my notes ü.md", 1)]


def test_project_in_a_subdirectory_of_the_repository(tmp_path, git_env, new_repo, run_git):
    repo = new_repo(tmp_path / "mono")
    app = repo / "services" / "app"
    app.mkdir(parents=True)
    (app / "docker-compose.yml").write_text("services:\n  web:\n    image: nginx\n")
    (app / ".env").write_text("ENVIRONMENT=staging\nSERVER_IP=203.0.113.5\n")
    (app / ".env.docker").write_text("A=1\n")
    (app / "settings.py").write_text(f"KEY = '{GITHUB_PAT}'\n")
    (repo / "other.py").write_text(f"KEY = '{GITHUB_PAT}'\n")  # outside the project: not its business
    (repo / ".gitignore").write_text(".env\n")
    run_git(repo, "add", "-A")
    run_git(repo, "commit", "-q", "-m", "one")
    run_git(repo, "rm", "-q", "--cached", "services/app/.env.docker")
    run_git(repo, "commit", "-q", "-m", "two")
    report = run_checks(load_target(app), offline=True)
    assert [(f.rule, f.file) for f in report.findings if f.rule.startswith("secrets.")] \
        == [("secrets.github-token", app / "settings.py")]
    assert [f.file for f in report.findings if f.rule == "git.env-in-history"] == [app / ".env.docker"]


def test_not_a_git_repository_scans_nothing(project):
    import shutil

    project.write("a.py", f'KEY = "{GITHUB_PAT}"\n')
    shutil.rmtree(project.root / ".git")
    report = run_checks(load_target(project.root), offline=True)
    assert not [f for f in report.findings if f.rule.startswith("secrets.")]
    assert [f.rule for f in report.findings if f.rule == "git.not-a-repo"]


@pytest.mark.parametrize("value, placeholder", [
    ("sk-your-key-here", True), ("change_me", True), ("xxxxxxxxxxxxxxxx", True), ("<your token>", True),
    ("AKIAIOSFODNN7EXAMPLE", True), ("REDACTED", True), ("0000000000", True), (GENERIC, False), (GITHUB_PAT, False),
])
def test_placeholders(value, placeholder):
    assert is_placeholder(value) is placeholder


def test_entropy_matches_gitleaks_definition():
    assert shannon_entropy("") == 0
    assert shannon_entropy("aaaa") == 0
    assert shannon_entropy("ab") == 1
    assert abs(shannon_entropy("0123456789abcdef") - 4.0) < 1e-9


def test_generic_detector_on_many_shapes():
    def rules(line: str) -> list[str]:
        return [h.rule for h in scan_text_line("f", 1, line, lambda: None)]

    token = rand(30)
    assert rules(f"DB_PASSWORD={token}") == ["secrets.generic-token"]
    assert rules(f'"clientSecret": "{token}",') == ["secrets.generic-token"]
    assert rules(f"export AUTH_TOKEN='{token}'") == ["secrets.generic-token"]
    assert rules(f"api_key := \"{token}\"") == ["secrets.generic-token"]
    assert rules(f"OPENAI_API_KEY={OPENAI_PROJ}") == ["secrets.openai-key"]  # the known format wins, once
    assert rules("password = os.environ['DB_PASSWORD_2024_X']") == []
    assert rules("SECRET_KEY = get_random_secret_key()") == []
    assert rules(f"tokenUrl: https://{token}.example.com/") == []
    assert rules(f"session_key_name = {token}") == []
    assert rules(f"MONKEY={token}") == []  # not a secret-looking name
    assert rules(f"x = '{token}'" + " " * 20_000 + "password = 'x'") == []  # long minified lines: not scanned
