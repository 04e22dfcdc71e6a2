"""Bytes on the client port that are not the request they claim to be get grpc-go's answer
(INTERNAL, "grpc: error unmarshalling request: ...") and one short log line (v3rpc/decode.py).
Real etcd's answers are compared in tests/cluster (test_fuzz.py, test_failsafe.py)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio
import pytest

from minietcd.api.etcdserverpb import rpc_pb2
from minietcd.api.etcdserverpb import rpc_pb2_grpc as _rpc_grpc
from minietcd.server.nesting import MAX_TXN_NESTING
from minietcd.server.v3rpc.services import MethodTable
from tests.cluster.wire import nested_txn

rpc_pb2_grpc: Any = _rpc_grpc
GARBAGE = b"\xff\xff\xff"


class KV(rpc_pb2_grpc.KVServicer):  # type: ignore[misc]  # generated servicer bases are untyped
    def __init__(self) -> None:
        self.seen: list[object] = []

    async def Put(self, request: rpc_pb2.PutRequest, context: Any) -> rpc_pb2.PutResponse:
        self.seen.append(request)
        return rpc_pb2.PutResponse()

    async def Txn(self, request: rpc_pb2.TxnRequest, context: Any) -> rpc_pb2.TxnResponse:
        self.seen.append(request)
        return rpc_pb2.TxnResponse(succeeded=True)


class Watch(rpc_pb2_grpc.WatchServicer):  # type: ignore[misc]  # generated servicer bases are untyped
    async def Watch(self, requests: AsyncIterator[rpc_pb2.WatchRequest], context: Any) -> AsyncIterator[Any]:
        async for req in requests:
            yield rpc_pb2.WatchResponse(watch_id=req.create_request.start_revision)


class Maintenance(rpc_pb2_grpc.MaintenanceServicer):  # type: ignore[misc]  # generated servicer bases are untyped
    async def Snapshot(self, request: rpc_pb2.SnapshotRequest, context: Any) -> AsyncIterator[Any]:
        yield rpc_pb2.SnapshotResponse(blob=b"x")


@pytest.fixture
async def server() -> AsyncIterator[tuple[grpc.aio.Channel, KV]]:
    srv = grpc.aio.server()
    kv = KV()
    table = MethodTable()  # each method is guarded
    services = rpc_pb2.DESCRIPTOR.services_by_name
    table.add_service(services["KV"], kv)
    table.add_service(services["Watch"], Watch())
    table.add_service(services["Maintenance"], Maintenance())
    srv.add_generic_rpc_handlers((table,))
    port = srv.add_insecure_port("127.0.0.1:0")
    await srv.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield channel, kv
    finally:
        await channel.close()
        await srv.stop(None)


async def status_of(call: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return info.value.code(), info.value.details() or ""


async def test_garbage_to_a_unary_method(server: Any, caplog: pytest.LogCaptureFixture) -> None:
    channel, kv = server
    code, details = await status_of(channel.unary_unary("/etcdserverpb.KV/Put")(GARBAGE))
    assert code == grpc.StatusCode.INTERNAL
    assert details.startswith("grpc: error unmarshalling request: Error parsing message with type")
    assert kv.seen == []  # the service never saw it
    lines = [r for r in caplog.records if r.name.startswith("minietcd")]
    assert len(lines) == 1 and lines[0].levelno == logging.WARNING and lines[0].exc_info is None
    assert "/etcdserverpb.KV/Put" in lines[0].getMessage()
    # Nothing of gRPC's own "Exception deserializing request!" traceback either.
    assert not [r for r in caplog.records if r.exc_info is not None]


async def test_garbage_in_a_stream(server: Any) -> None:
    channel, _ = server
    good = rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(key=b"k", start_revision=5))
    call = channel.stream_stream("/etcdserverpb.Watch/Watch")(iter([good.SerializeToString(), GARBAGE]))
    first = rpc_pb2.WatchResponse.FromString(await call.read())
    assert first.watch_id == 5  # what came before the garbage was served
    assert await call.code() == grpc.StatusCode.INTERNAL
    assert (await call.details()).startswith("grpc: failed to unmarshal the received message Error parsing")


async def test_garbage_to_a_server_streaming_method(server: Any) -> None:
    channel, _ = server
    call = channel.unary_stream("/etcdserverpb.Maintenance/Snapshot")(GARBAGE)
    assert await call.code() == grpc.StatusCode.INTERNAL


async def test_valid_requests_pass_and_deep_txns_are_parsed(server: Any) -> None:
    channel, kv = server
    put = rpc_pb2.PutRequest(key=b"k", value=b"v")
    await channel.unary_unary("/etcdserverpb.KV/Put")(put.SerializeToString())
    await channel.unary_unary("/etcdserverpb.KV/Txn")(nested_txn(MAX_TXN_NESTING, b"k"))
    assert kv.seen[0] == put and isinstance(kv.seen[1], rpc_pb2.TxnRequest)
    code, details = await status_of(
        channel.unary_unary("/etcdserverpb.KV/Txn")(nested_txn(MAX_TXN_NESTING + 1, b"k"))
    )
    assert (code, details) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "etcdserver: too many operations in txn request",
    )


def test_the_client_face_serves_every_etcd_method() -> None:
    """All of etcd's v3 methods are in the one generic handler of the client port, each
    guarded, and none is left to gRPC's registered-method path (v3rpc/services.py)."""
    from minietcd.server.v3rpc.services import _SERVICES

    table = MethodTable()
    for service, servicer, _part in _SERVICES:
        table.add_service(service, servicer(None))
    methods = table.methods()
    services = {m.split("/")[1] for m in methods}
    wanted = {"etcdserverpb.KV", "etcdserverpb.Watch", "etcdserverpb.Auth", "v3lockpb.Lock"}
    wanted.add("v3electionpb.Election")
    assert wanted <= services
    pool = rpc_pb2.DESCRIPTOR.pool
    for name in services:  # every method of every service served, from the .proto files
        want = {f"/{name}/{m.name}" for m in pool.FindServiceByName(name).methods}
        assert want <= set(methods), want - set(methods)
    put = table.service(_Details("/etcdserverpb.KV/Put"))
    assert put is not None and put.request_deserializer(GARBAGE).__class__.__name__ == "Undecodable"
    assert table.service(_Details("/etcdserverpb.KV/Nope")) is None


