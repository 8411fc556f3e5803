"""Ctrl-C and SIGTERM while a server is being changed: finish the step in progress, then undo it.

A deploy killed half-way through `docker compose up` leaves the app down. So while berth changes a
server (`deferred()`), the first SIGINT or SIGTERM is only noted: the remote command in progress
runs to its end (berth's ssh commands run in their own session, so a terminal's Ctrl-C does not
reach them), the next step boundary raises `Interrupted`, and the pipeline rolls back as it does
for any failed release. While berth undoes a release or writes its record (`uninterruptible()`),
a signal is noted but raises nothing: the undo is what the user asked for. A second signal stops
at once (KeyboardInterrupt): the host's state is then whatever that moment left, and `berth
status` tells it.
"""

from __future__ import annotations

import signal
import sys
from contextlib import contextmanager

from berth.errors import BerthError

_NAMES = {signal.SIGINT: "SIGINT (Ctrl-C)", signal.SIGTERM: "SIGTERM"}


class Interrupted(BerthError):
    """The user (or a supervisor) asked berth to stop; raised at a step boundary."""

    def __init__(self, signal_name: str, step: str | None = None) -> None:
        where = f" during {step}" if step else ""
        super().__init__(f"interrupted by {signal_name}{where}")
        self.signal_name = signal_name


class _State:
    received: str | None = None  # the first signal's name, while deferred
    armed = False  # raise Interrupted at the next step boundary (off while undoing)
    depth = 0


_state = _State()


def _on_signal(signum, frame) -> None:
    if _state.received is not None:
        raise KeyboardInterrupt  # the second signal: stop now
    _state.received = _NAMES.get(signum, f"signal {signum}")
    then = "then rolling back" if _state.armed else "which puts the last good release back or records it"
    sys.stderr.write(f"\n  ! {_state.received}: finishing the step in progress, {then} "
                     "(press Ctrl-C again to stop at once)\n")
    sys.stderr.flush()


@contextmanager
def deferred():
    """Within: SIGINT/SIGTERM are deferred to the next `check()` (see the module docstring)."""
    if _state.depth == 0:
        old = {s: signal.signal(s, _on_signal) for s in _NAMES}
        _state.received, _state.armed = None, True
    _state.depth += 1
    try:
        yield
    finally:
        _state.depth -= 1
        if _state.depth == 0:
            for s, handler in old.items():
                signal.signal(s, handler)
            _state.received, _state.armed = None, False


def check(step: str | None = None) -> None:
    """At a step boundary (or in a wait loop): raise Interrupted if a signal came in and nothing is being undone."""
    if _state.armed and _state.received is not None:
        raise Interrupted(_state.received, step)


def requested() -> str | None:
    """The signal that asked berth to stop, if one did."""
    return _state.received


@contextmanager
def uninterruptible():
    """While berth undoes a change or records one: a first signal is noted (`requested()`), nothing raises."""
    was = _state.armed
    _state.armed = False
    try:
        yield
    finally:
        _state.armed = was
