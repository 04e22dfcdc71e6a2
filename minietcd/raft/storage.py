"""The log storage the core reads from, and an in-memory implementation.

The core only *reads* stable storage (through :class:`Storage`); the caller writes to it when it
handles a ``Ready`` (persist ``entries``, ``hard_state`` and ``snapshot``) before calling
``advance()``. This is etcd-io/raft's ``Storage`` contract. ``minietcd.storage`` provides a
disk-backed implementation built on the WAL; :class:`MemoryStorage` serves tests, the simulator
and the disk-backed store's in-memory cache.

Layout of :class:`MemoryStorage`: ``_ents[0]`` is a dummy entry holding the index and term of
the last compacted entry (or of the snapshot), so ``first_index() == _ents[0].index + 1``.
"""

from __future__ import annotations

from typing import Protocol

from minietcd.errors import (
    LogCompactedError,
    LogUnavailableError,
    RaftInvariantError,
    SnapshotOutOfDateError,
)
from minietcd.raft.types import ConfState, Entry, HardState, Snapshot, SnapshotMetadata

NO_LIMIT = 1 << 62


class Storage(Protocol):
    """What the core needs to read from stable storage."""

    def initial_state(self) -> tuple[HardState, ConfState]:
        """The persisted hard state and the membership as of the last snapshot/conf entry."""
        ...

    def entries(self, lo: int, hi: int, max_size: int) -> list[Entry]:
        """Entries in [lo, hi), at least one if any, stopping before ``max_size`` bytes.

        Raises LogCompactedError if lo < first_index(), LogUnavailableError if hi > last+1.
        """
        ...

    def term(self, index: int) -> int:
        """Term of the entry at ``index``, for first_index()-1 <= index <= last_index()."""
        ...

    def last_index(self) -> int: ...

    def first_index(self) -> int: ...

    def snapshot(self) -> Snapshot:
        """The most recent snapshot (to send to a follower behind the first index)."""
        ...


def limit_size(ents: list[Entry], max_size: int) -> list[Entry]:
    """Keep a prefix of ``ents`` under ``max_size`` bytes, but always at least one entry."""
    if not ents:
        return ents
    size = ents[0].size()
    n = 1
    while n < len(ents):
        size += ents[n].size()
        if size > max_size:
            break
        n += 1
    return ents[:n]


class MemoryStorage:
    """A :class:`Storage` held in memory (thread-unsafe: the core is single-threaded)."""

    __slots__ = ("_ents", "_hard_state", "_snapshot")

    def __init__(self) -> None:
        self._hard_state = HardState()
        self._snapshot = Snapshot()
        self._ents: list[Entry] = [Entry(term=0, index=0)]

    @classmethod
    def with_members(cls, voters: tuple[int, ...], learners: tuple[int, ...] = ()) -> MemoryStorage:
        """A storage whose initial configuration is given directly, with an empty log (for
        tests and simulations; a real member bootstraps through ``RawNode.bootstrap``)."""
        st = cls()
        cs = ConfState(voters=tuple(sorted(voters)), learners=tuple(sorted(learners)))
        st._snapshot = Snapshot(metadata=SnapshotMetadata(conf_state=cs))
        return st

    # -- Storage interface ---------------------------------------------------------------------

    def initial_state(self) -> tuple[HardState, ConfState]:
        return self._hard_state, self._snapshot.metadata.conf_state

    def entries(self, lo: int, hi: int, max_size: int = NO_LIMIT) -> list[Entry]:
        offset = self._ents[0].index
        if lo <= offset:
            raise LogCompactedError(f"index {lo} is compacted (first index {offset + 1})")
        if hi > self.last_index() + 1:
            raise LogUnavailableError(f"entries [{lo},{hi}) beyond last index {self.last_index()}")
        if len(self._ents) == 1:  # only the dummy entry
            raise LogUnavailableError("log is empty")
        return limit_size(self._ents[lo - offset : hi - offset], max_size)

    def term(self, index: int) -> int:
        offset = self._ents[0].index
        if index < offset:
            raise LogCompactedError(f"term of {index}: compacted (first index {offset + 1})")
        if index - offset >= len(self._ents):
            raise LogUnavailableError(f"term of {index}: beyond last index {self.last_index()}")
        return self._ents[index - offset].term

    def last_index(self) -> int:
        return self._ents[0].index + len(self._ents) - 1

    def first_index(self) -> int:
        return self._ents[0].index + 1

    def snapshot(self) -> Snapshot:
        return self._snapshot

    # -- writes, done by the caller while handling a Ready ---------------------------------------

    def set_hard_state(self, hs: HardState) -> None:
        self._hard_state = hs

    def apply_snapshot(self, snap: Snapshot) -> None:
        """Replace the whole log with ``snap`` (a follower receiving InstallSnapshot)."""
        if snap.metadata.index <= self._snapshot.metadata.index:
            raise SnapshotOutOfDateError(
                f"snapshot at {snap.metadata.index} is not newer than {self._snapshot.metadata.index}"
            )
        self._snapshot = snap
        self._ents = [Entry(term=snap.metadata.term, index=snap.metadata.index)]

    def create_snapshot(
        self, index: int, conf_state: ConfState | None, data: bytes
    ) -> Snapshot:
        """Record a snapshot of the applied state at ``index`` (then ``compact`` to release)."""
        if index <= self._snapshot.metadata.index:
            raise SnapshotOutOfDateError(f"snapshot at {index} is not newer than the current one")
        if index > self.last_index():
            raise RaftInvariantError(f"snapshot {index} is out of bound lastindex({self.last_index()})")
        offset = self._ents[0].index
        meta = SnapshotMetadata(
            conf_state=conf_state if conf_state is not None else self._snapshot.metadata.conf_state,
            index=index,
            term=self._ents[index - offset].term,
        )
        self._snapshot = Snapshot(data=data, metadata=meta)
        return self._snapshot

    def compact(self, compact_index: int) -> None:
        """Discard entries up to ``compact_index`` (which must be applied)."""
        offset = self._ents[0].index
        if compact_index <= offset:
            raise LogCompactedError(f"index {compact_index} already compacted")
        if compact_index > self.last_index():
            raise RaftInvariantError(
                f"compact {compact_index} is out of bound lastindex({self.last_index()})"
            )
        i = compact_index - offset
        self._ents = [Entry(term=self._ents[i].term, index=self._ents[i].index), *self._ents[i + 1 :]]

    def append(self, entries: list[Entry] | tuple[Entry, ...]) -> None:
        """Append entries, truncating any conflicting suffix (entries are contiguous)."""
        if not entries:
            return
        first = self.first_index()
        last = entries[0].index + len(entries) - 1
        if last < first:
            return  # all already compacted
        if first > entries[0].index:
            entries = entries[first - entries[0].index :]
        offset = entries[0].index - self._ents[0].index
        if offset > len(self._ents):
            raise RaftInvariantError(
                f"missing log entry [last: {self.last_index()}, append at: {entries[0].index}]"
            )
        del self._ents[offset:]
        self._ents.extend(entries)