async def test_every_call_through_the_table_is_counted_as_go_grpc_prometheus_counts_it(server: Any) -> None:
    """The grpc_server_* counts (rpcmetrics.py) are kept by the same wrapper as the guard: a
    served call, a refused one, and a stream's messages."""
    from minietcd.server.rpcmetrics import CODE_NAMES, RPC_METRICS

    put, watch = RPC_METRICS.rpc("/etcdserverpb.KV/Put"), RPC_METRICS.rpc("/etcdserverpb.Watch/Watch")
    ok, internal = CODE_NAMES.index("OK"), CODE_NAMES.index("Internal")
    before = (put.started, put.sent, put.handled[ok], put.handled[internal], watch.received, watch.sent)
    channel, _ = server
    await channel.unary_unary("/etcdserverpb.KV/Put")(rpc_pb2.PutRequest(key=b"k").SerializeToString())
    await status_of(channel.unary_unary("/etcdserverpb.KV/Put")(GARBAGE))
    good = rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(key=b"k")).SerializeToString()
    call = channel.stream_stream("/etcdserverpb.Watch/Watch")(iter([good, good]))
    assert len([r async for r in call]) == 2
    after = (put.started, put.sent, put.handled[ok], put.handled[internal], watch.received, watch.sent)
    assert [a - b for a, b in zip(after, before, strict=True)] == [2, 1, 1, 1, 2, 2]


class _Details:
    def __init__(self, method: str) -> None:
        self.method = method
