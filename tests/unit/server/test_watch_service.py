"""The Watch servicer in a real grpc.aio server on 127.0.0.1, driven by the raw generated stub,
with a KVStore the tests write to directly (no Raft: watches are served from the local store).

Expected responses are the ones etcd 3.4.23 sends for the same requests (recorded against the
real binary): created with the revision at creation, refused creates as created+canceled with
watch id -1, compaction cancels with header revision 0, progress with watch id -1.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest

from minietcd.api.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from minietcd.api.mvccpb import kv_pb2
from minietcd.mvcc import KVStore, WatchHub, WatchStream
from minietcd.server.api.admission import Admission
from minietcd.server.api.watch import Watch, fragments
from minietcd.server.v3rpc.watch import WatchService

TIMEOUT = 10.0
CREATE = rpc_pb2.WatchCreateRequest


def header(rev: int) -> rpc_pb2.ResponseHeader:
    return rpc_pb2.ResponseHeader(cluster_id=11, member_id=22, revision=rev, raft_term=3)


class Voter:
    """The member admission asks about: a voter that knows a leader."""

    leader = 1

    def is_learner(self) -> bool:
        return False


class Client:
    """One Watch stream seen from the client side."""

    def __init__(self, call: Any) -> None:
        self.call = call

    async def send(self, req: rpc_pb2.WatchRequest) -> None:
        await asyncio.wait_for(self.call.write(req), TIMEOUT)

    async def recv(self) -> rpc_pb2.WatchResponse:
        resp = await asyncio.wait_for(self.call.read(), TIMEOUT)
        assert resp is not grpc.aio.EOF
        assert isinstance(resp, rpc_pb2.WatchResponse)
        return resp

    async def create(self, **kw: Any) -> rpc_pb2.WatchResponse:
        await self.send(rpc_pb2.WatchRequest(create_request=CREATE(**kw)))
        return await self.recv()

    async def cancel(self, watch_id: int) -> None:
        await self.send(rpc_pb2.WatchRequest(cancel_request=rpc_pb2.WatchCancelRequest(watch_id=watch_id)))

    async def progress(self) -> None:
        await self.send(rpc_pb2.WatchRequest(progress_request=rpc_pb2.WatchProgressRequest()))

    async def events(self, n: int) -> list[kv_pb2.Event]:
        """Read responses until ``n`` events have arrived."""
        out: list[kv_pb2.Event] = []
        while len(out) < n:
            out.extend((await self.recv()).events)
        return out


@dataclass
class Env:
    kv: KVStore
    hub: WatchHub
    port: int
    channel: grpc.aio.Channel
    #: Set whenever a server-side watch stream is closed (the RPC ended).
    closed: asyncio.Event
    clients: list[Client] = field(default_factory=list)

    channels: list[grpc.aio.Channel] = field(default_factory=list)

    def client(self, own_channel: bool = False) -> Client:
        channel = self.channel
        if own_channel:
            # Without BDP probing the HTTP/2 window stays at 64 KiB, so a client that does not
            # read really stalls the server's writes.
            channel = grpc.aio.insecure_channel(
                f"127.0.0.1:{self.port}", options=[("grpc.http2.bdp_probe", 0)]
            )
            self.channels.append(channel)
        c = Client(rpc_pb2_grpc.WatchStub(channel).Watch())
        self.clients.append(c)
        return c


Start = Callable[..., Awaitable[Env]]


@pytest.fixture
async def start() -> AsyncIterator[Start]:
    servers: list[tuple[grpc.aio.Server, Env]] = []

    async def _start(hub_limits: dict[str, Any] | None = None, **service_kw: Any) -> Env:
        kv = KVStore()
        hub = WatchHub(kv, **(hub_limits or {}))
        closed = asyncio.Event()
        new_stream = hub.new_stream

        def tracked_stream() -> WatchStream:
            # Lets tests wait for the server to clean up a stream without sleeping.
            stream = new_stream()
            close = stream.close

            def closing() -> None:
                close()
                closed.set()

            stream.close = closing  # type: ignore[method-assign]  # wrapped to see it called
            return stream

        hub.new_stream = tracked_stream  # type: ignore[method-assign]  # wrapped to see it called
        server = grpc.aio.server()
        rpc_pb2_grpc.add_WatchServicer_to_server(
            WatchService(Watch(hub, header, Admission(Voter()), **service_kw)), server
        )
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        env = Env(kv, hub, port, grpc.aio.insecure_channel(f"127.0.0.1:{port}"), closed)
        servers.append((server, env))
        return env

    yield _start
    for server, env in servers:
        for c in env.clients:
            c.call.cancel()
        for ch in [env.channel, *env.channels]:
            await ch.close()
        await server.stop(None)


# --- creating, events, cancelling ------------------------------------------------------------


async def test_create_then_events(start: Start) -> None:
    env = await start()
    env.kv.put(b"before")
    c = env.client()
    created = await c.create(key=b"k")
    assert created == rpc_pb2.WatchResponse(header=header(2), watch_id=0, created=True)
    env.kv.put(b"k", b"v1")
    env.kv.put(b"other")
    env.kv.delete_range(b"k")
    r1, r2 = await c.recv(), await c.recv()
    assert r1.header == header(3) and r1.watch_id == 0
    assert list(r1.events) == [
        kv_pb2.Event(
            type=kv_pb2.Event.PUT,
            kv=kv_pb2.KeyValue(key=b"k", create_revision=3, mod_revision=3, version=1, value=b"v1"),
        )
    ]
    assert r2.header.revision == 5
    assert list(r2.events) == [
        kv_pb2.Event(type=kv_pb2.Event.DELETE, kv=kv_pb2.KeyValue(key=b"k", mod_revision=5))
    ]


async def test_many_watches_on_one_stream(start: Start) -> None:
    env = await start()
    c = env.client()
    assert (await c.create(key=b"a", range_end=b"c", watch_id=5)).watch_id == 5
    dup = await c.create(key=b"x", watch_id=5)
    assert (dup.watch_id, dup.created, dup.canceled, dup.cancel_reason) == (
        -1,
        True,
        True,
        "mvcc: duplicate watch ID provided on the WatchStream",
    )
    bad = await c.create(key=b"b", range_end=b"a")
    assert (bad.watch_id, bad.canceled, bad.cancel_reason) == (-1, True, "mvcc: watcher range is empty")
    assert bad.header.revision == 1
    assert (await c.create(key=b"b")).watch_id == 0  # auto ids from 0
    assert (await c.create(key=b"", range_end=b"\0")).watch_id == 1  # everything
    env.kv.put(b"b")
    got = {(await c.recv()).watch_id for _ in range(3)}
    assert got == {5, 0, 1}
    await c.cancel(5)
    assert await c.recv() == rpc_pb2.WatchResponse(header=header(2), watch_id=5, canceled=True)
    # Cancelling an unknown id is ignored: the next response is the progress we ask for.
    await c.cancel(77)
    await c.progress()
    assert await c.recv() == rpc_pb2.WatchResponse(header=header(2), watch_id=-1)
    env.kv.put(b"a")
    assert (await c.recv()).watch_id == 1  # 5 is gone, 0 watches b only


async def test_history_filters_and_prev_kv(start: Start) -> None:
    env = await start()
    env.kv.put(b"k", b"1")  # 2
    env.kv.put(b"k", b"2")  # 3
    env.kv.delete_range(b"k")  # 4
    c = env.client()
    for wid, filters in ((1, []), (2, [CREATE.NOPUT]), (3, [CREATE.NOPUT, CREATE.NODELETE])):
        req = CREATE(key=b"k", start_revision=2, prev_kv=wid == 1, filters=filters, watch_id=wid)
        await c.send(rpc_pb2.WatchRequest(create_request=req))
    # Catch-up may start before the next create is read, so responses of different watchers
    # interleave; per watcher, created comes first.
    by_id: dict[int, list[kv_pb2.Event]] = {}
    for _ in range(5):  # three created, two with events (3 filters everything out)
        r = await c.recv()
        if r.created:
            assert r.watch_id not in by_id
            by_id[r.watch_id] = []
        else:
            assert r.header.revision == 4
            by_id[r.watch_id].extend(r.events)
    assert [(e.type, e.kv.mod_revision) for e in by_id[1]] == [(0, 2), (0, 3), (1, 4)]
    # No prev_kv for a create; the value before for a later put and for the delete.
    assert [e.HasField("prev_kv") for e in by_id[1]] == [False, True, True]
    assert by_id[1][1].prev_kv.value == b"1" and by_id[1][2].prev_kv.value == b"2"
    assert [(e.type, e.HasField("prev_kv")) for e in by_id[2]] == [(1, False)]
    assert by_id[3] == []  # everything filtered: nothing is sent


async def test_compacted_start_revision(start: Start) -> None:
    env = await start()
    for _ in range(5):
        env.kv.put(b"k")
    env.kv.compact(4)
    c = env.client()
    assert (await c.create(key=b"k", start_revision=2)).header.revision == 6
    resp = await c.recv()
    assert resp == rpc_pb2.WatchResponse(header=header(0), watch_id=0, canceled=True, compact_revision=4)
    # The id stays taken until the client cancels it (etcd).
    await c.cancel(0)
    assert (await c.recv()).canceled


async def test_half_close_keeps_the_stream_open(start: Start) -> None:
    env = await start()
    c = env.client()
    await c.create(key=b"k")
    await c.call.done_writing()
    env.kv.put(b"k")
    assert [e.kv.key for e in (await c.recv()).events] == [b"k"]


async def test_client_cancel_removes_its_watchers(start: Start) -> None:
    env = await start()
    c = env.client()
    await c.create(key=b"k")
    await c.create(key=b"j", start_revision=1)
    c.call.cancel()
    await asyncio.wait_for(env.closed.wait(), TIMEOUT)
    assert env.hub.synced_count == env.hub.unsynced_count == env.hub.victim_count == 0


# --- progress --------------------------------------------------------------------------------


async def test_progress_request_waits_for_unsynced_watchers(start: Start) -> None:
    env = await start(hub_limits={"batch_max_revs": 2})
    for _ in range(6):
        env.kv.put(b"k")
    c = env.client()
    await c.create(key=b"k", start_revision=2)
    await c.progress()
    got: list[int] = []
    while True:
        r = await c.recv()
        if r.watch_id == -1:
            break
        got.extend(e.kv.mod_revision for e in r.events)
    # The progress response comes only after the watcher caught up, at the current revision.
    assert got == [2, 3, 4, 5, 6, 7] and r.header.revision == 7 and not r.events


async def test_progress_notify_at_the_interval(start: Start) -> None:
    env = await start(progress_interval=0.01)  # clamped to etcd's minimum, 100ms
    env.kv.put(b"x")
    c = env.client()
    await c.create(key=b"k", progress_notify=True, watch_id=3)
    assert await c.recv() == rpc_pb2.WatchResponse(header=header(2), watch_id=3)


# --- fragments -------------------------------------------------------------------------------


async def test_large_responses_are_fragmented_only_when_asked(start: Start) -> None:
    env = await start(max_response_bytes=400)
    c = env.client()
    await c.create(key=b"a", range_end=b"z", fragment=True, watch_id=1)
    await c.create(key=b"a", range_end=b"z", watch_id=2)
    with env.kv.write() as txn:
        for i in range(10):
            txn.put(b"k%d" % i, b"v" * 100)
    parts: list[rpc_pb2.WatchResponse] = []
    whole: list[rpc_pb2.WatchResponse] = []
    while not whole or not parts or parts[-1].fragment:
        r = await c.recv()
        (parts if r.watch_id == 1 else whole).append(r)
    assert len(whole) == 1 and len(whole[0].events) == 10
    assert len(parts) > 1 and [p.fragment for p in parts] == [True] * (len(parts) - 1) + [False]
    assert [e for p in parts for e in p.events] == list(whole[0].events)
    assert all(p.ByteSize() < 400 for p in parts)


def etcd_send_fragments(wr: rpc_pb2.WatchResponse, max_bytes: int) -> list[rpc_pb2.WatchResponse]:
    """etcd 3.4 ``sendFragments``, line for line (re-encoding after every append)."""
    if wr.ByteSize() < max_bytes or len(wr.events) < 2:
        return [wr]
    ow = rpc_pb2.WatchResponse()
    ow.CopyFrom(wr)
    del ow.events[:]
    ow.fragment = True
    out, idx = [], 0
    while True:
        cur = rpc_pb2.WatchResponse()
        cur.CopyFrom(ow)
        for ev in wr.events[idx:]:
            cur.events.append(ev)
            if len(cur.events) > 1 and cur.ByteSize() >= max_bytes:
                del cur.events[-1]
                break
            idx += 1
        if idx == len(wr.events):
            cur.fragment = False
        out.append(cur)
        if not cur.fragment:
            return out


@pytest.mark.parametrize("max_bytes", [10, 60, 100, 150, 200, 333, 700, 2000])
def test_fragments_like_etcd(max_bytes: int) -> None:
    def ev(n: int) -> kv_pb2.Event:
        return kv_pb2.Event(kv=kv_pb2.KeyValue(key=b"k", mod_revision=9, value=b"v" * n))

    wr = rpc_pb2.WatchResponse(
        header=header(9), watch_id=4, events=[ev(50), ev(500), ev(50), ev(5), ev(90), ev(130)]
    )
    parts = list(fragments(wr, max_bytes))
    assert parts == etcd_send_fragments(wr, max_bytes)
    assert [e for p in parts for e in p.events] == list(wr.events)
    assert all(p.header == header(9) and p.watch_id == 4 for p in parts)
    assert all(p.ByteSize() < max_bytes for p in parts if len(p.events) > 1)
    single = rpc_pb2.WatchResponse(events=[ev(500)])
    assert list(fragments(single, max_bytes)) == [single]  # one event: never split


# --- slow consumers --------------------------------------------------------------------------


async def test_slow_client_blocks_nobody_and_misses_nothing(start: Start) -> None:
    env = await start(hub_limits={"stream_buffer": 4})
    slow, fast = env.client(own_channel=True), env.client()
    await slow.create(key=b"k")
    await fast.create(key=b"k")
    n = 300
    value = b"x" * 4096  # 1.2 MB in all: far more than the HTTP/2 window of the slow client
    fast_got: list[int] = []
    for i in range(n):
        env.kv.put(b"k", value)  # never waits for any reader
        if i % 50 == 49:
            fast_got += [e.kv.mod_revision for e in await fast.events(50)]
    assert fast_got == list(range(2, n + 2))
    assert env.hub.synced_count == 1  # the slow one is parked or behind, not holding anyone
    slow_got = [e.kv.mod_revision for e in await slow.events(n)]
    assert slow_got == list(range(2, n + 2))
    env.kv.put(b"k")
    assert [e.kv.mod_revision for e in await slow.events(1)] == [n + 2]
    assert env.hub.synced_count == 2 and env.hub.buffered_events == 0


# --- the real etcdctl ------------------------------------------------------------------------


@pytest.mark.compat
@pytest.mark.skipif(shutil.which("etcdctl") is None, reason="etcdctl not installed")
async def test_real_etcdctl_watch(start: Start) -> None:
    env = await start()
    env.kv.put(b"foo", b"bar")
    proc = await asyncio.create_subprocess_exec(
        "etcdctl",
        f"--endpoints=127.0.0.1:{env.port}",
        "watch",
        "--rev=1",
        "--prefix",
        "fo",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, "ETCDCTL_API": "3"},
    )
    stdout = proc.stdout
    assert stdout is not None

    async def line() -> bytes:
        raw: bytes = await asyncio.wait_for(stdout.readline(), TIMEOUT)
        return raw.rstrip(b"\n")

    try:
        assert [await line() for _ in range(3)] == [b"PUT", b"foo", b"bar"]
        env.kv.delete_range(b"foo")
        assert [await line() for _ in range(2)] == [b"DELETE", b"foo"]
    finally:
        proc.kill()
        await proc.wait()
