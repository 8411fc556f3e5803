"""SSH through the system OpenSSH client with one ControlMaster connection per host.

Using `ssh` itself (not a Python SSH library) means the user's ~/.ssh/config, ssh-agent, ProxyJump,
known_hosts and keys work exactly as they do for `ssh`. The master connection is opened once per
host and every command runs over it (~10 ms each instead of a new handshake).

Host keys are always verified: StrictHostKeyChecking=yes refuses unknown hosts, and
`trust_new_host` (accept-new) only adds keys of hosts never seen; a changed key is refused either way.
Before the master connection opens, `ssh -G` shows the configuration ssh resolved for the host, and
berth refuses a config that would quietly undo that (see `host_key_problem`).

Agent, X11 and port forwarding are off: every server berth deploys to could use a forwarded agent to
log in elsewhere as you. `forward_agent` opts back in to the agent.
"""

from __future__ import annotations

import os
import pwd
import shlex
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from berth.configuration.target import Host, host_problem, user_problem
from berth.errors import BerthError
from berth.remote.transport import Result
from berth.secrets.masking import masked_tail

# a command that gives no timeout of its own (a stuck server must not hang berth forever);
# builds, hooks and `up` pass longer ones
DEFAULT_TIMEOUT = 600
ALIVE_TIMEOUT = 10
RECONNECT_SECONDS = 30  # how long berth tries to get back to a host it lost mid-release, to undo the release


@dataclass(frozen=True)
class SSHOptions:
    trust_new_host: bool = False
    ssh_config: Path | None = None
    known_hosts: Path | None = None
    connect_timeout: int = 10
    batch: bool = True  # no password/passphrase prompts (set False only with a terminal)
    forward_agent: bool = False  # berth.toml forward_agent / SSH_FORWARD_AGENT
    known_hosts_origin: str | None = None  # where known_hosts was set, for errors ("berth.toml:3 [defaults] ...")


class SSHError(BerthError):
    pass


def base_argv(host: Host, opts: SSHOptions, control_path: Path) -> list[str]:
    """The ssh argv shared by the master and every command (pure, for tests and `berth plan`)."""
    # ssh would read a "host" starting with '-' as an option (-oProxyCommand=...); a NUL cannot be in an argv
    problem = host_problem(host.address) or (user_problem(host.user) if host.user is not None else None)
    if problem:
        what = f"host {host.address!r}" if host_problem(host.address) else f"user {host.user!r}"
        raise SSHError(f"{what} {problem}", fix="set SERVER_IP / hosts to an address or ssh alias, and SERVER_USER "
                                                "to a user name")
    argv = ["ssh"]
    if opts.ssh_config:
        argv += ["-F", str(opts.ssh_config)]
    argv += [
        "-o", f"ControlPath={control_path}",
        "-o", f"StrictHostKeyChecking={'accept-new' if opts.trust_new_host else 'yes'}",
        "-o", f"ConnectTimeout={opts.connect_timeout}",
        "-o", "ServerAliveInterval=15",
        "-o", "ServerAliveCountMax=4",
        # the command line wins over any config file: no forwarding unless the user opts in to the agent
        "-o", f"ForwardAgent={'yes' if opts.forward_agent else 'no'}",
        "-o", "ForwardX11=no",
        "-o", "ClearAllForwardings=yes",
    ]
    if opts.batch:
        argv += ["-o", "BatchMode=yes"]
    if opts.known_hosts:
        argv += ["-o", f"UserKnownHostsFile={config_path_word(opts.known_hosts, opts.known_hosts_origin)}"]
    if host.key_path:
        argv += ["-i", str(host.key_path), "-o", "IdentitiesOnly=yes"]
    if host.port:
        argv += ["-p", str(host.port)]
    if host.user:
        argv += ["-l", host.user]
    return argv


def config_path_word(path: Path, origin: str | None = None) -> str:
    """A file name as ONE word of an ssh config value (`-o KEY=VALUE` is parsed like a config line).

    ssh splits such values on whitespace and expands %x tokens and ${VAR} in file names. Inside double
    quotes \\ and \" are its only escapes; %% is a literal %. ${ has no escape, so it is refused.
    """
    text = str(path)
    if "${" in text:
        raise SSHError(f"the path {text!r} contains '${{', which ssh would expand as an environment variable",
                       where=origin, fix="rename the file or its directory, or use another path")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%") + '"'


