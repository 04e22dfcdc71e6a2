"""Snapshot files: one atomic, checksummed file per snapshot (etcd ``etcdserver/api/snap``).

A file is named ``%016x-%016x.snap`` (term, index), so sorting names sorts snapshots oldest to
newest. Its layout::

    magic "MESNAP01" (8) | crc32 u32 | body length u64 | body

where ``body`` is :func:`records.encode_snapshot` (metadata, then the opaque data) and the CRC
covers the body. Files are written to ``<name>.tmp``, fsynced, renamed, and the directory
fsynced, so a crash leaves the old set of files or the new one, plus at worst a ``.tmp`` file
that loading ignores and :meth:`Snapshotter.purge` removes.

A file that fails its checks is renamed to ``<name>.broken`` (as etcd does) so it is looked at
by a person, not loaded again, and the next older one is tried.

A snapshot received from the leader is saved as ``<name>.pending`` and renamed to its name only
once its WAL marker is durable (:meth:`Snapshotter.finalize`, called by DiskStorage.sync). So a
``.snap`` file without a durable marker can only be a local snapshot whose entries the WAL had
already made durable, and a WAL that ends before such a file has lost fsynced records (see
DiskStorage.open). On open, a ``.pending`` file is finalized if its marker made it to the WAL,
and removed if not (:meth:`Snapshotter.settle_pending`).
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from collections.abc import Collection

from minietcd.errors import SnapshotFileError
from minietcd.raft.types import Snapshot
from minietcd.storage.fileutil import atomic_write, fsync_dir, go_error_text
from minietcd.storage.records import WalSnapshot, decode_snapshot, encode_snapshot

log = logging.getLogger(__name__)

SNAP_SUFFIX = ".snap"
BROKEN_SUFFIX = ".broken"
PENDING_SUFFIX = ".pending"
TMP_SUFFIX = ".tmp"
_MAGIC = b"MESNAP01"
_HEADER = struct.Struct("<8sIQ")  # magic, crc32 of body, body length


def snap_name(term: int, index: int) -> str:
    return f"{term:016x}-{index:016x}{SNAP_SUFFIX}"


def parse_snap_name(name: str) -> tuple[int, int] | None:
    """(term, index) of a snapshot file name, None if it is not one."""
    if len(name) != 33 + len(SNAP_SUFFIX) or not name.endswith(SNAP_SUFFIX) or name[16] != "-":
        return None
    try:
        return int(name[:16], 16), int(name[17:33], 16)
    except ValueError:
        return None


def encode_snap_file(snapshot: Snapshot) -> bytes:
    body = encode_snapshot(snapshot)
    return _HEADER.pack(_MAGIC, zlib.crc32(body), len(body)) + body


def decode_snap_file(path: str, raw: bytes) -> Snapshot:
    """Check and decode a snapshot file's bytes; SnapshotFileError says what is wrong."""
    if len(raw) < _HEADER.size:
        raise SnapshotFileError(f"snap: {path}: {len(raw)} bytes, shorter than its header")
    magic, crc, length = _HEADER.unpack_from(raw, 0)
    if magic != _MAGIC:
        raise SnapshotFileError(f"snap: {path}: bad magic {magic!r}")
    body = memoryview(raw)[_HEADER.size :]
    if len(body) != length:
        raise SnapshotFileError(f"snap: {path}: body is {len(body)} bytes, header says {length}")
    if zlib.crc32(body) != crc:
        raise SnapshotFileError(f"snap: {path}: crc mismatch")
    try:
        snap = decode_snapshot(body)
    except (ValueError, struct.error) as exc:
        raise SnapshotFileError(f"snap: {path}: undecodable: {exc}") from None
    expected = parse_snap_name(os.path.basename(path))
    if expected is not None and expected != (snap.metadata.term, snap.metadata.index):
        # A file renamed by hand (or a rename gone wrong) must not pose as another snapshot.
        raise SnapshotFileError(
            f"snap: {path}: holds term/index {snap.metadata.term}/"
            f"{snap.metadata.index}, not what its name says"
        )
    return snap


