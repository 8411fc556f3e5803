"""berth.remote.transport.ssh: the ssh argv berth builds, and how OpenSSH's errors are explained."""

from __future__ import annotations

import re
import shutil
import socket
from pathlib import Path

import pytest

from berth.configuration.target import Host
from berth.remote.transport.ssh import SSHConnection, SSHError, SSHOptions, base_argv, command_argv, explain_ssh_failure, master_argv

CP = Path("/tmp/berth-ssh-x/cm")
HOST = Host("203.0.113.5", "deploy", 2222, Path("/home/me/keys/deploy.pem"))
SCRIPT = "set -e\napp='/srv/my app'\nif [ -d \"$app\" ]; then echo \"it's there\"; fi\nprintf '%s\\n' \"$HOME\"\n"


def options(argv: list[str]) -> dict[str, str]:
    """The -o KEY=VALUE options of an argv."""
    out = {}
    for flag, value in zip(argv, argv[1:]):
        if flag == "-o":
            key, _, val = value.partition("=")
            out[key] = val
    return out


def flag_value(argv: list[str], flag: str) -> str | None:
    return argv[argv.index(flag) + 1] if flag in argv else None


# --------------------------------------------------------------------------- host key policy


def test_strict_host_key_checking_by_default():
    argv = base_argv(HOST, SSHOptions(), CP)
    assert options(argv)["StrictHostKeyChecking"] == "yes"
    assert "accept-new" not in " ".join(argv)
    assert [a for a in argv if a.startswith("StrictHostKeyChecking=")] == ["StrictHostKeyChecking=yes"]


def test_accept_new_only_with_trust_new_host():
    argv = base_argv(HOST, SSHOptions(trust_new_host=True), CP)
    assert [a for a in argv if a.startswith("StrictHostKeyChecking=")] == ["StrictHostKeyChecking=accept-new"]
    for opts in (SSHOptions(), SSHOptions(trust_new_host=True)):
        text = " ".join(master_argv(HOST, opts, CP) + command_argv(HOST, opts, CP, SCRIPT))
        assert "StrictHostKeyChecking=no" not in text
        assert "UserKnownHostsFile=/dev/null" not in text


def test_common_options():
    o = options(base_argv(HOST, SSHOptions(connect_timeout=7), CP))
    assert o["ControlPath"] == str(CP)
    assert o["ConnectTimeout"] == "7"
    assert o["BatchMode"] == "yes"
    assert o["IdentitiesOnly"] == "yes"
    assert "UserKnownHostsFile" not in o
    assert "BatchMode" not in options(base_argv(HOST, SSHOptions(batch=False), CP))


# --------------------------------------------------------------------------- identity, port, user, config


def test_identity_port_user_placement():
    argv = base_argv(HOST, SSHOptions(), CP)
    assert argv[0] == "ssh"
    assert flag_value(argv, "-i") == "/home/me/keys/deploy.pem"
    assert flag_value(argv, "-p") == "2222"
    assert flag_value(argv, "-l") == "deploy"
    # IdentitiesOnly goes with -i: ssh then offers only that key, not every agent key
    i = argv.index("-i")
    assert argv[i + 2: i + 4] == ["-o", "IdentitiesOnly=yes"]


def test_no_identity_port_user_when_not_configured():
    argv = base_argv(Host("myalias"), SSHOptions(), CP)
    assert "-i" not in argv and "-p" not in argv and "-l" not in argv
    assert "IdentitiesOnly" not in options(argv)  # ~/.ssh/config and the agent decide


def test_ssh_config_is_first_and_known_hosts_is_an_option():
    opts = SSHOptions(ssh_config=Path("/p/ssh config"), known_hosts=Path("/p/known hosts"))
    argv = base_argv(HOST, opts, CP)
    assert argv[1:3] == ["-F", "/p/ssh config"]  # one element, even with a space
    # ssh splits an option's value on whitespace: double quotes keep the path one file (see the ssh -G tests)
    assert options(argv)["UserKnownHostsFile"] == '"/p/known hosts"'
    assert "/p/known hosts" not in argv  # not a separate (misparsed) word


