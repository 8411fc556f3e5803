"""Writing files on a server from stdin, so their contents never appear in a command line."""

from __future__ import annotations

import posixpath

from berth.remote.shell import quote


def write_private_file(path: str) -> str:
    """stdin → `path` with mode 0600, atomically (temp file + rename): a cut connection leaves the old file."""
    tmp = quote(path + ".berth-tmp")
    directory = posixpath.dirname(path) or "."
    return (
        f"umask 077 && mkdir -p {quote(directory)} && cat > {tmp} && chmod 600 {tmp}"
        f" && mv -f {tmp} {quote(path)}"
    )
