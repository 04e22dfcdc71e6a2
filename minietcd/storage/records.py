"""Compact binary encodings of what the WAL and snapshot files hold, and the WAL frame.

Everything is little-endian and built with :mod:`struct` (no protobuf): a batch of hundreds of
entries is encoded on every write, so the hot paths (:func:`encode_entry`,
:func:`append_record`) do one ``struct.pack`` and a couple of C-level ``zlib.crc32`` calls each.

WAL frame (one record), always a multiple of 8 bytes long so that the 8-byte frame header never
straddles a sector and so is never torn (etcd ``wal/doc.go``)::

    0       4      5       6            8        12       16
    +-------+------+-------+------------+--------+--------+-----------+---------+
    | n u32 | pad  | 0x80  | hcheck u16 | crc u32| type u32| payload  | pad*\\0  |
    +-------+------+-------+------------+--------+--------+-----------+---------+
    '--------- frame header (8) --------''------------- body: n bytes -'

- ``n`` is the body length (crc + type + payload), ``pad`` = (-n) mod 8 zero bytes follow.
- ``0x80`` marks a written header, so a header is never all zero (an all-zero header means
  "unwritten space": a preallocated or crash-extended tail).
- ``hcheck`` is the low 16 bits of CRC32 over the first 6 header bytes. etcd has no such check;
  we add it because a corrupted length in a middle record would otherwise look exactly like a
  torn final record (length runs past the end of the file), and be silently truncated.
- ``crc`` chains: ``crc = crc32(type || payload, previous record's crc)``, so a record only
  verifies in its place in the sequence (a lost or reordered record breaks the chain). The
  exception is a CRC record, whose ``crc`` covers only itself (seed 0) and whose payload is the
  running CRC to continue from; one opens every segment so chaining spans segment files.

The CRC is zlib's CRC32 (IEEE), not etcd's CRC32C: the stdlib has it in C and we add no
dependency; the files are ours, not etcd's, so nothing needs to read them but minietcd.
"""

from __future__ import annotations

import enum
import functools
import struct
import zlib
from dataclasses import dataclass

from minietcd.raft.types import (
    ConfState,
    Entry,
    EntryType,
    HardState,
    Snapshot,
    SnapshotMetadata,
)

# Anything the decoders read from: a file's bytes, a slice view of them, or a build buffer.
Buf = bytes | bytearray | memoryview


class RecordType(enum.IntEnum):
    """What a WAL record's payload holds. Numbers match etcd's wal record types."""

    METADATA = 1  # opaque bytes given to WAL.create (node/cluster id); repeated in each segment
    ENTRY = 2  # one raft Entry
    STATE = 3  # a HardState; the last one read wins
    CRC = 4  # payload: the running CRC to continue the chain from (opens every segment)
    SNAPSHOT = 5  # a marker (index, term): a snapshot file at this point may be trusted


FRAME_HEADER_SIZE = 8
_HEADER_FLAG = 0x80
_FRAME6 = struct.Struct("<IBB")  # body length, pad, flag: the bytes hcheck covers
_FRAME = struct.Struct("<IBBH")  # ... plus hcheck
_BODY = struct.Struct("<II")  # crc, type
BODY_HEADER_SIZE = _BODY.size
# Bodies larger than this are refused on read: a guard against allocating on a garbage length.
MAX_BODY_SIZE = 1 << 30
_ZERO_PAD = tuple(b"\0" * i for i in range(8))
_TYPE_BYTES = {t: struct.pack("<I", t) for t in RecordType}
_CRC_TYPE = int(RecordType.CRC)


@functools.lru_cache(maxsize=4096)
def frame_header(body_len: int) -> bytes:
    """The 8 header bytes for a body of ``body_len`` bytes (cached: sizes repeat a lot)."""
    pad = -body_len & 7
    first6 = _FRAME6.pack(body_len, pad, _HEADER_FLAG)
    return first6 + struct.pack("<H", zlib.crc32(first6) & 0xFFFF)


def parse_frame_header(buf: Buf, off: int) -> tuple[int, int] | None:
    """(body length, pad) of the header at ``off``, or None if it does not check out."""
    n, pad, flag, check = _FRAME.unpack_from(buf, off)
    if flag != _HEADER_FLAG or pad != (-n & 7) or n < BODY_HEADER_SIZE or n > MAX_BODY_SIZE:
        return None
    if zlib.crc32(buf[off : off + 6]) & 0xFFFF != check:
        return None
    return n, pad


def append_record(out: bytearray, rtype: RecordType, payload: bytes, prev_crc: int) -> int:
    """Append one framed record to ``out``; return the new running CRC."""
    if rtype is RecordType.CRC:
        # Self-contained: a reader starting at this segment has no previous CRC to chain from.
        crc = zlib.crc32(payload, zlib.crc32(_TYPE_BYTES[rtype]))
        running = decode_crc_payload(payload)
    else:
        crc = zlib.crc32(payload, zlib.crc32(_TYPE_BYTES[rtype], prev_crc))
        running = crc
    n = BODY_HEADER_SIZE + len(payload)
    out += frame_header(n)
    out += _BODY.pack(crc, rtype)
    out += payload
    out += _ZERO_PAD[-n & 7]
    return running