def test_known_hosts_path_quoting_escapes_what_ssh_would_read():
    opts = SSHOptions(known_hosts=Path('/p/a "b"\\c 100%'))
    assert options(base_argv(HOST, opts, CP))["UserKnownHostsFile"] == '"/p/a \\"b\\"\\\\c 100%%"'


def test_known_hosts_path_with_an_environment_variable_reference_is_refused():
    opts = SSHOptions(known_hosts=Path("/p/${HOME}/kh"), known_hosts_origin=".env:5")
    with pytest.raises(SSHError) as info:
        base_argv(HOST, opts, CP)
    assert "${" in info.value.what and info.value.where == ".env:5"


def test_forwarding_is_off_unless_agent_forwarding_is_asked_for():
    o = options(base_argv(HOST, SSHOptions(), CP))
    assert (o["ForwardAgent"], o["ForwardX11"], o["ClearAllForwardings"]) == ("no", "no", "yes")
    assert options(base_argv(HOST, SSHOptions(forward_agent=True), CP))["ForwardAgent"] == "yes"


@pytest.mark.parametrize("make", [
    lambda o: master_argv(HOST, o, CP),
    lambda o: command_argv(HOST, o, CP, SCRIPT),
], ids=["master", "command"])
def test_every_option_comes_before_the_destination(make):
    opts = SSHOptions(ssh_config=Path("/p/cfg"), known_hosts=Path("/p/kh"))
    argv = make(opts)
    dest = argv.index(HOST.address)
    for flag in ("-F", "-i", "-p", "-l", "-o"):
        positions = [n for n, a in enumerate(argv) if a == flag]
        assert positions and max(positions) < dest, flag


# --------------------------------------------------------------------------- master and command


def test_master_argv():
    argv = master_argv(HOST, SSHOptions(), CP)
    assert argv[:len(base_argv(HOST, SSHOptions(), CP))] == base_argv(HOST, SSHOptions(), CP)
    o = options(argv)
    assert o["ControlMaster"] == "yes"
    assert int(o["ControlPersist"]) > 0
    assert argv[-3:] == ["-f", "-N", HOST.address]


def test_command_argv_script_is_one_element_after_double_dash():
    argv = command_argv(HOST, SSHOptions(), CP, SCRIPT)
    assert argv[-3:] == [HOST.address, "--", SCRIPT]
    assert argv.count("--") == 1
    assert options(argv)["ControlMaster"] == "no"
    assert "-T" in argv[: argv.index(HOST.address)]


def test_command_argv_script_starting_with_dash_stays_the_command():
    argv = command_argv(HOST, SSHOptions(), CP, "-oProxyCommand=evil")
    assert argv[argv.index("--") + 1:] == ["-oProxyCommand=evil"]


# --------------------------------------------------------------------------- explain_ssh_failure
# stderr texts captured from OpenSSH_9.2p1 Debian-2+deb12u10 (BatchMode=yes)

UNKNOWN_HOST_KEY = """\
No ED25519 host key is known for [203.0.113.5]:2222 and you have requested strict checking.
Host key verification failed.
"""

CHANGED_HOST_KEY = """\
@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @
@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!
Someone could be eavesdropping on you right now (man-in-the-middle attack)!
It is also possible that a host key has just been changed.
The fingerprint for the ED25519 key sent by the remote host is
SHA256:VJIg35Lvvv5kyEPhkKC+O1Fsa0VquYxvaT5QutHsiys.
Please contact your system administrator.
Add correct host key in /home/me/.ssh/known_hosts to get rid of this message.
Offending ED25519 key in /home/me/.ssh/known_hosts:1
  remove with:
  ssh-keygen -f "/home/me/.ssh/known_hosts" -R "[203.0.113.5]:2222"
Host key for [203.0.113.5]:2222 has changed and you have requested strict checking.
Host key verification failed.
"""

