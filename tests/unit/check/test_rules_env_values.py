"""The env.* value rules (berth/check/rules/env_values.py), firing and quiet, on real projects.

CASES is collected by test_check_rules.test_every_rule_has_a_firing_and_a_quiet_case and run here,
with the harness in rule_cases.py. Secrets are generated at test time from a seeded generator.
"""

import random
import shutil
import string
from pathlib import Path

import pytest

import berth.check.rules  # noqa: F401  (registers the rules)
from berth.check import run_checks
from berth.check.findings import Severity
from berth.check.rules.env_values import MIN_ENTROPY_BITS_PER_CHAR, entropy, placeholder_kind, secret_key
from berth.configuration.target import load_target
from berth.secrets.masking import MIN_MASKED_LENGTH, url_password
from tests.helpers.rule_cases import Case, both, noop, rule_test
from tests.helpers.rule_cases import expect_at as at  # (count findings, the first at rel, line, col)

_rnd = random.Random(4242)


def rand(n: int, chars: str = string.ascii_letters + string.digits) -> str:
    return "".join(_rnd.choice(chars) for _ in range(n))


STRONG = rand(40)
STRONG_2 = rand(32)
DB_PW = rand(24)
HEX32 = rand(32, "0123456789abcdef")


def app_env(text: str, example: str | None = None):
    def setup(p) -> None:
        p.write(".env.docker", "TAG=1.25\n" + text)
        p.write(".env.docker.example", "TAG=\n" + (example if example is not None else
                                                      "".join(line.split("=")[0] + "=\n"
                                                              for line in text.splitlines() if "=" in line)))
    return setup


def production(*setups):
    def setup(p) -> None:
        p.write(".env", p.DOTENV.replace("ENVIRONMENT=staging", "ENVIRONMENT=production"))
        for s in setups:
            s(p)
    return setup


def compose(text: str):
    return lambda p: p.write("docker-compose.yml", text)


WITH_DB = """\
services:
  web:
    image: "nginx:${TAG}"
    ports:
      - "${WEB_PORT:-8080}:80"
  db:
    image: postgres:16-alpine
  cache:
    image: redis:7
"""
DB_ENV_FROM_COMPOSE = WITH_DB.replace("    image: postgres:16-alpine\n", (
    "    image: postgres:16-alpine\n    environment:\n      POSTGRES_PASSWORD: ${DB_PASSWORD}\n"
    "      POSTGRES_USER: shop\n"))
LOOPBACK_ONLY = WITH_DB.replace('"${WEB_PORT:-8080}:80"', '"127.0.0.1:8080:80"')


def pg(url_user="app", url_pw=DB_PW, url_db="app", host="db", user="app", pw=DB_PW, db="app"):
    return (f"DATABASE_URL=postgres://{url_user}:{url_pw}@{host}:5432/{url_db}\n"
            f"POSTGRES_USER={user}\nPOSTGRES_PASSWORD={pw}\nPOSTGRES_DB={db}\n")


DB_PASSWORD_IN_COMPOSE = WITH_DB.replace("    image: postgres:16-alpine\n", (
    "    image: postgres:16-alpine\n    environment:\n      POSTGRES_PASSWORD: pass\n      POSTGRES_USER: shop\n"))
STRONG_IN_COMPOSE = WITH_DB.replace("    image: postgres:16-alpine\n", (
    f"    image: postgres:16-alpine\n    environment:\n      - POSTGRES_PASSWORD={STRONG}\n"))
URL_IN_COMPOSE = WITH_DB.replace("    image: \"nginx:${TAG}\"\n", (
    "    image: \"nginx:${TAG}\"\n    environment:\n      DATABASE_URL: postgres://shop:changeme@db:5432/shop\n"))
FILE_IN_COMPOSE = WITH_DB.replace("    image: postgres:16-alpine\n", (
    "    image: postgres:16-alpine\n    environment:\n      POSTGRES_PASSWORD_FILE: /run/secrets/db_password\n"))

def _expect(found, severity, line, message) -> None:
    assert (found.severity, found.line, found.message) == (severity, line, message)


