"""Reading a WAL back: scanning each segment's frames, then replaying the records.

:class:`SegmentScanner` decodes one segment's frames (the format is in :mod:`.records`) and
decides, for a bad one, between a torn write and corruption; :class:`Replay` turns the good
records into what a restart resumes from (metadata, last hard state, entries after the start
snapshot, snapshot markers). :class:`~minietcd.storage.wal.WAL` opens with these.

The rules that matter most:

- A bad record in any segment but the last raises :class:`WalCorruptError` (file, offset).
- In the last segment, a bad record is a *torn write* and is truncated away, with a warning,
  only if a crash can explain it: the file ends inside it, or nothing but zeros follows it, or
  a whole sector under its body reads as zeros (the page never reached the disk; etcd's
  ``isTornEntry``). Anything else (e.g. a flipped byte with good records after it) raises
  :class:`WalCorruptError`, and nothing is truncated or overwritten.
- An all-zero tail (preallocated or crash-extended space) ends the log and is truncated.
- A record whose checksum holds but whose content is wrong is never "torn": it raises.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from minietcd.errors import StorageError, WalCorruptError, WalSnapshotNotFoundError
from minietcd.raft.types import Entry, HardState
from minietcd.storage.fileutil import is_zero
from minietcd.storage.records import (
    FRAME_HEADER_SIZE,
    RecordType,
    WalSnapshot,
    body_crc,
    decode_crc_payload,
    decode_entry,
    decode_hard_state,
    decode_wal_snapshot,
    parse_frame_header,
)

if TYPE_CHECKING:
    from minietcd.storage.wal import Segment

SECTOR_SIZE = 512  # the unit a disk writes atomically; an unwritten one reads back as zeros
_KNOWN_TYPES = frozenset(int(t) for t in RecordType)
_ZERO_HEADER = bytes(FRAME_HEADER_SIZE)


@dataclass(slots=True)
class Scan:
    """One segment decoded up to its end or its torn tail."""

    records: list[tuple[int, int, memoryview]]  # (type, offset, payload) of each good record
    valid_end: int  # offset just past the last good record: where appending resumes
    crc: int | None  # running CRC after the last good record (None: nothing read yet)
    torn: str | None = None  # why the bytes after valid_end were judged a torn write


def _zero_sector_under(buf: bytes, start: int, end: int) -> bool:
    """True if any sector overlapping buf[start:end] reads back entirely as zeros.

    Whole sectors are checked (clipped to the file), not just the part under the record, so a
    payload that merely ends in a few zero bytes is not mistaken for an unwritten sector.
    """
    s = start - start % SECTOR_SIZE
    while s < end:
        if is_zero(buf, s, min(s + SECTOR_SIZE, len(buf))):
            return True
        s += SECTOR_SIZE
    return False


class SegmentScanner:
    """Decodes the frames of one segment, classifying each failure as torn or corrupt."""

    __slots__ = ("buf", "is_last", "path")

    def __init__(self, path: str, buf: bytes, is_last: bool) -> None:
        self.path = path  # for error messages
        self.buf = buf  # the whole file
        self.is_last = is_last  # only the last segment may end in a torn write

    def _fail(self, scan: Scan, off: int, extent_end: int, reason: str, *, sectors: bool) -> Scan:
        """Return ``scan`` cut at ``off`` if a crash explains the failure there, else raise.

        ``extent_end`` is where the bad record claims to end; ``sectors`` says whether an
        unwritten sector under its body may explain it (not for a bad header: a header is
        written in one piece with its sector).
        """
        buf = self.buf
        if self.is_last and (
            extent_end >= len(buf)
            or is_zero(buf, extent_end)
            or (sectors and _zero_sector_under(buf, off + FRAME_HEADER_SIZE, extent_end))
        ):
            scan.valid_end = off
            scan.torn = f"{reason} at offset {off}"
            return scan
        raise WalCorruptError(self.path, off, reason)

    def scan(self, prev_crc: int | None) -> Scan:
        buf, size = self.buf, len(self.buf)
        mv = memoryview(buf)
        scan = Scan(records=[], valid_end=0, crc=prev_crc)
        off = 0
        while off < size:
            if size - off < FRAME_HEADER_SIZE or buf[off : off + FRAME_HEADER_SIZE] == _ZERO_HEADER:
                if is_zero(buf, off):
                    # Space that was never written: preallocated, or a crash after the file
                    # grew but before its pages landed. A cut segment was fsynced whole, so
                    # only the last may have it.
                    if not self.is_last:
                        raise WalCorruptError(self.path, off, "zero-filled tail in a cut segment")
                    scan.valid_end = off
                    scan.torn = f"zero-filled tail from offset {off}"
                    return scan
                if size - off < FRAME_HEADER_SIZE:
                    return self._fail(scan, off, size, "short frame header", sectors=False)
                # A zero header with data after it: torn only if the header's whole sector
                # is unwritten (pages reached the disk out of order), else corruption.
                sector_end = min(size, off - off % SECTOR_SIZE + SECTOR_SIZE)
                if self.is_last and is_zero(buf, off, sector_end):
                    scan.valid_end = off
                    scan.torn = f"unwritten sector at offset {off}"
                    return scan
                raise WalCorruptError(self.path, off, "zero frame header followed by data")
            hdr = parse_frame_header(mv, off)
            if hdr is None:
                return self._fail(scan, off, off + FRAME_HEADER_SIZE, "bad frame header", sectors=False)
            n, pad = hdr
            end = off + FRAME_HEADER_SIZE + n + pad
            if end > size:
                return self._fail(scan, off, size, "record runs past end of file", sectors=False)
            rtype, stored, computed = body_crc(mv, off, n, scan.crc or 0)
            if stored != computed:
                body_end = off + FRAME_HEADER_SIZE + n
                return self._fail(scan, off, body_end, "crc mismatch", sectors=True)
            # From here the record is what was written: any problem is corruption, never torn.
            if pad and not is_zero(buf, end - pad, end):
                # The CRC does not cover the padding; we write zeros, so check them here.
                raise WalCorruptError(self.path, off, "non-zero padding")
            payload = mv[off + FRAME_HEADER_SIZE + 8 : off + FRAME_HEADER_SIZE + n]
            if rtype == RecordType.CRC:
                try:
                    value = decode_crc_payload(payload)
                except ValueError as exc:
                    raise WalCorruptError(self.path, off, str(exc)) from None
                if scan.crc is not None and value != scan.crc:
                    raise WalCorruptError(
                        self.path,
                        off,
                        f"crc chain broken: segment continues from {value:08x}, "
                        f"previous record ended at {scan.crc:08x}",
                    )
                scan.crc = value
            elif scan.crc is None:
                raise WalCorruptError(self.path, off, "segment does not start with a CRC record")
            elif rtype not in _KNOWN_TYPES:
                raise WalCorruptError(self.path, off, f"unknown record type {rtype}")
            else:
                scan.crc = computed
            scan.records.append((rtype, off, payload))
            off = end
        scan.valid_end = off
        return scan


@dataclass(slots=True)
class Replay:
    """What reading the segments from the start snapshot on produced."""

    start: WalSnapshot  # the snapshot the read starts at
    collect_entries: bool  # False: only states and markers matter (valid_snapshots)
    metadata: bytes | None = None  # the METADATA payload (must agree across segments)
    state: HardState = field(default_factory=HardState)  # the last STATE record
    entries: list[Entry] = field(default_factory=list)  # entries start.index+1, +2, ...
    markers: list[WalSnapshot] = field(default_factory=list)  # every SNAPSHOT marker read
    matched: bool = False  # a marker equal to ``start`` was found
    last_index: int = 0  # index of the last entry (or marker) read, as etcd's ``enti``
    crc: int | None = None  # running CRC at the end of the last good record
    tail: Scan | None = None  # the last segment's scan (for truncating a torn tail)

    def apply(self, path: str, rtype: int, off: int, payload: memoryview) -> None:
        try:
            if rtype == RecordType.ENTRY:
                index = int.from_bytes(payload[8:16], "little")
                if self.collect_entries and index > self.start.index:
                    self._entry(path, off, decode_entry(payload))
                else:
                    # Covered by the snapshot, or only the index is wanted: no Entry to build.
                    self.last_index = index
                    if self.collect_entries:
                        # Written after every entry read so far (all above the snapshot): it
                        # overwrote them (a new leader cut an uncommitted suffix), so they must
                        # not come back. etcd's ReadAll keeps them; that is a bug.
                        self.entries.clear()
            elif rtype == RecordType.STATE:
                self.state = decode_hard_state(payload)
            elif rtype == RecordType.METADATA:
                md = bytes(payload)
                if self.metadata is not None and md != self.metadata:
                    raise WalCorruptError(path, off, "metadata differs from an earlier segment")
                self.metadata = md
            elif rtype == RecordType.SNAPSHOT:
                marker = decode_wal_snapshot(payload)
                self.markers.append(marker)
                self.last_index = max(self.last_index, marker.index)
                if marker.index == self.start.index:
                    if marker.term != self.start.term:
                        raise WalSnapshotNotFoundError(
                            f"wal: snapshot marker at index {marker.index} has term "
                            f"{marker.term}, want {self.start.term} ({path} offset {off})"
                        )
                    self.matched = True
        except (ValueError, LookupError, struct.error) as exc:  # a payload that does not decode
            raise WalCorruptError(path, off, f"undecodable {RecordType(rtype).name}: {exc}") from None

    def _entry(self, path: str, off: int, e: Entry) -> None:
        self.last_index = e.index  # above the snapshot: apply() handles those at or below
        # A later entry at an index we hold replaces it and everything after (a new leader
        # overwrote an uncommitted suffix); etcd's ReadAll does the same.
        up = e.index - self.start.index - 1
        if up > len(self.entries):
            raise WalCorruptError(
                path,
                off,
                f"entry {e.index} leaves a gap after index {self.start.index + len(self.entries)}",
            )
        del self.entries[up:]
        self.entries.append(e)


def select_start(segments: Sequence[Segment], index: int) -> int:
    """Position of the last segment whose first index is <= ``index`` (where reading starts)."""
    for i in range(len(segments) - 1, -1, -1):
        if segments[i].first_index <= index:
            return i
    raise WalSnapshotNotFoundError(f"wal: no segment can hold snapshot index {index}")


def check_sequence(segments: Sequence[Segment]) -> None:
    for a, b in itertools.pairwise(segments):
        if b.seq != a.seq + 1:
            raise StorageError(f"wal: segment sequence jumps from {a.path} to {b.path}")


def scan_segments(segments: Sequence[Segment]) -> list[Scan]:
    """Read and check every record of ``segments`` (the CRC chain runs across them)."""
    scans: list[Scan] = []
    crc: int | None = None
    for i, seg in enumerate(segments):
        with open(seg.path, "rb") as f:
            buf = f.read()
        scan = SegmentScanner(seg.path, buf, i == len(segments) - 1).scan(crc)
        crc = scan.crc
        scans.append(scan)
    return scans


def replay_scans(
    segments: Sequence[Segment], scans: Sequence[Scan], start: WalSnapshot, collect_entries: bool
) -> Replay:
    replay = Replay(start=start, collect_entries=collect_entries)
    for seg, scan in zip(segments, scans, strict=True):
        for rtype, off, payload in scan.records:
            replay.apply(seg.path, rtype, off, payload)
        replay.crc = scan.crc
    replay.tail = scans[-1] if scans else None
    return replay


def read_segments(segments: Sequence[Segment], start: WalSnapshot, collect_entries: bool) -> Replay:
    return replay_scans(segments, scan_segments(segments), start, collect_entries)


def valid_markers(replay: Replay) -> list[WalSnapshot]:
    # As etcd's ValidSnapshotEntries, only markers at or below the last hard state's commit
    # count: a marker past it belongs to a Ready whose hard state never reached the disk.
    return [m for m in replay.markers if m.index <= replay.state.commit]
