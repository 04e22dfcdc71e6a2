"""The client's retry rule, against in-process fake gRPC servers whose answers we choose.

Reads are retried on another member; writes only when they provably never reached a server;
a write whose outcome is unknown raises OutcomeUnknownError and is sent exactly once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest

from minietcd.api.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from minietcd.client import (
    Client,
    CompactedRevisionError,
    DeadlineExceededError,
    EndpointsUnavailableError,
    EtcdServerError,
    OutcomeUnknownError,
)
from tests.cluster.harness import free_ports

Behaviour = Callable[[Any, grpc.aio.ServicerContext], Any]


@dataclass
class FakeKV(rpc_pb2_grpc.KVServicer):
    """A KV service that counts calls and answers with ``range_fn`` / ``put_fn``."""

    name: str
    range_fn: Behaviour | None = None
    put_fn: Behaviour | None = None
    calls: list[str] = field(default_factory=list)

    async def Range(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        self.calls.append("Range")
        if self.range_fn is not None:
            return await self.range_fn(request, context)
        return rpc_pb2.RangeResponse(header=rpc_pb2.ResponseHeader(member_id=1, revision=7), count=0)

    async def Put(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        self.calls.append("Put")
        if self.put_fn is not None:
            return await self.put_fn(request, context)
        return rpc_pb2.PutResponse(header=rpc_pb2.ResponseHeader(revision=8))

    async def Txn(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        self.calls.append("Txn")
        if self.put_fn is not None:
            return await self.put_fn(request, context)
        return rpc_pb2.TxnResponse(header=rpc_pb2.ResponseHeader(revision=8), succeeded=True)


def abort_with(code: grpc.StatusCode, message: str) -> Behaviour:
    async def fn(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(code, message)

    return fn


@pytest.fixture
async def servers() -> AsyncIterator[Callable[..., Any]]:
    started: list[grpc.aio.Server] = []

    async def start(kv: FakeKV) -> str:
        server = grpc.aio.server()
        rpc_pb2_grpc.add_KVServicer_to_server(kv, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        started.append(server)
        return f"127.0.0.1:{port}"

    yield start
    for s in started:
        await s.stop(None)


def dead_endpoint() -> str:
    """An address nothing listens on (connection refused)."""
    return f"127.0.0.1:{free_ports(1)[0]}"


async def test_read_fails_over_to_next_member_on_unavailable(servers: Any) -> None:
    bad = FakeKV("bad", range_fn=abort_with(grpc.StatusCode.UNAVAILABLE, "etcdserver: no leader"))
    good = FakeKV("good")
    eps = [await servers(bad), await servers(good)]
    async with Client(eps, timeout=5) as c:
        resp = await c.get("k")
    assert resp.header.revision == 7
    assert bad.calls == ["Range"] and good.calls == ["Range"]


async def test_write_with_unknown_outcome_is_not_retried(servers: Any) -> None:
    timed_out = FakeKV("a", put_fn=abort_with(grpc.StatusCode.UNAVAILABLE, "etcdserver: request timed out"))
    other = FakeKV("b")
    eps = [await servers(timed_out), await servers(other)]
    async with Client(eps, timeout=5) as c:
        with pytest.raises(OutcomeUnknownError) as info:
            await c.put("k", "v")
    assert info.value.etcd_message == "etcdserver: request timed out"
    assert timed_out.calls == ["Put"] and other.calls == []


async def test_write_no_leader_after_sending_is_outcome_unknown(servers: Any) -> None:
    kv = FakeKV("a", put_fn=abort_with(grpc.StatusCode.UNAVAILABLE, "etcdserver: no leader"))
    async with Client([await servers(kv), await servers(FakeKV("b"))], timeout=5) as c:
        with pytest.raises(OutcomeUnknownError):
            await c.put("k", "v")
    assert kv.calls == ["Put"]


async def test_write_is_retried_when_never_sent(servers: Any) -> None:
    good = FakeKV("good")
    async with Client([dead_endpoint(), await servers(good)], timeout=5) as c:
        resp = await c.put("k", "v")
    assert resp.header.revision == 8 and good.calls == ["Put"]


async def test_write_deadline_after_sending_is_outcome_unknown(servers: Any) -> None:
    import asyncio

    async def hang(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await asyncio.sleep(10)

    kv = FakeKV("slow", put_fn=hang)
    async with Client([await servers(kv)], timeout=0.5) as c:
        with pytest.raises(OutcomeUnknownError) as info:
            await c.put("k", "v")
    assert info.value.etcd_message == "context deadline exceeded"


async def test_read_deadline_raises_deadline_exceeded(servers: Any) -> None:
    import asyncio

    async def hang(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await asyncio.sleep(10)

    async with Client([await servers(FakeKV("slow", range_fn=hang))], timeout=0.5) as c:
        with pytest.raises(DeadlineExceededError):
            await c.get("k")


async def test_read_only_txn_is_retried_but_write_txn_is_not(servers: Any) -> None:
    from minietcd.client import Op

    bad = FakeKV("bad", put_fn=abort_with(grpc.StatusCode.UNAVAILABLE, "etcdserver: leader changed"))
    good = FakeKV("good")
    eps = [await servers(bad), await servers(good)]
    async with Client(eps, timeout=5) as c:
        r = await c.txn().then(Op.get("k")).commit()  # read-only: retried on "good"
        assert r.succeeded
    assert bad.calls == ["Txn"] and good.calls == ["Txn"]
    async with Client([eps[0]], timeout=5) as c:
        with pytest.raises(OutcomeUnknownError):
            await c.txn().then(Op.put("k", "v")).commit()
    assert bad.calls == ["Txn", "Txn"]


async def test_no_endpoint_reachable(servers: Any) -> None:
    async with Client([dead_endpoint(), dead_endpoint()], timeout=0.5) as c:
        with pytest.raises(EndpointsUnavailableError) as info:
            await c.put("k", "v")
    assert info.value.etcd_message == "context deadline exceeded"


async def test_definite_server_errors_map_to_the_tree(servers: Any) -> None:
    compacted = FakeKV(
        "c",
        range_fn=abort_with(
            grpc.StatusCode.OUT_OF_RANGE, "etcdserver: mvcc: required revision has been compacted"
        ),
    )
    too_many = FakeKV(
        "t",
        put_fn=abort_with(grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: too many operations in txn request"),
    )
    async with Client([await servers(compacted)], timeout=5) as c:
        with pytest.raises(CompactedRevisionError):
            await c.get("k", revision=1)
    async with Client([await servers(too_many)], timeout=5) as c:
        with pytest.raises(EtcdServerError) as info:
            await c.put("k", "v")
    assert info.value.code == "INVALID_ARGUMENT"
    assert str(info.value) == "etcdserver: too many operations in txn request"
    assert too_many.calls == ["Put"]


async def test_round_robin_spreads_reads(servers: Any) -> None:
    kvs = [FakeKV(f"m{i}") for i in range(3)]
    eps = [await servers(kv) for kv in kvs]
    async with Client(eps, timeout=5) as c:
        for _ in range(6):
            await c.get("k")
    assert [len(kv.calls) for kv in kvs] == [2, 2, 2]
