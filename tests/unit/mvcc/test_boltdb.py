"""The bbolt writer/reader (minietcd.mvcc.bolt_writer, bolt_reader) and etcd's schema on top
(minietcd.mvcc.boltdb): page format, etcd's schema, round trips.

The compat tests at the end hand our files to the real etcdctl 3.4 (``snapshot status``,
``snapshot restore``) and start a real etcd on the restored data directory. They need
/usr/bin/etcd and /usr/bin/etcdctl; skipped when missing, except in CI ($CI set).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from hypothesis import given, settings
from hypothesis import strategies as st

from minietcd.api.etcdserverpb import rpc_pb2
from minietcd.api.mvccpb import kv_pb2
from minietcd.errors import MvccSnapshotError
from minietcd.lease.lessor import Lessor
from minietcd.mvcc.bolt_format import BRANCH_PAGE, LEAF_PAGE, PAGE_SIZE, BoltFormatError, fnv64a
from minietcd.mvcc.bolt_reader import read_bolt, read_bolt_meta
from minietcd.mvcc.bolt_writer import write_bolt
from minietcd.mvcc.boltdb import (
    append_sha256,
    read_bolt_snapshot,
    snapshot_status,
    split_sha256,
    write_bolt_snapshot,
)
from minietcd.mvcc.bucket_values import (
    ETCD_BUCKETS,
    BoltLease,
    decode_lease,
    decode_member,
    encode_lease,
    encode_member,
)
from minietcd.mvcc.codec import crc32c, decode_snapshot
from minietcd.mvcc.kvstore import KVStore

_PAGE_HDR = struct.Struct("<QHHI")

MEMBER_ID = 0x8E9E05C52164694D
MEMBER: dict[str, object] = {
    "id": MEMBER_ID,
    "name": "default",
    "peerURLs": ["http://localhost:2380"],
    "clientURLs": ["http://localhost:2379"],
    "isLearner": False,
}


def _pages(db: bytes, page_size: int = PAGE_SIZE) -> list[tuple[int, int, int, int]]:
    """(id, flags, count, overflow) of each page start, skipping overflow continuation."""
    out = []
    pgid = 0
    while pgid * page_size < len(db):
        pid, flags, count, overflow = _PAGE_HDR.unpack_from(db, pgid * page_size)
        out.append((pid, flags, count, overflow))
        pgid += overflow + 1
    return out


def _store(n_keys: int = 300) -> KVStore:
    """A few hundred keys, several revisions of some, a delete, a compaction, a later put."""
    kv = KVStore()
    for i in range(n_keys):
        kv.put(b"key/%05d" % i, b"value-%d" % i * 4)
    for i in range(0, n_keys, 7):
        kv.put(b"key/%05d" % i, b"second-%d" % i)
    with kv.write() as txn:
        txn.put(b"txn/a", b"1", lease=0x1234)
        txn.put(b"txn/b", b"2")
        txn.delete_range(b"key/00003")
    kv.delete_range(b"key/00010", b"key/00013")
    kv.compact(kv.current_revision - 20)
    for i in range(0, n_keys, 50):
        kv.put(b"key/%05d" % i, b"third")
    kv.put(b"last", b"!")
    return kv


def _records(kv: KVStore) -> list[tuple[bytes, bytes]]:
    return list(decode_snapshot(kv.snapshot())[2])


# --- the generic bolt layer ---------------------------------------------------------------------


def test_fnv64a_known_vectors() -> None:
    assert fnv64a(b"") == 0xCBF29CE484222325
    assert fnv64a(b"a") == 0xAF63DC4C8601EC8C
    assert fnv64a(b"foobar") == 0x85944171F73967E8


def test_empty_buckets_layout() -> None:
    db = write_bolt({b"a": {}, b"b": {b"k": b"v"}})
    assert len(db) == 4 * PAGE_SIZE  # meta, meta, freelist, root leaf
    meta = read_bolt_meta(db)
    assert (meta.page_size, meta.root, meta.freelist, meta.pgid, meta.txid) == (PAGE_SIZE, 3, 2, 4, 1)
    pages = _pages(db)
    assert [p[:2] for p in pages] == [(0, 0x04), (1, 0x04), (2, 0x10), (3, LEAF_PAGE)]
    assert pages[2][2] == 0  # empty freelist
    assert read_bolt(db) == {b"a": {}, b"b": {b"k": b"v"}}


def test_meta_checksum_is_checked_and_the_other_meta_is_used() -> None:
    db = bytearray(write_bolt({b"b": {b"k": b"v"}}))
    db[PAGE_SIZE + 16 + 56] ^= 1  # meta 1's checksum: fall back to meta 0
    assert read_bolt_meta(bytes(db)).txid == 0
    assert read_bolt(bytes(db)) == {b"b": {b"k": b"v"}}
    db[16 + 40] ^= 1  # meta 0's pgid, under its checksum: nothing valid is left
    with pytest.raises(BoltFormatError, match="no valid meta"):
        read_bolt(bytes(db))


def test_many_keys_spill_into_leaves_under_branches() -> None:
    content = {b"k%06d" % i: b"v" * 40 for i in range(20_000)}
    db = write_bolt({b"big": content, b"small": {b"x": b"y"}})
    kinds = [p[1] for p in _pages(db)]
    assert kinds.count(LEAF_PAGE) > 300
    assert kinds.count(BRANCH_PAGE) >= 3  # a root branch over several branch pages
    assert read_bolt(db) == {b"big": content, b"small": {b"x": b"y"}}


def test_values_larger_than_a_page_use_overflow_pages() -> None:
    content = {b"a": b"1", b"huge": bytes(range(256)) * 100, b"z": b"2" * 5000}
    db = write_bolt({b"b": content})
    overflows = [p for p in _pages(db) if p[3]]
    assert sorted(p[3] for p in overflows) == [1, 6]  # 5000+ and 25600+ bytes
    assert read_bolt(db) == {b"b": content}


def test_inline_only_when_a_quarter_page_fits() -> None:
    small = {b"k%d" % i: b"v" for i in range(10)}
    big = {b"k%d" % i: b"v" * 100 for i in range(10)}
    db = write_bolt({b"small": small, b"big": big})
    # root leaf + one leaf for "big"; "small" lives inside the root leaf.
    assert [p[1] for p in _pages(db)][3:] == [LEAF_PAGE, LEAF_PAGE]
    assert read_bolt(db) == {b"small": small, b"big": big}


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(
        st.binary(min_size=1, max_size=12),
        st.dictionaries(st.binary(min_size=1, max_size=40), st.binary(max_size=1500), max_size=120),
        max_size=6,
    )
)
def test_round_trip_any_buckets(buckets: dict[bytes, dict[bytes, bytes]]) -> None:
    # A 1 KiB page makes deep trees and overflow pages out of small examples.
    db = write_bolt(buckets, page_size=1024)
    assert len(db) % 1024 == 0
    assert read_bolt(db) == buckets


def test_reader_refuses_damaged_files() -> None:
    db = write_bolt({b"b": {b"k%04d" % i: b"v" * 50 for i in range(400)}})
    with pytest.raises(BoltFormatError, match=r"too small|shorter"):
        read_bolt(db[: 5 * PAGE_SIZE])
    # A page header naming the wrong page.
    broken = bytearray(db)
    struct.pack_into("<Q", broken, 4 * PAGE_SIZE, 99)
    with pytest.raises(BoltFormatError, match="says it is page"):
        read_bolt(bytes(broken))
    # An extra page nobody references and nobody freed (tx.Check's "unreachable unfreed").
    meta = read_bolt_meta(db)
    grown = bytearray(db + bytes(PAGE_SIZE))
    for pgid in (0, 1):
        off = pgid * PAGE_SIZE + 16
        struct.pack_into("<Q", grown, off + 40, meta.pgid + 1)
        struct.pack_into("<Q", grown, off + 56, fnv64a(bytes(grown[off : off + 56])))
    with pytest.raises(BoltFormatError, match="unreachable unfreed"):
        read_bolt(bytes(grown))
    assert issubclass(BoltFormatError, MvccSnapshotError)


def test_sha256_trailer() -> None:
    db = write_bolt({b"b": {}})
    full = append_sha256(db)
    assert split_sha256(full) == (db, hashlib.sha256(db).digest())
    assert split_sha256(db) == (db, None)
    bad = full[:-1] + bytes([full[-1] ^ 1])
    with pytest.raises(BoltFormatError, match="sha256"):
        split_sha256(bad)


# --- etcd's schema ------------------------------------------------------------------------------


def test_kv_values_are_mvccpb_keyvalues() -> None:
    kv = _store(20)
    for rev_key, raw in _records(kv):
        msg = kv_pb2.KeyValue.FromString(raw)
        assert msg.SerializeToString() == raw
        assert len(rev_key) in (17, 18) and rev_key[8:9] == b"_"
        if len(rev_key) == 18:
            assert rev_key[-1:] == b"t" and msg.value == b""


def _lease_message() -> type:
    """leasepb.Lease built from etcd's .proto text at run time (no generated module needed)."""
    fdp = descriptor_pb2.FileDescriptorProto(name="test_leasepb.proto", package="leasepb", syntax="proto3")
    m = fdp.message_type.add(name="Lease")
    for number, name in enumerate(("ID", "TTL", "RemainingTTL"), start=1):
        m.field.add(name=name, number=number, type=descriptor_pb2.FieldDescriptorProto.TYPE_INT64)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("leasepb.Lease"))


