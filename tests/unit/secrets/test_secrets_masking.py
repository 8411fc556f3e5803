"""berth.secrets.masking: which env values are secret, and the Masker that keeps them out of output."""

from __future__ import annotations

import base64
import json
import subprocess
import sys

import pytest

from berth.secrets.masking import (
    MASK,
    MIN_MASKED_LENGTH,
    Masker,
    dumps_masked,
    is_secret_key,
    is_secret_value,
    keyed_secrets,
    masked_tail,
    secret_values,
    url_password,
)


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
        "SHORT_SECRET": "abc",  # too short to mask everywhere (keyed_secrets masks it as SHORT_SECRET=abc)
        "EMPTY_TOKEN": "",
        "PORT": "8080",  # not a secret key
        "PUBLIC_URL": "https://example.com/app",  # no password
        "DATABASE_URL": "postgres://app:dbpass99@db:5432/app",
    }
    values = secret_values(env)
    assert {"hunter2hunter2", "tok_abcdefgh", "dbpass99", "postgres://app:dbpass99@db:5432/app"} <= set(values)
    for plain in ("abc", "8080", "https://example.com/app", "app", "db"):
        assert plain not in values
    assert not any("8080" in v or "example.com" in v for v in values)
    assert [len(v) for v in values] == sorted((len(v) for v in values), reverse=True)


def test_secret_values_minimum_length_boundary():
    short, exact = "x" * (MIN_MASKED_LENGTH - 1), "y" * MIN_MASKED_LENGTH
    assert secret_values({"A_TOKEN": short, "B_TOKEN": exact}) == [exact]  # 4 bytes: no base64 form yet


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


# --------------------------------------------------------------------------- recognition beyond key names (finding 10)

# token-shaped test values are assembled, so no scanner mistakes this file for a leak
STRIPE_SK = "sk_" + "live_" + "51Habcdefghijklmnop"
GITHUB_PAT = "ghp_" + "R3alT0ken" * 4
SLACK_BOT = "xoxb-" + "123456789012-" + "abcdefghijKLMN"
AWS_KEY = "AKIA" + "Z7Q2M4K8W1R5T9Y3"
JWT = "eyJ" + "hbGciOiJIUzI1NiJ9" + ".eyJ" + "zdWIiOiIxMjM0NTY3ODkwIn0" + ".dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
PEM = "-----BEGIN " + "PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\n-----END PRIVATE KEY-----"
SLACK_WEBHOOK = "https://hooks.slack.com/services/T0000/B0000/" + "XXXXXXXXXXXXXXXXXXXX"
API_TOKEN = 'tok"en\\välue-123456'  # a quote, a backslash and a non-ASCII letter: JSON escapes all three


@pytest.mark.parametrize("key", [
    "DB_PWD", "MYSQL_PWD", "DB_PW", "STRIPE_SK", "GITHUB_PAT", "SLACK_WEBHOOK_URL", "DISCORD_WEBHOOK", "SIGNING_SECRET",
    "COOKIE_SIGNING", "HMAC_SHA256", "AZURE_STORAGE_CONNECTION_STRING", "BEARER",
])
def test_secret_keys_the_review_found_unrecognised(key):
    assert is_secret_key(key)


@pytest.mark.parametrize("key", [
    "PWD", "OLDPWD", "PATH", "PATCH_LEVEL", "DISPATCH_MODE", "SKU", "DESK", "KIOSK_MODE", "SKIP_MIGRATIONS", "PATIENCE",
])
def test_keys_that_only_resemble_the_new_parts_are_not_secret(key):
    assert not is_secret_key(key)


@pytest.mark.parametrize("value", [STRIPE_SK, GITHUB_PAT, SLACK_BOT, AWS_KEY, JWT, PEM, SLACK_WEBHOOK,
                                   f"https://{GITHUB_PAT}@github.com/org/app.git"])
def test_values_in_a_known_token_format_are_secret_whatever_their_key(value):
    assert is_secret_value(value)
    assert value in secret_values({"SETTING": value})
    assert Masker(secret_values({"SETTING": value}))(f"x {value} y") == f"x {MASK} y"


