"""minietcd.server.transport: real Transports talking gRPC on 127.0.0.1, in one event loop.

Every wait is a poll with a deadline (``wait_until``), never a fixed sleep; every test ends
with all servers stopped and no task of ours left running.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest
from prometheus_client import REGISTRY

from minietcd.api.raftpb import raft_pb2, raft_pb2_grpc
from minietcd.errors import ServerError
from minietcd.raft.types import (
    ConfState,
    Entry,
    EntryType,
    Message,
    MessageType,
    Snapshot,
    SnapshotMetadata,
)
from minietcd.server import transport as transport_mod
from minietcd.server.transport import PROTOCOL_VERSION, Transport, fetch_cluster_members
from minietcd.wire.raft_codec import message_to_pb

CLUSTER = 0x1C2D3E4F
DEADLINE = 10.0  # seconds any single wait may take before the test fails


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def wait_until(pred: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


@dataclass
class Node:
    """One Transport plus everything its callbacks saw."""

    id: int
    port: int
    cluster_id: int = CLUSTER
    members: raft_pb2.MembersResponse | None = None
    tls: tuple[bytes, bytes] | None = None  # (key, self-signed cert): serve and dial https
    received: list[Message] = field(default_factory=list)
    unreachable: list[int] = field(default_factory=list)
    snapshot_status: list[tuple[int, bool]] = field(default_factory=list)
    transport: Transport = field(init=False)

    def __post_init__(self) -> None:
        self.transport = Transport(
            cluster_id=self.cluster_id,
            member_id=self.id,
            on_message=self.received.append,
            on_unreachable=self.unreachable.append,
            on_snapshot_status=lambda peer, ok: self.snapshot_status.append((peer, ok)),
            members_provider=self._members if self.members is not None else None,
            server_credentials=grpc.ssl_server_credentials([self.tls]) if self.tls else None,
            channel_credentials=grpc.ssl_channel_credentials(self.tls[1]) if self.tls else None,
        )

    def _members(self) -> raft_pb2.MembersResponse:
        assert self.members is not None
        return self.members

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    async def start(self) -> None:
        await self.transport.start([self.url])


def connect(nodes: list[Node]) -> None:
    for a in nodes:
        for b in nodes:
            if a is not b:
                a.transport.add_peer(b.id, [b.url])


async def wait_connected(a: Node, b: Node) -> None:
    await wait_until(lambda: a.transport.active_since(b.id) is not None, f"{a.id} -> {b.id} active")


def heartbeat(frm: int, to: int, commit: int = 0) -> Message:
    return Message(type=MessageType.MsgHeartbeat, to=to, from_=frm, term=1, commit=commit)


def app(frm: int, to: int, index: int, data: bytes) -> Message:
    entries = (
        Entry(term=1, index=index, data=data),
        Entry(term=1, index=index + 1, type=EntryType.CONF_CHANGE),
    )
    return Message(
        type=MessageType.MsgApp, to=to, from_=frm, term=1, log_term=1, index=index - 1, entries=entries
    )


@pytest.fixture
async def nodes() -> AsyncIterator[list[Node]]:
    """Three started, fully connected members 1, 2, 3 (not yet necessarily active)."""
    made = [Node(i, free_port()) for i in (1, 2, 3)]
    for n in made:
        await n.start()
    connect(made)
    try:
        yield made
    finally:
        for n in made:
            await n.transport.stop()


@pytest.fixture(autouse=True)
async def no_leftover_tasks() -> AsyncIterator[None]:
    """Every test must leave no task of the transport behind."""
    yield
    ours = [t for t in asyncio.all_tasks() if t.get_name().startswith("transport-")]
    assert not ours, f"tasks left running: {ours}"


# --- a hand-written peer, to look at the wire and to stall a stream --------------------------


class FakePeer(raft_pb2_grpc.RaftPeerServicer):
    """Answers Hello as member ``member_id``; records every MessageBatch; ``gate`` stalls Send."""

    def __init__(self, member_id: int) -> None:
        self.member_id = member_id
        self.batches: list[raft_pb2.MessageBatch] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def Hello(self, request: raft_pb2.HelloRequest, context: Any) -> raft_pb2.HelloResponse:
        return raft_pb2.HelloResponse(
            cluster_id=CLUSTER, member_id=self.member_id, protocol_version=PROTOCOL_VERSION
        )

    async def Send(self, request_iterator: Any, context: Any) -> raft_pb2.SendAck:
        async for batch in request_iterator:
            self.batches.append(batch)
            await self.gate.wait()  # while closed, stop reading: flow control backs up
        return raft_pb2.SendAck(batches=len(self.batches))


@contextlib.asynccontextmanager
async def fake_peer(member_id: int) -> AsyncIterator[tuple[FakePeer, str]]:
    servicer = FakePeer(member_id)
    server = grpc.aio.server()
    raft_pb2_grpc.add_RaftPeerServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield servicer, f"http://127.0.0.1:{port}"
    finally:
        servicer.gate.set()
        await server.stop(grace=None)


@contextlib.asynccontextmanager
async def raw_channel(node: Node) -> AsyncIterator[grpc.aio.Channel]:
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{node.port}")
    try:
        yield channel
    finally:
        await channel.close()


def stub_for(channel: grpc.aio.Channel) -> Any:
    return raft_pb2_grpc.RaftPeerStub(channel)


def raw_stream(channel: grpc.aio.Channel, method: str) -> Any:
    """A client-streaming call on RaftPeer that sends raw bytes (serializer: identity)."""
    return channel.stream_unary(f"/minietcd.raftpb.RaftPeer/{method}", request_serializer=None)()


async def expect_status(call: Any, code: grpc.StatusCode) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    assert info.value.code() == code, info.value.details()
    details: str = info.value.details() or ""
    return details


# --- sending and receiving ------------------------------------------------------------------


async def test_messages_arrive_in_order_and_intact(nodes: list[Node]) -> None:
    n1, n2, n3 = nodes
    await wait_connected(n1, n2)
    await wait_connected(n1, n3)
    sent: dict[int, list[Message]] = {2: [], 3: []}
    rng = random.Random(7)
    for i in range(1, 300, 2):
        batch = [app(1, to, i, rng.randbytes(rng.randrange(0, 3000))) for to in (2, 3)]
        batch.append(heartbeat(1, 2, commit=i))
        for m in batch:
            sent[m.to].append(m)
        n1.transport.send(batch)
    await wait_until(lambda: len(n2.received) == len(sent[2]), "n2 got everything")
    await wait_until(lambda: len(n3.received) == len(sent[3]), "n3 got everything")
    assert n2.received == sent[2]
    assert n3.received == sent[3]
    assert n1.unreachable == []


async def test_what_queued_up_goes_in_one_batch() -> None:
    """Every send() call's messages go in order; the calls made before the writer ran share
    one batch (one stream message), a later call gets one of its own."""
    async with fake_peer(2) as (peer, url):
        t = Node(1, free_port())
        await t.start()
        t.transport.add_peer(2, [url])
        try:
            await wait_until(lambda: t.transport.active_since(2) is not None, "active")
            t.transport.send([heartbeat(1, 2, 1), heartbeat(1, 2, 2), app(1, 2, 5, b"x")])
            t.transport.send([heartbeat(1, 2, 3)])
            t.transport.send([heartbeat(1, 3, 3)])  # unknown peer: dropped, not batched
            await wait_until(lambda: len(peer.batches) == 1, "one batch")
            t.transport.send([heartbeat(1, 2, 4)])
            await wait_until(lambda: len(peer.batches) == 2, "two batches")
            first, second = peer.batches
            assert [m.commit for m in first.messages] == [1, 2, 0, 3]
            assert [m.commit for m in second.messages] == [4]
            assert (first.cluster_id, first.from_member_id, first.to_member_id) == (CLUSTER, 1, 2)
            assert first.messages[2] == message_to_pb(app(1, 2, 5, b"x"))
        finally:
            await t.transport.stop()


async def test_snapshot_of_several_mib_arrives_intact(nodes: list[Node]) -> None:
    n1, n2, _ = nodes
    data = random.Random(1).randbytes(5 * (1 << 20) + 12345)
    meta = SnapshotMetadata(conf_state=ConfState(voters=(1, 2, 3)), index=42, term=3)
    msg = Message(
        type=MessageType.MsgSnap, to=2, from_=1, term=3, snapshot=Snapshot(data=data, metadata=meta)
    )
    n1.transport.send([msg, heartbeat(1, 2)])  # MsgSnap needs no active stream
    await wait_until(lambda: n1.snapshot_status == [(2, True)], "snapshot status ok")
    snaps = [m for m in n2.received if m.type == MessageType.MsgSnap]
    assert len(snaps) == 1
    got = snaps[0]
    assert got.snapshot is not None
    assert got.snapshot.metadata == meta
    assert hashlib.sha256(got.snapshot.data).digest() == hashlib.sha256(data).digest()
    assert got == msg


async def test_snapshot_to_a_down_peer_reports_failure(nodes: list[Node]) -> None:
    n1, n2, _ = nodes
    await n2.transport.stop()
    snap = Snapshot(data=b"abc", metadata=SnapshotMetadata(index=5, term=1))
    n1.transport.send([Message(type=MessageType.MsgSnap, to=2, from_=1, term=1, snapshot=snap)])
    await wait_until(lambda: n1.snapshot_status == [(2, False)], "snapshot status failed")
    assert 2 in n1.unreachable


async def test_unknown_peer_is_dropped(nodes: list[Node]) -> None:
    n1, n2, _ = nodes
    await wait_connected(n1, n2)
    n1.transport.send([heartbeat(1, 77), heartbeat(1, 2, commit=9)])
    await wait_until(lambda: len(n2.received) == 1, "the known peer's message")
    assert n2.received[0].commit == 9
    assert n1.unreachable == []
    assert n1.transport.active_since(77) is None


# --- identity checks ------------------------------------------------------------------------


async def test_wrong_cluster_is_refused(nodes: list[Node], caplog: pytest.LogCaptureFixture) -> None:
    _, n2, _ = nodes
    stranger = Node(9, free_port(), cluster_id=0x999)
    await stranger.start()
    stranger.transport.add_peer(2, [n2.url])
    try:
        # Directly on the wire: FAILED_PRECONDITION naming what the caller sent, never our id
        # (the log line has both, as etcd's "request cluster ID mismatch (got .. want ..)").
        async with raw_channel(n2) as channel:
            stub = stub_for(channel)
            call = stub.Send()
            batch = raft_pb2.MessageBatch(cluster_id=0x999, from_member_id=9, to_member_id=2)
            batch.messages.append(message_to_pb(heartbeat(9, 2)))
            await call.write(batch)
            details = await expect_status(call, grpc.StatusCode.FAILED_PRECONDITION)
            assert "cluster ID mismatch" in details and "999" in details and "1c2d3e4f" not in details
            assert any("got 999 want 1c2d3e4f" in r.getMessage() for r in caplog.records)

            call = stub.Send()
            await call.write(raft_pb2.MessageBatch(cluster_id=CLUSTER, from_member_id=1, to_member_id=3))
            details = await expect_status(call, grpc.StatusCode.FAILED_PRECONDITION)
            assert "member ID mismatch" in details

            hello = await stub.Hello(
                raft_pb2.HelloRequest(cluster_id=0x999, from_member_id=9, to_member_id=2, protocol_version=1)
            )
            assert hello.member_id == 0 and hello.cluster_id == 0  # a refusal reveals nothing
            assert "cluster ID mismatch" in hello.reject_reason

        # Through a Transport: its Hello is refused (logged once), so it never becomes active.
        def refused() -> bool:
            return any("peer refused us: cluster ID mismatch" in r.getMessage() for r in caplog.records)

        await wait_until(refused, "the stranger's Hello refused")
        stranger.transport.send([heartbeat(9, 2)])
        assert stranger.transport.active_since(2) is None
        assert stranger.unreachable == [2]
        assert n2.received == []
    finally:
        await stranger.transport.stop()


async def test_removed_member_is_refused(nodes: list[Node]) -> None:
    n1, n2, _ = nodes
    await wait_connected(n1, n2)
    n2.transport.remove_peer(1)
    # n1's stream is refused at its next batch; its reconnect's Hello is refused from then on.
    deadline = time.monotonic() + DEADLINE
    while n1.transport.active_since(2) is not None and time.monotonic() < deadline:
        n1.transport.send([heartbeat(1, 2)])
        await asyncio.sleep(0.02)
    assert n1.transport.active_since(2) is None
    async with raw_channel(n2) as channel:
        hello = await stub_for(channel).Hello(
            raft_pb2.HelloRequest(cluster_id=CLUSTER, from_member_id=1, to_member_id=2, protocol_version=1)
        )
    assert "removed" in hello.reject_reason


# --- failures -------------------------------------------------------------------------------


async def test_down_peer_is_unreachable_and_send_never_blocks(nodes: list[Node]) -> None:
    n1, n2, _ = nodes
    await wait_connected(n1, n2)
    await n2.transport.stop()
    await wait_until(lambda: n1.transport.active_since(2) is None, "n1 notices n2 is gone")
    n1.unreachable.clear()
    started = time.monotonic()
    for i in range(10_000):
        n1.transport.send([app(1, 2, i + 1, b"v" * 100)])
    assert time.monotonic() - started < 2.0
    assert n1.unreachable.count(2) == 10_000


async def test_full_queue_drops_and_reports_unreachable() -> None:
    async with fake_peer(2) as (peer, url):
        t = Node(1, free_port())
        await t.start()
        t.transport.add_peer(2, [url])
        try:
            await wait_until(lambda: t.transport.active_since(2) is not None, "active")
            peer.gate.clear()  # the peer stops reading: HTTP/2 flow control fills, writes stall
            started = time.monotonic()
            big = b"x" * 4096
            for i in range(transport_mod.QUEUE_MESSAGES + 2000):
                t.transport.send([app(1, 2, i + 1, big)])
            assert time.monotonic() - started < 5.0
            assert 2 in t.unreachable
            peer.gate.set()
        finally:
            await t.transport.stop()


async def test_peer_comes_back(nodes: list[Node]) -> None:
    n1, n2, n3 = nodes
    await wait_connected(n1, n2)
    await n2.transport.stop()
    await wait_until(lambda: n1.transport.active_since(2) is None, "n2 down")
    n1.transport.send([heartbeat(1, 2)])
    assert 2 in n1.unreachable

    again = Node(2, n2.port)
    await again.start()
    again.transport.add_peer(1, [n1.url])
    nodes[1] = again  # the fixture stops it
    await wait_connected(n1, again)

    async def delivered() -> bool:
        n1.transport.send([heartbeat(1, 2, commit=7)])
        await asyncio.sleep(0.02)
        return any(m.commit == 7 for m in again.received)

    deadline = time.monotonic() + DEADLINE
    while not await delivered():
        assert time.monotonic() < deadline, "messages did not flow again"
    assert n3.transport.active_since(1) is not None


class StallingProxy:
    """A TCP proxy that can go silent without closing anything: a network partition."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.flowing = asyncio.Event()
        self.flowing.set()
        self.handlers: set[asyncio.Task[Any]] = set()
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        self.flowing.set()
        for w in self.writers:  # EOF for every pump (cancelling start_server handlers is noisy)
            w.close()
        await asyncio.wait_for(asyncio.gather(*self.handlers, return_exceptions=True), DEADLINE)
        await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
            self.writers += [writer, up_writer]
            try:
                await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))
            finally:
                up_writer.close()
        except OSError:
            pass
        finally:
            writer.close()
            self.handlers.discard(task)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            await self.flowing.wait()  # while stalled: hold the bytes, close nothing
            writer.write(data)
            await writer.drain()
        writer.close()


