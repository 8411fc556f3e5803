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


def keep_original(path: str, saved: str) -> str:
    """Before berth first writes `path`: copy the file there to `saved` and print `kept`, or note that there was
    none (`saved`.absent). Later writes find either and keep nothing: a secret placed by hand is never lost."""
    p, k, absent = quote(path), quote(saved), quote(saved + ".absent")
    return (f"{{ umask 077 && if [ ! -e {k} ] && [ ! -e {absent} ]; then mkdir -p {quote(posixpath.dirname(saved))}"
            f" && if [ -e {p} ]; then cp -p {p} {k} && echo kept; else : > {absent}; fi; fi; }}")
