"""The WAL syncer thread: fsyncs answer on the loop, errors come back as values, stop() waits."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from minietcd.server.wal_syncer import WalSyncer


async def test_an_fsync_answers_none_and_an_error_comes_back_as_the_outcome(tmp_path: Path) -> None:
    syncer = WalSyncer()
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.write(fd, b"x")
        assert await syncer.fsync(fd) is None
        error = await syncer.fsync(1 << 20)  # a descriptor nobody holds: EBADF, not a crash
        assert isinstance(error, OSError) and error.errno == errno.EBADF
        assert await syncer.fsync(fd) is None  # the thread lives on after an error
    finally:
        await syncer.stop()
        os.close(fd)


async def test_stop_waits_for_the_thread_and_is_idempotent(tmp_path: Path) -> None:
    syncer = WalSyncer()
    await syncer.stop()  # never started: nothing to wait for
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        pending = [syncer.fsync(fd) for _ in range(5)]
        thread = syncer._thread
        await syncer.stop()
        assert all(f.done() for f in pending)  # queued fsyncs ran before the thread ended
        assert thread is not None
        thread.join(5)  # it has left its loop: only returning remains
        assert not thread.is_alive()
        await syncer.stop()
    finally:
        os.close(fd)