async def test_a_silent_partition_is_noticed_by_the_prober() -> None:
    n1, n2 = Node(1, free_port()), Node(2, free_port())
    proxy = StallingProxy(n2.port)
    proxy_url = await proxy.start()
    for n in (n1, n2):
        await n.start()
    n1.transport.add_peer(2, [proxy_url])
    n2.transport.add_peer(1, [n1.url])
    try:
        await wait_connected(n1, n2)
        proxy.flowing.clear()
        # no RST, no FIN: only the failing Hello probe can tell
        await wait_until(lambda: n1.transport.active_since(2) is None, "partition noticed")
        n1.transport.send([heartbeat(1, 2)])
        assert 2 in n1.unreachable
        proxy.flowing.set()
        await wait_connected(n1, n2)
        n1.transport.send([heartbeat(1, 2, commit=11)])
        await wait_until(lambda: any(m.commit == 11 for m in n2.received), "messages flow again")
    finally:
        proxy.flowing.set()
        for n in (n1, n2):
            await n.transport.stop()
        await proxy.stop()


async def test_garbage_on_the_peer_port_does_not_crash(nodes: list[Node]) -> None:
    n1, n2, _ = nodes
    rng = random.Random(3)
    for payload in (
        b"GET /members HTTP/1.1\r\nHost: x\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + rng.randbytes(2000),
        rng.randbytes(10_000),
        b"\x00" * 100,
    ):
        reader, writer = await asyncio.open_connection("127.0.0.1", n2.port)
        writer.write(payload)
        await writer.drain()
        with contextlib.suppress(ConnectionError, asyncio.TimeoutError):
            await asyncio.wait_for(reader.read(1000), 1.0)
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    # still serving
    await wait_connected(n1, n2)
    n1.transport.send([heartbeat(1, 2, commit=5)])
    await wait_until(lambda: any(m.commit == 5 for m in n2.received), "a message after the garbage")