CASES: list[Case] = [
    # env.secret-in-compose
    Case("env.secret-in-compose", True, "a weak password written into the compose file", compose(DB_PASSWORD_IN_COMPOSE),
         lambda p, found: _expect(found[0], Severity.ERROR, 9, "service db: POSTGRES_PASSWORD is written into the "
                                  "compose file and is a well-known default that is never a real secret: anyone with "
                                  "the repository has it")),
    Case("env.secret-in-compose", True, "a strong secret, committed (list syntax)", compose(STRONG_IN_COMPOSE),
         lambda p, found: _expect(found[0], Severity.WARNING, 9, "service db: POSTGRES_PASSWORD is written into the "
                                  "compose file, which is committed to git")),
    Case("env.secret-in-compose", True, "a placeholder password inside a URL", compose(URL_IN_COMPOSE),
         lambda p, found: _expect(found[0], Severity.ERROR, 5, "service web: the password in DATABASE_URL is written "
                                  "into the compose file and is a 'change me' placeholder: anyone with the repository "
                                  "has it")),
    Case("env.secret-in-compose", False, "a reference to the env file", compose(DB_ENV_FROM_COMPOSE)),
    Case("env.secret-in-compose", False, "a *_FILE path to a compose secret", compose(FILE_IN_COMPOSE)),
    # env.key-parity
    Case("env.key-parity", True, "key missing from the example", app_env("EXTRA=1\n", example=""),
         at(".env.docker", 2, 1, contains="EXTRA is in .env.docker but not in .env.docker.example")),
    Case("env.key-parity", True, "key missing from the real file", app_env("", example="NEEDED=\n"),
         at(".env.docker", None, contains="NEEDED is in .env.docker.example (line 2)", severity=Severity.WARNING)),
    Case("env.key-parity", True, "optional berth setting missing from .env",
         lambda p: p.write(".env.example", "ENVIRONMENT=staging\nSERVER_IP=\nSERVER_USER=\nHEALTH_URL=\n"),
         at(".env", None, contains="HEALTH_URL", severity=Severity.INFO)),
    Case("env.key-parity", False, "same keys", noop),
    Case("env.key-parity", False, "no example (files.example-missing says so)",
         lambda p: p.remove(".env.docker.example")),
    # env.placeholder
    Case("env.placeholder", True, "change-me secret", app_env("SECRET_KEY=change_this_to_a_long_random_string\n"),
         at(".env.docker", 2, 12, contains="SECRET_KEY is a 'change me' placeholder", severity=Severity.ERROR)),
    Case("env.placeholder", True, "password in a URL", app_env("DATABASE_URL=postgres://app:change_me@db:5432/app\n"),
         at(".env.docker", 2, 14, contains="the password in DATABASE_URL", severity=Severity.ERROR)),
    Case("env.placeholder", True, "truncated example key", app_env("OPENAI_API_KEY=sk-proj-...\n"),
         at(".env.docker", 2, 16, contains="truncated")),
    Case("env.placeholder", True, "your-key-here", app_env("OPENAI_API_KEY=sk-your-key-here\n"),
         at(".env.docker", 2, 16, contains="'your-...' placeholder")),
    Case("env.placeholder", True, "a well-known default", app_env("DB_PASSWORD=password\n"),
         at(".env.docker", 2, 13, contains="well-known default")),
    Case("env.placeholder", True, "copied from the example",
         app_env(f"API_TOKEN={STRONG_2}\n", example=f"API_TOKEN={STRONG_2}\n"),
         at(".env.docker", 2, 11, contains="the value from .env.docker.example", absent=STRONG_2)),
    Case("env.placeholder", True, "non-secret placeholder is a warning",
         lambda p: p.write(".env", p.DOTENV.replace("SERVER_USER=deploy", "SERVER_USER=your-user")),
         at(".env", 3, 13, contains="SERVER_USER", severity=Severity.WARNING)),
    Case("env.placeholder", False, "real values", app_env(f"SECRET_KEY={STRONG}\nOPENAI_API_KEY=sk-proj-{STRONG_2}\n"
                                                          f"DATABASE_URL=postgres://app:{DB_PW}@db/app\n")),
    Case("env.placeholder", False, "placeholders only in the example",
         lambda p: p.write(".env.docker.example", "TAG=\nSECRET_KEY=change_me\n")),
    Case("env.placeholder", False, "words that are fine outside secrets",
         app_env("CACHE_BACKEND=dummy\nGREETING=Loading...\nMODE=test\n")),
    # env.empty-secret
    Case("env.empty-secret", True, "empty secret key", app_env("SECRET_KEY=\n"),
         at(".env.docker", 2, 1, contains="SECRET_KEY is empty")),
    Case("env.empty-secret", True, "empty secret key in production is an error", production(app_env("SECRET_KEY=\n")),
         at(".env.docker", 2, 1, contains="SECRET_KEY is empty in a production env file", severity=Severity.ERROR)),
    Case("env.empty-secret", False, "empty non-secrets and file paths", app_env("NAME=\nDB_PASSWORD_FILE=\n")),
    # env.weak-secret
    Case("env.weak-secret", True, "short", app_env("SECRET_KEY=Xk29fLq0\n"),
         at(".env.docker", 2, 12, contains="only 8 characters long")),
    Case("env.weak-secret", True, "repeated pattern", app_env("JWT_SECRET=qwe1qwe1qwe1qwe1qwe1\n"),
         at(".env.docker", 2, 12, contains="repeated")),
    Case("env.weak-secret", True, "low entropy", app_env("API_TOKEN=aaaaaaaabbbbbbbbbbcccc\n"),
         at(".env.docker", 2, 11, contains="low in entropy")),
    Case("env.weak-secret", True, "short URL password", app_env("REDIS_URL=redis://:Tr7x@cache:6379/0\n"),
         at(".env.docker", 2, 11, contains="the password in REDIS_URL is only 4 characters")),
    Case("env.weak-secret", False, "strong secrets",
         app_env(f"SECRET_KEY={STRONG}\nSESSION_SECRET={HEX32}\nDATABASE_URL=postgres://u:{DB_PW}@db/app\n")),
    Case("env.weak-secret", False, "secret-looking names that hold no secret",
         app_env("PASSWORD_MIN_LENGTH=12\nSECRET_KEY_FILE=/run/secrets/key\nAUTH_PROVIDER=google\n"
                 "TOKEN_EXPIRY=3600\nAUTH_ENABLED=true\n")),
    # env.production-debug
    Case("env.production-debug", True, "DEBUG=true", production(app_env("DEBUG=true\n")),
         at(".env.docker", 2, 7, contains="debug mode on in production", severity=Severity.ERROR)),
    Case("env.production-debug", True, "LOG_LEVEL=DEBUG", production(app_env("LOG_LEVEL=DEBUG\n")),
         at(".env.docker", 2, 11, severity=Severity.WARNING)),
    Case("env.production-debug", False, "staging may debug", app_env("DEBUG=1\nLOG_LEVEL=debug\n")),
    Case("env.production-debug", False, "production without debug",
         production(app_env("DEBUG=false\nLOG_LEVEL=info\n"))),
    # env.production-dev-mode
    Case("env.production-dev-mode", True, "dev build target", production(app_env("BUILD_TARGET=development\n")),
         at(".env.docker", 2, 14, contains="development stage")),
    Case("env.production-dev-mode", True, "NODE_ENV", production(app_env("NODE_ENV=development\n")),
         at(".env.docker", 2, 10, contains="development mode")),
    Case("env.production-dev-mode", False, "production target",
         production(app_env("BUILD_TARGET=prod\nNODE_ENV=production\n"))),
    # env.production-localhost
    Case("env.production-localhost", True, "CORS origin",
         production(app_env("CORS_ORIGINS=https://shop.example,http://localhost:3000\n")),
         at(".env.docker", 2, 42, contains="CORS_ORIGINS names localhost")),
    Case("env.production-localhost", True, "public URL", production(app_env("PUBLIC_URL=http://127.0.0.1:8080\n")),
         at(".env.docker", 2, 19, contains="127.0.0.1")),
    Case("env.production-localhost", False, "staging", app_env("CORS_ORIGINS=http://localhost:3000\n")),
    Case("env.production-localhost", False, "not a public setting",
         production(app_env("CACHE_HOST=localhost\nDATABASE_URL=postgres://u@localhost/app\n"))),
    # env.database-url-mismatch
    Case("env.database-url-mismatch", True, "user", both(compose(WITH_DB), app_env(pg(url_user="other"))),
         at(".env.docker", 2, 25, contains="user 'other', but POSTGRES_USER is 'app'")),
    Case("env.database-url-mismatch", True, "password", both(compose(WITH_DB), app_env(pg(url_pw="x" + DB_PW))),
         at(".env.docker", 2, 14, contains="different password", absent=DB_PW, severity=Severity.ERROR)),
    Case("env.database-url-mismatch", True, "database", both(compose(WITH_DB), app_env(pg(url_db="shop"))),
         at(".env.docker", 2, 14, contains="database 'shop', but POSTGRES_DB is 'app'")),
    Case("env.database-url-mismatch", True, "host is not the db service",
         both(compose(WITH_DB), app_env(pg(host="postgres"))),
         at(".env.docker", 2, 54, contains="not a service", severity=Severity.WARNING)),
    Case("env.database-url-mismatch", True, "localhost inside a container",
         both(compose(WITH_DB), app_env(pg(host="localhost"))),
         at(".env.docker", 2, 54, contains="the container itself", severity=Severity.WARNING)),
    Case("env.database-url-mismatch", True, "password set in the compose file",
         both(compose(DB_ENV_FROM_COMPOSE),
              app_env(f"DB_PASSWORD={STRONG}\nDATABASE_URL=postgres://shop:{DB_PW}@db/app\n")),
         at(".env.docker", 3, 14, contains="different password", absent=STRONG)),
    Case("env.database-url-mismatch", False, "consistent", both(compose(WITH_DB), app_env(pg()))),
    Case("env.database-url-mismatch", False, "percent-encoded password",
         both(compose(WITH_DB), app_env(pg(url_pw="p%40ss%2Fw0rd-" + DB_PW, pw="p@ss/w0rd-" + DB_PW)))),
    Case("env.database-url-mismatch", False, "external database", app_env(pg(host="db.internal.example"))),
    # env.redis-url-mismatch
    Case("env.redis-url-mismatch", True, "no password in the URL",
         both(compose(WITH_DB), app_env(f"REDIS_PASSWORD={STRONG}\nREDIS_URL=redis://cache:6379/0\n")),
         at(".env.docker", 3, 11, contains="has no password, but REDIS_PASSWORD is set")),
    Case("env.redis-url-mismatch", True, "different password",
         app_env(f"REDIS_PASSWORD={STRONG}\nREDIS_URL=redis://:{STRONG_2}@cache:6379/0\n"),
         at(".env.docker", 3, 11, contains="different password", absent=STRONG_2)),
    Case("env.redis-url-mismatch", False, "same password",
         both(compose(WITH_DB), app_env(f"REDIS_PASSWORD={STRONG}\nREDIS_URL=redis://:{STRONG}@cache:6379/0\n"))),
    # env.health-url-port
    Case("env.health-url-port", True, "port not published",
         lambda p: p.write(".env", p.DOTENV + "HEALTH_URL=http://203.0.113.5:9090/health\n"),
         at(".env", 4, contains="port 9090, which no service publishes (published: 8080)")),
    Case("env.health-url-port", True, "published on loopback only",
         both(compose(LOOPBACK_ONLY), lambda p: p.write(".env", p.DOTENV + "HEALTH_URL=http://203.0.113.5:8080/up\n")),
         at(".env", 4, contains="loopback")),
    Case("env.health-url-port", True, "default port on the server itself",
         lambda p: p.write(".env", p.DOTENV + "HEALTH_URL=http://203.0.113.5/health\n"),
         at(".env", 4, contains="port 80")),
    Case("env.health-url-port", False, "published port",
         lambda p: p.write(".env", p.DOTENV + "HEALTH_URL=http://203.0.113.5:8080/\n")),
    Case("env.health-url-port", False, "port from an interpolated variable",
         both(compose(WITH_DB), app_env("WEB_PORT=9000\n"),
              lambda p: p.write(".env", p.DOTENV + "HEALTH_URL=http://localhost:9000/health\n"))),
    Case("env.health-url-port", False, "a host name behind a proxy",
         lambda p: p.write(".env", p.DOTENV + "HEALTH_URL=https://shop.example.com/health\n")),
]


