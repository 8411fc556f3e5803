"""berth.secrets: which env values are secret, and the Masker that keeps them out of output."""

from __future__ import annotations

import subprocess
import sys

import pytest

from berth.secrets import MASK, MIN_MASKED_LENGTH, Masker, is_secret_key, secret_values, url_password


@pytest.mark.parametrize("key", [
    "SECRET_KEY_BASE", "DB_PASSWORD", "password", "MYSQL_ROOT_PASSWD", "GPG_PASSPHRASE", "SMTP_PASS", "PASS",
    "GITHUB_TOKEN", "access_token_v2", "STRIPE_API_KEY", "KEY", "AWS_KEY_ID", "APIKEY", "GCP_CREDENTIALS",
    "PRIVATE_KEY_PEM", "HASH_SALT", "SENTRY_DSN", "DSN", "BASIC_AUTH", "OAUTH_CLIENT",
])
def test_secret_keys(key):
    assert is_secret_key(key)


@pytest.mark.parametrize("key", [
    "PORT", "HOST", "DEBUG", "DATABASE_URL", "KEYBOARD", "MONKEY", "PASSPORT_OFFICE", "BYPASS",
    "COMPOSE_PROJECT_NAME", "LOG_LEVEL", "TZ", "KEYS_DIR",
])
def test_non_secret_keys(key):
    assert not is_secret_key(key)


def test_url_password():
    assert url_password("postgres://app:s3cr3tpw@db:5432/app") == "s3cr3tpw"
    assert url_password("redis://:onlypass@cache:6379/0") == "onlypass"
    assert url_password("redis://cache:6379/0") is None
    assert url_password("https://user@example.com/") is None
    assert url_password("user:pass@host") is None  # no scheme: not a URL
    assert url_password("http://[::1") is None  # urlsplit raises ValueError: not a crash


def test_secret_values_selects_secret_keys_and_url_passwords():
    env = {
        "DB_PASSWORD": "hunter2hunter2",
        "API_TOKEN": "tok_abcdefgh",
        "SHORT_SECRET": "abc",  # too short to mask
        "EMPTY_TOKEN": "",
        "PORT": "8080",  # not a secret key
        "PUBLIC_URL": "https://example.com/app",  # no password
        "DATABASE_URL": "postgres://app:dbpass99@db:5432/app",
    }
    values = secret_values(env)
    assert set(values) == {"hunter2hunter2", "tok_abcdefgh", "dbpass99", "postgres://app:dbpass99@db:5432/app"}
    assert [len(v) for v in values] == sorted((len(v) for v in values), reverse=True)


def test_secret_values_minimum_length_boundary():
    short, exact = "x" * (MIN_MASKED_LENGTH - 1), "y" * MIN_MASKED_LENGTH
    assert secret_values({"A_TOKEN": short, "B_TOKEN": exact}) == [exact]


def test_masker_masks_secret_values_everywhere_in_text():
    m = Masker(secret_values({"DB_PASSWORD": "hunter2hunter2", "PORT": "8080"}))
    text = "login with hunter2hunter2 on port 8080; again: hunter2hunter2!"
    assert m(text) == f"login with {MASK} on port 8080; again: {MASK}!"


def test_masker_masks_url_password_and_whole_url():
    url = "postgres://app:dbpass99@db:5432/app"
    m = Masker(secret_values({"DATABASE_URL": url}))
    assert m(f"connecting to {url} ...") == f"connecting to {MASK} ..."
    assert m("FATAL: password dbpass99 rejected") == f"FATAL: password {MASK} rejected"
    assert "dbpass99" not in m(f"url={url.replace('db:5432', 'other:1')}")


def test_masker_replaces_longest_first():
    m = Masker(["secret", "secret-and-more"])
    assert m("value: secret-and-more") == f"value: {MASK}"
    assert m("value: secret") == f"value: {MASK}"
    # order of the input does not matter
    assert Masker(["secret-and-more", "secret"])("secret-and-more") == MASK


def test_masker_overlapping_secrets_leave_no_tail():
    m = Masker(["abcdef", "cdefgh"])
    out = m("abcdefgh")
    assert "abcdef" not in out and "cdefgh" not in out


def test_masker_ignores_short_values():
    m = Masker(["abc", "no", ""])
    assert m("abc no abcabc") == "abc no abcabc"


def test_masker_treats_secrets_literally():
    m = Masker(["p.ss*w+rd(1)"])
    assert m("pass*w+rd(1) pXss*w+rd(1)") == "pass*w+rd(1) pXss*w+rd(1)"
    assert m("is p.ss*w+rd(1)?") == f"is {MASK}?"


def test_masker_without_secrets_and_empty_text():
    assert Masker()("anything hunter2") == "anything hunter2"
    assert Masker(["hunter2"])("") == ""


def test_masker_does_not_mask_non_secret_values():
    m = Masker(secret_values({"APP_NAME": "shopfront", "REPLICAS": "12345", "API_KEY": "k3y-value"}))
    assert m("shopfront with 12345 replicas, key k3y-value") == f"shopfront with 12345 replicas, key {MASK}"


# --------------------------------------------------------------------------- end to end through the CLI


def _check_output(project, sub_env, *args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "berth", "-C", str(project.root), "check", "--offline", *args],
                          capture_output=True, text=True, env=sub_env(), timeout=120)
    return proc.stdout + proc.stderr


def test_check_output_masks_secret_values(project, sub_env):
    # a compose message quoting a default that equals a secret value
    project.write(".env.docker", project.APP_ENV + "DB_PASSWORD=hunter2hunter2\n")
    project.write("docker-compose.yml", project.COMPOSE + "    environment:\n"
                  "      X: ${NOT_SET:-hunter2hunter2}\n")
    out = _check_output(project, sub_env, "--fail-on", "info")
    assert "NOT_SET" in out  # the finding is there
    assert "hunter2hunter2" not in out
    out_json = _check_output(project, sub_env, "--format", "json")
    assert "NOT_SET" in out_json and "hunter2hunter2" not in out_json


def test_check_output_does_not_echo_secret_in_unparsable_line(project, sub_env):
    project.write(".env.docker", project.APP_ENV + "API_TOKEN: sk_live_0123456789abcdef\n")
    out = _check_output(project, sub_env)
    assert "env.syntax" in out
    assert "sk_live_0123456789abcdef" not in out
