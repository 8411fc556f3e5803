"""Which services `docker compose up` starts: profiles, as compose reads COMPOSE_PROFILES. The one filter
check, config, deploy, rollback and k8s render use."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def active_profiles(project_env: Mapping[str, str]) -> set[str]:
    """The profiles COMPOSE_PROFILES (from the shipped env file) enables, as compose reads it."""
    return {p.strip() for p in project_env.get("COMPOSE_PROFILES", "").split(",") if p.strip()}


def profile_enabled(profiles: Any, active: set[str]) -> bool:
    """Does compose start a service with these `profiles:`? (none: always; `*` enables every one)"""
    if not profiles:
        return True
    names = [profiles] if isinstance(profiles, str) else profiles if isinstance(profiles, list) else []
    return "*" in active or bool(active & {str(p) for p in names})
