"""Lines as `docker inspect --format INSPECT_FORMAT` prints them, for every container state.

The shape of `.State` is docker's own (a running container without a healthcheck has no `Health`
key; one that never started has StartedAt 0001-01-01); tests/sandbox/test_failure_paths.py checks
the real engine prints the same.
"""

from __future__ import annotations

import json

NEVER = "0001-01-01T00:00:00Z"


def state_json(status: str, health: str | None = None, exit_code: int = 0, error: str = "", oom: bool = False,
               started: str = "2026-12-01T10:00:00.123456789Z", probe: tuple[int, str] | None = None) -> dict:
    state = {
        "Status": status, "Running": status in ("running", "paused", "restarting"), "Paused": status == "paused",
        "Restarting": status == "restarting", "OOMKilled": oom, "Dead": status == "dead",
        "Pid": 4242 if status in ("running", "paused") else 0, "ExitCode": exit_code, "Error": error,
        "StartedAt": NEVER if status == "created" else started, "FinishedAt": NEVER,
    }
    if health is not None:
        log = [{"Start": "t", "End": "t", "ExitCode": probe[0], "Output": probe[1]}] if probe else []
        state["Health"] = {"Status": health, "FailingStreak": 3 if health == "unhealthy" else 0, "Log": log}
    return state


def inspect_line(service: str, name: str, cid: str, status: str, health: str | None = None, code: int = 0,
                 restarts: int = 0, started: str | None = None, policy: str = "unless-stopped", image: str | None = None,
                 image_id: str | None = None, error: str = "", oom: bool = False,
                 probe: tuple[int, str] | None = None) -> str:
    state = state_json(status, health or None, code, error, oom, started or "2026-12-01T10:00:00Z", probe)
    return json.dumps({"service": service, "name": "/" + name, "id": cid, "state": state, "restarts": restarts,
                       "policy": policy, "image": image or f"app-{service}", "image_id": image_id or "sha256:" + "1" * 64},
                      separators=(",", ":"))
