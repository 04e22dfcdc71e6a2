"""Small file helpers shared by the WAL and the snapshotter: durable writes and a dir lock."""

from __future__ import annotations

import contextlib
import fcntl
import os

from minietcd.errors import WalLockedError

LOCK_FILE_NAME = "LOCK"


def fsync_dir(path: str) -> None:
    """fsync a directory so that creations, renames and removals in it survive a crash."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def go_error_text(e: OSError, op: str, path: str | None = None) -> str:
    """``e`` as Go's ``*PathError`` prints it (``write /d/0.wal: no space left on device``), the
    text etcd's fatal log lines carry: lower-case reason, no ``[Errno N]``."""
    reason = e.strerror or (os.strerror(e.errno) if e.errno else "") or str(e)
    reason = reason[:1].lower() + reason[1:]
    where = path if path is not None else e.filename
    return f"{op} {where}: {reason}" if where is not None else f"{op}: {reason}"


def write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    """os.write until everything is written (a regular-file write may be short, e.g. ENOSPC)."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def atomic_write(path: str, data: bytes | bytearray, tmp_suffix: str = ".tmp") -> None:
    """Write ``path`` so that a crash leaves either the old state or the whole new file.

    Temp file, fsync, rename over, fsync the directory (the rename itself must be durable).
    """
    tmp = path + tmp_suffix
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        write_all(fd, data)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    os.close(fd)
    os.replace(tmp, path)
    fsync_dir(os.path.dirname(os.path.abspath(path)))


def is_zero(buf: bytes | memoryview, start: int = 0, end: int | None = None) -> bool:
    """True if buf[start:end] holds only zero bytes (bytes.count runs in C)."""
    stop = len(buf) if end is None else end
    if stop <= start:
        return True
    return bytes(buf[start:stop]).count(0) == stop - start


class DirLock:
    """An exclusive flock on ``<dir>/LOCK``, so two processes never open one WAL.

    flock locks belong to the open file description, so a second open in the same process
    conflicts too (which the tests rely on). The lock goes when the process dies, so a crash
    never leaves a stale lock behind.
    """

    __slots__ = ("_fd", "path")

    def __init__(self, dir_path: str) -> None:
        self.path = os.path.join(dir_path, LOCK_FILE_NAME)  # the lock file
        self._fd: int | None = None  # open while held

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise WalLockedError(f"wal: {self.path} is locked by another process") from None
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            # Closing the descriptor drops the flock.
            os.close(self._fd)
            self._fd = None
