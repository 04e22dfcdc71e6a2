"""The lab commands the live view brought (``transfer``, ``remove``, ``add``, ``up --pace``,
``web``'s errors), run as a person runs them: one ``python -m minietcd.lab`` process each."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from minietcd.lab import processes
from minietcd.lab.state import LabState
from tests.lab.lab_cli import LabCli, local_env, one_leader, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[LabCli]:
    lab = LabCli(tmp_path / "lab", local_env(tmp_path / "lab"))
    try:
        yield lab
    finally:
        if LabState.exists(lab.lab_dir):
            state = lab.state()
            lab.run("down", ok=False)
            for ref in [m.process for m in state.members] + [state.toxiproxy_process]:
                processes.kill(ref)


def test_transfer_remove_and_add_back(lab: LabCli) -> None:
    lab.run("up", "--size", "3")
    names = ["n1", "n2", "n3"]
    leader = wait_for("a leader", lambda: one_leader(lab.status(), names))
    target = next(n for n in names if n != leader)
    out = lab.run("transfer", target).stdout
    assert out.strip() == f"leadership moved: {leader} -> {target}"
    assert wait_for("the new leader", lambda: one_leader(lab.status(), names)) == target
    again = lab.run("transfer", target, ok=False)
    assert again.returncode == 1 and f"{target} is already the leader" in again.stderr

    victim = next(n for n in names if n != target)
    old_id = lab.state().member(victim).member_id
    out = lab.run("remove", victim).stdout
    assert out.startswith(f"removed {victim} ({old_id:x}) through n")
    rest = [n for n in names if n != victim]
    wait_for("the others healthy", lambda: one_leader(lab.status(), rest))
    assert lab.status()[victim]["process"] == "killed"
    twice = lab.run("remove", victim, ok=False)
    assert twice.returncode == 1 and f"{victim} is not a member (add it back with" in twice.stderr

    out = lab.run("add", victim).stdout
    new_id = lab.state().member(victim).member_id
    assert new_id != old_id and out.startswith(f"added {victim} back as {new_id:x} through n")
    assert wait_for("all three healthy", lambda: one_leader(lab.status(), names))
    dup = lab.run("add", victim, ok=False)
    assert dup.returncode == 1 and f"{victim} is a member already" in dup.stderr
    lab.run("down")


def test_pace_and_web_errors_are_one_line(lab: LabCli, tmp_path: Path) -> None:
    both = lab.run("up", "--pace", "teach", "--heartbeat-interval", "100", ok=False)
    assert both.returncode == 1
    assert both.stderr.strip() == "Error: --pace sets --heartbeat-interval: give one or the other"
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "something else"}')
    r = lab.run("web", "--replay", str(bad), ok=False)
    assert r.returncode == 1 and r.stderr.strip() == f"Error: {bad} is not a minietcd-lab recording"
    assert "Traceback" not in r.stderr
