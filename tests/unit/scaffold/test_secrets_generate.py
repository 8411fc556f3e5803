"""`berth secrets generate|rotate` (berth/secrets/generate.py, berth/cli/secrets.py): placeholders become strong
values the env.* rules accept, dependent URLs follow, the file keeps its layout and mode, and no value
is printed without --show."""

from __future__ import annotations

import os
import re
import secrets as pysecrets
import stat
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from berth.errors import UsageError
from berth.model.envfile import read_env_file
from tests.helpers import invoke

REPO = Path(__file__).resolve().parents[3]

SEED_EXAMPLE = """\
# App settings for docker compose. Copy to .env.docker and fill in real values.

# === Database ===
POSTGRES_USER=app
POSTGRES_PASSWORD=change_this_password
POSTGRES_DB=app
DATABASE_URL=postgresql+asyncpg://app:change_this_password@db:5432/app

# === Redis ===
REDIS_PASSWORD=
REDIS_URL=redis://redis:6379/0

# === App ===
SECRET_KEY='change_this_to_a_long_random_string'   # sessions and CSRF
JWT_SECRET="your-jwt-secret"
JWT_ALGORITHM=HS256
OPENAI_API_KEY=sk-proj-...
ADMIN_PASSWORD=changeme
DEBUG=false
"""

VALUE_RULES = {"env.placeholder", "env.weak-secret", "env.empty-secret", "env.database-url-mismatch",
               "env.redis-url-mismatch"}


def berth(root: Path, *args: str):
    return invoke(root, *args)


def env_findings(root: Path):
    from berth.check import run_checks
    from berth.configuration.target import load_target

    report = run_checks(load_target(root), offline=True)
    return [f for f in report.findings if f.rule.startswith("env.")]


def values(path: Path) -> dict[str, str]:
    return read_env_file(path).values()


def structure(text: str) -> list[str]:
    """Comments, blank lines and keys in order: what must survive the edit."""
    out = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            out.append(line)
        else:
            out.append(line.split("=", 1)[0] + "=")
    return out


def assert_no_values_printed(output: str, path: Path, example: Path) -> None:
    new = values(path)
    old = values(example) if example.exists() else {}
    for key, value in new.items():
        if value != old.get(key) and len(value) >= 8:
            assert value not in output, f"the value of {key} was printed"
            password = urlsplit(value).password if "://" in value else None
            if password:
                assert unquote(password) not in output and password not in output


# --------------------------------------------------------------------------- the seed-style example


def test_seed_example_becomes_a_file_the_value_rules_accept(project):
    root = project.root
    project.remove(".env.docker")
    example = project.write(".env.docker.example", SEED_EXAMPLE)
    result = berth(root, "secrets", "generate")
    assert result.exit_code == 0, result.output
    target = root / ".env.docker"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    text = target.read_text()
    assert structure(text) == structure(SEED_EXAMPLE)
    assert "# sessions and CSRF" in text and "SECRET_KEY='" in text and 'JWT_SECRET="' in text
    v = values(target)
    assert re.fullmatch(r"[0-9a-f]{64}", v["SECRET_KEY"]) and re.fullmatch(r"[0-9a-f]{64}", v["JWT_SECRET"])
    assert re.fullmatch(r"[0-9a-f]{32}", v["POSTGRES_PASSWORD"])
    assert re.fullmatch(r"[0-9a-f]{32}", v["REDIS_PASSWORD"]) and re.fullmatch(r"[0-9a-f]{32}", v["ADMIN_PASSWORD"])
    assert len({v["SECRET_KEY"], v["JWT_SECRET"], v["POSTGRES_PASSWORD"], v["REDIS_PASSWORD"]}) == 4
    assert urlsplit(v["DATABASE_URL"]).password == v["POSTGRES_PASSWORD"]
    assert v["DATABASE_URL"].startswith("postgresql+asyncpg://app:") and v["DATABASE_URL"].endswith("@db:5432/app")
    assert v["REDIS_URL"] == f"redis://:{v['REDIS_PASSWORD']}@redis:6379/0"
    # untouched: non-secrets, settings with secret-ish names, the third-party key
    assert v["JWT_ALGORITHM"] == "HS256" and v["DEBUG"] == "false"
    assert v["OPENAI_API_KEY"] == "sk-proj-..."
    assert "OPENAI_API_KEY" in result.output and "OpenAI" in result.output
    assert_no_values_printed(result.output, target, example)

    # the only value finding left is the key only OpenAI can issue
    left = [f for f in env_findings(root) if f.rule in VALUE_RULES]
    assert left and all("OPENAI_API_KEY" in f.message for f in left), [(f.rule, f.message) for f in left]
    # once the user pastes a real key, nothing at all is left among the value rules
    fake = "sk-proj-" + pysecrets.token_urlsafe(48).replace("-", "a").replace("_", "b")
    target.write_text(text.replace("OPENAI_API_KEY=sk-proj-...", f"OPENAI_API_KEY={fake}"))
    findings = env_findings(root)
    assert not [f for f in findings if f.rule in VALUE_RULES], [(f.rule, f.message) for f in findings]
    assert not [f for f in findings if f.severity >= 1], [(f.rule, f.message) for f in findings]


