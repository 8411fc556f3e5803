"""A deploy over several hosts: in batches (a canary alone first, then `parallel` hosts at once, a pause
between batches), every host of a batch at the same time, each with its own connection, lock, release and
audit. A host that cannot be reached fails alone; any other failure stops the rollout after its batch, and
(on_failure = "rollback", the default) the hosts this deploy updated go back to the release they ran.
docs/FLEETS.md."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass

from berth.configuration.target import Fleet, Host
from berth.deploy import interrupt
from berth.deploy.steplog import StepLog
from berth.errors import NEEDS_A_PERSON, BerthError
from berth.remote.fanout import MAX_PARALLEL


@dataclass(frozen=True)
class Batch:
    hosts: tuple[Host, ...]
    canary: bool = False


def batches(hosts: tuple[Host, ...] | list[Host], fleet: Fleet) -> list[Batch]:
    """The batches a deploy goes in: the canary alone (a host, or a role's hosts, when among `hosts`), then
    `parallel` hosts (or `percent` of all of them, at least one) at a time, in the hosts' order; all of them
    at once by default."""
    rest = list(hosts)
    out: list[Batch] = []
    canary: list[Host] = []
    if fleet.canary == "first" and len(rest) > 1:
        canary = rest[:1]
    elif fleet.canary and len(rest) > 1:  # a host, or a role's hosts (left out by --host: no canary)
        canary = [h for h in rest if fleet.canary in (h.address, h.label, *h.roles)]
    if canary and len(canary) < len(rest):
        out.append(Batch(tuple(canary), canary=True))
        rest = [h for h in rest if h not in canary]
    if fleet.parallel:
        size = fleet.parallel
    elif fleet.percent:
        size = max(1, math.floor(len(hosts) * fleet.percent / 100))
    else:
        size = len(rest)
    for start in range(0, len(rest), max(1, size)):
        out.append(Batch(tuple(rest[start:start + size])))
    return out


DeployOne = Callable[[Host, StepLog, dict], None]  # deploy one host, filling its --json row
ReturnOne = Callable[[Host, str, StepLog, dict], None]  # roll one host back to a release id


def roll_out(hosts: tuple[Host, ...], fleet: Fleet, log: StepLog, rows: dict[str, dict],
             deploy_one: DeployOne, return_one: ReturnOne) -> None:
    """Deploy `hosts` batch by batch (see the module docstring); raise BerthError when a host failed.

    `rows` holds each host's --json row (by label), filled in as it goes: state, batch, previous release.
    """
    plan = batches(hosts, fleet)
    width = max(len(h.label) for h in hosts)
    printer = log.printer
    for n, batch in enumerate(plan, 1):
        for h in batch.hosts:
            rows[h.label]["batch"] = n
    updated: list[Host] = []
    unreachable: list[tuple[Host, BerthError]] = []
    for n, batch in enumerate(plan, 1):
        if n > 1 and fleet.pause:
            _pause(fleet.pause, printer, n)
        if len(plan) > 1:
            printer.line(f"  batch {n}/{len(plan)}: {', '.join(h.label for h in batch.hosts)}"
                         + (" (canary: it goes alone and must pass verify)" if batch.canary else ""))
        failed = each_at_once(batch.hosts, width, log, lambda h, hlog: deploy_one(h, hlog, rows[h.label]))
        updated += [h for h in batch.hosts if rows[h.label].get("ok")]
        stopping = [(h, e) for h, e in failed if batch.canary or rows[h.label].get("state") != "unreachable"]
        unreachable += [(h, e) for h, e in failed if (h, e) not in stopping]
        if stopping or interrupt.requested():
            later = [h for b in plan[n:] for h in b.hosts]
            raise _stopped(stopping, unreachable, updated, later, n, len(plan), fleet, width, log, rows, return_one)
    if unreachable:
        names = ", ".join(h.label for h, _ in unreachable)
        first = unreachable[0][1]
        again = " ".join(["berth deploy", *(f"--host {h.address}" for h, _ in unreachable)])
        others = ("the other host runs the new release" if len(updated) == 1 else
                  f"the other {len(updated)} hosts run the new release" if updated else "no host was deployed")
        raise BerthError(f"{names} could not be reached, so {'it was' if len(unreachable) == 1 else 'they were'} "
                         f"not deployed ({first.what}); {others}",
                         fix=f"when {names} can be reached again: {again}"
                             + (f" ({first.fix})" if first.fix else ""))


def each_at_once(hosts: tuple[Host, ...], width: int, log: StepLog,
                  work: Callable[[Host, StepLog], None]) -> list[tuple[Host, BerthError]]:
    """`work` for every host at the same time (at most MAX_PARALLEL connections), each printing through its own
    host-marked log; the hosts that raised BerthError, in the hosts' order. Anything else is raised again."""
    def one(host: Host) -> BerthError | None:
        hlog = StepLog(log.printer.for_host(host.label, width), log.steps)
        try:
            work(host, hlog)
        except BerthError as exc:
            return exc
        return None

    if len(hosts) == 1:
        results = [one(hosts[0])]
    else:
        pool = ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(hosts)), thread_name_prefix="berth-host")
        futures = [pool.submit(one, h) for h in hosts]
        wait(futures)  # a signal interrupts this wait: the hosts see it at their next step
        pool.shutdown()
        results = [f.result() for f in futures]
    return [(h, e) for h, e in zip(hosts, results) if e is not None]


