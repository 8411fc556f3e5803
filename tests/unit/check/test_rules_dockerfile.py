"""The Dockerfile rules (berth/check/rules/dockerfile.py), firing and quiet.

Every case builds service `app` from `app/Dockerfile` (unless it says otherwise) in a real project
from the `project` fixture; findings must point at the Dockerfile's line. CASES is collected by
test_check_rules.test_every_rule_has_a_firing_and_a_quiet_case and run here, with the harness in rule_cases.py.
"""

import pytest

import berth.check.rules  # noqa: F401  (registers the rules)
from berth.check import run_checks
from berth.check.findings import Finding, Severity
from berth.configuration.target import load_target
from tests.helpers.rule_cases import Case, expect_first, rule_test, run_case, write_files

COMPOSE = """\
services:
  app:
    build: ./app
    restart: unless-stopped
    healthcheck:
      test: ["CMD", "true"]
"""

GOOD = """\
FROM python:3.12-slim
RUN useradd --system app
COPY . /app
USER app
CMD ["python", "-m", "app"]
"""


def case(rule: str, fires: bool, name: str, *, dockerfile: str | bytes | None = GOOD, compose: str = COMPOSE,
         files: dict[str, str] | None = None, app_env: str = "", line: int | None = None,
         file: str = "app/Dockerfile", count: int | None = None, contains: str = "",
         severity: Severity | None = None) -> Case:
    """A Case that writes the given files and, when it fires, looks at its first finding (by line).

    dockerfile: app/Dockerfile (None: not written); compose: docker-compose.yml; files: more files to
    write; app_env: appended to .env.docker. The first finding must be in `file`, line: its line;
    count: how many; contains: a part of its message; severity: its severity. None: not checked.
    """
    setup = write_files({"docker-compose.yml": compose, "app/Dockerfile": dockerfile, **(files or {})}, app_env)
    return Case(rule, fires, name, setup, expect_first(file, line=line, count=count, contains=contains,
                                                       severity=severity, by_column=False))


def run(project, case: Case) -> list[Finding]:
    """Set the case up and run every check (offline): the findings of its rule."""
    return run_case(project, case, offline=True)[1]


def with_compose(extra: str) -> str:
    return COMPOSE + extra


NO_HEALTH_COMPOSE = "services:\n  app:\n    build: ./app\n    restart: unless-stopped\n"

