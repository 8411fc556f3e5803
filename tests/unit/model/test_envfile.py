"""berth.model.envfile: env files parsed the way Docker Compose v2 parses them.

The table below is checked twice: against berth's parser (always), and against the real
``docker compose config`` (when Compose v2 is installed; no daemon is needed). A seeded random
generator then produces a few hundred more files and compares berth with compose on each.
docs/ENV_FILES.md describes the syntax and the differences from python-dotenv.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from berth.errors import UsageError
from berth.model.envfile import EnvEntry, EnvFile, parse_env_text, read_env_file
from tests.helpers import compose_available

ERROR = "error"  # compose refuses the file (berth reports it as env.syntax)
STRICT = "strict"  # compose accepts it but berth refuses it on purpose (see docs/ENV_FILES.md)

# (env file text, what compose makes of it)
CORNERS: list[tuple[str, dict[str, str] | str]] = [
    ("A=1\n", {"A": "1"}),
    ("A = 1\n", {"A": "1"}),
    ("A\t=  1  \n", {"A": "1"}),
    (" \tA=1\n", {"A": "1"}),
    ("A=\n", {"A": ""}),
    ('A=""\n', {"A": ""}),
    ("A=''\n", {"A": ""}),
    ("A=a b  c\n", {"A": "a b  c"}),
    ("A=a=b\n", {"A": "a=b"}),
    ("A==1\n", {"A": "=1"}),
    # comments
    ("# comment\n  # indented comment\nA=1\n\n\n", {"A": "1"}),
    ("A=1 # comment\n", {"A": "1"}),
    ("A=1# not a comment\n", {"A": "1# not a comment"}),
    ("A=1\t#tab then hash is no comment\n", {"A": "1\t#tab then hash is no comment"}),
    ("A=1\t #c\n", {"A": "1"}),
    ("A=a  #b #c\n", {"A": "a"}),
    ("A= #x\n", {"A": "#x"}),
    ("A=#x\n", {"A": "#x"}),
    ('A="x y" # c\n', {"A": "x y"}),
    ('A="x"#c\n', {"A": "x"}),
    ("A='a # b'\n", {"A": "a # b"}),
    ('A="a # b"\n', {"A": "a # b"}),
    ("A=x #${}\n", {"A": "x"}),
    # quotes and escapes
    ('A="multi\nline"\nB=2\n', {"A": "multi\nline", "B": "2"}),
    ("A='multi\n\nline'\n", {"A": "multi\n\nline"}),
    ('A="x\n#not a comment\ny"\n', {"A": "x\n#not a comment\ny"}),
    ('A="a\\nb"\n', {"A": "a\nb"}),
    ("A='a\\nb'\n", {"A": "a\\nb"}),
    ("A=a\\nb\n", {"A": "a\\nb"}),
    ('A="\\a\\b\\c\\f\\v\\t\\r\\0101\\07\\0"\n', {"A": "\x07\x08\\c\x0c\x0b\t\rA\\7\\"}),
    ('A="\\x41\\101\\u00e9"\n', {"A": "\\x41\\101\\u00e9"}),
    ('A="\\q\\$\\\\"\n', {"A": "\\q$\\"}),
    ('A="x\\\'y"\n', {"A": "x\\'y"}),
    ("A='x\\'y'\n", {"A": "x'y"}),
    ("A='x\\\"y'\n", {"A": 'x\\"y'}),
    ('A="a\\\\"\n', {"A": "a\\"}),
    ("A='a\\\\'\n", {"A": "a\\\\"}),
    ('A="a\\\\\\"b"\n', {"A": 'a\\"b'}),
    ('A="{\\"k\\": 1}"\n', {"A": '{"k": 1}'}),
    ('A="x\\\ny"\n', {"A": "x\\\ny"}),
    ("A=x\\\n", {"A": "x\\"}),
    ('A= "x" \n', {"A": "x"}),
    # export, separators, bare keys
    ("export A=1\n", {"A": "1"}),
    ("export\tA=1\n", {"A": "1"}),
    (" export A=1\n", {"A": "1"}),
    ("exportA=1\n", {"exportA": "1"}),
    ("export=1\n", {"export": "1"}),
    ("export\n", {}),
    ("A:1\n", STRICT),
    ("A : v\n", STRICT),
    ("A:=1\n", STRICT),
    ("A=:\n", {"A": ":"}),
    ("A:\n", STRICT),
    ("A\n", {}),
    ("A  \nB=1\n", {"B": "1"}),
    ("export A\n", {}),
    ("A=1\nA\n", {"A": "1"}),
    ("A=1\nA=2\n", {"A": "2"}),
    ("A=1\nA=\n", {"A": ""}),
    # names compose accepts
    ("a.b=1\n", {"a.b": "1"}),
    ("a-b=1\n", {"a-b": "1"}),
    ("a[0]=1\n", {"a[0]": "1"}),
    ("1A=1\n", {"1A": "1"}),
    ("lower=1\n", {"lower": "1"}),
    ("\u00c9=1\n", {"\u00c9": "1"}),
    # interpolation: unquoted and double-quoted, from the keys above only
    ("B=2\nA=$B\nC='$B'\nD=\"${B}x\"\n", {"A": "2", "B": "2", "C": "$B", "D": "2x"}),
    ("A=$B\nB=2\n", {"A": "", "B": "2"}),
    ("A=${B:-d}\n", {"A": "d"}),
    ("A=${B:-a b}\n", {"A": "a b"}),
    ("A=\"${B:-a b}\"\n", {"A": "a b"}),
    ("A=${B-x}}\n", {"A": "x}"}),
    ("B=x\nA=${B:+set}\n", {"A": "set", "B": "x"}),
    ("A=$\n", {"A": "$"}),
    ("A=$1\n", {"A": "$1"}),
    ("A=$$\n", {"A": "$"}),
    ("A=x$$y\n", {"A": "x$y"}),
    ('A="$$"\n', {"A": "$"}),
    ('A="\\$B"\n', {"A": "$B"}),
    ('A="\\${B}"\n', {"A": "${B}"}),
    ("A=\\${B}\n", {"A": "\\"}),
    ("A='${}'\n", {"A": "${}"}),
    ("A='${B'\n", {"A": "${B"}),
    # whitespace: \r is a space, not a line break; unicode spaces
    ("A=1\r\nB=2\r\n", {"A": "1", "B": "2"}),
    ("A=1\rB=2\n", {"A": "1\rB=2"}),
    ("\ufeffA=1\n", {"A": "1"}),
    ("A=x\xa0\n", {"A": "x"}),
    ("A=\xa0x\n", {"A": "x"}),
    ("A=\u2003x\n", {"A": "\u2003x"}),
    ("A=x\u2003\n", {"A": "x"}),
    ("\u2003A=1\n", {"A": "1"}),
    ("A=\x0bx\n", {"A": "x"}),
    # compose refuses these
    ('A="unterminated\n', ERROR),
    ("A='unterminated\n", ERROR),
    ('A="x\nB=2\n', ERROR),
    ('A="x"y"\n', ERROR),
    ('A="x""y"\n', ERROR),
    ("A='x''y'\n", ERROR),
    ("A='it'\"s\"\n", ERROR),
    ("A='x' junk #c\n", ERROR),
    ("A B=1\n", ERROR),
    ("export A B=1\n", ERROR),
    ("a/b=1\n", ERROR),
    ("A#B=1\n", ERROR),
    ("A #c\n", ERROR),
    ("'A'=1\n", ERROR),
    ('"A"=1\n', ERROR),
    ("A\u2003=1\n", ERROR),
    ("A=${B\n", ERROR),
    ("A=${}\n", ERROR),
    ('A="${}"\n', ERROR),
    ("A.B=1\nC=${A.B}\n", ERROR),
    ("A=${B:-a #b}\n", ERROR),
    ("A=${B:?boom}\n", ERROR),
    ("A=${B?}\n", ERROR),
    ("=1\n", ERROR),
    ("A", ERROR),
    ("A=1\nB", ERROR),
    # compose accepts these, berth refuses them (docs/ENV_FILES.md)
    ('A="q" B=2\n', STRICT),
    ('A="q"x\n', STRICT),
    ('A="1"\rB=2\n', STRICT),
    ("A\tB=1\n", STRICT),
]


def _ours(text: str) -> dict[str, str] | str:
    env = parse_env_text(text, Path("x.env"))
    if env.errors:
        return ERROR
    # what compose ends up with when its own environment is empty: bare keys stay unset
    return {e.key: e.value for e in env.entries if e.value is not None} | {}


@pytest.mark.parametrize("text,expected", CORNERS, ids=[repr(t)[:40] for t, _ in CORNERS])
def test_parser_table(text, expected):
    env = parse_env_text(text, Path("x.env"))
    if expected in (ERROR, STRICT):
        assert env.errors, env
        assert [line for line, _ in env.bad_lines] == sorted({e.line for e in env.errors})
    else:
        assert env.errors == (), env.errors
        assert _ours(text) == expected


def test_values_api_is_unchanged():
    env = parse_env_text("A=1\nB\nA=2\nC=x\nC\n", Path("x.env"))
    assert env.values() == {"A": "2", "B": "", "C": "x"}  # a bare key counts as '' only if unassigned
    assert env.line_of("A") == 3
    assert env.line_of("nope") is None
    assert "B" in env and "D" not in env
    assert EnvEntry("K", "v", 7) == EnvEntry("K", "v", 7)  # positional construction still works
    assert env.entry("C").line == 4


def test_positions_and_syntax_facts():
    text = ('# head\nexport  KEY = "a\nb" # c\nPLAIN=x y # note\n  lower =v\nBARE\nQ=\'s\'\n')
    env = parse_env_text(text, Path("x.env"))
    assert env.errors == ()
    key, plain, lower, bare, q = env.entries
    assert (key.line, key.end_line, key.col, key.stmt_col, key.value_col) == (2, 3, 9, 1, 15)
    assert (key.quote, key.raw_value, key.value, key.export, key.spaced, key.comment) == (
        '"', '"a\nb"', "a\nb", True, True, True)
    assert (plain.raw_value, plain.value, plain.spaced, plain.comment, plain.quote) == ("x y", "x y", False, True, "")
    assert (lower.separator, lower.stmt_col, lower.col, lower.spaced) == ("=", 3, 3, True)
    assert (bare.value, bare.separator) == (None, "")
    assert (q.quote, q.template, q.value) == ("'", None, "s")
    assert env.lines[0] == "# head" and len(env.lines) == 7


def test_colon_form_is_refused_but_its_key_is_kept():
    env = parse_env_text("A=1\nTOKEN: abc\n", Path("x.env"))
    assert [(e.line, e.col, e.kind, e.key) for e in env.errors] == [(2, 6, "colon", "TOKEN")]
    assert env.values() == {"A": "1", "TOKEN": "abc"} and env.entry("TOKEN").separator == ":"
    assert "abc" not in env.errors[0].message


def test_error_positions_and_messages_never_hold_the_value():
    text = 'OK=1\nPASSWORD="s3cr3t-value\nNEXT=2\nTOKEN=abc${x\n'
    env = parse_env_text(text, Path("x.env"))
    assert [(e.line, e.col, e.kind, e.key) for e in env.errors] == [
        (2, 10, "unterminated", "PASSWORD"), (4, 7, "interpolation", "TOKEN")]
    assert env.bad_lines == ((2, 'PASSWORD="s3cr3t-value'), (4, "TOKEN=abc${x"))
    assert all("s3cr3t" not in e.message and "abc" not in e.message for e in env.errors)
    # parsing goes on after an error, so the other keys are still known
    assert env.values()["NEXT"] == "2" and env.values()["OK"] == "1"


def test_read_env_file_errors(tmp_path):
    (tmp_path / "latin1.env").write_bytes(b"A=caf\xe9\n")
    with pytest.raises(UsageError, match="not UTF-8"):
        read_env_file(tmp_path / "latin1.env")
    (tmp_path / "nul.env").write_bytes(b"A=1\x00\n")
    with pytest.raises(UsageError, match="NUL"):
        read_env_file(tmp_path / "nul.env")
    with pytest.raises(UsageError, match="cannot read"):
        read_env_file(tmp_path / "missing.env")
    (tmp_path / "bom.env").write_bytes(b"\xef\xbb\xbfA=1\n")
    assert read_env_file(tmp_path / "bom.env").values() == {"A": "1"}
    assert isinstance(read_env_file(tmp_path / "bom.env"), EnvFile)


# --------------------------------------------------------------------------- against docker compose




needs_compose = pytest.mark.skipif(not compose_available(), reason="Compose v2 (`docker compose`) not available")


def _compose(workdir: Path, model: dict, files: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (workdir / name).write_bytes(text.encode("utf-8"))
    (workdir / "compose.json").write_text(json.dumps(model), encoding="utf-8")
    clean_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(workdir)}
    return subprocess.run(
        ["docker", "compose", "-f", "compose.json", "--project-name", "x", *args, "config", "--format", "json"],
        cwd=workdir, env=clean_env, capture_output=True, text=True, timeout=120, check=False)


def _environments(proc: subprocess.CompletedProcess, services: list[str]) -> dict[str, dict[str, str]]:
    data = json.loads(proc.stdout)["services"]
    # `docker compose config` writes every '$' of a value as '$$'
    return {s: {k: v.replace("$$", "$") for k, v in (data[s].get("environment") or {}).items() if v is not None}
            for s in services}


def _compare_batch(workdir: Path, texts: list[str]) -> list[str]:
    """Texts berth accepts, one service (and env_file) each, in one compose run: the values must match."""
    services = [f"s{i}" for i in range(len(texts))]
    model = {"services": {s: {"image": "busybox", "env_file": [f"{s}.env"]} for s in services}}
    proc = _compose(workdir, model, {f"{s}.env": t for s, t in zip(services, texts)})
    if proc.returncode != 0:
        culprit = next((t for s, t in zip(services, texts) if f"{s}.env" in proc.stderr), None)
        return [f"compose refused a file berth accepts: {culprit!r}: {proc.stderr.strip()}"]
    got = _environments(proc, services)
    return [f"{t!r}: berth {_ours(t)!r}, compose {got[s]!r}" for s, t in zip(services, texts) if got[s] != _ours(t)]


def _compose_refuses(workdir: Path, text: str) -> bool:
    """As berth runs it on the server: the file is compose's --env-file."""
    proc = _compose(workdir, {"services": {"s": {"image": "busybox"}}}, {"app.env": text}, "--env-file", "app.env")
    return proc.returncode != 0