def test_example_app_env_file(project):
    root = project.root
    project.remove(".env.docker")
    example_text = (REPO / "examples/app/.env.docker.example").read_text()
    example = project.write(".env.docker.example", example_text)
    result = berth(root, "secrets", "generate")
    assert result.exit_code == 0, result.output
    target = root / ".env.docker"
    assert structure(target.read_text()) == structure(example_text)
    v = values(target)
    assert re.fullmatch(r"[0-9a-f]{64}", v["SECRET_KEY"])
    assert re.fullmatch(r"[0-9a-f]{32}", urlsplit(v["DATABASE_URL"]).password)  # no password key: its own
    assert v["GREETING"] == "Hello from berth" and v["APP_ENV"] == "production"
    assert_no_values_printed(result.output, target, example)
    left = [f for f in env_findings(root) if f.rule in VALUE_RULES]
    assert all("OPENAI_API_KEY" in f.message for f in left), [(f.rule, f.message) for f in left]


# --------------------------------------------------------------------------- an existing file


def test_existing_file_keeps_mode_layout_and_real_values(tmp_path):
    path = tmp_path / ".env.docker"
    text = ("# header\r\n# empty for now\r\nexport SECRET_KEY=\r\n\r\nPOSTGRES_PASSWORD=Real-And-Long-P@ss/w0rd!\r\n"
            "DATABASE_URL=postgres://app:change_me@db/app\r\nAPI_TOKEN=xxx\r\nNAME=shop  # the app\r\n")
    path.write_bytes(text.encode())
    os.chmod(path, 0o640)
    result = berth(tmp_path, "secrets", "generate")
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert "0640" in result.output  # and a note that others can read it
    new = path.read_bytes().decode()
    assert new.count("\r\n") == text.count("\r\n") and "# header\r\n" in new and "# empty for now" in new and "export SECRET_KEY=" in new
    assert "NAME=shop  # the app\r\n" in new
    v = values(path)
    assert v["POSTGRES_PASSWORD"] == "Real-And-Long-P@ss/w0rd!"  # real-looking: kept
    # the URL follows the existing password, percent-encoded
    assert "Real-And-Long-P%40ss%2Fw0rd%21" in v["DATABASE_URL"]
    assert unquote(urlsplit(v["DATABASE_URL"]).password) == v["POSTGRES_PASSWORD"]
    assert re.fullmatch(r"[0-9a-f]{64}", v["SECRET_KEY"]) and re.fullmatch(r"[0-9a-f]{64}", v["API_TOKEN"])
    assert v["NAME"] == "shop"
    assert "Real-And-Long" not in result.output
    # a second run changes nothing
    before = path.read_bytes()
    again = berth(tmp_path, "secrets", "generate")
    assert again.exit_code == 0 and "nothing to change" in again.output
    assert path.read_bytes() == before


def test_show_prints_the_values(tmp_path):
    (tmp_path / ".env.docker").write_text("SECRET_KEY=\n")
    result = berth(tmp_path, "secrets", "generate", "--show")
    assert values(tmp_path / ".env.docker")["SECRET_KEY"] in result.output