PERMISSION_DENIED = """\
Warning: Permanently added '[203.0.113.5]:2222' (ED25519) to the list of known hosts.
deploy@203.0.113.5: Permission denied (publickey).
"""

CONNECTION_REFUSED = "ssh: connect to host 203.0.113.5 port 2222: Connection refused\n"
CONNECTION_TIMED_OUT = "ssh: connect to host 203.0.113.5 port 2222: Connection timed out\n"
BANNER_TIMED_OUT = "Connection timed out during banner exchange\nConnection to 203.0.113.5 port 2222 timed out\n"
NO_DNS = "ssh: Could not resolve hostname shop.invalid: Name or service not known\n"

UNPROTECTED_KEY = """\
@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
@         WARNING: UNPROTECTED PRIVATE KEY FILE!          @
@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
Permissions 0644 for '/home/me/keys/deploy.pem' are too open.
It is required that your private key files are NOT accessible by others.
This private key will be ignored.
Load key "/home/me/keys/deploy.pem": bad permissions
deploy@203.0.113.5: Permission denied (publickey).
"""


def explain(stderr: str, opts: SSHOptions | None = None, host: Host = HOST) -> SSHError:
    err = explain_ssh_failure(host, stderr, opts or SSHOptions())
    assert isinstance(err, SSHError)
    assert "\n" not in err.paragraph()  # one paragraph
    return err


def test_unknown_host_key():
    err = explain(UNKNOWN_HOST_KEY)
    assert "host key of 203.0.113.5 is not known" in err.what
    assert err.where == "~/.ssh/known_hosts"
    assert "--trust-new-host" in err.fix
    assert "ssh deploy@203.0.113.5:2222" in err.fix
    assert "changed" not in err.what


def test_unknown_host_key_names_the_configured_known_hosts():
    err = explain(UNKNOWN_HOST_KEY, SSHOptions(known_hosts=Path("/p/kh")))
    assert err.where == "/p/kh"


def test_changed_host_key():
    err = explain(CHANGED_HOST_KEY)
    assert "host key of 203.0.113.5 has changed" in err.what
    assert "man-in-the-middle" in err.what
    assert "--trust-new-host" not in err.fix  # accepting it blindly is not offered
    assert "ssh-keygen -R" in err.fix
    assert err.where == "~/.ssh/known_hosts"


def test_changed_host_key_with_own_known_hosts_file():
    err = explain(CHANGED_HOST_KEY, SSHOptions(known_hosts=Path("/p/kh")))
    assert err.fix.endswith("-f /p/kh")
    assert err.where == "/p/kh"


def test_changed_host_key_on_port_22_removes_the_plain_address():
    host = Host("203.0.113.5", "deploy")
    text = CHANGED_HOST_KEY.replace("[203.0.113.5]:2222", "203.0.113.5")
    assert "ssh-keygen -R 203.0.113.5" in explain(text, host=host).fix


def test_changed_host_key_on_other_port_removes_the_bracketed_entry():
    assert re.search(r"ssh-keygen -R ['\"]\[203\.0\.113\.5\]:2222['\"]", explain(CHANGED_HOST_KEY).fix)


def test_permission_denied():
    err = explain(PERMISSION_DENIED)
    assert err.what == "deploy@203.0.113.5:2222 refused the login (deploy@203.0.113.5: Permission denied (publickey).)"
    assert "SERVER_USER=deploy" in err.where and "PEM_KEY_PATH=/home/me/keys/deploy.pem" in err.where
    assert "authorized_keys" in err.fix


def test_permission_denied_without_user_or_key():
    err = explain(PERMISSION_DENIED, host=Host("203.0.113.5"))
    assert "SERVER_USER=(your ssh default)" in err.where
    assert "PEM_KEY_PATH=(ssh-agent / ~/.ssh/config)" in err.where


