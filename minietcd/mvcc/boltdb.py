"""etcd's backend file format: a bbolt database, written and read without Go.

``etcdctl snapshot status`` / ``snapshot restore`` open a snapshot as a **bbolt** file (etcd 3.4
vendors bbolt v1.3.6) and etcd's server opens it as its backend. So for minietcd's
Maintenance.Snapshot to feed real tools, it must stream a real bbolt file holding etcd's
buckets. This module has two layers:

* :func:`write_bolt` / :func:`read_bolt`: a bbolt file <-> ``{bucket name: {key: value}}``
  (one level of buckets, which is all etcd uses);
* :func:`write_bolt_snapshot` / :func:`read_bolt_snapshot`: etcd 3.4's schema on top —
  a :class:`~minietcd.mvcc.kvstore.KVStore` plus leases, members and the applied index <->
  the buckets etcd keeps (``mvcc/kvstore.go``, ``lease/lessor.go``,
  ``etcdserver/api/membership/store.go``, ``etcdserver/api/v3alarm``, ``auth/store.go``).

bbolt on-disk layout (all integers little-endian: bbolt writes its structs in native order
and etcd ships on little-endian hosts; etcd's own keys and values are big-endian inside)::

    file     = page 0 .. page (meta.pgid - 1), each PAGE_SIZE bytes; a page with overflow n
               spans n + 1 consecutive pages (one node larger than a page)
    page     = header | body
    header   = id u64 | flags u16 | count u16 | overflow u32                       (16 bytes)
               flags: 0x01 branch, 0x02 leaf, 0x04 meta, 0x10 freelist
    meta     = (pages 0 and 1, body of a meta page)
               magic u32 = 0xED0CDAED | version u32 = 2 | page_size u32 | flags u32 |
               root bucket (root pgid u64 | sequence u64) | freelist pgid u64 |
               pgid u64 (high water mark: pages in the file) | txid u64 |
               checksum u64 = FNV-1a 64 of the 56 bytes before it
               A reader uses the valid meta with the higher txid; both here describe the
               same tree (txids 0 and 1, as bbolt's own ``init`` writes them).
    freelist = count pgids u64 (count 0xFFFF: the first u64 is the real count)
    leaf     = count x element (flags u32 | pos u32 | ksize u32 | vsize u32), then the keys
               and values; ``pos`` is the distance from the element itself to its key, the
               value follows the key. Element flag 0x01 marks a nested bucket.
    branch   = count x element (pos u32 | ksize u32 | child pgid u64), then the keys; each
               key is the first key of its child, children in key order.
    bucket   = a leaf value: root pgid u64 | sequence u64, and if root is 0 (an *inline*
               bucket) a whole leaf page (header with id 0) follows in the value itself.

The root bucket (meta.root) holds one bucket per etcd bucket name. The writer packs each
bucket's sorted items into leaf pages filled up to a page, puts branch levels above until one
root remains, and inlines a bucket when its leaf fits in a quarter page (bbolt's own
``inlineable`` rule, so etcd rewrites nothing on first open). Every page is reachable, so the
freelist (page 2) is empty, and ``tx.Check`` (run by ``etcdctl snapshot status``) finds
neither unreachable nor doubly referenced pages.

Snapshot streams: etcd's Snapshot RPC sends the bolt file followed by its SHA-256, and
``snapshot restore`` checks it (a file whose size is 32 more than a multiple of 512 carries
one): see :func:`append_sha256` / :func:`split_sha256`.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from minietcd.errors import MvccSnapshotError
from minietcd.golang import put_uvarint
from minietcd.mvcc.codec import crc32c, decode_kv, decode_snapshot, encode_snapshot
from minietcd.mvcc.kvstore import KVStore
from minietcd.mvcc.revision import (
    MARKED_REV_BYTES_LEN,
    REV_BYTES_LEN,
    Revision,
    is_tombstone_bytes,
)

# --- bbolt constants (bbolt v1.3.6: page.go, db.go, bucket.go) ----------------------------------

PAGE_SIZE = 4096
BOLT_MAGIC = 0xED0CDAED
BOLT_VERSION = 2

BRANCH_PAGE = 0x01
LEAF_PAGE = 0x02
META_PAGE = 0x04
FREELIST_PAGE = 0x10
#: Leaf element flag: the value is a nested bucket.
BUCKET_LEAF = 0x01
#: meta.freelist when the freelist is not stored (bbolt's NoFreelistSync).
NO_FREELIST = 0xFFFF_FFFF_FFFF_FFFF

_PAGE_HDR = struct.Struct("<QHHI")
_LEAF_ELEM = struct.Struct("<IIII")
_BRANCH_ELEM = struct.Struct("<IIQ")
_BUCKET_HDR = struct.Struct("<QQ")
#: Meta without its checksum: the bytes the checksum covers.
_META_BODY = struct.Struct("<IIIIQQQQQ")
_U64_LE = struct.Struct("<Q")
_U64_BE = struct.Struct(">Q")

_HDR = _PAGE_HDR.size  # 16
_ELEM = _LEAF_ELEM.size  # 16, the same for branch elements
assert _BRANCH_ELEM.size == _ELEM

_SHA256_LEN = 32


class BoltFormatError(MvccSnapshotError):
    """Bytes that are not a bbolt file, or not one holding etcd's buckets as expected."""


