"""The linearizability search over one key's history, and the budget that bounds it.

A history is linearizable (Herlihy & Wing, 1990) if every operation can be given a single
instant between its invocation and its response such that, taken in that order, the
operations are a legal sequential run of the model (:mod:`.model`). Deciding it is
NP-complete, so the search is made cheap in the common case:

* **Per-key partitioning.** Every operation touches one key, and linearizability is local
  (Herlihy & Wing, Theorem 1): a history is linearizable iff each key's sub-history is.
  Porcupine (anishathalye/porcupine) calls this P-compositionality, after Horn & Kroening,
  "Faster linearizability checking via P-compositionality" (2015). Each key is searched alone.
* **Just-in-time linearization** (Wing & Gong, "Testing and verifying concurrent objects",
  1993, as improved by Lowe, "Testing for linearizability", 2017): walk the invocations and
  responses in time order, keeping the not-yet-linearized ones in a doubly linked list.
  At an invocation, try to linearize that operation now; at a response whose operation is
  not yet linearized, backtrack, because it must have taken effect before returning.
* **Memoisation** (Lowe; Porcupine's ``cache``): a (set of linearized operations, model
  state) pair seen once need not be explored again. The set is a bitset (a Python int).

Unknown-outcome operations return at +inf: they may be linearized anywhere after their
invocation, and once only they remain they may be left out (never took effect).

On ILLEGAL the search reports the deepest partial linearization it found (what Porcupine
draws in its visualisation) and the operation that could not follow it.
"""

from __future__ import annotations

import enum
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from . import model
from .history import Operation
from .model import KeyState


class Verdict(enum.StrEnum):
    OK = "ok"  # linearizable
    ILLEGAL = "illegal"  # not linearizable: no order of the operations explains the outputs
    UNKNOWN = "unknown"  # the budget ran out before a verdict


@dataclass(slots=True)
class Budget:
    """A time and step allowance, shared by every search it is handed to.

    A step is one visit to an invocation or response in the search loop; steps make a budget
    deterministic (tests), time makes it practical (reports). Either limit may be None.
    """

    timeout: float | None = None  # seconds, counted from ``start``
    max_steps: int | None = None
    clock: Callable[[], float] = time.monotonic
    steps: int = 0  # spent so far
    deadline: float | None = None  # clock reading at which time is up (set by ``start``)

    def start(self) -> Budget:
        if self.deadline is None and self.timeout is not None:
            self.deadline = self.clock() + self.timeout
        return self

    def spend(self, steps: int) -> bool:
        """Record ``steps`` more; False once the allowance is exhausted."""
        self.steps += steps
        if self.max_steps is not None and self.steps > self.max_steps:
            return False
        return self.deadline is None or self.clock() < self.deadline

    def exhausted(self) -> bool:
        return not self.spend(0)

    def share(self, max_steps: int) -> Budget:
        """A fresh budget of at most ``max_steps`` (and what is left here), same deadline.
        The caller charges what it spent back with ``spend``."""
        if self.max_steps is not None:
            max_steps = max(0, min(max_steps, self.max_steps - self.steps))
        return Budget(max_steps=max_steps, clock=self.clock, deadline=self.deadline)


@dataclass(slots=True)
class SearchOutcome:
    """What one key's search found."""

    verdict: Verdict
    searched: int  # operations the search had to place
    steps: int  # spent by this search (also charged to the budget)
    longest: list[Operation]  # the deepest partial linearization, in linearization order
    stuck: Operation | None  # the operation whose response stopped that linearization


# Charge the budget (and read the clock) once per this many steps: a clock read costs about
# as much as a step.
_CHECK_EVERY = 1024


