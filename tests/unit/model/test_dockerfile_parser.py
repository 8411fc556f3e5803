"""berth.model.dockerfile: Dockerfiles read the way BuildKit reads them, with line numbers."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from berth.model.dockerfile import (
    DockerfileError,
    Heredoc,
    arg_pairs,
    healthcheck_test,
    key_value_pairs,
    parse,
    parse_file,
    parse_words,
    unquote,
)


def kw(text: str) -> list[tuple[str, int]]:
    return [(i.keyword, i.line) for i in parse(text).instructions]


def test_instructions_with_lines_and_case_insensitive_keywords():
    d = parse("from alpine:3.20\n\nrun echo hi\nCmd [\"sh\"]\n")
    assert [(i.keyword, i.line, i.end_line, i.value) for i in d.instructions] == [
        ("FROM", 1, 1, "alpine:3.20"), ("RUN", 3, 3, "echo hi"), ("CMD", 4, 4, '["sh"]')]


def test_line_continuation_joins_lines_and_keeps_the_first_line():
    d = parse("FROM alpine:3\nRUN apk add \\\n      curl \\\n      git\nUSER app\n")
    run = d.instructions[1]
    assert (run.line, run.end_line) == (2, 4)
    assert run.value == "apk add       curl       git"
    assert d.instructions[2].line == 5


def test_comments_and_blank_lines_inside_a_continuation_are_skipped():
    d = parse("FROM alpine:3\nRUN a \\\n# a comment\n    # indented comment\n\n    && b\nCMD c\n")
    assert d.instructions[1].value == "a     && b"
    assert (d.instructions[1].line, d.instructions[1].end_line) == (2, 6)
    assert d.instructions[2].line == 7


def test_escaped_escape_is_not_a_continuation():
    d = parse("FROM alpine:3\nRUN echo a\\\\\nCMD b\n")
    assert [i.keyword for i in d.instructions] == ["FROM", "RUN", "CMD"]


def test_trailing_whitespace_after_the_escape_still_continues():
    d = parse("FROM alpine:3\nRUN echo a \\  \t\n  b\n")
    assert d.instructions[1].value == "echo a   b"


def test_comments_are_whole_lines_only():
    d = parse("# top\nFROM alpine:3\n  # indented comment\nRUN make # not a comment\n")
    assert [i.line for i in d.instructions] == [2, 4]
    assert d.instructions[1].value == "make # not a comment"
    with pytest.raises(DockerfileError, match="FROM requires"):
        parse("FROM alpine:3 # not a comment either\n")


def test_escape_directive_changes_the_continuation_character():
    d = parse("# escape=`\nFROM mcr.microsoft.com/windows/servercore:ltsc2022\nRUN dir `\n  C:\\\n")
    assert d.escape == "`"
    assert d.directives == {"escape": "`"}
    assert d.instructions[1].value == "dir   C:\\"


def test_directives_only_count_at_the_top():
    d = parse("# syntax=docker/dockerfile:1\n# Escape = `\nFROM alpine:3\n")
    assert d.directives == {"syntax": "docker/dockerfile:1", "escape": "`"}
    after_comment = parse("# hello\n# escape=`\nFROM alpine:3\nRUN a \\\n b\n")
    assert after_comment.directives == {} and after_comment.escape == "\\"
    assert after_comment.instructions[1].value == "a  b"
    after_blank = parse("\n# escape=`\nFROM alpine:3\n")
    assert after_blank.directives == {}
    unknown_first = parse("# foo=bar\n# escape=`\nFROM alpine:3\n")
    assert unknown_first.directives == {}


@pytest.mark.parametrize("text, line, message", [
    ("# escape=x\nFROM a:1\n", 1, "invalid escape token"),
    ("# escape=\\\n# escape=`\nFROM a:1\n", 2, "only one escape parser directive"),
])
def test_bad_directives(text, line, message):
    with pytest.raises(DockerfileError) as e:
        parse(text)
    assert e.value.line == line and message in e.value.message


def test_json_and_shell_forms():
    d = parse('FROM a:1\nCMD ["python", "-m", "app"]\nENTRYPOINT exec app\nRUN [ "broken"\nSHELL ["/bin/bash", "-c"]\n')
    cmd, entry, run, shell = d.instructions[1:]
    assert cmd.exec_form == ("python", "-m", "app") and cmd.args == ["python", "-m", "app"]
    assert entry.exec_form is None and entry.value == "exec app"
    assert run.exec_form is None and run.value == '[ "broken"'  # not JSON: shell form, as BuildKit does
    assert shell.is_exec_form


def test_json_array_of_non_strings_is_an_error():
    with pytest.raises(DockerfileError) as e:
        parse('FROM a:1\nRUN ["echo", 1]\n')
    assert e.value.line == 2


def test_flags_are_split_off():
    d = parse("FROM --platform=$BUILDPLATFORM golang:1.22 AS build\n"
              "COPY --from=build --chown=app:app /out /app\n"
              "RUN --mount=type=cache,target=/root/.cache go build\n")
    frm, copy_, run = d.instructions
    assert frm.flags == ("--platform=$BUILDPLATFORM",) and frm.args == ["golang:1.22", "AS", "build"]
    assert copy_.flag("from") == "build" and copy_.flag("chown") == "app:app" and copy_.flag("link") is None
    assert copy_.args == ["/out", "/app"]
    assert run.flag("mount") == "type=cache,target=/root/.cache" and run.value == "go build"


def test_heredocs():
    d = parse("FROM a:1\nRUN <<EOF\nset -e\necho hi\nEOF\nCOPY <<-'CONF' /etc/app.conf\n\tx=$y\n\tCONF\nUSER app\n")
    run, copy_, user = d.instructions[1:]
    assert (run.line, run.end_line) == (2, 5)
    assert run.heredocs == (Heredoc("EOF", "set -e\necho hi\n", False, True),)
    assert copy_.heredocs == (Heredoc("CONF", "\tx=$y\n", True, False),)
    assert user.line == 9


def test_two_heredocs_on_one_line():
    d = parse("FROM a:1\nRUN <<A cat && cat <<B\na\nA\nb\nB\nCMD x\n")
    assert [h.name for h in d.instructions[1].heredocs] == ["A", "B"]
    assert d.instructions[2].line == 7


def test_heredoc_is_not_read_in_exec_form_or_other_instructions():
    d = parse('FROM a:1\nCMD ["cat", "<<EOF"]\nENV X=<<EOF\nUSER app\n')
    assert [i.keyword for i in d.instructions] == ["FROM", "CMD", "ENV", "USER"]


def test_stages_names_and_ancestry():
    d = parse("ARG BASE=python:3.12\nFROM ${BASE} AS Base\nUSER app\nFROM golang:1.22 AS build\nRUN go build\n"
              "FROM base AS final\nCOPY --from=build /x /x\n")
    stages = d.stages
    assert [(s.index, s.name, s.base) for s in stages] == [(0, "base", "${BASE}"), (1, "build", "golang:1.22"),
                                                           (2, "final", "base")]
    assert [i.keyword for i in stages[0].instructions] == ["USER"]
    assert d.stage().name == "final" and d.stage("BUILD").index == 1 and d.stage("nope") is None
    assert [s.name for s in d.ancestry(d.stage())] == ["final", "base"]
    assert [i.keyword for i in d.meta_args] == ["ARG"]
    assert d.meta_arg_defaults() == {"BASE": "python:3.12"}


def test_env_label_and_arg_pairs():
    d = parse('FROM a:1\nENV A=1 B="two words" C=it\\ is\nENV OLD form with spaces\nLABEL "x.y"="z"\n'
              "ARG ONE TWO=2 THREE=\n")
    env1, env2, label, arg = d.instructions[1:]
    assert key_value_pairs(env1) == [("A", "1"), ("B", "two words"), ("C", "it is")]
    assert key_value_pairs(env2) == [("OLD", "form with spaces")]
    assert key_value_pairs(label) == [('"x.y"', "z")]
    assert arg_pairs(arg) == [("ONE", None), ("TWO", "2"), ("THREE", "")]


def test_words_and_unquote():
    assert parse_words('a "b c" d\\ e \'f g\'') == ['a', '"b c"', 'd\\ e', "'f g'"]
    assert unquote('"a \\"b\\""') == 'a "b"'
    assert unquote("'it''s'") == "its"


def test_healthcheck_forms():
    d = parse('FROM a:1\nHEALTHCHECK NONE\nHEALTHCHECK --interval=5s CMD ["curl", "-f", "x"]\nHEALTHCHECK CMD curl -f x\n')
    assert [healthcheck_test(i) for i in d.instructions[1:]] == [
        ("NONE",), ("CMD", "curl", "-f", "x"), ("CMD-SHELL", "curl -f x")]


def test_onbuild_wraps_an_instruction():
    d = parse("FROM a:1\nONBUILD RUN make\n")
    assert d.instructions[1].child.keyword == "RUN"


@pytest.mark.parametrize("text, line, message", [
    ("", 1, "no instructions"),
    ("# just a comment\n", 1, "no instructions"),
    ("FROM a:1\nFOO bar\n", 2, "unknown instruction: FOO"),
    ("RUN make\nFROM a:1\n", 1, "before the first FROM"),
    ("ARG X\n", 1, "no FROM"),
    ("FROM\n", 1, "FROM requires"),
    ("FROM a b\n", 1, "FROM requires"),
    ("FROM a:1 AS 9lives\n", 1, "invalid name for build stage"),
    ("FROM a:1 AS x\nFROM b:1 AS X\n", 2, "duplicate stage name"),
    ("FROM a:1\nENV\n", 2, "ENV requires"),
    ("FROM a:1\nENV A=1 B\n", 2, "can't find ="),
    ("FROM a:1\nCOPY x\n", 2, "COPY requires at least two"),
    ("FROM a:1\nUSER\n", 2, "USER requires"),
    ("FROM a:1\nSHELL /bin/sh -c\n", 2, "JSON form"),
    ("FROM a:1\nHEALTHCHECK\n", 2, "HEALTHCHECK requires"),
    ("FROM a:1\nHEALTHCHECK NONE now\n", 2, "takes no arguments"),
    ("FROM a:1\nHEALTHCHECK RUN x\n", 2, "unknown type"),
    ("FROM a:1\nHEALTHCHECK --interval=1s CMD\n", 2, "missing command"),
    ("FROM a:1\nONBUILD FROM b\n", 2, "isn't allowed as an ONBUILD trigger"),
    ("FROM a:1\nRUN <<EOF\necho\n", 2, "unterminated heredoc"),
])
def test_errors_carry_the_line(text, line, message):
    with pytest.raises(DockerfileError) as e:
        parse(text)
    assert e.value.line == line
    assert message in e.value.message


def test_crlf_and_bom():
    d = parse("\ufeffFROM a:1\r\nRUN a \\\r\n  b\r\nCMD x\r\n")
    assert [(i.keyword, i.line) for i in d.instructions] == [("FROM", 1), ("RUN", 2), ("CMD", 4)]
    assert d.instructions[1].value == "a   b"


def test_parse_file_errors(tmp_path: Path):
    missing = tmp_path / "Dockerfile"
    with pytest.raises(DockerfileError, match="cannot read"):
        parse_file(missing)
    missing.write_bytes(b"FROM a:1\nLABEL x=\xff\n")
    with pytest.raises(DockerfileError) as e:
        parse_file(missing)
    assert e.value.line == 2 and e.value.path == missing
    missing.write_bytes(b"\x00\x01\x02")
    with pytest.raises(DockerfileError, match="NUL"):
        parse_file(missing)
    missing.write_text("FROM a:1\nBAD x\n")
    with pytest.raises(DockerfileError) as e:
        parse_file(missing)
    assert (e.value.line, e.value.path) == (2, missing)


LINE = st.text(alphabet=st.sampled_from(list("FROMRUNCOPYENVARGUSERCMD ab=\"'\\`#[]{}$<-:\t0\r")), max_size=30)


@settings(max_examples=300, deadline=None)
@given(st.lists(LINE, max_size=12))
def test_any_text_parses_or_raises_a_located_dockerfile_error(lines):
    text = "\n".join(lines)
    try:
        d = parse(text)
    except DockerfileError as exc:
        assert exc.line is None or 1 <= exc.line <= max(len(text.split("\n")), 1)
        return
    for ins in d.instructions:
        assert 1 <= ins.line <= ins.end_line
    d.stages  # noqa: B018
