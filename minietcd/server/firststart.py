"""A failed start leaves nothing behind that breaks the next one.

etcd 3.4 lists the data dir first (``error listing data dir: PATH`` if it cannot), binds its
listeners, and only then creates the member's WAL; minietcd does the same (listeners.py). What is
left is a start that fails after creating the data dir (a metrics port lost in a race, a snapshot
that cannot be restored, a signal, a crash): a WAL without a single entry "restarts" as a member
that knows no cluster, with no leader, forever. So:

- :class:`FirstStart` remembers what a first start is about to create, and :meth:`undo` removes
  exactly that again when the start fails before the Raft node has run (before it could have
  voted or acknowledged anything, so nothing durable is lost);
- :func:`discard_blank_wal` turns a WAL holding nothing but its metadata (left by a crash in that
  window, or by an older minietcd) back into no WAL: such a member never persisted a vote or an
  entry, so it never said anything that its peers rely on, and starting it as new is safe.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from dataclasses import dataclass, field

from minietcd.errors import DataDirError
from minietcd.server.config import Config
from minietcd.storage.raft_storage import DiskStorage
from minietcd.storage.wal import list_segments

log = logging.getLogger("minietcd.server")

# A blank WAL is its header records only (CRC, metadata): far below this.
_BLANK_WAL_MAX_BYTES = 64 * 1024


def check_data_dir(cfg: Config) -> None:
    """etcd's identifyDataDirOrDie: a data dir that exists must be a listable directory."""
    for path in (cfg.data_dir, cfg.wal_dir):
        if not path:
            continue
        try:
            os.listdir(path)
        except FileNotFoundError:
            continue  # created by the first start
        except OSError:
            raise DataDirError(f"error listing data dir: {path}") from None


@dataclass(slots=True)
class FirstStart:
    """What a first start creates under the data dir (and ``--wal-dir``), to undo on failure."""

    # path -> the names it held before (None: the path itself did not exist)
    before: dict[str, set[str] | None] = field(default_factory=dict)

    @classmethod
    def record(cls, cfg: Config) -> FirstStart | None:
        """None for a restart (an existing WAL is never removed)."""
        if DiskStorage.exists(cfg.data_dir, cfg.wal_dir):
            return None
        first = cls()
        for path in (cfg.data_dir, cfg.wal_dir):
            if path:
                path = os.path.abspath(path)
                first.before[path] = set(os.listdir(path)) if os.path.isdir(path) else None
        return first

    def undo(self) -> None:
        """Remove what the failed first start created; keep whatever was there before."""
        for path, names in self.before.items():
            if names is None:
                gone = [path] if os.path.lexists(path) else []
            else:
                gone = [os.path.join(path, n) for n in sorted(set(_names(path)) - names)]
            for p in gone:
                if os.path.isdir(p) and not os.path.islink(p):
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(p)
            if gone:
                log.info("etcdserver: removed %s left by the failed first start", ", ".join(gone))


def discard_blank_wal(cfg: Config) -> None:
    """Remove a WAL that holds no entry, hard state or snapshot (see the module docstring)."""
    if not DiskStorage.exists(cfg.data_dir, cfg.wal_dir):
        return
    segments = list_segments(cfg.wal_path)
    if len(segments) != 1 or os.path.getsize(segments[0].path) > _BLANK_WAL_MAX_BYTES:
        return  # surely not blank: do not read a large WAL twice on every restart
    with DiskStorage.open(cfg.data_dir, wal_path=cfg.wal_dir) as storage:
        blank = storage.is_blank()
    if blank:
        log.warning(
            "etcdserver: the WAL at %s holds no entry, vote or snapshot (a first start that "
            "failed half-way); starting as a new member",
            cfg.wal_path,
        )
        shutil.rmtree(cfg.wal_path)


def _names(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []
