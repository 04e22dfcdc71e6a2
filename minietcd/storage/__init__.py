"""Durable storage for a member: the WAL, snapshot files, and a disk-backed Raft log.

- :mod:`.records`: the binary encodings and the WAL frame format.
- :mod:`.wal`: :class:`WAL`, segmented, CRC-chained, with torn-tail repair.
- :mod:`.snap`: :class:`Snapshotter`, atomic checksummed snapshot files.
- :mod:`.raft_storage`: :class:`DiskStorage`, the Raft ``Storage`` the server runs on.
"""

from __future__ import annotations

from minietcd.storage.raft_storage import DiskStorage
from minietcd.storage.records import WalSnapshot
from minietcd.storage.snap import Snapshotter
from minietcd.storage.wal import WAL

__all__ = ["WAL", "DiskStorage", "Snapshotter", "WalSnapshot"]