def config_argv(host: Host, opts: SSHOptions, control_path: Path) -> list[str]:
    # -G: print the configuration ssh would use for this host and exit, without connecting
    return [*base_argv(host, opts, control_path), "-G", host.address]


def parse_config_dump(text: str) -> dict[str, list[str]]:
    """`ssh -G` output: lowercase keyword → its values (one per line; identityfile and a few more repeat)."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key:
            out.setdefault(key.lower(), []).append(value)
    return out


def host_key_problem(host: Host, opts: SSHOptions, resolved: dict[str, list[str]]) -> SSHError | None:
    """Why the configuration ssh resolved would not verify host keys as berth promises, or None.

    berth passes StrictHostKeyChecking itself (the command line wins), so that is only a guard. The
    known_hosts files come from berth's own setting or from the ssh config: with accept-new
    (--trust-new-host) a file that can never hold a key (/dev/null, `none`, a device, a directory,
    one ssh cannot write) makes every connection a first connection, and any key is accepted.
    """
    expected = "accept-new" if opts.trust_new_host else "true"
    strict = (resolved.get("stricthostkeychecking") or [""])[0].strip()
    config_where = str(opts.ssh_config) if opts.ssh_config else "~/.ssh/config or /etc/ssh/ssh_config"
    if strict != expected:
        return SSHError(
            f"ssh resolves StrictHostKeyChecking to {strict or 'nothing'!r} for {host.label}, not {expected!r}, "
            "so it would not verify the host key as berth requires",
            where=config_where, fix=f"remove StrictHostKeyChecking for this host from {config_where}")
    if not opts.trust_new_host:
        return None  # ssh never writes a key: a missing or empty file only refuses unknown hosts
    value = (resolved.get("userknownhostsfile") or [""])[0].strip()
    ours = opts.known_hosts is not None and value == str(opts.known_hosts)
    # ssh -G joins the files with spaces: berth's own setting is known to be one file; a config file's
    # are split as ssh would have split an unquoted value
    files = [value] if ours else value.split()
    where = (opts.known_hosts_origin or str(opts.known_hosts)) if ours else config_where
    if ours:
        fix = ("point SSH_KNOWN_HOSTS in .env (known_hosts in berth.toml) at a known_hosts file you can write, "
               "or remove it to use ~/.ssh/known_hosts")
    else:
        fix = (f"remove that UserKnownHostsFile line from {config_where}, or set SSH_KNOWN_HOSTS in .env "
               "(known_hosts in berth.toml) to a real known_hosts file, which berth passes first so it wins")
    consequence = (f"so with --trust-new-host every connection to {host.label} would accept whatever key it is "
                   "shown, a man-in-the-middle's too")
    for name in files or ["none"]:
        why = _cannot_hold_keys(name)
        if why:
            shown = "" if name.lower() == "none" else f" {name}"
            return SSHError(f"the known_hosts file{shown} {why}, {consequence}", where=where, fix=fix)
    why = _cannot_store_keys(files[0])
    if why:
        return SSHError(f"ssh could not save the host key of {host.label}: {files[0]} {why}, {consequence}",
                        where=where, fix=fix)
    return None


def _cannot_hold_keys(name: str) -> str | None:
    if name.lower() == "none":
        return "is `none` (no file at all)"
    real = os.path.realpath(name)
    try:
        mode = os.stat(real).st_mode
    except OSError:
        return None  # not there yet: ssh creates it (see _cannot_store_keys)
    if stat.S_ISREG(mode):
        return None
    kind = ("a directory" if stat.S_ISDIR(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "a named pipe" if stat.S_ISFIFO(mode) else "not a regular file")
    via = f" (it leads to {real})" if real != os.path.abspath(name) else ""
    return f"is {kind}{via} and can never hold a key"


def _cannot_store_keys(name: str) -> str | None:
    """Why accept-new could not add a key to this file (ssh then only logs it and connects anyway)."""
    real = Path(os.path.realpath(name))
    if real.exists():
        return None if os.access(real, os.W_OK) else "is not writable"
    parent = real.parent
    if parent.is_dir():
        return None if os.access(parent, os.W_OK | os.X_OK) else f"cannot be created in {parent}"
    home_ssh = Path(os.path.realpath(Path(pwd.getpwuid(os.getuid()).pw_dir) / ".ssh"))
    if parent == home_ssh:
        return None  # ssh creates ~/.ssh when it adds the first key
    return f"is in a directory that does not exist ({parent})"


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
        try:
            problem = host_key_problem(self.host, self.opts, self.resolved_config())
            if problem is not None:
                raise problem
            argv = master_argv(self.host, self.opts, self.control_path)
            proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                                  timeout=self.opts.connect_timeout + 30)
        except BaseException:
            self._cleanup_dir()  # an unusable host or user, ssh timing out, ^C: no control directory left behind
            raise
        self.connections_opened += 1
        if proc.returncode != 0:
            self._cleanup_dir()
            raise explain_ssh_failure(self.host, proc.stderr.decode("utf-8", "replace"), self.opts)
        return time.monotonic() - started

    def resolved_config(self) -> dict[str, list[str]]:
        """What ssh would use for this host (`ssh -G`, ~10 ms, no connection). It evaluates `Match exec`
        as the real connection does, so it runs nothing that connecting would not run."""
        argv = config_argv(self.host, self.opts, self.control_path or Path("/nonexistent/cm"))
        try:
            proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                                  timeout=self.opts.connect_timeout + 30)
        except FileNotFoundError:
            raise SSHError("the ssh client is not installed", fix="install OpenSSH (apt-get install openssh-client)") from None
        except subprocess.TimeoutExpired:
            raise SSHError(f"ssh did not finish reading its configuration for {self.host.label} within "
                           f"{self.opts.connect_timeout + 30}s (a Match exec command that hangs?)",
                           where=str(self.opts.ssh_config) if self.opts.ssh_config else "~/.ssh/config",
                           fix=f"run `ssh -G {self.host.address}` by hand to see where it stops") from None
        if proc.returncode != 0:
            err = proc.stderr.decode("utf-8", "replace").strip()
            raise SSHError(f"ssh cannot read its configuration for {self.host.label}: "
                           f"{err.splitlines()[0] if err else 'no output from ssh'}",
                           where=str(self.opts.ssh_config) if self.opts.ssh_config else "~/.ssh/config",
                           fix=f"fix that line; `ssh -G {self.host.address}` shows the same error")
        return parse_config_dump(proc.stdout.decode("utf-8", "replace"))

    def run(self, script: str, *, stdin: bytes | None = None, timeout: float | None = DEFAULT_TIMEOUT,
            check: bool = False) -> Result:
        """Run `script` on the host; it never waits forever (`timeout` None means DEFAULT_TIMEOUT too)."""
        timeout = DEFAULT_TIMEOUT if timeout is None else timeout
        if self.control_path is None:
            raise RuntimeError("connection is not open")
        if self.lost:
            raise SSHError(self.lost, fix="check the network and the server, then run the same command again")
        argv = command_argv(self.host, self.opts, self.control_path, script)
        started = time.monotonic()
        try:
            # its own session: a Ctrl-C in the terminal reaches berth only, which lets the command
            # finish (berth.deploy.interrupt); the master connection is already authenticated, nothing prompts
            proc = subprocess.run(
                argv,
                input=stdin if stdin is not None else b"",
                capture_output=True,
                timeout=timeout,
                start_new_session=True,
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

    def reconnect(self, within: float | None = None, pause: float = 2) -> bool:
        """After a lost connection: open a new master, trying again for `within` seconds
        (BERTH_RECONNECT_SECONDS, default 30); True once it works."""
        if within is None:
            try:
                within = float(os.environ.get("BERTH_RECONNECT_SECONDS", RECONNECT_SECONDS))
            except ValueError:
                within = RECONNECT_SECONDS
        deadline = time.monotonic() + within
        while True:
            self._cleanup_dir()
            try:
                self.open()
            except (SSHError, subprocess.TimeoutExpired):
                if time.monotonic() + pause >= deadline:
                    return False
                time.sleep(pause)
                continue
            self.lost = None
            return True

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
        try:  # a master that hangs is as good as gone
            return subprocess.run(argv, capture_output=True, timeout=ALIVE_TIMEOUT).returncode == 0
        except subprocess.TimeoutExpired:
            return False

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
