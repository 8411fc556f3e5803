"""berth.transport.ssh: the ssh argv berth builds, and how OpenSSH's errors are explained."""

from __future__ import annotations

import re
import shutil
import socket
from pathlib import Path

import pytest

from berth.config import Host
from berth.transport.ssh import SSHConnection, SSHError, SSHOptions, base_argv, command_argv, explain_ssh_failure, master_argv

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
    assert options(argv)["UserKnownHostsFile"] == "/p/known hosts"
    assert "/p/known hosts" not in argv  # not a separate (misparsed) word


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


def explain(stderr: str, opts: SSHOptions = SSHOptions(), host: Host = HOST) -> SSHError:
    err = explain_ssh_failure(host, stderr, opts)
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