@needs_compose
def test_table_matches_docker_compose(tmp_path):
    claims = CORNERS + [(text, compose) for text, compose, _ in DOTENV_DIFFERENCES]
    accepted = [t for t, e in claims if isinstance(e, dict)]
    problems = _compare_batch(tmp_path / "ok", accepted)

    def check(item):
        n, (text, expected) = item
        refused = _compose_refuses(tmp_path / f"e{n}", text)
        if expected == ERROR and not refused:
            return f"{text!r}: berth refuses it, compose accepts it"
        if expected == STRICT and refused:
            return f"{text!r}: marked as accepted by compose, but compose refuses it (mark it ERROR)"
        return None

    with ThreadPoolExecutor(max_workers=8) as pool:
        rest = [(n, c) for n, c in enumerate(claims) if not isinstance(c[1], dict)]
        problems += [p for p in pool.map(check, rest) if p]
    assert not problems, "\n".join(problems)


# a seeded generator of env files: statements built from pieces that exercise every parser branch

NAMES = ["A", "B", "C", "D", "E", "F", "G", "a_b", "X1", "_U"]
UNQUOTED = ["x", "y z", "1", "$A", "${B}", "${C:-d}", "${D-e f}", "${E:+p}", "$$", "$", "$1", "#", " #c", "\\", "\\n",
            "'", '"', "=", ":", "}", "{", "é", "\t", "\xa0", "a#b", "${F-}", "$$A"]
