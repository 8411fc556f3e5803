"""Generated Dockerfiles, read by berth's parser and by BuildKit's own: the same instructions, or both refuse.

Each Dockerfile is built from a seed out of the constructs BuildKit's parser has rules for: parser directives
(`# escape=` with a backslash or a backtick, `# syntax=`, `# check=`, and a directive after a comment, which is
a comment), ARG before FROM, line continuations (with comment and blank lines inside, trailing blanks after the
escape), JSON and shell forms (and JSON that is not JSON), flags, heredocs (`<<EOF`, `<<-EOF`, `<<'EOF'`,
`<<"EOF"`, two on one line, a file descriptor), ONBUILD, keywords in any case, CRLF line ends and a BOM; a few get
a defect the parser refuses (an unterminated heredoc, a JSON array of numbers). The reference is the `dockerfile`
package (BuildKit v0.12.5's parser, compiled); bench/dockerfile_parsers.py runs the same comparison on folders
of real Dockerfiles.
"""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path

import pytest

dockerfile = pytest.importorskip("dockerfile")

_BENCH = Path(__file__).resolve().parents[3] / "bench" / "dockerfile_parsers.py"
_spec = importlib.util.spec_from_file_location("dockerfile_parsers", _BENCH)
compare = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(compare)

from berth.model.dockerfile import DockerfileError  # noqa: E402

DOCKERFILES = 600

# instructions as lines; "\\" stands for the escape character, "\n" between the lines of one instruction
BODY = [
    "RUN apt-get update && apt-get install -y curl",
    "RUN set -eux; \\\n    apt-get update; \\\n    apt-get install -y --no-install-recommends ca-certificates",
    "RUN echo a \\\n# a comment inside the continuation\n\n    b",
    "RUN echo trailing \\   \n    blanks",
    'RUN ["sh", "-c", "echo $HOME"]',
    'RUN [ "echo", "not json" ',
    "RUN --mount=type=cache,target=/root/.cache pip install -r requirements.txt",
    "RUN --network=none --security=insecure make",
    "RUN <<EOF\nset -e\necho heredoc\nEOF",
    "RUN <<-EOT\n\techo chomped\n\tEOT",
    "RUN <<'EOF' bash\necho $NOT_EXPANDED\nEOF",
    'RUN <<"END" python3\nprint("hi")\nEND',
    "RUN <<A <<B\necho a\nA\necho b\nB",
    "RUN 3<<EOF cat /dev/fd/3\nthree\nEOF",
    "COPY <<EOF /etc/app.conf\nkey=value\nEOF",
    "COPY --from=build --chown=app:app /src/dist /app",
    "COPY --link --chmod=0755 entrypoint.sh /usr/local/bin/",
    'COPY ["a file", "/dest/"]',
    "ADD https://example.com/archive.tar.gz /tmp/",
    "ADD --checksum=sha256:abc app.tar.gz /opt/",
    'ENV A=1 B="two words" C=\'single\'',
    "ENV OLD_STYLE value with spaces",
    "ENV PATH=/app/bin:$PATH \\\n    LANG=C.UTF-8",
    'LABEL org.opencontainers.image.title="app" version=1.0',
    'LABEL "quoted key"=value',
    "ARG VERSION",
    "ARG VERSION=1.2.3 OTHER",
    "EXPOSE 8080 9090/udp",
    "VOLUME /data /logs",
    'VOLUME ["/data"]',
    "USER app:app",
    "WORKDIR /app",
    "STOPSIGNAL SIGQUIT",
    "MAINTAINER Someone <someone@example.com>",
    'SHELL ["/bin/bash", "-o", "pipefail", "-c"]',
    "HEALTHCHECK NONE",
    "HEALTHCHECK --interval=30s --timeout=3s \\\n  CMD curl -fs http://localhost/ || exit 1",
    'HEALTHCHECK CMD ["wget", "-q", "-O-", "http://localhost/health"]',
    "ONBUILD RUN echo triggered",
    "ONBUILD COPY --chown=app . /app",
    'ONBUILD CMD ["serve"]',
    'CMD ["python", "app.py"]',
    "CMD python app.py --port 8000",
    'ENTRYPOINT ["/entrypoint.sh"]',
    "ENTRYPOINT exec gunicorn app:app",
]
DEFECTS = [
    "RUN <<EOF\necho never terminated",
    "CMD [1, 2]",
]
FROMS = ["FROM python:3.12-slim", "FROM ${BASE} AS build{i}", "FROM --platform=$BUILDPLATFORM golang:1.22 AS builder{i}",
         "from alpine:3.20 as final{i}", "FROM scratch"]  # {i}: stage names are unique (a repeat is refused later)


def generate(seed: int) -> tuple[str, bool]:
    """(Dockerfile text, whether a defect was put in)."""
    rnd = random.Random(seed)
    escape = rnd.choice(["\\", "\\", "`"])
    lines: list[str] = []
    if rnd.random() < 0.3:
        lines.append("# syntax=docker/dockerfile:1")
    if escape == "`" or rnd.random() < 0.1:
        lines.append(f"# escape={escape}")
    if rnd.random() < 0.1:
        lines.append("# check=skip=JSONArgsRecommended")
    if rnd.random() < 0.2:
        lines += ["# a comment ends the directives", "# escape=`"]
    if rnd.random() < 0.4:
        lines.append("ARG BASE=debian:bookworm")
    defect = rnd.random() < 0.1
    for stage in range(rnd.randint(1, 3)):
        lines.append(rnd.choice(FROMS).replace("{i}", str(stage)))
        for _ in range(rnd.randint(1, 8)):
            ins = rnd.choice(BODY)
            if rnd.random() < 0.15:
                keyword, _, rest = ins.partition(" ")
                ins = rnd.choice([keyword.lower(), keyword.title()]) + " " + rest
            lines.append(ins)
            if rnd.random() < 0.15:
                lines.append(rnd.choice(["", "# comment", "   # indented comment"]))
    if defect:
        lines.append(rnd.choice(DEFECTS))
    text = "\n".join(lines).replace("\\", escape) + "\n"
    if rnd.random() < 0.1:
        text = text.replace("\n", "\r\n")
    if rnd.random() < 0.05:
        text = "\ufeff" + text
    return text, defect


def test_the_generator_covers_every_construct_and_both_escapes():
    texts = [generate(seed)[0] for seed in range(DOCKERFILES)]
    for ins in BODY + DEFECTS:
        first = ins.split("\n")[0].split(" ", 1)[0]
        assert any(first in t for t in texts), ins
    assert sum("# escape=`" in t for t in texts) > 50
    assert sum(generate(seed)[1] for seed in range(DOCKERFILES)) > 30


@pytest.mark.parametrize("seed", range(DOCKERFILES))
def test_berth_reads_a_generated_dockerfile_as_buildkit_does(seed):
    text, _ = generate(seed)
    try:
        ours = compare.berth_rows(text)
    except DockerfileError as exc:
        ours = exc
    try:
        theirs = compare.buildkit_rows(text)
    except dockerfile.GoParseError as exc:
        theirs = exc
    if isinstance(theirs, Exception) or isinstance(ours, Exception):
        assert isinstance(ours, DockerfileError) and isinstance(theirs, Exception), (
            f"berth: {ours if isinstance(ours, Exception) else 'reads it'}; "
            f"buildkit: {theirs if isinstance(theirs, Exception) else 'reads it'}\n{text}")
        assert ours.line is not None  # berth's refusal names the line
        return
    assert compare.first_difference(ours, theirs) is None, text
