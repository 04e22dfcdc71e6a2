"""Byte encodings of the store: etcd's KeyValue wire bytes, crc32c, and the snapshot file.

HashKV must agree across members, and we want it to mean what etcd's means, so the store hashes
exactly what etcd's backend holds: ``revision key -> marshalled mvccpb.KeyValue``. This module
marshals a KeyValue the way etcd's generated (gogo) code does — fields in number order, zero
values omitted — without depending on the generated protobuf modules (the mvcc layer stays
free of protobuf). The snapshot reuses the same record encoding.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Iterator

from minietcd.errors import MvccSnapshotError
from minietcd.golang import put_uvarint
from minietcd.mvcc.types import KeyValue

# --- crc32c (Castagnoli), what etcd's HashKV uses ----------------------------------------------


def _make_crc32c_table() -> tuple[int, ...]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return tuple(table)


_CRC32C_TABLE = _make_crc32c_table()


def crc32c(data: bytes, crc: int = 0) -> int:
    """CRC-32C of ``data``, continuing from ``crc`` (like ``zlib.crc32``'s second argument).

    Pure Python (no C crc32c package is a project dependency); HashKV is an occasional
    consistency check, so its speed does not matter much.
    """
    table = _CRC32C_TABLE
    c = crc ^ 0xFFFFFFFF
    for b in data:
        c = table[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


# --- mvccpb.KeyValue wire encoding ---------------------------------------------------------------

_U64 = (1 << 64) - 1


def encode_kv(kv: KeyValue) -> bytes:
    """``mvccpb.KeyValue.Marshal()``, byte for byte."""
    parts: list[bytes] = []
    if kv.key:
        parts += [b"\x0a", put_uvarint(len(kv.key)), kv.key]
    if kv.create_revision:
        parts += [b"\x10", put_uvarint(kv.create_revision)]
    if kv.mod_revision:
        parts += [b"\x18", put_uvarint(kv.mod_revision)]
    if kv.version:
        parts += [b"\x20", put_uvarint(kv.version)]
    if kv.value:
        parts += [b"\x2a", put_uvarint(len(kv.value)), kv.value]
    if kv.lease:
        parts += [b"\x30", put_uvarint(kv.lease)]
    return b"".join(parts)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise MvccSnapshotError("bad varint in key-value record")
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            break
        shift += 7
    result &= _U64
    return (result - (1 << 64) if result >= (1 << 63) else result), pos


def decode_kv(data: bytes) -> KeyValue:
    """Inverse of :func:`encode_kv`; raises MvccSnapshotError on anything else."""
    fields: dict[int, int | bytes] = {}
    pos = 0
    while pos < len(data):
        tag, pos = _read_varint(data, pos)
        number, wire = tag >> 3, tag & 7
        if number in (1, 5) and wire == 2:
            n, pos = _read_varint(data, pos)
            if n < 0 or pos + n > len(data):
                raise MvccSnapshotError("truncated key-value record")
            fields[number] = data[pos : pos + n]
            pos += n
        elif number in (2, 3, 4, 6) and wire == 0:
            fields[number], pos = _read_varint(data, pos)
        else:
            raise MvccSnapshotError(f"unexpected field {number} (wire type {wire})")

    def _int(n: int) -> int:
        v = fields.get(n, 0)
        assert isinstance(v, int)
        return v

    def _bytes(n: int) -> bytes:
        v = fields.get(n, b"")
        assert isinstance(v, bytes)
        return v

    return KeyValue(_bytes(1), _int(2), _int(3), _int(4), _bytes(5), _int(6))


# --- snapshot file -------------------------------------------------------------------------------
#
#   magic "MVCCSNAP" | u32 format version
#   i64 current revision | i64 compact revision | u64 record count
#   count x ( u32 len | revision key (17 or 18 bytes) | u32 len | KeyValue bytes ), by revision
#   u32 crc32 (zlib's, fast in C) of everything before it
#
# The records are exactly etcd's backend "key" bucket, so a restore rebuilds the index the way
# etcd rebuilds it from bolt, and the same history always gives the same bytes.

SNAPSHOT_MAGIC = b"MVCCSNAP"
SNAPSHOT_FORMAT = 1
_HEADER = struct.Struct(">8sIqqQ")
_U32 = struct.Struct(">I")


def encode_snapshot(
    current_rev: int, compact_rev: int, records: Iterable[tuple[bytes, bytes]], count: int
) -> bytes:
    out = bytearray(_HEADER.pack(SNAPSHOT_MAGIC, SNAPSHOT_FORMAT, current_rev, compact_rev, count))
    for rev_key, kv_bytes in records:
        out += _U32.pack(len(rev_key))
        out += rev_key
        out += _U32.pack(len(kv_bytes))
        out += kv_bytes
    out += _U32.pack(zlib.crc32(out))
    return bytes(out)


def decode_snapshot(data: bytes) -> tuple[int, int, Iterator[tuple[bytes, bytes]]]:
    """``(current_rev, compact_rev, records)``; checks magic, format and checksum up front."""
    if len(data) < _HEADER.size + _U32.size:
        raise MvccSnapshotError("snapshot too short")
    body, (crc,) = data[:-4], _U32.unpack(data[-4:])
    if zlib.crc32(body) != crc:
        raise MvccSnapshotError("snapshot checksum mismatch")
    magic, fmt, current_rev, compact_rev, count = _HEADER.unpack_from(body)
    if magic != SNAPSHOT_MAGIC:
        raise MvccSnapshotError("not an mvcc snapshot (bad magic)")
    if fmt != SNAPSHOT_FORMAT:
        raise MvccSnapshotError(f"unknown snapshot format {fmt}")

    def records() -> Iterator[tuple[bytes, bytes]]:
        pos = _HEADER.size
        for _ in range(count):
            parts = []
            for _part in range(2):
                if pos + 4 > len(body):
                    raise MvccSnapshotError("truncated snapshot record")
                (n,) = _U32.unpack_from(body, pos)
                pos += 4
                if pos + n > len(body):
                    raise MvccSnapshotError("truncated snapshot record")
                parts.append(body[pos : pos + n])
                pos += n
            yield parts[0], parts[1]
        if pos != len(body):
            raise MvccSnapshotError("trailing bytes after snapshot records")

    return current_rev, compact_rev, records()