SINGLE = ["x", " ", "$A", "${B}", "\\'", '"', "\\n", "\\\\", "\n", "#", "é", "\\"]
DOUBLE = ["x", " ", "$A", "${B}", "${C:-q}", "\\\"", "'", "\\n", "\\t", "\\\\", "\\$", "\\$A", "\n", "# c", "\\q",
          "\\0101", "\\0", "é", "$$", "\\\n"]
PREFIXES = ["", "", "", "export ", " ", "\t", "export\t"]
SEPARATORS = ["=", "=", "=", "=", " = ", "= ", " =\t", ":"]
SUFFIXES = ["", "", "", " ", "\t", " # comment", "#c", "\t#c", " #", "\r"]
BREAKS = ["\n", "\n", "\n", "\r\n", "\n\n", "\n# comment\n", "\n  \n"]


def _statement(rng: random.Random) -> str:
    name = rng.choice(NAMES)
    r = rng.random()
    if r < 0.06:
        return rng.choice(PREFIXES) + name  # bare key
    kind = rng.random()
    if kind < 0.45:
        value = "".join(rng.choice(UNQUOTED) for _ in range(rng.randint(0, 4)))
    elif kind < 0.65:
        body = "".join(rng.choice(SINGLE) for _ in range(rng.randint(0, 4)))
        value = f"'{body}'"
    else:
        body = "".join(rng.choice(DOUBLE) for _ in range(rng.randint(0, 4)))
        value = f'"{body}"'
    return rng.choice(PREFIXES) + name + rng.choice(SEPARATORS) + value + rng.choice(SUFFIXES)


