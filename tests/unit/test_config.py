"""berth.config: where each setting comes from, and the errors for bad settings files."""

from __future__ import annotations

from pathlib import Path

import pytest

from berth.config import DEFAULT_VERIFY_TIMEOUT, Host, load_target
from berth.errors import UsageError


def write(root: Path, name: str, text: str) -> Path:
    path = root / name
    path.write_text(text)
    return path


@pytest.fixture
def root(tmp_path) -> Path:
    r = tmp_path / "shop"
    r.mkdir()
    return r


# --------------------------------------------------------------------------- precedence


DOTENV = """\
# deploy settings
ENVIRONMENT=staging
SERVER_IP=10.0.0.1
SERVER_USER=envuser
SERVER_PORT=2200
PEM_KEY_PATH=keys/env.pem
APP_DIR=/srv/from-env
"""


def test_dotenv_alone_gives_every_setting_with_its_line(root):
    write(root, ".env", DOTENV)
    t = load_target(root)
    assert t.environment == "staging"
    assert t.hosts == (Host("10.0.0.1", "envuser", 2200, root / "keys/env.pem"),)
    assert t.app_dir == "/srv/from-env"
    assert t.settings["hosts"].origin == ".env:3"
    assert (t.settings["hosts"].file, t.settings["hosts"].line) == (root / ".env", 3)
    assert t.settings["port"].line == 5
    assert t.where("user") == ".env:4"
    assert t.where("branch") == "not set"
    assert t.has_toml is False


def test_toml_defaults_override_dotenv(root):
    write(root, ".env", DOTENV)
    write(root, "berth.toml", '[defaults]\nuser = "defaultsuser"\nport = 2222\n')
    t = load_target(root)
    assert t.hosts[0].user == "defaultsuser"
    assert t.hosts[0].port == 2222
    assert t.hosts[0].address == "10.0.0.1"  # not in berth.toml: still from .env
    assert t.where("user") == "berth.toml [defaults] user"
    assert t.where("hosts") == ".env:3"


def test_toml_environment_overrides_toml_defaults_and_dotenv(root):
    write(root, ".env", DOTENV)
    write(root, "berth.toml", """\
[defaults]
user = "defaultsuser"
app_dir = "/srv/defaults"

[environments.staging]
user = "staginguser"
hosts = ["10.0.0.9", "10.0.0.10"]
""")
    t = load_target(root)
    assert [h.address for h in t.hosts] == ["10.0.0.9", "10.0.0.10"]
    assert {h.user for h in t.hosts} == {"staginguser"}
    assert {h.port for h in t.hosts} == {2200}  # only .env sets it
    assert t.app_dir == "/srv/defaults"
    assert t.where("user") == "berth.toml [environments.staging] user"
    assert t.settings["user"].file == root / "berth.toml"


def test_host_flag_overrides_everything(root):
    write(root, ".env", DOTENV)
    write(root, "berth.toml", '[environments.staging]\nhosts = ["10.0.0.9"]\n')
    t = load_target(root, hosts=("192.0.2.1", "192.0.2.2"))
    assert [h.address for h in t.hosts] == ["192.0.2.1", "192.0.2.2"]
    assert t.where("hosts") == "--host"
    assert t.hosts[0].user == "envuser"  # --host replaces only the host list


def test_environment_flag_overrides_dotenv_environment_when_toml_defines_it(root):
    write(root, ".env", DOTENV)
    write(root, "berth.toml", '[environments.staging]\nhosts = ["s"]\n[environments.production]\nhosts = ["p"]\n')
    assert load_target(root, "production").environment == "production"
    assert [h.address for h in load_target(root, "production").hosts] == ["p"]
    assert load_target(root).environment == "staging"


# --------------------------------------------------------------------------- .env is one environment only


def test_dotenv_values_are_not_applied_to_another_environment(root):
    write(root, ".env", DOTENV)
    write(root, "berth.toml", """\
[defaults]
branch = "main"

[environments.staging]
[environments.production]
user = "produser"
""")
    prod = load_target(root, "production")
    assert prod.environment == "production"
    assert prod.hosts == ()  # SERVER_IP=10.0.0.1 belongs to staging
    assert prod.get("key") is None
    assert prod.get("port") is None
    assert prod.app_dir == "~/shop"  # not /srv/from-env
    assert prod.get("user") == "produser"
    assert prod.get("branch") == "main"  # [defaults] does apply to every environment
    assert not any(s.origin.startswith(".env") for s in prod.settings.values())

    staging = load_target(root, "staging")
    assert [h.address for h in staging.hosts] == ["10.0.0.1"]


def test_other_environment_without_toml_is_a_usage_error(root):
    write(root, ".env", DOTENV)
    with pytest.raises(UsageError) as info:
        load_target(root, "production")
    err = info.value
    assert err.exit_code == 2
    assert "production" in err.what and "staging" in err.what
    assert err.where == str(root / ".env")
    assert "-e staging" in err.fix


