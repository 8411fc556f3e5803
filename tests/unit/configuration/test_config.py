"""berth.configuration.target: where each setting comes from, and the errors for bad settings files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from berth.configuration.target import DEFAULT_VERIFY_TIMEOUT, Host, load_target
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
    assert t.where("user") == "berth.toml:2 [defaults] user"
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
    assert t.where("user") == "berth.toml:6 [environments.staging] user"
    assert (t.settings["user"].file, t.settings["user"].line) == (root / "berth.toml", 6)
    assert t.settings["app_dir"].line == 3


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
    assert info.value.where == f"{root / 'berth.toml'}:{2 if key != 'default' else 1}"


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
    assert info.value.what.startswith("berth.toml:2: ")
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


@pytest.mark.parametrize("files, env_file, toml, expected, origin", [
    # compose's own order: berth's setting, then COMPOSE_PROJECT_NAME, then `name:`, then the directory
    ({"compose.yaml": "name: My_Store\nservices: {}\n"}, "", "", "my_store", "compose.yaml:1 name:"),
    ({"compose.yaml": "services: {}\nname: \"shop-${STAGE:-dev}\"\n"}, "STAGE=blue\n", "", "shop-blue",
     "compose.yaml:2 name:"),
    ({"compose.yaml": "name: first\nservices: {}\n", "compose.prod.yaml": "name: second\n"}, "", "", "second",
     "compose.prod.yaml:1 name:"),
    ({"compose.yaml": "name: from-file\nservices: {}\n"}, "COMPOSE_PROJECT_NAME=From_Env\n", "", "from_env",
     ".env.docker:1 COMPOSE_PROJECT_NAME"),
    ({"compose.yaml": "name: from-file\nservices: {}\n"}, "COMPOSE_PROJECT_NAME=env\n", 'project = "toml"\n',
     "toml", "berth.toml"),
    ({"compose.yaml": "services: {}\n"}, "", "", "shop", "the last part of app_dir"),
    ({"compose.yaml": "name: ${UNSET?needs a value}\nservices: {}\n"}, "", "", "shop", "the last part of app_dir"),
    ({"compose.yaml": "name: [not, a, name\n"}, "", "", "shop", "the last part of app_dir"),  # check reports it
])
def test_project_name_is_derived_as_compose_derives_it(root, files, env_file, toml, expected, origin):
    for name, text in files.items():
        write(root, name, text)
    write(root, ".env.docker", env_file)
    listed = f"COMPOSE_FILES={','.join(files)}\n" if len(files) > 1 else ""
    write(root, ".env", "ENVIRONMENT=staging\n" + listed)
    if toml:
        write(root, "berth.toml", "[environments.staging]\n" + toml)
    target = load_target(root)
    assert (target.project, target.project_name.origin.split(":")[0] if toml else target.project_name.origin) == (
        expected, origin)
    assert target.legacy_project == ("toml" if toml else "shop")  # what berth used before: kept where it runs


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


# --------------------------------------------------------------------------- berth.toml settings know their line


TOML_WITH_EVERYTHING = '''\
# user = "a comment, not a key"
[defaults]  # [environments.staging] in a comment
user = "defaultsuser"
health_urls = [
  "http://x/h",  # a comment ] inside the array
  "http://y/h,}",
]

[environments . "staging"]
app_dir = """/srv/
user = "inside a multi-line string"
"""
"user" = 'staginguser'
  hosts = ["10.0.0.9"]   # indented

[environments.production]
user = "productionuser"
pre_deploy = [
  "make migrate",
]

[environments]
qa = { user = "qauser", hosts = ["10.0.0.7",
  "10.0.0.8"] }
dev.user = "devuser"
'''


@pytest.mark.parametrize(
    "environment, lines",
    [
        ("staging", {"user": 13, "hosts": 14, "app_dir": 10, "health_urls": 4}),
        ("production", {"user": 17, "pre_deploy": 18, "health_urls": 4}),
        ("qa", {"user": 23, "hosts": 23, "health_urls": 4}),
        ("dev", {"user": 25, "health_urls": 4}),
    ],
)
def test_toml_settings_carry_the_line_of_their_key_in_the_right_table(root, environment, lines):
    write(root, "berth.toml", TOML_WITH_EVERYTHING)
    t = load_target(root, environment)
    assert t.get("user") == f"{environment}user"
    for name, line in lines.items():
        s = t.settings[name]
        assert (s.file, s.line) == (root / "berth.toml", line), name
        table = "defaults" if name == "health_urls" else f"environments.{environment}"
        assert t.where(name) == f"berth.toml:{line} [{table}] {name}"


def test_toml_defaults_line_when_environment_does_not_set_it(root):
    write(root, ".env", DOTENV)
    write(root, "berth.toml", '[environments.production]\nuser = "p"\n\n[defaults]\nuser = "d"\nport = 2222\n')
    t = load_target(root)  # staging, from .env
    assert t.where("user") == "berth.toml:5 [defaults] user"
    assert t.where("port") == "berth.toml:6 [defaults] port"
    assert t.where("hosts") == ".env:3"  # .env settings keep their format
    assert load_target(root, "production").where("user") == "berth.toml:2 [environments.production] user"


def test_toml_with_crlf_line_endings(root):
    (root / "berth.toml").write_bytes(b'[defaults]\r\nbranch = "main"\r\n\r\n[environments.staging]\r\n'
                                      b'hosts = [\r\n  "h",\r\n]\r\nuser = "u"\r\n')
    t = load_target(root)
    assert (t.settings["branch"].line, t.settings["hosts"].line, t.settings["user"].line) == (2, 5, 8)


def test_unknown_toml_key_where_names_its_line(root):
    write(root, "berth.toml", '[defaults]\nuser = "x"\n\n[environments.staging]\nuser = "y"\nprot = 22\n')
    with pytest.raises(UsageError) as info:
        load_target(root)
    assert info.value.where == f"{root / 'berth.toml'}:6"


def test_a_toml_setting_finding_points_at_its_line(root):
    """The settings rules report a berth.toml setting at berth.toml:LINE, as they do .env:LINE."""
    from types import SimpleNamespace

    from berth.check.rules.settings import health_urls_valid, hosts_present, port_valid

    write(root, "berth.toml", '[defaults]\nport = 22\n\n[environments.staging]\nport = 70000\nhosts = []\n'
                              'health_urls = [\n  "ftp://x/",\n]\n')
    ctx = SimpleNamespace(target=load_target(root), dotenv_path=root / ".env")
    at = [(f.file, f.line) for rule in (port_valid, hosts_present, health_urls_valid) for f in rule(ctx)]
    assert at == [(root / "berth.toml", 5), (root / "berth.toml", 6), (root / "berth.toml", 7)]


# --------------------------------------------------------------------------- the key-line scanner itself


def test_toml_key_lines_paths():
    from berth.configuration.target import toml_key_lines

    text = '''\
top = 1
a.b."c.d" = 'x'
[t]
"q \\" \\u00e9" = "v"
'lit' = 1979-05-27 07:32:00Z
inline = { k = 1, nested = { deep = [1, 2] } }
[[arr]]
x = 1
[arr.sub]
y = 2
[[arr]]
x = """a""""
[t.after]
z = '''+"'''it'''''"+'''
'''
    lines = toml_key_lines(text)
    assert lines[("top",)] == 1
    assert lines[("a", "b", "c.d")] == 2 and lines[("a",)] == 2
    assert lines[("t",)] == 3
    assert lines[("t", 'q " é')] == 4
    assert lines[("t", "lit")] == 5
    assert lines[("t", "inline", "nested", "deep")] == 6
    assert lines[("arr", 0, "x")] == 8 and lines[("arr", 0, "sub", "y")] == 10 and lines[("arr", 1, "x")] == 12
    assert lines[("t", "after", "z")] == 14


@pytest.mark.parametrize("text", ["[a\nb = 1", 'a = "unterminated', "a = [1,", "= 1", "a = \"\\uZZZZ\"", "[" * 5000])
def test_toml_key_lines_never_raises(text):
    from berth.configuration.target import toml_key_lines

    assert isinstance(toml_key_lines(text), dict)


# A document written in a random mix of TOML styles, noting the line each key lands on; tomllib must accept
# it and the scanner must find every key on that line.

_KEY_TEXT = st.text(alphabet="ab_-1.é \"'#=[]{}\\\t", max_size=4)
_STR_TEXT = st.text(alphabet="ab é\"'#=[]{},\\\n\t", max_size=12)
_LEAF = st.one_of(st.integers(), st.booleans(), _STR_TEXT, st.lists(st.one_of(st.integers(), _STR_TEXT), max_size=3))
_TREE = st.recursive(_LEAF, lambda children: st.dictionaries(_KEY_TEXT, children, max_size=4), max_leaves=12)
_COMMENTS = ("", "  # x = 1 [t] {", "\t#", " # \"'\"")


class _Writer:
    def __init__(self, draw):
        self.draw = draw
        self.text = ""
        self.expected: dict[tuple, int] = {}

    def emit(self, s: str) -> None:
        self.text += s

    def here(self) -> int:
        return self.text.count("\n") + 1

    def key(self, k: str) -> str:
        if k and all(c.isascii() and (c.isalnum() or c in "_-") for c in k):
            return k
        if "'" not in k and "\t" not in k and self.draw(st.booleans()):
            return f"'{k}'"
        return json.dumps(k, ensure_ascii=self.draw(st.booleans()))

    def string(self, v: str) -> str:
        style = self.draw(st.sampled_from(["basic", "literal", "multi", "multiliteral"]))
        if style == "literal" and not set(v) & set("'\n"):
            return f"'{v}'"
        if style == "multiliteral" and "'''" not in v and not v.endswith("'"):
            return f"'''{v}'''"
        if style == "multi":
            return '"""' + v.replace("\\", "\\\\").replace('"', '\\"') + '"""'
        return json.dumps(v, ensure_ascii=False)

    def value(self, v, path: tuple) -> None:
        if isinstance(v, dict):
            self.emit("{ ")
            for n, (k, item) in enumerate(v.items()):
                self.emit(", " if n else "")
                self.expected[(*path, k)] = self.here()
                self.emit(f"{self.key(k)} = ")
                self.value(item, (*path, k))
            self.emit(" }")
        elif isinstance(v, list):
            sep = self.draw(st.sampled_from([", ", ",\n  ", ",  # ] x = 1\n"]))
            self.emit("[")
            for n, item in enumerate(v):
                self.emit(sep if n else "")
                self.value(item, path)
            self.emit(self.draw(st.sampled_from(["]", ",\n]", "\n]"])) if v else "]")
        elif isinstance(v, str):
            self.emit(self.string(v))
        else:
            self.emit(json.dumps(v))

    def table(self, path: tuple, table: dict, dotted: tuple = ()) -> list:
        """Write the keys of `table` (under `dotted` keys); return the sub-tables left for a [header]."""
        later = []
        for k, v in table.items():
            if isinstance(v, dict):
                style = self.draw(st.sampled_from(["header", "dotted", "inline"] if v else ["header", "inline"]))
                if style == "header" and not dotted:
                    later.append((k, v))
                    continue
                if style == "dotted":
                    self.expected[(*path, *dotted, k)] = self.here()
                    later += [((k, *sub), w) for sub, w in self.table(path, v, (*dotted, k))]
                    continue
            self.expected[(*path, *dotted, k)] = self.here()
            self.emit(self.draw(st.sampled_from(["", "  "])) + ".".join(self.key(p) for p in (*dotted, k)))
            self.emit(self.draw(st.sampled_from([" = ", "=", " =\t"])))
            self.value(v, (*path, *dotted, k))
            self.emit(self.draw(st.sampled_from(_COMMENTS)) + "\n")
        return [((k,), v) if isinstance(k, str) else (k, v) for k, v in later]

    def document(self, path: tuple, table: dict) -> None:
        for sub, v in self.table(path, table):
            self.emit(self.draw(st.sampled_from(["\n", ""])))
            self.expected[(*path, *sub)] = self.here()
            header = " . ".join(self.key(p) for p in (*path, *sub))
            self.emit(f"[{header}]" + self.draw(st.sampled_from(_COMMENTS)) + "\n")
            self.document((*path, *sub), v)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_KEY_TEXT, _TREE, max_size=5), st.data())
def test_property_toml_key_lines_finds_every_key_on_its_line(tree, data):
    import tomllib

    from berth.configuration.target import toml_key_lines

    w = _Writer(data.draw)
    w.document((), tree)
    tomllib.loads(w.text)  # the writer wrote valid TOML
    found = toml_key_lines(w.text)
    assert {k: found.get(k) for k in w.expected} == w.expected, w.text


# --------------------------------------------------------------------------- values that cannot be used (review §16)


@pytest.mark.parametrize("value", ["abc", "0", "-5", "99999", "1.5", " "])
def test_unusable_verify_timeout_is_a_located_usage_error(root, value):
    """The review: VERIFY_TIMEOUT=abc made `target.verify_timeout` (config, deploy) raise ValueError."""
    write(root, ".env", f"ENVIRONMENT=staging\nSERVER_IP=203.0.113.5\nVERIFY_TIMEOUT={value}\n")
    target = load_target(root)
    if value.strip() == "":
        assert target.verify_timeout == DEFAULT_VERIFY_TIMEOUT  # empty: not set
        return
    with pytest.raises(UsageError) as info:
        target.verify_timeout  # noqa: B018
    assert info.value.exit_code == 2
    assert f"verify_timeout '{value}' is not a whole number of seconds from 1 to 3600" in info.value.what
    assert info.value.where == f"{root / '.env'}:3"


@pytest.mark.parametrize("value", [0, 3601])
def test_verify_timeout_out_of_range_in_toml(root, value):
    write(root, "berth.toml", f"[environments.staging]\nhosts = [\"a\"]\nverify_timeout = {value}\n")
    with pytest.raises(UsageError) as info:
        load_target(root).verify_timeout  # noqa: B018
    assert info.value.where == f"{root / 'berth.toml'}:3"


@pytest.mark.parametrize("value", [1, 3600])
def test_verify_timeout_bounds_are_allowed(root, value):
    write(root, "berth.toml", f"[environments.staging]\nverify_timeout = {value}\n")
    assert load_target(root).verify_timeout == value


@pytest.mark.parametrize("toml, says", [
    ('hosts = ["203.0.113.10\\u0000"]', "host '203.0.113.10\\x00' contains a NUL byte"),
    ('hosts = ["203.0.113.10\\u001b[2J"]', "contains the control character U+001B"),
    ('hosts = ["-oProxyCommand=x"]', "starts with '-'"),
    ('hosts = ["a b"]', "contains whitespace"),
    ('hosts = ["a"]\nuser = "deploy\\u0000"', "SERVER_USER 'deploy\\x00' contains a NUL byte"),
    ('hosts = ["a"]\nuser = "-oProxyCommand=x"', "SERVER_USER '-oProxyCommand=x' starts with '-'"),
    ('hosts = ["a"]\nuser = "deploy\\u0007"', "U+0007"),
    ('hosts = ["a"]\nuser = "a;id"', "contains ';'"),
], ids=["host-nul", "host-escape", "host-dash", "host-space", "user-nul", "user-dash", "user-bell", "user-semicolon"])
def test_unusable_host_or_user_is_a_located_usage_error(root, toml, says):
    """Target.hosts is what status, logs, doctor and deploy use: they stop before any connection."""
    write(root, "berth.toml", f"[environments.staging]\n{toml}\n")
    target = load_target(root)
    with pytest.raises(UsageError) as info:
        target.hosts  # noqa: B018
    assert says in info.value.what
    assert info.value.exit_code == 2
    line = 3 if "user" in toml else 2
    assert info.value.where == f"{root / 'berth.toml'}:{line}"


def test_unusable_host_from_the_command_line(root):
    write(root, ".env", "ENVIRONMENT=staging\n")
    with pytest.raises(UsageError) as info:
        load_target(root, hosts=("203.0.113.5\x00",)).hosts  # noqa: B018
    assert info.value.where == "--host"


def test_usable_hosts_and_users(root):
    write(root, "berth.toml", '[environments.staging]\nhosts = ["203.0.113.5", "web-1.prod", "fe80::1%eth0", '
                              '"bücher.example"]\nuser = "deploy@ad.example.com"\n')
    assert [h.address for h in load_target(root).hosts] == ["203.0.113.5", "web-1.prod", "fe80::1%eth0",
                                                            "bücher.example"]


@pytest.mark.parametrize("text, line", [
    ("[environments.staging]\nuser = \"x\"\nhosts = " + "[" * 500 + '"a"' + "]" * 500 + "\n", 3),  # the review's
    ("[environments.staging]\nhosts = " + "[" * 5000 + '"a"' + "]" * 5000 + "\n", 2),
    ("[environments.staging]\nhosts = " + "[" * 40 + '"a"' + "]" * 40 + "\n", 2),  # tomllib reads it
    ("[check]\nseverity = " + "{ a = " * 300 + '"info"' + " }" * 300 + "\n", 2),
    ("[check.severity." + ".".join(["a"] * 3000) + "]\nx = \"info\"\n", 2),  # recursive [check] walks
], ids=["arrays-500", "arrays-5000", "arrays-40", "inline-tables-300", "dotted-table-3000"])
def test_deeply_nested_toml_is_a_located_usage_error(root, text, line):
    """The review: `hosts = [[[[…]]]]` 500 levels deep made tomllib raise RecursionError (a traceback)."""
    write(root, "berth.toml", text)
    with pytest.raises(UsageError) as info:
        load_target(root, "staging")
    assert "berth.toml nests arrays or tables more than 32 levels deep" in info.value.what
    assert info.value.where == f"{root / 'berth.toml'}:{line}"
    assert info.value.exit_code == 2


@pytest.mark.parametrize("make", ["fifo", "dev-zero", "dev-urandom", "directory", "too-big"])
def test_berth_toml_that_cannot_be_read(root, make):
    path = root / "berth.toml"
    if make == "fifo":
        os.mkfifo(path)
    elif make == "directory":
        path.mkdir()
    elif make == "too-big":
        path.write_text("[defaults]\n" + "#" * (2 * 1024 * 1024) + "\n")
    else:
        path.symlink_to("/dev/" + make.split("-")[1])
    with pytest.raises(UsageError) as info:
        load_target(root, "staging")
    assert info.value.where == str(path)
    says = "is 2048 KiB; a berth.toml over 1 MiB is not plausible" if make == "too-big" else "not a regular file"
    assert says in info.value.what


@pytest.mark.parametrize("present, chosen", [
    (("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml"), "compose.yaml"),
    (("compose.yml", "docker-compose.yml"), "compose.yml"),
    (("docker-compose.yml", "docker-compose.yaml"), "docker-compose.yml"),
    (("docker-compose.yaml",), "docker-compose.yaml"),
    ((), "docker-compose.yml"),  # none: the name berth check reports as missing
])
def test_the_compose_file_is_the_one_docker_compose_would_pick(tmp_path, present, chosen):
    """compose-go's order (checked against `docker compose config` 2.26: it warns and uses the first)."""
    for name in present:
        (tmp_path / name).write_text("services: {}\n")
    (tmp_path / ".env").write_text("ENVIRONMENT=staging\nSERVER_IP=203.0.113.5\n")
    assert load_target(tmp_path).compose_files == (chosen,)


def test_compose_files_named_in_the_settings_win_over_discovery(tmp_path):
    (tmp_path / "compose.yaml").write_text("services: {}\n")
    (tmp_path / ".env").write_text("ENVIRONMENT=staging\nSERVER_IP=203.0.113.5\nCOMPOSE_FILES=a.yml,b.yml\n")
    assert load_target(tmp_path).compose_files == ("a.yml", "b.yml")
