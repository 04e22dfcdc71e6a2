"""KVStore and WriteTxn: revisions, put/delete semantics, ranges, compaction, events, rollback."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from minietcd.errors import (
    CompactedRevisionError,
    EmptyKeyError,
    FutureRevisionError,
    KeyNotFoundError,
    LeaseProvidedError,
    MinietcdError,
    TxnStateError,
    ValueProvidedError,
)
from minietcd.mvcc import Event, EventType, KeyValue, KVStore, RangeOptions


class Recorder:
    """An observer that keeps every (revision, events) it is given."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, list[Event]]] = []

    def __call__(self, rev: int, events: Sequence[Event]) -> None:
        self.calls.append((rev, list(events)))


def all_kvs(store: KVStore, rev: int = 0) -> list[KeyValue]:
    return store.range(b"\0", b"\0", RangeOptions(revision=rev)).kvs


# --- revisions -------------------------------------------------------------------------------


def test_empty_store() -> None:
    s = KVStore()
    assert s.current_revision == 1 and s.compact_revision == -1
    r = s.range(b"\0", b"\0")
    assert (r.kvs, r.count, r.more, r.revision) == ([], 0, False, 1)
    assert len(s) == 0


def test_put_versions_and_recreate() -> None:
    s = KVStore()
    assert s.put(b"k", b"v1").revision == 2
    assert s.put(b"k", b"v2").revision == 3
    assert s.get(b"k") == KeyValue(b"k", 2, 3, 2, b"v2", 0)
    assert s.delete_range(b"k").revision == 4
    assert s.get(b"k") is None
    s.put(b"k", b"v3")
    # A new generation: create revision and version start over.
    assert s.get(b"k") == KeyValue(b"k", 5, 5, 1, b"v3", 0)
    # History stays readable.
    assert s.get(b"k", 3) == KeyValue(b"k", 2, 3, 2, b"v2", 0)
    assert s.get(b"k", 4) is None


def test_one_main_revision_per_txn() -> None:
    s = KVStore()
    with s.write() as txn:
        assert txn.begin_revision == 1 and txn.revision == 1
        assert txn.put(b"a", b"1").revision == 2
        assert txn.put(b"b", b"2").revision == 2
        assert txn.revision == 2
        assert txn.delete_range(b"a").revision == 2
        assert txn.put(b"a", b"3").revision == 2
    assert s.current_revision == 2
    kvs = all_kvs(s)
    assert [(kv.key, kv.create_revision, kv.mod_revision, kv.version) for kv in kvs] == [
        (b"a", 2, 2, 1),
        (b"b", 2, 2, 1),
    ]
    s.put(b"c", b"x")
    assert s.current_revision == 3


def test_empty_txn_does_not_bump_revision() -> None:
    rec = Recorder()
    s = KVStore(rec)
    with s.write() as txn:
        assert txn.range(b"a").kvs == []
        assert txn.delete_range(b"a", b"z").deleted == 0
        assert txn.revision == 1
    assert s.current_revision == 1
    assert rec.calls == []
    assert s.delete_range(b"nope").revision == 1


def test_txn_reads_its_own_writes_store_does_not() -> None:
    s = KVStore()
    s.put(b"a", b"old")
    txn = s.write()
    txn.put(b"a", b"new")
    txn.put(b"b", b"1")
    assert [kv.value for kv in txn.range(b"a", b"\0").kvs] == [b"new", b"1"]
    # Outside the txn, the uncommitted revision is invisible.
    assert s.get(b"a") == KeyValue(b"a", 2, 2, 1, b"old", 0)
    assert s.range(b"a", b"\0").count == 1
    # Deleting inside the txn sees the txn's own put of b.
    assert txn.delete_range(b"b").deleted == 1
    txn.end()
    assert [kv.key for kv in all_kvs(s)] == [b"a"]
    assert s.get(b"a") == KeyValue(b"a", 2, 3, 2, b"new", 0)


# --- put -------------------------------------------------------------------------------------


def test_put_lease_and_prev_kv() -> None:
    s = KVStore()
    assert s.put(b"k", b"v", lease=7, prev_kv=True).prev_kv is None
    r = s.put(b"k", b"w", prev_kv=True)
    assert r.prev_kv == KeyValue(b"k", 2, 2, 1, b"v", 7)
    assert s.get(b"k") == KeyValue(b"k", 2, 3, 2, b"w", 0)  # a put without lease detaches
    assert s.put(b"k", b"z").prev_kv is None  # prev_kv only when asked


