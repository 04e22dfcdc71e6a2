"""The Raft log: stable storage behind, unstable entries in front (etcd-io/raft's raftLog).

::

    snapshot/first.....applied....committed....stable last.....unstable last
    |<--------------- Storage (persisted) -------------->|<-- Unstable -->|

``Unstable`` holds entries (and possibly a snapshot) the caller has not persisted yet; they
leave it when the caller acknowledges a ``Ready`` through ``advance()``.
"""

from __future__ import annotations

from minietcd.errors import LogCompactedError, LogUnavailableError, RaftInvariantError
from minietcd.raft.storage import NO_LIMIT, Storage, limit_size
from minietcd.raft.types import Entry, Snapshot


class Unstable:
    """Entries and a snapshot not yet written to stable storage."""

    __slots__ = ("entries", "offset", "snapshot")

    def __init__(self, offset: int) -> None:
        self.snapshot: Snapshot | None = None  # an incoming snapshot to persist, if any
        self.entries: list[Entry] = []  # entries[i] has index offset + i
        self.offset = offset

    def maybe_first_index(self) -> int | None:
        return self.snapshot.metadata.index + 1 if self.snapshot is not None else None

    def maybe_last_index(self) -> int | None:
        if self.entries:
            return self.offset + len(self.entries) - 1
        if self.snapshot is not None:
            return self.snapshot.metadata.index
        return None

    def maybe_term(self, i: int) -> int | None:
        if i < self.offset:
            if self.snapshot is not None and self.snapshot.metadata.index == i:
                return self.snapshot.metadata.term
            return None
        last = self.maybe_last_index()
        if last is None or i > last:
            return None
        return self.entries[i - self.offset].term

    def stable_to(self, i: int, t: int) -> None:
        """Entries up to (i, t) are persisted; drop them unless they were replaced since."""
        gt = self.maybe_term(i)
        if gt is None:
            return
        if gt == t and i >= self.offset:
            del self.entries[: i + 1 - self.offset]
            self.offset = i + 1

    def stable_snap_to(self, i: int) -> None:
        if self.snapshot is not None and self.snapshot.metadata.index == i:
            self.snapshot = None

    def restore(self, s: Snapshot) -> None:
        self.offset = s.metadata.index + 1
        self.entries = []
        self.snapshot = s

    def truncate_and_append(self, ents: list[Entry]) -> None:
        after = ents[0].index
        if after == self.offset + len(self.entries):
            self.entries.extend(ents)  # the common case: ents directly follow
        elif after <= self.offset:
            # Replace everything unstable: the new entries start at or before our offset.
            self.offset = after
            self.entries = list(ents)
        else:
            # Keep the unstable prefix before ``after``, then the new entries.
            del self.entries[after - self.offset :]
            self.entries.extend(ents)

    def slice(self, lo: int, hi: int) -> list[Entry]:
        upper = self.offset + len(self.entries)
        if lo > hi or lo < self.offset or hi > upper:
            raise RaftInvariantError(f"unstable.slice[{lo},{hi}) out of bound [{self.offset},{upper}]")
        return self.entries[lo - self.offset : hi - self.offset]


