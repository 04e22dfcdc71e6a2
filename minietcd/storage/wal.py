"""The write-ahead log: Raft entries and hard state, in CRC-chained, 8-byte-aligned segments.

Modelled on etcd's ``wal/`` (read its ``doc.go``); the frame format is in :mod:`.records`.

Files. A WAL directory holds segment files named ``%016x-%016x.wal`` (sequence number, index of
the first entry the segment may hold) and a ``LOCK`` file. Every segment opens with a CRC record
(the running CRC to continue from), the metadata, and (after the first) the last hard state, so
any segment can be the first one read once older ones are released. A segment is cut when it
grows past ``segment_size``: the old one is fsynced first, and the new one is written as a
``.tmp`` file, fsynced and renamed, so a ``.wal`` file other than the last is always complete.

Writing. :meth:`WAL.save` appends a whole batch with one ``write`` (no fsync); :meth:`WAL.sync`
makes everything saved before it durable. The server runs ``sync`` in a worker thread (group
commit): ``sync`` holds the mutex only to ``dup`` the tail descriptor, so a ``save`` or a cut
on the event loop never waits for the disk, and a cut closing the old descriptor cannot pull it
from under the fsync.

Recovery (:meth:`WAL.open`): :mod:`.wal_replay` reads the segments back, telling a torn write
from corruption (its docstring has the rules), and replays their records; a torn tail of the
last segment is truncated here, with a warning, before appending resumes.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from minietcd.errors import (
    StorageError,
    WalClosedError,
    WalCorruptError,
    WalSnapshotNotFoundError,
)
from minietcd.raft.types import Entry, HardState
from minietcd.storage.fileutil import LOCK_FILE_NAME, DirLock, fsync_dir, go_error_text, write_all
from minietcd.storage.records import (
    RecordType,
    WalSnapshot,
    append_record,
    encode_crc_payload,
    encode_entry,
    encode_hard_state,
    encode_wal_snapshot,
)
from minietcd.storage.wal_replay import (
    Scan,
    check_sequence,
    read_segments,
    replay_scans,
    scan_segments,
    select_start,
    valid_markers,
)

log = logging.getLogger(__name__)

# Size at which a segment is cut. etcd cuts at 64 MB; we cut at 8 MiB because a restart reads
# every retained segment from the one holding the newest snapshot marker on, and Python scans
# about 60 MB/s: with 64 MB segments a restart read up to 64 MB of entries the snapshot already
# covers (and that the compaction after each snapshot could not release).
SEGMENT_SIZE = 8 * 1024 * 1024
WAL_SUFFIX = ".wal"
TMP_SUFFIX = ".tmp"

# os.fdatasync is enough (it flushes the size too) but does not exist everywhere (macOS).
_fdatasync = getattr(os, "fdatasync", os.fsync)


def segment_name(seq: int, first_index: int) -> str:
    return f"{seq:016x}-{first_index:016x}{WAL_SUFFIX}"


def parse_segment_name(name: str) -> tuple[int, int] | None:
    """(seq, first index) of a segment file name, None if it is not one."""
    if len(name) != 33 + len(WAL_SUFFIX) or not name.endswith(WAL_SUFFIX) or name[16] != "-":
        return None
    try:
        return int(name[:16], 16), int(name[17:33], 16)
    except ValueError:
        return None


@dataclass(slots=True, frozen=True)
class Segment:
    seq: int  # position in the chain of segments: consecutive, from 0
    first_index: int  # no entry in this segment or later ones was below this when it was cut
    path: str


def list_segments(dir_path: str) -> list[Segment]:
    """The segment files in ``dir_path``, ordered by sequence number."""
    segs = []
    for name in os.listdir(dir_path):
        parsed = parse_segment_name(name)
        if parsed is None:
            if name != LOCK_FILE_NAME and not name.endswith(TMP_SUFFIX):
                log.warning("wal: ignoring unexpected file %s in %s", name, dir_path)
            continue
        segs.append(Segment(parsed[0], parsed[1], os.path.join(dir_path, name)))
    segs.sort(key=lambda s: s.seq)
    return segs


# --- the WAL -----------------------------------------------------------------------------------


class WAL:
    """An open, writable WAL. Build it with :meth:`create` or :meth:`open`.

    Thread-safety: every method takes ``_mu``; :meth:`sync` may run in a worker thread while
    the event loop goes on calling :meth:`save` (see the module docstring).
    """

    def __init__(
        self,
        dir_path: str,
        lock: DirLock,
        segments: list[Segment],
        fd: int,
        offset: int,
        *,
        metadata: bytes,
        crc: int,
        state: HardState,
        last_index: int,
        segment_size: int,
        replayed: tuple[bytes, HardState, list[Entry]] | None,
    ) -> None:
        self.dir = dir_path  # the WAL directory
        self.segment_size = segment_size  # cut the tail once it reaches this many bytes
        self._lock = lock  # the directory flock, held until close
        self._mu = threading.Lock()  # guards everything below
        self._segments = segments  # retained segments, oldest first; the last is the tail
        self._fd: int | None = fd  # the tail, open for writing (None once closed)
        self._offset = offset  # size of the tail = where the next record goes
        self._metadata = metadata  # repeated at the head of every new segment
        self._crc = crc  # running CRC after the last record written
        self._state = state  # last hard state saved (repeated at the head of new segments)
        self._last_index = last_index  # etcd's ``enti``: names the next segment
        self._replayed = replayed  # what open() read, until read_all() hands it out
        self._failed: BaseException | None = None  # a failed write/fsync: refuse all further use

    # -- construction --------------------------------------------------------------------------

    @staticmethod
    def exists(dir_path: str) -> bool:
        """True if ``dir_path`` holds at least one segment file."""
        try:
            return bool(list_segments(dir_path))
        except FileNotFoundError:
            return False

    @classmethod
    def create(cls, dir_path: str, metadata: bytes, *, segment_size: int = SEGMENT_SIZE) -> WAL:
        """Create a new WAL whose first segment holds ``metadata`` and a (0, 0) snapshot marker.

        Built in ``<dir>.tmp`` and renamed into place, so a crash never leaves a half-made WAL
        that :meth:`exists` would report.
        """
        dir_path = os.path.abspath(dir_path)
        if cls.exists(dir_path):
            raise StorageError(f"wal: {dir_path} already holds a WAL")
        if os.path.isdir(dir_path):
            leftovers = set(os.listdir(dir_path)) - {LOCK_FILE_NAME}
            if leftovers:
                raise StorageError(f"wal: {dir_path} is not empty: {sorted(leftovers)}")
        parent = os.path.dirname(dir_path)
        os.makedirs(parent, exist_ok=True)
        tmp_dir = dir_path + TMP_SUFFIX
        if os.path.exists(tmp_dir):
            shutil.rmtree(tmp_dir)  # a previous create that crashed half-way
        os.makedirs(tmp_dir)
        lock = DirLock(tmp_dir)
        lock.acquire()
        fd: int | None = None
        try:
            buf = bytearray()
            crc = append_record(buf, RecordType.CRC, encode_crc_payload(0), 0)
            crc = append_record(buf, RecordType.METADATA, metadata, crc)
            crc = append_record(buf, RecordType.SNAPSHOT, encode_wal_snapshot(WalSnapshot()), crc)
            name = segment_name(0, 0)
            fd = os.open(os.path.join(tmp_dir, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            write_all(fd, buf)
            os.fsync(fd)
            if os.path.isdir(dir_path):
                shutil.rmtree(dir_path)  # empty but for a stale LOCK (checked above)
            # The flock lives on the LOCK file's inode, so it survives the rename.
            os.rename(tmp_dir, dir_path)
            fsync_dir(parent)
            lock.path = os.path.join(dir_path, LOCK_FILE_NAME)
        except BaseException:
            if fd is not None:
                os.close(fd)
            lock.release()
            raise
        seg = Segment(0, 0, os.path.join(dir_path, name))
        return cls(
            dir_path,
            lock,
            [seg],
            fd,
            len(buf),
            metadata=metadata,
            crc=crc,
            state=HardState(),
            last_index=0,
            segment_size=segment_size,
            replayed=(metadata, HardState(), []),
        )

    @classmethod
    def open(
        cls,
        dir_path: str,
        snapshot: WalSnapshot | None = None,
        *,
        segment_size: int = SEGMENT_SIZE,
    ) -> WAL:
        """Open for appending, reading everything after the marker of ``snapshot``.

        ``snapshot`` is the (index, term) of the snapshot the caller restored (None: no
        snapshot, the WAL's own (0, 0) marker). Its marker must be in the WAL. A torn tail is
        truncated (with a warning); corruption raises :class:`WalCorruptError` and changes
        nothing on disk. The result of the read is returned by :meth:`read_all`.
        """
        start = snapshot if snapshot is not None else WalSnapshot()
        dir_path = os.path.abspath(dir_path)
        lock = DirLock(dir_path)
        lock.acquire()
        try:
            return cls._open_locked(dir_path, lock, start, segment_size)
        except BaseException:
            lock.release()
            raise

    @classmethod
    def open_newest(
        cls,
        dir_path: str,
        pick: Callable[[list[WalSnapshot]], WalSnapshot],
        *,
        segment_size: int = SEGMENT_SIZE,
    ) -> WAL:
        """:meth:`valid_snapshots` then :meth:`open` in one read of the segments (a restart's
        cost): ``pick`` gets the markers a restart may start from and returns the one to open
        at (the newest whose snapshot file is good)."""
        dir_path = os.path.abspath(dir_path)
        lock = DirLock(dir_path)
        lock.acquire()
        try:
            segments = list_segments(dir_path)
            if not segments:
                raise StorageError(f"wal: no segment files in {dir_path}")
            check_sequence(segments)
            scans = scan_segments(segments)
            start = pick(valid_markers(replay_scans(segments, scans, WalSnapshot(), False)))
            return cls._open_locked(dir_path, lock, start, segment_size, (segments, scans))
        except BaseException:
            lock.release()
            raise

    @classmethod
    def _open_locked(
        cls,
        dir_path: str,
        lock: DirLock,
        start: WalSnapshot,
        segment_size: int,
        scanned: tuple[list[Segment], list[Scan]] | None = None,
    ) -> WAL:
        segments = list_segments(dir_path) if scanned is None else scanned[0]
        if not segments:
            raise StorageError(f"wal: no segment files in {dir_path}")
        first = select_start(segments, start.index)
        check_sequence(segments[first:])
        if scanned is None:
            replay = read_segments(segments[first:], start, collect_entries=True)
        else:
            replay = replay_scans(segments[first:], scanned[1][first:], start, collect_entries=True)
        if not replay.matched:
            raise WalSnapshotNotFoundError(
                f"wal: no marker for snapshot (index {start.index}, term {start.term}) in {dir_path}"
            )
        tail, tail_scan = segments[-1], replay.tail
        if tail_scan is None or replay.crc is None or tail_scan.valid_end == 0:
            # Every segment is written whole with its CRC/metadata head before it gets its
            # name, so an empty one is damage, not a crash; appending to it would leave a
            # segment no reader could start from.
            raise WalCorruptError(tail.path, 0, "segment holds no records")
        fd = os.open(tail.path, os.O_RDWR)
        try:
            if tail_scan.torn is not None:
                size = os.fstat(fd).st_size
                log.warning(
                    "wal: %s: %s; truncating %d bytes (an unsynced write lost in a crash)",
                    tail.path,
                    tail_scan.torn,
                    size - tail_scan.valid_end,
                )
                os.ftruncate(fd, tail_scan.valid_end)
                os.fsync(fd)
            os.lseek(fd, tail_scan.valid_end, os.SEEK_SET)
            # A cut that crashed before its rename leaves a .tmp segment: never part of the log.
            for name in os.listdir(dir_path):
                if name.endswith(WAL_SUFFIX + TMP_SUFFIX):
                    os.unlink(os.path.join(dir_path, name))
        except BaseException:
            os.close(fd)
            raise
        metadata = replay.metadata if replay.metadata is not None else b""
        return cls(
            dir_path,
            lock,
            segments,
            fd,
            tail_scan.valid_end,
            metadata=metadata,
            crc=replay.crc,
            state=replay.state,
            last_index=replay.last_index,
            segment_size=segment_size,
            replayed=(metadata, replay.state, replay.entries),
        )

    @staticmethod
    def valid_snapshots(dir_path: str) -> list[WalSnapshot]:
        """Snapshot markers in the WAL that a restart may start from (oldest first).

        Read-only (a torn tail is ignored, not truncated). As etcd's ValidSnapshotEntries, only
        markers at or below the last hard state's commit count: a marker past it belongs to a
        Ready whose hard state never reached the disk.
        """
        segments = list_segments(os.path.abspath(dir_path))
        if not segments:
            raise StorageError(f"wal: no segment files in {dir_path}")
        check_sequence(segments)
        return valid_markers(read_segments(segments, WalSnapshot(), collect_entries=False))

    # -- reading -------------------------------------------------------------------------------

    def read_all(self) -> tuple[bytes, HardState, list[Entry]]:
        """(metadata, last hard state, entries after the open snapshot) as open() found them.

        Hands the entries over once (they can be large); a second call raises.
        """
        with self._mu:
            if self._replayed is None:
                raise StorageError("wal: read_all() may be called once, after open()")
            out, self._replayed = self._replayed, None
            return out

    @property
    def metadata(self) -> bytes:
        return self._metadata

    @property
    def last_index(self) -> int:
        """Index of the last entry or snapshot marker saved."""
        return self._last_index

    def segments(self) -> list[Segment]:
        """The retained segment files, oldest first."""
        with self._mu:
            return list(self._segments)

    # -- writing -------------------------------------------------------------------------------

    def _writable_fd(self) -> int:
        if self._fd is None:
            raise WalClosedError(f"wal: {self.dir} is closed")
        if self._failed is not None:
            raise StorageError(f"wal: {self.dir} failed earlier: {self._failed!r}")
        return self._fd

    def _append(self, fd: int, buf: bytearray) -> None:
        try:
            write_all(fd, buf)
        except BaseException as exc:
            # A partial record may be on disk now; appending after it would bury garbage in
            # the middle of the log. Stop here: a restart treats it as a torn tail.
            self._failed = exc
            if isinstance(exc, OSError):  # ENOSPC, EIO: fatal for the member, in Go's words
                raise StorageError(go_error_text(exc, "write", self._segments[-1].path)) from exc
            raise
        self._offset += len(buf)

    def save(self, hard_state: HardState, entries: Iterable[Entry]) -> None:
        """Append ``entries`` then ``hard_state`` (skipped if empty) in one write; no fsync."""
        with self._mu:
            fd = self._writable_fd()
            buf = bytearray()
            crc = self._crc
            last = self._last_index
            for e in entries:
                crc = append_record(buf, RecordType.ENTRY, encode_entry(e), crc)
                last = e.index
            if not hard_state.is_empty():
                crc = append_record(buf, RecordType.STATE, encode_hard_state(hard_state), crc)
            if not buf:
                return
            self._append(fd, buf)
            self._crc, self._last_index = crc, last
            if not hard_state.is_empty():
                self._state = hard_state
            if self._offset >= self.segment_size:
                self._cut()

    def save_snapshot_marker(self, index: int, term: int) -> None:
        """Record that the snapshot at (index, term) is saved; no fsync (call :meth:`sync`)."""
        with self._mu:
            fd = self._writable_fd()
            buf = bytearray()
            marker = encode_wal_snapshot(WalSnapshot(index=index, term=term))
            crc = append_record(buf, RecordType.SNAPSHOT, marker, self._crc)
            self._append(fd, buf)
            self._crc = crc
            self._last_index = max(self._last_index, index)

    def sync(self) -> None:
        """Make everything saved so far durable. Safe to run in a worker thread."""
        with self._mu:
            # A private descriptor: a cut may close self._fd while we fsync outside the lock.
            fd = os.dup(self._writable_fd())
        try:
            _fdatasync(fd)
        except BaseException as exc:
            raise self.sync_failed(exc) from exc
        finally:
            os.close(fd)

    def sync_target(self) -> int:
        """The descriptor a sync of everything saved so far must fsync, for a caller that runs
        the fsync elsewhere (the Ready loop's syncer thread: a bare ``os.fdatasync``, as little
        of the GIL as possible) and reports the outcome with :meth:`sync_failed`. The caller
        must not save (a save may cut a segment and close it) or close until that fsync is
        done; the Ready loop never does, it waits for the fsync."""
        with self._mu:
            return self._writable_fd()

    def sync_failed(self, exc: BaseException) -> BaseException:
        """Record that a sync failed; the error to raise, in Go's words for an OSError."""
        # After a failed fsync the kernel may have dropped the dirty pages: retrying would
        # "succeed" without the data (fsyncgate). Refuse further use.
        with self._mu:
            self._failed = exc
            path = self._segments[-1].path
        if isinstance(exc, OSError):
            return StorageError(go_error_text(exc, "sync", path))
        return exc

    def _cut(self) -> None:
        """Start a new segment (holding _mu). The old one is complete and durable first."""
        old_fd = self._writable_fd()
        try:
            _fdatasync(old_fd)
            seq = self._segments[-1].seq + 1
            path = os.path.join(self.dir, segment_name(seq, self._last_index + 1))
            buf = bytearray()
            crc = append_record(buf, RecordType.CRC, encode_crc_payload(self._crc), 0)
            crc = append_record(buf, RecordType.METADATA, self._metadata, crc)
            if not self._state.is_empty():
                crc = append_record(buf, RecordType.STATE, encode_hard_state(self._state), crc)
            tmp = path + TMP_SUFFIX
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                write_all(fd, buf)
                os.fsync(fd)
                os.rename(tmp, path)
                fsync_dir(self.dir)
            except BaseException:
                os.close(fd)
                raise
        except BaseException as exc:
            self._failed = exc
            if isinstance(exc, OSError):
                raise StorageError(go_error_text(exc, "cut", self.dir)) from exc
            raise
        os.close(old_fd)
        self._fd, self._offset, self._crc = fd, len(buf), crc
        self._segments.append(Segment(seq, self._last_index + 1, path))
        log.info("wal: cut a new segment %s", path)

    def release_before(self, index: int) -> list[str]:
        """Delete segments wholly before the snapshot at ``index``; return their paths.

        Keeps the last segment whose first index is <= ``index`` (where a restart at that
        snapshot starts reading) and everything after it. The snapshot's marker must already
        be durable (synced), or a crash could leave nothing to restart from.
        """
        with self._mu:
            if self._fd is None:
                raise WalClosedError(f"wal: {self.dir} is closed")
            keep = 0
            for i, seg in enumerate(self._segments):
                if seg.first_index <= index:
                    keep = i
            keep = min(keep, len(self._segments) - 1)  # never the tail
            gone = self._segments[:keep]
            for seg in gone:
                os.unlink(seg.path)
            self._segments = self._segments[keep:]
            return [s.path for s in gone]

    def close(self) -> None:
        """Sync (unless a write failed), close the tail and drop the directory lock."""
        with self._mu:
            fd, self._fd = self._fd, None
            if fd is None:
                return
            try:
                if self._failed is None:
                    _fdatasync(fd)
            finally:
                os.close(fd)
                self._lock.release()

    def __enter__(self) -> WAL:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