async def test_malformed_requests_are_refused(nodes: list[Node]) -> None:
    _, n2, _ = nodes
    async with raw_channel(n2) as channel:
        # not a protobuf
        call = raw_stream(channel, "Send")
        await call.write(b"\xff\xff\xff\xff")
        await expect_status(call, grpc.StatusCode.INVALID_ARGUMENT)
        hello = channel.unary_unary("/minietcd.raftpb.RaftPeer/Hello", request_serializer=None)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await hello(b"\x0a\xff")
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT

        # an unknown message type inside a well-formed batch
        batch = raft_pb2.MessageBatch(cluster_id=CLUSTER, from_member_id=1, to_member_id=2)
        batch.messages.add(type=99, to=2, from_=1)
        call = raw_stream(channel, "Send")
        await call.write(batch.SerializeToString())
        await expect_status(call, grpc.StatusCode.INVALID_ARGUMENT)

        stub = stub_for(channel)
        data = b"snapshot-bytes" * 1000
        header = raft_pb2.SnapshotChunk(
            header=raft_pb2.SnapshotHeader(
                cluster_id=CLUSTER,
                from_member_id=1,
                to_member_id=2,
                message=message_to_pb(
                    Message(type=MessageType.MsgSnap, to=2, from_=1, term=1, snapshot=Snapshot())
                ),
                total_size=len(data),
            )
        )
        good_trailer = raft_pb2.SnapshotChunk(
            trailer=raft_pb2.SnapshotTrailer(sha256=hashlib.sha256(data).digest())
        )

        async def snapshot(chunks: list[raft_pb2.SnapshotChunk], code: grpc.StatusCode) -> str:
            # Each bad stream ends with the chunk that breaks it: a write after the server's
            # refusal would fail locally (INTERNAL) and hide the server's status.
            call = stub.SendSnapshot()
            for c in chunks:
                await call.write(c)
            with contextlib.suppress(Exception):
                await call.done_writing()
            return await expect_status(call, code)

        data_chunk = raft_pb2.SnapshotChunk(data=data)
        invalid, loss = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.DATA_LOSS
        await snapshot([data_chunk], invalid)  # out of order: data before the header
        await snapshot([header, good_trailer, data_chunk], invalid)  # data after the trailer
        await snapshot([header, data_chunk, header], invalid)  # two headers
        await snapshot([header, raft_pb2.SnapshotChunk()], invalid)  # an empty chunk
        bad = raft_pb2.SnapshotChunk(trailer=raft_pb2.SnapshotTrailer(sha256=b"\x00" * 32))
        assert "checksum" in await snapshot([header, data_chunk, bad], loss)
        await snapshot([header, raft_pb2.SnapshotChunk(data=data[:-1]), good_trailer], loss)  # short
        await snapshot([header, data_chunk, data_chunk], loss)  # too long
        await snapshot([header, data_chunk], loss)  # no trailer
        # and a well-formed one still works afterwards
        call = stub.SendSnapshot()
        for c in (header, data_chunk, good_trailer):
            await call.write(c)
        await call.done_writing()
        assert (await call).received_bytes == len(data)
    assert [m.type for m in n2.received] == [MessageType.MsgSnap]
    assert n2.received[0].snapshot is not None and n2.received[0].snapshot.data == data


