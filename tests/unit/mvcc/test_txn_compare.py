"""Txn compares, as etcd's applyCompare / compareKV evaluate them."""

from __future__ import annotations

import pytest

from minietcd.mvcc import (
    Compare,
    CompareResult,
    CompareTarget,
    KVStore,
    evaluate_compare,
    evaluate_compares,
)

T, Res = CompareTarget, CompareResult
EQ, NE, GT, LT = Res.EQUAL, Res.NOT_EQUAL, Res.GREATER, Res.LESS


@pytest.fixture
def store() -> KVStore:
    s = KVStore()
    s.put(b"a", b"apple", lease=7)  # rev 2: a create=2 mod=2 ver=1
    s.put(b"b", b"banana")  # rev 3
    s.put(b"a", b"avocado", lease=7)  # rev 4: a create=2 mod=4 ver=2
    s.put(b"c", b"cherry")  # rev 5
    return s


# (target, operand, [(result, expected)]) for key a: version 2, create 2, mod 4, lease 7,
# value b"avocado".
@pytest.mark.parametrize(
    ("target", "operand", "table"),
    [
        (T.VERSION, 2, [(EQ, True), (NE, False), (GT, False), (LT, False)]),
        (T.VERSION, 1, [(EQ, False), (NE, True), (GT, True), (LT, False)]),
        (T.VERSION, 3, [(EQ, False), (NE, True), (GT, False), (LT, True)]),
        (T.CREATE, 2, [(EQ, True), (NE, False), (GT, False), (LT, False)]),
        (T.CREATE, 3, [(EQ, False), (LT, True), (GT, False)]),
        (T.MOD, 4, [(EQ, True), (GT, False), (LT, False)]),
        (T.MOD, 3, [(GT, True), (LT, False), (NE, True)]),
        (T.LEASE, 7, [(EQ, True), (NE, False)]),
        (T.LEASE, 0, [(GT, True), (EQ, False)]),
        (T.VALUE, b"avocado", [(EQ, True), (NE, False), (GT, False), (LT, False)]),
        (T.VALUE, b"apple", [(GT, True), (LT, False), (NE, True)]),
        (T.VALUE, b"b", [(LT, True), (GT, False)]),
        (T.VALUE, b"avocado!", [(LT, True)]),  # a prefix sorts first
    ],
)
def test_each_target_and_result(
    store: KVStore, target: CompareTarget, operand: int | bytes, table: list[tuple[CompareResult, bool]]
) -> None:
    for result, want in table:
        assert evaluate_compare(store, Compare(b"a", target, result, operand)) is want, result


@pytest.mark.parametrize(
    ("target", "operand", "result", "want"),
    [
        # A missing key compares as the zero KeyValue for every target but VALUE...
        (T.VERSION, 0, EQ, True),
        (T.CREATE, 0, EQ, True),  # the "key does not exist" idiom
        (T.MOD, 0, EQ, True),
        (T.LEASE, 0, EQ, True),
        (T.VERSION, 0, GT, False),
        (T.MOD, 5, LT, True),
        (T.CREATE, 0, NE, False),
        # ...and a VALUE compare on a missing key always fails, even against b"".
        (T.VALUE, b"", EQ, False),
        (T.VALUE, b"", NE, False),
        (T.VALUE, b"x", LT, False),
    ],
)
def test_missing_key(
    store: KVStore, target: CompareTarget, operand: int | bytes, result: CompareResult, want: bool
) -> None:
    assert evaluate_compare(store, Compare(b"zz", target, result, operand)) is want


def test_range_compare_must_hold_for_every_key(store: KVStore) -> None:
    # a (mod 4), b (mod 3), c (mod 5)
    assert evaluate_compare(store, Compare(b"a", T.MOD, GT, 2, range_end=b"d"))
    assert not evaluate_compare(store, Compare(b"a", T.MOD, GT, 3, range_end=b"d"))
    assert evaluate_compare(store, Compare(b"b", T.MOD, GT, 2, range_end=b"\0"))
    assert evaluate_compare(store, Compare(b"\0", T.CREATE, GT, 0, range_end=b"\0"))
    assert not evaluate_compare(store, Compare(b"a", T.VALUE, EQ, b"avocado", range_end=b"c"))
    # An empty range behaves like a missing key.
    assert evaluate_compare(store, Compare(b"x", T.CREATE, EQ, 0, range_end=b"z"))
    assert not evaluate_compare(store, Compare(b"x", T.VALUE, EQ, b"", range_end=b"z"))


def test_operand_of_the_wrong_kind_counts_as_zero(store: KVStore) -> None:
    # etcd reads the target_union; a different or missing member leaves the zero value.
    assert evaluate_compare(store, Compare(b"a", T.VERSION, GT, b"junk"))  # 2 > 0
    assert evaluate_compare(store, Compare(b"a", T.VALUE, GT, 5))  # b"avocado" > b""
    assert evaluate_compare(store, Compare(b"a", T.VERSION, GT, True))  # bool is not an int here


def test_all_compares_must_hold(store: KVStore) -> None:
    ok = Compare(b"a", T.VERSION, EQ, 2)
    bad = Compare(b"b", T.VALUE, EQ, b"nope")
    assert evaluate_compares(store, [])
    assert evaluate_compares(store, [ok, ok])
    assert not evaluate_compares(store, [ok, bad])


def test_compares_see_a_write_txns_own_changes(store: KVStore) -> None:
    with store.write() as txn:
        txn.put(b"d", b"date")
        assert evaluate_compare(txn, Compare(b"d", T.CREATE, EQ, 6))
        assert not evaluate_compare(store, Compare(b"d", T.CREATE, EQ, 6))
    assert evaluate_compare(store, Compare(b"d", T.CREATE, EQ, 6))