def test_dry_run_writes_nothing(tmp_path):
    (tmp_path / ".env.docker.example").write_text("SECRET_KEY=changeme\n")
    result = berth(tmp_path, "secrets", "generate", "--dry-run")
    assert result.exit_code == 0 and "would create" in result.output
    assert not (tmp_path / ".env.docker").exists()


def test_values_are_never_the_examples(tmp_path):
    """A value copied from the committed example is public, so it is replaced even if it looks random."""
    (tmp_path / ".env.docker.example").write_text("SESSION_SECRET=9f86d081884c7d659a2feaa0c55ad015a3bf4f1b\n")
    (tmp_path / ".env.docker").write_text("SESSION_SECRET=9f86d081884c7d659a2feaa0c55ad015a3bf4f1b\n")
    assert berth(tmp_path, "secrets", "generate").exit_code == 0
    assert values(tmp_path / ".env.docker")["SESSION_SECRET"] != "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b"


def test_custom_paths(tmp_path):
    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy/app.env.sample").write_text("DB_PASSWORD=\nDATABASE_URL=mysql://app:x@db/app\n")
    result = berth(tmp_path, "secrets", "generate", "--env-file", "deploy/app.env", "--from", "deploy/app.env.sample")
    assert result.exit_code == 0, result.output
    v = values(tmp_path / "deploy/app.env")
    assert urlsplit(v["DATABASE_URL"]).password == v["DB_PASSWORD"] != ""


# --------------------------------------------------------------------------- what is not generated


@pytest.mark.parametrize("key,value,provider", [
    ("OPENAI_API_KEY", "sk-your-key-here", "OpenAI"),
    ("STRIPE_SECRET_KEY", "sk_test_xxx", "Stripe"),
    ("STRIPE_WEBHOOK_SECRET", "", "Stripe"),
    ("AWS_SECRET_ACCESS_KEY", "your-aws-secret", "AWS"),
    ("SENDGRID_API_KEY", "", "SendGrid"),
    ("MAPS_API_KEY", "change_me", "Maps"),
    ("SMTP_PASSWORD", "", "mail provider"),
])
def test_third_party_keys_are_reported_not_invented(tmp_path, key, value, provider):
    path = tmp_path / ".env.docker"
    path.write_text(f"{key}={value}\n")
    result = berth(tmp_path, "secrets", "generate")
    assert result.exit_code == 0, result.output
    assert values(path)[key] == value
    assert "needs" in result.output and provider in result.output


@pytest.mark.parametrize("value", ["", "change_this", "change_me", "changeme", "your-secret", "xxx", "XXXXXXXX",
                                   "replace-me", "sk-your-key-here", "todo", "<secret>", "password", "secret"])
def test_placeholders_are_replaced(tmp_path, value):
    path = tmp_path / ".env.docker"
    path.write_text(f"APP_SECRET={value}\n")
    berth(tmp_path, "secrets", "generate")
    assert re.fullmatch(r"[0-9a-f]{64}", values(path)["APP_SECRET"])


@pytest.mark.parametrize("value", ["Zq8r3LwT0pX1vN6mB4cY9dF2", "7d0f3c1e9a8b6d5c4e3f2a1b0c9d8e7f"])
def test_real_looking_values_are_kept(tmp_path, value):
    path = tmp_path / ".env.docker"
    path.write_text(f"APP_SECRET={value}\nLOG_LEVEL=info\nTOKEN_TTL=\nACCESS_TOKEN_EXPIRE_MINUTES=30\n")
    result = berth(tmp_path, "secrets", "generate")
    assert values(path) == {"APP_SECRET": value, "LOG_LEVEL": "info", "TOKEN_TTL": "", "ACCESS_TOKEN_EXPIRE_MINUTES": "30"}
    assert "nothing to change" in result.output


def test_derived_values_are_left_to_compose(tmp_path):
    path = tmp_path / ".env.docker"
    path.write_text("POSTGRES_PASSWORD=changeme\nDATABASE_URL=postgres://app:${POSTGRES_PASSWORD}@db/app\n")
    berth(tmp_path, "secrets", "generate")
    assert "${POSTGRES_PASSWORD}" in path.read_text()
    v = values(path)
    assert urlsplit(v["DATABASE_URL"]).password == v["POSTGRES_PASSWORD"] != "changeme"


