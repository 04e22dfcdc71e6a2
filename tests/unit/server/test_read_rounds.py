"""Linearizable reads share ReadIndex rounds (``EtcdServer.read_barrier``). A reader that gives
up (its client's deadline passed: gRPC cancels the handler) must not take the shared round down
with it: found by a chaos run, where after one cancelled round every later read that overlapped
a round in flight hung until its timeout."""

from __future__ import annotations

import asyncio
import gc
from types import SimpleNamespace
from typing import Any

import pytest

from minietcd.errors import ServerError
from minietcd.raft.types import ReadState
from minietcd.server.etcd_server import EtcdServer
from minietcd.server.read_rounds import READ_INDEX_RETRY


class _Node:
    """The slice of RaftNode that reads use; ReadIndex requests wait until ``answer()``."""

    def __init__(self) -> None:
        self.lead = 1
        self.is_leader = True
        self.applied_index = 100
        self.pending: list[bytes] = []
        self.on_applied: Any = None
        self.on_read_state: Any = None
        self.on_leader_change: Any = None

    def read_index(self, ctx: bytes) -> None:
        self.pending.append(ctx)

    def answer(self) -> None:
        pending, self.pending = self.pending, []
        for ctx in pending:
            self.on_read_state(ReadState(50, ctx))


def _server(node: _Node) -> EtcdServer:
    # Reads never reach the state machine; a leader change only asks the lessor whether it leads.
    sm = SimpleNamespace(lessor=SimpleNamespace(is_primary=False))
    server = EtcdServer(
        member_id=1,
        cluster_id=1,
        name="n1",
        sm=sm,  # type: ignore[arg-type]  # a stand-in with what a read round uses
        node=node,  # type: ignore[arg-type]  # a stand-in with what a read round uses
        election_timeout=0.1,
        max_request_bytes=1 << 20,
        quota_bytes=1 << 30,
        active_since=lambda _id: None,
    )
    server.request_timeout = 0.2
    return server


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def _answer_until_done(node: _Node, tasks: list[asyncio.Task[None]], timeout: float) -> None:
    """Answer ReadIndex rounds as they come until every task is done (or fail after ``timeout``)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not all(t.done() for t in tasks):
        assert loop.time() < deadline, f"{sum(not t.done() for t in tasks)} read(s) still waiting"
        node.answer()
        await asyncio.sleep(0.005)
    for t in tasks:
        t.result()


def test_a_cancelled_reader_does_not_strand_the_readers_of_the_next_round() -> None:
    async def scenario() -> None:
        node = _Node()
        server = _server(node)
        starter = asyncio.create_task(server.read_barrier())
        await _settle()
        assert len(node.pending) == 1  # round 1 in flight
        joiner = asyncio.create_task(server.read_barrier())  # waits for round 2
        await _settle()
        starter.cancel()  # the first reader's client gave up
        await _settle()
        await _answer_until_done(node, [joiner], 1.0)
        # And later reads that overlap a round in flight are still served.
        for _ in range(3):
            reads = [asyncio.create_task(server.read_barrier()) for _ in range(6)]
            await _answer_until_done(node, reads, 1.0)

    asyncio.run(scenario())


def test_a_failed_round_nobody_waits_for_logs_no_unretrieved_exception() -> None:
    errors: list[dict[str, Any]] = []

    async def scenario() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: errors.append(ctx))
        node = _Node()
        server = _server(node)
        readers = [asyncio.create_task(server.read_barrier()) for _ in range(2)]
        await _settle()
        for r in readers:  # both readers give up; then the leader changes under the round
            r.cancel()
        await _settle()
        node.lead = 0  # the leader is lost: round 1 fails, and round 2 finds no leader
        server._on_leader_change(0, 3)
        await asyncio.sleep(0.4)  # past the request timeout of round 2's wait for a leader
        server.reads.in_flight = server.reads.next = None

    asyncio.run(scenario())
    gc.collect()
    assert not [e for e in errors if "never retrieved" in str(e.get("message"))], errors


def test_a_lost_read_index_request_is_sent_again() -> None:
    async def scenario() -> None:
        node = _Node()
        server = _server(node)
        server.request_timeout = 2.0
        reader = asyncio.create_task(server.read_barrier())
        await _settle()
        lost = node.pending
        node.pending = []  # the request never reaches the leader, and no leader change says so
        await asyncio.sleep(READ_INDEX_RETRY + 0.1)
        assert node.pending == lost  # asked again, with the same context
        await _answer_until_done(node, [reader], 1.0)

    asyncio.run(scenario())


def test_a_round_never_answered_times_out_and_the_next_one_is_served() -> None:
    async def scenario() -> None:
        node = _Node()
        server = _server(node)  # request timeout 0.2 s: round 1 gives up after that
        first = asyncio.create_task(server.read_barrier())
        await _settle()
        server.request_timeout = 2.0  # ... while this reader would wait longer
        queued = asyncio.create_task(server.read_barrier())  # waits for round 2
        await asyncio.sleep(0.4)  # round 1 is never answered
        assert first.done() and isinstance(first.exception(), ServerError)
        await _answer_until_done(node, [queued], 1.0)

    asyncio.run(scenario())


def test_rounds_never_overlap_and_every_reader_is_answered_promptly() -> None:
    """The race 6dff120 left: a reader who found the round done started one while the queued
    readers' round started too, the second overwrote the first's context, and the first round's
    readers waited for the request timeout. Rounds are now run one at a time by one loop."""

    class _PromptNode(_Node):
        def __init__(self) -> None:
            super().__init__()
            self.in_flight: set[bytes] = set()
            self.most_in_flight = 0

        def read_index(self, ctx: bytes) -> None:
            self.in_flight.add(ctx)
            self.most_in_flight = max(self.most_in_flight, len(self.in_flight))
            asyncio.get_running_loop().call_later(0.001, self._answer, ctx)

        def _answer(self, ctx: bytes) -> None:
            self.in_flight.discard(ctx)
            self.on_read_state(ReadState(50, ctx))

    async def scenario() -> None:
        node = _PromptNode()
        server = _server(node)
        server.request_timeout = 5.0  # a stranded reader would take this long

        async def reader(i: int) -> None:
            for _ in range(20):
                await asyncio.sleep(0.0005 * (i % 3))
                await server.read_barrier()

        async with asyncio.timeout(3.0):
            await asyncio.gather(*(reader(i) for i in range(30)))
        assert node.most_in_flight == 1

    asyncio.run(scenario())


def test_a_dropped_read_index_is_asked_again_and_leaves_nothing_behind() -> None:
    """A campaigning node drops the ReadIndex: the round keeps asking (as etcd waits for its
    answer) instead of failing the read, and no round is left half set up."""
    from minietcd.errors import ProposalDroppedError

    class _DroppingNode(_Node):
        drops = 1

        def read_index(self, ctx: bytes) -> None:
            if self.drops:
                self.drops -= 1
                raise ProposalDroppedError("n1 is campaigning at term 3: no leader")
            super().read_index(ctx)

    async def scenario() -> None:
        node = _DroppingNode()
        server = _server(node)
        server.request_timeout = 2.0
        reader = asyncio.create_task(server.read_barrier())
        await _settle()
        assert node.pending == [] and not reader.done()
        await asyncio.sleep(READ_INDEX_RETRY + 0.1)
        await _answer_until_done(node, [reader], 1.0)
        assert server.reads.in_flight is None and server.reads.ctx is None

    asyncio.run(scenario())


def test_stop_fails_waiting_readers_at_once() -> None:
    errors: list[dict[str, Any]] = []

    async def scenario() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: errors.append(ctx))
        node = _Node()
        server = _server(node)
        server.request_timeout = 30.0
        in_round = asyncio.create_task(server.read_barrier())
        await _settle()
        queued = asyncio.create_task(server.read_barrier())
        await _settle()
        await server.stop()
        for reader in (in_round, queued):
            with pytest.raises(ServerError, match="server stopped"):
                await asyncio.wait_for(reader, 1.0)

    asyncio.run(scenario())
    gc.collect()
    assert not [e for e in errors if "never retrieved" in str(e.get("message"))], errors