@pytest.mark.parametrize(
    "lease", [BoltLease(1, 5, 0), BoltLease(0x7FFF_0000_1234, 3600, 1200), BoltLease(-5, 1, 0)]
)
def test_lease_encoding_matches_leasepb(lease: BoltLease) -> None:
    cls = _lease_message()
    expect = cls(ID=lease.id, TTL=lease.ttl, RemainingTTL=lease.remaining_ttl).SerializeToString()
    assert encode_lease(lease) == expect
    assert decode_lease(expect) == lease


def test_member_json_is_gos() -> None:
    # What etcd 3.4 writes for its default member (json.Marshal(membership.Member)).
    key, value = encode_member(MEMBER)
    assert key == b"8e9e05c52164694d"
    assert value == (
        b'{"id":10276657743932975437,"peerURLs":["http://localhost:2380"],'
        b'"name":"default","clientURLs":["http://localhost:2379"]}'
    )
    assert decode_member(key, value) == MEMBER
    learner = {"id": 1, "name": "", "peerURLs": ["http://a?x=<&>"], "clientURLs": [], "isLearner": True}
    key, value = encode_member(learner)
    assert value == b'{"id":1,"peerURLs":["http://a?x=\\u003c\\u0026\\u003e"],"isLearner":true}'
    assert decode_member(key, value) == learner


