"""The sequential specification the linearizability checker holds a key's history against.

One key of etcd's store, seen through the operations of :mod:`.history`, is a register with a
revision. Its state is ``(value, mod_revision, floor)``:

* ``value``: the value, or None when the key is absent;
* ``mod_revision``: the revision of its last write, 0 when absent (0 is what etcd compares
  an absent key's mod_revision with: ``mod_revision == 0`` is "create"), or None, a
  *wildcard*, when the last write was one whose revision we never learnt (an unknown-outcome
  write, or an acknowledged one whose recorder kept no revision);
* ``floor``: the highest revision the key is known to have reached. Revisions only grow, so
  the next write's revision, and a wildcard, lie above it; a response's header revision is
  at least it. It also remembers a deleted key's last revision.

The wildcard stands for every revision above the floor; the first read or compare that
reveals it binds it. This keeps the model sound (never a false ILLEGAL) at the price of
skipping some revision checks until the binding.

:func:`step` is nondeterministic only where the history does not say what happened: an
unknown-outcome CAS may find its compare true or false, including against a wildcard. It
returns every state the operation may lead to; an empty tuple means the operation cannot
take effect in this state with the outputs it reported. This is Porcupine's
"nondeterministic model" (anishathalye/porcupine, model.go).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace

from .history import WRITE_KINDS, Operation, OpKind, Outcome

KeyState = tuple[str | None, int | None, int]  # (value, mod_revision or None, floor)
ABSENT: KeyState = (None, 0, 0)


def key_state(value: str | None, mod_revision: int = 0) -> KeyState:
    """The state of a key that holds ``value`` (None: absent) written at ``mod_revision``."""
    if value is None:
        return (None, 0, mod_revision)
    return (value, mod_revision, mod_revision)


def step(state: KeyState, op: Operation) -> tuple[KeyState, ...]:
    """The states ``op`` may leave behind when applied, atomically, in ``state``."""
    if op.outcome is not Outcome.OK:
        return _step_unknown(state, op)
    kind = op.kind
    if kind is OpKind.GET:
        seen = _observe(state, op.read_value, op.read_mod_revision, op.revision)
        return () if seen is None else (seen,)
    if kind is OpKind.PUT:
        return _written(state[2], op.value, op.revision)
    if kind is OpKind.DELETE:
        present = state[0] is not None
        if op.succeeded is not None and op.succeeded != present:
            return ()
        if not present:
            return () if _header_too_low(state, op.revision) else (state,)
        return _written(state[2], None, op.revision)
    return _step_cas(state, op)


def _step_cas(state: KeyState, op: Operation) -> tuple[KeyState, ...]:
    holds = compare(state, op)
    if op.succeeded:
        if holds is False:
            return ()
        floor = state[2]
        if holds is None:  # the compare reveals the wildcard: it was expect_mod_revision
            assert op.expect_mod_revision is not None
            floor = op.expect_mod_revision
        return _written(floor, op.value, op.revision)
    if holds is True:
        return ()
    if op.kind is OpKind.TXN:
        # The else branch read the key in the same revision the compare failed in.
        seen = _observe(state, op.read_value, op.read_mod_revision, op.revision)
        return () if seen is None else (seen,)
    return () if _header_too_low(state, op.revision) else (state,)


def _step_unknown(state: KeyState, op: Operation) -> tuple[KeyState, ...]:
    # Outputs are unknown, so nothing constrains the operation: it writes if it may.
    if op.kind is OpKind.GET:
        return (state,)
    if op.kind is OpKind.PUT:
        return ((op.value, None, state[2]),)
    if op.kind is OpKind.DELETE:
        return ((None, 0, state[2]),)
    holds = compare(state, op)
    if holds is True:
        return ((op.value, None, state[2]),)
    if holds is False:
        return (state,)
    assert op.expect_mod_revision is not None
    return ((op.value, None, op.expect_mod_revision), state)


def _written(floor: int, value: str | None, revision: int | None) -> tuple[KeyState, ...]:
    """The state after an acknowledged write of ``value`` (None: a delete) at ``revision``."""
    if revision is None:
        return ((value, None if value is not None else 0, floor),)
    if revision <= floor:
        return ()  # revisions only grow
    return ((value, revision if value is not None else 0, revision),)


def compare(state: KeyState, op: Operation) -> bool | None:
    """Whether a cas/txn's compare holds in ``state``; None when a wildcard hides it."""
    value, mod_revision, floor = state
    if op.expect_mod_revision is not None:
        if mod_revision is None:
            # A wildcard is some revision above the floor (never 0: the key is present).
            return None if op.expect_mod_revision > floor else False
        return mod_revision == op.expect_mod_revision
    # etcd: a value compare on an absent key is always false (etcd's applyCompare).
    return value is not None and value == op.expect_value


def _observe(
    state: KeyState, value: str | None, mod_revision: int | None, header: int | None
) -> KeyState | None:
    """The state after a read that returned (value, mod_revision) under header revision
    ``header``, or None if the read cannot have happened in ``state``."""
    cur_value, cur_rev, floor = state
    if value != cur_value:
        return None
    if value is None:
        if mod_revision not in (None, 0):
            return None
    elif mod_revision is not None and mod_revision != cur_rev:
        if cur_rev is not None or mod_revision <= floor:
            return None
        state = (cur_value, mod_revision, mod_revision)  # bind the wildcard
    return None if _header_too_low(state, header) else state


