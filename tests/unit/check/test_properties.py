"""Property tests: simulated correct stores are OK, corrupted ones ILLEGAL, and the search
(with all its reductions and pruning) agrees with brute force on small random histories."""

from __future__ import annotations

import dataclasses
import functools
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minietcd.lab.check import model
from minietcd.lab.check.history import Operation, OpKind, Outcome
from minietcd.lab.check.linearizability import check_linearizability
from minietcd.lab.check.search import Budget, Verdict, check_key
from minietcd.lab.check.simulate import SimulatedRun, simulate

from .test_linearizability import _stale_read

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

runs = st.builds(
    lambda seed, n, clients, keys, p_unknown, p_fail: simulate(
        random.Random(seed), n_ops=n, clients=clients, keys=keys, p_unknown=p_unknown,
        p_fail=p_fail,
    ),
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 120),
    clients=st.integers(1, 6),
    keys=st.integers(1, 3),
    p_unknown=st.sampled_from([0.0, 0.1, 0.3]),
    p_fail=st.sampled_from([0.0, 0.1]),
)


@SETTINGS
@given(runs)
def test_simulated_linearizable_histories_are_ok(run: SimulatedRun) -> None:
    result = check_linearizability(run.ops, timeout=30)
    assert result.verdict is Verdict.OK, result


@SETTINGS
@given(runs, st.randoms(use_true_random=False))
def test_one_read_of_an_unwritten_value_is_illegal(run: SimulatedRun, rng: random.Random) -> None:
    reads = [
        i for i, op in enumerate(run.ops) if op.kind is OpKind.GET and op.outcome is Outcome.OK
    ]
    if not reads:
        return
    i = rng.choice(reads)
    bad = list(run.ops)
    bad[i] = dataclasses.replace(bad[i], read_value="corrupt")
    result = check_linearizability(bad, timeout=30, shrink_timeout=5)
    assert result.verdict is Verdict.ILLEGAL
    assert result.illegal_keys == [bad[i].key]
    assert bad[i] in result.keys[bad[i].key].minimal


@SETTINGS
@given(runs, st.randoms(use_true_random=False))
def test_one_stale_read_is_illegal(run: SimulatedRun, rng: random.Random) -> None:
    stale = _stale_read(run.ops, rng)
    if stale is None:
        return  # no read has a certainly-overwritten value before it
    bad, corrupted = stale
    result = check_linearizability(bad, timeout=30, shrink_timeout=5)
    assert result.verdict is Verdict.ILLEGAL
    minimal = result.keys[corrupted.key].minimal
    assert check_linearizability(minimal).verdict is Verdict.ILLEGAL


# --- the search against brute force --------------------------------------------------------


def brute_force(ops: list[Operation], initial: model.KeyState) -> bool:
    """Linearizability by definition: some order of the ops that must have taken effect, and
    of any subset of the unknown ones, that respects real time and the model."""
    ops = [
        op for op in ops
        if op.outcome is not Outcome.FAIL
        and not (op.kind is OpKind.GET and op.outcome is not Outcome.OK)
    ]

    @functools.cache
    def extend(left: frozenset[int], state: model.KeyState) -> bool:
        if all(ops[i].outcome is not Outcome.OK for i in left):
            return True
        for i in left:
            # Nothing still to place may have returned before op i was invoked.
            if any(ops[j].return_time < ops[i].invoke for j in left):
                continue
            for nxt in model.step(state, ops[i]):
                if extend(left - {i}, nxt):
                    return True
        return False

    return extend(frozenset(range(len(ops))), initial)


VALUES = ["a", "b", "c"]


@st.composite
def small_histories(draw: st.DrawFn) -> list[Operation]:
    """Up to 7 ops on one key, with repeated values and random outputs: mostly illegal,
    often legal, and full of the corner cases the reductions must get right."""
    ops = []
    for i in range(draw(st.integers(1, 7))):
        kind = draw(st.sampled_from(list(OpKind)))
        outcome = draw(st.sampled_from([Outcome.OK, Outcome.OK, Outcome.UNKNOWN, Outcome.FAIL]))
        t0 = draw(st.integers(0, 8))
        t1 = t0 + draw(st.integers(0, 4))
        fields: dict[str, object] = {}
        if kind is not OpKind.GET and kind is not OpKind.DELETE:
            fields["value"] = draw(st.sampled_from(VALUES))
        if kind in (OpKind.CAS, OpKind.TXN):
            if draw(st.booleans()):
                fields["expect_value"] = draw(st.sampled_from(VALUES))
            else:
                fields["expect_mod_revision"] = draw(st.integers(0, 3))
        if outcome is Outcome.OK:
            fields["revision"] = draw(st.one_of(st.none(), st.integers(1, 5)))
            if kind in (OpKind.CAS, OpKind.TXN, OpKind.DELETE):
                fields["succeeded"] = draw(st.booleans())
            if kind is OpKind.GET or (kind is OpKind.TXN and not fields["succeeded"]):
                fields["read_value"] = draw(st.sampled_from([None, *VALUES]))
                fields["read_mod_revision"] = draw(st.one_of(st.none(), st.integers(1, 5)))
        ops.append(Operation(
            id=i, client=i, kind=kind, key="x", invoke=t0, complete=t1, outcome=outcome,
            **fields,  # type: ignore[arg-type]  # Operation's fields
        ))
    return ops


@settings(max_examples=500, deadline=None)
@given(small_histories(), st.sampled_from([model.ABSENT, model.key_state("a", 1)]))
def test_search_agrees_with_brute_force(ops: list[Operation], initial: model.KeyState) -> None:
    expected = Verdict.OK if brute_force(ops, initial) else Verdict.ILLEGAL
    assert check_key(ops, initial, Budget()).verdict is expected
