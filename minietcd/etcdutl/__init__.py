"""etcdutl's work: offline operations on snapshot files and data directories.

These sit above the server: a restore builds a member's data directory with the server's own
state machine, membership records and WAL format, without a running member. minietcdctl's
``snapshot status`` and ``snapshot restore`` (etcdctl 3.4's spelling of etcdutl's commands)
call them; nothing in the server imports this package.
"""

from __future__ import annotations

from minietcd.etcdutl.restore import RestoreConfig, restore, snapshot_file_status
from minietcd.mvcc.boltdb import SnapshotStatus

__all__ = ["RestoreConfig", "SnapshotStatus", "restore", "snapshot_file_status"]