# --------------------------------------------------------------------------- rotate


def test_rotate_one_key_and_its_dependents(tmp_path):
    path = tmp_path / ".env.docker"
    path.write_text("REDIS_PASSWORD=8c1f0e4b2a9d7c6e5f3a1b0d9c8e7f6a\n"
                    "REDIS_URL=redis://:8c1f0e4b2a9d7c6e5f3a1b0d9c8e7f6a@redis:6379/0\n"
                    "CELERY_BROKER_URL=redis://:8c1f0e4b2a9d7c6e5f3a1b0d9c8e7f6a@redis:6379/1\n"
                    "SECRET_KEY=0d9c8e7f6a8c1f0e4b2a9d7c6e5f3a1b0d9c8e7f6a8c1f0e4b2a9d7c6e5f3a1b\n")
    os.chmod(path, 0o600)
    before = values(path)
    result = berth(tmp_path, "secrets", "rotate", "REDIS_PASSWORD")
    assert result.exit_code == 0, result.output
    after = values(path)
    assert after["REDIS_PASSWORD"] != before["REDIS_PASSWORD"]
    assert after["REDIS_URL"] == f"redis://:{after['REDIS_PASSWORD']}@redis:6379/0"
    assert after["CELERY_BROKER_URL"] == f"redis://:{after['REDIS_PASSWORD']}@redis:6379/1"
    assert after["SECRET_KEY"] == before["SECRET_KEY"]
    assert after["REDIS_PASSWORD"] not in result.output and before["REDIS_PASSWORD"] not in result.output
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_rotate_a_url_rotates_its_password_key(tmp_path):
    path = tmp_path / ".env.docker"
    path.write_text("POSTGRES_PASSWORD=8c1f0e4b2a9d7c6e5f3a1b0d9c8e7f6a\n"
                    "DATABASE_URL=postgres://app:8c1f0e4b2a9d7c6e5f3a1b0d9c8e7f6a@db/app\n")
    result = berth(tmp_path, "secrets", "rotate", "DATABASE_URL")
    assert result.exit_code == 0, result.output
    v = values(path)
    assert v["POSTGRES_PASSWORD"] != "8c1f0e4b2a9d7c6e5f3a1b0d9c8e7f6a"
    assert urlsplit(v["DATABASE_URL"]).password == v["POSTGRES_PASSWORD"]
    assert "PostgreSQL keeps the password" in result.output  # the data volume is not changed by the env file


@pytest.mark.parametrize("name,what", [("OPENAI_API_KEY", "OpenAI"), ("NAME", "not look like a secret"),
                                       ("NOPE", "not set")])
def test_rotate_refuses(tmp_path, name, what):
    path = tmp_path / ".env.docker"
    path.write_text("OPENAI_API_KEY=sk-proj-abc\nNAME=shop\n")
    result = berth(tmp_path, "secrets", "rotate", name)
    assert isinstance(result.exception, UsageError), result.output
    assert what in result.exception.paragraph()
    assert "sk-proj-abc" not in result.exception.paragraph()
    assert path.read_text() == "OPENAI_API_KEY=sk-proj-abc\nNAME=shop\n"


def test_refuses_a_file_compose_cannot_read(tmp_path):
    path = tmp_path / ".env.docker"
    path.write_text("SECRET_KEY='unterminated\n")
    result = berth(tmp_path, "secrets", "generate")
    assert isinstance(result.exception, UsageError)
    assert "unterminated" not in result.exception.paragraph()


def test_nothing_to_start_from(tmp_path):
    result = berth(tmp_path, "secrets", "generate")
    assert isinstance(result.exception, UsageError)
    assert ".env.docker.example" in result.exception.paragraph()


def test_strength_of_generated_values():
    from berth.scaffold.secrets import looks_like_placeholder, looks_weak, new_value

    for key in ("SECRET_KEY", "JWT_SECRET", "POSTGRES_PASSWORD"):
        for _ in range(200):
            value, _ = new_value(key)
            assert not looks_weak(value) and not looks_like_placeholder(value)