@pytest.mark.parametrize("stderr", [CONNECTION_REFUSED, CONNECTION_TIMED_OUT, BANNER_TIMED_OUT, NO_DNS],
                         ids=["refused", "timed-out", "banner-timeout", "dns"])
def test_unreachable(stderr):
    err = explain(stderr)
    assert err.what.startswith("cannot reach deploy@203.0.113.5:2222: ")
    assert err.what.endswith(stderr.strip().splitlines()[-1])
    assert "SERVER_IP" in err.fix
    assert "host key" not in err.what and "refused the login" not in err.what


def test_unprotected_key_file():
    err = explain(UNPROTECTED_KEY)
    assert "chmod 600 /home/me/keys/deploy.pem" in err.fix


def test_bad_permissions_alone():
    err = explain('Load key "/home/me/keys/deploy.pem": bad permissions\n')
    assert err.fix == "chmod 600 /home/me/keys/deploy.pem"


def test_unknown_failure_and_empty_stderr():
    err = explain("kex_exchange_identification: read: Connection reset by peer\n")
    assert err.what == "ssh to deploy@203.0.113.5:2222 failed: kex_exchange_identification: read: Connection reset by peer"
    assert explain("").what.endswith("no output from ssh")


def test_host_label():
    assert HOST.label == "deploy@203.0.113.5:2222"
    assert Host("h", port=22).label == "h"
    assert Host("h").label == "h"


# --------------------------------------------------------------------------- the real ssh client


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the socket is


@pytest.mark.skipif(shutil.which("ssh") is None, reason="no OpenSSH client")
def test_real_ssh_refused_connection_is_explained(tmp_path):
    host = Host("127.0.0.1", "deploy", _closed_port())
    conn = SSHConnection(host, SSHOptions(known_hosts=tmp_path / "known_hosts", connect_timeout=5))
    with pytest.raises(SSHError) as info:
        conn.open()
    assert info.value.what.startswith(f"cannot reach deploy@127.0.0.1:{host.port}: ")
    assert "Connection refused" in info.value.what
    assert conn.control_path is None  # the temp dir for the control socket is cleaned up
    assert not (tmp_path / "known_hosts").exists()


# --------------------------------------------------------------------------- what ssh resolves (ssh -G)
# `ssh -G` prints the configuration ssh would use and exits without connecting. Every test passes its own
# -F file, so the developer's ~/.ssh/config and /etc/ssh/ssh_config play no part.

needs_ssh = pytest.mark.skipif(shutil.which("ssh") is None, reason="no OpenSSH client")
LOCAL = Host("127.0.0.1", "deploy")


def ssh_resolves(host: Host, opts: SSHOptions) -> dict[str, str]:
    """`ssh -G` over berth's own argv: lowercase keyword → value (the first line of each)."""
    import subprocess

    proc = subprocess.run([*base_argv(host, opts, CP), "-G", host.address], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=30)
    assert proc.returncode == 0, proc.stderr
    out: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        key, _, value = line.partition(" ")
        out.setdefault(key, value)
    return out


def ssh_config(tmp_path: Path, text: str = "", name: str = "ssh_config") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.fixture
def ssh_calls(monkeypatch):
    """The argv of every process berth.remote.transport.ssh starts (they still run)."""
    import subprocess

    calls: list[list[str]] = []
    real_run = subprocess.run

    def run(argv, *args, **kwargs):
        calls.append(list(argv))
        return real_run(argv, *args, **kwargs)

    monkeypatch.setattr(subprocess, "run", run)
    return calls


def _closed_local_host() -> Host:
    return Host("127.0.0.1", "deploy", _closed_port())


def assert_refused_before_connecting(conn: SSHConnection, calls: list[list[str]], says: str) -> SSHError:
    with pytest.raises(SSHError) as info:
        conn.open()
    assert says in info.value.what, info.value.paragraph()
    assert "Connection refused" not in info.value.what  # it never got as far as connecting
    assert calls and all("-G" in argv for argv in calls), calls  # only `ssh -G` ran
    assert conn.control_path is None
    assert "\n" not in info.value.paragraph()
    return info.value


