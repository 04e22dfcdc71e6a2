"""A min-heap of lease deadlines with lazy invalidation (etcd's ``LeaseExpiredNotifier``).

etcd keeps one heap item per lease and fixes it in place (``heap.Fix``) on every renew. Python's
``heapq`` has no decrease-key, so instead every (re)schedule pushes a fresh entry tagged with a
sequence number, and ``_live`` remembers the one sequence number per lease that is still valid.
Older entries for the same lease are "stale" and are dropped when they reach the top. That keeps
schedule/discard at O(log n) / O(1) without searching the heap; ``_compact`` bounds the garbage a
burst of keep-alives leaves behind.

This is volatile, leader-only state: it is never snapshotted and never consulted by apply.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

# Rebuild the heap once stale entries outnumber live ones by this much (plus a small floor so tiny
# heaps are not rebuilt on every renew). Amortised O(1) per schedule.
_COMPACT_FACTOR = 2
_COMPACT_FLOOR = 64


@dataclass(slots=True)
class ExpiryQueue:
    """Deadlines (clock seconds) of leases, earliest first; one live entry per lease."""

    #: heap of (deadline, seq, lease id); seq breaks deadline ties deterministically (FIFO) and
    #: identifies whether the entry is still the live one for its lease.
    _heap: list[tuple[float, int, int]] = field(default_factory=list)
    #: lease id -> seq of its live entry. Invariant: every live seq has exactly one heap entry.
    _live: dict[int, int] = field(default_factory=dict)
    #: next sequence number to hand out; only grows, so a seq is never reused.
    _next_seq: int = 0

    def __len__(self) -> int:
        """Number of leases with a live deadline (stale entries are not counted)."""
        return len(self._live)

    def __contains__(self, lease_id: object) -> bool:
        return lease_id in self._live

    def schedule(self, lease_id: int, deadline: float) -> None:
        """Register ``lease_id`` at ``deadline``, replacing any earlier registration."""
        seq = self._next_seq
        self._next_seq += 1
        # Overwriting _live turns the previous entry (if any) stale in O(1).
        self._live[lease_id] = seq
        heapq.heappush(self._heap, (deadline, seq, lease_id))
        if len(self._heap) > _COMPACT_FACTOR * len(self._live) + _COMPACT_FLOOR:
            self._compact()

    def discard(self, lease_id: int) -> None:
        """Forget ``lease_id`` (revoked); its heap entry goes stale and is dropped lazily."""
        self._live.pop(lease_id, None)

    def peek(self) -> tuple[float, int] | None:
        """The earliest live (deadline, lease id), or None when empty. Drops stale tops."""
        heap = self._heap
        while heap:
            deadline, seq, lease_id = heap[0]
            if self._live.get(lease_id) == seq:
                return deadline, lease_id
            heapq.heappop(heap)
        return None

    def clear(self) -> None:
        """Drop every deadline (demotion: followers expire nothing)."""
        self._heap.clear()
        self._live.clear()

    def stale_entries(self) -> int:
        """Heap entries that no longer count (for tests of the lazy invalidation)."""
        return len(self._heap) - len(self._live)

    def _compact(self) -> None:
        self._heap = [e for e in self._heap if self._live.get(e[2]) == e[1]]
        heapq.heapify(self._heap)