test_rule = rule_test(CASES)  # online; every finding of a firing case needs a severity and a fix


# --------------------------------------------------------------------------- no secret in any message


def _secret_strings(env: dict[str, str]) -> set[str]:
    out = set()
    for key, value in env.items():
        if secret_key(key) and len(value) >= MIN_MASKED_LENGTH:
            out.add(value)
        pw = url_password(value)
        if pw and len(pw) >= MIN_MASKED_LENGTH:
            out.update({pw, value})
    return out


def test_no_message_contains_a_secret(project):
    """Every rule fires on secrets here (weak, placeholder, mismatched, odd syntax); none may echo one."""
    weak = "Qv7Qv7Qv7Qv7Qv7Qv7"
    project.write("docker-compose.yml", WITH_DB)
    text = (
        f"TAG=1.25\n"
        f"SECRET_KEY={weak}\n"                                  # repeated pattern
        f"API_TOKEN=Zr9#short\n"                                # short; '#' kept (no space before it)
        f"DB_PASSWORD=pa$Sw0rdIsLong{rand(8)}\n"                # undefined $Sw0rd... reference
        f"JWT_SECRET=\"{rand(10)}$Kq}}{rand(10)}\"\n"           # stray brace after a reference
        f"DATABASE_URL=postgres://app:{DB_PW}x@localhost:5432/app\n"   # password and host mismatch
        f"POSTGRES_USER=app\nPOSTGRES_PASSWORD={DB_PW}\nPOSTGRES_DB=app\n"
        f"REDIS_PASSWORD={STRONG}\nREDIS_URL=redis://:{STRONG_2}@cache:6379/0\n"
        f"OPENAI_API_KEY=sk-proj-{rand(6)}...\n"                 # truncated
        f"SESSION_SECRET = 'Hq2{rand(20)}'\n"                   # spaces, unnecessary quotes
        f"STRIPE_KEY=\"{rand(12)} {rand(12)}\n"                 # never closed (env.syntax)
    )
    project.write(".env.docker", text)
    project.write(".env.docker.example", "TAG=\nSECRET_KEY=\nUNUSED_TOKEN=\n")
    project.write(".env", project.DOTENV.replace("staging", "production") + "DEBUG_TOKEN=aaaaaaaaaaaaaaaaaaaaaaaa \n")
    report = run_checks(load_target(project.root))
    from berth.model.envfile import parse_env_text

    secrets = _secret_strings(parse_env_text(text, Path("x")).values())
    secrets |= {weak, "Sw0rdIsLong", "Kq", "aaaaaaaaaaaaaaaa", STRONG, STRONG_2, DB_PW}
    env_findings = [f for f in report.findings if f.rule.startswith("env.")]
    assert {f.rule for f in env_findings} >= {
        "env.weak-secret", "env.placeholder", "env.undefined-variable", "env.substitution",
        "env.database-url-mismatch", "env.redis-url-mismatch", "env.syntax", "env.key-parity",
        "env.space-around-equals", "env.unnecessary-quotes", "env.trailing-whitespace"}
    for f in report.findings:
        shown = f"{f.message} {f.fix or ''} {f.location(project.root)}"
        leaked = [s for s in secrets if s in shown]
        assert not leaked, f"{f.rule} shows a secret: {f}"