@pytest.mark.parametrize("value", ["postgres", "hunter2hunter2", "https://example.com/hooks", "sk_live_", "eyJhbGciOi"])
def test_ordinary_values_are_not_tokens(value):
    assert not is_secret_value(value)


def test_the_secret_scan_and_the_masker_share_the_token_formats():
    from berth.check.rules import secrets_scan
    from berth.secrets.masking import TOKEN_FORMATS

    shared = {f.source for f in TOKEN_FORMATS}
    assert all(d.source in shared for d in secrets_scan.DETECTORS)


# --------------------------------------------------------------------------- the review's masker gaps (finding 11)

PEM_BODY = ("MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7", "VJTUt9Us8cKjMzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDuic")
JWT_KEY = "-----BEGIN KEY-----\n" + "\n".join(PEM_BODY) + "\n-----END KEY-----"
GAP_ENV = ("DB_PASSWORD=abc\n"
           "DATABASE_URL=postgres://app:p%40ss%2Fw0rd-XYZ@db:5432/app\n"
           f'JWT_PRIVATE_KEY="{JWT_KEY}"\n'
           f"API_TOKEN='{API_TOKEN}'\n")

GAPS = [  # (the review's row, output text, what must not be shown)
    ("short secret (3 chars)", "DB_PASSWORD=abc", ["=abc"]),
    ("short secret, YAML/JSON style", '"DB_PASSWORD": "abc"', ['"abc"']),
    ("url-decoded password", "login with p@ss/w0rd-XYZ", ["p@ss/w0rd-XYZ"]),
    ("url-encoded password", "login with p%40ss%2Fw0rd-XYZ", ["p%40ss%2Fw0rd-XYZ"]),
    ("multi-line secret, CRLF", JWT_KEY.replace("\n", "\r\n"), list(PEM_BODY)),
    ("multi-line secret, one line alone", f"web-1  | {PEM_BODY[1]}", [PEM_BODY[1]]),
    ("base64 of token", base64.b64encode(API_TOKEN.encode()).decode(), [base64.b64encode(API_TOKEN.encode()).decode()]),
    ("base64 of token inside a longer run", "Authorization: Basic " + base64.b64encode(b"user:" + API_TOKEN.encode()).decode(),
     [base64.b64encode(b"user:" + API_TOKEN.encode()).decode()[8:24]]),
    ("JSON-encoded token (mask after dumps)", json.dumps({"out": "token=" + API_TOKEN}), [json.dumps(API_TOKEN)[1:-1]]),
    ("JSON-encoded token, non-ASCII kept", json.dumps({"out": API_TOKEN}, ensure_ascii=False),
     [json.dumps(API_TOKEN, ensure_ascii=False)[1:-1]]),
]


@pytest.mark.parametrize("row, text, forbidden", GAPS, ids=[g[0] for g in GAPS])
def test_the_masker_gaps_of_the_review_are_masked(project, row, text, forbidden):
    from berth.configuration.masker import masker_for
    from berth.configuration.target import load_target

    project.write(".env.docker", project.APP_ENV + GAP_ENV)
    masked = masker_for(load_target(project.root, None, ()))(text)
    for part in forbidden:
        assert part not in masked
    assert MASK in masked


def test_a_multi_line_value_gives_each_long_line_as_a_secret():
    values = secret_values({"JWT_PRIVATE_KEY": JWT_KEY})
    assert set(PEM_BODY) <= set(values)
    assert "-----" not in values  # short lines would mask ordinary text


# --------------------------------------------------------------------------- the masker never corrupts output


def test_a_secret_inside_a_public_name_is_left_alone():
    m = Masker(["postgres"], public=["postgres:16", "db-postgres-1"])
    assert m("image postgres:16, password postgres") == f"image postgres:16, password {MASK}"
    assert m("db-postgres-1 | ready; postgres") == f"db-postgres-1 | ready; {MASK}"


