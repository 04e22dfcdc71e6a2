"""Errors of the WAL, the snapshot files and the applied-state database (minietcd.storage,
minietcd.mvcc.backend).

Part of the one exception tree drawn in ``minietcd/errors/__init__.py``."""

from __future__ import annotations

from minietcd.errors.base import MinietcdError

# --- storage -----------------------------------------------------------------------------------


class StorageError(MinietcdError):
    pass


class WalCorruptError(StorageError):
    """A WAL record failed its check somewhere other than the torn tail."""

    def __init__(self, path: str, offset: int, reason: str) -> None:
        super().__init__(f"wal: corrupt record in {path} at offset {offset}: {reason}")
        self.path = path
        self.offset = offset
        self.reason = reason


class WalClosedError(StorageError):
    pass


class WalLockedError(StorageError):
    """Another process (or another open WAL in this one) holds the directory lock."""


class WalSnapshotNotFoundError(StorageError):
    """The WAL has no marker for the snapshot it was asked to open at (or its term differs)."""


class WalBehindSnapshotError(StorageError):
    """The WAL ends before the index of a snapshot file that only this member's own fsynced log
    could have produced: the WAL was cut back (restored from an old copy, truncated), and
    starting from an older snapshot would forget votes and entries this member acknowledged."""


class SnapshotFileError(StorageError):
    pass


class BackendError(StorageError):
    """The applied-state database failed (cannot open, write, commit, copy): fail-stop."""


class BackendCommitError(BackendError):
    """A batch of applied writes could not be committed (etcd's ``mvcc/backend: cannot commit
    tx``): the member stops; the WAL still holds the entries, a restart applies them again."""
