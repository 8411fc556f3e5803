"""Reading the user's files (compose files, env files, berth.toml, Dockerfiles, manifests): one bounded reader.

A committed symlink to /dev/zero or /dev/urandom, a FIFO, or a 10 GB file must not make berth read forever
or fill memory: every file berth reads on the user's behalf goes through `read_bytes`, which refuses anything
that is not a regular file before reading, and never reads more than its limit (+1 byte, to know it is over).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from berth.errors import UsageError

NOT_REGULAR_FIX = "replace it with a regular file holding the content (berth reads no pipes, devices or directories)"
_KINDS = (  # what a non-regular file is, said the way a user would
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    return f"{n // 1024 // 1024} MiB" if n >= 1024 * 1024 and n % (1024 * 1024) == 0 else f"{n // 1024} KiB"


def _not_regular(path: Path, mode: int) -> str:
    kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
    target = ""
    try:
        if path.is_symlink():
            link = os.readlink(path)
            target = f" (a symlink to {link if link.isprintable() else repr(link)})"
    except OSError:
        pass
    return f"cannot read {path.name}: it is {kind}{target}, not a regular file"


def read_bytes(path: Path, *, limit: int, kind: str = "this file", fix: str | None = None,
               fix_unreadable: str | None = None) -> bytes:
    """The bytes of a file berth reads for the user, at most `limit` of them.

    Raises UsageError located at the file when it cannot be opened, is not a regular file (a FIFO, a
    device behind a symlink, a directory, a socket) or is over `limit` bytes. `kind` names what the file
    should be in the size message ("a compose file"); `fix` is the fix for an oversized file,
    `fix_unreadable` the one for a file that cannot be opened (missing, permissions).
    """
    # O_NONBLOCK: opening a FIFO without a writer would block; O_NOCTTY: a terminal device never becomes ours
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        try:
            mode = os.stat(path).st_mode  # a socket cannot be opened (ENXIO): say what it is
        except OSError:
            mode = None
        if mode is not None and not stat.S_ISREG(mode):
            raise UsageError(_not_regular(path, mode), where=str(path), fix=NOT_REGULAR_FIX) from None
        raise UsageError(f"cannot read {path.name}: {exc.strerror}", where=str(path), fix=fix_unreadable) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UsageError(_not_regular(path, st.st_mode), where=str(path), fix=NOT_REGULAR_FIX)
        if st.st_size > limit:
            _too_big(path, st.st_size, limit, kind, fix)
        # st_size is not trusted (it is 0 for /proc files, and a file can grow): read at most limit + 1 bytes
        chunks: list[bytes] = []
        left = limit + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1024 * 1024))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
        if len(data) > limit:
            _too_big(path, None, limit, kind, fix)
        return data
    except OSError as exc:
        raise UsageError(f"cannot read {path.name}: {exc.strerror}", where=str(path), fix=fix_unreadable) from None
    finally:
        os.close(fd)


def _too_big(path: Path, size: int | None, limit: int, kind: str, fix: str | None) -> None:
    is_ = f"is {_size(size)}" if size is not None else f"is over {_size(limit)}"  # None: it grew while read
    raise UsageError(f"{path.name} {is_}; {kind} over {_size(limit)} is not plausible, so berth does not read it",
                     where=str(path), fix=fix)
