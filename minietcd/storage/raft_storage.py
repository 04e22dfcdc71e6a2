"""A disk-backed Raft :class:`~minietcd.raft.storage.Storage`: WAL + snapshots + a memory cache.

Layout, as etcd's::

    <data-dir>/member/wal/   segments (see .wal)
    <data-dir>/member/snap/  snapshot files (see .snap)

The core reads from a :class:`MemoryStorage` that mirrors what is on disk; every write goes to
disk first (buffered until :meth:`DiskStorage.sync`) and then to the cache. Restoring is: the
newest snapshot file that has a durable WAL marker, then replaying the WAL after that marker.

The order of work for one Ready (rule 4, persist before you speak)::

    storage.save_ready(rd.hard_state, rd.entries, rd.snapshot)   # written, not yet durable
    await loop.run_in_executor(None, storage.sync)                # fsync (group commit)
    ... now send the messages of rd that depend on it, then advance()

Not thread-safe beyond what :class:`WAL` promises: call everything but :meth:`sync` from one
thread (the event loop); :meth:`sync` may run in a worker while that thread does nothing else
with this object, or only :meth:`save_ready`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass

from minietcd.errors import SnapshotOutOfDateError, WalBehindSnapshotError
from minietcd.raft.storage import NO_LIMIT, MemoryStorage
from minietcd.raft.types import ConfState, Entry, HardState, Snapshot
from minietcd.storage.records import WalSnapshot
from minietcd.storage.snap import Snapshotter, parse_snap_name
from minietcd.storage.wal import SEGMENT_SIZE, WAL

log = logging.getLogger(__name__)

DEFAULT_KEEP_SNAPSHOTS = 5  # etcd's --max-snapshots default


def member_dir(data_dir: str) -> str:
    return os.path.join(data_dir, "member")


def wal_dir(data_dir: str) -> str:
    return os.path.join(data_dir, "member", "wal")


def snap_dir(data_dir: str) -> str:
    return os.path.join(data_dir, "member", "snap")


class DiskStorage:
    """Raft stable storage on disk for one member. Build it with :meth:`open`."""

    __slots__ = ("_mem", "_pending", "_snapshotter", "_wal", "data_dir", "keep_snapshots", "was_new")

    def __init__(
        self,
        data_dir: str,
        wal: WAL,
        snapshotter: Snapshotter,
        mem: MemoryStorage,
        *,
        was_new: bool,
        keep_snapshots: int,
    ) -> None:
        self.data_dir = data_dir  # the member's --data-dir
        self.was_new = was_new  # True if open() created the WAL (a brand-new member)
        self.keep_snapshots = keep_snapshots  # snapshot files kept by compact()
        self._wal = wal  # durable log of entries, hard states and snapshot markers
        self._snapshotter = snapshotter  # durable snapshot files
        self._mem = mem  # what the core reads: always equal to what is on disk
        self._pending: list[str] = []  # received snapshot files to finalize at the next sync()

    @staticmethod
    def exists(data_dir: str, wal_path: str = "") -> bool:
        """True if the member already has a WAL: in ``wal_path`` (etcd's ``--wal-dir``) if
        given, else in ``<data_dir>/member/wal``."""
        return WAL.exists(wal_path or wal_dir(data_dir))

    @classmethod
    def open(
        cls,
        data_dir: str,
        *,
        wal_path: str = "",
        metadata: bytes = b"",
        segment_size: int = SEGMENT_SIZE,
        keep_snapshots: int = DEFAULT_KEEP_SNAPSHOTS,
    ) -> DiskStorage:
        """Open (or, if there is none, create with ``metadata``) the member's storage.

        Restores the newest snapshot whose marker the WAL holds at or below its commit
        index, then the WAL after that marker. ``wal_path`` (etcd's ``--wal-dir``, e.g. on a
        faster disk) replaces ``<data_dir>/member/wal``; snapshots stay under ``data_dir``.
        """
        data_dir = os.path.abspath(data_dir)
        wdir = os.path.abspath(wal_path) if wal_path else wal_dir(data_dir)
        snapshotter = Snapshotter(snap_dir(data_dir))
        mem = MemoryStorage()
        if not WAL.exists(wdir):
            wal = WAL.create(wdir, metadata, segment_size=segment_size)
            wal.read_all()  # nothing to restore; frees the (empty) replay
            return cls(data_dir, wal, snapshotter, mem, was_new=True, keep_snapshots=keep_snapshots)
        found: list[Snapshot] = []

        def pick(markers: list[WalSnapshot]) -> WalSnapshot:
            snapshotter.settle_pending(markers)
            snap = snapshotter.load_newest_available(markers)
            if snap is None:
                return WalSnapshot()
            found.append(snap)
            return WalSnapshot(snap.metadata.index, snap.metadata.term)

        wal = WAL.open_newest(wdir, pick, segment_size=segment_size)  # one read of the WAL
        snap = found[0] if found else None
        start = WalSnapshot(snap.metadata.index, snap.metadata.term) if snap else WalSnapshot()
        try:
            _md, hard_state, entries = wal.read_all()
            if snap is not None:
                mem.apply_snapshot(snap)
            mem.set_hard_state(hard_state)
            mem.append(entries)
            _check_not_behind(wdir, snapshotter, start.index, mem.last_index())
        except BaseException:
            wal.close()
            raise
        log.info(
            "storage: restored %s: snapshot at %d, entries %d..%d, %s",
            data_dir,
            start.index,
            mem.first_index(),
            mem.last_index(),
            hard_state,
        )
        return cls(data_dir, wal, snapshotter, mem, was_new=False, keep_snapshots=keep_snapshots)

    # -- Storage interface (reads, from the cache) ---------------------------------------------

    def initial_state(self) -> tuple[HardState, ConfState]:
        return self._mem.initial_state()

    def entries(self, lo: int, hi: int, max_size: int = NO_LIMIT) -> list[Entry]:
        return self._mem.entries(lo, hi, max_size)

    def term(self, index: int) -> int:
        return self._mem.term(index)

    def last_index(self) -> int:
        return self._mem.last_index()

    def first_index(self) -> int:
        return self._mem.first_index()

    def snapshot(self) -> Snapshot:
        return self._mem.snapshot()

    def is_blank(self) -> bool:
        """True if nothing but the WAL's metadata was ever saved: no entry, vote or snapshot."""
        hard_state, _ = self._mem.initial_state()
        return self._mem.last_index() == 0 and hard_state.is_empty() and self._mem.snapshot().is_empty()

    # -- writes --------------------------------------------------------------------------------

    @property
    def metadata(self) -> bytes:
        """The bytes given when the WAL was created (the server keeps member/cluster ids)."""
        return self._wal.metadata

    @property
    def wal(self) -> WAL:
        return self._wal

    @property
    def snapshotter(self) -> Snapshotter:
        return self._snapshotter

    def save_ready(
        self,
        hard_state: HardState,
        entries: Sequence[Entry],
        snapshot: Snapshot | None = None,
    ) -> None:
        """Persist what a Ready asks for (not yet durable: call :meth:`sync`), then cache it.

        A snapshot goes first: its file (durable on return), then its WAL marker, so the
        marker never names a file that is missing; then entries, then the hard state (whose
        commit may point into those entries).
        """
        if snapshot is not None and not snapshot.is_empty():
            m = snapshot.metadata
            current = self._mem.snapshot().metadata.index
            if m.index <= current:
                # Refuse before writing anything, as the cache would after the fact.
                raise SnapshotOutOfDateError(f"snapshot at {m.index} is not newer than {current}")
            # Named only once the marker is durable (sync): see snap.py's docstring.
            self._pending.append(self._snapshotter.save(snapshot, pending=True))
            self._wal.save_snapshot_marker(m.index, m.term)
        self._wal.save(hard_state, entries)
        if snapshot is not None and not snapshot.is_empty():
            self._mem.apply_snapshot(snapshot)
        if entries:
            self._mem.append(list(entries))
        if not hard_state.is_empty():
            self._mem.set_hard_state(hard_state)

    def sync(self) -> None:
        """fsync what save_ready wrote. Safe to run in a worker thread."""
        pending, self._pending = self._pending, []
        self._wal.sync()
        for path in pending:
            self._snapshotter.finalize(path)

    def begin_sync(self) -> SyncJob:
        """:meth:`sync` in three steps, for the Ready loop: this (on the loop), an
        ``os.fdatasync(job.fd)`` anywhere, then :meth:`end_sync` (on the loop). Nothing may be
        saved in between (see WAL.sync_target)."""
        pending, self._pending = self._pending, []
        return SyncJob(self._wal.sync_target(), pending)

    def end_sync(self, job: SyncJob, error: BaseException | None) -> None:
        """Finish :meth:`begin_sync` with the fsync's outcome; raise if it failed."""
        if error is not None:
            raise self._wal.sync_failed(error) from error
        for path in job.pending:
            self._snapshotter.finalize(path)

    def create_snapshot(self, index: int, conf_state: ConfState | None, data: bytes) -> Snapshot:
        """Record a snapshot of the applied state at ``index``: file, WAL marker, synced.

        Synced here (not at the next Ready) because :meth:`compact` may release the WAL
        segments before it: the marker must be durable before anything older is deleted.
        """
        snap = self._mem.create_snapshot(index, conf_state, data)
        self._snapshotter.save(snap)
        self._wal.save_snapshot_marker(snap.metadata.index, snap.metadata.term)
        self._wal.sync()
        return snap

    def compact(self, index: int) -> None:
        """Drop cached entries up to ``index`` and release WAL segments and old snapshot files.

        WAL segments are released only up to the newest snapshot (a restart replays from it).
        After a restart the cache starts at that snapshot, so entries kept here below it (for
        slow followers) are not restored.
        """
        self._mem.compact(index)
        snap_index = self._mem.snapshot().metadata.index
        released = self._wal.release_before(min(index, snap_index))
        purged = self._snapshotter.purge(self.keep_snapshots)
        if released or purged:
            log.info("storage: released %d WAL segments, %d snapshot files", len(released), len(purged))

    def close(self) -> None:
        self._wal.close()  # a pending snapshot is settled by the next open()

    def __enter__(self) -> DiskStorage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True, slots=True)
class SyncJob:
    """An fsync the Ready loop runs off the loop: the descriptor, and the snapshot files that
    get their final names once it succeeded."""

    fd: int
    pending: list[str]


def _check_not_behind(wal_path: str, snapshotter: Snapshotter, start: int, last: int) -> None:
    """Refuse a WAL that ends before a snapshot file it must have reached.

    A snapshot file newer than the snapshot we start from has no durable WAL marker. It is a
    local snapshot (received ones are named only once their marker is durable), taken of
    entries the WAL had already made durable: so the WAL reaches its index, unless fsynced
    records were lost (the WAL was truncated, or restored from an older copy). Starting from
    the older snapshot would then forget votes and entries this member acknowledged.
    """
    for name in snapshotter.names():
        parsed = parse_snap_name(name)
        assert parsed is not None  # names() lists only snapshot names
        _term, index = parsed
        if index > start and index > last:
            raise WalBehindSnapshotError(
                f"wal: {wal_path} ends at index {last}, before snapshot file "
                f"{os.path.join(snapshotter.dir, name)} at index {index}: records the WAL had "
                "fsynced were lost (truncated, or restored from an older copy); refusing to "
                f"start from the older snapshot at index {start}"
            )
