"""The chaos verdict on constructed results (no cluster): besides the history checks, the run
must end with its whole membership (``size`` started members in MemberList, every replacement
finished), or it fails with a reason and ``minietcd-lab chaos`` exits 1."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from minietcd.errors import LabError
from minietcd.lab import chaos, cli, probe
from minietcd.lab.chaos import ChaosOptions, ChaosResult, check_membership
from minietcd.lab.chaos_nemesis import Nemesis
from minietcd.lab.chaos_report import chaos_report
from minietcd.lab.check import (
    DurabilityResult,
    FinalValue,
    OpKind,
    Recorder,
    check_durability,
    check_linearizability,
    check_watches,
)
from minietcd.lab.cluster import Cluster, Replacement
from minietcd.lab.state import LabState, MemberState


def _listed(*members: tuple[int, str]) -> list[probe.ListedMember]:
    return [probe.ListedMember(i, name, (f"http://127.0.0.1:{200 + i}",), False) for i, name in members]


FULL = _listed((1, "n1"), (2, "n2"), (3, "n3"))
IDS = {"n1": 1, "n2": 2, "n3": 3}


def _result(tmp_path: Path, **fields: Any) -> ChaosResult:
    """A 3-member run with a small clean history; ``fields`` override ChaosResult's fields."""
    rec = Recorder(clock=iter(range(100)).__next__)
    op = rec.invoke(0, OpKind.PUT, "chaos/k0", value="a")
    rec.ok(op, revision=2)
    ops = rec.close()
    final = {"chaos/k0": FinalValue("a", 2)}
    values: dict[str, Any] = {
        "options": ChaosOptions(lab_dir=tmp_path, size=3, seed=5, nemeses=("member-replace",)),
        "ops": ops,
        "faults": [],
        "skipped": [],
        "elections": 1,
        "linearizability": check_linearizability(ops),
        "watch": check_watches([], ops=ops),
        "durability": check_durability(ops, final, final_revision=2),
        "report": "",
        "final_members": FULL,
        "expected_ids": IDS,
    }
    result = ChaosResult(**(values | fields))
    result.report = chaos_report(result)
    return result


def _replaced(name: str, old: int, new: int = 0, started: bool = False) -> Replacement:
    return Replacement(name, old, new_id=new, started=started)


def test_a_complete_membership_is_ok(tmp_path: Path) -> None:
    rep = _replaced("n3", 7, new=3, started=True)
    result = _result(tmp_path, replacements=[rep])
    assert result.ok and result.membership.ok
    assert "membership: ok (3 in MemberList, 3 started, expected 3)" in result.report
    assert "verdict: OK: no violation" in result.report and "replay" not in result.report


def test_a_replaced_member_never_added_back_fails_the_run(tmp_path: Path) -> None:
    rep = _replaced("n3", 3)
    result = _result(tmp_path, final_members=FULL[:2], replacements=[rep])
    assert result.histories_ok and not result.ok
    assert result.membership.problems[:2] == [
        "2 members in MemberList, expected 3",
        "n3 was removed (3) and never added back",
    ]
    assert "membership: FAILED: 3 problem(s) (2 in MemberList, 2 started, expected 3)" in result.report
    assert "verdict: membership FAILED (2 members in MemberList, expected 3)" in result.report
    assert "replay the fault schedule with: minietcd-lab chaos --size 3" in result.report


def test_a_silent_shrink_fails_the_run(tmp_path: Path) -> None:
    # A removal that happened although it was recorded as "NOT replaced": no replacement, but
    # n3 is gone from MemberList.
    result = _result(tmp_path, final_members=FULL[:2])
    assert not result.ok
    assert "n3 (3) is missing from MemberList" in result.membership.problems


def test_an_unstarted_member_fails_the_run(tmp_path: Path) -> None:
    listed = _listed((1, "n1"), (2, "n2"), (9, ""))
    rep = _replaced("n3", 3, new=9, started=True)
    result = _result(tmp_path, final_members=listed, replacements=[rep], expected_ids=IDS | {"n3": 9})
    assert not result.ok
    assert result.membership.problems == ["never started (no name published): 9"]
    assert "(3 in MemberList, 2 started, expected 3)" in result.report


