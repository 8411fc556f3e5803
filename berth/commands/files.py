"""Writing files on a server from stdin, so their contents never appear in a command line."""

from __future__ import annotations

from berth.commands.shell import quote


def write_private_file(path: str) -> str:
    """stdin → `path` with mode 0600, atomically (temp file + rename): a cut connection leaves the old file."""
    tmp = quote(path + ".berth-tmp")
    return (
        f"umask 077 && mkdir -p {quote(path.rsplit('/', 1)[0] or '/')} && cat > {tmp} && chmod 600 {tmp}"
        f" && mv -f {tmp} {quote(path)}"
    )