@needs_ssh
def test_repo_ssh_config_with_known_hosts_dev_null_and_trust_new_host_is_refused_before_connecting(
        tmp_path, ssh_calls):
    # the review's case: accept-new + a known_hosts that forgets every key = any key on every connection
    config = ssh_config(tmp_path, "Host *\n  UserKnownHostsFile /dev/null\n")
    assert ssh_resolves(LOCAL, SSHOptions(trust_new_host=True, ssh_config=config))["userknownhostsfile"] == "/dev/null"
    conn = SSHConnection(_closed_local_host(), SSHOptions(trust_new_host=True, ssh_config=config, connect_timeout=5))
    err = assert_refused_before_connecting(conn, ssh_calls, "/dev/null")
    assert "can never hold a key" in err.what and "--trust-new-host" in err.what
    assert err.where == str(config)
    assert "UserKnownHostsFile" in err.fix and str(config) in err.fix and "SSH_KNOWN_HOSTS" in err.fix


@needs_ssh
def test_known_hosts_dev_null_among_several_files_is_refused(tmp_path, ssh_calls):
    config = ssh_config(tmp_path, f"Host *\n  UserKnownHostsFile {tmp_path}/kh /dev/null\n")
    conn = SSHConnection(_closed_local_host(), SSHOptions(trust_new_host=True, ssh_config=config, connect_timeout=5))
    assert_refused_before_connecting(conn, ssh_calls, "/dev/null")


def _berth_toml_project(tmp_path: Path, known_hosts: str, extra: str = "") -> Path:
    root = tmp_path / "app"
    root.mkdir()
    ssh_config(root, "")
    (root / "berth.toml").write_text(
        f'[environments.staging]\nhosts = ["127.0.0.1"]\nport = {_closed_port()}\nssh_config = "ssh_config"\n'
        f'known_hosts = "{known_hosts}"\n{extra}')
    return root


@needs_ssh
@pytest.mark.parametrize("via_symlink", [False, True], ids=["dev-null", "symlink-to-dev-null"])
def test_known_hosts_dev_null_in_berth_toml_with_trust_new_host_is_refused(tmp_path, ssh_calls, via_symlink):
    from berth.configuration.target import load_target
    from berth.remote.session import ssh_options

    known_hosts = "/dev/null"
    if via_symlink:
        (tmp_path / "known_hosts").symlink_to("/dev/null")
        known_hosts = str(tmp_path / "known_hosts")
    target = load_target(_berth_toml_project(tmp_path, known_hosts), "staging")
    conn = SSHConnection(target.hosts[0], ssh_options(target, trust_new_host=True))
    err = assert_refused_before_connecting(conn, ssh_calls, f"the known_hosts file {known_hosts} is a device")
    assert err.where == "berth.toml:5 [environments.staging] known_hosts"
    assert "SSH_KNOWN_HOSTS" in err.fix and "known_hosts in berth.toml" in err.fix
    if via_symlink:
        assert "(it leads to /dev/null)" in err.what


@needs_ssh
def test_known_hosts_that_cannot_be_created_with_trust_new_host_is_refused(tmp_path, ssh_calls):
    # ssh only logs "Failed to add the host to the list of known hosts" and connects: the same as /dev/null
    missing = tmp_path / "no such dir" / "known_hosts"
    opts = SSHOptions(trust_new_host=True, ssh_config=ssh_config(tmp_path), known_hosts=missing, connect_timeout=5)
    err = assert_refused_before_connecting(SSHConnection(_closed_local_host(), opts), ssh_calls,
                                           "is in a directory that does not exist")
    assert str(missing) in err.what


