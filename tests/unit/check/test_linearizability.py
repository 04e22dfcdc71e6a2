"""The linearizability checker on hand-written histories, known good and known bad."""

from __future__ import annotations

import dataclasses
import itertools
import random

import pytest

from minietcd.lab.check import model
from minietcd.lab.check.history import Operation, OpKind, Outcome
from minietcd.lab.check.linearizability import check_linearizability, check_revision_order
from minietcd.lab.check.search import Budget, Verdict, check_key
from minietcd.lab.check.simulate import simulate

from .builders import FAIL, UNKNOWN, cas, delete, get, put, txn


def verdict(*ops: Operation) -> Verdict:
    return check_linearizability(ops).verdict


# --- reads and writes --------------------------------------------------------------------------


def test_empty_history_is_ok() -> None:
    assert verdict() is Verdict.OK


def test_sequential_put_get_is_ok() -> None:
    assert verdict(put(1, "x", "1", 0, 1), get(2, "x", "1", 2, 3)) is Verdict.OK


def test_stale_read_after_acknowledged_write_is_illegal() -> None:
    assert verdict(
        put(1, "x", "1", 0, 1),
        put(1, "x", "2", 2, 3),
        get(2, "x", "1", 4, 5),
    ) is Verdict.ILLEGAL


def test_read_of_initial_absence_after_a_write_is_illegal() -> None:
    assert verdict(put(1, "x", "1", 0, 1), get(2, "x", None, 2, 3)) is Verdict.ILLEGAL


@pytest.mark.parametrize("seen", [None, "1"])
def test_read_concurrent_with_a_write_may_see_either(seen: str | None) -> None:
    assert verdict(put(1, "x", "1", 0, 10), get(2, "x", seen, 2, 3)) is Verdict.OK


@pytest.mark.parametrize("last", ["a", "b"])
def test_concurrent_writes_may_land_in_either_order(last: str) -> None:
    assert verdict(
        put(1, "x", "a", 0, 5),
        put(2, "x", "b", 1, 6),
        get(3, "x", last, 7, 8),
        get(3, "x", last, 9, 10),
    ) is Verdict.OK


def test_reads_must_agree_on_the_order_of_concurrent_writes() -> None:
    # Once a read saw b after both writes returned, a later read cannot see a again.
    assert verdict(
        put(1, "x", "a", 0, 5),
        put(2, "x", "b", 1, 6),
        get(3, "x", "b", 7, 8),
        get(3, "x", "a", 9, 10),
    ) is Verdict.ILLEGAL


def test_touching_intervals_count_as_concurrent() -> None:
    # Equal timestamps: the read may be ordered before the write.
    assert verdict(put(1, "x", "1", 0, 2), get(2, "x", None, 2, 3)) is Verdict.OK


def test_read_of_a_value_nobody_wrote_is_illegal() -> None:
    assert verdict(put(1, "x", "1", 0, 1), get(2, "x", "ghost", 2, 3)) is Verdict.ILLEGAL


def test_read_of_a_value_only_a_failed_write_wrote_is_illegal() -> None:
    assert verdict(
        put(1, "x", "1", 0, 1, outcome=FAIL), get(2, "x", "1", 2, 3)
    ) is Verdict.ILLEGAL


def test_failed_writes_are_dropped() -> None:
    assert verdict(put(1, "x", "1", 0, 1, outcome=FAIL), get(2, "x", None, 2, 3)) is Verdict.OK


def test_initial_state_is_honoured() -> None:
    ops = [get(1, "x", "seed", 0, 1, mod=3)]
    assert check_linearizability(ops).verdict is Verdict.ILLEGAL
    assert check_linearizability(ops, initial={"x": ("seed", 3)}).verdict is Verdict.OK


# --- unknown outcomes ----------------------------------------------------------------------


def test_unknown_write_that_later_shows_up_is_ok() -> None:
    assert verdict(
        put(1, "x", "1", 0, 1, outcome=UNKNOWN),
        get(2, "x", None, 2, 3),  # not yet applied...
        get(2, "x", "1", 4, 5),  # ...applied after the client gave up
    ) is Verdict.OK


def test_unknown_write_that_never_shows_up_is_ok() -> None:
    assert verdict(
        put(1, "x", "1", 0, 1, outcome=UNKNOWN),
        get(2, "x", None, 2, 3),
        get(2, "x", None, 4, 5),
    ) is Verdict.OK


