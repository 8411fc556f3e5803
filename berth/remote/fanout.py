"""Work on several hosts at once: one thread per host (at most MAX_PARALLEL), results in the hosts' order.

Each host has its own connection and its own session, so nothing is shared but the printer, which writes
whole lines. An exception raised for one host is raised again once every host has finished, for the first
host (in order) that raised one, as a loop over the hosts would have raised it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

H = TypeVar("H")
R = TypeVar("R")
MAX_PARALLEL = 8  # ssh connections opened at once (sshd's MaxStartups and the laptop's CPU)


def per_host(hosts: Sequence[H], work: Callable[[H], R], limit: int = MAX_PARALLEL) -> list[R]:
    """`work(host)` for every host, in parallel; the results in the order of `hosts`."""
    if len(hosts) <= 1:
        return [work(h) for h in hosts]
    with ThreadPoolExecutor(max_workers=max(1, min(limit, len(hosts))), thread_name_prefix="berth-host") as pool:
        futures = [pool.submit(work, h) for h in hosts]
        errors = [f.exception() for f in futures]
    for error in errors:
        if error is not None:
            raise error
    return [f.result() for f in futures]
