"""ReadIndex rounds: how a linearizable read learns the index it must wait for (thesis 6.4;
etcd's ``linearizableReadLoop`` in ``etcdserver/v3_server.go``).

One round is in flight at a time. Readers who arrive meanwhile join the *next* round (the one
in flight may predate the write they must see), so any number of concurrent readers costs one
ReadIndex heartbeat round each time; a round for one or two readers among many waits up to
1 ms for more (the group-commit policy of proposals.py). A round's answer comes back through
the Raft node's ReadState (:meth:`ReadRounds.on_read_state`); a leader change fails the round
in flight (the readers retry); a request or answer lost on the way is asked again every
:data:`READ_INDEX_RETRY` seconds (etcd 3.5) until the request timeout.

:meth:`EtcdServer.read_barrier <minietcd.server.etcd_server.EtcdServer.read_barrier>` joins a
round and then waits for the state machine to apply up to its index.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from minietcd.errors import (
    LeaderChangedError,
    ProposalDroppedError,
    RequestTimeoutError,
    StoppedError,
)
from minietcd.raft.types import ReadState
from minietcd.server.proposals import HOLD as GROUP_HOLD
from minietcd.server.proposals import GroupCommit

READ_INDEX_RETRY = 0.5  # seconds before a ReadIndex request without an answer is sent again (etcd 3.5)


class ReadIndexNode(Protocol):
    def read_index(self, ctx: bytes) -> None: ...


class ReadRounds:
    """The rounds of one member; ``join`` is all a reader calls."""

    def __init__(
        self,
        node: ReadIndexNode,
        wait_leader: Callable[[float], Awaitable[int]],
        request_timeout: Callable[[], float],
        spawn: Callable[[asyncio.Task[None]], None],
    ) -> None:
        self._node = node
        self._wait_leader = wait_leader
        self._request_timeout = request_timeout
        self._spawn = spawn  # keeps the loop's task referenced while it runs
        self.ctx: bytes | None = None  # context of the ReadIndex round in flight
        self.in_flight: asyncio.Future[int] | None = None  # answered by on_read_state
        self.next: asyncio.Future[int] | None = None  # readers waiting for the next round
        self._wanted = asyncio.Event()  # set when `next` has readers
        self._readers = 0  # readers waiting for `next`
        self._policy = GroupCommit()  # a small round waits briefly for more (proposals.py)
        self._loop_task: asyncio.Task[None] | None = None

    def join(self, loop: asyncio.AbstractEventLoop, deadline: float) -> asyncio.Future[int]:
        """A future of the read index of the next round, which starts after this call. The
        reader's own future: the round is shared, so one reader giving up (its client's deadline
        passed and gRPC cancelled the handler) must not cancel it for the others."""
        if self.next is None:
            self.next = _shared_future()
        nxt = self.next
        self._readers += 1
        self._policy.arrived()
        self._wanted.set()
        if self._loop_task is None or self._loop_task.done():
            self._loop_task = asyncio.create_task(self._run(), name="read-index-rounds")
            self._spawn(self._loop_task)
        mine: asyncio.Future[int] = loop.create_future()
        timer = loop.call_at(deadline, time_out, mine)
        nxt.add_done_callback(functools.partial(_relay, mine, timer))
        return mine

    def on_read_state(self, rs: ReadState) -> None:
        rnd = self.in_flight
        if rnd is not None and rs.request_ctx == self.ctx and not rnd.done():
            rnd.set_result(rs.index)

    def on_leader_change(self) -> None:
        if self.in_flight is not None and not self.in_flight.done():
            # A ReadIndex in flight may be lost with the old leader: fail fast, readers retry.
            self.in_flight.set_exception(LeaderChangedError())

    def stop(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()  # its readers get StoppedError (see _run)
        if self.next is not None and not self.next.done():
            self.next.set_exception(StoppedError())

    async def _run(self) -> None:
        """Take everyone waiting, run one round for all of them, repeat. Rounds never overlap,
        so a ReadState can only answer the round in flight."""
        while True:
            await self._wanted.wait()
            if self._policy.hold(self._readers):
                await asyncio.sleep(GROUP_HOLD)  # a round for one or two: let more join it
            self._wanted.clear()
            waiting, self.next = self.next, None
            self._policy.taken(self._readers)
            self._readers = 0
            if waiting is None:
                continue
            try:
                waiting.set_result(await self._round())
            except asyncio.CancelledError:  # the member is stopping
                waiting.set_exception(StoppedError())
                raise
            except Exception as e:  # no leader, leader changed, timed out: the readers decide
                waiting.set_exception(e)

    async def _round(self) -> int:
        await self._wait_leader(self._request_timeout())
        self.ctx = ctx = os.urandom(8)
        rnd: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.in_flight = rnd
        try:
            # Dropped (this member is campaigning, or lost its leader just now): like etcd, keep
            # asking until the request timeout instead of failing a read an election would serve.
            with contextlib.suppress(ProposalDroppedError):
                self._node.read_index(ctx)
            await self._retry(rnd, ctx)
            return rnd.result()
        finally:
            self.ctx = self.in_flight = None

    async def _retry(self, rnd: asyncio.Future[int], ctx: bytes) -> None:
        """Wait for the round's answer. etcd 3.5's read index retry: the request or its answer
        can be lost on the way (a follower's forwarded MsgReadIndex dropped with a broken peer
        stream) with no leader change to fail the round. Ask again with the same context every
        READ_INDEX_RETRY seconds (the leader ignores a context it already holds), and fail the
        round after the request timeout, so that the readers queued for the next round move on."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._request_timeout()
        while True:
            await asyncio.wait([rnd], timeout=READ_INDEX_RETRY)
            if rnd.done():
                return
            if loop.time() >= deadline:
                rnd.set_exception(RequestTimeoutError())
                return
            with contextlib.suppress(ProposalDroppedError):  # no leader now: the next try may
                self._node.read_index(ctx)


def time_out(fut: asyncio.Future[Any]) -> None:
    """A request's deadline passed: its caller gets etcd's "request timed out"."""
    if not fut.done():
        fut.set_exception(RequestTimeoutError())


def _relay(mine: asyncio.Future[int], timer: asyncio.TimerHandle, shared: asyncio.Future[int]) -> None:
    """Pass a read round's outcome on to one reader waiting for it (unless it gave up)."""
    timer.cancel()
    if mine.done():
        return
    if shared.cancelled():
        mine.set_exception(StoppedError())
    elif (error := shared.exception()) is not None:
        mine.set_exception(error)
    else:
        mine.set_result(shared.result())


def _shared_future() -> asyncio.Future[int]:
    """A future that readers wait on through their own futures. When every one of them has
    given up, nobody retrieves a failure, and asyncio would log "Future exception was never
    retrieved" for a read round that simply failed: retrieve it here."""
    f: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    f.add_done_callback(lambda done: done.cancelled() or done.exception())
    return f