# --------------------------------------------------------------------------- the example app


def _example_app(tmp_path: Path, environment: str = "staging") -> Path:
    app = tmp_path / "app"
    shutil.copytree(Path(__file__).parents[3] / "examples" / "app", app)
    dotenv = (app / ".env.example").read_text().replace("ENVIRONMENT=staging", f"ENVIRONMENT={environment}")
    (app / ".env").write_text(dotenv)
    return app


@pytest.mark.parametrize("environment", ["staging", "production"])
def test_example_app_with_real_values_has_no_env_error(tmp_path, environment):
    app = _example_app(tmp_path, environment)
    filled = (app / ".env.docker.example").read_text()
    filled = filled.replace("change_this_to_a_long_random_string", rand(50))
    filled = filled.replace("app:change_me@", f"app:{rand(24)}@")
    filled = filled.replace("sk-your-key-here", "sk-proj-" + rand(48))
    (app / ".env.docker").write_text(filled)
    report = run_checks(load_target(app))
    env_errors = [f for f in report.findings if f.rule.startswith("env.") and f.severity == Severity.ERROR]
    assert env_errors == []
    assert [f for f in report.findings if f.rule.startswith("env.")] == []


def test_example_app_copied_verbatim_reports_its_placeholders(tmp_path):
    app = _example_app(tmp_path)
    shutil.copy(app / ".env.docker.example", app / ".env.docker")
    report = run_checks(load_target(app))
    found = [(f.rule, f.line, f.severity) for f in report.findings if f.rule == "env.placeholder"]
    assert found == [("env.placeholder", 5, Severity.ERROR), ("env.placeholder", 6, Severity.ERROR),
                     ("env.placeholder", 7, Severity.ERROR)]


