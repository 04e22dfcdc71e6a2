"""The lessor's snapshot encoding: canonical bytes for the applied lease state.

Only applied (replicated) state goes in: lease id, granted TTL, checkpointed remaining TTL and the
attached keys. Expiry deadlines are volatile leader state derived from a local clock, so they are
left out; that is what makes two members that applied the same log produce identical bytes (the
snapshot can be hashed and compared across members like etcd's ``HashKV``).

Layout (all integers big-endian)::

    magic  b"MNLS"            4 bytes
    version                   u8   (1)
    lease count               u32
    per lease, ids ascending:
        id                    i64
        ttl                   i64  granted TTL in seconds (after the min-TTL raise)
        remaining_ttl         i64  last checkpointed remaining TTL, 0 = unset
        key count             u32
        per key, ascending:   u32 length + key bytes

The form is canonical (sorted ids, sorted keys, no duplicates, no trailing bytes) and the decoder
insists on it, so ``encode(decode(b)) == b`` for every accepted ``b``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

from minietcd.errors import LeaseSnapshotError

MAGIC = b"MNLS"
VERSION = 1

_HEADER = struct.Struct(">4sBI")
_LEASE = struct.Struct(">qqqI")
_KEYLEN = struct.Struct(">I")


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    """One lease as stored in a snapshot."""

    id: int
    ttl: int
    remaining_ttl: int
    keys: tuple[bytes, ...]  # sorted ascending


def encode(records: Iterable[LeaseRecord]) -> bytes:
    """Encode records in canonical order (sorted here, so callers may pass any order)."""
    ordered = sorted(records, key=lambda r: r.id)
    out = bytearray(_HEADER.pack(MAGIC, VERSION, len(ordered)))
    for r in ordered:
        keys = sorted(r.keys)
        out += _LEASE.pack(r.id, r.ttl, r.remaining_ttl, len(keys))
        for key in keys:
            out += _KEYLEN.pack(len(key))
            out += key
    return bytes(out)


def decode(data: bytes) -> list[LeaseRecord]:
    """Parse and validate a snapshot; raises LeaseSnapshotError on any defect."""
    view = memoryview(data)
    try:
        magic, version, count = _HEADER.unpack_from(view, 0)
    except struct.error as e:
        raise LeaseSnapshotError(f"lease snapshot: truncated header ({len(data)} bytes)") from e
    if magic != MAGIC:
        raise LeaseSnapshotError(f"lease snapshot: bad magic {bytes(magic)!r}")
    if version != VERSION:
        raise LeaseSnapshotError(f"lease snapshot: unsupported version {version}")
    pos = _HEADER.size
    records: list[LeaseRecord] = []
    seen_keys: set[bytes] = set()
    prev_id: int | None = None
    try:
        for _ in range(count):
            lease_id, ttl, remaining, nkeys = _LEASE.unpack_from(view, pos)
            pos += _LEASE.size
            if lease_id == 0:
                raise LeaseSnapshotError("lease snapshot: lease id 0")
            if prev_id is not None and lease_id <= prev_id:
                raise LeaseSnapshotError(f"lease snapshot: lease ids not ascending at {lease_id}")
            prev_id = lease_id
            keys: list[bytes] = []
            for _ in range(nkeys):
                (klen,) = _KEYLEN.unpack_from(view, pos)
                pos += _KEYLEN.size
                if pos + klen > len(data):
                    raise LeaseSnapshotError("lease snapshot: truncated key")
                key = bytes(view[pos : pos + klen])
                pos += klen
                if keys and key <= keys[-1]:
                    raise LeaseSnapshotError(f"lease snapshot: keys of {lease_id} not ascending")
                if key in seen_keys:
                    # A key belongs to at most one lease (the lessor's invariant).
                    raise LeaseSnapshotError(f"lease snapshot: key {key!r} in two leases")
                seen_keys.add(key)
                keys.append(key)
            records.append(LeaseRecord(lease_id, ttl, remaining, tuple(keys)))
    except struct.error as e:
        raise LeaseSnapshotError("lease snapshot: truncated lease record") from e
    if pos != len(data):
        raise LeaseSnapshotError(f"lease snapshot: {len(data) - pos} trailing bytes")
    return records
