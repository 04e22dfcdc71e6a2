"""HashKV equality across members, and snapshot / restore."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from minietcd.errors import CompactedRevisionError, FutureRevisionError, MvccSnapshotError
from minietcd.mvcc import KeyValue, KVStore, RangeOptions
from minietcd.mvcc.codec import crc32c


def feed(s: KVStore) -> KVStore:
    s.put(b"a", b"1", lease=3)
    s.put(b"b", b"2")
    with s.write() as txn:
        txn.put(b"a", b"3")
        txn.delete_range(b"b")
        txn.put(b"c", b"4")
    s.put(b"b", b"5")
    s.delete_range(b"c")
    return s  # current revision 6


def test_same_ops_same_hash() -> None:
    a, b = feed(KVStore()), feed(KVStore())
    assert a.hash_kv() == b.hash_kv()
    for rev in range(1, 7):
        assert a.hash_kv(rev) == b.hash_kv(rev)
    a.compact(4)
    b.compact(4)
    assert a.hash_kv() == b.hash_kv()
    assert a.hash_kv().compact_revision == 4 and a.hash_kv().revision == 6


def test_divergence_changes_hash() -> None:
    a, b = feed(KVStore()), feed(KVStore())
    a.put(b"x", b"1")
    b.put(b"x", b"2")
    assert a.hash_kv() != b.hash_kv()
    # The revisions before the divergence still agree.
    assert a.hash_kv(6).hash == b.hash_kv(6).hash
    c = feed(KVStore())
    c.put(b"x", b"1", lease=1)  # only the lease differs
    assert c.hash_kv().hash != a.hash_kv().hash


def test_hash_of_empty_store_is_crc_of_bucket_name() -> None:
    assert KVStore().hash_kv().hash == crc32c(b"key")


def test_hash_errors() -> None:
    s = feed(KVStore())
    with pytest.raises(FutureRevisionError):
        s.hash_kv(7)
    s.compact(4)
    with pytest.raises(CompactedRevisionError):
        s.hash_kv(4)  # etcd: rev <= compact revision is compacted for HashKV
    s.hash_kv(5)


def test_hash_ignores_uncommitted_txn() -> None:
    s = feed(KVStore())
    h = s.hash_kv()
    txn = s.write()
    txn.put(b"z", b"1")
    assert s.hash_kv() == h
    txn.abort()


def test_hashes_compare_only_at_equal_compact_revisions() -> None:
    # As with etcd's corruption check, hashes are comparable only with the same compact
    # revision, which HashKV reports next to the hash.
    a, b = feed(KVStore()), feed(KVStore())
    a.compact(5)
    assert a.hash_kv(6).compact_revision != b.hash_kv(6).compact_revision
    b.compact(5)
    assert a.hash_kv(6) == b.hash_kv(6)


def test_snapshot_round_trip() -> None:
    a = feed(KVStore())
    a.compact(3)
    data = a.snapshot()
    b = KVStore()
    b.put(b"junk", b"gone")  # restore discards everything first
    b.restore(data)
    assert b.snapshot() == data
    assert b.hash_kv() == a.hash_kv()
    assert (b.current_revision, b.compact_revision) == (6, 3)
    assert b.size_bytes() == a.size_bytes()
    for rev in (3, 4, 5, 6):
        opts = RangeOptions(revision=rev)
        assert b.range(b"\0", b"\0", opts) == a.range(b"\0", b"\0", opts)
    assert b._index.equal(a._index)
    # Both continue identically.
    for s in (a, b):
        s.put(b"a", b"next")
    assert a.hash_kv() == b.hash_kv()
    assert b.get(b"a") == KeyValue(b"a", 2, 7, 3, b"next", 0)


def test_snapshot_is_deterministic() -> None:
    assert feed(KVStore()).snapshot() == feed(KVStore()).snapshot()


def test_restore_of_empty_snapshot() -> None:
    a = feed(KVStore())
    a.restore(KVStore().snapshot())
    assert a.current_revision == 1 and a.compact_revision == -1 and len(a) == 0


@pytest.mark.parametrize(
    "mangle",
    [
        lambda d: d[:-1],
        lambda d: b"X" + d[1:],
        lambda d: d[:20] + bytes([d[20] ^ 1]) + d[21:],
        lambda d: b"",
        lambda d: d + b"\0",
    ],
)
def test_bad_snapshot_leaves_store_alone(mangle: Callable[[bytes], bytes]) -> None:
    a = feed(KVStore())
    before = a.snapshot()
    with pytest.raises(MvccSnapshotError):
        a.restore(mangle(before))
    assert a.snapshot() == before


def test_restore_checks_consistency_behind_a_valid_checksum() -> None:
    from minietcd.mvcc.codec import encode_kv, encode_snapshot
    from minietcd.mvcc.revision import Revision

    rec = (Revision(2).to_bytes(), encode_kv(KeyValue(b"a", 2, 2, 1, b"v")))
    rec_bad_mod = (Revision(3).to_bytes(), encode_kv(KeyValue(b"a", 2, 9, 2, b"v")))
    cases = [
        encode_snapshot(5, -1, [rec], 1),  # current revision does not match the records
        encode_snapshot(2, -1, [rec, rec], 2),  # records out of order
        encode_snapshot(3, -1, [rec, rec_bad_mod], 2),  # mod revision disagrees with key
    ]
    s = KVStore()
    for data in cases:
        with pytest.raises(MvccSnapshotError):
            s.restore(data)
    assert s.current_revision == 1
    s.restore(encode_snapshot(2, -1, [rec], 1))
    assert s.get(b"a") == KeyValue(b"a", 2, 2, 1, b"v")
