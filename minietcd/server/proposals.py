"""Proposals waiting to enter the Raft core, and when to let them in (group commit).

Everything proposed while the Ready loop is busy enters the core as one batch: one MsgProp, one
append per follower, one WAL write, one fsync. With a fast disk the loop is rarely busy for
long, so under load it used to cut a Ready for every one or two proposals (measured: 1.8
entries per fsync with 64 writers on one member), and every Ready has a fixed cost: an fsync
handed to the syncer thread and back, a round of peer messages, a pass through the loop.

So a small batch waits for company, briefly, when company is likely: proposals are let in at
once when there are ``BATCH`` of them, or when this member's recent batches held one proposal
each (a lone client never waits: there is nobody to share its fsync with), or when they arrive
too sparsely for a wait to gather more (on average more than ``4 * HOLD`` apart); otherwise
once the oldest has waited ``HOLD`` seconds (1 ms, the event loop's timer resolution). These
are the signals because the other writers are mostly not in Raft when a proposal arrives: they
are in gRPC, being answered or sending their next request. Measured with 64 writers: on one
member 7 entries per fsync instead of 1.8, about a third more puts/s and a quarter less CPU per
put; on three members a fifth more puts/s (docs/benchmarks.md). The price is at most ``HOLD``
of latency for a request that arrives among many. The core's other output (committed entries,
messages to peers) is not held: the Ready loop handles it meanwhile.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

#: Proposals that are a batch worth an fsync without waiting.
BATCH = 8
#: Longest a proposal waits for others, in seconds.
HOLD = 0.001
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
        return n < BATCH and self._batch >= SHARED and self._gap <= 4 * HOLD


class ProposalQueue:
    """(data, request id) pairs not yet stepped into the core."""

    def __init__(self, wake: Callable[[], None]) -> None:
        self._wake = wake  # wakes the Ready loop (when a held batch is due)
        self._items: list[tuple[bytes, int]] = []
        self._since = 0.0  # loop time the oldest queued proposal arrived
        self._timer: asyncio.TimerHandle | None = None
        self._policy = GroupCommit()

    def __len__(self) -> int:
        return len(self._items)

    def add(self, data: bytes, request_id: int) -> None:
        self._policy.arrived()
        if not self._items:
            self._since = asyncio.get_running_loop().time()
        self._items.append((data, request_id))
        self._wake()

    def due(self) -> bool:
        """Whether the queued proposals should enter the core now. If they are held, a timer
        wakes the Ready loop when they are due."""
        n = len(self._items)
        if n == 0:
            return False
        if not self._policy.hold(n):
            return True
        loop = asyncio.get_running_loop()
        left = self._since + HOLD - loop.time()
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
        items, self._items = self._items, []
        if items:
            self._policy.taken(len(items))
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        return items

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