CASES: list[Case] = [
    # dockerfile.missing
    case("dockerfile.missing", True, "no Dockerfile in the context", dockerfile=None, files={"app/main.py": ""},
         file="docker-compose.yml", line=3, contains="app/Dockerfile does not exist"),
    case("dockerfile.missing", True, "build.dockerfile names a missing file",
         compose=COMPOSE.replace("build: ./app", "build:\n      context: app\n      dockerfile: Dockerfile.prod"),
         file="docker-compose.yml", line=5, contains="app/Dockerfile.prod does not exist"),
    case("dockerfile.missing", True, "context does not exist", dockerfile=None,
         compose=COMPOSE.replace("./app", "./nowhere"), file="docker-compose.yml", line=3,
         contains="build context ./nowhere does not exist"),
    case("dockerfile.missing", False, "Dockerfile present"),
    case("dockerfile.missing", False, "dockerfile relative to the context",
         compose=COMPOSE.replace("build: ./app", "build:\n      context: .\n      dockerfile: app/Dockerfile")),
    case("dockerfile.missing", False, "remote context",
         compose=COMPOSE.replace("./app", "https://github.com/example/app.git#main")),
    # dockerfile.invalid
    case("dockerfile.invalid", True, "unknown instruction", dockerfile=GOOD.replace("COPY", "COPPY"), line=3,
         contains="unknown instruction: COPPY"),
    case("dockerfile.invalid", True, "unterminated heredoc", dockerfile=GOOD + "RUN <<EOF\necho hi\n", line=6,
         contains="unterminated heredoc"),
    case("dockerfile.invalid", True, "JSON array of non-strings", dockerfile=GOOD + "CMD [\"python\", 3]\n",
         line=6, contains="must be comprised of strings"),
    case("dockerfile.invalid", True, "ENV without a value", dockerfile=GOOD + "ENV JUST_A_NAME\n", line=6),
    case("dockerfile.invalid", True, "instruction before FROM", dockerfile="RUN true\n" + GOOD, line=1,
         contains="before the first FROM"),
    case("dockerfile.invalid", True, "not UTF-8", dockerfile=b"FROM alpine:3.20\nLABEL who=caf\xe9\n", count=1,
         line=2, contains="not UTF-8"),
    case("dockerfile.invalid", True, "inline Dockerfile, located in the compose file", dockerfile=None,
         compose=COMPOSE.replace("build: ./app", "build:\n      context: .\n      dockerfile_inline: |\n"
                                                 "        FROM alpine:3.20\n        RUNN true\n"),
         file="docker-compose.yml", line=7, contains="unknown instruction: RUNN"),
    case("dockerfile.invalid", True, "build.target is not a stage",
         compose=COMPOSE.replace("build: ./app", "build:\n      context: app\n      target: prod"),
         file="docker-compose.yml", line=5, contains="target 'prod'"),
    case("dockerfile.invalid", False, "well-formed"),
    case("dockerfile.invalid", False, "escape directive, continuations, comments, heredoc",
         dockerfile="# escape=`\nFROM python:3.12-slim\nRUN echo a `\n  # comment\n  && echo b\n"
                    "COPY <<EOF /etc/x.conf\nx=1\nEOF\nUSER app\nCMD [\"python\"]\n"),
    # dockerfile.base-unpinned
    case("dockerfile.base-unpinned", True, "no tag", dockerfile=GOOD.replace("python:3.12-slim", "python"),
         line=1, contains="base image python has no tag"),
    case("dockerfile.base-unpinned", True, ":latest", dockerfile=GOOD.replace("3.12-slim", "latest"), line=1,
         contains="is :latest"),
    case("dockerfile.base-unpinned", True, "from an ARG default",
         dockerfile="ARG BASE=node\n" + GOOD.replace("python:3.12-slim", "${BASE}"), line=2,
         contains="node (from ${BASE}) has no tag"),
    case("dockerfile.base-unpinned", True, "compose build args override a pinned default",
         dockerfile="ARG PY=3.12\n" + GOOD.replace("python:3.12-slim", "python:${PY}"),
         compose=COMPOSE.replace("build: ./app", "build:\n      context: app\n      args:\n        PY: latest"),
         line=2, contains="python:latest"),
    case("dockerfile.base-unpinned", True, "builder stage too",
         dockerfile="FROM golang AS build\nRUN go build\n" + GOOD, line=1),
    case("dockerfile.base-unpinned", False, "pinned"),
    case("dockerfile.base-unpinned", False, "scratch, digests and earlier stages",
         dockerfile="FROM golang@sha256:" + "b" * 64 + " AS build\nFROM build AS test\nFROM scratch\n"
                    "COPY --from=build /app /app\nUSER 1000\nCMD [\"/app\"]\n"),
    case("dockerfile.base-unpinned", False, "ARG without a default cannot be judged",
         dockerfile="ARG BASE\n" + GOOD.replace("python:3.12-slim", "${BASE}")),
    # dockerfile.runs-as-root
    case("dockerfile.runs-as-root", True, "no USER", dockerfile=GOOD.replace("USER app\n", ""), line=1,
         contains="runs as root: its final stage (python:3.12-slim) sets no USER"),
    case("dockerfile.runs-as-root", True, "USER root at the end", dockerfile=GOOD + "USER root\n", line=6,
         contains="USER root"),
    case("dockerfile.runs-as-root", True, "USER 0:0", dockerfile=GOOD.replace("USER app", "USER 0:0"), line=4),
    case("dockerfile.runs-as-root", True, "USER only in the builder stage",
         dockerfile="FROM node:20 AS build\nUSER node\nRUN npm ci\nFROM nginx:1.27\nCOPY --from=build /dist /usr/share/nginx/html\n",
         line=4),
    case("dockerfile.runs-as-root", False, "USER app"),
    case("dockerfile.runs-as-root", False, "inherited from an earlier stage",
         dockerfile="FROM python:3.12-slim AS base\nUSER app\nFROM base\nCMD [\"python\"]\n"),
    case("dockerfile.runs-as-root", False, "compose user: overrides it",
         dockerfile=GOOD.replace("USER app\n", ""), compose=with_compose("    user: \"1000:1000\"\n")),
    case("dockerfile.runs-as-root", False, "target stage has a USER",
         dockerfile="FROM python:3.12-slim AS prod\nUSER app\nFROM python:3.12-slim AS debug\n",
         compose=COMPOSE.replace("build: ./app", "build:\n      context: app\n      target: prod")),
    # dockerfile.add-local
    case("dockerfile.add-local", True, "ADD of the context", dockerfile=GOOD.replace("COPY", "ADD"), line=3,
         contains="ADD .: use COPY"),
    case("dockerfile.add-local", True, "exec form", dockerfile=GOOD + "ADD [\"conf\", \"/etc/app/\"]\n", line=6),
    case("dockerfile.add-local", False, "COPY"),
    case("dockerfile.add-local", False, "ADD of a URL and an archive",
         dockerfile=GOOD + "ADD https://example.com/tool.tgz /opt/\nADD vendor.tar.gz /opt/\n"),
    # dockerfile.add-url-or-archive
    case("dockerfile.add-url-or-archive", True, "URL without checksum",
         dockerfile=GOOD + "ADD https://example.com/tool /usr/local/bin/tool\n", line=6,
         contains="downloads https://example.com/tool", severity=Severity.INFO),
    case("dockerfile.add-url-or-archive", True, "local archive", dockerfile=GOOD + "ADD vendor.tar.gz /opt/\n",
         line=6, contains="unpacks vendor.tar.gz"),
    case("dockerfile.add-url-or-archive", False, "URL with --checksum",
         dockerfile=GOOD + "ADD --checksum=sha256:" + "c" * 64 + " https://example.com/tool /usr/local/bin/\n"),
    case("dockerfile.add-url-or-archive", False, "COPY"),
    # dockerfile.shell-form-cmd
    case("dockerfile.shell-form-cmd", True, "CMD shell form",
         dockerfile=GOOD.replace('CMD ["python", "-m", "app"]', "CMD python -m app"), line=5,
         contains="CMD python -m app is in shell form"),
    case("dockerfile.shell-form-cmd", True, "ENTRYPOINT shell form",
         dockerfile=GOOD + "ENTRYPOINT /entrypoint.sh\n", line=6, contains="ENTRYPOINT"),
    case("dockerfile.shell-form-cmd", True, "inherited from an earlier stage",
         dockerfile="FROM python:3.12-slim AS base\nCMD python -m app\nFROM base\nUSER app\n", line=2),
    case("dockerfile.shell-form-cmd", False, "exec form"),
    case("dockerfile.shell-form-cmd", False, "shell form that execs",
         dockerfile=GOOD.replace('CMD ["python", "-m", "app"]', "CMD exec python -m app")),
    case("dockerfile.shell-form-cmd", False, "compose command: replaces CMD",
         dockerfile=GOOD.replace('CMD ["python", "-m", "app"]', "CMD python -m app"),
         compose=with_compose("    command: [\"python\", \"-m\", \"app\"]\n")),
    case("dockerfile.shell-form-cmd", False, "only in a builder stage",
         dockerfile="FROM python:3.12-slim AS build\nCMD python x\n" + GOOD),
    # dockerfile.apt-no-recommends
    case("dockerfile.apt-no-recommends", True, "plain install",
         dockerfile=GOOD.replace("RUN useradd --system app",
                                 "RUN apt-get update && apt-get install -y curl \\\n    && rm -rf /var/lib/apt/lists/*"),
         line=2, contains="apt-get install -y", severity=Severity.INFO),
    case("dockerfile.apt-no-recommends", True, "in a heredoc", dockerfile=GOOD + "RUN <<EOF\nset -e\n"
         "DEBIAN_FRONTEND=noninteractive apt-get -q install -y git\nEOF\n", line=6),
    case("dockerfile.apt-no-recommends", False, "--no-install-recommends",
         dockerfile=GOOD + "RUN apt-get update && apt-get install -y --no-install-recommends curl "
                           "&& rm -rf /var/lib/apt/lists/*\n"),
    case("dockerfile.apt-no-recommends", False, "configured once for apt",
         dockerfile=GOOD + "RUN echo 'APT::Install-Recommends \"false\";' > /etc/apt/apt.conf.d/99norec\n"
                           "RUN apt-get install -y curl\n"),
    case("dockerfile.apt-no-recommends", False, "only in a builder stage",
         dockerfile="FROM debian:12 AS build\nRUN apt-get install -y gcc\n" + GOOD),
    # dockerfile.apt-lists-not-cleaned
    case("dockerfile.apt-lists-not-cleaned", True, "update without rm",
         dockerfile=GOOD + "RUN apt-get update && apt-get install -y --no-install-recommends curl\n", line=6,
         contains="without rm -rf /var/lib/apt/lists"),
    case("dockerfile.apt-lists-not-cleaned", True, "cleaned in a later RUN is too late",
         dockerfile=GOOD + "RUN apt-get update\nRUN rm -rf /var/lib/apt/lists/*\n", line=6),
    case("dockerfile.apt-lists-not-cleaned", False, "cleaned in the same RUN",
         dockerfile=GOOD + "RUN apt-get update \\\n && apt-get install -y --no-install-recommends curl \\\n"
                           " && rm -rf /var/lib/apt/lists/*\n"),
    case("dockerfile.apt-lists-not-cleaned", False, "cache mount",
         dockerfile="# syntax=docker/dockerfile:1\n" + GOOD + "RUN --mount=type=cache,target=/var/lib/apt "
                    "apt-get update && apt-get install -y --no-install-recommends curl\n"),
    # dockerfile.secret-literal
    case("dockerfile.secret-literal", True, "ENV SECRET_KEY", dockerfile=GOOD + "ENV SECRET_KEY=s3cr3t-value\n",
         line=6, contains="ENV SECRET_KEY has a literal value"),
    case("dockerfile.secret-literal", True, "old ENV form", dockerfile=GOOD + "ENV API_TOKEN abcdef123456\n",
         line=6),
    case("dockerfile.secret-literal", True, "ARG default with a password in a URL",
         dockerfile="ARG DATABASE_URL=postgres://app:hunter22@db/app\n" + GOOD, line=1,
         contains="ARG DATABASE_URL has a URL with a password"),
    case("dockerfile.secret-literal", False, "no literal values",
         dockerfile=GOOD + "ARG NPM_TOKEN\nENV API_KEY=$API_KEY DB_PASSWORD_FILE=/run/secrets/db "
                           "GPG_KEY=A035C8C19219BA821ECEA86B64E628F8D684696D PASSWORD_MIN_LENGTH=12\n"),
    # dockerfile.healthcheck-missing
    case("dockerfile.healthcheck-missing", True, "neither image nor service", compose=NO_HEALTH_COMPOSE, line=1,
         contains="the image of app has no HEALTHCHECK"),
    case("dockerfile.healthcheck-missing", True, "HEALTHCHECK NONE", compose=NO_HEALTH_COMPOSE,
         dockerfile=GOOD + "HEALTHCHECK NONE\n", line=1),
    case("dockerfile.healthcheck-missing", False, "compose healthcheck"),
    case("dockerfile.healthcheck-missing", False, "HEALTHCHECK in the Dockerfile", compose=NO_HEALTH_COMPOSE,
         dockerfile=GOOD + "HEALTHCHECK --interval=10s CMD python -m app.ping || exit 1\n"),
    case("dockerfile.healthcheck-missing", False, "HEALTHCHECK in the parent stage", compose=NO_HEALTH_COMPOSE,
         dockerfile="FROM python:3.12-slim AS base\nHEALTHCHECK CMD [\"true\"]\nFROM base\nUSER app\n"),
]


