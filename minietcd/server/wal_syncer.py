"""One dedicated thread that makes the WAL durable (fsync) for the Ready loop.

The Ready loop writes a Ready's records on the event loop (a page-cache copy) and must then
wait for them to be durable before it sends what depends on them (DESIGN rule 4). The wait
happens off the loop, so the loop keeps accepting proposals and peer messages meanwhile (they
form the next Ready: group commit).

The thread does as little as possible while holding the GIL, because under load every time it
takes the GIL back it makes the busy event loop hand it over (a forced switch, a context
switch): it wakes on a queue put, runs one bare ``os.fdatasync`` (which releases the GIL) on a
descriptor the loop picked (``DiskStorage.begin_sync``), and answers with one
``call_soon_threadsafe``; everything else (snapshot files, turning an error into etcd's
words) happens on the loop (``DiskStorage.end_sync``). Before this, each Ready paid
``asyncio.to_thread`` (a context copy, an executor work item, chained futures) and ran the
storage's Python sync code on the worker (its gain under many writers is for the benchmarks
to show: docs/benchmarks.md). etcd's WAL likewise fsyncs in the raft node's own goroutine,
never through a pool.

The thread is owned by the :class:`~minietcd.server.raft_node.RaftNode`, which waits for it in
``stop()`` before the storage is closed (the descriptor must stay open while an fsync runs).
An fsync error (EIO, ENOSPC) comes back to the Ready loop, where fail-stop takes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import threading

# os.fdatasync is enough (it flushes the size too) but does not exist everywhere (macOS).
_fdatasync = getattr(os, "fdatasync", os.fsync)

_Outcome = BaseException | None  # what an fsync job answers: None, or the error it raised
_Job = tuple[int, asyncio.AbstractEventLoop, "asyncio.Future[_Outcome]"] | None


class WalSyncer:
    """``await syncer.fsync(fd)``: the fsync runs on the syncer's thread; the result is None
    or the exception it raised. Jobs run one at a time, in order."""

    def __init__(self, name: str = "wal-sync") -> None:
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._name = name
        self._thread: threading.Thread | None = None
        self._ended: asyncio.Future[None] | None = None  # resolved when the thread has ended

    def fsync(self, fd: int) -> asyncio.Future[_Outcome]:
        loop = asyncio.get_running_loop()
        if self._thread is None:
            self._ended = ended = loop.create_future()
            self._thread = threading.Thread(
                target=self._serve, args=(loop, ended), name=self._name, daemon=True
            )
            self._thread.start()
        fut: asyncio.Future[_Outcome] = loop.create_future()
        self._jobs.put((fd, loop, fut))
        return fut

    async def stop(self, timeout: float = 10.0) -> None:
        """End the thread once the fsyncs queued so far are done, and wait for that (bounded:
        a disk that hangs an fsync must not hang the member's shutdown forever)."""
        if self._thread is None:
            return
        self._thread = None
        self._jobs.put(None)
        ended, self._ended = self._ended, None
        if ended is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(ended), timeout)

    def _serve(self, loop: asyncio.AbstractEventLoop, ended: asyncio.Future[None]) -> None:
        while (item := self._jobs.get()) is not None:
            fd, job_loop, fut = item
            error: _Outcome = None
            try:
                _fdatasync(fd)
            except OSError as e:  # EIO, ENOSPC, EBADF: handed to the Ready loop, fail-stop decides
                error = e
            _answer(job_loop, fut, error)
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(_ended, ended)


def _answer(loop: asyncio.AbstractEventLoop, fut: asyncio.Future[_Outcome], error: _Outcome) -> None:
    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
        loop.call_soon_threadsafe(_settle, fut, error)


def _settle(fut: asyncio.Future[_Outcome], error: _Outcome) -> None:
    if not fut.done():  # else: the awaiting coroutine was cancelled (the member is stopping)
        fut.set_result(error)


def _ended(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
