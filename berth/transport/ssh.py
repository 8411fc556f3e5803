"""SSH through the system OpenSSH client with one ControlMaster connection per host.

Using `ssh` itself (not a Python SSH library) means the user's ~/.ssh/config, ssh-agent, ProxyJump,
known_hosts and keys work exactly as they do for `ssh`. The master connection is opened once per
host and every command runs over it (~10 ms each instead of a new handshake).

Host keys are always verified: StrictHostKeyChecking=yes refuses unknown hosts, and
`trust_new_host` (accept-new) only adds keys of hosts never seen; a changed key is refused either way.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from berth.config import Host
from berth.errors import BerthError
from berth.secrets import masked_tail
from berth.transport import Result


@dataclass(frozen=True)
class SSHOptions:
    trust_new_host: bool = False
    ssh_config: Path | None = None
    known_hosts: Path | None = None
    connect_timeout: int = 10
    batch: bool = True  # no password/passphrase prompts (set False only with a terminal)


class SSHError(BerthError):
    pass


def base_argv(host: Host, opts: SSHOptions, control_path: Path) -> list[str]:
    """The ssh argv shared by the master and every command (pure, for tests and `berth plan`)."""
    if host.address.startswith("-") or any(c.isspace() for c in host.address):
        # ssh would read such a "host" as an option (e.g. -oProxyCommand=...)
        raise SSHError(f"{host.address!r} is not a host name", fix="set SERVER_IP / hosts to an address or ssh alias")
    argv = ["ssh"]
    if opts.ssh_config:
        argv += ["-F", str(opts.ssh_config)]
    argv += [
        "-o", f"ControlPath={control_path}",
        "-o", f"StrictHostKeyChecking={'accept-new' if opts.trust_new_host else 'yes'}",
        "-o", f"ConnectTimeout={opts.connect_timeout}",
        "-o", "ServerAliveInterval=15",
        "-o", "ServerAliveCountMax=4",
    ]
    if opts.batch:
        argv += ["-o", "BatchMode=yes"]
    if opts.known_hosts:
        argv += ["-o", f"UserKnownHostsFile={opts.known_hosts}"]
    if host.key_path:
        argv += ["-i", str(host.key_path), "-o", "IdentitiesOnly=yes"]
    if host.port:
        argv += ["-p", str(host.port)]
    if host.user:
        argv += ["-l", host.user]
    return argv


def master_argv(host: Host, opts: SSHOptions, control_path: Path) -> list[str]:
    # -f: go to the background once authenticated; ControlPersist bounds how long an orphaned
    # master (berth killed) lingers.
    return [*base_argv(host, opts, control_path), "-o", "ControlMaster=yes", "-o", "ControlPersist=120",
            "-f", "-N", host.address]


def command_argv(host: Host, opts: SSHOptions, control_path: Path, script: str) -> list[str]:
    # "--" then ONE argument: ssh hands it to the remote login shell as-is.
    return [*base_argv(host, opts, control_path), "-o", "ControlMaster=no", "-T", host.address, "--", script]


def explain_ssh_failure(host: Host, stderr: str, opts: SSHOptions) -> SSHError:
    """Turn OpenSSH's stderr into one paragraph that says what to do."""
    err = stderr.strip()
    last = err.splitlines()[-1] if err else "no output from ssh"
    kh = str(opts.known_hosts) if opts.known_hosts else "~/.ssh/known_hosts"
    if "bad permissions" in err or "UNPROTECTED PRIVATE KEY" in err:
        return SSHError(f"ssh refuses the key file because other users can read it: {last}",
                        where=str(host.key_path), fix=f"chmod 600 {host.key_path}")
    known_name = f"[{host.address}]:{host.port}" if host.port and host.port != 22 else host.address
    if "REMOTE HOST IDENTIFICATION HAS CHANGED" in err or "Host key for" in err and "has changed" in err:
        return SSHError(
            f"the host key of {host.address} has changed since it was last trusted; berth refuses to connect "
            "(this is what a man-in-the-middle attack looks like, or the server was rebuilt)",
            where=kh,
            fix=f"confirm the new key with the server's owner, then remove the old one: ssh-keygen -R {shlex.quote(known_name)}"
            + (f" -f {opts.known_hosts}" if opts.known_hosts else ""),
        )
    if "No " in err and "host key is known" in err or "Host key verification failed" in err:
        return SSHError(
            f"the host key of {host.address} is not known, so berth cannot verify it is the right server",
            where=kh,
            fix=f"connect once with `ssh {host.label}` and check the fingerprint, or pass --trust-new-host to "
            "accept the key on this first connection (trust on first use)",
        )
    if "Permission denied" in err:
        return SSHError(
            f"{host.label} refused the login ({last})",
            where=f"SERVER_USER={host.user or '(your ssh default)'}, PEM_KEY_PATH={host.key_path or '(ssh-agent / ~/.ssh/config)'}",
            fix="check the user name and that the key's public half is in the server's ~/.ssh/authorized_keys",
        )
    if "Connection refused" in err or "timed out" in err or "No route to host" in err or "Could not resolve" in err:
        return SSHError(
            f"cannot reach {host.label}: {last}",
            fix="check SERVER_IP/SERVER_PORT, that the server is up and sshd listens, and firewalls between you",
        )
    return SSHError(f"ssh to {host.label} failed: {last}", fix=f"try `ssh {host.label}` by hand to see why")