# --- FNV-1a 64 (the meta checksum, Go's hash/fnv New64a) ---------------------------------------

_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_U64_MASK = (1 << 64) - 1


def fnv64a(data: bytes) -> int:
    h = _FNV_OFFSET
    for b in data:
        h = ((h ^ b) * _FNV_PRIME) & _U64_MASK
    return h


def _meta_page(pgid: int, page_size: int, root: int, freelist: int, high: int, txid: int) -> bytes:
    body = _META_BODY.pack(BOLT_MAGIC, BOLT_VERSION, page_size, 0, root, 0, freelist, high, txid)
    page = _PAGE_HDR.pack(pgid, META_PAGE, 0, 0) + body + _U64_LE.pack(fnv64a(body))
    return page.ljust(page_size, b"\0")


# --- writing -------------------------------------------------------------------------------------

#: A leaf item: key, value, element flags.
_LeafItem = tuple[bytes, bytes, int]


def _node_size(keys_values_len: int, count: int) -> int:
    return _HDR + count * _ELEM + keys_values_len


def _encode_leaf(pgid: int, overflow: int, items: Sequence[_LeafItem]) -> bytes:
    """A leaf node as bbolt's ``node.write`` lays it out (unpadded)."""
    n = len(items)
    out = bytearray(_PAGE_HDR.pack(pgid, LEAF_PAGE, n, overflow))
    data_off = _HDR + n * _ELEM
    for i, (k, v, flags) in enumerate(items):
        out += _LEAF_ELEM.pack(flags, data_off - (_HDR + i * _ELEM), len(k), len(v))
        data_off += len(k) + len(v)
    for k, v, _flags in items:
        out += k
        out += v
    return bytes(out)


def _encode_branch(pgid: int, overflow: int, children: Sequence[tuple[bytes, int]]) -> bytes:
    n = len(children)
    out = bytearray(_PAGE_HDR.pack(pgid, BRANCH_PAGE, n, overflow))
    data_off = _HDR + n * _ELEM
    for i, (k, child) in enumerate(children):
        out += _BRANCH_ELEM.pack(data_off - (_HDR + i * _ELEM), len(k), child)
        data_off += len(k)
    for k, _child in children:
        out += k
    return bytes(out)


def _pack(sizes: Sequence[int], page_size: int) -> list[tuple[int, int]]:
    """Split items (by their element + key + value size) into ``[start, end)`` runs that each
    fit a page; an item too big for a page gets a run of its own (it becomes overflow pages).
    A page is filled up to the brim: a snapshot is written once and then read, so there is no
    point leaving room for inserts as bbolt's 50% fill does."""
    runs: list[tuple[int, int]] = []
    start, size = 0, _HDR
    for i, s in enumerate(sizes):
        if i > start and size + s > page_size:
            runs.append((start, i))
            start, size = i, _HDR
        size += s
    if start < len(sizes) or not runs:
        runs.append((start, len(sizes)))
    return runs


