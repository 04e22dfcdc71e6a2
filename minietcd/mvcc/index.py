"""The ordered index over all keys (etcd ``mvcc/index.go``, a B-tree there, a SortedDict here).

Ranges use etcd's v3 API conventions for ``range_end`` directly (the gRPC edge passes them
through unchanged):

* ``range_end == b""``: just ``key``;
* ``range_end == b"\\0"``: every key ``>= key`` (so ``key == b"\\0"`` with it means all keys,
  the empty key never being stored);
* otherwise the half-open interval ``[key, range_end)``; empty when ``range_end <= key``.
"""

from __future__ import annotations

from collections.abc import Iterator

from sortedcontainers import SortedDict

from minietcd.errors import RevisionNotFoundError
from minietcd.mvcc.key_index import KeyIndex
from minietcd.mvcc.revision import Revision

#: The ``range_end`` meaning "no upper bound" (etcd's ``mkGteRange`` turns it into ``[]byte{}``).
GTE_RANGE_END = b"\0"


def is_single_key(range_end: bytes) -> bool:
    return not range_end


def in_range(key: bytes, range_end: bytes, candidate: bytes) -> bool:
    """Whether ``candidate`` is inside the range ``(key, range_end)`` by the conventions above."""
    if not range_end:
        return candidate == key
    if range_end == GTE_RANGE_END:
        return candidate >= key
    return key <= candidate < range_end


class TreeIndex:
    """Key -> :class:`KeyIndex`, ordered by key bytes."""

    __slots__ = ("_tree",)

    def __init__(self) -> None:
        #: Every key that has a non-empty key index. Compaction removes emptied ones.
        self._tree: SortedDict = SortedDict()

    @classmethod
    def from_key_indexes(cls, by_key: dict[bytes, KeyIndex]) -> TreeIndex:
        """An index holding these key indexes (sorted once, not inserted one by one)."""
        index = cls()
        index._tree = SortedDict(by_key)
        return index

    def __len__(self) -> int:
        return len(self._tree)

    def key_index(self, key: bytes) -> KeyIndex | None:
        ki: KeyIndex | None = self._tree.get(key)
        return ki

    def key_indexes(self) -> Iterator[KeyIndex]:
        """All key indexes in key order."""
        yield from self._tree.values()

    def insert(self, ki: KeyIndex) -> None:
        self._tree[ki.key] = ki

    def remove(self, key: bytes) -> None:
        del self._tree[key]

    # --- writes ----------------------------------------------------------------------------

    def put(self, key: bytes, rev: Revision) -> None:
        ki = self._tree.get(key)
        if ki is None:
            ki = KeyIndex(key)
            ki.put(rev)
            self._tree[key] = ki
            return
        ki.put(rev)

    def tombstone(self, key: bytes, rev: Revision) -> None:
        """Raises RevisionNotFoundError when the key is unknown or already deleted."""
        ki = self._tree.get(key)
        if ki is None:
            raise RevisionNotFoundError(f"key {key!r} is not in the index")
        ki.tombstone(rev)

    # --- reads -----------------------------------------------------------------------------

    def get(self, key: bytes, at_rev: int) -> tuple[Revision, Revision, int] | None:
        """``(modified, created, version)`` of ``key`` at ``at_rev``, or None."""
        ki: KeyIndex | None = self._tree.get(key)
        if ki is None:
            return None
        return ki.get(at_rev)

    def visit(self, key: bytes, range_end: bytes) -> Iterator[KeyIndex]:
        """Key indexes in the range, in key order."""
        if not range_end:
            ki = self._tree.get(key)
            if ki is not None:
                yield ki
            return
        tree = self._tree
        lo = tree.bisect_left(key)
        hi = len(tree) if range_end == GTE_RANGE_END else tree.bisect_left(range_end)
        if lo < hi:
            # Slicing the values view by position beats irange + one lookup per key.
            yield from tree.values()[lo:hi]

    def revisions(self, key: bytes, range_end: bytes, at_rev: int) -> list[Revision]:
        """The revision of each key in the range that exists at ``at_rev``, in key order."""
        out: list[Revision] = []
        for ki in self.visit(key, range_end):
            # Fast path for the common read at or after a key's last change: live keys answer
            # with that change, deleted keys are absent. Same answer as ki.get(at_rev).
            modified = ki.modified
            if modified.main <= at_rev:
                if ki.generations[-1].revs:
                    out.append(modified)
                continue
            got = ki.get(at_rev)
            if got is not None:
                out.append(got[0])
        return out

    def range(self, key: bytes, range_end: bytes, at_rev: int) -> tuple[list[bytes], list[Revision]]:
        """Keys existing at ``at_rev`` in the range, and their revisions, in key order."""
        keys: list[bytes] = []
        revs: list[Revision] = []
        for ki in self.visit(key, range_end):
            got = ki.get(at_rev)
            if got is not None:
                keys.append(ki.key)
                revs.append(got[0])
        return keys, revs

    def range_since(self, key: bytes, range_end: bytes, rev: int) -> list[Revision]:
        """All revisions of keys in the range with main >= ``rev``, sorted by revision."""
        out: list[Revision] = []
        for ki in self.visit(key, range_end):
            out.extend(ki.since(rev))
        out.sort()
        return out

    # --- compaction ------------------------------------------------------------------------

    def compact(self, rev: int) -> set[Revision]:
        """Compact every key index at ``rev``; return the revisions <= rev still needed."""
        available: set[Revision] = set()
        emptied: list[bytes] = []
        for ki in self._tree.values():
            ki.compact(rev, available)
            if ki.is_empty():
                emptied.append(ki.key)
        for key in emptied:
            del self._tree[key]
        return available

    def keep(self, rev: int) -> set[Revision]:
        """What :meth:`compact` at ``rev`` would return, changing nothing."""
        available: set[Revision] = set()
        for ki in self._tree.values():
            ki.keep(rev, available)
        return available

    def equal(self, other: TreeIndex) -> bool:
        """Same keys, same modified revisions and same generations (etcd ``Equal``; the
        created revision is not compared, as in etcd, since a restore sets its sub to 0)."""
        if len(self._tree) != len(other._tree):
            return False
        for key, a in self._tree.items():
            b = other._tree.get(key)
            if b is None or a.modified != b.modified or len(a.generations) != len(b.generations):
                return False
            for ga, gb in zip(a.generations, b.generations, strict=True):
                if ga.ver != gb.ver or ga.revs != gb.revs:
                    return False
        return True