@needs_ssh
def test_known_hosts_dev_null_without_trust_new_host_only_refuses_unknown_keys(tmp_path, ssh_calls):
    # strict checking never adds a key, so /dev/null (e.g. next to a managed GlobalKnownHostsFile) is not
    # a hole: the guard lets ssh connect, and ssh refuses a host it does not know
    opts = SSHOptions(ssh_config=ssh_config(tmp_path), known_hosts=Path("/dev/null"), connect_timeout=5)
    with pytest.raises(SSHError) as info:
        SSHConnection(_closed_local_host(), opts).open()
    assert "Connection refused" in info.value.what
    assert any("ControlMaster=yes" in argv for argv in ssh_calls)


@needs_ssh
@pytest.mark.parametrize("trust_new_host, expected", [(False, "true"), (True, "accept-new")])
def test_strict_host_key_checking_no_in_a_config_still_resolves_to_berths(tmp_path, trust_new_host, expected):
    config = ssh_config(tmp_path, "Host *\n  StrictHostKeyChecking no\n")
    opts = SSHOptions(trust_new_host=trust_new_host, ssh_config=config, known_hosts=tmp_path / "kh")
    from berth.remote.transport.ssh import host_key_problem  # new in the fix: imported here so the rest runs on 8d57fe6

    resolved = ssh_resolves(LOCAL, opts)
    assert resolved["stricthostkeychecking"] == expected
    assert host_key_problem(LOCAL, opts, {k: [v] for k, v in resolved.items()}) is None


@pytest.mark.parametrize("resolved", ["false", "ask", "", "accept-new"])
def test_a_strict_host_key_checking_that_is_not_berths_is_refused(resolved):
    # berth's -o comes first and wins in OpenSSH; this guards against an ssh that behaves otherwise
    from berth.remote.transport.ssh import host_key_problem

    err = host_key_problem(LOCAL, SSHOptions(ssh_config=Path("/p/cfg")),
                           {"stricthostkeychecking": [resolved], "userknownhostsfile": ["/p/kh"]})
    assert err is not None and "StrictHostKeyChecking" in err.what and err.where == "/p/cfg"


@needs_ssh
def test_forward_agent_yes_in_a_config_resolves_to_no_unless_opted_in(tmp_path):
    config = ssh_config(tmp_path, "Host *\n  ForwardAgent yes\n  ForwardX11 yes\n  LocalForward 5432 127.0.0.1:5432\n")
    default = ssh_resolves(LOCAL, SSHOptions(ssh_config=config))
    assert (default["forwardagent"], default["forwardx11"], default["clearallforwardings"]) == ("no", "no", "yes")
    assert ssh_resolves(LOCAL, SSHOptions(ssh_config=config, forward_agent=True))["forwardagent"] == "yes"


@needs_ssh
@pytest.mark.parametrize("setting, dotenv", [
    ("forward_agent = true\n", ""), ("", "SSH_FORWARD_AGENT=yes\n"), ("forward_agent = false\n", ""), ("", ""),
    ("", "SSH_FORWARD_AGENT=sometimes\n"),
], ids=["toml-true", "dotenv-yes", "toml-false", "unset", "dotenv-not-a-boolean"])
def test_forward_agent_setting_reaches_ssh(tmp_path, setting, dotenv):
    from berth.configuration.target import load_target
    from berth.remote.session import ssh_options

    root = _berth_toml_project(tmp_path, str(tmp_path / "kh"), setting)
    if dotenv:
        (root / ".env").write_text("ENVIRONMENT=staging\n" + dotenv)
    target = load_target(root, "staging")
    expected = "yes" if ("true" in setting or "=yes" in dotenv) else "no"
    assert ssh_resolves(target.hosts[0], ssh_options(target))["forwardagent"] == expected


@needs_ssh
@pytest.mark.parametrize("name", ["my hosts/known_hosts", "keys ~/known_hosts", 'q"uote\\d 100%d/known_hosts'],
                         ids=["space", "space-then-tilde", "quote-backslash-percent"])
def test_known_hosts_path_with_a_space_is_one_file(tmp_path, name):
    path = tmp_path / name
    opts = SSHOptions(ssh_config=ssh_config(tmp_path), known_hosts=path)
    # unquoted, ssh would read `…/keys ~/known_hosts` as two files, the second one ~/known_hosts
    assert ssh_resolves(LOCAL, opts)["userknownhostsfile"] == str(path)


