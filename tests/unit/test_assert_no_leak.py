"""The test suite's own failure messages never print a secret (tests/conftest.py's assert hook)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_a_failed_not_in_assertion_does_not_print_the_forbidden_text(tmp_path):
    secret = "sk-live-51HqLyjWDarjtT1zdp7dc"
    test = tmp_path / "test_leak.py"
    # the secret comes from the environment, as in real tests (never in the source pytest shows)
    test.write_text("import os\n\ndef test_leak():\n    secret = os.environ['LEAK_SECRET']\n"
                    "    output = 'log line: key=' + secret + ' end'\n    assert secret not in output\n")
    root = Path(__file__).resolve().parents[1]
    (tmp_path / "conftest.py").write_text((root / "conftest.py").read_text())
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120,
                          env={**os.environ, "LEAK_SECRET": secret})
    assert proc.returncode == 1  # the test did fail
    assert "forbidden text (29 characters, not shown)" in proc.stdout
    assert "key=****" in proc.stdout
    assert proc.stdout.count(secret) == 0 and proc.stderr.count(secret) == 0