# --------------------------------------------------------------------------- helpers


@pytest.mark.parametrize("value", ["change_this_to_a_long_random_string", "changeme", "CHANGE-ME", "replace-me",
                                   "your-api-key", "sk-your-key-here", "xxx", "XXXX-XXXX", "sk-proj-...",
                                   "sk-proj-xxxx", "<your token>", "todo", "password", "secret",
                                   # seen in public sample apps (issue 13)
                                   "{replace-me}", "generate_a_new_key", "generate-a-secure-one",
                                   "jwt_secret_should_be_updated", "this_must_be_changed", "changeme123",
                                   "change-me-2", "your-secret-here"])
def test_placeholders(value):
    assert placeholder_kind(value, secret=True)


@pytest.mark.parametrize("value", [STRONG, HEX32, "sk-proj-" + STRONG, "correct-horse-battery-staple-9",
                                   "exchange_me_not", '{"a": 1}', "auto_update_enabled", "generated-by-vault-7Qk2",
                                   "use_tls", "setup_complete"])
def test_not_placeholders(value):
    assert placeholder_kind(value, secret=True) is None


def test_entropy_threshold_spares_random_hex():
    """The threshold's justification (docs/ENV_FILES.md): random 16-char hex is above it 99.9% of the time."""
    rng = random.Random(7)
    samples = sorted(entropy("".join(rng.choice("0123456789abcdef") for _ in range(16))) for _ in range(5000))
    assert samples[len(samples) // 100] > MIN_ENTROPY_BITS_PER_CHAR  # the 1st percentile
    assert entropy("secretsecretsecret") < MIN_ENTROPY_BITS_PER_CHAR
    assert entropy("aaaaaaaaaaaaaaaa") == 0


def test_secret_key_exclusions():
    assert secret_key("SECRET_KEY") and secret_key("DB_PASSWORD") and secret_key("API_TOKEN")
    assert not secret_key("SECRET_KEY_FILE") and not secret_key("PEM_KEY_PATH") and not secret_key("TOKEN_TTL")


def test_a_numeric_setting_equal_to_its_example_is_not_a_placeholder(project):
    from berth.check import run_checks
    from berth.configuration.target import load_target

    project.write(".env.docker.example", "TAG=\nACCESS_TOKEN_EXPIRE_MINUTES=30\nJWT_SECRET=change_me\n")
    project.commit("example")
    project.write(".env.docker", "TAG=1.25\nACCESS_TOKEN_EXPIRE_MINUTES=30\nJWT_SECRET=change_me\n")
    found = [f for f in run_checks(load_target(project.root), offline=True).findings if f.rule == "env.placeholder"]
    assert [f.line for f in found] == [3]  # the JWT secret, not the number of minutes
