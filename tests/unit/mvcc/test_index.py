"""TreeIndex: etcd's range_end conventions, revisions/range/range_since, compact/keep."""

from __future__ import annotations

import pytest

from minietcd.errors import RevisionNotFoundError
from minietcd.mvcc.index import TreeIndex, in_range
from minietcd.mvcc.revision import Revision

R = Revision


@pytest.fixture
def index() -> TreeIndex:
    # Keys a, b, c, d, foo; b deleted at 7; c re-created at 8.
    ti = TreeIndex()
    ti.put(b"a", R(2))
    ti.put(b"b", R(3))
    ti.put(b"c", R(4))
    ti.put(b"d", R(5))
    ti.put(b"foo", R(5, 1))
    ti.put(b"c", R(6))
    ti.tombstone(b"b", R(7))
    ti.tombstone(b"c", R(8))
    ti.put(b"c", R(8, 1))
    return ti


def keys_at(ti: TreeIndex, key: bytes, end: bytes, rev: int) -> list[bytes]:
    return ti.range(key, end, rev)[0]


@pytest.mark.parametrize(
    ("key", "end", "want"),
    [
        (b"a", b"", [b"a"]),  # empty range_end: just the key
        (b"e", b"", []),  # a missing single key
        (b"b", b"d", [b"b", b"c"]),  # half-open [b, d)
        (b"b", b"\0", [b"b", b"c", b"d", b"foo"]),  # "\0": everything >= key
        (b"\0", b"\0", [b"a", b"b", b"c", b"d", b"foo"]),  # all keys
        (b"f", b"g", [b"foo"]),  # prefix range
        (b"d", b"b", []),  # end before key: empty
        (b"c", b"c", []),  # end == key: empty
    ],
)
def test_range_end_conventions(index: TreeIndex, key: bytes, end: bytes, want: list[bytes]) -> None:
    assert keys_at(index, key, end, 6) == want


def test_in_range_matches_visit(index: TreeIndex) -> None:
    all_keys = [b"a", b"b", b"c", b"d", b"foo"]
    for key in (b"\0", b"a", b"b", b"c", b"e"):
        for end in (b"", b"\0", b"b", b"d", b"z", b"a"):
            got = [ki.key for ki in index.visit(key, end)]
            assert got == [k for k in all_keys if in_range(key, end, k)], (key, end)


def test_range_respects_revision(index: TreeIndex) -> None:
    assert keys_at(index, b"\0", b"\0", 1) == []
    assert keys_at(index, b"\0", b"\0", 3) == [b"a", b"b"]
    assert keys_at(index, b"\0", b"\0", 7) == [b"a", b"c", b"d", b"foo"]
    # c deleted and re-created inside revision 8: it exists at 8 with the newer revision.
    assert index.range(b"c", b"", 8) == ([b"c"], [R(8, 1)])
    assert index.revisions(b"a", b"\0", 8) == [R(2), R(8, 1), R(5), R(5, 1)]


def test_get(index: TreeIndex) -> None:
    assert index.get(b"c", 6) == (R(6), R(4), 2)
    assert index.get(b"c", 8) == (R(8, 1), R(8, 1), 1)
    assert index.get(b"b", 7) is None
    assert index.get(b"zz", 7) is None


def test_tombstone_errors(index: TreeIndex) -> None:
    with pytest.raises(RevisionNotFoundError):
        index.tombstone(b"nope", R(9))
    with pytest.raises(RevisionNotFoundError):
        index.tombstone(b"b", R(9))  # already deleted


def test_range_since_sorted_by_revision(index: TreeIndex) -> None:
    assert index.range_since(b"\0", b"\0", 6) == [R(6), R(7), R(8, 1)]
    assert index.range_since(b"c", b"", 1) == [R(4), R(6), R(8, 1)]
    assert index.range_since(b"zz", b"", 1) == []


def test_compact_removes_dead_keys_and_returns_available(index: TreeIndex) -> None:
    keep = index.keep(7)
    available = index.compact(7)
    assert available == keep
    # b's last change at or below 7 is its tombstone: the key goes entirely.
    assert index.key_index(b"b") is None
    assert available == {R(2), R(6), R(5), R(5, 1)}
    assert keys_at(index, b"\0", b"\0", 7) == [b"a", b"c", b"d", b"foo"]
    assert len(index) == 4


def test_equal() -> None:
    a, b = TreeIndex(), TreeIndex()
    for ti in (a, b):
        ti.put(b"k", R(2))
    assert a.equal(b)
    b.put(b"k", R(3))
    assert not a.equal(b)
