"""KeyIndex: the tables of etcd's key_index_test.go, plus the rollback helpers."""

from __future__ import annotations

import pytest

from minietcd.errors import MvccInvariantError, RevisionNotFoundError
from minietcd.mvcc.key_index import Generation, KeyIndex
from minietcd.mvcc.revision import ZERO_REV, Revision

R = Revision


def new_test_key_index() -> KeyIndex:
    """etcd's newTestKeyIndex::

        {empty}
        {{14, 0}[1], {14, 1}[2], {16, 0}(t)[3]}
        {{8, 0}[1], {10, 0}[2], {12, 0}(t)[3]}
        {{2, 0}[1], {4, 0}[2], {6, 0}(t)[3]}
    """
    ki = KeyIndex(b"foo")
    ki.put(R(2))
    ki.put(R(4))
    ki.tombstone(R(6))
    ki.put(R(8))
    ki.put(R(10))
    ki.tombstone(R(12))
    ki.put(R(14))
    ki.put(R(14, 1))
    ki.tombstone(R(16))
    return ki


def gen(created: Revision, ver: int, *revs: Revision) -> Generation:
    return Generation(ver=ver, created=created, revs=list(revs))


def test_docstring_worked_example() -> None:
    ki = KeyIndex(b"foo")
    ki.put(R(1))
    ki.put(R(2))
    ki.tombstone(R(3))
    ki.put(R(4))
    ki.tombstone(R(5))
    assert ki.generations == [
        gen(R(1), 3, R(1), R(2), R(3)),
        gen(R(4), 2, R(4), R(5)),
        Generation(),
    ]
    c = ki.copy()
    c.compact(2, set())
    assert [g.revs for g in c.generations] == [[R(2), R(3)], [R(4), R(5)], []]
    c.compact(4, set())
    assert [g.revs for g in c.generations] == [[R(4), R(5)], []]
    c.compact(5, set())
    assert c.is_empty()
    d = ki.copy()
    d.compact(6, set())
    assert d.is_empty()


GET_TABLE = [
    (17, None),
    (16, None),
    (15, (R(14, 1), R(14), 2)),
    (14, (R(14, 1), R(14), 2)),
    (13, None),
    (12, None),
    (11, (R(10), R(8), 2)),
    (10, (R(10), R(8), 2)),
    (9, (R(8), R(8), 1)),
    (8, (R(8), R(8), 1)),
    (7, None),
    (6, None),
    (5, (R(4), R(2), 2)),
    (4, (R(4), R(2), 2)),
    (3, None),
    (2, None),
    (1, None),
    (0, None),
]


@pytest.mark.parametrize(("rev", "want"), GET_TABLE)
def test_get(rev: int, want: tuple[Revision, Revision, int] | None) -> None:
    ki = new_test_key_index()
    ki.compact(4, set())
    assert ki.get(rev) == want


ALL_REVS = [R(4), R(6), R(8), R(10), R(12), R(14, 1), R(16)]
SINCE_TABLE = [
    (17, []),
    (16, ALL_REVS[6:]),
    (15, ALL_REVS[6:]),
    (14, ALL_REVS[5:]),
    (13, ALL_REVS[5:]),
    (12, ALL_REVS[4:]),
    (11, ALL_REVS[4:]),
    (10, ALL_REVS[3:]),
    (9, ALL_REVS[3:]),
    (8, ALL_REVS[2:]),
    (7, ALL_REVS[2:]),
    (6, ALL_REVS[1:]),
    (5, ALL_REVS[1:]),
    (4, ALL_REVS),
    (3, ALL_REVS),
    (2, ALL_REVS),
    (1, ALL_REVS),
    (0, ALL_REVS),
]


@pytest.mark.parametrize(("rev", "want"), SINCE_TABLE)
def test_since(rev: int, want: list[Revision]) -> None:
    ki = new_test_key_index()
    ki.compact(4, set())
    assert ki.since(rev) == want


def test_put() -> None:
    ki = KeyIndex(b"foo")
    ki.put(R(5))
    assert ki == KeyIndex(b"foo", R(5), [gen(R(5), 1, R(5))])
    ki.put(R(7))
    assert ki == KeyIndex(b"foo", R(7), [gen(R(5), 2, R(5), R(7))])


def test_put_must_move_forward() -> None:
    ki = KeyIndex(b"foo")
    ki.put(R(5, 1))
    for bad in (R(5, 1), R(5, 0), R(4, 9)):
        with pytest.raises(MvccInvariantError):
            ki.put(bad)


def test_restore() -> None:
    ki = KeyIndex(b"foo")
    ki.restore(R(5), R(7), 2)
    assert ki == KeyIndex(b"foo", R(7), [gen(R(5), 2, R(7))])
    with pytest.raises(MvccInvariantError):
        ki.restore(R(5), R(7), 2)


def test_tombstone() -> None:
    ki = KeyIndex(b"foo")
    ki.put(R(5))
    ki.tombstone(R(7))
    assert ki == KeyIndex(b"foo", R(7), [gen(R(5), 2, R(5), R(7)), Generation()])
    ki.put(R(8))
    ki.put(R(9))
    ki.tombstone(R(15))
    assert ki == KeyIndex(
        b"foo",
        R(15),
        [gen(R(5), 2, R(5), R(7)), gen(R(8), 3, R(8), R(9), R(15)), Generation()],
    )
    with pytest.raises(RevisionNotFoundError):
        ki.tombstone(R(16))
    assert ki.modified == R(15)  # the failed tombstone changed nothing


