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
    return _Search(prepared, initial).run(budget)


class _Events:
    """The invocations and responses not yet linearized, in time order, as a doubly linked
    list over entry numbers: 2i is op i's invocation, 2i+1 its response, and ``head`` and
    ``tail`` are sentinels. Lifting an op out keeps its entries' own pointers (Knuth's
    dancing links), so lifts undone in reverse order restore the list exactly."""

    __slots__ = ("head", "nxt", "prv", "tail")

    def __init__(self, invokes: Sequence[float], returns: Sequence[float]) -> None:
        n = len(invokes)
        # Calls sort before responses at the same instant: touching intervals overlap, as
        # in Porcupine, so equal timestamps never produce a spurious ILLEGAL.
        order = sorted([(t, 0, i) for i, t in enumerate(invokes)] +
                       [(t, 1, i) for i, t in enumerate(returns)])
        self.head, self.tail = 2 * n, 2 * n + 1
        self.nxt = [0] * (2 * n + 2)
        self.prv = [0] * (2 * n + 2)
        last = self.head
        for _, is_return, i in order:
            entry = 2 * i + is_return
            self.nxt[last], self.prv[entry] = entry, last
            last = entry
        self.nxt[last], self.prv[self.tail] = self.tail, last

    def calls(self) -> list[int]:
        """Op indices in invocation order."""
        out, entry = [], self.nxt[self.head]
        while entry != self.tail:
            if not entry & 1:
                out.append(entry >> 1)
            entry = self.nxt[entry]
        return out

    def lift(self, i: int) -> None:
        nxt, prv = self.nxt, self.prv
        for e in (2 * i, 2 * i + 1):
            nxt[prv[e]], prv[nxt[e]] = nxt[e], prv[e]

    def unlift(self, i: int) -> None:
        nxt, prv = self.nxt, self.prv
        for e in (2 * i + 1, 2 * i):
            nxt[prv[e]] = prv[nxt[e]] = e


class _Search:
    """The state of one search; :meth:`run` is the loop."""

    def __init__(self, prepared: model.Prepared, initial: KeyState) -> None:
        self.prepared = prepared
        self.ops = prepared.ops
        self.events = _Events([op.invoke for op in prepared.ops], prepared.returns)
        self.optional = [math.isinf(r) for r in prepared.returns]
        self.required_left = self.optional.count(False)
        self.groups = prepared.groups
        # Symmetry: members of an interchangeable group are placed in invocation order only,
        # so the placed ones are always a prefix of ``members[g]``, ``placed[g]`` long.
        self.members: list[list[int]] = [[], []]
        for i in self.events.calls():
            if self.groups[i] >= 0:
                self.members[self.groups[i]].append(i)
        self.placed = [0, 0]
        self.state = initial
        # The linearized ops, as two bitsets: those that must take effect, optional ones.
        self.req = 0
        self.opt = 0
        # Memo of explored configurations: (req, state) -> the opt sets explored with them.
        # Lowe's and Porcupine's memo keys on (linearized set, state). We add a dominance
        # rule for optional ops: (req, s, opt) can do everything (req, s, opt + X) can, by
        # never placing X, so once the former is explored the latter need not be. Without
        # it every subset of the pending unknown-outcome writes is a configuration of its
        # own, and an illegal history with a dozen of them takes minutes, not milliseconds.
        self.seen: dict[tuple[int, KeyState], list[int]] = {}
        # Linearized ops in order: (op index, state before it, states it may still lead to,
        # the pass it was placed in).
        self.stack: list[tuple[int, KeyState, list[KeyState], int]] = []
        self.longest: list[int] = []  # the deepest stack of op indices seen
        self.stuck = -1  # the op whose response ended it

    def run(self, budget: Budget) -> SearchOutcome:
        events, optional, groups, members, placed = (
            self.events, self.optional, self.groups, self.members, self.placed
        )
        nxt, head = events.nxt, events.head
        steps = 0
        verdict = Verdict.UNKNOWN
        # The calls before the first response are tried in two passes: required ops first,
        # then optional ones. An unknown-outcome op that never took effect is the common
        # case, and placing optional ops first would explore first the very configurations
        # the dominance rule could otherwise prune.
        pass_ = 0
        entry = nxt[head]
        while True:
            steps += 1
            if steps % _CHECK_EVERY == 0 and not budget.spend(_CHECK_EVERY):
                break
            if self.required_left == 0:
                verdict = Verdict.OK  # the optional ops left never took effect
                break
            i = entry >> 1
            if not entry & 1:  # an invocation
                g = groups[i]
                skip = optional[i] != (pass_ == 1) or (g >= 0 and members[g][placed[g]] != i)
                if skip or not self._place(i, list(model.step(self.state, self.ops[i])), pass_):
                    entry = nxt[entry]
                    continue
                events.lift(i)
                entry, pass_ = nxt[head], 0
                continue
            # The first response in the list: op i must be placed before it returns.
            if pass_ == 0:
                entry, pass_ = nxt[head], 1
                continue
            if len(self.stack) > len(self.longest) or self.stuck < 0:
                self.longest = [frame[0] for frame in self.stack]
                self.stuck = i
            if not self.stack:
                verdict = Verdict.ILLEGAL
                break
            # Backtrack: undo the latest placement; try its other outcomes, else move past it.
            j, self.state, alternatives, pass_ = self.stack.pop()
            self._unmark(j)
            if self._place(j, alternatives, pass_):
                entry, pass_ = nxt[head], 0
                continue
            events.unlift(j)
            entry = nxt[2 * j]
        budget.spend(steps % _CHECK_EVERY)
        originals = self.prepared.originals
        return SearchOutcome(
            verdict=verdict,
            searched=len(self.ops),
            steps=steps,
            longest=[originals[i] for i in self.longest],
            stuck=originals[self.stuck] if self.stuck >= 0 else None,
        )

    def _place(self, i: int, candidates: list[KeyState], pass_: int) -> bool:
        """Linearize op i next, leading to the first of ``candidates`` (its possible next
        states) whose configuration is not dominated; keep the rest for backtracking."""
        bit = 1 << i
        req, opt = (self.req, self.opt | bit) if self.optional[i] else (self.req | bit, self.opt)
        fresh = [s for s in candidates if not _dominated(self.seen, req, s, opt)]
        if not fresh:
            return False
        self.seen.setdefault((req, fresh[0]), []).append(opt)
        self.stack.append((i, self.state, fresh[1:], pass_))
        self.state, self.req, self.opt = fresh[0], req, opt
        if not self.optional[i]:
            self.required_left -= 1
        if self.groups[i] >= 0:
            self.placed[self.groups[i]] += 1
        return True

    def _unmark(self, i: int) -> None:
        """Undo the bookkeeping of :meth:`_place` for op i (its state is restored by the
        caller)."""
        bit = 1 << i
        if self.optional[i]:
            self.opt ^= bit
        else:
            self.req ^= bit
            self.required_left += 1
        if self.groups[i] >= 0:
            self.placed[self.groups[i]] -= 1


def _dominated(
    seen: dict[tuple[int, KeyState], list[int]], req: int, s: KeyState, opt: int
) -> bool:
    """Whether an explored configuration (req, s, o) has o a subset of ``opt``."""
    explored = seen.get((req, s))
    return explored is not None and any(o | opt == opt for o in explored)


def check_key(ops: Sequence[Operation], initial: KeyState, budget: Budget) -> SearchOutcome:
    """Prepare one key's operations (:func:`model.prepare`) and search them."""
    return search(model.prepare(ops, initial), initial, budget)
