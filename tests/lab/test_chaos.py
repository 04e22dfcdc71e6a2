"""``minietcd-lab chaos`` end to end: a healthy cluster under faults passes every checker, and a
deliberately broken one (``MINIETCD_UNSAFE_LOCAL_READS=1``: linearizable reads served locally)
is caught by the linearizability checker within one short run."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from minietcd.errors import LabError
from minietcd.lab.chaos import UNSAFE_READS_ENV, ChaosOptions, ChaosResult, parse_nemeses, run_chaos
from minietcd.lab.check import Verdict


def _chaos(tmp_path: Path, **options: Any) -> ChaosResult:
    """One quiet chaos run in ``tmp_path/lab`` on 3 members with short faults (CI time), unless
    ``options`` say otherwise; its report is printed (pytest shows it on failure)."""
    short: dict[str, Any] = {"size": 3, "fault_hold": (1.0, 3.0), "fault_gap": (0.5, 1.0)}
    result = run_chaos(ChaosOptions(lab_dir=tmp_path / "lab", log=lambda _s: None, **(short | options)))
    print(result.report)
    return result


def test_parse_nemeses() -> None:
    assert parse_nemeses("partition, kill,none") == ["partition", "kill"]
    with pytest.raises(LabError):
        parse_nemeses("partition,meteor")


@pytest.mark.cluster
@pytest.mark.slow
def test_chaos_run_on_a_healthy_cluster_has_no_violation(tmp_path: Path) -> None:
    started = time.monotonic()
    result = _chaos(
        tmp_path,
        duration=20.0,
        nemeses=("partition", "kill", "pause"),
        seed=7,
        html=tmp_path / "t.html",
        history_json=tmp_path / "h.jsonl",
    )
    assert result.ok, result.report
    assert result.linearizability.verdict is Verdict.OK
    assert len(result.faults) >= 3
    assert sum(op.outcome == "ok" for op in result.ops) > 200
    assert result.watch.events > 0 and result.durability.checked > 0
    assert (tmp_path / "t.html").stat().st_size > 0 and (tmp_path / "h.jsonl").stat().st_size > 0
    assert not (tmp_path / "lab" / "lab.json").exists()  # brought down
    assert time.monotonic() - started < 90


@pytest.mark.cluster
@pytest.mark.slow
def test_chaos_replaces_members_and_stays_linearizable(tmp_path: Path) -> None:
    # member-replace: MemberRemove, wipe, MemberAdd the same name and URL, start joining; the
    # first attempt is refused for a few seconds (etcd's "unhealthy cluster": the members have
    # not been connected for 5 s yet) and retried. Partitions hit the replaced member's links too.
    started = time.monotonic()
    result = _chaos(
        tmp_path,
        duration=12.0,
        nemeses=("member-replace", "partition"),
        seed=3,
    )
    assert result.ok, result.report
    assert result.linearizability.verdict is Verdict.OK
    assert result.replacements, result.report
    assert all(r.new_id not in (0, r.old_id) for r in result.replacements)
    final = {m.name: m.id for m in result.final_members}
    assert len(result.final_members) == 3 and "" not in final, result.report  # all 3 started
    for r in result.replacements:  # each replaced member is there with its newest id
        assert final[r.name] == [x for x in result.replacements if x.name == r.name][-1].new_id
    assert "members replaced:" in result.report
    assert result.membership.ok and "membership: ok (3 in MemberList, 3 started, expected 3)" in result.report
    assert time.monotonic() - started < 75


@pytest.mark.cluster
@pytest.mark.slow
def test_chaos_catches_unsafe_local_reads(tmp_path: Path) -> None:
    # Partitions only, always cutting off a minority: clients bound to the cut-off member keep
    # reading (locally, stale) keys that the majority's clients keep writing.
    started = time.monotonic()
    result = _chaos(
        tmp_path,
        duration=12.0,
        nemeses=("partition",),
        seed=11,
        minority_bias=1.0,
        fault_hold=(2.5, 3.5),
        fault_gap=(0.3, 0.6),
        read_ratio=0.6,
        unsafe_local_reads=True,
    )
    assert not result.ok
    assert result.linearizability.verdict is Verdict.ILLEGAL
    assert "replay the fault schedule with" in result.report and "--seed 11" in result.report
    assert any(kr.minimal for kr in result.linearizability.keys.values())
    assert UNSAFE_READS_ENV not in os.environ  # not leaked to later tests' members
    assert time.monotonic() - started < 90