@pytest.mark.parametrize(
    ("rep", "problem"),
    [
        (_replaced("n3", 7, new=3), "n3 was added back as 3 but never started"),
        (_replaced("n3", 7, new=8, started=True), "n3's new id 8 is not in MemberList"),
        (_replaced("n3", 2, new=3, started=True), "n3's removed id 2 is still in MemberList"),
    ],
)
def test_an_unfinished_replacement_fails_the_run(tmp_path: Path, rep: Replacement, problem: str) -> None:
    result = _result(tmp_path, replacements=[rep])
    assert not result.ok and problem in result.membership.problems


def test_only_the_newest_replacement_of_a_member_must_be_back(tmp_path: Path) -> None:
    reps = [_replaced("n3", 5, new=6, started=True), _replaced("n3", 6, new=3, started=True)]
    assert _result(tmp_path, replacements=reps).ok


def test_other_membership_failures() -> None:
    assert check_membership(3, []).problems == ["MemberList could not be read from any member"]
    learner = [*FULL[:2], probe.ListedMember(3, "n3", (), True)]
    assert check_membership(3, learner).problems == ["still learners: n3"]
    assert check_membership(3, FULL, not_running=["n2"]).problems == ["not running at the end: n2"]


def test_a_history_violation_and_a_membership_failure_are_both_named(tmp_path: Path) -> None:
    bad = DurabilityResult(violations=[object()], checked=1, unread_keys=[])  # type: ignore[list-item]  # a stand-in violation: only counted
    result = _result(tmp_path, durability=bad, final_members=FULL[:2])
    assert not result.ok
    assert "verdict: VIOLATION; membership FAILED" in result.report


@pytest.mark.parametrize(("members", "status"), [(FULL, 0), (FULL[:2], 1)])
def test_the_chaos_command_exits_1_on_a_membership_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, members: list[probe.ListedMember], status: int
) -> None:
    monkeypatch.setattr(chaos, "run_chaos", lambda opts: _result(tmp_path, final_members=members))
    argv = ["--lab-dir", str(tmp_path), "chaos", "--size", "3", "--duration", "1s", "--seed", "5"]
    assert cli.main(argv) == status


def test_healing_leaves_a_member_that_cannot_be_added_back_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # heal_all no longer raises: the run goes on to its checks, and the membership check fails
    # it. The removed (wiped) member is not restarted: on an empty data dir it would bootstrap.
    state = LabState(str(tmp_path), "tkn", 50, 500, False, "http://127.0.0.1:1", "lab-x")
    state.members = [MemberState(f"n{i}", 1, 2, 3, i, "/d", "/l") for i in (1, 2, 3)]
    cluster = Cluster(state)
    states = {"n1": "running", "n2": "killed", "n3": "killed"}
    started: list[str] = []
    monkeypatch.setattr(Cluster, "process_state", lambda self, name: states[name])
    monkeypatch.setattr(Cluster, "start", lambda self, name: started.append(name))

    def refuse(self: Cluster, rep: Replacement, **kw: Any) -> int:
        raise LabError("add n3: still refused after 60s")

    monkeypatch.setattr(Cluster, "add_member", refuse)
    monkeypatch.setattr(cluster.links, "heal", lambda: None)
    monkeypatch.setattr(cluster.links, "clear_toxics", lambda: None)
    opts = ChaosOptions(lab_dir=tmp_path, size=3, log=lambda _s: None)
    nemesis = Nemesis(opts, cluster, random.Random(1), 0)
    rep = _replaced("n3", 3)
    nemesis._unfinished = rep
    nemesis.replacements.append(rep)
    nemesis.heal_all()
    assert started == ["n2"]
    assert "n3 was removed (3) and never added back" in check_membership(3, FULL[:2], [rep]).problems