# --- Members, Hello probes ------------------------------------------------------------------


async def test_members_rpc_and_fetch_cluster_members() -> None:
    port = free_port()
    members = raft_pb2.MembersResponse(cluster_id=CLUSTER)
    members.members.add(id=1, name="n1", peer_urls=[f"http://127.0.0.1:{port}"], client_urls=["http://c1"])
    members.members.add(id=2, name="n2", peer_urls=["http://127.0.0.1:1"], is_learner=True)
    members.members.add(id=3, name="", peer_urls=["http://127.0.0.1:3"])  # added, not started
    served = Node(1, port, members=members)
    bare = Node(2, free_port())  # no members_provider: UNAVAILABLE
    for n in (served, bare):
        await n.start()
    try:
        dead = f"http://127.0.0.1:{free_port()}"
        joiner = ["http://127.0.0.1:3"]
        got = await fetch_cluster_members([dead, bare.url, served.url], timeout=2.0, own_peer_urls=joiner)
        assert got == members
        assert got.cluster_id == CLUSTER
        assert [m.id for m in got.members] == [1, 2, 3]
        with pytest.raises(ServerError) as info:
            await fetch_cluster_members([dead, bare.url], timeout=2.0, own_peer_urls=joiner)
        assert "could not retrieve cluster information" in str(info.value)
        assert "UNAVAILABLE" in str(info.value)
        # Only a member that is joining learns the member list: not a stranger, not a member
        # that has started already (name set), not a caller that names no URL.
        for asking in ([], ["http://127.0.0.1:9"], [f"http://127.0.0.1:{port}"]):
            with pytest.raises(ServerError) as info:
                await fetch_cluster_members([served.url], timeout=2.0, own_peer_urls=asking)
            assert "PERMISSION_DENIED" in str(info.value)
    finally:
        for n in (served, bare):
            await n.transport.stop()


