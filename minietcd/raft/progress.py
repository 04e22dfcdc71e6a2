"""The leader's view of each follower: how far its log matches, and how to send to it.

A follower's Progress is in one of three states (etcd-io/raft's design; thesis 3.5 / 10.2):

- PROBE: the leader does not know where the follower's log matches. It sends one append at a
  time and waits for the answer, backing off on each rejection (using the conflict hint).
- REPLICATE: the follower is caught up on the match. The leader streams appends optimistically,
  advancing ``next`` at send time, bounded by an in-flight window (count and bytes).
- SNAPSHOT: the follower needs entries the leader has compacted; a snapshot is in flight and
  nothing else is sent until it is reported done.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field

from minietcd.raft.quorum import VoteResult, committed_index, vote_result


class ProgressState(enum.IntEnum):
    PROBE = 0
    REPLICATE = 1
    SNAPSHOT = 2

    def __str__(self) -> str:
        return self.name


class Inflights:
    """Appends sent but not yet acknowledged, bounded by a count and a byte budget."""

    __slots__ = ("_bytes", "_items", "max_bytes", "max_count")

    def __init__(self, max_count: int, max_bytes: int) -> None:
        self._items: deque[tuple[int, int]] = deque()  # (last index of the append, its bytes)
        self._bytes = 0
        self.max_count = max_count  # at most this many appends in flight
        self.max_bytes = max_bytes  # and at most this many bytes (0 = unlimited)

    def add(self, last_index: int, nbytes: int) -> None:
        self._items.append((last_index, nbytes))
        self._bytes += nbytes

    def free_le(self, index: int) -> None:
        """Forget every append whose last index is <= ``index`` (it was acknowledged)."""
        items = self._items
        while items and items[0][0] <= index:
            self._bytes -= items.popleft()[1]

    def free_first_one(self) -> None:
        if self._items:
            self._bytes -= self._items.popleft()[1]

    def full(self) -> bool:
        return len(self._items) >= self.max_count or (
            self.max_bytes > 0 and self._bytes >= self.max_bytes
        )

    def count(self) -> int:
        return len(self._items)

    def reset(self) -> None:
        self._items.clear()
        self._bytes = 0


@dataclass(slots=True)
class Progress:
    match: int  # highest index known to be replicated on the follower (paper: matchIndex)
    next: int  # index of the next entry to send (paper: nextIndex)
    inflights: Inflights
    state: ProgressState = ProgressState.PROBE
    # PROBE only: an append is outstanding; send no more until it is answered or a heartbeat
    # response shows the follower is alive.
    probe_sent: bool = False
    # SNAPSHOT only: the index of the snapshot in flight.
    pending_snapshot: int = 0
    # Heard from since the last check-quorum round (thesis 6.2). The leader counts itself.
    recent_active: bool = False
    is_learner: bool = False

    def reset_state(self, state: ProgressState) -> None:
        self.probe_sent = False
        self.pending_snapshot = 0
        self.state = state
        self.inflights.reset()

    def become_probe(self) -> None:
        # Coming back from a snapshot, the follower has at least the snapshot.
        if self.state == ProgressState.SNAPSHOT:
            pending = self.pending_snapshot
            self.reset_state(ProgressState.PROBE)
            self.next = max(self.match + 1, pending + 1)
        else:
            self.reset_state(ProgressState.PROBE)
            self.next = self.match + 1

    def become_replicate(self) -> None:
        self.reset_state(ProgressState.REPLICATE)
        self.next = self.match + 1

    def become_snapshot(self, snapshot_index: int) -> None:
        self.reset_state(ProgressState.SNAPSHOT)
        self.pending_snapshot = snapshot_index

    def maybe_update(self, n: int) -> bool:
        """An append up to ``n`` was acknowledged. False if the ack is stale."""
        updated = False
        if self.match < n:
            self.match = n
            updated = True
            self.probe_sent = False
        self.next = max(self.next, n + 1)
        return updated

    def sent_entries(self, last_index: int, nbytes: int) -> None:
        """Record an append carrying entries up to ``last_index``."""
        if self.state == ProgressState.REPLICATE:
            self.next = last_index + 1  # optimistic: pipeline the next append right away
            self.inflights.add(last_index, nbytes)
        elif self.state == ProgressState.PROBE:
            self.probe_sent = True

    def maybe_decr_to(self, rejected: int, match_hint: int) -> bool:
        """The follower rejected an append at ``rejected``; move ``next`` back.

        ``match_hint`` is the follower's conflict hint: the largest index that may match. False
        if the rejection is stale (an answer to an append we no longer care about).
        """
        if self.state == ProgressState.REPLICATE:
            if rejected <= self.match:
                return False  # stale: we already know it matches there
            self.next = self.match + 1
            return True
        if self.next - 1 != rejected:
            return False  # stale: not the probe we are waiting for
        self.next = max(min(rejected, match_hint + 1), 1)
        self.probe_sent = False
        return True

    def is_paused(self) -> bool:
        """True if the leader must not send an append now (heartbeats still flow)."""
        if self.state == ProgressState.PROBE:
            return self.probe_sent
        if self.state == ProgressState.REPLICATE:
            return self.inflights.full()
        return True


@dataclass(slots=True)
class ProgressTracker:
    """Membership plus per-member Progress and the votes of the current election."""

    max_inflight: int
    max_inflight_bytes: int
    voters: set[int] = field(default_factory=set)
    learners: set[int] = field(default_factory=set)
    progress: dict[int, Progress] = field(default_factory=dict)
    votes: dict[int, bool] = field(default_factory=dict)

    def add(self, node: int, match: int, next_index: int, learner: bool) -> None:
        (self.learners if learner else self.voters).add(node)
        (self.voters if learner else self.learners).discard(node)
        pr = self.progress.get(node)
        if pr is None:
            self.progress[node] = Progress(
                match=match,
                next=next_index,
                inflights=Inflights(self.max_inflight, self.max_inflight_bytes),
                is_learner=learner,
                # A new member counts as active so that adding it cannot make a healthy leader
                # fail its next check-quorum round before the member has had a chance to answer.
                recent_active=True,
            )
        else:
            pr.is_learner = learner

    def remove(self, node: int) -> None:
        self.voters.discard(node)
        self.learners.discard(node)
        self.progress.pop(node, None)
        self.votes.pop(node, None)

    def is_voter(self, node: int) -> bool:
        return node in self.voters

    def committed(self) -> int:
        return committed_index(self.voters, {v: self.progress[v].match for v in self.voters})

    def quorum_active(self) -> bool:
        """Did a majority of voters (the leader included) talk to us recently?"""
        active = {v: self.progress[v].recent_active for v in self.voters}
        return vote_result(self.voters, active) == VoteResult.WON

    def tally_votes_of(self, acks: set[int]) -> VoteResult:
        """Do ``acks`` form a majority of the voters? (ReadIndex confirmation.)"""
        return vote_result(self.voters, dict.fromkeys(acks, True))

    def reset_votes(self) -> None:
        self.votes = {}

    def record_vote(self, node: int, granted: bool) -> None:
        self.votes.setdefault(node, granted)

    def tally_votes(self) -> tuple[int, int, VoteResult]:
        granted = sum(1 for v in self.voters if self.votes.get(v) is True)
        rejected = sum(1 for v in self.voters if self.votes.get(v) is False)
        return granted, rejected, vote_result(self.voters, self.votes)

    def peers(self) -> list[int]:
        """Every member (voters and learners), sorted so message order is deterministic."""
        return sorted(self.progress)