def test_ignore_value_and_ignore_lease() -> None:
    s = KVStore()
    s.put(b"k", b"v", lease=7)
    s.put(b"k", ignore_value=True, lease=9)
    assert s.get(b"k") == KeyValue(b"k", 2, 3, 2, b"v", 9)
    s.put(b"k", b"w", ignore_lease=True)
    assert s.get(b"k") == KeyValue(b"k", 2, 4, 3, b"w", 9)
    s.put(b"k", ignore_value=True, ignore_lease=True)
    assert s.get(b"k") == KeyValue(b"k", 2, 5, 4, b"w", 9)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"key": b""}, EmptyKeyError, "etcdserver: key is not provided"),
        ({"key": b"missing", "ignore_value": True}, KeyNotFoundError, "etcdserver: key not found"),
        ({"key": b"missing", "ignore_lease": True}, KeyNotFoundError, "etcdserver: key not found"),
        ({"key": b"k", "value": b"x", "ignore_value": True}, ValueProvidedError,
         "etcdserver: value is provided"),
        ({"key": b"k", "lease": 3, "ignore_lease": True}, LeaseProvidedError,
         "etcdserver: lease is provided"),
    ],
)  # fmt: skip
def test_put_errors_leave_state_alone(
    kwargs: dict[str, Any], error: type[MinietcdError], message: str
) -> None:
    rec = Recorder()
    s = KVStore(rec)
    s.put(b"k", b"v")
    before = (s.snapshot(), s.hash_kv(), s.size_bytes())
    with pytest.raises(error) as info:
        s.put(**kwargs)
    assert info.value.etcd_message == message
    assert (s.snapshot(), s.hash_kv(), s.size_bytes()) == before
    assert len(rec.calls) == 1
    s.put(b"k2", b"ok")  # the store still works: no txn left open
    assert s.current_revision == 3


def test_bad_types_rejected() -> None:
    s = KVStore()
    with pytest.raises(TypeError):
        s.put("k", b"v")  # type: ignore[arg-type]  # a wrong type on purpose
    with pytest.raises(TypeError):
        s.put(b"k", "v")  # type: ignore[arg-type]  # a wrong type on purpose
    with pytest.raises(ValueError):
        s.put(b"k", b"v", lease=1 << 63)
    assert s.current_revision == 1
    s.put(bytearray(b"k"), memoryview(b"v"))  # type: ignore[arg-type]  # other buffer types on purpose
    assert s.get(b"k") == KeyValue(b"k", 2, 2, 1, b"v", 0)


# --- delete ----------------------------------------------------------------------------------


def test_delete_range_returns_count_and_prev_kvs() -> None:
    s = KVStore()
    for k in (b"a", b"b", b"c", b"d"):
        s.put(k, k.upper())
    r = s.delete_range(b"b", b"d")
    assert r.deleted == 2 and r.revision == 6
    assert r.prev_kvs == [KeyValue(b"b", 3, 3, 1, b"B", 0), KeyValue(b"c", 4, 4, 1, b"C", 0)]
    assert [kv.key for kv in all_kvs(s)] == [b"a", b"d"]
    assert s.delete_range(b"\0", b"\0").deleted == 2
    assert all_kvs(s) == []
    with pytest.raises(EmptyKeyError):
        s.delete_range(b"", b"\0")


# --- range -----------------------------------------------------------------------------------


@pytest.fixture
def abcde() -> KVStore:
    s = KVStore()
    for k in (b"a", b"b", b"c", b"d", b"e"):
        s.put(k, b"v" + k)
    return s  # current revision 6


def test_range_limit_and_more(abcde: KVStore) -> None:
    r = abcde.range(b"a", b"\0", RangeOptions(limit=2))
    assert [kv.key for kv in r.kvs] == [b"a", b"b"] and r.count == 5 and r.more
    r = abcde.range(b"a", b"\0", RangeOptions(limit=5))
    assert len(r.kvs) == 5 and not r.more
    r = abcde.range(b"a", b"\0", RangeOptions(limit=-1))  # <= 0: no limit (etcd)
    assert len(r.kvs) == 5 and not r.more


