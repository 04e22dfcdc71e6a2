"""One dedicated thread that makes the WAL durable (fsync) for the Ready loop.

The Ready loop writes a Ready's records on the event loop (a page-cache copy) and must then
wait for them to be durable before it sends what depends on them (DESIGN rule 4). The wait
happens off the loop, so the loop keeps accepting proposals and peer messages meanwhile (they
form the next Ready: group commit). Until now each Ready paid ``asyncio.to_thread`` for that:
a context copy, an executor work item, two chained futures and their callbacks, several
Python-level lock round trips, a few tens of microseconds of the loop's time per Ready. This
thread takes one queue put (``SimpleQueue``, in C) and answers with one
``call_soon_threadsafe``: etcd's WAL likewise fsyncs in the raft node's own goroutine, never
through a pool.

It is a plain daemon thread owned by the :class:`~minietcd.server.raft_node.RaftNode`; an
exception of the job (EIO, ENOSPC on fsync) is handed back to the awaiting coroutine, where
fail-stop (``RaftNode.fail``) takes it as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable

_Job = tuple[Callable[[], None], asyncio.AbstractEventLoop, "asyncio.Future[None]"] | None


class WalSyncer:
    """``await syncer.run(job)``: ``job()`` runs on the syncer's thread; the result (or the
    exception) comes back to the caller's loop. Jobs run one at a time, in order."""

    def __init__(self, name: str = "wal-sync") -> None:
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._name = name
        self._thread: threading.Thread | None = None

    def run(self, job: Callable[[], None]) -> asyncio.Future[None]:
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name=self._name, daemon=True)
            self._thread.start()
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self._jobs.put((job, loop, fut))
        return fut

    def close(self) -> None:
        """Let the thread end once the jobs queued so far are done (it never blocks exit)."""
        if self._thread is not None:
            self._jobs.put(None)
            self._thread = None

    def _serve(self) -> None:
        while True:
            item = self._jobs.get()
            if item is None:
                return
            job, loop, fut = item
            try:
                job()
            except BaseException as e:  # handed to the awaiting coroutine: fail-stop decides
                _answer(loop, fut, e)
            else:
                _answer(loop, fut, None)


def _answer(loop: asyncio.AbstractEventLoop, fut: asyncio.Future[None], error: BaseException | None) -> None:
    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
        loop.call_soon_threadsafe(_settle, fut, error)


def _settle(fut: asyncio.Future[None], error: BaseException | None) -> None:
    if fut.done():  # the awaiting coroutine was cancelled (the member is stopping)
        return
    if error is None:
        fut.set_result(None)
    else:
        fut.set_exception(error)
