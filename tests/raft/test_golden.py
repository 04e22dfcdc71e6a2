"""Golden interaction scripts: a walk through Raft that doubles as a regression test.

Each ``golden/*.txt`` holds commands and the exact output they must produce. After an intended
change in behaviour or wording, regenerate them with ``pytest tests/raft/test_golden.py
--rewrite`` and read the diff: it shows precisely how the protocol's behaviour changed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.raft.interaction import run_script

GOLDEN = sorted((Path(__file__).parent / "golden").glob("*.txt"))


@pytest.mark.parametrize("path", GOLDEN, ids=[p.stem for p in GOLDEN])
def test_golden(path: Path, request: pytest.FixtureRequest) -> None:
    text = path.read_text()
    got = run_script(text)
    if request.config.getoption("--rewrite"):
        path.write_text(got)
        return
    assert got == text, f"{path.name} differs; run with --rewrite and inspect `git diff`"
    assert "error:" not in got, f"{path.name} has a command that failed"


def test_there_are_golden_scripts() -> None:
    assert len(GOLDEN) >= 7