def _random_file(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randint(1, 8)):
        parts += [_statement(rng), rng.choice(BREAKS)]
    if rng.random() < 0.1:
        parts.pop()  # no final line break
    return "".join(parts)


SEED = 20261127
FILES = 1200
MAX_ERROR_FILES = 80


@needs_compose
def test_random_files_match_docker_compose(tmp_path):
    rng = random.Random(SEED)
    texts = [_random_file(rng) for _ in range(FILES)]
    accepted = [t for t in texts if not parse_env_text(t, Path("x")).errors]
    refused = [t for t in texts if parse_env_text(t, Path("x")).errors]
    assert len(accepted) > FILES // 4 and len(refused) > 20, (len(accepted), len(refused))
    batches = [accepted[i:i + 150] for i in range(0, len(accepted), 150)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        problems = [p for ps in pool.map(lambda b: _compare_batch(tmp_path / f"b{b[0]}", b[1]), enumerate(batches))
                    for p in ps]

    def check(item):
        n, text = item
        kinds = {e.kind for e in parse_env_text(text, Path("x")).errors}
        if kinds <= {"after-quote", "key-whitespace", "colon"}:
            return None  # berth is stricter on purpose
        if _compose_refuses(tmp_path / f"e{n}", text):
            return None
        return f"{text!r}: berth refuses ({kinds}), compose accepts"

    with ThreadPoolExecutor(max_workers=8) as pool:
        problems += [p for p in pool.map(check, enumerate(refused[:MAX_ERROR_FILES])) if p]
    assert not problems, "\n".join(problems[:20]) + f"\n({len(problems)} problems)"


# --------------------------------------------------------------------------- python-dotenv, for the record

# (text, what compose gives (as the table above verifies), what python-dotenv 1.2.4's parser gives):
# the differences docs/ENV_FILES.md lists. "error" = the parser rejects the line; None = a bare key.
DOTENV_DIFFERENCES = [
    ("A=1\t#c\n", {"A": "1\t#c"}, {"A": "1"}),
    ("A= #x\n", {"A": "#x"}, {"A": ""}),
    ("B=2\nA=$B\n", {"B": "2", "A": "2"}, {"B": "2", "A": "$B"}),
    ("A=${B:-d}\n", {"A": "d"}, {"A": "${B:-d}"}),
    ("A=x$$y\n", {"A": "x$y"}, {"A": "x$$y"}),
    ('A="\\$B"\n', {"A": "$B"}, {"A": "\\$B"}),
    ('A="x\\\'y"\n', {"A": "x\\'y"}, {"A": "x'y"}),
    ('A="\\0101"\n', {"A": "A"}, {"A": "\\0101"}),
    ("A='a\\\\'\n", {"A": "a\\\\"}, {"A": "a\\"}),
    ("A=1\rB=2\n", {"A": "1\rB=2"}, {"A": "1", "B": "2"}),
    ("A=\u2003x\n", {"A": "\u2003x"}, {"A": "x"}),
    ("A=${B\n", ERROR, {"A": "${B"}),
    ("A=${B:?need B}\n", ERROR, {"A": "${B:?need B}"}),
    ("a/b=1\n", ERROR, {"a/b": "1"}),
    ("'A'=1\n", ERROR, {"A": "1"}),
    ("A #c\n", ERROR, {"A": None}),
    ("A=1\nB", ERROR, {"A": "1", "B": None}),
    ("a@b=1\n", ERROR, {"a@b": "1"}),
    ("A=${}\n", ERROR, {"A": "${}"}),
    ("A: 1\n", STRICT, ERROR),
    ("A:1\n", STRICT, {"A:1": None}),
    ('A="q" B=2\n', STRICT, ERROR),
]


@pytest.mark.parametrize("text,compose,python_dotenv", DOTENV_DIFFERENCES, ids=[repr(d[0]) for d in DOTENV_DIFFERENCES])
def test_differences_from_python_dotenv(text, compose, python_dotenv):
    import io

    parser = pytest.importorskip("dotenv.parser")
    got: dict[str, str | None] | str = {}
    for binding in parser.parse_stream(io.StringIO(text)):
        if binding.error:
            got = ERROR
            break
        got[binding.key] = binding.value
    assert got == python_dotenv
    # test_table_matches_docker_compose checks that compose says `compose` too
    assert _ours(text) == (ERROR if compose == STRICT else compose)
