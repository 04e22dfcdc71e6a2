"""Is a recorded key-value history linearizable? The entry point of the KV checks.

:func:`check_linearizability` splits the history by key (linearizability is local: Herlihy &
Wing 1990, Theorem 1; Porcupine's P-compositionality), searches each key with Lowe's
just-in-time algorithm under one shared budget (:mod:`.search`), and shrinks every illegal
key to a small witness (:mod:`.shrink`).

Splitting by key loses one cross-key guarantee: etcd's revision is a single counter for the
whole store. :func:`check_revision_order` checks it directly, in one sweep: an operation that
starts after another has returned must see a revision at least as high, and strictly higher
if it writes.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from .history import Operation, Outcome
from .model import ABSENT, key_state
from .search import Budget, Verdict, check_key
from .shrink import shrink_key


@dataclass(slots=True)
class KeyResult:
    key: str
    verdict: Verdict
    ops: int  # operations recorded on this key (all outcomes)
    searched: int  # those the search had to place (after model.prepare's reductions)
    steps: int
    elapsed: float  # seconds
    longest_prefix: list[Operation] = field(default_factory=list)  # ILLEGAL: deepest order
    stuck: Operation | None = None  # ILLEGAL: the op that could not be placed after it
    minimal: list[Operation] = field(default_factory=list)  # ILLEGAL: shrunk sub-history
    shrink_complete: bool = False  # the shrinker finished (not stopped by its budget)


@dataclass(slots=True, frozen=True)
class RevisionViolation:
    """Two operations whose revisions contradict their real-time order."""

    earlier: Operation  # returned before ``later`` was invoked
    later: Operation
    reason: str


@dataclass(slots=True)
class LinearizabilityResult:
    verdict: Verdict
    keys: dict[str, KeyResult]
    revision_violations: list[RevisionViolation]
    ops: int  # operations in the history
    steps: int
    elapsed: float  # seconds, including shrinking

    @property
    def illegal_keys(self) -> list[str]:
        return [k for k, r in self.keys.items() if r.verdict is Verdict.ILLEGAL]

    @property
    def first_illegal(self) -> KeyResult | None:
        keys = self.illegal_keys
        return self.keys[keys[0]] if keys else None


def partition(ops: Iterable[Operation]) -> dict[str, list[Operation]]:
    """Operations by key, each list in invocation order."""
    by_key: dict[str, list[Operation]] = defaultdict(list)
    for op in ops:
        by_key[op.key].append(op)
    for key_ops in by_key.values():
        key_ops.sort(key=lambda op: (op.invoke, op.id))
    return dict(sorted(by_key.items()))


def check_linearizability(
    ops: Iterable[Operation],
    *,
    initial: Mapping[str, tuple[str | None, int]] | None = None,
    timeout: float | None = 60.0,
    max_steps: int | None = None,
    shrink: bool = True,
    shrink_timeout: float | None = 10.0,
    shrink_max_steps: int | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> LinearizabilityResult:
    """Check a history against the key-value model, key by key, and its revision order.

    ``initial`` gives keys that existed before the history began, as (value, mod_revision)
    (default: all absent).
    The search shares one budget (``timeout``, ``max_steps``) over all keys; a key it could
    not finish is UNKNOWN. The verdict is ILLEGAL if any key is or the revision order is
    broken, else UNKNOWN if any key is, else OK. Each ILLEGAL key is shrunk with a budget of
    its own (``shrink_timeout``, ``shrink_max_steps``).
    """
    started = clock()
    history = list(ops)
    init = {key: key_state(*kv) for key, kv in (initial or {}).items()}
    budget = Budget(timeout=timeout, max_steps=max_steps, clock=clock).start()
    results: dict[str, KeyResult] = {}
    for key, key_ops in partition(history).items():
        if budget.exhausted():
            results[key] = KeyResult(key, Verdict.UNKNOWN, len(key_ops), 0, 0, 0.0)
            continue
        t0 = clock()
        key_init = init.get(key, ABSENT)
        out = check_key(key_ops, key_init, budget)
        res = KeyResult(key, out.verdict, len(key_ops), out.searched, out.steps, clock() - t0)
        if out.verdict is Verdict.ILLEGAL:
            res.longest_prefix, res.stuck = out.longest, out.stuck
            if shrink:
                sbudget = Budget(shrink_timeout, shrink_max_steps, clock).start()
                res.minimal, res.shrink_complete = shrink_key(key_ops, key_init, out, sbudget)
        results[key] = res
    violations = check_revision_order(history)
    verdicts = {r.verdict for r in results.values()}
    if violations:
        verdicts.add(Verdict.ILLEGAL)
    verdict = next((v for v in (Verdict.ILLEGAL, Verdict.UNKNOWN) if v in verdicts), Verdict.OK)
    return LinearizabilityResult(
        verdict=verdict, keys=results, revision_violations=violations, ops=len(history),
        steps=budget.steps, elapsed=clock() - started,
    )


def check_revision_order(ops: Iterable[Operation], limit: int = 20) -> list[RevisionViolation]:
    """Revisions against real time, across keys (at most ``limit`` violations reported).

    If A returned before B was invoked, B's revision is at least A's, and above it when B
    wrote; and no two writes share a revision (every op here touches one key, in its own
    transaction). Only acknowledged operations with a recorded revision take part.
    """
    acked = [(op.revision, op) for op in ops if op.outcome is Outcome.OK and op.revision is not None]
    out: list[RevisionViolation] = []
    writer_of: dict[int, Operation] = {}
    for rev, op in acked:
        if op.changed_key():
            other = writer_of.setdefault(rev, op)
            if other is not op and len(out) < limit:
                first, second = sorted((other, op), key=lambda o: o.invoke)
                out.append(RevisionViolation(first, second, f"two writes at revision {rev}"))
    by_return = sorted(acked, key=lambda ro: ro[1].return_time)
    floor, highest = 0, None  # the highest revision returned so far, and its op
    k = 0
    for rev, op in sorted(acked, key=lambda ro: ro[1].invoke):
        # Strictly before: touching intervals count as concurrent, as in the search.
        while k < len(by_return) and by_return[k][1].return_time < op.invoke:
            if highest is None or by_return[k][0] > floor:
                floor, highest = by_return[k]
            k += 1
        if highest is None or len(out) >= limit:
            continue
        if rev < floor or (op.changed_key() and rev == floor):
            reason = f"revision {rev} after an operation that returned revision {floor}"
            out.append(RevisionViolation(highest, op, reason))
    return out
