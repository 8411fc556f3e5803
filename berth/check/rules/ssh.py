"""The SSH key the deploy will use."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from berth.check.findings import Severity, finding, rule
from berth.model import git as gitlocal


@rule("ssh.key-missing", Severity.ERROR, "PEM_KEY_PATH names a key file that does not exist",
      "fix PEM_KEY_PATH, or leave it empty to use ssh-agent and ~/.ssh/config")
def key_exists(ctx):
    path = ctx.target.local_path("key")
    if path is not None and not path.is_file():
        s = ctx.target.settings["key"]
        yield finding(f"SSH key {path} does not exist", s.file, s.line)


@rule("ssh.key-mode", Severity.ERROR, "the SSH key is readable by other users; ssh refuses such keys",
      "chmod 600 the key file (or 400)")
def key_mode(ctx):
    path = ctx.target.local_path("key")
    if path is None or not path.is_file():
        return
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        s = ctx.target.settings["key"]
        yield finding(f"SSH key {path} has mode {mode:04o}; it must be 0400 or 0600", s.file, s.line,
                      fix=f"chmod 600 {path}")


# ssh_config keywords that make ssh run something on this machine (`Match exec` is checked apart)
_RUNS_LOCALLY = {
    "proxycommand": "runs a command on your machine to reach the server",
    "knownhostscommand": "runs a command on your machine to list host keys",
    "localcommand": "runs a command on your machine after connecting (with PermitLocalCommand yes)",
    "pkcs11provider": "loads a library into ssh on your machine",
    "securitykeyprovider": "loads a library into ssh on your machine",
}
_KEYWORD = re.compile(r"\s*([A-Za-z0-9]+)(?:\s*=\s*|\s+)(.*)")
MAX_SSH_CONFIG_BYTES = 1024 * 1024


@rule("ssh.config-runs-commands", Severity.WARNING,
      "the committed ssh_config runs commands on your machine (Match exec, ProxyCommand, KnownHostsCommand, "
      "LocalCommand) each time berth connects, for read-only commands (status, logs, doctor) too",
      "review it as the code it is, or keep such lines in your own ~/.ssh/config; a reviewed line can be "
      "silenced with a `# berth: ignore[ssh.config-runs-commands]` line above it")
def config_runs_commands(ctx):
    path = ctx.target.local_path("ssh_config")
    rel = ctx.repo_path(path) if path is not None else None
    if rel is None or rel not in ctx.tracked:
        return  # your own file (outside the repo, or not committed) is yours to trust
    try:
        with open(ctx.root / rel, "rb") as f:
            text = f.read(MAX_SSH_CONFIG_BYTES).decode("utf-8", "replace")
    except OSError:
        return
    for n, line in enumerate(text.splitlines(), 1):
        m = _KEYWORD.match(line)
        if not m or line.lstrip().startswith("#"):
            continue
        keyword, value = m.group(1).lower(), m.group(2).strip()
        if keyword == "match":
            for word in re.finditer(r"\S+", value):
                if word.group().lower().lstrip("!") == "exec":
                    yield finding(f"Match exec in {rel} runs a command on your machine while ssh reads its "
                                  "configuration, each time berth connects", ctx.root / rel, n,
                                  m.start(2) + word.start() + 1)
        elif keyword in _RUNS_LOCALLY and value.lower() not in ("none", "internal", ""):
            yield finding(f"{m.group(1)} in {rel} {_RUNS_LOCALLY[keyword]}, each time berth connects",
                          ctx.root / rel, n, m.start(1) + 1)


@rule("ssh.key-in-repo", Severity.ERROR, "the SSH key (PEM_KEY_PATH) is inside the repository and committed or "
      "not ignored by git", "move the key out of the repository (e.g. ~/.ssh) and point PEM_KEY_PATH there, or "
      "add it to .gitignore; a key that was committed must be replaced")
def key_in_repo(ctx):
    path = ctx.target.local_path("key")
    if path is None or not path.is_file() or not ctx.is_git_repo:  # no such file: ssh.key-missing
        return
    toplevel = gitlocal.toplevel(ctx.root)
    # the directories resolved as git resolves the work tree, the file itself not: a symlink in the
    # repository to a key outside it is only a link
    absolute = Path(os.path.realpath(Path(os.path.abspath(path)).parent)) / path.name
    if toplevel is None or not absolute.is_relative_to(toplevel):
        return
    rel = absolute.relative_to(toplevel).as_posix()
    s = ctx.target.settings["key"]
    tracked = gitlocal.git(toplevel, "ls-files", "-z", "--", f":(literal){rel}", check=False).stdout.split("\0")
    if rel in tracked:
        yield finding(f"the SSH key {rel} (PEM_KEY_PATH) is committed: everyone with a clone of the repository can "
                      "log in to the servers", s.file, s.line,
                      fix=f"git rm --cached {rel} and add it to .gitignore, then replace the key (it stays in git "
                          "history): make a new key pair, put its public half in the servers' authorized_keys and "
                          "remove the old one; keep the new key outside the repository (~/.ssh)")
    elif not gitlocal.is_ignored(toplevel, rel):
        yield finding(f"the SSH key {rel} (PEM_KEY_PATH) is inside the repository and not ignored by git: it is one "
                      "`git add .` away from being committed", s.file, s.line,
                      fix=f"move it out of the repository (e.g. ~/.ssh) and point PEM_KEY_PATH there, or "
                          f"echo {rel} >> .gitignore")
