"""The database file that travels with a snapshot: made and sent off the loop, received to disk.

Sending (:class:`SnapshotBody`): the leader takes a read view of its backend on the loop (an LMDB
read transaction: no copy, no serialisation), then a worker thread writes a compacted copy of
that view to a temporary file beside the backend (LMDB's copy runs in C without the GIL), and the
transport streams the file in chunks. So a large store costs the loop nothing but the chunk
writes, and heartbeats keep flowing while a new member is fed.

Receiving (:class:`FileSink`): the chunks go to ``<name>.part``, which is fsynced and renamed to
its final name only once the whole stream checked out; the snapshot message reaches Raft after
that. See :mod:`minietcd.server.apply_snapshot` for what the file becomes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable

from minietcd.mvcc.backend import Backend, ReadView
from minietcd.raft.types import Message
from minietcd.server.apply_snapshot import PART_SUFFIX, db_file


class SnapshotBody:
    """The database of one outgoing snapshot (see the module docstring). Always :meth:`close`."""

    __slots__ = ("_path", "_prepared", "_view", "index", "size")

    def __init__(self, index: int, view: ReadView, tmp_path: str) -> None:
        self.index = index  # the applied index the view holds
        self.size = 0  # bytes, once prepared
        self._view: ReadView | None = view
        self._path = tmp_path
        self._prepared = False

    async def prepare(self) -> int:
        """Write the copy (in a worker thread); returns its size in bytes."""
        view = self._view
        if view is None:
            raise RuntimeError("snapshot body already closed")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path)
        try:
            await asyncio.to_thread(view.copy_to, self._path)
        finally:
            self._view = None
            view.close()  # the copy is all we need: let the backend reuse those pages again
        self._prepared = True
        self.size = os.path.getsize(self._path)
        return self.size

    async def chunks(self, chunk_size: int) -> AsyncIterator[bytes]:
        """The prepared file, ``chunk_size`` bytes at a time (each read in a worker thread)."""
        if not self._prepared:
            raise RuntimeError("snapshot body not prepared")
        with open(self._path, "rb") as f:
            while True:
                chunk = await asyncio.to_thread(f.read, chunk_size)
                if not chunk:
                    return
                yield chunk

    def close(self) -> None:
        if self._view is not None:
            self._view.close()
            self._view = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path)


class FileSink:
    """An incoming snapshot database, written to ``<path>.part`` and renamed when complete."""

    __slots__ = ("_f", "path")

    def __init__(self, path: str) -> None:
        self.path = path
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self._f = open(path + PART_SUFFIX, "wb")  # noqa: SIM115 - closed by finish/abort

    def write(self, chunk: bytes) -> None:
        self._f.write(chunk)

    def finish(self) -> None:
        """Make the file durable under its final name."""
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()
        os.replace(self.path + PART_SUFFIX, self.path)
        fd = os.open(os.path.dirname(self.path), os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def abort(self) -> None:
        self._f.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path + PART_SUFFIX)


def snapshot_sink(backend: Backend) -> Callable[[Message], FileSink]:
    """Where a member with ``backend`` receives snapshot databases: beside the backend, named
    by the snapshot's index (where ``StateMachine.restore`` looks for them)."""

    def sink(m: Message) -> FileSink:
        index = m.snapshot.metadata.index if m.snapshot is not None else 0
        return FileSink(db_file(backend, index))

    return sink