test_rule = rule_test(CASES, offline=True)  # every finding of a firing case needs a fix


# --------------------------------------------------------------------------- beyond the table


def test_secret_value_is_never_in_the_message(project):
    found = run(project, case("dockerfile.secret-literal", True, "x", dockerfile=GOOD + "ENV SECRET_KEY=s3cr3t-xyz\n"))
    assert found and all("s3cr3t-xyz" not in f.message for f in found)


def test_two_services_sharing_a_dockerfile_get_one_finding(project):
    compose = ("services:\n  web:\n    build: ./app\n    restart: always\n"
               "    healthcheck:\n      test: [\"CMD\", \"true\"]\n"
               "  worker:\n    build: ./app\n    restart: always\n    command: [\"python\", \"-m\", \"worker\"]\n"
               "    healthcheck:\n      test: [\"CMD\", \"true\"]\n")
    found = run(project, case("dockerfile.runs-as-root", True, "x", compose=compose,
                              dockerfile=GOOD.replace("USER app\n", "")))
    assert len(found) == 1
    assert "web, worker" in found[0].message


def test_dockerfile_findings_can_be_silenced_in_the_dockerfile(project):
    found = run(project, case("dockerfile.runs-as-root", True, "x",
                              dockerfile="# berth: ignore[dockerfile.runs-as-root]\nFROM nginx:1.27\n"))
    assert found == []


@pytest.mark.parametrize("text", [
    "", "\n\n# only comments\n", "FROM", "FROM a b", "FROM a AS 1bad", "\x00\x01binary", "FROM alpine:3\nCOPY onlyone\n",
    "# escape=x\nFROM alpine:3\n", "FROM alpine:3\nHEALTHCHECK BOGUS\n", "FROM alpine:3\nSHELL /bin/bash\n",
    "FROM alpine:3 AS a\nFROM alpine:3 AS A\n", "FROM alpine:3\nONBUILD ONBUILD RUN x\n",
])
def test_malformed_dockerfiles_are_one_located_finding(project, text):
    project.write("docker-compose.yml", COMPOSE)
    project.write("app/Dockerfile", text)
    report = run_checks(load_target(project.root), offline=True)
    found = [f for f in report.findings if f.rule == "dockerfile.invalid"]
    assert len(found) == 1, report.findings
    assert found[0].file == project.root / "app/Dockerfile"
    assert found[0].severity == Severity.ERROR
