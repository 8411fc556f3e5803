"""Which rollout each service gets (berth.model.compose.rollout), decided from the compose model, and the
x-berth settings that choose for a service (tests/unit/check/test_rules_rollout.py: berth check's
compose.x-berth)."""

from __future__ import annotations

import pytest

from berth.model.compose.rollout import (
    RECREATE,
    START_FIRST,
    RolloutSettings,
    RolloutSettingsError,
    decide,
    plan,
    settings_of,
)

WEB = {"image": "registry.example.com/shop/web:1.4", "ports": [{"target": 8080, "published": "80", "protocol": "tcp"}],
       "healthcheck": {"test": ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/ready"]}}


def web(**changes):
    return {**WEB, **changes}


def test_a_stateless_http_service_with_a_healthcheck_starts_first():
    r = decide("web", WEB, RolloutSettings())
    assert (r.strategy, r.http_port, r.health_path, r.drain_timeout) == (START_FIRST, 8080, "/ready", 30.0)
    assert "HTTP on 8080" in r.why


@pytest.mark.parametrize("service, why", [
    (web(volumes=[{"type": "volume", "source": "db-data", "target": "/var/lib/postgresql/data"}]), "named volume db-data"),
    (web(volumes=[{"type": "volume", "target": "/cache"}]), "anonymous volume at /cache"),
    (web(image="postgres:16"), "postgres:16 keeps data"),
    (web(container_name="shop-web"), "container_name"),
    (web(deploy={"replicas": 3}), "replicas are fixed"),
    (web(ports=[]), "publishes no port"),
    (web(ports=[{"target": 5432, "published": "5432", "protocol": "tcp"}]), "no HTTP port (5432/tcp)"),
    (web(ports=[{"target": 53, "published": "53", "protocol": "udp"}]), "no HTTP port (53/udp)"),
    (web(healthcheck={"test": ["NONE"]}), "no healthcheck"),
    ({k: v for k, v in WEB.items() if k != "healthcheck"}, "no healthcheck"),
])
def test_what_a_second_copy_would_harm_or_has_no_traffic_to_switch_is_recreated(service, why):
    r = decide("web", service, RolloutSettings())
    assert r.strategy == RECREATE and why in r.why, r.why
    assert r.http_port is None


def test_a_health_url_on_a_published_port_is_a_health_gate_too():
    service = {k: v for k, v in WEB.items() if k != "healthcheck"}
    assert decide("web", service, RolloutSettings(), ("http://203.0.113.5:80/health",)).strategy == START_FIRST
    assert decide("web", service, RolloutSettings(), ("http://203.0.113.5:9000/health",)).strategy == RECREATE


def test_x_berth_chooses_and_tunes_the_rollout():
    forced = decide("web", web(volumes=[{"type": "volume", "source": "uploads", "target": "/srv"}]),
                    settings_of("web", {"rollout": "start-first", "health_path": "/live", "drain_timeout": "2m"}))
    assert (forced.strategy, forced.health_path, forced.drain_timeout) == (START_FIRST, "/live", 120.0)
    assert decide("web", WEB, settings_of("web", {"rollout": "recreate"})).strategy == RECREATE


@pytest.mark.parametrize("x_berth, key, message", [
    ({"rolout": "recreate"}, "rolout", "no setting 'rolout'"),
    ({"rollout": "blue-green"}, "rollout", "must be start-first or recreate"),
    ({"http_port": "eighty"}, "http_port", "not a port number"),
    ({"http_port": 70000}, "http_port", "not a port number"),
    ({"health_path": "health"}, "health_path", "a path such as /health"),
    ({"drain_timeout": "soon"}, "drain_timeout", "a duration such as 30s"),
    ({"drain_timeout": "2h"}, "drain_timeout", "at most 1h"),
    ("start-first", None, "must be a mapping"),
])
def test_x_berth_settings_berth_cannot_follow_are_refused(x_berth, key, message):
    with pytest.raises(RolloutSettingsError) as raised:
        settings_of("web", x_berth)
    assert raised.value.key == key and message in raised.value.message


@pytest.mark.parametrize("service, settings, message", [
    (web(container_name="shop-web"), {"rollout": "start-first"}, "lets only one container exist"),
    (web(ports=[]), {"rollout": "start-first"}, "publishes no HTTP port"),
    (WEB, {"http_port": 9090}, "http_port 9090 is not a TCP port the service publishes (8080)"),
])
def test_start_first_where_it_cannot_work_is_refused(service, settings, message):
    with pytest.raises(RolloutSettingsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        decide("web", service, settings_of("web", settings))


def test_the_plan_covers_every_started_service_in_order():
    model = {"services": {"db": {"image": "postgres:16"}, "web": WEB}}
    rollouts = plan(model, {"web": {"x-berth": {"drain_timeout": "5s"}}})
    assert [(r.service, r.strategy, r.drain_timeout) for r in rollouts] == [("db", RECREATE, 30.0),
                                                                           ("web", START_FIRST, 5.0)]
