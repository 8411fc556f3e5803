"""The one exception type users see: a problem they can fix, told as one paragraph."""

from __future__ import annotations

# The exit-code contract (docs/RELEASES.md): the same for every command that changes a server.
OK = 0
FAILED = 1  # it failed, and every host serves what it served before (nothing changed, or rolled back)
USAGE = 2  # bad flags, settings or files: nothing was done
LOCKED = 3  # another deploy or a manual lock holds a host
NEEDS_A_PERSON = 4  # a host does not serve its last good release: the rollback failed, was impossible or skipped
INTERRUPTED = 130  # stopped at once by a second Ctrl-C: a host may be mid-change (`berth status` says)


class BerthError(Exception):
    """What went wrong, where, and how to fix it. The CLI prints it without a traceback.

    `details` is extra output (already masked) shown below the paragraph, e.g. a service's last
    log lines or the list of uncommitted files on a server.
    """

    def __init__(
        self,
        what: str,
        *,
        where: str | None = None,
        fix: str | None = None,
        details: str | None = None,
        exit_code: int = 1,
    ) -> None:
        super().__init__(what)
        self.what = what
        self.where = where
        self.fix = fix
        self.details = details
        self.exit_code = exit_code

    def paragraph(self) -> str:
        parts = [self.what.rstrip(".") + "."]
        if self.where:
            parts.append(f"Where: {self.where}.")
        if self.fix:
            parts.append(f"Fix: {self.fix.rstrip('.')}.")
        return " ".join(parts)


class UsageError(BerthError):
    """Bad flags or unreadable input (exit code 2)."""

    def __init__(self, what: str, **kwargs) -> None:
        kwargs.setdefault("exit_code", 2)
        super().__init__(what, **kwargs)
