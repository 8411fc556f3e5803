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


# --------------------------------------------------------------------------- unbounded and unusable input
#
# Review §6 (a 506-byte alias bomb took 74 s and 6 GB; /dev/zero or a FIFO as a compose or env file read
# forever), §7 (committed ed25519/ECDSA keys passed) and §16 (tracebacks on VERIFY_TIMEOUT=abc, a deeply
# nested berth.toml, a NUL byte in a host). Each input goes to every command that reads it; each command
# must answer within BUDGET seconds (a subprocess timeout), without a traceback, with the exit code that
# command documents:
#   check      1 and the finding, located (files.unreadable, dockerfile.invalid, settings.*, secrets.*),
#              or 2 for what it needs before it can check (.env, berth.toml);
#   plan       0 with the check's finding shown (plan only shows what deploy would do), or 2 as check;
#   config, k8s render, status, logs, doctor
#              2: one paragraph that names the file (and line);
#   deploy     1 "check found ... nothing was sent to any server", or 2 before the check: never connects
#              (the hosts are TEST-NET addresses: a connection attempt would outlast the budget).

BUDGET = 2.0  # seconds for one command, python's start-up included (a clean `berth check` takes ~0.5 s)

CHECK, PLAN, CONFIG, K8S, DEPLOY = ("check", "--offline"), ("plan",), ("config",), ("k8s", "render"), ("deploy", "--yes")
STATUS, LOGS, DOCTOR = ("status",), ("logs",), ("doctor",)
EVERY = (CHECK, PLAN, CONFIG, K8S, DEPLOY)
COMPOSE_BUILD = b"services:\n  web:\n    build: .\n    image: app:1\n    restart: unless-stopped\n"


