"""Per-user key permissions, merged: etcd's ``rangePermCache`` (``auth/range_perm_cache.go``).

A role grants READ, WRITE or READWRITE over a key, a range ``[key, range_end)`` or every key from
``key`` on (``range_end`` = ``"\\0"``). A user holds the union of its roles' grants. etcd merges
them per user into two interval trees (read, write) whenever the auth state changes, and checks
each request against those; so do we, with a sorted list of disjoint intervals per kind instead
of a tree: overlapping or touching grants are merged once, then a point or a range is checked
by one binary search. That is what keeps the check cheap on every request.

The rules, as etcd's:

* a point request (a key, no range end) is allowed when some grant contains the key;
* a range request ``[key, end)`` (``end`` = ``"\\0"``: open ended) is allowed only when the
  grants cover all of it without a gap (etcd's ``IntervalTree.Contains``);
* a grant with an empty range end covers exactly its key (``NewBytesAffinePoint``).

Where etcd's ``BytesAffineComparable`` gives degenerate intervals odd meanings (an empty begin
key sorts after every key; a range whose end is not after its begin), the interval covers
nothing and such a request is refused, rather than reproducing the interval tree's accidents:
etcdctl never sends either (it turns an empty key into ``"\\0"``).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field

#: A range end of ``"\0"`` means "every key from the begin key on" (etcd's from-key ranges).
OPEN_END = b"\0"

#: An interval [begin, end); end None is +infinity.
Interval = tuple[bytes, bytes | None]


def _end_lt(a: bytes | None, b: bytes | None) -> bool:
    """a < b for interval ends, None being +infinity."""
    if a is None:
        return False
    return b is None or a < b


def grant_interval(key: bytes, range_end: bytes) -> Interval | None:
    """The keys a permission covers (etcd's getMergedPerms), or None for a degenerate grant."""
    if not key:
        return None
    if not range_end:
        return key, key + b"\0"  # a point: [key, key\0)
    if range_end == OPEN_END:
        return key, None
    if range_end <= key:
        return None
    return key, range_end


@dataclass(frozen=True, slots=True)
class KeySet:
    """A union of key intervals, merged into disjoint, sorted, non-touching ones."""

    begins: tuple[bytes, ...] = ()
    ends: tuple[bytes | None, ...] = ()

    @classmethod
    def of(cls, intervals: Iterable[Interval]) -> KeySet:
        begins: list[bytes] = []
        ends: list[bytes | None] = []
        for begin, end in sorted(intervals, key=lambda iv: iv[0]):
            if begins:
                last_end = ends[-1]
                if last_end is None or begin <= last_end:  # overlapping or touching: one interval
                    if _end_lt(last_end, end):
                        ends[-1] = end
                    continue
            begins.append(begin)
            ends.append(end)
        return cls(tuple(begins), tuple(ends))

    def _covering(self, key: bytes) -> int:
        """Index of the interval that starts at or before ``key`` (-1 if none)."""
        return bisect_right(self.begins, key) - 1

    def has_key(self, key: bytes) -> bool:
        """Some interval contains ``key`` (etcd's checkKeyPoint)."""
        if not key:
            return False
        i = self._covering(key)
        return i >= 0 and _end_lt(key, self.ends[i])

    def has_range(self, begin: bytes, end: bytes) -> bool:
        """Every key of ``[begin, end)`` is covered, ``end`` = ``"\\0"`` meaning no end (etcd's
        checkKeyInterval); ``end`` empty is a single key."""
        if not end:
            return self.has_key(begin)
        want = None if end == OPEN_END else end
        if not begin or (want is not None and want <= begin):
            return False
        i = self._covering(begin)
        return i >= 0 and not _end_lt(self.ends[i], want) and _end_lt(begin, self.ends[i])


@dataclass(frozen=True, slots=True)
class UserPerms:
    """What one user may do: everything (the root role), or its merged read and write sets."""

    is_root: bool = False
    read: KeySet = field(default_factory=KeySet)
    write: KeySet = field(default_factory=KeySet)


# authpb.Permission.Type values (READ = 0, WRITE = 1, READWRITE = 2).
READ, WRITE, READWRITE = 0, 1, 2


def merge(is_root: bool, grants: Iterable[tuple[int, bytes, bytes]]) -> UserPerms:
    """One user's permissions from its roles' grants ``(perm type, key, range end)``."""
    reads: list[Interval] = []
    writes: list[Interval] = []
    for kind, key, range_end in grants:
        iv = grant_interval(key, range_end)
        if iv is None:
            continue
        if kind in (READ, READWRITE):
            reads.append(iv)
        if kind in (WRITE, READWRITE):
            writes.append(iv)
    return UserPerms(is_root, KeySet.of(reads), KeySet.of(writes))