def test_range_count_only_and_keys_only(abcde: KVStore) -> None:
    r = abcde.range(b"b", b"d", RangeOptions(count_only=True))
    assert (r.kvs, r.count, r.more) == ([], 2, False)
    r = abcde.range(b"b", b"d", RangeOptions(keys_only=True))
    assert [(kv.key, kv.value, kv.version) for kv in r.kvs] == [(b"b", b"", 1), (b"c", b"", 1)]
    assert abcde.get(b"b") == KeyValue(b"b", 3, 3, 1, b"vb", 0)  # the store's copy untouched


def test_range_at_revision(abcde: KVStore) -> None:
    r = abcde.range(b"\0", b"\0", RangeOptions(revision=3))
    assert [kv.key for kv in r.kvs] == [b"a", b"b"]
    assert r.revision == 6  # the header revision is the current one, not the one read at
    with pytest.raises(FutureRevisionError) as info:
        abcde.range(b"a", b"", RangeOptions(revision=7))
    assert info.value.etcd_message == "etcdserver: mvcc: required revision is a future revision"


def test_range_empty_key_is_harmless(abcde: KVStore) -> None:
    assert abcde.range(b"").kvs == []


# --- compaction ------------------------------------------------------------------------------


def test_compaction_drops_history() -> None:
    s = KVStore()
    s.put(b"a", b"1")  # 2
    s.put(b"a", b"2")  # 3
    s.put(b"b", b"1")  # 4
    s.delete_range(b"b")  # 5
    s.put(b"a", b"3")  # 6
    size_before = s.size_bytes()
    s.compact(5)
    assert s.compact_revision == 5
    assert s.size_bytes() < size_before
    # Reads at the compact revision still work; below it they fail with etcd's message.
    assert all_kvs(s, 5) == [KeyValue(b"a", 2, 3, 2, b"2", 0)]
    with pytest.raises(CompactedRevisionError) as info:
        all_kvs(s, 4)
    assert info.value.etcd_message == "etcdserver: mvcc: required revision has been compacted"
    assert all_kvs(s) == [KeyValue(b"a", 2, 6, 3, b"3", 0)]
    # Only the values still visible at 5 (a@3) and the later change (a@6) remain stored.
    assert [r.main for r in s._records] == [3, 6]
    # The deleted key b is gone from the index entirely.
    assert s._index.key_index(b"b") is None


def test_compaction_errors() -> None:
    s = KVStore()
    s.put(b"a", b"1")
    s.put(b"a", b"2")
    with pytest.raises(FutureRevisionError):
        s.compact(4)
    s.compact(2)
    with pytest.raises(CompactedRevisionError):
        s.compact(2)  # compacting a compacted revision
    with pytest.raises(CompactedRevisionError):
        s.compact(1)
    s.compact(3)  # up to the current revision is fine
    assert all_kvs(s) == [KeyValue(b"a", 2, 3, 2, b"2", 0)]
    with pytest.raises(TxnStateError), s.write():
        s.compact(3)


def test_compaction_keeps_versions_right() -> None:
    s = KVStore()
    for i in range(5):
        s.put(b"k", str(i).encode())
    s.compact(4)
    s.put(b"k", b"x")
    assert s.get(b"k") == KeyValue(b"k", 2, 7, 6, b"x", 0)
    assert s.get(b"k", 4) == KeyValue(b"k", 2, 4, 3, b"2", 0)


# --- events ----------------------------------------------------------------------------------


def test_events_one_revision_per_txn_with_prev_kv() -> None:
    rec = Recorder()
    s = KVStore(rec)
    s.put(b"a", b"1", lease=5)
    with s.write() as txn:
        txn.put(b"a", b"2")
        txn.put(b"b", b"1")
        txn.delete_range(b"a")
    assert [rev for rev, _ in rec.calls] == [2, 3]
    rev, events = rec.calls[1]
    assert [e.type for e in events] == [EventType.PUT, EventType.PUT, EventType.DELETE]
    assert events[0] == Event(
        EventType.PUT, KeyValue(b"a", 2, 3, 2, b"2", 0), KeyValue(b"a", 2, 2, 1, b"1", 5)
    )
    assert events[1] == Event(EventType.PUT, KeyValue(b"b", 3, 3, 1, b"1", 0), None)
    # A delete event carries only key and mod revision; prev_kv is the value before the txn.
    assert events[2] == Event(
        EventType.DELETE, KeyValue(b"a", mod_revision=3), KeyValue(b"a", 2, 2, 1, b"1", 5)
    )
    assert all(e.kv.mod_revision == rev for e in events)