EMPTY_LAST = Generation()
G1 = gen(R(2), 3, R(2), R(4), R(6))
G2 = gen(R(8), 3, R(8), R(10), R(12))
G3 = gen(R(14), 3, R(14), R(14, 1), R(16))

# (compact rev, generations after, available) — etcd's TestKeyIndexCompactAndKeep table.
COMPACT_TABLE: list[tuple[int, list[Generation], set[Revision]]] = [
    (1, [G1, G2, G3, EMPTY_LAST], set()),
    (2, [G1, G2, G3, EMPTY_LAST], {R(2)}),
    (3, [G1, G2, G3, EMPTY_LAST], {R(2)}),
    (4, [gen(R(2), 3, R(4), R(6)), G2, G3, EMPTY_LAST], {R(4)}),
    (5, [gen(R(2), 3, R(4), R(6)), G2, G3, EMPTY_LAST], {R(4)}),
    (6, [G2, G3, EMPTY_LAST], set()),
    (7, [G2, G3, EMPTY_LAST], set()),
    (8, [G2, G3, EMPTY_LAST], {R(8)}),
    (9, [G2, G3, EMPTY_LAST], {R(8)}),
    (10, [gen(R(8), 3, R(10), R(12)), G3, EMPTY_LAST], {R(10)}),
    (11, [gen(R(8), 3, R(10), R(12)), G3, EMPTY_LAST], {R(10)}),
    (12, [G3, EMPTY_LAST], set()),
    (13, [G3, EMPTY_LAST], set()),
    (14, [gen(R(14), 3, R(14, 1), R(16)), EMPTY_LAST], {R(14, 1)}),
    (15, [gen(R(14), 3, R(14, 1), R(16)), EMPTY_LAST], {R(14, 1)}),
    (16, [EMPTY_LAST], set()),
]


def _check_keep_then_compact(ki: KeyIndex, rev: int, gens: list[Generation], am: set[Revision]) -> None:
    before = ki.copy()
    kept: set[Revision] = set()
    ki.keep(rev, kept)
    assert ki == before, "keep must not change the key index"
    assert kept == am
    available: set[Revision] = set()
    ki.compact(rev, available)
    assert ki.generations == gens
    assert ki.modified == R(16)
    assert available == am


def test_compact_and_keep_continuous() -> None:
    ki = new_test_key_index()
    for rev, gens, am in COMPACT_TABLE:
        _check_keep_then_compact(ki, rev, gens, am)


def test_compact_and_keep_jumping() -> None:
    ki = new_test_key_index()
    for i, (rev, gens, am) in enumerate(COMPACT_TABLE):
        if (i % 2 == 0 and i < 6) or (i % 2 == 1 and i > 6):
            _check_keep_then_compact(ki, rev, gens, am)


@pytest.mark.parametrize(("rev", "gens", "am"), COMPACT_TABLE)
def test_compact_and_keep_once(rev: int, gens: list[Generation], am: set[Revision]) -> None:
    _check_keep_then_compact(new_test_key_index(), rev, gens, am)


def test_compact_on_further_rev() -> None:
    ki = KeyIndex(b"foo")
    ki.put(R(1))
    ki.put(R(2))
    available: set[Revision] = set()
    ki.compact(3, available)
    assert ki == KeyIndex(b"foo", R(2), [gen(R(1), 2, R(2))])
    assert available == {R(2)}


def test_is_empty() -> None:
    assert KeyIndex(b"foo", generations=[Generation()]).is_empty()
    assert not KeyIndex(b"foo", R(2), [gen(R(1), 2, R(2))]).is_empty()


@pytest.mark.parametrize(
    ("rev", "gen_index"),
    [(0, None), (1, None), (2, 0), (3, 0), (4, 0), (5, 0), (6, None), (7, None),
     (8, 1), (9, 1), (10, 1), (11, 1), (12, None), (13, None)],
)  # fmt: skip
def test_find_generation(rev: int, gen_index: int | None) -> None:
    ki = new_test_key_index()
    g = ki.find_generation(rev)
    if gen_index is None:
        assert g is None
    else:
        assert g is ki.generations[gen_index]


def test_generation_last_at_or_below() -> None:
    g = gen(R(2), 3, R(2), R(4), R(6))
    # etcd's TestGenerationWalk, phrased as "largest index with main <= n".
    assert [g.last_at_or_below(n) for n in (6, 5, 4, 3, 2, 1)] == [2, 1, 1, 0, 0, -1]


def test_operations_on_empty_index_are_bugs() -> None:
    ki = KeyIndex(b"foo", generations=[Generation()])
    for op in (lambda: ki.get(1), lambda: ki.since(1), lambda: ki.compact(1, set())):
        with pytest.raises(MvccInvariantError):
            op()
    with pytest.raises(MvccInvariantError):
        ki.tombstone(R(1))
    ki.keep(1, set())  # keep is a no-op on an empty index, as in etcd


def test_undo_restores_exact_state() -> None:
    ki = new_test_key_index()
    before = ki.copy()
    ki.put(R(17))
    ki.tombstone(R(17, 1))
    ki.put(R(17, 2))
    ki.undo_put(R(17, 1))
    ki.undo_tombstone(R(17))
    ki.undo_put(R(16))
    assert ki == before


def test_undo_first_put_leaves_empty() -> None:
    ki = KeyIndex(b"foo")
    ki.put(R(3))
    ki.undo_put(ZERO_REV)
    assert ki.is_empty() and ki.modified == ZERO_REV
    assert ki.generations == [Generation()]