@needs_ssh
def test_known_hosts_path_with_a_space_is_judged_as_one_file(tmp_path, ssh_calls):
    (tmp_path / "my hosts").mkdir()
    (tmp_path / "my hosts" / "known_hosts").symlink_to("/dev/null")
    (tmp_path / "my").mkdir()  # what a split path's first half would name: a writable directory
    opts = SSHOptions(trust_new_host=True, ssh_config=ssh_config(tmp_path), connect_timeout=5,
                      known_hosts=tmp_path / "my hosts" / "known_hosts")
    assert_refused_before_connecting(SSHConnection(_closed_local_host(), opts), ssh_calls,
                                     f"{tmp_path}/my hosts/known_hosts is a device")


@needs_ssh
def test_identity_and_config_files_with_spaces(tmp_path):
    key = tmp_path / "my keys" / "deploy key"
    key.parent.mkdir()
    key.write_text("not a real key\n")
    config = ssh_config(tmp_path, "Host *\n  HostKeyAlias read-from-the-config\n", name="ssh config")
    resolved = ssh_resolves(Host("127.0.0.1", "deploy", key_path=key), SSHOptions(ssh_config=config))
    assert resolved["identityfile"] == str(key)
    assert resolved["hostkeyalias"] == "read-from-the-config"


@needs_ssh
def test_a_config_ssh_cannot_read_is_one_paragraph(tmp_path, ssh_calls):
    config = ssh_config(tmp_path, "Host *\n  NoSuchOption yes\n")
    conn = SSHConnection(_closed_local_host(), SSHOptions(ssh_config=config, connect_timeout=5))
    err = assert_refused_before_connecting(conn, ssh_calls, "ssh cannot read its configuration")
    assert err.where == str(config)


@needs_ssh
def test_known_hosts_none_with_trust_new_host_is_refused(tmp_path, ssh_calls):
    config = ssh_config(tmp_path, "Host *\n  UserKnownHostsFile none\n")
    conn = SSHConnection(_closed_local_host(), SSHOptions(trust_new_host=True, ssh_config=config, connect_timeout=5))
    err = assert_refused_before_connecting(conn, ssh_calls, "the known_hosts file is `none` (no file at all)")
    assert err.where == str(config)


# --------------------------------------------------------------------------- hosts and users ssh cannot be given


@pytest.mark.parametrize("host", [
    Host("203.0.113.10\x00", "deploy"), Host("203.0.113.10\x1b[2J", "deploy"), Host("-oProxyCommand=x", "deploy"),
    Host("a b", "deploy"), Host("203.0.113.5", "deploy\x00"), Host("203.0.113.5", "-oProxyCommand=x"),
    Host("203.0.113.5", "a b"), Host("203.0.113.5", "x\x07"),
], ids=["host-nul", "host-escape", "host-dash", "host-space", "user-nul", "user-dash", "user-space", "user-bell"])
def test_base_argv_refuses_what_ssh_cannot_be_given(host):
    with pytest.raises(SSHError):
        base_argv(host, SSHOptions(), CP)


def test_open_with_a_nul_byte_in_the_host_leaves_no_control_directory(monkeypatch, tmp_path):
    """The review: SSHConnection.open() raised ValueError (embedded null byte) and left its temp dir behind."""
    import tempfile

    made: list[str] = []
    real_mkdtemp = tempfile.mkdtemp
    monkeypatch.setattr(tempfile, "mkdtemp", lambda **kw: made.append(real_mkdtemp(dir=tmp_path, **kw)) or made[-1])
    conn = SSHConnection(Host("203.0.113.10\x00", "deploy"), SSHOptions())
    with pytest.raises(SSHError) as info:
        conn.open()
    assert "contains a NUL byte" in info.value.what
    assert made and not Path(made[0]).exists()
    assert conn.control_path is None