def test_end_returns_events_and_observer_can_be_swapped() -> None:
    s = KVStore()
    txn = s.write()
    txn.put(b"a", b"1")
    assert txn.end() == [Event(EventType.PUT, KeyValue(b"a", 2, 2, 1, b"1", 0))]
    rec = Recorder()
    s.set_observer(rec)
    s.put(b"b", b"2")
    s.set_observer(None)
    s.put(b"c", b"3")
    assert [r for r, _ in rec.calls] == [3]


def test_events_since_replays_history() -> None:
    rec = Recorder()
    s = KVStore(rec)
    s.put(b"a", b"1")
    with s.write() as txn:
        txn.put(b"a", b"2")
        txn.put(b"b", b"1")
    s.delete_range(b"a")
    live = [e for _, evs in rec.calls for e in evs]
    assert s.events_since(0) == live
    assert s.events_since(3) == live[1:]
    assert s.events_since(5) == []
    s.compact(3)
    assert s.events_since(4) == live[3:]
    with pytest.raises(CompactedRevisionError):
        s.events_since(2)


# --- txn state and rollback ------------------------------------------------------------------


def test_exception_in_txn_rolls_back_everything() -> None:
    rec = Recorder()
    s = KVStore(rec)
    s.put(b"a", b"1")
    s.put(b"b", b"1")
    before = (s.snapshot(), s.hash_kv(), s.size_bytes(), s.current_revision)
    with pytest.raises(KeyNotFoundError), s.write() as txn:
        txn.put(b"a", b"2")
        txn.delete_range(b"b")
        txn.put(b"b", b"again")
        txn.put(b"new", b"x")
        txn.delete_range(b"new")
        txn.put(b"zz", ignore_value=True)  # fails: nothing of this txn may remain
    assert (s.snapshot(), s.hash_kv(), s.size_bytes(), s.current_revision) == before
    assert s._index.key_index(b"new") is None
    assert len(rec.calls) == 2
    s.put(b"a", b"3")
    assert s.get(b"a") == KeyValue(b"a", 2, 4, 2, b"3", 0)


def test_abort_and_misuse() -> None:
    s = KVStore()
    txn = s.write()
    with pytest.raises(TxnStateError):
        s.write()  # one write txn at a time
    with pytest.raises(TxnStateError):
        s.snapshot()
    txn.put(b"a", b"1")
    txn.abort()
    assert s.current_revision == 1 and all_kvs(s) == []
    for op in (txn.end, txn.abort, lambda: txn.put(b"a", b"1"), lambda: txn.range(b"a")):
        with pytest.raises(TxnStateError):
            op()
    with s.write() as t2:  # a new txn can start
        t2.put(b"a", b"1")
    assert s.current_revision == 2


def test_observer_error_propagates_after_commit() -> None:
    def boom(rev: int, events: Sequence[Event]) -> None:
        raise RuntimeError("hub bug")

    s = KVStore(boom)
    with pytest.raises(RuntimeError):
        s.put(b"a", b"1")
    assert s.current_revision == 2  # committed: the state machine never half-applies
    s.set_observer(None)
    s.put(b"b", b"1")


# --- misc ------------------------------------------------------------------------------------


def test_leased_keys() -> None:
    s = KVStore()
    s.put(b"a", b"1", lease=5)
    s.put(b"b", b"1", lease=6)
    s.put(b"c", b"1")
    s.put(b"b", b"2")
    assert s.leased_keys() == [(b"a", 5)]


def test_size_bytes_tracks_records() -> None:
    s = KVStore()
    assert s.size_bytes() == 0
    s.put(b"k", b"x" * 1000)
    one = s.size_bytes()
    assert one >= 1001
    s.put(b"k", b"y" * 1000)
    assert s.size_bytes() > 2 * 1000
    s.compact(3)
    assert s.size_bytes() == one