def test_a_secret_overlapping_a_public_name_is_still_masked():
    m = Masker(["gres:1600x"], public=["postgres:16"])
    assert "gres:1600x" not in m("postgres:1600x")
    # a secret that starts inside a public name and ends after it: masked, though a shorter one is skipped
    m = Masker(["postgres", "gres:16-extra"], public=["postgres:16"])
    assert "16-extra" not in m("postgres:16-extra")


def test_keyed_values_are_masked_only_where_their_key_names_them():
    env = {"DB_PASSWORD": "abc", "POSTGRES_PASSWORD": "postgres", "DEBUG": "abc"}
    m = Masker(secret_values(env), public=["postgres"], keyed=keyed_secrets(env))
    assert m("DB_PASSWORD=abc DEBUG=abc abc") == f"DB_PASSWORD={MASK} DEBUG=abc abc"
    assert m("export DB_PASSWORD='abc'") == f"export DB_PASSWORD='{MASK}'"
    assert m("DB_PASSWORD=abcd") == "DB_PASSWORD=abcd"  # not the value
    # a password equal to a public name (the service `postgres`) is still masked where its key says what it is
    assert m("POSTGRES_PASSWORD=postgres; service postgres") == f"POSTGRES_PASSWORD={MASK}; service postgres"


def test_ordinary_values_of_secret_keys_are_masked_only_with_their_key():
    env = {"WEBHOOK_ENABLED": "true"}
    m = Masker(secret_values(env), keyed=keyed_secrets(env))
    assert m('{"healthy": true, "ok": "true"} WEBHOOK_ENABLED=true') == \
        f'{{"healthy": true, "ok": "true"}} WEBHOOK_ENABLED={MASK}'


def test_masking_never_raises(monkeypatch):
    m = Masker(["hunter2hunter2"])

    def broken(*_a, **_k):
        raise RuntimeError("boom")

    monkeypatch.setattr(m, "_mask", broken)
    out = m("the password is hunter2hunter2")
    assert "hunter2hunter2" not in out and MASK in out


def test_masking_is_fast_on_long_output():
    import random
    import string
    import time

    rng = random.Random(7)
    env = {f"K{i}_TOKEN": "".join(rng.choices(string.ascii_letters + string.digits, k=30)) for i in range(100)}
    m = Masker(secret_values(env), public=["postgres:16", "web"], keyed=keyed_secrets(env))
    text = "".join(rng.choices(string.ascii_letters + " \n", k=200_000)) + env["K7_TOKEN"]
    started = time.monotonic()
    assert env["K7_TOKEN"] not in m(text)
    assert time.monotonic() - started < 2  # ~0.05 s here; super-linear work would take minutes


# --------------------------------------------------------------------------- cut after masking, JSON field by field


def test_masked_tail_masks_before_it_cuts_and_cuts_at_a_line():
    secret = "supersecretvalue123"
    text = "x" * 3000 + "\nSECRET_KEY=" + secret + "\n" + "y" * 50 + "\nlast line"
    for limit in range(40, 120):  # wherever the cut falls, no piece of the secret is shown
        out = masked_tail(text, limit, Masker([secret]))
        assert not any(secret[i:i + 6] in out for i in range(len(secret) - 5))
    assert masked_tail(text, 200, Masker([secret])) == f"… SECRET_KEY={MASK}\n{'y' * 50}\nlast line"
    assert masked_tail("short", 200, None) == "short"


def test_mask_json_masks_every_string_before_serialising():
    m = Masker(secret_values({"API_TOKEN": API_TOKEN}))
    doc = {"error": f"token={API_TOKEN}", "steps": [{"detail": API_TOKEN, "n": 3, "ok": True}], API_TOKEN: None}
    out = dumps_masked(doc, m)
    assert json.dumps(API_TOKEN)[1:-1] not in out and API_TOKEN not in out
    assert json.loads(out) == {"error": f"token={MASK}", "steps": [{"detail": MASK, "n": 3, "ok": True}], MASK: None}