def test_unknown_write_cannot_take_effect_before_its_invocation() -> None:
    assert verdict(
        get(2, "x", "1", 0, 1),
        put(1, "x", "1", 2, None, outcome=UNKNOWN),
    ) is Verdict.ILLEGAL


def test_unknown_write_takes_effect_at_most_once() -> None:
    # Seen, overwritten, then seen again: it would have to apply twice.
    assert verdict(
        put(1, "x", "1", 0, None, outcome=UNKNOWN),
        get(2, "x", "1", 2, 3),
        put(2, "x", "2", 4, 5),
        get(2, "x", "1", 6, 7),
    ) is Verdict.ILLEGAL


def test_unknown_write_may_explain_a_failed_cas() -> None:
    # Nobody read "u", but the CAS on the value it last saw failed: the unknown put applied.
    assert verdict(
        put(1, "x", "a", 0, 1),
        put(2, "x", "u", 2, 3, outcome=UNKNOWN),
        cas(1, "x", "a", "b", 4, 5, ok=False),
    ) is Verdict.OK
    assert verdict(put(1, "x", "a", 0, 1), cas(1, "x", "a", "b", 4, 5, ok=False)) is (
        Verdict.ILLEGAL
    )


def test_unknown_cas_applies_only_if_its_compare_holds() -> None:
    # The unknown CAS expected "z", which was never there: "b" cannot appear.
    assert verdict(
        put(1, "x", "a", 0, 1),
        cas(2, "x", "z", "b", 2, 3, outcome=UNKNOWN),
        get(1, "x", "b", 4, 5),
    ) is Verdict.ILLEGAL
    assert verdict(
        put(1, "x", "a", 0, 1),
        cas(2, "x", "a", "b", 2, 3, outcome=UNKNOWN),
        get(1, "x", "b", 4, 5),
    ) is Verdict.OK


def test_unknown_delete_may_explain_an_absent_read() -> None:
    assert verdict(
        put(1, "x", "a", 0, 1),
        delete(2, "x", 2, 3, outcome=UNKNOWN),
        get(1, "x", None, 4, 5),
    ) is Verdict.OK


# --- compare-and-set -------------------------------------------------------------------------


def test_lost_update_via_cas_is_illegal() -> None:
    # Two CAS from the same value both succeed: one of them lost the other's update.
    assert verdict(
        put(1, "x", "a", 0, 1, rev=1),
        cas(2, "x", "a", "b", 2, 4, ok=True, rev=2),
        cas(3, "x", "a", "c", 3, 5, ok=True, rev=3),
    ) is Verdict.ILLEGAL


def test_lost_update_via_mod_revision_cas_is_illegal() -> None:
    assert verdict(
        put(1, "x", "a", 0, 1, rev=5),
        txn(2, "x", 5, "b", 2, 4, ok=True, rev=6),
        txn(3, "x", 5, "c", 3, 5, ok=True, rev=7),
    ) is Verdict.ILLEGAL


def test_cas_race_with_one_winner_is_ok() -> None:
    assert verdict(
        put(1, "x", "a", 0, 1, rev=1),
        cas(2, "x", "a", "b", 2, 4, ok=True, rev=2),
        txn(3, "x", 1, "c", 3, 5, ok=False, rev=2, read="b", read_mod=2),
        get(1, "x", "b", 6, 7, mod=2, rev=2),
    ) is Verdict.OK


def test_failed_cas_whose_compare_held_is_illegal() -> None:
    assert verdict(
        put(1, "x", "a", 0, 1), cas(2, "x", "a", "b", 2, 3, ok=False)
    ) is Verdict.ILLEGAL


def test_create_if_absent_compares_mod_revision_zero() -> None:
    assert verdict(txn(1, "x", 0, "a", 0, 1, ok=True, rev=1)) is Verdict.OK
    assert verdict(
        put(1, "x", "a", 0, 1, rev=1), txn(1, "x", 0, "b", 2, 3, ok=True, rev=2)
    ) is Verdict.ILLEGAL


def test_value_compare_on_an_absent_key_fails() -> None:
    # etcd: comparing the value of a missing key is always false.
    assert verdict(cas(1, "x", "", "a", 0, 1, ok=True)) is Verdict.ILLEGAL


def test_failed_txn_else_read_must_be_current() -> None:
    assert verdict(
        put(1, "x", "a", 0, 1, rev=1),
        put(1, "x", "b", 2, 3, rev=2),
        txn(2, "x", "z", "c", 4, 5, ok=False, read="a", read_mod=1),
    ) is Verdict.ILLEGAL


