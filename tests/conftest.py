import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "tests/sandbox/" in str(item.fspath):
            item.add_marker(pytest.mark.sandbox)