def test_snapshot_buckets_are_etcds() -> None:
    kv = _store(50)
    db = write_bolt_snapshot(
        kv,
        consistent_index=1234,
        leases=[BoltLease(0x1234, 60, 30)],
        members=[MEMBER],
        removed_members=[0xABC],
        cluster_version="3.4.0",
        alarms=[(MEMBER_ID, 1)],
    )
    buckets = read_bolt(db)
    assert tuple(buckets) == ETCD_BUCKETS
    assert buckets[b"key"] == dict(_records(kv))
    compact = struct.pack(">Q", kv.compact_revision) + b"_" + bytes(8)
    assert buckets[b"meta"] == {
        b"consistent_index": struct.pack(">Q", 1234),
        b"finishedCompactRev": compact,
        b"scheduledCompactRev": compact,
    }
    assert buckets[b"lease"] == {struct.pack(">q", 0x1234): encode_lease(BoltLease(0x1234, 60, 30))}
    assert list(buckets[b"members"]) == [b"8e9e05c52164694d"]
    assert buckets[b"members_removed"] == {b"abc": b"removed"}
    assert buckets[b"cluster"] == {b"clusterVersion": b"3.4.0"}
    alarm = rpc_pb2.AlarmMember(memberID=MEMBER_ID, alarm=rpc_pb2.NOSPACE)
    assert buckets[b"alarm"] == {alarm.SerializeToString(): b""}
    assert buckets[b"auth"] == {b"authRevision": struct.pack(">Q", 1)}