# --- deletes and revisions -----------------------------------------------------------------


def test_delete_then_absent_read_is_ok() -> None:
    assert verdict(
        put(1, "x", "a", 0, 1),
        delete(1, "x", 2, 3, deleted=True),
        get(2, "x", None, 4, 5),
        delete(2, "x", 6, 7, deleted=False),
    ) is Verdict.OK


def test_delete_that_found_nothing_after_a_put_is_illegal() -> None:
    assert verdict(put(1, "x", "a", 0, 1), delete(1, "x", 2, 3, deleted=False)) is (
        Verdict.ILLEGAL
    )


def test_read_with_wrong_mod_revision_is_illegal() -> None:
    assert verdict(put(1, "x", "a", 0, 1, rev=4), get(2, "x", "a", 2, 3, mod=5)) is (
        Verdict.ILLEGAL
    )


def test_write_revision_must_grow_per_key() -> None:
    assert verdict(put(1, "x", "a", 0, 1, rev=4), put(1, "x", "b", 2, 3, rev=4)) is (
        Verdict.ILLEGAL
    )


def test_revision_order_across_keys() -> None:
    # Each key alone is fine; but y's write, started after x's returned, has a lower revision.
    ops = [put(1, "x", "a", 0, 1, rev=7), put(2, "y", "b", 2, 3, rev=6)]
    result = check_linearizability(ops)
    assert all(r.verdict is Verdict.OK for r in result.keys.values())
    assert result.verdict is Verdict.ILLEGAL
    assert [(v.earlier.key, v.later.key) for v in result.revision_violations] == [("x", "y")]
    assert check_revision_order([put(1, "x", "a", 0, 1, rev=7), get(2, "y", None, 2, 3, rev=7)]) == []


def test_two_writes_sharing_a_revision_are_flagged() -> None:
    ops = [put(1, "x", "a", 0, 1, rev=3), put(2, "y", "b", 0, 1, rev=3)]
    assert [v.reason for v in check_revision_order(ops)] == ["two writes at revision 3"]


# --- per-key independence ------------------------------------------------------------------


def test_keys_are_checked_independently() -> None:
    ops = [
        put(1, "x", "1", 0, 1),
        get(2, "y", None, 2, 3),  # y was never written: fine, whatever x holds
        put(1, "y", "2", 4, 5),
        get(2, "x", "1", 6, 7),
        put(3, "z", "z", 0, 1),
        get(3, "z", "stale", 2, 3),
    ]
    result = check_linearizability(ops)
    assert result.verdict is Verdict.ILLEGAL
    assert result.illegal_keys == ["z"]
    assert result.keys["x"].verdict is Verdict.OK
    assert result.keys["y"].verdict is Verdict.OK
    assert {op.key for op in result.keys["z"].minimal} == {"z"}


# --- what an ILLEGAL result explains -------------------------------------------------------


def test_longest_prefix_and_stuck_operation_are_reported() -> None:
    w1, w2, r = put(1, "x", "1", 0, 1), put(1, "x", "2", 2, 3), get(2, "x", "1", 4, 5)
    key = check_linearizability([w1, w2, r]).keys["x"]
    assert key.stuck == r
    assert key.longest_prefix == [w1, w2]


def _stale_read(
    ops: list[Operation], rng: random.Random
) -> tuple[list[Operation], Operation] | None:
    """Replace one read's result by a value that was certainly overwritten before it began:
    W1 returned before W2 began, W2 (a certain overwrite) returned before the read began.
    None if no read has such a W1."""
    certain = [o for o in ops if o.outcome is Outcome.OK and o.writes_value()]
    candidates = []
    for i, r in enumerate(ops):
        if r.kind is not OpKind.GET or r.outcome is not Outcome.OK:
            continue
        before = [w for w in certain if w.key == r.key and w.return_time < r.invoke]
        if not before:
            continue
        w2 = max(before, key=lambda w: w.return_time)
        old = [w for w in before if w.return_time < w2.invoke]
        if old:
            candidates.append((i, rng.choice(old)))
    if not candidates:
        return None
    i, w1 = rng.choice(candidates)
    bad = list(ops)
    bad[i] = dataclasses.replace(ops[i], read_value=w1.value, read_mod_revision=w1.revision)
    return bad, bad[i]