class RaftLog:
    __slots__ = ("applied", "committed", "max_next_ents_size", "storage", "unstable")

    def __init__(self, storage: Storage, max_next_ents_size: int = NO_LIMIT) -> None:
        self.storage = storage
        first = storage.first_index()
        last = storage.last_index()
        self.unstable = Unstable(last + 1)
        # Everything before the first index was compacted, so it was committed and applied.
        self.committed = first - 1  # highest index known committed (paper: commitIndex)
        self.applied = first - 1  # highest index handed to the state machine (lastApplied)
        self.max_next_ents_size = max_next_ents_size  # byte cap on committed entries per Ready

    def __repr__(self) -> str:
        return (
            f"RaftLog(committed={self.committed}, applied={self.applied}, "
            f"unstable.offset={self.unstable.offset}, len(unstable)={len(self.unstable.entries)})"
        )

    # -- indexes and terms --------------------------------------------------------------------

    def first_index(self) -> int:
        i = self.unstable.maybe_first_index()
        return i if i is not None else self.storage.first_index()

    def last_index(self) -> int:
        i = self.unstable.maybe_last_index()
        return i if i is not None else self.storage.last_index()

    def last_term(self) -> int:
        return self.term(self.last_index())

    def term(self, i: int) -> int:
        """Term of entry ``i``. Raises LogCompactedError / LogUnavailableError outside the log."""
        dummy = self.first_index() - 1
        if i < dummy or i > self.last_index():
            if i < dummy:
                raise LogCompactedError(f"term({i}): compacted, first index {dummy + 1}")
            raise LogUnavailableError(f"term({i}): beyond last index {self.last_index()}")
        t = self.unstable.maybe_term(i)
        if t is not None:
            return t
        return self.storage.term(i)

    def term_or_zero(self, i: int) -> int:
        try:
            return self.term(i)
        except (LogCompactedError, LogUnavailableError):
            return 0

    def match_term(self, i: int, t: int) -> bool:
        try:
            return self.term(i) == t
        except (LogCompactedError, LogUnavailableError):
            return False

    def is_up_to_date(self, lasti: int, term: int) -> bool:
        """Is a log ending at (lasti, term) at least as up-to-date as ours? (paper 5.4.1)"""
        last_term = self.last_term()
        return term > last_term or (term == last_term and lasti >= self.last_index())

    # -- appending ----------------------------------------------------------------------------

    def maybe_append(
        self, index: int, log_term: int, committed: int, ents: tuple[Entry, ...]
    ) -> int | None:
        """Follower side of AppendEntries (paper Figure 2, receiver rules 2-5).

        Returns the last index of the new entries, or None when the consistency check fails.
        """
        if not self.match_term(index, log_term):
            return None
        last_new = index + len(ents)
        ci = self.find_conflict(ents)
        if ci:
            if ci <= self.committed:
                raise RaftInvariantError(
                    f"entry {ci} conflicts with committed entry [committed({self.committed})]"
                )
            self.append(list(ents[ci - (index + 1) :]))
        self.commit_to(min(committed, last_new))
        return last_new

    def append(self, ents: list[Entry]) -> int:
        if not ents:
            return self.last_index()
        after = ents[0].index - 1
        if after < self.committed:
            raise RaftInvariantError(f"after({after}) is out of range [committed({self.committed})]")
        self.unstable.truncate_and_append(ents)
        return self.last_index()

    def find_conflict(self, ents: tuple[Entry, ...] | list[Entry]) -> int:
        """Index of the first entry whose term differs from ours, or of the first new one; 0
        if all of ``ents`` are already in the log."""
        for e in ents:
            if not self.match_term(e.index, e.term):
                return e.index
        return 0

    def find_conflict_by_term(self, index: int, term: int) -> int:
        """The largest index <= ``index`` whose term is <= ``term`` (fast back-off hint).

        A leader whose probe at ``index`` was rejected can skip every entry of a term newer than
        the follower's, instead of one index per round trip (thesis 3.5, the "nextIndex
        optimisation").
        """
        while index > 0:
            try:
                t = self.term(index)
            except (LogCompactedError, LogUnavailableError):
                return index
            if t <= term:
                return index
            index -= 1
        return 0

    # -- reading ------------------------------------------------------------------------------

    def unstable_entries(self) -> list[Entry]:
        return list(self.unstable.entries)

    def entries(self, i: int, max_size: int = NO_LIMIT) -> list[Entry]:
        if i > self.last_index():
            return []
        return self.slice(i, self.last_index() + 1, max_size)

    def slice(self, lo: int, hi: int, max_size: int = NO_LIMIT) -> list[Entry]:
        """Entries [lo, hi), capped at ``max_size`` bytes (always at least one)."""
        if lo > hi:
            raise RaftInvariantError(f"invalid slice {lo} > {hi}")
        fi = self.first_index()
        if lo < fi:
            raise LogCompactedError(f"slice from {lo}: compacted, first index {fi}")
        if hi > self.last_index() + 1:
            raise RaftInvariantError(f"slice[{lo},{hi}) out of bound [{fi},{self.last_index()}]")
        if lo == hi:
            return []
        ents: list[Entry] = []
        uoff = self.unstable.offset
        if lo < uoff:
            ents = self.storage.entries(lo, min(hi, uoff), max_size)
            if len(ents) < min(hi, uoff) - lo:
                return ents  # storage hit the size cap
        if hi > uoff:
            ents = ents + self.unstable.slice(max(lo, uoff), hi)
        return limit_size(ents, max_size)

    def next_committed_entries(self) -> list[Entry]:
        """Committed entries not yet handed to the state machine."""
        off = max(self.applied + 1, self.first_index())
        if self.committed + 1 > off:
            return self.slice(off, self.committed + 1, self.max_next_ents_size)
        return []

    def has_next_committed_entries(self) -> bool:
        return self.committed + 1 > max(self.applied + 1, self.first_index())

    def snapshot(self) -> Snapshot:
        if self.unstable.snapshot is not None:
            return self.unstable.snapshot
        return self.storage.snapshot()

    # -- moving the cursors -------------------------------------------------------------------

    def commit_to(self, tocommit: int) -> None:
        # Never decrease commit (a stale heartbeat may carry an older one).
        if self.committed < tocommit:
            if self.last_index() < tocommit:
                raise RaftInvariantError(
                    f"tocommit({tocommit}) is out of range [lastIndex({self.last_index()})]"
                )
            self.committed = tocommit

    def maybe_commit(self, max_index: int, term: int) -> bool:
        """Advance commit to ``max_index`` only if that entry is of the current ``term``.

        Paper 5.4.2 (Figure 8): a leader never commits entries of earlier terms by counting
        replicas; they are committed indirectly, by committing a current-term entry after them.
        """
        if max_index > self.committed and self.term_or_zero(max_index) == term:
            self.commit_to(max_index)
            return True
        return False

    def applied_to(self, i: int) -> None:
        if i == 0:
            return
        if self.committed < i or i < self.applied:
            raise RaftInvariantError(
                f"applied({i}) is out of range [prevApplied({self.applied}), committed({self.committed})]"
            )
        self.applied = i

    def stable_to(self, i: int, t: int) -> None:
        self.unstable.stable_to(i, t)

    def stable_snap_to(self, i: int) -> None:
        self.unstable.stable_snap_to(i)

    def restore(self, s: Snapshot) -> None:
        self.committed = s.metadata.index
        self.unstable.restore(s)
