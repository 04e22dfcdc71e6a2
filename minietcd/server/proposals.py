"""Proposals waiting to enter the Raft core, and when to let them in (group commit).

Everything proposed while the Ready loop is busy enters the core as one batch: one MsgProp, one
append per follower, one WAL write, one fsync. With a fast disk the loop is rarely busy for
long, so under load it used to cut a Ready for every one or two proposals (measured: 1.8
entries per fsync with 64 writers on one member), and every Ready has a fixed cost: an fsync
handed to the syncer thread and back, a round of peer messages, a pass through the loop.

So a small batch waits for company, briefly, when company is likely. Never when this member's
recent batches held one proposal each (a lone client never waits: there is nobody to share its
fsync with), nor when proposals arrive too sparsely for a wait to gather more (on average more
than four holds apart). These are the signals because the other writers are mostly not in Raft
when a proposal arrives: they are in gRPC, being answered or sending their next request.

How long: :class:`GroupCommit` alone (what linearizable-read rounds use, read_rounds.py) lets a
round in once ``BATCH`` wait or the oldest has waited ``HOLD`` (1 ms, the event loop's timer
resolution); with it, 64 writers on one member made 7 entries per fsync instead of 1.8, about
a third more puts/s and a quarter less CPU per put, and three members a fifth more puts/s.
Proposals also know how many writers there are: every proposal of this member that is not yet
applied (the EtcdServer's count, queued ones included) is a writer waiting for its answer, and
the recent peak of that count (:class:`Writers`) is how many usually write at once. Once that
many are waiting, nobody else is coming: the batch goes in at once, whatever its size (8
closed-loop writers no longer wait out a hold for a ninth). Below it, a batch waits up to
``PROPOSAL_HOLD`` (2 ms) for the rest, or until ``PROPOSAL_BATCH`` are queued. With 64 writers
on one member that is about 10 entries per fsync instead of 4.7, and a sixth less CPU per put
(issue 15's put1: 264 -> 216 us, medians of five alternated runs); 3 to 8 writers gain too,
since they no longer wait out a hold once all of them are in. The price is at most
``PROPOSAL_HOLD`` of latency for a request that arrives among many. The core's other output
(committed entries, messages to peers) is not held: the Ready loop handles it meanwhile.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

#: GroupCommit.hold: a batch worth serving without waiting (read rounds).
BATCH = 8
#: GroupCommit.hold: longest a batch waits for others, in seconds (read rounds).
HOLD = 0.001
#: What BATCH and HOLD are for proposals, which also know how many writers wait (see above).
PROPOSAL_BATCH = 64
PROPOSAL_HOLD = 0.002
#: Average batch size above which other writers are taken to be active (one writer: 1).
SHARED = 1.5
#: Weight of the newest sample in the moving averages.
_SMOOTHING = 0.1


class GroupCommit:
    """The policy above, for anything that serves requests in batches (proposals here, the
    linearizable-read rounds of etcd_server.py): should a batch of ``n`` wait for company?"""

    __slots__ = ("_batch", "_gap", "_last")

    def __init__(self) -> None:
        self._last = 0.0  # time.monotonic() of the last arrival
        self._gap = 1.0  # average seconds between arrivals (moving average; sparse at first)
        self._batch = 1.0  # average batch size taken (moving average)

    def arrived(self) -> None:
        now = time.monotonic()
        self._gap += (min(now - self._last, 1.0) - self._gap) * _SMOOTHING
        self._last = now

    def taken(self, n: int) -> None:
        self._batch += (n - self._batch) * _SMOOTHING

    def hold(self, n: int) -> bool:
        return n < BATCH and self.shared(HOLD)

    def shared(self, hold: float) -> bool:
        """Whether recent batches were shared and arrivals dense enough for a ``hold`` to
        gather more (the two conditions of :meth:`hold` besides the batch's size)."""
        return self._batch >= SHARED and self._gap <= 4 * hold


class Writers:
    """How many proposals of this member usually wait for their answer at once: the peak of
    the count seen at arrivals, decaying towards the count seen when a batch goes in (so that
    after a busy stretch a smaller set of writers is recognised within a few dozen batches)."""

    __slots__ = ("_peak",)

    def __init__(self) -> None:
        self._peak = 0.0

    def arrived(self, waiting: int) -> None:
        if waiting > self._peak:
            self._peak = waiting

    def taken(self, waiting: int) -> None:
        self._peak += (waiting - self._peak) * _SMOOTHING

    def all_in(self, waiting: int) -> bool:
        """Whether everyone who usually writes is waiting already (no one else to wait for)."""
        return waiting >= int(self._peak)


class ProposalQueue:
    """(data, request id) pairs not yet stepped into the core."""

    def __init__(self, wake: Callable[[], None], waiting: Callable[[], int] | None = None) -> None:
        self._wake = wake  # wakes the Ready loop (when a held batch is due)
        self._items: list[tuple[bytes, int]] = []
        self._since = 0.0  # loop time the oldest queued proposal arrived
        self._timer: asyncio.TimerHandle | None = None
        self._policy = GroupCommit()
        self._writers = Writers()
        # This member's proposals not yet applied, queued ones included (the EtcdServer's
        # count, through RaftNode.proposals_waiting); without it, the queue alone.
        self.waiting: Callable[[], int] = waiting or self.__len__

    def __len__(self) -> int:
        return len(self._items)

    def add(self, data: bytes, request_id: int) -> None:
        self._policy.arrived()
        if not self._items:
            self._since = asyncio.get_running_loop().time()
        self._items.append((data, request_id))
        self._writers.arrived(self.waiting())
        self._wake()

    def due(self) -> bool:
        """Whether the queued proposals should enter the core now. If they are held, a timer
        wakes the Ready loop when they are due."""
        n = len(self._items)
        if n == 0:
            return False
        if n >= PROPOSAL_BATCH or not self._policy.shared(PROPOSAL_HOLD):
            return True
        if self._writers.all_in(self.waiting()):
            return True
        loop = asyncio.get_running_loop()
        left = self._since + PROPOSAL_HOLD - loop.time()
        if left <= 0:
            return True
        if self._timer is None:
            self._timer = loop.call_later(left, self._due)
        return False

    def _due(self) -> None:
        self._timer = None
        self._wake()

    def take(self) -> list[tuple[bytes, int]]:
        """Everything queued, oldest first; the queue is empty after."""
        if self._items:
            self._policy.taken(len(self._items))
            self._writers.taken(self.waiting())  # the batch's writers still wait: counted
        items, self._items = self._items, []
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        return items

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