class _PageWriter:
    """Allocates page ids in order and collects the page bytes."""

    def __init__(self, page_size: int, first_pgid: int) -> None:
        self.page_size = page_size
        self.next_pgid = first_pgid
        self.pages: list[bytes] = []

    def _alloc(self, size: int) -> tuple[int, int]:
        n = max(1, -(-size // self.page_size))
        pgid = self.next_pgid
        self.next_pgid += n
        return pgid, n - 1

    def _emit(self, raw: bytes, overflow: int) -> None:
        self.pages.append(raw.ljust((overflow + 1) * self.page_size, b"\0"))

    def write_tree(self, items: Sequence[_LeafItem]) -> int:
        """Write a B+tree of ``items`` (sorted by key); returns its root page id."""
        sizes = [_ELEM + len(k) + len(v) for k, v, _f in items]
        level: list[tuple[bytes, int]] = []
        for start, end in _pack(sizes, self.page_size):
            run = items[start:end]
            pgid, overflow = self._alloc(_HDR + sum(sizes[start:end]))
            self._emit(_encode_leaf(pgid, overflow, run), overflow)
            level.append((run[0][0] if run else b"", pgid))
        while len(level) > 1:
            bsizes = [_ELEM + len(k) for k, _p in level]
            upper: list[tuple[bytes, int]] = []
            for start, end in _pack(bsizes, self.page_size):
                run2 = level[start:end]
                pgid, overflow = self._alloc(_HDR + sum(bsizes[start:end]))
                self._emit(_encode_branch(pgid, overflow, run2), overflow)
                upper.append((run2[0][0], pgid))
            level = upper
        return level[0][1]


def _bucket_value(writer: _PageWriter, content: Mapping[bytes, bytes]) -> bytes:
    """The root-bucket value for one bucket: inline when its single leaf fits a quarter page
    (bbolt's ``inlineable``), else a header pointing at a tree of pages."""
    items: list[_LeafItem] = []
    for k in sorted(content):
        if not isinstance(k, bytes) or not k:
            raise ValueError(f"bolt keys must be non-empty bytes, got {k!r}")
        v = content[k]
        if not isinstance(v, bytes):
            raise TypeError(f"bolt values must be bytes, not {type(v).__name__}")
        items.append((k, v, 0))
    size = _node_size(sum(len(k) + len(v) for k, v, _f in items), len(items))
    if size <= writer.page_size // 4:
        return _BUCKET_HDR.pack(0, 0) + _encode_leaf(0, 0, items)
    return _BUCKET_HDR.pack(writer.write_tree(items), 0)


def write_bolt(buckets: Mapping[bytes, Mapping[bytes, bytes]], *, page_size: int = PAGE_SIZE) -> bytes:
    """A complete bbolt file holding ``buckets`` (name -> key -> value), every key non-empty."""
    if page_size < 1024 or page_size & (page_size - 1):
        raise ValueError(f"page size {page_size} is not a power of two >= 1024")
    # Pages 0 and 1: metas; page 2: the (empty) freelist; the trees start at 3, as in
    # bbolt's init.
    writer = _PageWriter(page_size, 3)
    root_items: list[_LeafItem] = []
    for name in sorted(buckets):
        if not isinstance(name, bytes) or not name:
            raise ValueError(f"bucket names must be non-empty bytes, got {name!r}")
        root_items.append((name, _bucket_value(writer, buckets[name]), BUCKET_LEAF))
    # The root bucket always gets pages of its own: meta.root cannot point inline.
    root = writer.write_tree(root_items)
    high = writer.next_pgid
    freelist = _PAGE_HDR.pack(2, FREELIST_PAGE, 0, 0).ljust(page_size, b"\0")
    head = [
        _meta_page(0, page_size, root, 2, high, 0),
        _meta_page(1, page_size, root, 2, high, 1),
        freelist,
    ]
    return b"".join(head + writer.pages)


# --- reading -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BoltMeta:
    page_size: int
    root: int
    freelist: int
    #: High water mark: the file's pages in use (``tx.Size()`` is this times the page size).
    pgid: int
    txid: int


def _parse_meta(data: bytes, page_size: int, pgid: int) -> BoltMeta | None:
    off = pgid * page_size + _HDR
    if len(data) < off + _META_BODY.size + 8:
        return None
    body = data[off : off + _META_BODY.size]
    magic, version, psize, _flags, root, _seq, freelist, high, txid = _META_BODY.unpack(body)
    (checksum,) = _U64_LE.unpack_from(data, off + _META_BODY.size)
    if magic != BOLT_MAGIC or version != BOLT_VERSION:
        return None
    if checksum != 0 and checksum != fnv64a(body):
        return None
    return BoltMeta(psize, root, freelist, high, txid)


class _Reader:
    """Walks pages of one bbolt file, checking what bbolt's ``tx.Check`` checks."""

    def __init__(self, data: bytes, meta: BoltMeta) -> None:
        self.data = data
        self.meta = meta
        #: Page id -> referenced; every page of the file must end up here or in the freelist.
        self.reachable: set[int] = set()

    def page(self, pgid: int) -> tuple[int, int, memoryview]:
        """(flags, count, whole page including overflow) of page ``pgid``."""
        ps = self.meta.page_size
        if not 2 <= pgid < self.meta.pgid:
            raise BoltFormatError(f"bolt: page {pgid} out of bounds (high water {self.meta.pgid})")
        off = pgid * ps
        if off + _HDR > len(self.data):
            raise BoltFormatError(f"bolt: page {pgid} beyond the end of the file")
        pid, flags, count, overflow = _PAGE_HDR.unpack_from(self.data, off)
        if pid != pgid:
            raise BoltFormatError(f"bolt: page {pgid} says it is page {pid}")
        end = off + (overflow + 1) * ps
        if pgid + overflow >= self.meta.pgid or end > len(self.data):
            raise BoltFormatError(f"bolt: page {pgid} overflows past the end ({overflow})")
        for i in range(pgid, pgid + overflow + 1):
            if i in self.reachable:
                raise BoltFormatError(f"bolt: page {i}: multiple references")
            self.reachable.add(i)
        return flags, count, memoryview(self.data)[off:end]

    def tree_items(self, pgid: int) -> Iterator[tuple[int, bytes, bytes]]:
        """Leaf items of the tree rooted at ``pgid``, in order."""
        flags, count, buf = self.page(pgid)
        if flags & BRANCH_PAGE:
            for i in range(count):
                pos, ksize, child = _BRANCH_ELEM.unpack_from(buf, _HDR + i * _ELEM)
                start = _HDR + i * _ELEM + pos
                if start + ksize > len(buf):
                    raise BoltFormatError(f"bolt: branch page {pgid} element {i} out of bounds")
                yield from self.tree_items(child)
        elif flags & LEAF_PAGE:
            yield from _leaf_items(buf, count, f"page {pgid}")
        else:
            raise BoltFormatError(f"bolt: page {pgid} has type {flags:#x}, not branch or leaf")

    def freelist(self) -> set[int]:
        if self.meta.freelist == NO_FREELIST:
            return set()
        flags, count, buf = self.page(self.meta.freelist)
        if not flags & FREELIST_PAGE:
            raise BoltFormatError(f"bolt: freelist page {self.meta.freelist} has type {flags:#x}")
        start = 0
        if count == 0xFFFF:
            (count,) = _U64_LE.unpack_from(buf, _HDR)
            start = 1
        if _HDR + (start + count) * 8 > len(buf):
            raise BoltFormatError("bolt: freelist longer than its page")
        ids = struct.unpack_from(f"<{count}Q", buf, _HDR + start * 8)
        free = set(ids)
        if len(free) != len(ids):
            raise BoltFormatError("bolt: freelist has a page twice")
        return free


def _leaf_items(buf: memoryview, count: int, where: str) -> Iterator[tuple[int, bytes, bytes]]:
    if _HDR + count * _ELEM > len(buf):
        raise BoltFormatError(f"bolt: {where} has more elements than fit")
    for i in range(count):
        flags, pos, ksize, vsize = _LEAF_ELEM.unpack_from(buf, _HDR + i * _ELEM)
        start = _HDR + i * _ELEM + pos
        if start + ksize + vsize > len(buf):
            raise BoltFormatError(f"bolt: {where} element {i} out of bounds")
        yield flags, bytes(buf[start : start + ksize]), bytes(buf[start + ksize : start + ksize + vsize])


def _sorted_dict(
    items: Iterable[tuple[int, bytes, bytes]], where: str, *, buckets: bool
) -> dict[bytes, bytes]:
    out: dict[bytes, bytes] = {}
    last: bytes | None = None
    for flags, k, v in items:
        if last is not None and k <= last:
            raise BoltFormatError(f"bolt: {where}: keys out of order ({last!r} then {k!r})")
        if bool(flags & BUCKET_LEAF) != buckets:
            what = "a nested bucket" if buckets else "a plain value"
            raise BoltFormatError(f"bolt: {where}: key {k!r} is not {what}")
        out[k] = v
        last = k
    return out


def read_bolt_meta(data: bytes) -> BoltMeta:
    """The meta a bbolt reader would use: the valid one with the higher txid."""
    if len(data) < 2 * 1024:
        raise BoltFormatError(f"bolt: file too small ({len(data)} bytes)")
    first = _parse_meta(data, PAGE_SIZE, 0)
    page_size = first.page_size if first is not None else PAGE_SIZE
    metas = [m for m in (_parse_meta(data, page_size, 0), _parse_meta(data, page_size, 1)) if m]
    if not metas:
        raise BoltFormatError("bolt: no valid meta page (not a bbolt file?)")
    return max(metas, key=lambda m: m.txid)


def read_bolt(data: bytes) -> dict[bytes, dict[bytes, bytes]]:
    """Every bucket of a bbolt file: name -> key -> value.

    Checks what ``tx.Check`` does (each page referenced once, every page below the high water
    mark reachable or free) plus key order, and raises BoltFormatError on any defect. Nested
    buckets deeper than one level (which etcd never makes) are refused.
    """
    meta = read_bolt_meta(data)
    if meta.pgid * meta.page_size > len(data):
        raise BoltFormatError(f"bolt: file of {len(data)} bytes shorter than its {meta.pgid} pages")
    reader = _Reader(data, meta)
    reader.reachable.update((0, 1))
    free = reader.freelist()
    names = _sorted_dict(reader.tree_items(meta.root), "root bucket", buckets=True)
    out: dict[bytes, dict[bytes, bytes]] = {}
    for name, value in names.items():
        where = f"bucket {name!r}"
        if len(value) < _BUCKET_HDR.size:
            raise BoltFormatError(f"bolt: {where} has a short header")
        root, _seq = _BUCKET_HDR.unpack_from(value)
        if root == 0:
            inline = memoryview(value)[_BUCKET_HDR.size :]
            if len(inline) < _HDR:
                raise BoltFormatError(f"bolt: {where} has a short inline page")
            _pid, flags, count, _ovf = _PAGE_HDR.unpack_from(inline)
            if not flags & LEAF_PAGE:
                raise BoltFormatError(f"bolt: {where}: inline page is not a leaf")
            items: Iterable[tuple[int, bytes, bytes]] = _leaf_items(inline, count, where)
        else:
            items = reader.tree_items(root)
        out[name] = _sorted_dict(items, where, buckets=False)
    if meta.freelist != NO_FREELIST:
        for pgid in range(meta.pgid):
            if pgid in reader.reachable and pgid in free:
                raise BoltFormatError(f"bolt: page {pgid}: reachable freed")
            if pgid not in reader.reachable and pgid not in free:
                raise BoltFormatError(f"bolt: page {pgid}: unreachable unfreed")
    return out


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


# --- etcd's schema -------------------------------------------------------------------------------

B_ALARM = b"alarm"
B_AUTH = b"auth"
B_AUTH_ROLES = b"authRoles"
B_AUTH_USERS = b"authUsers"
B_CLUSTER = b"cluster"
B_KEY = b"key"
B_LEASE = b"lease"
B_MEMBERS = b"members"
B_MEMBERS_REMOVED = b"members_removed"
B_META = b"meta"
#: Every bucket etcd 3.4 creates, present even when empty (as in etcd's own file).
ETCD_BUCKETS = (
    B_ALARM, B_AUTH, B_AUTH_ROLES, B_AUTH_USERS, B_CLUSTER,
    B_KEY, B_LEASE, B_MEMBERS, B_MEMBERS_REMOVED, B_META,
)  # fmt: skip

K_CONSISTENT_INDEX = b"consistent_index"
K_SCHEDULED_COMPACT = b"scheduledCompactRev"
K_FINISHED_COMPACT = b"finishedCompactRev"
K_CLUSTER_VERSION = b"clusterVersion"
K_AUTH_REVISION = b"authRevision"
#: etcd's NewAuthStore commits auth revision 1 into a fresh backend; we write the same.
AUTH_REVISION = 1


class LeaseLike(Protocol):
    """What a lease contributes to the ``lease`` bucket (the lessor's ``Lease`` view fits)."""

    @property
    def id(self) -> int: ...
    @property
    def ttl(self) -> int: ...
    @property
    def remaining_ttl(self) -> int: ...


@dataclass(frozen=True, slots=True)
class BoltLease:
    """One ``leasepb.Lease`` record: what etcd persists per lease (no keys: etcd re-attaches
    them from the ``lease`` field of each stored KeyValue)."""

    id: int
    ttl: int
    remaining_ttl: int = 0


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

    def kv_snapshot(self) -> bytes:
        """The records as a :meth:`KVStore.snapshot` (what :meth:`KVStore.restore` takes)."""
        return encode_snapshot(
            self.current_revision, self.compact_revision, iter(self.records), len(self.records)
        )

    def restore_into(self, kv: KVStore) -> None:
        """Replace ``kv``'s state with the file's (MvccSnapshotError and ``kv`` unchanged on an
        inconsistent key bucket)."""
        kv.restore(self.kv_snapshot())


# protobuf by hand, as codec.encode_kv does for KeyValue: the mvcc layer stays free of the
# generated modules, and these two messages are a few varints each.


def _int_fields(values: Sequence[int]) -> bytes:
    """Proto3 varint fields 1, 2, ... in order, zero values omitted (gogo's Marshal)."""
    return b"".join(put_uvarint((n << 3) | 0) + put_uvarint(v) for n, v in enumerate(values, start=1) if v)


def _parse_int_fields(data: bytes, count: int, what: str, *, signed: bool) -> list[int]:
    values = [0] * count
    pos = 0

    def varint() -> int:
        nonlocal pos
        result, shift = 0, 0
        while True:
            if pos >= len(data) or shift > 63:
                raise BoltFormatError(f"bad varint in {what}")
            b = data[pos]
            pos += 1
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result & _U64_MASK
            shift += 7

    while pos < len(data):
        tag = varint()
        number, wire = tag >> 3, tag & 7
        if wire != 0 or not 1 <= number <= count:
            raise BoltFormatError(f"unexpected field {number} (wire type {wire}) in {what}")
        v = varint()
        values[number - 1] = v - (1 << 64) if signed and v >= 1 << 63 else v
    return values


def encode_lease(lease: LeaseLike) -> bytes:
    """``leasepb.Lease{ID, TTL, RemainingTTL}.Marshal()``."""
    return _int_fields((lease.id, lease.ttl, lease.remaining_ttl))


def decode_lease(data: bytes) -> BoltLease:
    lid, ttl, remaining = _parse_int_fields(data, 3, "leasepb.Lease", signed=True)
    return BoltLease(lid, ttl, remaining)


def _go_json_string(s: str) -> str:
    """A string as Go's encoding/json writes it (HTML-safe escapes, raw UTF-8)."""
    out = ['"']
    for ch in s:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ch < " " or ch in "<>&\u2028\u2029":
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _go_json_strings(values: Iterable[str]) -> str:
    return "[" + ",".join(_go_json_string(v) for v in values) + "]"


def _str_list(value: object, what: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise ValueError(f"member {what} must be a list, not {type(value).__name__}")
    return [str(v) for v in value]


def encode_member(member: Mapping[str, object]) -> tuple[bytes, bytes]:
    """(bucket key, value) of a member, from minietcd's ``Member.to_json`` dict: the key is the
    id in lower-case hex (``types.ID.String``), the value ``json.Marshal(membership.Member)`` —
    ``id``, then the embedded RaftAttributes (``peerURLs``, ``isLearner`` omitempty), then
    Attributes (``name``, ``clientURLs``, both omitempty), in Go's field order."""
    mid = member["id"]
    if not isinstance(mid, int) or not 0 <= mid <= _U64_MASK:
        raise ValueError(f"member id must be a uint64, got {mid!r}")
    peer_urls = _str_list(member.get("peerURLs"), "peerURLs")
    client_urls = _str_list(member.get("clientURLs"), "clientURLs")
    name = str(member.get("name") or "")
    parts = [f'"id":{mid}', f'"peerURLs":{_go_json_strings(peer_urls)}']
    if member.get("isLearner"):
        parts.append('"isLearner":true')
    if name:
        parts.append(f'"name":{_go_json_string(name)}')
    if client_urls:
        parts.append(f'"clientURLs":{_go_json_strings(client_urls)}')
    return f"{mid:x}".encode(), ("{" + ",".join(parts) + "}").encode()


def decode_member(key: bytes, value: bytes) -> dict[str, object]:
    try:
        d = json.loads(value)
        mid = int(d["id"])
    except (ValueError, KeyError, TypeError) as e:
        raise BoltFormatError(f"members: bad member record {key!r}: {e}") from e
    if key != f"{mid:x}".encode():
        raise BoltFormatError(f"members: key {key!r} does not match id {mid:x}")
    return {
        "id": mid,
        "name": str(d.get("name") or ""),
        "peerURLs": [str(u) for u in d.get("peerURLs") or ()],
        "clientURLs": [str(u) for u in d.get("clientURLs") or ()],
        "isLearner": bool(d.get("isLearner", False)),
    }


def _u64_be(value: int, what: str) -> bytes:
    if not 0 <= value <= _U64_MASK:
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
        buckets[B_LEASE][_U64_BE.pack(lease.id & _U64_MASK)] = encode_lease(lease)
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
        buckets[B_ALARM][_int_fields((member_id, alarm))] = b""
    buckets[B_AUTH][K_AUTH_REVISION] = _U64_BE.pack(AUTH_REVISION)
    return write_bolt(buckets, page_size=page_size)


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
        if k != _U64_BE.pack(lease.id & _U64_MASK):
            raise BoltFormatError(f"lease: key {k!r} does not match lease {lease.id:x}")
    members = [decode_member(k, v) for k, v in buckets.get(B_MEMBERS, {}).items()]
    try:
        removed = [int(k, 16) for k in buckets.get(B_MEMBERS_REMOVED, {})]
    except ValueError as e:
        raise BoltFormatError(f"members_removed: {e}") from e
    alarms = []
    for k in buckets.get(B_ALARM, {}):
        mid, alarm = _parse_int_fields(k, 2, "AlarmMember", signed=False)
        alarms.append((mid, alarm))
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
