"""Stage: ship env — the app's env file, and the secret and config files git does not carry, go to the server
over SSH stdin into 0600 files.

The bytes arrive exactly as they are on disk: berth never re-renders the file, so quoting, `$`,
backslashes and non-ASCII text mean on the server what they mean to compose on the laptop.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

from berth.errors import BerthError
from berth.model.envfile import read_env_bytes
from berth.model.files import read_bytes
from berth.remote.commands.files import write_private_file
from berth.remote.session import HostSession


def checksum(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def ship_env(session: HostSession, local_path: Path, remote_name: str) -> tuple[str, int]:
    data = read_env_bytes(local_path)  # bounded, and never a FIFO or a device
    remote_path = f"{session.app_dir}/{remote_name}"
    result = session.conn.run(write_private_file(remote_path), stdin=data, timeout=60)
    if not result.ok:
        raise BerthError(
            f"could not write {remote_name} on {session.host.label}: {result.tail(300)}",
            where=f"{session.host.label}:{remote_path}",
            fix="check the disk and the permissions of the app directory on the server",
        )
    return remote_path, len(data)


MAX_SHIPPED_FILE_BYTES = 1024 * 1024  # a secret or a config file; larger ones belong in the image or a volume


def read_shipped(root: Path, rel: str) -> bytes:
    return read_bytes(root / rel, limit=MAX_SHIPPED_FILE_BYTES, kind="a secret or config file",
                      fix="keep secret and config files small (certificates, keys, passwords, config text)")


def files_digest(root: Path, rels: list[str], env_bytes: bytes) -> str:
    """One checksum of the shipped files' names and contents, keyed with the env file's bytes.

    Keyed: a plain sha256 of a one-line password file would let anyone who reads the release record try
    guesses offline; without the env file (as secret as the files) the digest tells nothing.
    """
    mac = hmac.new(env_bytes, digestmod=hashlib.sha256)
    for rel in sorted(rels):
        data = read_shipped(root, rel)
        mac.update(f"{rel}\0{len(data)}\0".encode() + data)
    return "hmac-sha256:" + mac.hexdigest()


def ship_files(session: HostSession, root: Path, rels: list[str]) -> list[str]:
    """Each file to the same path under the app dir, 0600; a file there that berth did not write is kept first
    (under the state dir's replaced/). Returns what was kept that way."""
    from berth.remote.commands.files import keep_original

    kept = []
    for rel in rels:
        data = read_shipped(root, rel)
        remote_path = f"{session.app_dir}/{rel}"
        saved = f"{session.state_dir}/replaced/{rel}"
        script = keep_original(remote_path, saved) + " && " + write_private_file(remote_path)
        result = session.conn.run(script, stdin=data, timeout=60)
        if not result.ok:
            raise BerthError(
                f"could not write {rel} on {session.host.label}: {result.tail(300)}",
                where=f"{session.host.label}:{remote_path}",
                fix="check the disk and the permissions of the app directory on the server",
            )
        if "kept\n" in result.out:
            kept.append(f"{rel} (the server's own copy is kept as {saved})")
    return kept