def test_same_environment_as_dotenv_without_toml_is_fine(root):
    write(root, ".env", DOTENV)
    assert load_target(root, "staging").hosts[0].address == "10.0.0.1"


def test_no_environment_anywhere_is_a_usage_error(root):
    write(root, ".env", "SERVER_IP=10.0.0.1\n")
    with pytest.raises(UsageError) as info:
        load_target(root)
    assert "no environment selected" in info.value.what
    assert "ENVIRONMENT" in info.value.fix


def test_single_toml_environment_is_chosen_without_flag(root):
    write(root, "berth.toml", '[environments.live]\nhosts = ["h"]\n')
    t = load_target(root)
    assert t.environment == "live"
    assert "live" in t.defined_environments


def test_environment_not_in_toml_is_a_usage_error_with_suggestion(root):
    write(root, "berth.toml", '[environments.production]\nhosts = ["p"]\n[environments.staging]\nhosts = ["s"]\n')
    with pytest.raises(UsageError) as info:
        load_target(root, "prodution")
    assert "'prodution' is not defined" in info.value.what
    assert "did you mean 'production'" in info.value.what


def test_missing_project_dir(tmp_path):
    with pytest.raises(UsageError) as info:
        load_target(tmp_path / "nope")
    assert "does not exist" in info.value.what
    assert info.value.exit_code == 2


# --------------------------------------------------------------------------- berth.toml errors


@pytest.mark.parametrize(
    "toml, key, suggestion",
    [
        ('[defaults]\nhostz = ["a"]\n', "hostz", "hosts"),
        ('[environments.staging]\nhealth_url = ["http://a"]\n', "health_url", "health_urls"),
        ('[environments.staging]\nusr = "x"\n', "usr", "user"),
        ('[default]\nuser = "x"\n', "default", "defaults"),
    ],
)
def test_unknown_toml_key_names_the_key_and_suggests(root, toml, key, suggestion):
    write(root, ".env", "ENVIRONMENT=staging\n")
    write(root, "berth.toml", toml)
    with pytest.raises(UsageError) as info:
        load_target(root)
    assert f"'{key}'" in info.value.what
    assert f"did you mean '{suggestion}'" in info.value.what
    assert info.value.where == str(root / "berth.toml")


def test_unknown_toml_key_without_close_match_has_no_suggestion(root):
    write(root, "berth.toml", '[defaults]\nzzzzqqq = 1\n')
    with pytest.raises(UsageError) as info:
        load_target(root, "staging")
    assert "'zzzzqqq'" in info.value.what
    assert "did you mean" not in info.value.what


@pytest.mark.parametrize(
    "line, key, want",
    [
        ('port = "22"', "port", "a whole number"),
        ("port = true", "port", "a whole number"),
        ('confirm = "yes"', "confirm", "true or false"),
        ("hosts = [1, 2]", "hosts", "a list of strings"),
        ("user = 5", "user", "a string"),
        ("verify_timeout = 1.5", "verify_timeout", "a whole number"),
    ],
)
def test_wrong_type_in_toml(root, line, key, want):
    write(root, "berth.toml", f"[environments.staging]\n{line}\n")
    with pytest.raises(UsageError) as info:
        load_target(root)
    assert f"'{key}' must be {want}" in info.value.what
    assert info.value.where == f"berth.toml [environments.staging] {key}"
    assert info.value.exit_code == 2


def test_invalid_toml_syntax(root):
    write(root, "berth.toml", "[defaults\nuser = 'x'\n")
    with pytest.raises(UsageError) as info:
        load_target(root, "staging")
    assert "not valid TOML" in info.value.what
    assert info.value.where == str(root / "berth.toml")


def test_environment_section_that_is_not_a_table(root):
    write(root, "berth.toml", "[environments]\nstaging = 5\n")
    with pytest.raises(UsageError) as info:
        load_target(root, "staging")
    assert "[environments.staging] must be a table" in info.value.what


@pytest.mark.parametrize("value", ['"staging"', '["staging"]'])
def test_environments_key_that_is_not_a_table(root, value):
    write(root, "berth.toml", f"environments = {value}\n")
    with pytest.raises(UsageError) as info:
        load_target(root, "staging")
    assert "environments" in info.value.what


def test_toml_that_is_not_utf8(root):
    (root / "berth.toml").write_bytes(b'[defaults]\nuser = "\xff\xfe"\n')
    with pytest.raises(UsageError) as info:
        load_target(root, "staging")
    assert "berth.toml" in info.value.paragraph()


def test_toml_list_setting_given_as_string_becomes_one_element(root):
    write(root, "berth.toml", '[environments.staging]\nhosts = "203.0.113.1"\n')
    assert [h.address for h in load_target(root).hosts] == ["203.0.113.1"]


# --------------------------------------------------------------------------- individual settings


