"""Stage: ship env — the app's env file goes to the server over SSH stdin into a 0600 file.

The bytes arrive exactly as they are on disk: berth never re-renders the file, so quoting, `$`,
backslashes and non-ASCII text mean on the server what they mean to compose on the laptop.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from berth.errors import BerthError
from berth.model.envfile import read_env_bytes
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