def _header_too_low(state: KeyState, header: int | None) -> bool:
    """A response's header revision is at least the key's last revision."""
    return header is not None and header < state[2]


# --- preparing one key's history ---------------------------------------------------------------


# Stands for every value that no operation of the key ever mentions (see ``prepare``).
UNOBSERVED = "\x00unobserved"

GROUP_NONE = -1
GROUP_PUT = 0  # optional puts of unobserved values: identical effects
GROUP_DELETE = 1  # optional deletes: identical effects


@dataclass(slots=True)
class Prepared:
    """One key's operations as the search takes them (index for index)."""

    ops: list[Operation]  # as searched: unobserved values replaced by UNOBSERVED
    originals: list[Operation]  # as recorded
    returns: list[float]  # latest instant each may take effect; +inf: optional
    # Interchangeable classes (GROUP_*): once invoked, any member of a class can stand in
    # for any other, so the search only ever places the earliest unplaced one.
    groups: list[int]


def prepare(ops: Sequence[Operation], initial: KeyState) -> Prepared:
    """One key's operations as the search needs them.

    Reductions, each of which leaves the verdict unchanged:

    1. Failed operations never took effect, and an unknown-outcome read told us nothing:
       both are dropped (Jepsen, Porcupine and etcd's robustness checker do the same).
    2. An unknown-outcome write of a value ``v`` that is the *only* possible source of ``v``
       and whose ``v`` an acknowledged operation observed must have taken effect before the
       earliest such observer returned. It gets that return time instead of +inf, so it is no
       longer optional and pending for the rest of the history. (etcd's robustness tests
       patch unknown puts the same way, from what reads and watches saw.)
    3. An unknown-outcome write whose value no operation mentions (reads or compares) can
       only matter by its mere existence: by making an acknowledged CAS fail, or a delete
       find the key, or a compare against a revision nobody else wrote succeed. Where the
       key's history holds none of those, the write is dropped: any linearization that
       places it stays legal without it.
    4. Where such writes must stay, their values are all replaced by one token: no
       operation can tell them apart, so states that differ only in which of them was
       last are one state to the memo. Those that are plain puts, and unknown-outcome
       deletes, are then interchangeable (``Prepared.groups``).

    Pending unknowns are what makes the search exponential (each stays concurrent with
    everything after it), hence the care.
    """
    kept = [
        op
        for op in ops
        if op.outcome is not Outcome.FAIL
        and not (op.kind is OpKind.GET and op.outcome is not Outcome.OK)
    ]
    writers: dict[str, int] = defaultdict(int)
    observed: dict[str, float] = defaultdict(lambda: math.inf)  # value -> earliest observer
    mentioned: set[str | None] = set()
    for op in kept:
        if op.kind in WRITE_KINDS and op.value is not None:
            writers[op.value] += 1
        mentioned |= {op.read_value, op.expect_value}
        v = _observation(op)
        if v is not None and op.complete is not None:
            observed[v] = min(observed[v], op.complete)
    sensitive = _existence_sensitive(kept)
    canonical = not any(op.value == UNOBSERVED for op in kept)
    out = Prepared([], [], [], [])
    for op in kept:
        ret = op.return_time
        searched = op
        if op.outcome is not Outcome.OK and op.kind in WRITE_KINDS and op.value is not None:
            v = op.value
            if v not in mentioned:
                if not sensitive:
                    continue  # reduction 3
                if canonical:
                    searched = replace(op, value=UNOBSERVED)  # reduction 4
            elif writers[v] == 1 and v != initial[0] and op.invoke <= observed[v]:
                ret = observed[v]  # reduction 2 (inf when no acknowledged op observed v)
        group = GROUP_NONE
        if math.isinf(ret):
            if op.kind is OpKind.DELETE:
                group = GROUP_DELETE
            elif op.kind is OpKind.PUT and searched is not op:
                group = GROUP_PUT
        out.ops.append(searched)
        out.originals.append(op)
        out.returns.append(ret)
        out.groups.append(group)
    return out


def _observation(op: Operation) -> str | None:
    """The value an acknowledged ``op`` saw in its key, if it saw one."""
    if op.outcome is not Outcome.OK:
        return None
    if op.kind in (OpKind.CAS, OpKind.TXN) and op.succeeded:
        return op.expect_value
    if op.kind is OpKind.GET or (op.kind is OpKind.TXN and op.succeeded is False):
        return op.read_value
    return None


def _existence_sensitive(ops: Sequence[Operation]) -> bool:
    """Whether an unobserved write could still be what explains some acknowledged output."""
    explained_revisions = {0}
    for op in ops:
        if op.outcome is Outcome.OK:
            if op.revision is not None and op.writes_value():
                explained_revisions.add(op.revision)
            if op.read_mod_revision is not None:
                explained_revisions.add(op.read_mod_revision)
    for op in ops:
        ok = op.outcome is Outcome.OK
        if ok and op.kind is OpKind.CAS and op.succeeded is False:
            return True  # no read in the else branch: any intervening write could explain it
        # (A failed txn is not: its else branch read the state its compare failed in.)
        if ok and op.kind is OpKind.DELETE and op.succeeded is True:
            return True  # it found the key present: perhaps thanks to the unobserved write
        if (
            op.kind in (OpKind.CAS, OpKind.TXN)
            and op.expect_mod_revision is not None
            and op.expect_mod_revision not in explained_revisions
        ):
            return True  # compares against a revision only an unobserved write could have had
    return False
