"""per_host: every host at once, results in the hosts' order, the first host's error raised after all ran."""

from __future__ import annotations

import threading
import time

import pytest

from berth.remote.fanout import per_host


def test_results_come_in_the_hosts_order_and_the_hosts_run_at_once():
    barrier = threading.Barrier(4, timeout=5)  # only passes when four hosts are in work() together

    def work(host: str) -> str:
        barrier.wait()
        time.sleep(0.01 * (4 - int(host[1])))  # the last host finishes first
        return host.upper()

    assert per_host(["h1", "h2", "h3", "h4"], work) == ["H1", "H2", "H3", "H4"]


def test_the_first_hosts_error_is_raised_after_every_host_ran():
    ran = []

    def work(host: str) -> str:
        ran.append(host)
        if host in ("h2", "h3"):
            raise ValueError(f"{host} is down")
        return host

    with pytest.raises(ValueError, match="h2 is down"):
        per_host(["h1", "h2", "h3", "h4"], work)
    assert sorted(ran) == ["h1", "h2", "h3", "h4"]


def test_at_most_limit_hosts_run_at_once():
    running, most, lock = [0], [0], threading.Lock()

    def work(host: int) -> int:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.02)
        with lock:
            running[0] -= 1
        return host

    assert per_host(list(range(10)), work, limit=3) == list(range(10))
    assert most[0] == 3
