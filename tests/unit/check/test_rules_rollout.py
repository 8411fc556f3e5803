"""compose.x-berth: a service's x-berth settings berth cannot follow are an error at their line."""

from __future__ import annotations

import pytest

from tests.helpers.rule_cases import Case, rule_test, write_files

X_BERTH = """\
services:
  web:
    image: nginx:1.25
    restart: unless-stopped
    ports: ["8080:80"]
    healthcheck:
      test: ["CMD", "true"]
    x-berth:
      {setting}
"""

CASES = [
    Case("compose.x-berth", True, "an unknown setting, at its line",
         write_files({"docker-compose.yml": X_BERTH.format(setting="rolout: recreate")}),
         expect=lambda p, found: (found[0].line == 9 and "no setting 'rolout'" in found[0].message) or pytest.fail(
             str(found))),
    Case("compose.x-berth", True, "start-first on a port the service does not publish",
         write_files({"docker-compose.yml": X_BERTH.format(setting="http_port: 8080")})),
    Case("compose.x-berth", False, "settings berth follows",
         write_files({"docker-compose.yml": X_BERTH.format(setting="rollout: start-first\n      drain_timeout: 10s")})),
]
test_rule = rule_test(CASES, offline=True)
