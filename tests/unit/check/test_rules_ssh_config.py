"""The ssh_config named in berth.toml / .env, and the yes/no settings, as `berth check` sees them.

ssh.config-runs-commands: a committed ssh_config is code that runs on every developer's machine each time
berth connects (review 12). settings.boolean: a .env yes/no setting (SSH_FORWARD_AGENT) that is not a
boolean word. CASES is collected by test_check_rules.test_every_rule_has_a_firing_and_a_quiet_case and run
here, with the harness in rule_cases.py.
"""

from __future__ import annotations

from tests.helpers.rule_cases import Case, Project, expect_at, rule_test

PROXY = "Host web-*\n  User deploy\n  ProxyCommand ssh -W %h:%p bastion\n"
MATCH_EXEC = 'Host *\n  IdentitiesOnly yes\nMatch host 203.0.113.* !exec "test -f /tmp/flag"\n  User deploy\n'
ALL_OF_THEM = ("KnownHostsCommand=/usr/local/bin/hosts %H\nLocalCommand echo connected\n"
               "PKCS11Provider /usr/lib/opensc-pkcs11.so\nMatch exec true\n")
HARMLESS = "Host *\n  ProxyJump bastion\n  ProxyCommand none\n  SecurityKeyProvider internal\n  # ProxyCommand sh\n"


def ssh_config(text: str, *, name: str = "deploy/ssh_config", commit: bool = True):
    """A setup: the ssh_config file in the project (committed, or not), and SSH_CONFIG in .env naming it."""
    def setup(p: Project) -> None:
        p.write(name, text)
        if commit:
            p.git("add", name)
            p.commit("ssh config")
        p.write(".env", p.DOTENV + f"SSH_CONFIG={name}\n")
    return setup


def outside_ssh_config(p: Project) -> None:
    path = p.root.parent / "my_ssh_config"
    path.write_text(PROXY)
    p.write(".env", p.DOTENV + f"SSH_CONFIG={path}\n")


def dotenv(extra: str):
    return lambda p: p.write(".env", p.DOTENV + extra)


CASES: list[Case] = [
    # ssh.config-runs-commands
    Case("ssh.config-runs-commands", True, "committed ProxyCommand", ssh_config(PROXY),
         expect_at("deploy/ssh_config", 3, 3, contains="ProxyCommand in deploy/ssh_config runs a command on your "
                   "machine to reach the server, each time berth connects", fix_required=True)),
    Case("ssh.config-runs-commands", True, "Match !exec", ssh_config(MATCH_EXEC),
         expect_at("deploy/ssh_config", 3, 24, contains="Match exec in deploy/ssh_config runs a command")),
    Case("ssh.config-runs-commands", True, "KnownHostsCommand=, LocalCommand, PKCS11Provider, Match exec",
         ssh_config(ALL_OF_THEM),
         lambda p, found: (expect_at("deploy/ssh_config", 1, 1, count=4, contains="KnownHostsCommand")(p, found),
                           _assert([f.line for f in found] == [1, 2, 3, 4]))),
    Case("ssh.config-runs-commands", True, "named in berth.toml with ./",
         lambda p: (p.write("ssh_config", PROXY), p.git("add", "ssh_config"),
                    p.write("berth.toml", '[environments.staging]\nssh_config = "./ssh_config"\n')),
         expect_at("ssh_config", 3, 3)),
    Case("ssh.config-runs-commands", False, "ProxyJump, none, internal and comments", ssh_config(HARMLESS)),
    Case("ssh.config-runs-commands", False, "a reviewed line, silenced as the fix says",
         ssh_config(PROXY.replace("  ProxyCommand", "  # berth: ignore[ssh.config-runs-commands]\n  ProxyCommand"))),
    Case("ssh.config-runs-commands", False, "not committed: the developer's own file",
         ssh_config(PROXY, commit=False)),
    Case("ssh.config-runs-commands", False, "outside the repository", outside_ssh_config),
    # settings.boolean
    Case("settings.boolean", True, "SSH_FORWARD_AGENT is not a boolean word", dotenv("SSH_FORWARD_AGENT=sometimes\n"),
         expect_at(".env", 4, contains="SSH_FORWARD_AGENT='sometimes' is not true or false; berth takes it as false",
                   fix_required=True)),
    Case("settings.boolean", False, "boolean words", dotenv("SSH_FORWARD_AGENT=Yes\n")),
    Case("settings.boolean", False, "empty is unset", dotenv("SSH_FORWARD_AGENT=\n")),
    Case("settings.boolean", False, "berth.toml's booleans are type-checked when read",
         lambda p: p.write("berth.toml", "[environments.staging]\nforward_agent = true\n")),
]


def _assert(condition: bool) -> None:
    assert condition


test_rule = rule_test(CASES)
