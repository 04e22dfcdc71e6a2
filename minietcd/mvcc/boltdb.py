"""etcd's backend file format: a bbolt database, written and read without Go.

``etcdctl snapshot status`` / ``snapshot restore`` open a snapshot as a **bbolt** file (etcd 3.4
vendors bbolt v1.3.6) and etcd's server opens it as its backend. So for minietcd's
Maintenance.Snapshot to feed real tools, it must stream a real bbolt file holding etcd's
buckets. Two layers:

* :func:`~minietcd.mvcc.bolt_writer.write_bolt` / :func:`~minietcd.mvcc.bolt_reader.read_bolt`:
  a bbolt file <-> ``{bucket name: {key: value}}`` (one level of buckets, which is all etcd
  uses); the page layout is drawn in :mod:`.bolt_format`;
* this module, :func:`write_bolt_snapshot` / :func:`read_bolt_snapshot`: etcd 3.4's schema on top —
  a :class:`~minietcd.mvcc.kvstore.KVStore` plus leases, members and the applied index <->
  the buckets etcd keeps (``mvcc/kvstore.go``, ``lease/lessor.go``,
  ``etcdserver/api/membership/store.go``, ``etcdserver/api/v3alarm``, ``auth/store.go``).

Snapshot streams: etcd's Snapshot RPC sends the bolt file followed by its SHA-256, and
``snapshot restore`` checks it (a file whose size is 32 more than a multiple of 512 carries
one): see :func:`append_sha256` / :func:`split_sha256`.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from minietcd.mvcc.backend import ReadView
from minietcd.mvcc.bolt_format import PAGE_SIZE, U64_MASK, BoltFormatError
from minietcd.mvcc.bolt_reader import read_bolt, read_bolt_meta
from minietcd.mvcc.bolt_writer import write_bolt
from minietcd.mvcc.bucket_values import (
    AUTH_BUCKETS,
    AUTH_REVISION,
    B_ALARM,
    B_AUTH,
    B_AUTH_ROLES,
    B_AUTH_USERS,
    B_CLUSTER,
    B_KEY,
    B_LEASE,
    B_MEMBERS,
    B_MEMBERS_REMOVED,
    B_META,
    ETCD_BUCKETS,
    K_AUTH_REVISION,
    K_CLUSTER_VERSION,
    K_CONSISTENT_INDEX,
    K_FINISHED_COMPACT,
    K_SCHEDULED_COMPACT,
    BoltLease,
    LeaseLike,
    decode_alarm,
    decode_lease,
    decode_member,
    encode_alarm,
    encode_lease,
    encode_member,
)
from minietcd.mvcc.codec import crc32c, decode_kv, decode_snapshot, encode_snapshot
from minietcd.mvcc.kvstore import KVStore
from minietcd.mvcc.revision import (
    MARKED_REV_BYTES_LEN,
    REV_BYTES_LEN,
    Revision,
    is_tombstone_bytes,
)

_U64_BE = struct.Struct(">Q")
_SHA256_LEN = 32


# --- the snapshot stream's SHA-256 trailer -------------------------------------------------------


def append_sha256(db: bytes) -> bytes:
    """``db`` followed by its SHA-256: what etcd's Snapshot RPC streams and
    ``etcdctl snapshot save`` writes (``snapshot restore`` verifies it)."""
    return db + hashlib.sha256(db).digest()


def split_sha256(data: bytes) -> tuple[bytes, bytes | None]:
    """``(db, sha256 or None)``, detecting the trailer as etcdctl does (size % 512 == 32);
    raises BoltFormatError when a trailer is present but does not match."""
    if len(data) % 512 != _SHA256_LEN:
        return data, None
    db, digest = data[:-_SHA256_LEN], data[-_SHA256_LEN:]
    if hashlib.sha256(db).digest() != digest:
        raise BoltFormatError("snapshot sha256 trailer does not match the database")
    return db, digest


@dataclass(slots=True)
class BoltSnapshot:
    """What :func:`read_bolt_snapshot` recovers from an etcd backend file."""

    #: etcd's derivation: the newest main revision in ``key``, or the compaction if later.
    current_revision: int
    #: ``finishedCompactRev``; -1 when the store was never compacted.
    compact_revision: int
    #: ``scheduledCompactRev``; differs from the finished one only if etcd died mid-compaction.
    scheduled_compact_revision: int
    #: ``meta/consistent_index``: the Raft index the file reflects (0 if absent).
    consistent_index: int
    #: ``(revision key, marshalled mvccpb.KeyValue)`` of the ``key`` bucket, in revision order.
    records: list[tuple[bytes, bytes]]
    leases: list[BoltLease]
    #: Members in minietcd's ``Member.to_json`` form, by id.
    members: list[dict[str, object]]
    removed_members: list[int]
    #: ``cluster/clusterVersion``, "" if absent.
    cluster_version: str
    #: ``(member id, alarm type)`` pairs, as etcdserverpb.AlarmMember.
    alarms: list[tuple[int, int]] = field(default_factory=list)
    #: The auth store's buckets (``auth``, ``authUsers``, ``authRoles``) as they are: users,
    #: roles, whether auth is on and the auth revision (names as keys).
    auth: dict[bytes, dict[bytes, bytes]] = field(default_factory=dict)

    def kv_snapshot(self) -> bytes:
        """The records as a :meth:`KVStore.snapshot` (what :meth:`KVStore.restore` takes)."""
        return encode_snapshot(
            self.current_revision, self.compact_revision, iter(self.records), len(self.records)
        )

    def restore_into(self, kv: KVStore) -> None:
        """Replace ``kv``'s state with the file's (MvccSnapshotError and ``kv`` unchanged on an
        inconsistent key bucket)."""
        kv.restore(self.kv_snapshot())



def _u64_be(value: int, what: str) -> bytes:
    if not 0 <= value <= U64_MASK:
        raise ValueError(f"{what} {value} does not fit in uint64")
    return _U64_BE.pack(value)


def write_bolt_snapshot(
    kv: KVStore,
    *,
    consistent_index: int,
    leases: Iterable[LeaseLike] = (),
    members: Iterable[Mapping[str, object]] = (),
    removed_members: Iterable[int] = (),
    cluster_version: str = "",
    alarms: Iterable[tuple[int, int]] = (),
    page_size: int = PAGE_SIZE,
) -> bytes:
    """``kv`` and the server's other applied state as the etcd 3.4 backend file a real etcd
    would have at the same point (without the SHA-256 trailer: see :func:`append_sha256`).

    ``members`` are ``Member.to_json()`` dicts; ``leases`` anything with ``id``, ``ttl`` and
    ``remaining_ttl`` (``Lessor.leases()`` or :class:`BoltLease`); ``alarms`` ``(member id,
    AlarmType)``. Raises TxnStateError while ``kv`` has a write txn open.
    """
    # The current revision is not stored: etcd derives it from the records and the
    # compaction on open, as read_bolt_snapshot does.
    _current, compact, records = decode_snapshot(kv.snapshot())
    buckets: dict[bytes, dict[bytes, bytes]] = {name: {} for name in ETCD_BUCKETS}
    buckets[B_KEY] = dict(records)

    meta = buckets[B_META]
    meta[K_CONSISTENT_INDEX] = _u64_be(consistent_index, "consistent index")
    if compact >= 0:
        # etcd writes scheduledCompactRev when a compaction is accepted and
        # finishedCompactRev when it is done; ours are done at once, so both are equal.
        meta[K_SCHEDULED_COMPACT] = meta[K_FINISHED_COMPACT] = Revision(compact, 0).to_bytes()

    for lease in leases:
        buckets[B_LEASE][_U64_BE.pack(lease.id & U64_MASK)] = encode_lease(lease)
    for member in members:
        k, v = encode_member(member)
        buckets[B_MEMBERS][k] = v
    for mid in removed_members:
        buckets[B_MEMBERS_REMOVED][f"{mid:x}".encode()] = b"removed"
    if cluster_version:
        buckets[B_CLUSTER][K_CLUSTER_VERSION] = cluster_version.encode()
    for member_id, alarm in alarms:
        # etcdserverpb.AlarmMember{MemberID uint64 = 1, Alarm enum = 2}, value empty.
        if not alarm:
            raise ValueError(f"alarm of member {member_id:x} has type NONE")
        buckets[B_ALARM][encode_alarm(member_id, alarm)] = b""
    buckets[B_AUTH][K_AUTH_REVISION] = _U64_BE.pack(AUTH_REVISION)
    return write_bolt(buckets, page_size=page_size)


def write_bolt_from_view(view: ReadView, *, page_size: int = PAGE_SIZE) -> bytes:
    """A backend's state (a read view of it) as the etcd 3.4 backend file: the buckets have
    etcd's names and encodings already (:mod:`minietcd.mvcc.backend`), so they are copied,
    the auth buckets with each record under its name (the backend may shorten a long name's
    key), and auth revision 1 where none was ever written (as a fresh etcd has it). Safe in a
    worker thread (the view is marked in use)."""
    buckets: dict[bytes, dict[bytes, bytes]] = {name: {} for name in ETCD_BUCKETS}
    with view.in_use():
        for name in (B_KEY, B_LEASE, B_MEMBERS, B_MEMBERS_REMOVED, B_CLUSTER, B_ALARM, B_AUTH):
            buckets[name] = dict(view.items(name))
        for name in (B_AUTH_USERS, B_AUTH_ROLES):
            buckets[name] = {_record_name(k, v): v for k, v in view.items(name)}
        meta = buckets[B_META]
        meta[K_CONSISTENT_INDEX] = view.get(B_META, K_CONSISTENT_INDEX) or _U64_BE.pack(0)
        for key in (K_SCHEDULED_COMPACT, K_FINISHED_COMPACT):
            value = view.get(B_META, key)
            if value is not None:
                meta[key] = value
    buckets[B_AUTH].setdefault(K_AUTH_REVISION, _U64_BE.pack(AUTH_REVISION))
    return write_bolt(buckets, page_size=page_size)


def _record_name(key: bytes, value: bytes) -> bytes:
    """The name an ``authpb.User`` / ``authpb.Role`` record carries in its field 1 (bytes), which
    gogo marshals first; ``key`` if the record has none."""
    if value[:1] != b"\x0a":
        return key
    length, shift, pos = 0, 0, 1
    while pos < len(value) and shift <= 63:
        b = value[pos]
        pos += 1
        length |= (b & 0x7F) << shift
        if not b & 0x80:
            return value[pos : pos + length] if pos + length <= len(value) else key
        shift += 7
    return key


def _compact_rev(meta: Mapping[bytes, bytes], key: bytes) -> int:
    raw = meta.get(key)
    if raw is None:
        return -1
    if len(raw) != REV_BYTES_LEN:
        raise BoltFormatError(f"meta/{key.decode()}: {len(raw)} bytes, not a revision")
    return Revision.from_bytes(raw).main


def read_bolt_snapshot(data: bytes) -> BoltSnapshot:
    """Parse an etcd backend file (a SHA-256 trailer, if any, is checked and dropped) into
    what minietcd restores from. Raises BoltFormatError (an MvccSnapshotError) on anything
    that is not a consistent etcd 3.4 backend."""
    db, _digest = split_sha256(bytes(data))
    buckets = read_bolt(db)
    for need in (B_KEY, B_META):
        if need not in buckets:
            raise BoltFormatError(f"not an etcd backend: no {need.decode()!r} bucket")

    records = list(buckets[B_KEY].items())
    for rev_key, kv_bytes in records:
        if len(rev_key) not in (REV_BYTES_LEN, MARKED_REV_BYTES_LEN) or rev_key[8:9] != b"_":
            raise BoltFormatError(f"key: bad revision key {rev_key!r}")
        if len(rev_key) == MARKED_REV_BYTES_LEN and not is_tombstone_bytes(rev_key):
            raise BoltFormatError(f"key: bad revision mark in {rev_key!r}")
        decode_kv(kv_bytes)  # MvccSnapshotError if not a KeyValue
    meta = buckets[B_META]
    finished = _compact_rev(meta, K_FINISHED_COMPACT)
    scheduled = _compact_rev(meta, K_SCHEDULED_COMPACT)
    last_main = Revision.from_bytes(records[-1][0]).main if records else 1
    ci_raw = meta.get(K_CONSISTENT_INDEX, b"")
    if ci_raw and len(ci_raw) != 8:
        raise BoltFormatError(f"meta/consistent_index has {len(ci_raw)} bytes")

    leases = [decode_lease(v) for v in buckets.get(B_LEASE, {}).values()]
    for k, lease in zip(buckets.get(B_LEASE, {}), leases, strict=True):
        if k != _U64_BE.pack(lease.id & U64_MASK):
            raise BoltFormatError(f"lease: key {k!r} does not match lease {lease.id:x}")
    members = [decode_member(k, v) for k, v in buckets.get(B_MEMBERS, {}).items()]
    try:
        removed = [int(k, 16) for k in buckets.get(B_MEMBERS_REMOVED, {})]
    except ValueError as e:
        raise BoltFormatError(f"members_removed: {e}") from e
    alarms = []
    for k in buckets.get(B_ALARM, {}):
        alarms.append(decode_alarm(k))
    auth_revision = buckets.get(B_AUTH, {}).get(K_AUTH_REVISION)
    if auth_revision is not None and len(auth_revision) != 8:
        raise BoltFormatError(f"auth/authRevision has {len(auth_revision)} bytes")
    return BoltSnapshot(
        current_revision=max(last_main, finished),
        compact_revision=finished,
        scheduled_compact_revision=scheduled,
        consistent_index=_U64_BE.unpack(ci_raw)[0] if ci_raw else 0,
        records=records,
        leases=sorted(leases, key=lambda lease: lease.id),
        # Bucket order is hex-string order; callers want numeric id order.
        members=sorted(members, key=lambda m: int(str(m["id"]))),
        removed_members=sorted(removed),
        cluster_version=buckets.get(B_CLUSTER, {}).get(K_CLUSTER_VERSION, b"").decode(),
        alarms=alarms,
        auth={name: dict(buckets.get(name, {})) for name in AUTH_BUCKETS},
    )


# --- what `etcdctl snapshot status` reports ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SnapshotStatus:
    """etcdctl's ``snapshot.Status``: same fields, same computation."""

    hash: int
    revision: int
    total_key: int
    total_size: int


def snapshot_status(data: bytes) -> SnapshotStatus:
    """What ``etcdctl snapshot status`` prints for this file: crc32c over every bucket name
    followed by its keys and values (buckets and keys in bolt order), the main revision of the
    last key of ``key``, the key count over all buckets, and ``meta.pgid * page_size``."""
    db, _digest = split_sha256(bytes(data))
    meta = read_bolt_meta(db)
    buckets = read_bolt(db)
    h, total, revision = 0, 0, 0
    for name, content in buckets.items():
        h = crc32c(name, h)
        for k, v in content.items():
            h = crc32c(v, crc32c(k, h))
            total += 1
        if name == B_KEY and content:
            revision = Revision.from_bytes(next(reversed(content))).main
    return SnapshotStatus(h, revision, total, meta.pgid * meta.page_size)