class Snapshotter:
    """Saves and loads the snapshot files of one directory."""

    __slots__ = ("dir",)

    def __init__(self, dir_path: str) -> None:
        self.dir = os.path.abspath(dir_path)  # the snapshot directory (created if missing)
        os.makedirs(self.dir, exist_ok=True)

    def save(self, snapshot: Snapshot, *, pending: bool = False) -> str:
        """Write ``snapshot`` atomically and durably; return its path. Empty ones are refused.
        ``pending``: as ``<name>.pending``, until :meth:`finalize` (see the module docstring)."""
        if snapshot.is_empty():
            raise SnapshotFileError("snap: refusing to save an empty snapshot")
        m = snapshot.metadata
        path = os.path.join(self.dir, snap_name(m.term, m.index) + (PENDING_SUFFIX if pending else ""))
        try:
            atomic_write(path, encode_snap_file(snapshot), TMP_SUFFIX)
        except OSError as e:  # ENOSPC, EIO: fatal for the member, in Go's words
            raise SnapshotFileError(go_error_text(e, "write", path + TMP_SUFFIX)) from e
        return path

    def finalize(self, pending_path: str) -> None:
        """Give a pending snapshot its name, durably: its WAL marker is durable now."""
        try:
            os.replace(pending_path, pending_path.removesuffix(PENDING_SUFFIX))
            fsync_dir(self.dir)
        except OSError as e:
            raise SnapshotFileError(go_error_text(e, "rename", pending_path)) from e

    def settle_pending(self, allowed: Collection[WalSnapshot]) -> None:
        """After a crash: finalize each pending file whose marker is durable, remove the rest."""
        wanted = {(a.index, a.term) for a in allowed}
        for name in os.listdir(self.dir):
            parsed = parse_snap_name(name.removesuffix(PENDING_SUFFIX))
            if not name.endswith(PENDING_SUFFIX) or parsed is None:
                continue
            path = os.path.join(self.dir, name)
            term, index = parsed
            if (index, term) in wanted:
                log.info("snap: finalizing %s: its WAL marker is durable", path)
                self.finalize(path)
            else:
                log.info("snap: removing %s: the crash came before its WAL marker was durable", path)
                os.unlink(path)

    def names(self) -> list[str]:
        """Snapshot file names, newest first (temp and broken files excluded)."""
        names = [n for n in os.listdir(self.dir) if parse_snap_name(n) is not None]
        names.sort(reverse=True)
        return names

    def _load(self, name: str) -> Snapshot | None:
        path = os.path.join(self.dir, name)
        try:
            with open(path, "rb") as f:
                raw = f.read()
            return decode_snap_file(path, raw)
        except (SnapshotFileError, OSError) as exc:
            broken = path + BROKEN_SUFFIX
            log.warning("snap: skipping %s (%s); renaming it to %s", path, exc, broken)
            try:
                os.replace(path, broken)
            except OSError as rexc:
                log.warning("snap: cannot rename broken %s: %s", path, rexc)
            return None

    def load_newest(self) -> Snapshot | None:
        """The newest snapshot that passes its checks, or None if there is none."""
        for name in self.names():
            snap = self._load(name)
            if snap is not None:
                return snap
        return None

    def load_newest_available(
        self, allowed: Collection[WalSnapshot] | Collection[tuple[int, int]]
    ) -> Snapshot | None:
        """The newest valid snapshot whose (index, term) is in ``allowed`` (the WAL's markers).

        A snapshot file without a durable WAL marker may be newer than the WAL can continue
        from (the crash came between writing it and syncing the marker), so it is skipped.
        """
        wanted = {(a.index, a.term) if isinstance(a, WalSnapshot) else tuple(a) for a in allowed}
        for name in self.names():
            parsed = parse_snap_name(name)
            assert parsed is not None  # names() only lists parseable names
            term, index = parsed
            if (index, term) not in wanted:
                continue
            snap = self._load(name)
            if snap is not None:
                return snap
        return None

    def purge(self, keep: int) -> list[str]:
        """Delete all but the newest ``keep`` snapshot files, and stale temp files.

        Returns the removed paths. Broken files stay for a person to look at.
        """
        if keep < 1:
            raise ValueError("snap: keep at least one snapshot")
        removed = []
        for name in self.names()[keep:]:
            removed.append(os.path.join(self.dir, name))
        # Temp files are leftovers of a crash mid-save (we are the only writer).
        for name in os.listdir(self.dir):
            if name.endswith(SNAP_SUFFIX + TMP_SUFFIX):
                removed.append(os.path.join(self.dir, name))
        for path in removed:
            os.unlink(path)
        return removed
