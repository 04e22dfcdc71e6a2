"""Server-side range extras (etcd apply.go Range): sort, filters, limit, more, keys_only."""

from __future__ import annotations

import pytest

from minietcd.errors import CompactedRevisionError
from minietcd.mvcc import (
    KVStore,
    RangeOptions,
    RangeRequest,
    SortOrder,
    SortTarget,
    execute_range,
    store_options,
)


@pytest.fixture
def store() -> KVStore:
    # key: (create, mod, version, value)
    s = KVStore()
    s.put(b"a", b"3")  # 2
    s.put(b"b", b"1")  # 3
    s.put(b"c", b"2")  # 4
    s.put(b"a", b"0")  # 5  a: create 2, mod 5, ver 2
    s.put(b"d", b"2")  # 6
    s.put(b"b", b"9")  # 7  b: create 3, mod 7, ver 2
    s.put(b"b", b"5")  # 8  b: ver 3
    return s


def keys(store: KVStore, **kw: object) -> list[bytes]:
    return [kv.key for kv in execute_range(store, RangeRequest(b"a", b"\0", **kw)).kvs]  # type: ignore[arg-type]  # RangeRequest's fields


def test_default_is_key_order(store: KVStore) -> None:
    assert keys(store) == [b"a", b"b", b"c", b"d"]


@pytest.mark.parametrize(
    ("target", "ascend"),
    [
        (SortTarget.KEY, [b"a", b"b", b"c", b"d"]),
        (SortTarget.VERSION, [b"c", b"d", b"a", b"b"]),  # 1, 1, 2, 3
        (SortTarget.CREATE, [b"a", b"b", b"c", b"d"]),  # 2, 3, 4, 6
        (SortTarget.MOD, [b"c", b"a", b"d", b"b"]),  # 4, 5, 6, 8
        (SortTarget.VALUE, [b"a", b"c", b"d", b"b"]),  # "0", "2", "2", "5"
    ],
)
def test_sort_targets(store: KVStore, target: SortTarget, ascend: list[bytes]) -> None:
    assert keys(store, sort_order=SortOrder.ASCEND, sort_target=target) == ascend
    # A non-KEY target without an order sorts ascending (etcd).
    if target != SortTarget.KEY:
        assert keys(store, sort_target=target) == ascend
    desc = keys(store, sort_order=SortOrder.DESCEND, sort_target=target)
    # Ties (c and d share version 1 and value "2") keep key order in both directions.
    assert sorted(desc) == sorted(ascend)
    if target in (SortTarget.KEY, SortTarget.CREATE, SortTarget.MOD):
        assert desc == ascend[::-1]


def test_descend_ties_are_stable(store: KVStore) -> None:
    assert keys(store, sort_order=SortOrder.DESCEND, sort_target=SortTarget.VERSION) == [
        b"b",
        b"a",
        b"c",
        b"d",
    ]


def test_key_none_keeps_store_order(store: KVStore) -> None:
    assert keys(store, sort_order=SortOrder.NONE, sort_target=SortTarget.KEY) == [
        b"a",
        b"b",
        b"c",
        b"d",
    ]


def test_limit_and_more(store: KVStore) -> None:
    r = execute_range(store, RangeRequest(b"a", b"\0", limit=2))
    assert [kv.key for kv in r.kvs] == [b"a", b"b"] and r.more and r.count == 4
    r = execute_range(store, RangeRequest(b"a", b"\0", limit=4))
    assert len(r.kvs) == 4 and not r.more
    r = execute_range(store, RangeRequest(b"a", b"\0", limit=3, sort_order=SortOrder.DESCEND))
    assert [kv.key for kv in r.kvs] == [b"d", b"c", b"b"] and r.more  # limit after sort
    assert r.revision == 8


def test_store_options_planning() -> None:
    assert store_options(RangeRequest(b"a", limit=3)) == RangeOptions(limit=4)
    assert store_options(RangeRequest(b"a", limit=3, sort_order=SortOrder.ASCEND)).limit == 0
    assert store_options(RangeRequest(b"a", limit=3, min_mod_revision=1)).limit == 0
    assert store_options(RangeRequest(b"a", revision=5, count_only=True)) == RangeOptions(
        revision=5, count_only=True
    )


@pytest.mark.parametrize(
    ("filters", "want"),
    [
        ({"min_mod_revision": 6}, [b"b", b"d"]),
        ({"max_mod_revision": 5}, [b"a", b"c"]),
        ({"min_create_revision": 3}, [b"b", b"c", b"d"]),
        ({"max_create_revision": 3}, [b"a", b"b"]),
        ({"min_mod_revision": 5, "max_mod_revision": 6}, [b"a", b"d"]),
        ({"min_create_revision": 3, "max_mod_revision": 6}, [b"c", b"d"]),
    ],
)
def test_revision_filters(store: KVStore, filters: dict[str, int], want: list[bytes]) -> None:
    r = execute_range(store, RangeRequest(b"a", b"\0", **filters))  # type: ignore[arg-type]  # RangeRequest's fields
    assert [kv.key for kv in r.kvs] == want
    assert r.count == 4  # count is before filtering, as in etcd


def test_filter_then_limit_sets_more(store: KVStore) -> None:
    r = execute_range(store, RangeRequest(b"a", b"\0", limit=1, min_create_revision=3))
    assert [kv.key for kv in r.kvs] == [b"b"] and r.more
    r = execute_range(store, RangeRequest(b"a", b"\0", limit=2, min_mod_revision=6))
    assert len(r.kvs) == 2 and not r.more


def test_keys_only_after_value_sort(store: KVStore) -> None:
    r = execute_range(
        store, RangeRequest(b"a", b"\0", keys_only=True, sort_target=SortTarget.VALUE)
    )
    assert [(kv.key, kv.value) for kv in r.kvs] == [(b"a", b""), (b"c", b""), (b"d", b""),
                                                    (b"b", b"")]  # fmt: skip


def test_count_only(store: KVStore) -> None:
    r = execute_range(store, RangeRequest(b"a", b"c", count_only=True, limit=1))
    assert (r.kvs, r.count, r.more) == ([], 2, False)


def test_historical_and_compacted(store: KVStore) -> None:
    r = execute_range(store, RangeRequest(b"b", revision=6))
    assert [kv.value for kv in r.kvs] == [b"1"] and r.revision == 8
    store.compact(6)
    with pytest.raises(CompactedRevisionError):
        execute_range(store, RangeRequest(b"b", revision=5))


def test_inside_a_write_txn(store: KVStore) -> None:
    with store.write() as txn:
        txn.put(b"e", b"0")
        r = execute_range(txn, RangeRequest(b"a", b"\0", sort_order=SortOrder.ASCEND,
                                            sort_target=SortTarget.VALUE, limit=2))  # fmt: skip
        assert [kv.key for kv in r.kvs] == [b"a", b"e"] and r.more and r.revision == 9


def test_target_without_order_limits_before_sorting(store: KVStore) -> None:
    # etcd 3.4 quirk, kept on purpose: the fetch-everything rule looks at sort_order only, so
    # a non-KEY target with order NONE sorts just the first limit+1 keys (a, b, c here).
    r = execute_range(store, RangeRequest(b"a", b"\0", sort_target=SortTarget.VALUE, limit=2))
    assert [kv.key for kv in r.kvs] == [b"a", b"c"] and r.more
