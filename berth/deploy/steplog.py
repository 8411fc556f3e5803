"""Timed, printed pipeline steps — and the fault-injection points the release-safety tests use.

`BERTH_FAILPOINT=STEP:kill` makes berth SIGKILL itself as STEP starts; `STEP:pause` creates the
file named by BERTH_FAILPOINT_FILE and waits until it is deleted (meanwhile a test cuts the
network or sends a signal), then runs the step: a signal sent during the pause lands "during" STEP.
They exist so tests can prove that every interruption leaves a state `berth status`
explains and a rerun repairs.
"""

from __future__ import annotations

import os
import signal
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from berth.deploy import interrupt
from berth.errors import BerthError
from berth.ui.output import StepPrinter

_fired: set[str] = set()


def _failpoint(step: str) -> None:
    spec = os.environ.get("BERTH_FAILPOINT", "")
    if not spec:
        return
    name, _, action = spec.partition(":")
    if name != step or spec in _fired:  # once: the rollback that follows has steps of the same names
        return
    _fired.add(spec)
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "pause":
        marker = Path(os.environ["BERTH_FAILPOINT_FILE"])
        marker.write_text(str(os.getpid()))
        deadline = time.monotonic() + 300
        while marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)


@dataclass
class StepLog:
    """What ran, for the printer and for --json."""

    printer: StepPrinter
    steps: list[dict] = field(default_factory=list)

    @contextmanager
    def step(self, name: str, host: str | None = None):
        interrupt.check(name)  # a deferred Ctrl-C stops before the next step, not in the middle of one
        _failpoint(name)
        info = {"step": name, "host": host, "ok": False, "seconds": None, "detail": ""}
        started = time.monotonic()
        try:
            yield info
        except BaseException as exc:
            info["seconds"] = round(time.monotonic() - started, 3)
            info["detail"] = info["detail"] or (exc.what if isinstance(exc, BerthError) else type(exc).__name__)
            self.steps.append(info)
            self.printer.step(name, "fail", info["seconds"], self.printer.mask(info["detail"]))
            raise
        info["seconds"] = round(time.monotonic() - started, 3)
        info["ok"] = True
        self.steps.append(info)
        self.printer.step(name, info.pop("status", "ok"), info["seconds"], info["detail"])