def body_crc(buf: Buf, off: int, n: int, prev_crc: int) -> tuple[int, int, int]:
    """(type, stored crc, computed crc) of the record at ``off`` whose body is n bytes long.

    ``prev_crc`` is ignored for CRC records, which check against seed 0.
    """
    stored, rtype = _BODY.unpack_from(buf, off + FRAME_HEADER_SIZE)
    seed = 0 if rtype == _CRC_TYPE else prev_crc
    # type and payload are contiguous, so one crc32 call covers both.
    computed = zlib.crc32(buf[off + FRAME_HEADER_SIZE + 4 : off + FRAME_HEADER_SIZE + n], seed)
    return rtype, stored, computed


# --- payloads ----------------------------------------------------------------------------------

_ENTRY = struct.Struct("<QQB")  # term, index, type; data follows
_STATE = struct.Struct("<QQQ")  # term, vote, commit
_MARKER = struct.Struct("<QQ")  # index, term
_CRC = struct.Struct("<I")
_SNAPMETA = struct.Struct("<QQII")  # index, term, #voters, #learners; the ids follow as u64
_ENTRY_TYPES = {int(t): t for t in EntryType}


@dataclass(slots=True, frozen=True, order=True)
class WalSnapshot:
    """A snapshot marker in the WAL: the snapshot at (index, term) was saved at this point."""

    index: int = 0  # last log index the snapshot covers
    term: int = 0  # term of that entry


def encode_entry(e: Entry) -> bytes:
    return _ENTRY.pack(e.term, e.index, e.type) + e.data


def decode_entry(b: Buf) -> Entry:
    term, index, etype = _ENTRY.unpack_from(b, 0)
    # A dict lookup, not EntryType(etype): replay decodes every entry and enum calls are slow.
    # An unknown type raises KeyError, which the WAL reports as corruption.
    return Entry(term=term, index=index, type=_ENTRY_TYPES[etype], data=bytes(b[_ENTRY.size :]))


def encode_hard_state(hs: HardState) -> bytes:
    return _STATE.pack(hs.term, hs.vote, hs.commit)


def decode_hard_state(b: Buf) -> HardState:
    if len(b) != _STATE.size:
        raise ValueError(f"hard state payload is {len(b)} bytes, want {_STATE.size}")
    term, vote, commit = _STATE.unpack_from(b, 0)
    return HardState(term=term, vote=vote, commit=commit)


def encode_wal_snapshot(s: WalSnapshot) -> bytes:
    return _MARKER.pack(s.index, s.term)


def decode_wal_snapshot(b: Buf) -> WalSnapshot:
    if len(b) != _MARKER.size:
        raise ValueError(f"snapshot marker payload is {len(b)} bytes, want {_MARKER.size}")
    index, term = _MARKER.unpack_from(b, 0)
    return WalSnapshot(index=index, term=term)


def encode_crc_payload(crc: int) -> bytes:
    return _CRC.pack(crc)


def decode_crc_payload(b: Buf) -> int:
    if len(b) != _CRC.size:
        raise ValueError(f"crc payload is {len(b)} bytes, want {_CRC.size}")
    return int(_CRC.unpack_from(b, 0)[0])


def encode_snapshot_metadata(m: SnapshotMetadata) -> bytes:
    cs = m.conf_state
    ids = (*cs.voters, *cs.learners)
    head = _SNAPMETA.pack(m.index, m.term, len(cs.voters), len(cs.learners))
    return head + struct.pack(f"<{len(ids)}Q", *ids)


def decode_snapshot_metadata(b: Buf) -> tuple[SnapshotMetadata, int]:
    """The metadata at the start of ``b`` and how many bytes it took."""
    index, term, nv, nl = _SNAPMETA.unpack_from(b, 0)
    end = _SNAPMETA.size + 8 * (nv + nl)
    if end > len(b):
        raise ValueError("snapshot metadata runs past the end of its buffer")
    ids = struct.unpack_from(f"<{nv + nl}Q", b, _SNAPMETA.size)
    cs = ConfState(voters=tuple(ids[:nv]), learners=tuple(ids[nv:]))
    return SnapshotMetadata(conf_state=cs, index=index, term=term), end


def encode_snapshot(s: Snapshot) -> bytes:
    """Metadata then the opaque data (the data runs to the end)."""
    return encode_snapshot_metadata(s.metadata) + s.data


def decode_snapshot(b: Buf) -> Snapshot:
    meta, used = decode_snapshot_metadata(b)
    return Snapshot(data=bytes(b[used:]), metadata=meta)