def test_snapshot_of_a_store_never_compacted_has_no_compact_keys() -> None:
    kv = KVStore()
    kv.put(b"a", b"1")
    meta = read_bolt(write_bolt_snapshot(kv, consistent_index=3))[b"meta"]
    assert set(meta) == {b"consistent_index"}
    snap = read_bolt_snapshot(write_bolt_snapshot(kv, consistent_index=3))
    assert (snap.current_revision, snap.compact_revision) == (2, -1)


def _round_trip(kv: KVStore) -> None:
    db = write_bolt_snapshot(kv, consistent_index=99)
    for data in (db, append_sha256(db)):
        snap = read_bolt_snapshot(data)
        assert snap.consistent_index == 99
        assert (snap.current_revision, snap.compact_revision) == (kv.current_revision, kv.compact_revision)
        restored = KVStore()
        snap.restore_into(restored)
        assert restored.snapshot() == kv.snapshot()
        assert restored.hash_kv() == kv.hash_kv()


def test_round_trip_store_leases_members() -> None:
    kv = _store()
    lessor = Lessor(clock=lambda: 0.0, min_ttl=5)
    lessor.grant(0x1234, 60)
    lessor.grant(7, 1)  # raised to min_ttl
    _round_trip(kv)
    db = write_bolt_snapshot(
        kv, consistent_index=5, leases=lessor.leases(), members=[MEMBER], removed_members=[3, 1]
    )
    snap = read_bolt_snapshot(db)
    assert snap.leases == [BoltLease(7, 5, 0), BoltLease(0x1234, 60, 0)]
    assert snap.members == [MEMBER]
    assert snap.removed_members == [1, 3]
    assert snap.cluster_version == "" and snap.alarms == []
    assert snap.records == _records(kv)


def test_round_trip_edge_stores() -> None:
    _round_trip(KVStore())  # nothing but empty buckets
    kv = KVStore()
    kv.put(b"a", b"1")
    kv.delete_range(b"a")
    kv.compact(kv.current_revision)  # every record compacted away: revision from the meta
    assert _records(kv) == []
    _round_trip(kv)
    big = KVStore()
    for i in range(3000):
        big.put(b"k%06d" % (i % 1000), os.urandom(i % 200))
    big.put(b"huge", b"x" * 100_000)
    big.compact(1500)
    _round_trip(big)


def test_read_refuses_what_is_not_an_etcd_backend() -> None:
    with pytest.raises(BoltFormatError, match="no 'key' bucket"):
        read_bolt_snapshot(write_bolt({b"meta": {}}))
    with pytest.raises(BoltFormatError, match="bad revision key"):
        read_bolt_snapshot(write_bolt({b"key": {b"short": b""}, b"meta": {}}))
    with pytest.raises(MvccSnapshotError):
        read_bolt_snapshot(b"MVCCSNAP" + bytes(10_000))


def test_status_hash_is_crc32c_over_all_buckets() -> None:
    kv = _store(30)
    db = write_bolt_snapshot(kv, consistent_index=1, members=[MEMBER])
    buckets = read_bolt(db)
    h = 0
    for name, content in sorted(buckets.items()):
        h = crc32c(name, h)
        for k, v in sorted(content.items()):
            h = crc32c(k + v, h)
    st_ = snapshot_status(db)
    assert st_.hash == h
    assert st_.total_key == sum(len(c) for c in buckets.values())
    assert st_.revision == kv.current_revision
    assert st_.total_size == len(db)


# --- against the real etcdctl / etcd ------------------------------------------------------------

ETCD = os.environ.get("MINIETCD_ETCD_BIN", "/usr/bin/etcd")
ETCDCTL = os.environ.get("MINIETCD_ETCDCTL_BIN", "/usr/bin/etcdctl")