def search(prepared: model.Prepared, initial: KeyState, budget: Budget) -> SearchOutcome:
    """Lowe's just-in-time linearization search over one key's prepared operations.

    ``prepared.returns[i]`` is the latest instant op i may take effect; +inf makes it
    *optional*: it may take effect at any point after its invocation, or never.
    """
    ops, returns, groups = prepared.ops, prepared.returns, prepared.groups
    n = len(ops)
    # Entry 2i is op i's invocation, 2i+1 its response; 2n and 2n+1 are head and tail.
    # Calls sort before responses at the same instant: touching intervals overlap, as in
    # Porcupine, so equal timestamps never produce a spurious ILLEGAL.
    events = sorted(
        [(op.invoke, 0, i) for i, op in enumerate(ops)] + [(returns[i], 1, i) for i in range(n)]
    )
    head, tail = 2 * n, 2 * n + 1
    nxt = [0] * (2 * n + 2)
    prv = [0] * (2 * n + 2)
    last = head
    for _, is_return, i in events:
        entry = 2 * i + is_return
        nxt[last], prv[entry] = entry, last
        last = entry
    nxt[last], prv[tail] = tail, last
    optional = [math.isinf(r) for r in returns]
    required_left = optional.count(False)
    # Symmetry: members of an interchangeable group are placed in invocation order only,
    # so the placed ones are always a prefix of ``members[g]``, ``placed[g]`` long.
    members: list[list[int]] = [[], []]
    for _, is_return, i in events:
        if not is_return and groups[i] >= 0:
            members[groups[i]].append(i)
    placed = [0, 0]

    step = model.step
    state = initial
    # The linearized ops, as two bitsets: those that must take effect and optional ones.
    req = opt = 0
    # Memo of explored configurations: (req, state) -> the opt sets explored with them.
    # Lowe's and Porcupine's memo keys on (linearized set, state). We add a dominance rule
    # for optional ops: (req, s, opt) can do everything (req, s, opt + X) can, by simply
    # never placing X, so once the former is explored the latter need not be. Without it,
    # every subset of the pending unknown-outcome writes is a configuration of its own and
    # an illegal history with a dozen of them takes minutes instead of milliseconds.
    seen: dict[tuple[int, KeyState], list[int]] = {}
    # Linearized ops in order: (op index, state before it, states it may still lead to,
    # the pass it was placed in).
    stack: list[tuple[int, KeyState, list[KeyState], int]] = []
    longest: list[int] = []
    stuck = -1
    steps = 0
    verdict = Verdict.UNKNOWN
    # The calls before the first response are tried in two passes: required ops first, then
    # optional ones, because an unknown-outcome op that never took effect is the common
    # case and trying it first explores the configurations the dominance rule then prunes.
    pass_ = 0
    entry = nxt[head]
    while True:
        steps += 1
        if steps % _CHECK_EVERY == 0 and not budget.spend(_CHECK_EVERY):
            break
        if required_left == 0:
            # Every op that must take effect is placed; the optional rest never took effect.
            verdict = Verdict.OK
            break
        i = entry >> 1
        if not entry & 1:
            g = groups[i]
            if optional[i] != (pass_ == 1) or (g >= 0 and members[g][placed[g]] != i):
                entry = nxt[entry]
                continue
            # An invocation: try to place op i now, in each state it may lead to.
            bit = 1 << i
            new_req, new_opt = (req, opt | bit) if optional[i] else (req | bit, opt)
            nexts = [s for s in step(state, ops[i]) if not _dominated(seen, new_req, s, new_opt)]
            if not nexts:
                entry = nxt[entry]
                continue
            seen.setdefault((new_req, nexts[0]), []).append(new_opt)
            stack.append((i, state, nexts[1:], pass_))
            state, req, opt = nexts[0], new_req, new_opt
            required_left -= not optional[i]
            if g >= 0:
                placed[g] += 1
            # Lift both entries of op i out of the list. They keep their own pointers
            # (Knuth's dancing links), so undoing lifts in reverse order restores the list.
            ret = entry + 1
            nxt[prv[entry]], prv[nxt[entry]] = nxt[entry], prv[entry]
            nxt[prv[ret]], prv[nxt[ret]] = nxt[ret], prv[ret]
            entry, pass_ = nxt[head], 0
            continue
        # The first response in the list: op i must be placed before it returns.
        if pass_ == 0:
            entry, pass_ = nxt[head], 1
            continue
        if len(stack) > len(longest) or stuck < 0:
            longest = [frame[0] for frame in stack]
            stuck = i
        if not stack:
            verdict = Verdict.ILLEGAL
            break
        # Backtrack: undo the latest placement; try its other outcomes, else move past it.
        j, state, alternatives, pass_ = stack.pop()
        bit = 1 << j
        if optional[j]:
            opt ^= bit
        else:
            req ^= bit
            required_left += 1
        new_req, new_opt = (req, opt | bit) if optional[j] else (req | bit, opt)
        alternatives = [s for s in alternatives if not _dominated(seen, new_req, s, new_opt)]
        if alternatives:
            seen.setdefault((new_req, alternatives[0]), []).append(new_opt)
            stack.append((j, state, alternatives[1:], pass_))
            state, req, opt = alternatives[0], new_req, new_opt
            required_left -= not optional[j]
            entry, pass_ = nxt[head], 0
            continue
        if groups[j] >= 0:
            placed[groups[j]] -= 1
        call, ret = 2 * j, 2 * j + 1
        nxt[prv[ret]] = prv[nxt[ret]] = ret
        nxt[prv[call]] = prv[nxt[call]] = call
        entry = nxt[call]
    budget.spend(steps % _CHECK_EVERY)
    return SearchOutcome(
        verdict=verdict,
        searched=n,
        steps=steps,
        longest=[prepared.originals[i] for i in longest],
        stuck=prepared.originals[stuck] if stuck >= 0 else None,
    )


def _dominated(
    seen: dict[tuple[int, KeyState], list[int]], req: int, s: KeyState, opt: int
) -> bool:
    """Whether an explored configuration (req, s, o) has o a subset of ``opt``."""
    explored = seen.get((req, s))
    return explored is not None and any(o | opt == opt for o in explored)


def check_key(ops: Sequence[Operation], initial: KeyState, budget: Budget) -> SearchOutcome:
    """Prepare one key's operations (:func:`model.prepare`) and search them."""
    return search(model.prepare(ops, initial), initial, budget)