def alias_bomb(levels: int) -> bytes:
    """The review's bomb: each level a list of nine aliases of the level below; 6 levels is ~500 bytes."""
    lines = ['x-l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"x-l{i}: &l{i} [{','.join([f'*l{i - 1}'] * 9)}]" for i in range(1, levels + 1)]
    return "\n".join([*lines, "services:", "  web:", "    image: nginx", f"    command: *l{levels}", ""]).encode()


def nested_toml(levels: int) -> bytes:
    return ('[environments.staging]\nuser = "deploy"\nhosts = ' + "[" * levels + '"203.0.113.5"' + "]" * levels
            + "\n").encode()


@dataclass(frozen=True)
class Unusable:
    id: str
    file: str  # relative to the project
    make: bytes | str  # the content, or "fifo", "symlink:TARGET", "ssh-keygen ARGS", "openssl ARGS"
    commands: tuple[tuple[str, ...], ...]
    rule: str | None = None  # check's finding (exit 1); None: every command exits 2
    where: str = ""  # regex for the finding's location in check's text output
    says: str = ""  # in the finding, or in the error paragraph
    before: bytes | None = None  # written to docker-compose.yml first (a build for the Dockerfile cases)
    dotenv: str = ""  # appended to .env
    deploy_exit: int = 1  # 2: deploy refuses the settings before its check


def _devices(id_: str, file: str, commands, rule=None, where="", **kw) -> list[Unusable]:
    """The same file as a FIFO, as a symlink to /dev/zero and to /dev/urandom (the last with fewer commands)."""
    return [Unusable(f"{id_}-fifo", file, "fifo", commands, rule, where, "it is a FIFO (named pipe)", **kw),
            Unusable(f"{id_}-dev-zero", file, "symlink:/dev/zero", commands, rule, where,
                     "it is a character device (a symlink to /dev/zero)", **kw),
            Unusable(f"{id_}-dev-urandom", file, "symlink:/dev/urandom", commands[:2], rule, where,
                     "a symlink to /dev/urandom", **kw)]


UNUSABLE = [
    # ---- the compose file: a finding for check, exit 2 for the commands that need it
    Unusable("compose-alias-bomb-4", "docker-compose.yml", alias_bomb(4), EVERY, "files.unreadable",
             r"docker-compose\.yml", "contains excessive aliasing"),
    Unusable("compose-alias-bomb-6", "docker-compose.yml", alias_bomb(6), EVERY, "files.unreadable",
             r"docker-compose\.yml", "contains excessive aliasing"),  # the review's 506 bytes: 74 s
    Unusable("compose-alias-bomb-9", "docker-compose.yml", alias_bomb(9), (CHECK, CONFIG, K8S), "files.unreadable",
             r"docker-compose\.yml", "contains excessive aliasing"),
    Unusable("compose-alias-bomb-30", "docker-compose.yml", alias_bomb(30), (CHECK, PLAN), "files.unreadable",
             r"docker-compose\.yml", "contains excessive aliasing"),
    Unusable("compose-alias-cycle", "docker-compose.yml", b"services:\n  web: &a\n    image: nginx\n    x: [*a]\n",
             (CHECK, CONFIG, K8S), "files.unreadable", r"docker-compose\.yml:2:8", "contains itself"),
    Unusable("compose-nested-5000", "docker-compose.yml",
             b"services:\n  web:\n    image: nginx\n    x: " + b"[" * 5000 + b"]" * 5000 + b"\n", (CHECK, CONFIG),
             "files.unreadable", r"docker-compose\.yml:4:\d+", "nests more than 100 levels deep"),
    *_devices("compose", "docker-compose.yml", EVERY, "files.unreadable", r"docker-compose\.yml"),
    # ---- the shipped env file (.env.docker)
    *_devices("app-env", ".env.docker", EVERY, "files.unreadable", r"\.env\.docker"),
    Unusable("app-env-30MB", ".env.docker", b"TAG=1.25\n" + b"".join(b"KEY_%07d=value%07d\n" % (i, i)
                                                                      for i in range(30 * 1024 * 1024 // 26)),
             (CHECK, PLAN, CONFIG, DEPLOY), "files.unreadable", r"\.env\.docker", "not plausible"),  # plan 60 s
    # ---- .env and berth.toml: what every command needs first, exit 2
    *_devices("dotenv", ".env", (CHECK, STATUS, PLAN, CONFIG, K8S, DEPLOY)),
    *_devices("toml", "berth.toml", (CHECK, PLAN, CONFIG, K8S, DEPLOY), deploy_exit=2),
    Unusable("toml-nested-500", "berth.toml", nested_toml(500), (CHECK, PLAN, CONFIG, K8S, DEPLOY, DOCTOR),
             says="nests arrays or tables more than 32 levels deep"),  # the review's: RecursionError
    Unusable("toml-nested-5000", "berth.toml", nested_toml(5000), (CHECK, CONFIG),
             says="nests arrays or tables more than 32 levels deep"),
    # ---- a Dockerfile compose builds
    *_devices("dockerfile", "Dockerfile", (CHECK, K8S, PLAN, DEPLOY), "dockerfile.invalid", r"Dockerfile",
              before=COMPOSE_BUILD),
    # ---- settings values
    Unusable("verify-timeout-abc", ".env", "", (CHECK, PLAN, CONFIG, DEPLOY), "settings.verify-timeout", r"\.env:4",
             "verify_timeout 'abc' is not a whole number of seconds from 1 to 3600", dotenv="VERIFY_TIMEOUT=abc\n"),
    *[Unusable(f"verify-timeout-{value}", ".env", "", (CHECK, CONFIG), "settings.verify-timeout", r"\.env:4",
               f"verify_timeout '{value}' is not", dotenv=f"VERIFY_TIMEOUT={value}\n") for value in ("0", "-5", "99999", "1.5")],
    Unusable("host-nul", "berth.toml", b'[environments.staging]\nhosts = ["203.0.113.10\\u0000"]\n',
             (CHECK, PLAN, DEPLOY, STATUS, LOGS, DOCTOR), "settings.host", r"berth\.toml:2", "contains a NUL byte",
             deploy_exit=2),
    Unusable("host-escape", ".env", "", (CHECK, DEPLOY, STATUS), "settings.host", r"\.env:4",
             "contains the control character U+001B", dotenv="SERVER_IP=203.0.113.5\x1b[2J\n", deploy_exit=2),
    Unusable("user-nul", "berth.toml", b'[environments.staging]\nhosts = ["203.0.113.5"]\nuser = "deploy\\u0000"\n',
             (CHECK, DEPLOY, DOCTOR), "settings.user", r"berth\.toml:3", "contains a NUL byte", deploy_exit=2),
    Unusable("user-escape", ".env", "", (CHECK, STATUS), "settings.user", r"\.env:4",
             "contains the control character U+001B", dotenv="SERVER_USER=deploy\x1b]0;owned\x07\n", deploy_exit=2),
    Unusable("user-option", ".env", "", (CHECK, LOGS), "settings.user", r"\.env:4", "starts with '-'",
             dotenv="SERVER_USER=-oProxyCommand=x\n", deploy_exit=2),
    # ---- private keys committed (made at test time, never committed to berth's repository)
    Unusable("key-ed25519-is-PEM_KEY_PATH", "deploy_key", "ssh-keygen -t ed25519 -N ''", (CHECK, PLAN, DEPLOY),
             "secrets.private-key", r"deploy_key:1:1", "contains a private key", dotenv="PEM_KEY_PATH=deploy_key\n"),
    Unusable("key-ecdsa", "id_ecdsa", "ssh-keygen -t ecdsa -N ''", (CHECK,), "secrets.private-key", r"id_ecdsa:1:1"),
    Unusable("key-rsa", "id_rsa", "ssh-keygen -t rsa -b 2048 -N ''", (CHECK,), "secrets.private-key", r"id_rsa:1:1"),
    Unusable("key-dsa", "id_dsa", "ssh-keygen -t dsa -N ''", (CHECK,), "secrets.private-key", r"id_dsa:1:1"),
    Unusable("key-pkcs8", "key.pem", "openssl -algorithm ed25519", (CHECK,), "secrets.private-key", r"key\.pem:1:1"),
]
# the git remote and included files: test_include_outside_the_repo_is_a_located_error above and
# test_a_token_in_the_remote_url_never_reaches_any_output below


def _make(project, bad: Unusable) -> None:
    import os
    import shlex
    import shutil

    if bad.before is not None:
        project.write("docker-compose.yml", bad.before)
    if bad.dotenv:
        project.write(".env", project.DOTENV + bad.dotenv)
    path = project.root / bad.file
    if isinstance(bad.make, bytes):
        project.write(bad.file, bad.make)
    elif bad.make:
        path.unlink(missing_ok=True)
        kind, _, arg = bad.make.partition(":") if bad.make.startswith(("fifo", "symlink")) else bad.make.partition(" ")
        if kind == "fifo":
            os.mkfifo(path)
        elif kind == "symlink":
            path.symlink_to(arg)
        else:  # a key
            if shutil.which(kind) is None:
                pytest.skip(f"no {kind}")
            argv = ([kind, "-q", "-C", "", "-f", str(path)] if kind == "ssh-keygen" else
                    [kind, "genpkey", "-out", str(path)]) + shlex.split(arg)
            made = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
            if made.returncode != 0:
                pytest.skip(f"{kind} cannot make this key here: {made.stderr.strip()}")
            path.chmod(0o600)
            path.with_name(path.name + ".pub").unlink(missing_ok=True)
    if bad.file not in (".env", ".env.docker"):  # those are ignored by git; the others are committed
        if bad.make == "fifo":  # git cannot hold a FIFO: the file is no longer tracked
            project.git("rm", "-q", "--cached", "--ignore-unmatch", bad.file)
        else:
            project.git("add", "-A")
            project.git("add", "-f", bad.file)
        project.git("commit", "-q", "--allow-empty", "-m", f"bad {bad.file}")
        project.push()


def _expected_exit(bad: Unusable, command: tuple[str, ...]) -> int:
    if bad.rule is None:
        return 2
    if command == CHECK:
        return 1
    if command == PLAN:
        return 0
    if command == DEPLOY:
        return bad.deploy_exit
    return 2


@pytest.mark.parametrize("bad", UNUSABLE, ids=[b.id for b in UNUSABLE])
def test_unusable_input_is_refused_fast_by_every_command(project, sub_env, bad: Unusable):
    _make(project, bad)
    for command in bad.commands:
        shown = " ".join(command)
        try:
            proc = subprocess.run([sys.executable, "-m", "berth", "-C", str(project.root), *command],
                                  capture_output=True, text=True, env=sub_env(), timeout=BUDGET,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            pytest.fail(f"berth {shown} did not finish within {BUDGET} s")
        out = proc.stdout + proc.stderr
        assert "Traceback" not in out, (shown, proc.stderr)
        expected = _expected_exit(bad, command)
        assert proc.returncode == expected, (shown, proc.stdout, proc.stderr)
        if expected == 2:
            err = proc.stderr.strip()
            assert err.startswith("error: ") and "\n" not in err, (shown, proc.stderr)  # one paragraph
            if bad.rule is None:
                assert str(project.root / bad.file) in err and bad.says in err, (shown, err)
            else:
                assert bad.says in err and re.search(bad.where.replace(r"\.env", r"/\.env"), err), (shown, err)
        elif command == CHECK:
            located = [ln for ln in proc.stdout.splitlines()
                       if re.match(rf"{bad.where}: error: ", ln) and ln.endswith(f"[{bad.rule}]")]
            assert located and bad.says in located[0], (shown, proc.stdout)
        elif command == PLAN:
            assert f"[{bad.rule}]" in proc.stdout and "deploy would stop here" in proc.stdout, (shown, proc.stdout)
        else:  # deploy, stopped by its check
            assert "check found" in proc.stderr and "nothing was sent to any server" in proc.stderr, (shown, out)


REMOTE_TOKEN = "ghp_C0rpusT0kenC0rpusT0kenC0rpusT0ken0"


@pytest.mark.parametrize("remote", [
    f"https://deploy:{REMOTE_TOKEN}@127.0.0.1:9/org/app.git", f"https://{REMOTE_TOKEN}@127.0.0.1:9/org/app.git",
], ids=["password", "user"])
def test_a_token_in_the_remote_url_never_reaches_any_output(project, sub_env, remote):
    # review 8: a token in origin's URL was printed by plan (4 times), by check's git errors and in JSON
    import base64
    from urllib.parse import quote

    project.git("remote", "set-url", "origin", remote)
    forms = (REMOTE_TOKEN, quote(REMOTE_TOKEN), base64.b64encode(REMOTE_TOKEN.encode()).decode()[:32])
    outputs = {}
    for command in (CHECK, ("check", "--offline", "--format", "json"), PLAN, CONFIG, ("config", "--format", "json")):
        proc = subprocess.run([sys.executable, "-m", "berth", "-C", str(project.root), *command],
                              capture_output=True, text=True, env=sub_env(), timeout=30, stdin=subprocess.DEVNULL)
        assert "Traceback" not in proc.stderr, proc.stderr
        outputs[" ".join(command)] = proc.stdout + proc.stderr
    assert "[git.remote-credentials]" in outputs["check --offline"]  # the check says why, without the token
    assert "https://127.0.0.1:9/org/app.git" in outputs["plan"]  # the remote is still shown, as the server gets it
    for shown, out in outputs.items():
        leaked = any(form in out for form in forms)
        assert not leaked, f"berth {shown} printed the remote's token"