def _require(binary: str) -> str:
    if os.access(binary, os.X_OK):
        return binary
    found = shutil.which(os.path.basename(binary))
    if found:
        return found
    msg = f"{binary} not found: install etcd 3.4 (Debian packages 'etcd-server' / 'etcd-client')"
    if os.environ.get("CI"):
        pytest.fail(msg + " -- required in CI")
    pytest.skip(msg)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD")}
    env["ETCDCTL_API"] = "3"
    return env


def _run(*argv: str, timeout: float = 30) -> str:
    out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=_env())
    assert out.returncode == 0, f"{argv} failed ({out.returncode}): {out.stderr.strip()}"
    return out.stdout


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@pytest.fixture(scope="module")
def compat_snapshot(tmp_path_factory: pytest.TempPathFactory) -> tuple[KVStore, Path]:
    kv = _store()
    db = write_bolt_snapshot(
        kv,
        consistent_index=4242,
        leases=[BoltLease(0x1234, 600, 0)],
        members=[MEMBER],
        cluster_version="3.4.0",
    )
    path = tmp_path_factory.mktemp("bolt") / "snapshot.db"
    path.write_bytes(append_sha256(db))  # as `etcdctl snapshot save` stores it
    return kv, path


@pytest.mark.compat
def test_etcdctl_snapshot_status_accepts_our_file(compat_snapshot: tuple[KVStore, Path]) -> None:
    etcdctl = _require(ETCDCTL)
    kv, path = compat_snapshot
    records = _records(kv)
    assert len(records) > 300 and any(len(k) == 18 for k, _v in records)
    for data in (path.read_bytes(), split_sha256(path.read_bytes())[0]):
        path.with_suffix(".tmp").write_bytes(data)
        got = json.loads(_run(etcdctl, "snapshot", "status", str(path.with_suffix(".tmp")), "-w", "json"))
        ours = snapshot_status(data)
        # records + meta (3) + lease + member + clusterVersion + authRevision
        assert got == {
            "hash": ours.hash,
            "revision": kv.current_revision,
            "totalKey": len(records) + 3 + 1 + 1 + 1 + 1,
            "totalSize": len(split_sha256(data)[0]),
        }
        assert ours.revision == kv.current_revision