def _pause(seconds: int, printer, batch: int) -> None:
    printer.line(f"  pausing {seconds}s before batch {batch} (batch_pause)")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        interrupt.check("the pause between batches")
        time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))


def _stopped(stopping, unreachable, updated: list[Host], later: list[Host], n: int, total: int, fleet: Fleet,
             width: int, log: StepLog, rows: dict[str, dict], return_one: ReturnOne) -> BerthError:
    """The rollout stops after batch `n`: the hosts this deploy updated go back (on_failure), and one error says
    where every host is."""
    if stopping:
        host, exc = stopping[0]
        what = f"{host.label}: {exc.what}"
        exit_code, fix = exc.exit_code, exc.fix
    else:  # interrupted between two batches, or while the last one recorded
        exc = interrupt.Interrupted(interrupt.requested() or "a signal", f"batch {n}")
        what, exit_code, fix = exc.what, exc.exit_code, exc.fix
    what += f"; the rollout stopped at batch {n} of {total}"
    if later:
        what += f" ({', '.join(h.label for h in later)} not touched)"
    if updated and fleet.on_failure == "rollback":
        with interrupt.uninterruptible():
            log.printer.line(f"  returning {', '.join(h.label for h in updated)} to the release "
                             f"{'it' if len(updated) == 1 else 'each'} ran before (on_failure = \"rollback\")")
            failed = each_at_once(tuple(updated), width, log, lambda h, hlog: _return(h, hlog, rows, return_one))
        back = [h.label for h in updated if rows[h.label].get("state") == "returned"]
        if back:
            what += f"; {', '.join(back)} went back to {'its' if len(back) == 1 else 'their'} previous release"
        for h, e in failed:
            what += f"; returning {h.label} failed: {e.what}"
            exit_code = NEEDS_A_PERSON
        kept = [h.label for h in updated if rows[h.label].get("state") == "deployed"]
        if kept:
            what += f"; {', '.join(kept)} had no earlier good release and keep{'s' * (len(kept) == 1)} the new one"
    elif updated:
        what += (f"; {', '.join(h.label for h in updated)} keep{'s' * (len(updated) == 1)} the new release "
                 "(on_failure = \"stop\")")
    if unreachable:
        what += f"; {', '.join(h.label for h, _ in unreachable)} could not be reached"
    return BerthError(what, fix=fix, exit_code=exit_code, details=exc.details if stopping else None)


def _return(host: Host, log: StepLog, rows: dict[str, dict], return_one: ReturnOne) -> None:
    row = rows[host.label]
    previous = row.get("previous")
    if not previous:
        log.printer.line("  ! no earlier good release here: it keeps the new one")
        return
    back: dict = {"host": host.label, "ok": False}
    row["returned"] = back
    try:
        return_one(host, previous, log, back)
    except BerthError:
        row["state"] = "needs-a-person" if back.get("state") != "rolled-back" else "deployed"
        raise
    row.update(state="returned", ok=False)