@pytest.mark.parametrize(
    "raw",
    [
        "http://a.test/health,https://b.test:8443/up",
        "http://a.test/health, https://b.test:8443/up",
        " http://a.test/health ,, https://b.test:8443/up, ",
        '"http://a.test/health https://b.test:8443/up"',
    ],
)
def test_health_url_comma_list(root, raw):
    write(root, ".env", f"ENVIRONMENT=staging\nHEALTH_URL={raw}\n")
    assert load_target(root).health_urls == ("http://a.test/health", "https://b.test:8443/up")


def test_health_urls_from_toml_list(root):
    write(root, "berth.toml", '[environments.staging]\nhealth_urls = ["http://x/h", "http://y/h"]\n')
    assert load_target(root).health_urls == ("http://x/h", "http://y/h")


def test_server_ip_list(root):
    write(root, ".env", "ENVIRONMENT=staging\nSERVER_IP=10.0.0.1, 10.0.0.2\n")
    assert [h.address for h in load_target(root).hosts] == ["10.0.0.1", "10.0.0.2"]


def test_app_dir_defaults_to_home_and_repo_dir_name(tmp_path, monkeypatch):
    root = tmp_path / "My-Shop"
    root.mkdir()
    write(root, ".env", "ENVIRONMENT=staging\n")
    assert load_target(root).app_dir == "~/My-Shop"
    # a relative -C path, or '.', still names the real directory
    monkeypatch.chdir(root)
    assert load_target(Path(".")).app_dir == "~/My-Shop"
    assert load_target(Path(".")).root == root


def test_app_dir_from_setting(root):
    write(root, ".env", "ENVIRONMENT=staging\nAPP_DIR=/opt/apps/shop\n")
    assert load_target(root).app_dir == "/opt/apps/shop"


@pytest.mark.parametrize(
    "app_dir, project, expected",
    [
        (None, None, "shop"),
        ("/srv/Shop.Front_end/", None, "shopfront_end"),
        ("~/My App-2", None, "myapp-2"),
        ("/srv/anything", "Custom Name", "customname"),
        ("/srv/anything", "api_v2", "api_v2"),
        ("/srv/!!!", None, "app"),
    ],
)
def test_project_name_derivation(root, app_dir, project, expected):
    lines = ["[environments.staging]"]
    if app_dir:
        lines.append(f'app_dir = "{app_dir}"')
    if project:
        lines.append(f'project = "{project}"')
    write(root, "berth.toml", "\n".join(lines) + "\n")
    assert load_target(root).project == expected


@pytest.mark.parametrize("dir_name, compose_name", [("_My.App", "myapp"), ("-dash", "dash")])
def test_project_name_matches_compose_for_leading_separator(tmp_path, dir_name, compose_name):
    root = tmp_path / dir_name
    root.mkdir()
    write(root, ".env", "ENVIRONMENT=staging\n")
    assert load_target(root).project == compose_name


@pytest.mark.parametrize(
    "environment, toml_confirm, expected",
    [
        ("production", None, True),
        ("staging", None, False),
        ("development", None, False),
        ("production", "false", False),
        ("staging", "true", True),
    ],
)
def test_confirm_defaults_to_true_only_for_production(root, environment, toml_confirm, expected):
    text = f"[environments.{environment}]\n"
    if toml_confirm:
        text += f"confirm = {toml_confirm}\n"
    write(root, "berth.toml", text)
    assert load_target(root, environment).confirm is expected


def test_verify_timeout_default_and_override(root):
    write(root, ".env", "ENVIRONMENT=staging\n")
    assert load_target(root).verify_timeout == DEFAULT_VERIFY_TIMEOUT
    write(root, ".env", "ENVIRONMENT=staging\nVERIFY_TIMEOUT=300\n")
    assert load_target(root).verify_timeout == 300


def test_compose_files_and_env_file_defaults(root):
    write(root, ".env", "ENVIRONMENT=staging\n")
    t = load_target(root)
    assert t.compose_files == ("docker-compose.yml",)
    assert t.env_file == ".env.docker"
    write(root, ".env", "ENVIRONMENT=staging\nCOMPOSE_FILES=compose.yml,compose.prod.yml\n")
    assert load_target(root).compose_files == ("compose.yml", "compose.prod.yml")


def test_key_path_relative_to_project_and_home_expanded(root, monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    write(root, ".env", "ENVIRONMENT=staging\nSERVER_IP=h\nPEM_KEY_PATH=~/.ssh/deploy.pem\n")
    assert load_target(root).hosts[0].key_path == tmp_path / "home/.ssh/deploy.pem"
    write(root, ".env", "ENVIRONMENT=staging\nSERVER_IP=h\nPEM_KEY_PATH=deploy.pem\n")
    assert load_target(root).hosts[0].key_path == root / "deploy.pem"


def test_last_assignment_in_dotenv_wins(root):
    write(root, ".env", "ENVIRONMENT=staging\nSERVER_IP=1.1.1.1\nSERVER_IP=2.2.2.2\n")
    t = load_target(root)
    assert [h.address for h in t.hosts] == ["2.2.2.2"]
    assert t.settings["hosts"].line == 3