class SSHConnection:
    """One multiplexed SSH connection to one host; use as a context manager."""

    def __init__(self, host: Host, opts: SSHOptions, on_command: Callable[[str, Result], None] | None = None,
                 mask: Callable[[str], str] | None = None):
        self.host = host
        self.opts = opts
        self.on_command = on_command
        self.mask = mask  # given to every Result, whose tail() messages quote
        self._dir: str | None = None
        self.control_path: Path | None = None
        self.connections_opened = 0
        self.lost: str | None = None  # why the connection is gone; later commands fail at once

    def __enter__(self) -> SSHConnection:
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def open(self) -> float:
        started = time.monotonic()
        # short dir: unix socket paths are limited to ~108 bytes
        self._dir = tempfile.mkdtemp(prefix="berth-ssh-")
        self.control_path = Path(self._dir) / "cm"
        argv = master_argv(self.host, self.opts, self.control_path)
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=self.opts.connect_timeout + 30)
        self.connections_opened += 1
        if proc.returncode != 0:
            self._cleanup_dir()
            raise explain_ssh_failure(self.host, proc.stderr.decode("utf-8", "replace"), self.opts)
        return time.monotonic() - started

    def run(self, script: str, *, stdin: bytes | None = None, timeout: float | None = None, check: bool = False) -> Result:
        if self.control_path is None:
            raise RuntimeError("connection is not open")
        if self.lost:
            raise SSHError(self.lost, fix="check the network and the server, then run the same command again")
        argv = command_argv(self.host, self.opts, self.control_path, script)
        started = time.monotonic()
        try:
            proc = subprocess.run(
                argv,
                input=stdin if stdin is not None else b"",
                capture_output=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            raise SSHError(
                f"a command on {self.host.label} did not finish within {timeout:.0f}s",
                fix="see what the server is doing with `berth status`, or raise the timeout",
            ) from None
        result = Result(script, proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started, self.mask)
        if self.on_command:
            self.on_command(script, result)
        if result.exit_code == 255 and not self.is_alive():
            last = (result.err.strip().splitlines() or [""])[-1]
            self.lost = f"the SSH connection to {self.host.label} was lost: {masked_tail(last, 200, self.mask)}"
            raise SSHError(self.lost, fix="check the network and the server, then run the same command again")
        if check and not result.ok:
            raise SSHError(f"command failed on {self.host.label} (exit {result.exit_code}): {result.tail(500)}")
        return result

    def stream(self, script: str, on_line: Callable[[str], None]) -> int:
        """Run a long command (e.g. `logs -f`) and pass each output line as it arrives."""
        argv = command_argv(self.host, self.opts, self.control_path, script)
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            for raw in proc.stdout:
                on_line(raw.decode("utf-8", "replace").rstrip("\n"))
            return proc.wait()
        finally:
            if proc.poll() is None:
                proc.terminate()

    def is_alive(self) -> bool:
        if self.control_path is None or not self.control_path.exists():
            return False
        argv = [*base_argv(self.host, self.opts, self.control_path), "-O", "check", self.host.address]
        return subprocess.run(argv, capture_output=True).returncode == 0

    def close(self) -> None:
        if self.control_path is not None and self.control_path.exists() and not self.lost:
            argv = [*base_argv(self.host, self.opts, self.control_path), "-O", "exit", self.host.address]
            subprocess.run(argv, capture_output=True, timeout=10)
        self._cleanup_dir()

    def _cleanup_dir(self) -> None:
        if self._dir:
            for p in Path(self._dir).glob("*"):
                try:
                    p.unlink()
                except OSError:
                    pass
            try:
                os.rmdir(self._dir)
            except OSError:
                pass
        self._dir = None
        self.control_path = None


def terminal_attached() -> bool:
    return sys.stdin.isatty()
