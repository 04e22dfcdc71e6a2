"""A deterministic, hostile network for the simulator.

Every decision (drop this message? duplicate it? how late is it?) is drawn from one
``random.Random`` seeded by the run, so a seed replays the same schedule exactly.

Time is counted in *ticks*, the same unit the Raft core counts in. A message sent at tick
``t`` with delay ``d`` becomes *due* at ``t + d`` and is handed over by :meth:`Network.pop_due`
in FIFO order (like one TCP stream per pair of nodes) or in a random order (a reordering
network), depending on :class:`Faults`.

Partitions are a list of groups: two nodes can talk only if some group holds both. A node in
no group is isolated, and so is a node in ``isolated`` whatever the groups. Reachability is
decided when a message is *delivered*, so messages in flight when a partition starts are
lost, as they would be on a real cut link.
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass, field

from minietcd.raft.types import Message


@dataclass(slots=True, frozen=True)
class Faults:
    """How badly the network behaves (one profile per run, or per phase of a run)."""

    drop: float = 0.0  # probability that a sent message is lost
    duplicate: float = 0.0  # probability that a sent message is delivered twice
    max_delay: int = 0  # a message is delayed by 0..max_delay ticks (uniformly)
    reorder: bool = False  # deliver due messages in random order instead of send order

    def describe(self) -> str:
        return (
            f"drop={self.drop:.2f} dup={self.duplicate:.2f} "
            f"delay<={self.max_delay} {'reorder' if self.reorder else 'fifo'}"
        )


CALM = Faults()  # what the liveness phase runs on: nothing lost, nothing late


@dataclass(slots=True)
class InFlight:
    due: int  # tick from which the message may be delivered
    seq: int  # send order: the FIFO tie-breaker, and unique, so sorting is total
    msg: Message


@dataclass(slots=True)
class Network:
    rng: random.Random
    faults: Faults = CALM
    groups: list[frozenset[int]] | None = None  # None: fully connected
    isolated: frozenset[int] = frozenset()  # nodes cut off from everyone (even new nodes)
    held: set[int] = field(default_factory=set)  # paused receivers: their messages wait
    queue: list[InFlight] = field(default_factory=list)  # in send order
    seq: int = 0
    stats: dict[str, int] = field(
        default_factory=lambda: {"sent": 0, "dropped": 0, "duplicated": 0, "delivered": 0}
    )

    # -- topology -------------------------------------------------------------------------------

    def partition(self, groups: list[frozenset[int]]) -> None:
        self.groups = groups

    def heal(self) -> None:
        self.groups = None

    def isolate(self, nodes: frozenset[int]) -> None:
        self.isolated = nodes

    def connected(self, a: int, b: int) -> bool:
        if a == b:
            return True
        if a in self.isolated or b in self.isolated:
            return False
        if self.groups is None:
            return True
        return any(a in g and b in g for g in self.groups)

    # -- traffic --------------------------------------------------------------------------------

    def send(self, m: Message, now: int) -> str:
        """Put ``m`` on the wire. Returns "" or a note for the transcript (dropped, dup...)."""
        self.stats["sent"] += 1
        f = self.faults
        if f.drop and self.rng.random() < f.drop:
            self.stats["dropped"] += 1
            return "dropped by the network"
        copies = 1
        if f.duplicate and self.rng.random() < f.duplicate:
            self.stats["duplicated"] += 1
            copies = 2
        notes = []
        for _ in range(copies):
            delay = self.rng.randint(0, f.max_delay) if f.max_delay else 0
            if delay:
                notes.append(f"+{delay}t")
            self.seq += 1
            self.queue.append(InFlight(now + delay, self.seq, m))
        if copies == 2:
            notes.append("duplicated")
        return " ".join(notes)

    def has_due(self, now: int) -> bool:
        return any(f.due <= now and f.msg.to not in self.held for f in self.queue)

    def pop_due(self, now: int) -> Message | None:
        """Take one message that is due, or None. The receiver gets its own copy (a real
        network serialises), so no two nodes ever share a mutable Message object."""
        due = [i for i, f in enumerate(self.queue) if f.due <= now and f.msg.to not in self.held]
        if not due:
            return None
        if self.faults.reorder:
            i = due[self.rng.randrange(len(due))]
        else:
            i = min(due, key=lambda j: (self.queue[j].due, self.queue[j].seq))
        self.stats["delivered"] += 1
        return copy.copy(self.queue.pop(i).msg)

    def drop_to(self, node: int) -> list[Message]:
        """Forget every message addressed to ``node`` (its connections died with it)."""
        lost = [f.msg for f in self.queue if f.msg.to == node]
        self.queue = [f for f in self.queue if f.msg.to != node]
        return lost