@pytest.fixture
def restored_etcd(compat_snapshot: tuple[KVStore, Path], tmp_path: Path) -> Iterator[tuple[str, Path]]:
    etcd, etcdctl = _require(ETCD), _require(ETCDCTL)
    _kv, path = compat_snapshot
    client, peer = _free_ports(2)
    peer_url = f"http://127.0.0.1:{peer}"
    data_dir = tmp_path / "restored.etcd"
    _run(
        etcdctl, "snapshot", "restore", str(path), "--data-dir", str(data_dir),
        "--name", "r1", "--initial-cluster", f"r1={peer_url}", "--initial-advertise-peer-urls", peer_url,
    )  # fmt: skip
    endpoint = f"http://127.0.0.1:{client}"
    with open(tmp_path / "etcd.log", "wb") as log:
        proc = subprocess.Popen(
            [
                etcd, "--name", "r1", "--data-dir", str(data_dir),
                "--listen-client-urls", endpoint, "--advertise-client-urls", endpoint,
                "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
                "--initial-cluster", f"r1={peer_url}",
            ],
            stdout=log, stderr=subprocess.STDOUT, env=_env(),
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 20
            while True:
                out = subprocess.run(
                    [etcdctl, "--endpoints", endpoint, "endpoint", "health"],
                    capture_output=True, env=_env(), timeout=10,
                )  # fmt: skip
                if out.returncode == 0:
                    break
                assert proc.poll() is None, (tmp_path / "etcd.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "restored etcd never became healthy"
                time.sleep(0.2)
            yield endpoint, data_dir
        finally:
            if proc.poll() is None:
                proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


@pytest.mark.compat
def test_real_etcd_serves_a_restored_snapshot(
    compat_snapshot: tuple[KVStore, Path], restored_etcd: tuple[str, Path]
) -> None:
    etcdctl = _require(ETCDCTL)
    kv, _path = compat_snapshot
    endpoint, _data_dir = restored_etcd

    def ctl(*args: str) -> Any:
        return json.loads(_run(etcdctl, "--endpoints", endpoint, *args, "-w", "json"))

    for key in (b"key/00000", b"key/00007", b"key/00123", b"txn/a", b"last"):
        got = ctl("get", key.decode())
        theirs = got["kvs"][0]
        mine = kv.get(key)
        assert mine is not None
        assert theirs["value"] == base64.b64encode(mine.value).decode()
        assert (theirs["mod_revision"], theirs["create_revision"], theirs["version"]) == (
            mine.mod_revision, mine.create_revision, mine.version,
        )  # fmt: skip
    assert "kvs" not in ctl("get", "key/00003")  # deleted
    assert ctl("get", "key/", "--prefix", "--keys-only")["count"] == kv.range(b"key/", b"key0").count
    # The same key space at the same revision: etcd's HashKV equals minietcd's.
    hashkv = ctl("endpoint", "hashkv")[0]["HashKV"]
    assert hashkv["header"]["revision"] == kv.current_revision
    assert hashkv["compact_revision"] == kv.compact_revision
    assert hashkv["hash"] == kv.hash_kv().hash
    # The lease came back, with the key the KeyValue says is attached to it.
    ttl = ctl("lease", "timetolive", "1234", "--keys")
    assert ttl["id"] == 0x1234 and ttl["granted-ttl"] == 600
    assert [base64.b64decode(k) for k in ttl["keys"]] == [b"txn/a"]
    # Compacted history stays compacted.
    out = subprocess.run(
        [etcdctl, "--endpoints", endpoint, "get", "last", "--rev", str(kv.compact_revision - 1)],
        capture_output=True, text=True, env=_env(), timeout=30,
    )  # fmt: skip
    assert out.returncode != 0 and "compacted" in out.stderr


@pytest.mark.compat
def test_we_read_the_file_real_etcd_writes(
    compat_snapshot: tuple[KVStore, Path], restored_etcd: tuple[str, Path]
) -> None:
    """etcd's own backend (after restore, a start and a put) reads back: free pages in its
    freelist, members it wrote as JSON, and its key bucket restoring into a KVStore."""
    etcdctl = _require(ETCDCTL)
    kv, _path = compat_snapshot
    endpoint, data_dir = restored_etcd
    _run(etcdctl, "--endpoints", endpoint, "put", "after", "restore")
    raw = _run(etcdctl, "--endpoints", endpoint, "snapshot", "save", str(data_dir.parent / "theirs.db"))
    assert "Snapshot saved" in raw
    theirs = (data_dir.parent / "theirs.db").read_bytes()
    status = json.loads(_run(etcdctl, "snapshot", "status", str(data_dir.parent / "theirs.db"), "-w", "json"))
    ours = snapshot_status(theirs)
    assert (ours.hash, ours.revision, ours.total_key, ours.total_size) == (
        status["hash"], status["revision"], status["totalKey"], status["totalSize"],
    )  # fmt: skip
    snap = read_bolt_snapshot(theirs)
    assert snap.current_revision == kv.current_revision + 1
    assert snap.compact_revision == kv.compact_revision
    assert [lease.id for lease in snap.leases] == [0x1234]
    buckets = read_bolt(split_sha256(theirs)[0])
    names = []
    for key, value in buckets[b"members"].items():
        member = decode_member(key, value)
        assert encode_member(member) == (key, value)  # Go's JSON, byte for byte
        names.append(str(member["name"]))
    # etcd 3.4's restore means to drop the old members but deletes KV keys of those names
    # instead, so ours survives next to the one etcd wrote for itself.
    assert sorted(names) == ["default", "r1"]
    restored = KVStore()
    snap.restore_into(restored)
    assert restored.get(b"after") is not None
    assert restored.get(b"key/00007") == kv.get(b"key/00007")
