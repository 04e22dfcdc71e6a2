"""Histories of a simulated, correct store: the checkers' own test bench.

A discrete-event simulation of clients against one atomic etcd-like store. Each operation
takes effect at one random instant inside its [invoke, complete] interval, so the recorded
history is linearizable by construction; the checkers must say OK to every one of them, and
tests then corrupt a record to check that they stop saying so. Unknown-outcome operations
take effect (or not, at random) at a random instant after their invocation, possibly after the
client gave up; failed ones never do.

It also yields the ground truth the other checkers need: every committed change (for watch
streams), the final state and revision (for durability).
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field, replace

from .durability import FinalValue
from .history import Operation, OpKind, Outcome
from .watch import Change, EventType, WatchEvent, WatchRecord

DEFAULT_MIX: dict[OpKind, float] = {
    OpKind.GET: 0.35,
    OpKind.PUT: 0.25,
    OpKind.DELETE: 0.05,
    OpKind.CAS: 0.15,
    OpKind.TXN: 0.20,
}


@dataclass(slots=True)
class SimulatedRun:
    ops: list[Operation]  # in completion order, like a recorder's
    changes: list[Change]  # every committed change, in revision order (the ground truth)
    final: dict[str, FinalValue | None]  # every key's final state (None: absent)
    final_revision: int
    watches: list[WatchRecord] = field(default_factory=list)


@dataclass(slots=True)
class _Client:
    left: int  # operations still to issue
    seen: dict[str, tuple[str | None, int]] = field(default_factory=dict)  # last read per key


def simulate(
    rng: random.Random,
    *,
    n_ops: int = 200,
    clients: int = 5,
    keys: int = 5,
    p_fail: float = 0.02,
    p_unknown: float = 0.05,
    mix: dict[OpKind, float] | None = None,
    watchers: int = 2,
) -> SimulatedRun:
    """Simulate ``n_ops`` operations by ``clients`` clients over ``keys`` keys."""
    names = [f"k{i}" for i in range(keys)]
    kinds, weights = zip(*(mix or DEFAULT_MIX).items(), strict=True)
    store: dict[str, tuple[str, int]] = {}  # key -> (value, mod_revision)
    revision = 0
    changes: list[Change] = []
    ops: list[Operation] = []
    outputs: dict[int, dict[str, object]] = {}
    applied_at: dict[int, float] = {}  # change index -> when it was applied
    ok_ids: set[int] = set()  # ops that will be acknowledged
    people = [_Client(left=n_ops // clients + (1 if c < n_ops % clients else 0))
              for c in range(clients)]
    # (time, order, action, payload): order breaks ties deterministically.
    queue: list[tuple[float, int, str, object]] = []
    seq = 0

    def push(t: float, action: str, payload: object) -> None:
        nonlocal seq
        heapq.heappush(queue, (t, seq, action, payload))
        seq += 1

    for c in range(clients):
        push(rng.uniform(0.0, 1.0), "invoke", c)
    next_id = 0
    while queue:
        now, _, action, payload = heapq.heappop(queue)
        if action == "invoke":
            assert isinstance(payload, int)
            op = _new_op(rng, next_id, payload, now, people[payload], names, kinds, weights)
            next_id += 1
            duration = rng.uniform(0.1, 3.0)
            op = replace(op, complete=now + duration)
            roll = rng.random()
            if roll < p_fail:
                op = replace(op, outcome=Outcome.FAIL, error="refused")
            elif roll < p_fail + p_unknown:
                op = replace(op, error="timeout")  # stays UNKNOWN
                if rng.random() < 0.5:
                    push(now + rng.uniform(0.0, 3 * duration), "apply", op)
            else:
                ok_ids.add(op.id)  # becomes OK with its outputs when it completes
                push(rng.uniform(now, now + duration), "apply", op)
            push(now + duration, "complete", op)
        elif action == "apply":
            assert isinstance(payload, Operation)
            out, change, revision = _apply(store, revision, payload)
            outputs[payload.id] = out
            if change is not None:
                applied_at[len(changes)] = now
                changes.append(change)
        else:
            assert isinstance(payload, Operation)
            op = payload
            if op.id in ok_ids:
                op = replace(op, outcome=Outcome.OK, **outputs[op.id])  # type: ignore[arg-type]  # outputs holds Operation output fields
                _learn(people[op.client], op)
            ops.append(op)
            client = people[op.client]
            client.left -= 1
            if client.left > 0:
                push(now + rng.expovariate(4.0), "invoke", op.client)
    final: dict[str, FinalValue | None] = {k: None for k in names}
    for k, (v, mod) in store.items():
        final[k] = FinalValue(v, mod)
    watches = [_watch(rng, w, names, changes, applied_at, revision) for w in range(watchers)]
    return SimulatedRun(ops, changes, final, revision, watches)


def _new_op(
    rng: random.Random,
    op_id: int,
    client: int,
    now: float,
    me: _Client,
    names: list[str],
    kinds: tuple[OpKind, ...],
    weights: tuple[float, ...],
) -> Operation:
    kind = rng.choices(kinds, weights)[0]
    key = rng.choice(names)
    value = f"v{op_id}" if kind not in (OpKind.GET, OpKind.DELETE) else None
    expect_value: str | None = None
    expect_rev: int | None = None
    if kind in (OpKind.CAS, OpKind.TXN):
        # Compare against what this client last read: usually current, sometimes stale.
        last_value, last_rev = me.seen.get(key, (None, 0))
        if last_value is not None and rng.random() < 0.5:
            expect_value = last_value
        else:
            expect_rev = last_rev
    return Operation(
        id=op_id, client=client, kind=kind, key=key, invoke=now, complete=None,
        outcome=Outcome.UNKNOWN, value=value, expect_value=expect_value,
        expect_mod_revision=expect_rev,
    )


def _apply(
    store: dict[str, tuple[str, int]], revision: int, op: Operation
) -> tuple[dict[str, object], Change | None, int]:
    """Apply ``op`` atomically: (its outputs, the change it made, the new store revision)."""
    cur = store.get(op.key)
    if op.kind is OpKind.GET:
        read = {"read_value": cur[0] if cur else None, "read_mod_revision": cur[1] if cur else None}
        return {**read, "revision": revision}, None, revision
    if op.kind is OpKind.PUT:
        return _put(store, revision, op, {})
    if op.kind is OpKind.DELETE:
        if cur is None:
            return {"succeeded": False, "revision": revision}, None, revision
        del store[op.key]
        revision += 1
        change = Change(revision, op.key, EventType.DELETE, None, op.id)
        return {"succeeded": True, "revision": revision}, change, revision
    if op.expect_mod_revision is not None:
        holds = (cur[1] if cur else 0) == op.expect_mod_revision
    else:
        holds = cur is not None and cur[0] == op.expect_value
    if holds:
        return _put(store, revision, op, {"succeeded": True})
    out: dict[str, object] = {"succeeded": False, "revision": revision}
    if op.kind is OpKind.TXN:
        out["read_value"] = cur[0] if cur else None
        out["read_mod_revision"] = cur[1] if cur else None
    return out, None, revision


def _put(
    store: dict[str, tuple[str, int]], revision: int, op: Operation, out: dict[str, object]
) -> tuple[dict[str, object], Change, int]:
    assert op.value is not None
    revision += 1
    store[op.key] = (op.value, revision)
    change = Change(revision, op.key, EventType.PUT, op.value, op.id)
    return {**out, "revision": revision}, change, revision


def _learn(me: _Client, op: Operation) -> None:
    """What a client knows of a key after an acknowledged op (for its next compares)."""
    if op.kind is OpKind.GET or (op.kind is OpKind.TXN and op.succeeded is False):
        me.seen[op.key] = (op.read_value, op.read_mod_revision or 0)
    elif op.writes_value() and op.revision is not None:
        me.seen[op.key] = (op.value, op.revision)
    elif op.kind is OpKind.DELETE:
        me.seen[op.key] = (None, 0)


def _watch(
    rng: random.Random,
    w: int,
    names: list[str],
    changes: list[Change],
    applied_at: dict[int, float],
    final_revision: int,
) -> WatchRecord:
    """A correct watcher: every other one watches everything, the rest one key from a
    random revision on."""
    if w % 2 == 0:
        rec = WatchRecord(watcher=w, key="", range_end="\0", start_revision=1)
    else:
        start = rng.randint(1, max(1, final_revision))
        rec = WatchRecord(watcher=w, key=rng.choice(names), start_revision=start)
    for i, c in enumerate(changes):
        if c.revision >= rec.start_revision and rec.covers(c.key):
            received = applied_at[i] + rng.uniform(0.0, 0.5)
            rec.events.append(WatchEvent(c.revision, c.key, c.type, c.value, received))
    rec.progress_revision = final_revision
    return rec
