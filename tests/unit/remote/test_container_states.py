"""Every docker container state, with and without a healthcheck, through the parser, verify's
predicates and `status`: each expected service is listed, and status is healthy only when all run."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from berth.ops.status import host_row, render_status
from berth.remote.engines.compose import CONTAINER_STATES, parse_inspect
from tests.helpers.docker_states import inspect_line

ROOT = Path(__file__).resolve().parents[3]

# (status, health or None, exit code, restart policy) → (ready, failed, words describe() must hold)
CASES = [
    ("running", None, 0, "unless-stopped", True, False, "running"),
    ("running", "healthy", 0, "unless-stopped", True, False, "running (healthy)"),
    ("running", "starting", 0, "unless-stopped", False, False, "running (starting)"),
    ("running", "unhealthy", 0, "unless-stopped", False, True, "running (unhealthy)"),
    ("created", None, 0, "unless-stopped", False, True, "created, never started"),
    ("created", "starting", 0, "no", False, True, "created, never started"),
    ("paused", None, 0, "unless-stopped", False, False, "paused"),
    ("paused", "healthy", 0, "unless-stopped", False, False, "paused"),
    ("restarting", None, 1, "always", False, False, "restarting, exit code 1"),
    ("restarting", "unhealthy", 1, "always", False, False, "restarting (unhealthy), exit code 1"),
    ("removing", None, 0, "no", False, False, "removing"),
    ("exited", None, 0, "no", True, False, "exited, exit code 0"),  # a one-shot job that finished
    ("exited", None, 0, "unless-stopped", False, False, "exited, exit code 0"),
    ("exited", None, 2, "no", False, True, "exited, exit code 2"),
    ("exited", "unhealthy", 137, "always", False, False, "exited, exit code 137"),
    ("dead", None, 0, "no", False, True, "dead"),
    ("dead", "healthy", 1, "always", False, True, "dead"),
]


def test_the_cases_cover_every_docker_state_with_and_without_a_healthcheck():
    assert {c[0] for c in CASES} == set(CONTAINER_STATES)
    for state in CONTAINER_STATES:
        kinds = {c[1] is None for c in CASES if c[0] == state}
        assert kinds == {True, False} or state == "removing", state


@pytest.mark.parametrize("status,health,code,policy,ready,failed,words", CASES)
def test_each_state_parses_and_is_judged(status, health, code, policy, ready, failed, words):
    [c] = parse_inspect(inspect_line("web", "app-web-1", "c1", status, health, code, policy=policy))
    assert (c.status, c.health, c.exit_code) == (status, health or "", code)
    assert (c.ready, c.failed) == (ready, failed)
    assert words in c.describe()
    assert c.started_at == ("" if status == "created" else c.started_at)


def test_the_probe_output_and_the_daemon_error_are_kept():
    [sick, blocked] = parse_inspect("\n".join([
        inspect_line("web", "app-web-1", "c1", "running", "unhealthy", probe=(1, "curl: (7) Failed to connect\n")),
        inspect_line("db", "app-db-1", "c2", "created",
                     error="Bind for 0.0.0.0:5432 failed: port is already allocated"),
    ]))
    assert sick.health_log == "curl: (7) Failed to connect"
    assert blocked.failed and "port is already allocated" in blocked.describe()


def _row(lines, expected=("web", "worker")):
    from types import SimpleNamespace

    return host_row(SimpleNamespace(environment="staging"), "h1", "/srv/app", None, [],
                    parse_inspect("\n".join(lines)), list(expected), None, None, [])


@pytest.mark.parametrize("status,health,code,policy,ready,failed,words", CASES)
def test_status_lists_every_expected_service_in_every_state(status, health, code, policy, ready, failed, words):
    row = _row([inspect_line("web", "app-web-1", "c1", status, health, code, policy=policy),
                inspect_line("worker", "app-worker-1", "c2", "running")])
    assert [s["service"] for s in row["services"]] == ["web", "worker"]
    web = row["services"][0]
    assert web["state"] == status and web["ready"] == ready and web["health"] == (health or None)
    assert row["healthy"] == ready
    assert ("✗ web" in render_status([row])) == (not ready)


def test_status_lists_a_service_without_a_container_as_missing():
    row = _row([inspect_line("worker", "app-worker-1", "c2", "running")])
    assert [(s["service"], s["state"]) for s in row["services"]] == [("web", "missing"), ("worker", "running")]
    assert not row["healthy"] and "missing (no container)" in render_status([row])
    assert not _row([])["healthy"]


def test_status_names_the_release_that_runs_not_the_pointer():
    from types import SimpleNamespace

    good = {"id": "R1", "commit": "a" * 40, "result": "ok", "images": {"web": {"id": "sha256:" + "1" * 64}}}
    failed = {"id": "R2", "commit": "b" * 40, "result": "failed", "failure": "verify failed on h1",
              "images": {"web": {"id": "sha256:" + "2" * 64}}}
    line = inspect_line("web", "app-web-1", "c1", "running", "unhealthy", image_id="sha256:" + "2" * 64)
    row = host_row(SimpleNamespace(environment="staging"), "h1", "/srv/app", good, [good, failed],
                   parse_inspect(line), ["web"], None, None, [])
    assert row["running"]["id"] == "R2"
    assert "running  bbbbbbb — deploy R2 failed verify" in render_status([row])
    undone = {**failed, "rolled_back_to": "R1"}  # an undone release does not run, whatever its images
    row = host_row(SimpleNamespace(environment="staging"), "h1", "/srv/app", good, [good, undone],
                   parse_inspect(line.replace("2" * 64, "1" * 64)), ["web"], None, None, [])
    assert row["running"]["id"] == "R1"


FORMAT_IN_SOURCE = re.compile(r"docker (?:image inspect|inspect|images|version|info) --format")


def test_every_remote_docker_format_is_one_the_engine_test_runs():
    """tests/sandbox/test_failure_paths.py::test_every_docker_format_berth_uses_works_on_the_real_engine
    runs the formats named in ENGINE_FORMATS; a new `--format` in berth must be added there."""
    from tests.sandbox.formats import ENGINE_FORMATS, FORMAT_SITES

    sites = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "berth").rglob("*.py")
                   if FORMAT_IN_SOURCE.search(p.read_text()) and "sandbox" not in p.parts)
    counts = {site: len(FORMAT_IN_SOURCE.findall((ROOT / site).read_text())) for site in sites}
    assert counts == FORMAT_SITES
    assert len(ENGINE_FORMATS) >= 8


def test_status_of_several_hosts_says_which_commit_runs_where():
    from berth.ops.status import fleet_line

    def row(host: str, commit: str | None) -> dict:
        return {"host": host, "running": {"commit": commit, "result": "ok"} if commit else None}

    assert fleet_line([row("h1", "a" * 40)]) is None  # one host: its own lines say it
    assert fleet_line([row("h1", "a" * 40), row("h2", "a" * 40)]) == "fleet: all 2 hosts run aaaaaaa"
    drift = fleet_line([row("h1", "a" * 40), row("h2", "b" * 40), row("h3", "a" * 40), row("h4", None)])
    assert drift == ("fleet: DRIFT across 4 hosts — aaaaaaa on h1, h3; bbbbbbb on h2; nothing berth deployed on h4 "
                     "(`berth deploy` brings them together)")
