"""Importing this package registers every rule (one module per area)."""

from berth.check.rules import compose, files, git, settings, ssh  # noqa: F401