async def test_active_since_and_round_trip_time(nodes: list[Node]) -> None:
    n1, n2, _ = nodes

    def samples() -> float:
        value = REGISTRY.get_sample_value("etcd_network_peer_round_trip_time_seconds_count", {"To": "2"})
        return value or 0.0

    before = samples()
    await wait_connected(n1, n2)
    since = n1.transport.active_since(2)
    assert since is not None and since <= time.monotonic()
    await wait_until(lambda: samples() > before, "an RTT sample")
    assert n1.transport.active_since(2) == since  # still the same connection
    assert n1.transport.active_since(99) is None


def test_histogram_matches_etcd() -> None:
    hist = transport_mod.PEER_RTT
    assert hist._labelnames == ("To",)
    buckets = hist._upper_bounds
    assert len(buckets) == 15  # 14 + Inf
    assert buckets[0] == pytest.approx(0.0001) and buckets[13] == pytest.approx(0.0001 * 2**13)


def self_signed(tmp_path: Path) -> tuple[bytes, bytes]:
    """A key and a self-signed certificate for 127.0.0.1 (openssl), as PEM."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return key.read_bytes(), cert.read_bytes()


async def test_https_peers(tmp_path: Path) -> None:
    tls = self_signed(tmp_path)
    members = raft_pb2.MembersResponse(cluster_id=CLUSTER)
    members.members.add(id=3, peer_urls=["https://127.0.0.1:3"])  # a member about to join
    pair = [Node(1, free_port(), tls=tls, members=members), Node(2, free_port(), tls=tls)]
    for n in pair:
        await n.start()
    connect(pair)
    n1, n2 = pair
    try:
        await wait_connected(n1, n2)
        snap = Snapshot(data=b"s" * 3_000_000, metadata=SnapshotMetadata(index=9, term=2))
        n1.transport.send(
            [heartbeat(1, 2, commit=4), Message(MessageType.MsgSnap, to=2, from_=1, snapshot=snap)]
        )
        await wait_until(lambda: n1.snapshot_status == [(2, True)], "snapshot over TLS")
        await wait_until(lambda: len(n2.received) == 2, "both messages over TLS")
        creds = grpc.ssl_channel_credentials(tls[1])
        got = await fetch_cluster_members([n1.url], creds, own_peer_urls=["https://127.0.0.1:3"])
        assert got == members
        # a plaintext client cannot talk to a TLS port
        with pytest.raises(ServerError):
            await fetch_cluster_members([n1.url.replace("https", "http")], timeout=1.0)
    finally:
        for n in pair:
            await n.transport.stop()


async def test_update_peer_tries_each_url(nodes: list[Node]) -> None:
    n1, n2, _ = nodes
    await wait_connected(n1, n2)
    first = n1.transport.active_since(2)
    dead = f"http://127.0.0.1:{free_port()}"
    n1.transport.update_peer(2, [dead, n2.url])  # the current URL stays: same stream
    assert n1.transport.active_since(2) == first
    n1.transport.update_peer(2, [dead, f"http://localhost:{n2.port}"])  # it goes: reconnect
    # a new stream, through the second URL once the first has failed
    await wait_until(lambda: n1.transport.active_since(2) not in (None, first), "a new stream")
    n1.transport.send([heartbeat(1, 2, commit=21)])
    await wait_until(lambda: any(m.commit == 21 for m in n2.received), "message via the new URL")

    n1.transport.remove_peer(2)
    assert n1.transport.active_since(2) is None
    reported = len(n1.unreachable)
    n1.transport.send([heartbeat(1, 2, commit=22)])  # now an unknown peer: dropped quietly
    assert len(n1.unreachable) == reported


async def test_a_failing_callback_does_not_break_the_stream(nodes: list[Node]) -> None:
    n1, _, _ = nodes
    received: list[Message] = []

    def on_message(m: Message) -> None:
        if m.commit == 1:
            raise RuntimeError("the Raft node has a bug")
        received.append(m)

    port = free_port()
    t = Transport(
        cluster_id=CLUSTER,
        member_id=4,
        on_message=on_message,
        on_unreachable=lambda _peer: None,
        on_snapshot_status=lambda _peer, _ok: None,
    )
    await t.start([f"http://127.0.0.1:{port}"])
    t.add_peer(1, [n1.url])  # only members it knows may send to it
    n1.transport.add_peer(4, [f"http://127.0.0.1:{port}"])
    try:
        await wait_until(lambda: n1.transport.active_since(4) is not None, "n1 -> 4 active")
        n1.transport.send([heartbeat(1, 4, commit=1), heartbeat(1, 4, commit=2)])
        n1.transport.send([heartbeat(1, 4, commit=3)])
        await wait_until(lambda: [m.commit for m in received] == [2, 3], "messages after the failure")
        assert n1.transport.active_since(4) is not None
    finally:
        await t.stop()


def test_a_batch_too_large_for_one_message_is_split_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transport_mod, "BATCH_SPLIT_BYTES", 1000)
    t = Transport(
        cluster_id=CLUSTER,
        member_id=1,
        on_message=lambda m: None,
        on_unreachable=lambda _id: None,
        on_snapshot_status=lambda _id, _ok: None,
    )
    big = [app(1, 2, i + 1, bytes(300)) for i in range(10)]
    batches = t._batches(2, big)
    assert len(batches) > 1 and all(b.ByteSize() <= 1000 or len(b.messages) == 1 for b in batches)
    assert [m.index for b in batches for m in b.messages] == list(range(10))  # the entries' previous
    assert len(t._batches(2, [heartbeat(1, 2, c) for c in range(10)])) == 1  # small: one batch
