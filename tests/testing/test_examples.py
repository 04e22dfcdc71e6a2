"""The example suite of examples/ (an application's failover tests written with the plugin) runs
and passes, as a user runs it: ``python3 -m pytest examples/test_controller.py``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def test_the_controller_failover_suite_passes() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "examples/test_controller.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert r.returncode == 0, r.stdout[-20000:] + r.stderr[-5000:]
    assert "4 passed" in r.stdout, r.stdout[-5000:]