def test_minimal_failing_sub_history_is_small_and_still_illegal() -> None:
    run = simulate(random.Random(7), n_ops=2000, clients=5, keys=5)
    stale = _stale_read(run.ops, random.Random(1))
    assert stale is not None
    bad, corrupted = stale
    result = check_linearizability(bad)
    assert result.verdict is Verdict.ILLEGAL
    key = result.keys[corrupted.key]
    assert key.shrink_complete
    assert corrupted in key.minimal
    assert 2 <= len(key.minimal) <= 5
    assert check_linearizability(key.minimal).verdict is Verdict.ILLEGAL
    # The witness keeps the write the stale read saw: it is a stale read, not a phantom.
    assert any(op.value == corrupted.read_value for op in key.minimal)


def test_shrink_keeps_the_write_that_explains_an_earlier_read() -> None:
    # Dropping the delete would make the first absent read fail instead: not our culprit.
    ops = [
        put(1, "x", "a", 0, 1),
        delete(2, "x", 2, 3, deleted=True),
        get(3, "x", None, 4, 5),
        put(1, "x", "b", 6, 7),
        put(1, "x", "c", 8, 9),
        get(2, "x", "b", 10, 11),
    ]
    minimal = check_linearizability(ops).keys["x"].minimal
    assert [op.read_value if op.kind is OpKind.GET else op.value for op in minimal] == [
        "b", "c", "b"
    ]


# --- budget --------------------------------------------------------------------------------


def _hard_history(n: int = 20) -> list[Operation]:
    """n overlapping acknowledged puts, then a read of a value nobody wrote: refuting it
    means trying every subset of the puts in every order, about n * 2**(n-1) configurations.
    """
    ops = [put(i, "x", f"v{i}", i * 0.01, 100) for i in range(n)]
    ops.append(get(0, "x", "ghost", 101, 102))
    return ops


def test_step_budget_returns_unknown_rather_than_running_forever() -> None:
    result = check_linearizability(_hard_history(), max_steps=500, shrink=False)
    assert result.verdict is Verdict.UNKNOWN
    assert result.keys["x"].verdict is Verdict.UNKNOWN
    assert result.steps <= 500 + 1024


def test_timeout_returns_unknown() -> None:
    ticks = itertools.count()

    def clock() -> float:
        return float(next(ticks))  # every reading is a second later

    result = check_linearizability(_hard_history(), timeout=3.0, clock=clock, shrink=False)
    assert result.verdict is Verdict.UNKNOWN


def test_exhausted_budget_leaves_later_keys_unknown() -> None:
    ops = [*_hard_history(), put(1, "y", "1", 0, 1)]
    result = check_linearizability(ops, max_steps=100, shrink=False)
    assert result.keys["y"].verdict is Verdict.UNKNOWN
    assert result.verdict is Verdict.UNKNOWN


def test_illegal_beats_unknown() -> None:
    ops = [*_hard_history(), put(1, "a", "1", 0, 1), get(1, "a", "2", 2, 3)]
    result = check_linearizability(ops, max_steps=2000, shrink=False)
    assert result.keys["a"].verdict is Verdict.ILLEGAL
    assert result.verdict is Verdict.ILLEGAL


def test_budget_share_is_capped_by_what_is_left() -> None:
    budget = Budget(max_steps=100)
    budget.spend(90)
    assert budget.share(50).max_steps == 10
    assert not budget.spend(20)
    assert budget.exhausted()


# --- larger histories ----------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(3))
def test_simulated_histories_with_many_unknowns_are_ok(seed: int) -> None:
    run = simulate(random.Random(seed), n_ops=600, p_unknown=0.25, p_fail=0.1)
    result = check_linearizability(run.ops, timeout=30)
    assert result.verdict is Verdict.OK


@pytest.mark.parametrize("p_unknown", [0.05, 0.15])
def test_two_thousand_ops_fit_a_deterministic_step_budget(p_unknown: float) -> None:
    # A regression guard on the search's efficiency that no machine's speed can flake:
    # ~2,000 ops over 5 keys by 5 clients take tens of thousands of steps (tens of ms).
    run = simulate(random.Random(11), n_ops=2000, clients=5, keys=5, p_unknown=p_unknown)
    result = check_linearizability(run.ops, max_steps=200_000, timeout=None)
    assert result.verdict is Verdict.OK


def test_check_key_reports_what_it_searched() -> None:
    ops = [put(1, "x", "1", 0, 1, outcome=FAIL), get(1, "x", None, 2, 3, outcome=UNKNOWN)]
    out = check_key(ops, model.ABSENT, Budget())
    assert (out.verdict, out.searched) == (Verdict.OK, 0)
