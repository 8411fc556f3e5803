"""Importing this package registers every rule (one module per area)."""

from berth.check.rules import compose, compose_practice, dockerfile, env_lint, env_values, files, git, secrets_scan, settings, ssh, swarm  # noqa: F401
