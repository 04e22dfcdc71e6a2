"""Durability: after healing, every acknowledged write is present or overwritten."""

from __future__ import annotations

import random
from typing import Any

import pytest

from minietcd.lab.check.durability import DurabilityKind, FinalValue, check_durability
from minietcd.lab.check.simulate import simulate

from .builders import FAIL, UNKNOWN, cas, delete, put


def kinds(ops: list[Any], final: dict[str, Any], **kw: object) -> list[DurabilityKind]:
    return [v.kind for v in check_durability(ops, final, **kw).violations]  # type: ignore[arg-type]  # check_durability's keywords


def test_last_acknowledged_write_present_is_ok() -> None:
    ops = [put(1, "a", "1", 0, 1, rev=2), put(1, "a", "2", 2, 3, rev=3)]
    result = check_durability(ops, {"a": FinalValue("2", 3)})
    assert result.ok and result.checked == 2


def test_lost_acknowledged_write_is_caught() -> None:
    # The final read shows the older value: the acknowledged write at revision 3 is gone.
    ops = [put(1, "a", "1", 0, 1, rev=2), put(1, "a", "2", 2, 3, rev=3)]
    result = check_durability(ops, {"a": FinalValue("1", 2)})
    assert [(v.kind, v.op) for v in result.violations] == [(DurabilityKind.LOST, ops[1])]


def test_lost_write_without_revisions_is_caught_by_real_time() -> None:
    ops = [put(1, "a", "1", 0, 1), put(1, "a", "2", 2, 3)]
    assert kinds(ops, {"a": FinalValue("1")}) == [DurabilityKind.LOST]


def test_overwrite_by_a_concurrent_write_is_ok() -> None:
    ops = [put(1, "a", "1", 0, 3), put(2, "a", "2", 1, 2)]
    assert kinds(ops, {"a": FinalValue("1")}) == []
    assert kinds(ops, {"a": FinalValue("2")}) == []


def test_overwrite_by_an_unknown_write_is_ok_but_not_by_a_failed_one() -> None:
    ops = [put(1, "a", "1", 0, 1, rev=2), put(2, "a", "u", 5, None, outcome=UNKNOWN)]
    assert kinds(ops, {"a": FinalValue("u", 9)}) == []
    failed = [put(1, "a", "1", 0, 1), put(2, "a", "f", 5, 6, outcome=FAIL)]
    assert kinds(failed, {"a": FinalValue("f")}) == [DurabilityKind.PHANTOM, DurabilityKind.LOST]


def test_key_deleted_after_the_write_is_ok() -> None:
    ops = [put(1, "a", "1", 0, 1, rev=2), delete(1, "a", 2, 3, deleted=True, rev=3)]
    assert kinds(ops, {"a": None}) == []


def test_key_absent_without_any_later_delete_is_lost() -> None:
    ops = [delete(1, "a", 0, 1, deleted=False, rev=1), put(1, "a", "1", 2, 3, rev=2)]
    assert kinds(ops, {"a": None}) == [DurabilityKind.LOST]


def test_acknowledged_delete_undone_is_lost() -> None:
    ops = [put(1, "a", "1", 0, 1, rev=2), delete(1, "a", 2, 3, deleted=True, rev=3)]
    assert kinds(ops, {"a": FinalValue("1", 2)}) == [DurabilityKind.LOST]


def test_successful_cas_counts_and_failed_cas_does_not() -> None:
    ops = [
        put(1, "a", "1", 0, 1, rev=2),
        cas(1, "a", "1", "2", 2, 3, ok=True, rev=3),
        cas(2, "a", "9", "3", 4, 5, ok=False, rev=3),
    ]
    assert kinds(ops, {"a": FinalValue("2", 3)}) == []
    # "3" only a failed CAS wrote; revision 4 is later than the CAS at 3, so that one is safe.
    assert kinds(ops, {"a": FinalValue("3", 4)}) == [DurabilityKind.PHANTOM]
    assert kinds(ops, {"a": FinalValue("3")}) == [DurabilityKind.PHANTOM, DurabilityKind.LOST]


def test_store_revision_going_backwards_is_caught() -> None:
    ops = [put(1, "a", "1", 0, 1, rev=7)]
    assert kinds(ops, {"a": FinalValue("1", 7)}, final_revision=5) == [DurabilityKind.REGRESSED]


def test_keys_missing_from_the_final_read_are_reported_unchecked() -> None:
    result = check_durability([put(1, "a", "1", 0, 1)], {})
    assert result.ok and result.unread_keys == ["a"] and result.checked == 0


@pytest.mark.parametrize("seed", range(5))
def test_simulated_runs_are_durable_and_a_rollback_is_caught(seed: int) -> None:
    run = simulate(random.Random(seed), n_ops=300, keys=3)
    assert check_durability(run.ops, run.final, final_revision=run.final_revision).ok
    # Roll one key back to the state before its last committed change.
    last = max(run.changes, key=lambda c: c.revision)
    earlier = [c for c in run.changes if c.key == last.key and c.revision < last.revision]
    rolled = dict(run.final)
    if earlier and earlier[-1].value is not None:
        rolled[last.key] = FinalValue(earlier[-1].value, earlier[-1].revision)
    else:
        rolled[last.key] = None
    acked = {op.id for op in run.ops if op.outcome.value == "ok"}
    result = check_durability(run.ops, rolled)
    if last.op_id in acked:
        assert [v.op.id for v in result.violations if v.op is not None] == [last.op_id]
