"""The SSH key the deploy will use."""

from __future__ import annotations

import stat

from berth.check.findings import Severity, finding, rule


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
