"""`berth check` on a corpus of bad input: every item gets a located finding or a one-paragraph error that
names the file, the exit code berth check documents, and never a traceback.

Exit codes (docs/CHECK.md):
  1  the input is a file the check is about — the compose file, the shipped env file (.env.docker):
     a malformed one is a finding (files.unreadable, env.syntax, compose.invalid-template), reported
     with all the others, at file:line:col where the parser knows it;
  2  the input is what berth needs before it can check at all — .env (the settings), berth.toml:
     one paragraph on stderr naming the file.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass

import pytest

TEN_MB = 10 * 1024 * 1024
BAD_INDENT = b"services:\n  web:\n    image: nginx\n   ports:\n      - 8080:80\n"
BAD_TEMPLATE = b'services:\n  web:\n    image: "nginx:${TAG"\n'
COMPOSE_OK = (b'services:\n  web:\n    image: "nginx:${TAG}"\n    ports:\n      - "8080:80"\n'
              b"    restart: unless-stopped\n    healthcheck:\n"
              b'      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1/"]\n')
BOM = b"\xef\xbb\xbf"


def crlf(data: bytes) -> bytes:
    return data.replace(b"\n", b"\r\n")


@dataclass(frozen=True)
class Bad:
    id: str
    file: str  # relative to the project
    content: bytes
    exit: int
    rule: str | None = None  # the finding expected (exit 1)
    where: str | None = None  # regex for its location (file[:line[:col]]) in the text output
    says: str = ""  # in the finding's message or the error paragraph


CORPUS = [
    # ---- the compose file: findings, exit 1
    Bad("compose-bad-indentation", "docker-compose.yml", BAD_INDENT, 1, "files.unreadable",
        r"docker-compose\.yml:4:4", "not valid YAML"),
    Bad("compose-unclosed-quote", "docker-compose.yml", b'services:\n  web:\n    image: "nginx\n    restart: no\n', 1,
        "files.unreadable", r"docker-compose\.yml:\d+:\d+", "not valid YAML"),
    Bad("compose-unclosed-flow", "docker-compose.yml", b"services: {web: {image: nginx}\n", 1, "files.unreadable",
        r"docker-compose\.yml:\d+:\d+", "not valid YAML"),
    Bad("compose-tab-indentation", "docker-compose.yml", b"services:\n\tweb:\n\t\timage: nginx\n", 1,
        "files.unreadable", r"docker-compose\.yml:2:1", "not valid YAML"),
    Bad("compose-invalid-template", "docker-compose.yml", BAD_TEMPLATE, 1, "compose.invalid-template",
        r"docker-compose\.yml:3:19", "invalid interpolation"),
    Bad("compose-empty-template", "docker-compose.yml", b"services:\n  web:\n    image: nginx\n    command: echo ${}\n", 1,
        "compose.invalid-template", r"docker-compose\.yml:4:19"),
    Bad("compose-binary-junk", "docker-compose.yml", bytes(range(256)) * 16, 1, "files.unreadable",
        r"docker-compose\.yml(:\d+)?", "not UTF-8"),
    Bad("compose-elf", "docker-compose.yml", b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 56, 1, "files.unreadable",
        r"docker-compose\.yml(:\d+)*"),
    Bad("compose-10MB", "docker-compose.yml", COMPOSE_OK + b"#" * TEN_MB + b"\n", 1, "files.unreadable",
        r"docker-compose\.yml", "not plausible"),
    Bad("compose-bom", "docker-compose.yml", BOM + BAD_TEMPLATE, 1, "compose.invalid-template",
        r"docker-compose\.yml:3:19"),
    Bad("compose-crlf", "docker-compose.yml", crlf(BAD_TEMPLATE), 1, "compose.invalid-template",
        r"docker-compose\.yml:3:19"),
    Bad("compose-bom-crlf-clean", "docker-compose.yml", BOM + crlf(COMPOSE_OK), 0),
    Bad("compose-tab-in-quoted-value", "docker-compose.yml",
        COMPOSE_OK.replace(b'    restart:', b'    command: "printf a\tb"\n    restart:'), 0),
    # ---- the shipped env file (.env.docker): findings, exit 1
    Bad("env-unterminated-double-quote", ".env.docker", b'TAG=1.25\nA="abc\nB=2\n', 1, "env.syntax",
        r"\.env\.docker:2", "cannot parse"),
    Bad("env-unterminated-single-quote", ".env.docker", b"TAG=1.25\nA='abc\nB=2\n", 1, "env.syntax",
        r"\.env\.docker:2", "cannot parse"),
    Bad("env-invalid-template", ".env.docker", b"TAG=1.25\nA=${B\n", 1, "env.syntax", r"\.env\.docker:2"),
    Bad("env-binary-junk", ".env.docker", b"TAG=1.25\n" + bytes(range(1, 256)) * 16, 1, "files.unreadable",
        r"\.env\.docker:\d+", "not UTF-8"),
    Bad("env-nul-bytes", ".env.docker", b"TAG=1.25\n\x00\x00\x00", 1, "files.unreadable", r"\.env\.docker",
        "NUL bytes"),
    Bad("env-10MB", ".env.docker", b"TAG=1.25\n" + b"".join(b"KEY_%07d=value\n" % i for i in range(TEN_MB // 18)), 1,
        "files.unreadable", r"\.env\.docker", "not plausible"),
    Bad("env-crlf-unterminated-quote", ".env.docker", crlf(b'TAG=1.25\nA="abc\n'), 1, "env.syntax",
        r"\.env\.docker:2"),
    Bad("env-bom-crlf-clean", ".env.docker", BOM + crlf(b"TAG=1.25\n"), 0),
    Bad("env-tabs", ".env.docker", b"TAG=1.25\n\tB\t=\tx\n", 0),
    # ---- .env (the settings, read before any rule runs): usage errors, exit 2 ...
    Bad("dotenv-binary", ".env", b"ENVIRONMENT=staging\n\x00\x01\x02", 2, says="contains NUL bytes"),
    Bad("dotenv-latin1", ".env", b"ENVIRONMENT=staging\nNAME=caf\xe9\n", 2, says="is not UTF-8"),
    Bad("dotenv-10MB", ".env", b"ENVIRONMENT=staging\n" + b"#" * TEN_MB + b"\n", 2, says="not plausible"),
    # ... unless the line can be skipped: then it is a finding like any other
    Bad("dotenv-unterminated-quote", ".env", b'ENVIRONMENT=staging\nSERVER_IP=203.0.113.5\nSERVER_USER="deploy\n', 1,
        "env.syntax", r"\.env:3", "cannot parse"),
    Bad("dotenv-bom-crlf-clean", ".env", BOM + crlf(b"ENVIRONMENT=staging\nSERVER_IP=203.0.113.5\nSERVER_USER=deploy\n"),
        0),
    # ---- berth.toml: usage errors, exit 2
    Bad("toml-syntax", "berth.toml", b"[check\nignore = 1\n", 2, says="berth.toml is not valid TOML"),
    Bad("toml-binary", "berth.toml", bytes(range(256)), 2, says="berth.toml"),
    Bad("toml-check-unknown-key", "berth.toml", b'[check]\nignroe = ["git.dirty"]\n', 2,
        says="unknown key 'ignroe' in [check] (did you mean 'ignore'?)"),
]


@pytest.fixture
def check(sub_env):
    def run(project, *args: str) -> tuple[subprocess.CompletedProcess, float]:
        started = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "berth", "-C", str(project.root), "check", "--offline", *args],
                              capture_output=True, text=True, env=sub_env(), timeout=120, stdin=subprocess.DEVNULL)
        took = time.monotonic() - started
        assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
        return proc, took
    return run


def _write(project, bad: Bad) -> None:
    project.write(bad.file, bad.content)
    if bad.file not in (".env", ".env.docker"):  # those are ignored by git; the others are committed
        project.commit(f"bad {bad.file}")
        project.push()


@pytest.mark.parametrize("bad", CORPUS, ids=[b.id for b in CORPUS])
def test_text(project, check, bad: Bad):
    _write(project, bad)
    proc, took = check(project)
    assert proc.returncode == bad.exit, (proc.stdout, proc.stderr)
    assert took < 30, f"{took:.1f}s"
    path = str(project.root / bad.file)
    if bad.exit == 2:
        err = proc.stderr.strip()
        assert err.startswith("error: ") and "\n" not in err, proc.stderr  # one paragraph
        assert path in err and bad.says in err
        assert proc.stdout == ""
        return
    lines = proc.stdout.splitlines()
    if bad.exit == 0:
        assert not [ln for ln in lines if re.match(rf"{re.escape(bad.file)}[:\s].*: error: ", ln)], proc.stdout
        return
    located = [ln for ln in lines if re.match(rf"{bad.where}: error: ", ln) and ln.endswith(f"[{bad.rule}]")]
    assert located, proc.stdout
    assert bad.says in located[0]
    assert len(lines) < 400  # a junk file does not flood the terminal


@pytest.mark.parametrize("bad", [b for b in CORPUS if b.exit == 1], ids=[b.id for b in CORPUS if b.exit == 1])
def test_sarif(project, check, bad: Bad):
    """The same finding, machine-readable: SARIF still valid, the location still there."""
    _write(project, bad)
    proc, _ = check(project, "--format", "sarif")
    assert proc.returncode == 1
    log = json.loads(proc.stdout)
    assert log["version"] == "2.1.0"
    results = [r for r in log["runs"][0]["results"] if r["ruleId"] == bad.rule]
    assert results, proc.stdout
    physical = results[0]["locations"][0]["physicalLocation"]
    assert physical["artifactLocation"]["uri"] == bad.file
    expected = re.fullmatch(r"[^:]+(?::(\d+))?(?::(\d+))?", bad.where.replace("\\", ""))
    if expected and expected.group(1):
        assert physical["region"]["startLine"] == int(expected.group(1))
    if expected and expected.group(2):
        assert physical["region"]["startColumn"] == int(expected.group(2))


def test_a_junk_file_with_thousands_of_bad_lines_is_summarised(project, check):
    project.write(".env.docker", "TAG=1.25\n" + "".join(f"junk line {i} 'unclosed\n" for i in range(3000)))
    proc, _ = check(project)
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert len(lines) < 400
    assert any(re.match(r"\.env\.docker: … \d+ more findings not shown \[", ln) for ln in lines)
    doc = json.loads(check(project, "--format", "json")[0].stdout)
    assert sum(f["file"] == ".env.docker" for f in doc["findings"]) > 100  # json keeps them all


def test_include_outside_the_repo_is_a_located_error(project, check):
    # review 13: the server gets only the git checkout (and .env.docker), so an include of a file outside the
    # repo passed berth check and then failed (or read whatever is at that path) on the server
    (project.root.parent / "shared").mkdir()
    (project.root.parent / "shared" / "worker.yml").write_text("services:\n  worker:\n    image: busybox:1.36\n")
    project.write("docker-compose.yml", COMPOSE_OK.decode().replace("services:\n", "include:\n  - ../shared/worker.yml\n"
                                                                     "services:\n", 1))
    project.commit("include a shared file")
    project.push()
    proc, _ = check(project)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    located = [ln for ln in proc.stdout.splitlines() if ln.startswith("docker-compose.yml:2:5: error: ")]
    assert located and located[0].endswith("[compose.outside-repo]"), proc.stdout
    assert "include ../shared/worker.yml is outside the project directory" in located[0]
    assert "the server receives only the git checkout plus .env.docker" in located[0]
