"""Shrink an illegal key history to a handful of operations that show the violation.

A 2,000-operation failure is unreadable; the few operations that cannot be ordered are what
a report should show. Two passes, both under their own :class:`~.search.Budget`:

1. **Shortest illegal prefix.** Linearizability is prefix-closed: if a history is
   linearizable, so is every prefix of it, when the operations still running at the cut are
   counted as unknown-outcome (they may or may not have taken effect). So the first
   response at which the history stops being linearizable, the *culprit*, is found by
   bisection over the response times, and everything invoked after it goes. This pass is
   sound: an illegal prefix proves the whole history illegal.
2. **Greedy deletion** (the complement step of Zeller's delta debugging, "ddmin"): try
   dropping chunks of operations, halving the chunk size, and keep every drop after which
   the sub-history still fails *at the culprit*: illegal, and linearizable just before the
   culprit's response. Deletion is not sound on its own (removing the write that explains a
   read makes a new violation), and two guards keep the witness about the original
   failure: a drop that creates an earlier violation (an absent read whose delete was
   dropped, a failed CAS whose cause was dropped) is refused, and so is dropping the
   writer of a value or mod_revision that the culprit observed, which would otherwise turn
   every stale read into "a read of a value nobody wrote".

The result is a witness for humans; the verdict itself rests on the full search.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

from .history import WRITE_KINDS, Operation, Outcome
from .model import KeyState
from .search import Budget, SearchOutcome, Verdict, check_key

# Each trial search gets at most this many steps of the shrink budget, so that one hard
# candidate (most of them are settled in a few hundred) cannot eat it all.
_TRIAL_STEPS = 200_000


def shrink_key(
    ops: Sequence[Operation], initial: KeyState, found: SearchOutcome, budget: Budget
) -> tuple[list[Operation], bool]:
    """A small sub-history of ``ops`` (illegal, per ``found``) that fails where ``ops``
    first fails; and whether the shrink ran to the end rather than stopping at its budget."""
    times = sorted({op.return_time for op in ops if math.isfinite(op.return_time)})
    k = _culprit(ops, times, initial, found, budget)
    if k is None:
        return list(ops), False
    before = times[k - 1] if k > 0 else -math.inf
    current = cut_at(ops, times[k])

    def still_fails(candidate: list[Operation]) -> bool:
        return (
            _keeps_writers(candidate, current, times[k])
            and _verdict(candidate, initial, budget) is Verdict.ILLEGAL
            and _verdict(cut_at(candidate, before), initial, budget) is Verdict.OK
        )

    witness, complete = _delete_greedily(current, still_fails, budget)
    return sorted(witness, key=lambda op: (op.invoke, op.id)), complete


def cut_at(ops: Sequence[Operation], t: float) -> list[Operation]:
    """The prefix of ``ops`` up to instant ``t``: what was invoked by then; what had not
    returned by then becomes unknown-outcome (its outputs are still shown in reports)."""
    out: list[Operation] = []
    for op in ops:
        if op.invoke > t:
            continue
        if op.outcome is Outcome.OK and op.return_time > t:
            op = dataclasses.replace(
                op, outcome=Outcome.UNKNOWN, error="cut: returned after the failing response"
            )
        out.append(op)
    return out


def _verdict(ops: Sequence[Operation], initial: KeyState, budget: Budget) -> Verdict:
    trial = budget.share(_TRIAL_STEPS)
    verdict = check_key(ops, initial, trial).verdict
    budget.spend(trial.steps)
    return verdict


def _culprit(
    ops: Sequence[Operation],
    times: list[float],
    initial: KeyState,
    found: SearchOutcome,
    budget: Budget,
) -> int | None:
    """Index in ``times`` of the first response whose prefix is illegal (None: out of
    budget before one was confirmed)."""
    if not times:
        return None
    # Bisection keeps times[hi] illegal. The whole history is (cutting at the last response
    # only turns trailing unknowns' invocations away, which cannot matter); the search
    # stopped at the response of ``found.stuck``, which is usually illegal already and
    # narrows the bisection at once.
    hi = len(times) - 1
    if found.stuck is not None and math.isfinite(found.stuck.return_time):
        k = times.index(found.stuck.return_time)
        if _verdict(cut_at(ops, times[k]), initial, budget) is Verdict.ILLEGAL:
            hi = k
    lo = 0
    while lo < hi:
        if budget.exhausted():
            return None
        mid = (lo + hi) // 2
        if _verdict(cut_at(ops, times[mid]), initial, budget) is Verdict.ILLEGAL:
            hi = mid
        else:
            lo = mid + 1
    return hi


def _delete_greedily(
    ops: list[Operation], keeps_failing: Callable[[list[Operation]], bool], budget: Budget
) -> tuple[list[Operation], bool]:
    current = ops
    chunks = 2
    while len(current) > 1:
        size = math.ceil(len(current) / chunks)
        for start in range(0, len(current), size):
            if budget.exhausted():
                return current, False
            candidate = current[:start] + current[start + size :]
            if keeps_failing(candidate):
                current = candidate
                chunks = max(chunks - 1, 2)
                break
        else:
            if size == 1:
                break
            chunks = min(len(current), chunks * 2)
    return current, True


def _keeps_writers(
    candidate: Sequence[Operation], current: Sequence[Operation], culprit_time: float
) -> bool:
    """Whether every value and mod_revision the culprit observed still has its writer, if
    it had one. (For the other ops the "no earlier violation" test already implies it.)"""
    values: set[str | None] = set()
    revisions: set[int | None] = set()
    for op in candidate:
        if op.return_time == culprit_time:
            values |= {op.read_value, op.expect_value}
            revisions |= {op.read_mod_revision, op.expect_mod_revision}
    had = {op.id for op in current if _writes(op, values, revisions)}
    has = {op.id for op in candidate if _writes(op, values, revisions)}
    return had <= has


def _writes(op: Operation, values: set[str | None], revisions: set[int | None]) -> bool:
    """Whether ``op`` may be the write that left one of ``values`` or ``revisions``."""
    if op.kind not in WRITE_KINDS:
        return False
    if op.value in values:
        return True
    return op.writes_value() and op.revision is not None and op.revision in revisions
