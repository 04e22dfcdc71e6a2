"""Rebuilding the in-memory index from stored records (etcd ``mvcc/kvstore.go`` ``restore``).

The backend's ``key`` bucket holds every revision's key-value in revision order; replaying it
into a :class:`TreeIndex` gives back the index the store had, as etcd does at start-up. The same
walk checks a snapshot from elsewhere before it replaces anything (``check=True``).
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Callable, Iterable

from minietcd.api.mvccpb import kv_pb2
from minietcd.errors import MvccInvariantError, MvccSnapshotError, RevisionNotFoundError
from minietcd.mvcc.index import TreeIndex
from minietcd.mvcc.key_index import KeyIndex
from minietcd.mvcc.revision import MARKED_REV_BYTES_LEN, Revision, is_tombstone_bytes
from minietcd.mvcc.types import KeyValue

#: Estimated bytes a record costs beyond its revision key and KeyValue bytes (the B+tree's
#: node header and index entry). Only feeds ``KVStore.size_bytes``, the quota's estimate.
RECORD_OVERHEAD_BYTES = 32
_PB_KEY_VALUE = kv_pb2.KeyValue


def record_cost(rev_key: bytes, kv_bytes: bytes) -> int:
    return len(rev_key) + len(kv_bytes) + RECORD_OVERHEAD_BYTES


def _check_record(rev: Revision, tombstone: bool, kv: KeyValue) -> None:
    if not kv.key:
        raise MvccSnapshotError(f"record {rev} has an empty key")
    if not tombstone and kv.mod_revision != rev.main:
        raise MvccSnapshotError(f"record {rev} has mod_revision {kv.mod_revision}")


def index_records(
    records: Iterable[tuple[bytes, bytes]],
    decode: Callable[[bytes], KeyValue],
    *,
    check: bool = False,
) -> tuple[TreeIndex, int, int, list[tuple[bytes, int]]]:
    """Build the index from (revision key, KeyValue bytes) in revision order, one step of etcd's
    ``restoreIntoIndex`` per record: (index, newest main revision (1 if none), size estimate,
    live leased keys). With ``check``, records that do not fit raise MvccSnapshotError (a
    snapshot from elsewhere); the store's own are trusted.

    Key indexes are collected in a dict and sorted once at the end: much cheaper than keeping
    the ordered index sorted through 10^5 inserts (this runs at every restart)."""
    by_key: dict[bytes, KeyIndex] = {}
    size = 0
    last: Revision | None = None
    lease_of: dict[bytes, int] = {}
    try:
        for rev_key, kv_bytes in records:
            kv = decode(kv_bytes)
            rev = Revision.from_bytes(rev_key)
            tomb = is_tombstone_bytes(rev_key)
            if check:
                if last is not None and rev <= last:
                    raise MvccSnapshotError(f"record {rev} not after {last}")
                _check_record(rev, tomb, kv)
            key = kv.key
            ki = by_key.get(key)
            if ki is not None:
                if tomb:
                    # etcd ignores a tombstone of an already deleted key here.
                    with contextlib.suppress(RevisionNotFoundError):
                        ki.tombstone(rev)
                else:
                    ki.put(rev)
            elif not tomb:
                # The oldest surviving value of the key: mid-generation after a compaction.
                ki = KeyIndex(key)
                ki.restore(Revision(kv.create_revision, 0), rev, kv.version)
                by_key[key] = ki
            size += len(rev_key) + len(kv_bytes) + RECORD_OVERHEAD_BYTES
            if kv.lease and not tomb:
                lease_of[key] = kv.lease
            elif key in lease_of:
                del lease_of[key]
            last = rev
    except MvccInvariantError as e:
        raise MvccSnapshotError(f"inconsistent snapshot: {e}") from e
    index = TreeIndex.from_key_indexes(by_key)
    return index, (last.main if last is not None else 1), size, sorted(lease_of.items())


_REV = struct.Struct(">QcQ")
_INT64_LIMIT = 1 << 63


def index_own_records(
    records: Iterable[tuple[bytes, bytes]],
) -> tuple[TreeIndex, int, int, list[tuple[bytes, int]]]:
    """:func:`index_records` for the store's own records (a restart: every key of the store
    goes through here), with the per-record work cut to the bone: protobuf's parser for the
    value, one struct unpack for the revision, no intermediate objects."""
    parse = _PB_KEY_VALUE.FromString
    unpack = _REV.unpack_from
    by_key: dict[bytes, KeyIndex] = {}
    size = 0
    last_main = 1
    lease_of: dict[bytes, int] = {}
    for rev_key, kv_bytes in records:
        m = parse(kv_bytes)
        main, _sep, sub = unpack(rev_key)
        if main >= _INT64_LIMIT or sub >= _INT64_LIMIT:  # never written by us; keep Go's meaning
            rev = Revision.from_bytes(rev_key)
        else:
            rev = Revision(main, sub)
        tomb = len(rev_key) == MARKED_REV_BYTES_LEN
        key = m.key
        ki = by_key.get(key)
        try:
            if ki is not None:
                if tomb:
                    with contextlib.suppress(RevisionNotFoundError):
                        ki.tombstone(rev)
                else:
                    ki.put(rev)
            elif not tomb:
                ki = KeyIndex(key)
                ki.restore(Revision(m.create_revision, 0), rev, m.version)
                by_key[key] = ki
        except MvccInvariantError as e:
            raise MvccSnapshotError(f"inconsistent records: {e}") from e
        size += len(rev_key) + len(kv_bytes) + RECORD_OVERHEAD_BYTES
        lease = m.lease
        if lease and not tomb:
            lease_of[key] = lease
        elif key in lease_of:
            del lease_of[key]
        last_main = rev.main
    return TreeIndex.from_key_indexes(by_key), last_main, size, sorted(lease_of.items())
