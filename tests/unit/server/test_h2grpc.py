"""The client port's own gRPC engine (server/h2grpc) answers as grpcio's server does: each test
runs the same calls, from grpcio's client, against both engines serving the same method table.
The raw HTTP/2 tests at the end speak frames to it directly."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio
import hpack
import pytest

from minietcd.api.etcdserverpb import rpc_pb2
from minietcd.golang import put_uvarint
from minietcd.server.h2grpc import frames
from minietcd.server.h2grpc.call import parse_timeout
from minietcd.server.h2grpc.server import H2GrpcServer
from minietcd.server.v3rpc.services import MethodTable

MAX_RECEIVE = 2 << 20
RANGE = rpc_pb2.RangeRequest.SerializeToString
CHUNK = 64 << 10


class KV:
    def __init__(self) -> None:
        self.cancelled = asyncio.Event()
        self.ranging = asyncio.Event()

    async def Put(self, request: rpc_pb2.PutRequest, context: Any) -> rpc_pb2.PutResponse:
        if not request.key:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: key is not provided")
        if request.key == b"boom":
            raise RuntimeError("boom")
        token = dict(context.invocation_metadata()).get("token", "")
        resp = rpc_pb2.PutResponse()
        resp.header.revision = len(request.value)
        resp.prev_kv.key = token.encode()
        return resp

    async def Range(self, request: rpc_pb2.RangeRequest, context: Any) -> rpc_pb2.RangeResponse:
        self.ranging.set()
        try:
            await asyncio.sleep(30)  # outlives the client's deadline
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        return rpc_pb2.RangeResponse()


class Maintenance:
    async def Snapshot(self, request: rpc_pb2.SnapshotRequest, context: Any) -> AsyncIterator[Any]:
        for i in range(128):  # 8 MiB: many times every flow-control window
            yield rpc_pb2.SnapshotResponse(blob=bytes([i]) * CHUNK, remaining_bytes=127 - i)


class Lease:
    async def LeaseKeepAlive(self, requests: AsyncIterator[Any], context: Any) -> AsyncIterator[Any]:
        async for req in requests:
            yield rpc_pb2.LeaseKeepAliveResponse(ID=req.ID, TTL=req.ID * 2)


def table() -> tuple[MethodTable, KV]:
    t = MethodTable()
    kv = KV()
    services = rpc_pb2.DESCRIPTOR.services_by_name
    t.add_service(services["KV"], kv)
    t.add_service(services["Maintenance"], Maintenance())
    t.add_service(services["Lease"], Lease())
    return t, kv


@pytest.fixture(params=["grpcio", "h2grpc"])
async def served(request: pytest.FixtureRequest) -> AsyncIterator[tuple[grpc.aio.Channel, KV]]:
    t, kv = table()
    if request.param == "grpcio":
        srv = grpc.aio.server(options=[("grpc.max_receive_message_length", MAX_RECEIVE)])
        srv.add_generic_rpc_handlers((t,))
        port = srv.add_insecure_port("127.0.0.1:0")
        await srv.start()
        close: Any = lambda: srv.stop(None)  # noqa: E731
    else:
        engine = H2GrpcServer(t, MAX_RECEIVE)
        listener = await asyncio.get_running_loop().create_server(engine.protocol, "127.0.0.1", 0)
        port = listener.sockets[0].getsockname()[1]

        async def close() -> None:
            engine.close()
            listener.close()
            await listener.wait_closed()

    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield channel, kv
    finally:
        await channel.close()
        await close()


async def status_of(call: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return info.value.code(), info.value.details() or ""


def put(channel: grpc.aio.Channel) -> Any:
    return channel.unary_unary(
        "/etcdserverpb.KV/Put",
        request_serializer=rpc_pb2.PutRequest.SerializeToString,
        response_deserializer=rpc_pb2.PutResponse.FromString,
    )


async def test_unary_calls_and_metadata(served: Any) -> None:
    channel, _ = served
    resp = await put(channel)(rpc_pb2.PutRequest(key=b"k", value=b"12345"), metadata=[("token", "abc")])
    assert resp.header.revision == 5 and resp.prev_kv.key == b"abc"
    # many at once, on one connection
    calls = [put(channel)(rpc_pb2.PutRequest(key=b"k", value=b"x" * i)) for i in range(200)]
    many = await asyncio.gather(*calls)
    assert [r.header.revision for r in many] == list(range(200))


async def test_abort_gives_the_code_and_message(served: Any) -> None:
    channel, _ = served
    code, details = await status_of(put(channel)(rpc_pb2.PutRequest(value=b"v")))
    assert (code, details) == (grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: key is not provided")


async def test_an_unexpected_error_is_unknown(served: Any) -> None:
    channel, _ = served
    code, _details = await status_of(put(channel)(rpc_pb2.PutRequest(key=b"boom")))
    assert code == grpc.StatusCode.UNKNOWN


async def test_unknown_methods(served: Any) -> None:
    channel, _ = served
    code, _ = await status_of(channel.unary_unary("/etcdserverpb.KV/Nope")(b""))
    assert code == grpc.StatusCode.UNIMPLEMENTED
    code, _ = await status_of(channel.unary_unary("/nope.Nope/Nope")(b""))
    assert code == grpc.StatusCode.UNIMPLEMENTED


async def test_a_request_over_the_limit(served: Any) -> None:
    channel, _ = served
    too_large = rpc_pb2.PutRequest(key=b"k", value=b"v" * (MAX_RECEIVE + 1))
    code, details = await status_of(put(channel)(too_large))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "larger than max" in details
    # the connection still serves, and a request just under the limit passes
    resp = await put(channel)(rpc_pb2.PutRequest(key=b"k", value=b"v" * (MAX_RECEIVE - 64)))
    assert resp.header.revision == MAX_RECEIVE - 64


async def test_deadline_cancels_the_handler(served: Any) -> None:
    channel, kv = served
    rng = channel.unary_unary("/etcdserverpb.KV/Range", request_serializer=RANGE)
    code, _ = await status_of(rng(rpc_pb2.RangeRequest(key=b"k"), timeout=0.2))
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED
    await asyncio.wait_for(kv.cancelled.wait(), 5)


async def test_client_cancel_cancels_the_handler(served: Any) -> None:
    channel, kv = served
    rng = channel.unary_unary("/etcdserverpb.KV/Range", request_serializer=RANGE)
    call = rng(rpc_pb2.RangeRequest(key=b"k"))
    await asyncio.wait_for(kv.ranging.wait(), 5)
    call.cancel()
    await asyncio.wait_for(kv.cancelled.wait(), 5)


async def test_a_large_response_stream_respects_flow_control(served: Any) -> None:
    channel, _ = served
    snap = channel.unary_stream(
        "/etcdserverpb.Maintenance/Snapshot",
        request_serializer=rpc_pb2.SnapshotRequest.SerializeToString,
        response_deserializer=rpc_pb2.SnapshotResponse.FromString,
    )
    blobs = [r.blob async for r in snap(rpc_pb2.SnapshotRequest())]
    assert [b[0] for b in blobs] == list(range(128)) and all(len(b) == CHUNK for b in blobs)


async def test_a_bidirectional_stream(served: Any) -> None:
    channel, _ = served
    keep = channel.stream_stream(
        "/etcdserverpb.Lease/LeaseKeepAlive",
        request_serializer=rpc_pb2.LeaseKeepAliveRequest.SerializeToString,
        response_deserializer=rpc_pb2.LeaseKeepAliveResponse.FromString,
    )
    call = keep()
    for i in range(1, 301):
        await call.write(rpc_pb2.LeaseKeepAliveRequest(ID=i))
        assert 2 * i == (await call.read()).TTL
    await call.done_writing()
    assert await call.code() == grpc.StatusCode.OK


def decode(block: bytes) -> list[tuple[str, str]]:
    return [(str(k), str(v)) for k, v in hpack.Decoder(max_header_list_size=1 << 20).decode(block)]


def test_timeouts_and_header_blocks() -> None:
    assert parse_timeout(b"5S") == 5.0 and parse_timeout(b"4999m") == pytest.approx(4.999)
    assert parse_timeout(b"") is None and parse_timeout(b"5x") is None
    assert parse_timeout(b"123456789S") is None  # gRPC allows at most 8 digits
    message = "ünïcode % and a long line " * 20
    decoded = decode(frames.RESPONSE_HEADERS + frames.status_block(3, message))
    assert decoded[:2] == [(":status", "200"), ("content-type", "application/grpc")]
    assert decoded[2] == ("grpc-status", "3")
    from urllib.parse import unquote

    assert unquote(decoded[3][1]) == message
    for n in (0, 14, 15, 16, 127, 128, 300, 70000):
        assert decode(frames.literal(b"x", b"y" * n)) == [("x", "y" * n)]


# -- raw HTTP/2 ---------------------------------------------------------------------------------


@pytest.fixture
async def raw() -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    t, _ = table()
    engine = H2GrpcServer(t, MAX_RECEIVE)
    listener = await asyncio.get_running_loop().create_server(engine.protocol, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port, family=socket.AF_INET)
    try:
        yield reader, writer
    finally:
        writer.close()
        engine.close()
        listener.close()


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, int, int, bytes]:
    head = await asyncio.wait_for(reader.readexactly(9), 5)
    length = int.from_bytes(head[:3], "big")
    payload = await reader.readexactly(length)
    return head[3], head[4], int.from_bytes(head[5:9], "big"), payload


async def frames_until(reader: asyncio.StreamReader, ftype: int) -> tuple[int, int, int, bytes]:
    for _ in range(20):
        f = await read_frame(reader)
        if f[0] == ftype:
            return f
    raise AssertionError(f"no frame of type {ftype}")


async def test_settings_ping_and_a_call_in_frames(raw: Any) -> None:
    reader, writer = raw
    writer.write(frames.PREFACE + frames.settings({}) + frames.frame(frames.Type.PING, 0, 0, b"12345678"))
    ping = await frames_until(reader, frames.Type.PING)
    assert ping[1] == frames.Flag.ACK and ping[3] == b"12345678"
    enc = hpack.Encoder()
    block = enc.encode(
        [(":method", "POST"), (":scheme", "http"), (":path", "/etcdserverpb.KV/Put"), (":authority", "x"),
         ("content-type", "application/grpc"), ("te", "trailers")]
    )  # fmt: skip
    msg = rpc_pb2.PutRequest(key=b"k", value=b"abc").SerializeToString()
    # the header block split over HEADERS and CONTINUATION, the message padded
    writer.write(
        frames.frame(frames.Type.HEADERS, 0, 1, block[:5])
        + frames.frame(frames.Type.CONTINUATION, frames.Flag.END_HEADERS, 1, block[5:])
        + frames.frame(
            frames.Type.DATA, frames.Flag.END_STREAM | frames.Flag.PADDED, 1,
            b"\x03" + frames.message_prefix(len(msg)) + msg + b"\x00\x00\x00",
        )
    )  # fmt: skip
    data = await frames_until(reader, frames.Type.DATA)
    assert rpc_pb2.PutResponse.FromString(data[3][5:]).header.revision == 3
    trailers = await frames_until(reader, frames.Type.HEADERS)
    assert trailers[1] & frames.Flag.END_STREAM
    assert ("grpc-status", "0") in decode(trailers[3])


async def test_a_protocol_error_is_goaway(raw: Any) -> None:
    reader, writer = raw
    writer.write(frames.PREFACE + frames.frame(frames.Type.DATA, 0, 7, b"x"))  # DATA on an idle stream
    goaway = await frames_until(reader, frames.Type.GOAWAY)
    assert int.from_bytes(goaway[3][4:8], "big") == frames.ErrorCode.PROTOCOL_ERROR
    assert await asyncio.wait_for(reader.read(), 5) == b""  # and the connection is closed


async def test_not_http2_is_closed(raw: Any) -> None:
    reader, writer = raw
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    goaway = await frames_until(reader, frames.Type.GOAWAY)
    assert int.from_bytes(goaway[3][4:8], "big") == frames.ErrorCode.PROTOCOL_ERROR


def test_the_header_decoder_decodes_as_hpack_does() -> None:
    """Seeded blocks from the hpack package's encoder (indexed, incrementally indexed, never
    indexed, Huffman or not, table size changes that evict), decoded in step by hpack and by our
    HeaderDecoder: the same pairs every time, so both keep the same dynamic table."""
    import random

    from minietcd.server.h2grpc.headers import HeaderDecoder

    enc, ref, mine = hpack.Encoder(), hpack.Decoder(), HeaderDecoder(1 << 20)
    names = [":method", ":path", "content-type", "grpc-timeout", "user-agent", "token", "te", "x-y"]
    rng = random.Random(7)
    for _ in range(3000):
        if rng.random() < 0.05:
            enc.header_table_size = rng.choice([0, 64, 256, 4096])
        fields: list[Any] = []
        for _ in range(rng.randrange(1, 9)):
            name = rng.choice(names)
            noise = rng.randbytes(rng.randrange(90)).hex()
            value = rng.choice(["POST", "/a/b", f"{rng.randrange(10**6)}m", noise])
            if rng.random() < 0.2:
                value = "".join(chr(rng.randrange(32, 127)) for _ in range(rng.randrange(40)))
            fields.append(hpack.NeverIndexedHeaderTuple(name, value) if rng.random() < 0.3 else (name, value))
        block = enc.encode(fields, huffman=rng.random() < 0.5)
        assert mine.decode(block) == [(bytes(k), bytes(v)) for k, v in ref.decode(block, raw=True)]


@pytest.mark.parametrize(
    "block",
    [
        b"\xff\xff\xff\xff\x7f",  # an index far past both tables
        b"\x80",  # index 0
        b"\x00\x81\xff",  # a name that is one byte of Huffman padding, too long
        b"\x00\x01x\x85\xff\xff\xff\xff\xff",  # a value holding EOS (30 ones)
        b"\x00\x01x\x05ab",  # a string past the end of the block
        b"\x3f\xe2\x1f",  # a table size update to 4,097
        b"\x82\x20",  # a table size update after a field
        b"\x00\x01x\x81\x00",  # Huffman padding that is not all ones
    ],
)
def test_the_header_decoder_refuses_bad_blocks(block: bytes) -> None:
    from minietcd.server.h2grpc.headers import HeaderDecoder, HPACKError

    with pytest.raises(HPACKError):
        HeaderDecoder(1 << 20).decode(block)


def test_every_byte_through_huffman() -> None:
    from minietcd.server.h2grpc.headers import HeaderDecoder

    value = bytes(range(256)) * 2
    block = hpack.Encoder().encode([(b"x", value)], huffman=True)
    assert HeaderDecoder(1 << 20).decode(block) == [(b"x", value)]


async def test_hostile_frames_end_only_their_connection(caplog: pytest.LogCaptureFixture) -> None:
    """Seeded random frames (any type, flags, stream, payload; valid and broken header blocks):
    the engine answers or drops each connection, never raises into the loop, and still serves."""
    import random

    loop = asyncio.get_running_loop()
    escaped: list[object] = []
    loop.set_exception_handler(lambda _loop, ctx: escaped.append(ctx))
    t, _ = table()
    engine = H2GrpcServer(t, MAX_RECEIVE)
    listener = await loop.create_server(engine.protocol, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    rng = random.Random(11)
    enc = hpack.Encoder()
    good = enc.encode([(":path", "/etcdserverpb.KV/Put"), ("content-type", "application/grpc")])
    try:
        for _ in range(60):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            out = frames.PREFACE
            for _ in range(rng.randrange(1, 12)):
                noise = rng.randbytes(rng.randrange(0, 40))
                payload = rng.choice([noise, good, b"\x00\x00\x00\x00\x07" + b"x" * 7])
                ftype, flags = rng.randrange(0, 12), rng.randrange(0, 256)
                out += frames.frame(ftype, flags, rng.choice([0, 1, 2, 3, 5, 2**31 - 1]), payload)
            writer.write(out)
            with contextlib.suppress(ConnectionError, asyncio.TimeoutError):
                await asyncio.wait_for(reader.read(1 << 16), 0.2)
            writer.close()
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        resp = await put(channel)(rpc_pb2.PutRequest(key=b"k", value=b"ok"))
        assert resp.header.revision == 2
        await channel.close()
    finally:
        engine.close()
        listener.close()
    assert escaped == []
    assert not [r for r in caplog.records if r.exc_info is not None and r.levelno >= logging.WARNING]


# -- what a review found (each failed before its fix) -------------------------------------------


def request_block(enc: hpack.Encoder, path: str, *extra: tuple[str, str]) -> bytes:
    return enc.encode([(":method", "POST"), (":scheme", "http"), (":path", path), (":authority", "x"),
                       ("content-type", "application/grpc"), ("te", "trailers"), *extra])  # fmt: skip


def grpc_message(m: Any) -> bytes:
    raw: bytes = m.SerializeToString()
    return frames.message_prefix(len(raw)) + raw


PUT_PATH = "/etcdserverpb.KV/Put"
PUT = grpc_message(rpc_pb2.PutRequest(key=b"k"))


async def frames_for(reader: asyncio.StreamReader, seconds: float) -> list[tuple[int, int, int, bytes]]:
    out = []
    with contextlib.suppress(asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError):
        while True:
            head = await asyncio.wait_for(reader.readexactly(9), seconds)
            payload = await reader.readexactly(int.from_bytes(head[:3], "big"))
            out.append((head[3], head[4], int.from_bytes(head[5:9], "big"), payload))
    return out


def statuses(got: list[tuple[int, int, int, bytes]], stream: int) -> dict[str, str]:
    ends = frames.Flag.END_STREAM
    blocks = [f[3] for f in got if f[0] == frames.Type.HEADERS and f[2] == stream and f[1] & ends]
    assert blocks, f"no trailers on stream {stream}"
    return dict(decode(blocks[-1]))


async def test_padding_is_given_back_to_the_stream(raw: Any) -> None:
    """Padded DATA on an open stream: the stream's window comes back, padding included."""
    reader, writer = raw
    from minietcd.server.h2grpc.connection import STREAM_WINDOW

    block = request_block(hpack.Encoder(), "/etcdserverpb.Lease/LeaseKeepAlive")
    out = frames.PREFACE + frames.settings({})
    out += frames.frame(frames.Type.HEADERS, frames.Flag.END_HEADERS, 1, block)
    only_padding = b"\xff" + b"\x00" * 255  # pad length 255, no data
    for _ in range(STREAM_WINDOW // 2 // 256 + 2):
        out += frames.frame(frames.Type.DATA, frames.Flag.PADDED, 1, only_padding)
    writer.write(out)
    got = await frames_for(reader, 0.5)
    assert any(f[0] == frames.Type.WINDOW_UPDATE and f[2] == 1 for f in got), "no WINDOW_UPDATE for stream 1"


async def test_a_request_stream_is_given_window_only_as_it_is_read(raw: Any) -> None:
    """A handler that cannot answer (the client's window for answers is 0) reads no more: the
    client gets no stream window beyond the first, however much it sends."""
    reader, writer = raw
    enc = hpack.Encoder()
    keepalive = grpc_message(rpc_pb2.LeaseKeepAliveRequest(ID=1))
    out = frames.PREFACE + frames.settings({frames.Setting.INITIAL_WINDOW_SIZE: 0})
    out += frames.frame(frames.Type.HEADERS, frames.Flag.END_HEADERS, 1,
                        request_block(enc, "/etcdserverpb.Lease/LeaseKeepAlive"))  # fmt: skip
    out += frames.frame(frames.Type.DATA, 0, 1, keepalive * 1200)  # 1,200 requests in one frame
    writer.write(out)
    got = await frames_for(reader, 0.5)
    assert not [f for f in got if f[0] == frames.Type.WINDOW_UPDATE and f[2] == 1]


async def test_header_amplification_is_refused_and_the_connection_lives(raw: Any) -> None:
    reader, writer = raw
    enc = hpack.Encoder()
    big = "x" * 3000
    first = request_block(enc, "/etcdserverpb.KV/Put", ("x-big", big))  # adds x-big to the table
    index = bytes([0x80 | 62])  # the newest dynamic entry: x-big
    bomb = request_block(enc, "/etcdserverpb.KV/Put") + index * 50  # 150 KB of headers from 50 bytes
    writer.write(
        frames.PREFACE + frames.settings({})
        + frames.frame(frames.Type.HEADERS, frames.Flag.END_HEADERS, 1, first)
        + frames.frame(frames.Type.DATA, frames.Flag.END_STREAM, 1, PUT)
        + frames.frame(frames.Type.HEADERS, frames.Flag.END_HEADERS | frames.Flag.END_STREAM, 3, bomb)
        + frames.frame(frames.Type.HEADERS, frames.Flag.END_HEADERS, 5, request_block(enc, PUT_PATH))
        + frames.frame(frames.Type.DATA, frames.Flag.END_STREAM, 5, PUT)
    )  # fmt: skip
    got = await frames_for(reader, 0.5)
    assert statuses(got, 1)["grpc-status"] == "0"
    assert statuses(got, 3)["grpc-status"] == str(grpc.StatusCode.RESOURCE_EXHAUSTED.value[0])
    assert statuses(got, 5)["grpc-status"] == "0"  # the table stayed in step


@pytest.mark.parametrize(
    ("extra", "code"),
    [
        ((("content-type", "application/grpcfoo"),), grpc.StatusCode.INTERNAL),
        ((("grpc-timeout", "soon"),), grpc.StatusCode.INTERNAL),
        ((), grpc.StatusCode.OK),
    ],
)
async def test_requests_grpc_go_refuses(raw: Any, extra: tuple[tuple[str, str], ...], code: Any) -> None:
    reader, writer = raw
    enc = hpack.Encoder()
    fields = [(":method", "POST"), (":path", "/etcdserverpb.KV/Put"), ("content-type", "application/grpc")]
    fields = [f for f in fields if f[0] not in dict(extra)] + list(extra)
    writer.write(
        frames.PREFACE + frames.settings({})
        + frames.frame(frames.Type.HEADERS, frames.Flag.END_HEADERS, 1, enc.encode(fields))
        + frames.frame(frames.Type.DATA, frames.Flag.END_STREAM, 1, PUT)
    )  # fmt: skip
    assert statuses(await frames_for(reader, 0.5), 1)["grpc-status"] == str(code.value[0])


@pytest.mark.parametrize(
    "bad",
    [
        frames.settings({frames.Setting.MAX_FRAME_SIZE: 0}),
        frames.frame(frames.Type.PING, 0, 0, b"short"),
        frames.frame(frames.Type.PING, 0, 1, b"12345678"),
        frames.window_update(0, 0),
        frames.window_update(0, 2**31 - 1),  # the window overflows
        frames.rst_stream(9, frames.ErrorCode.CANCEL),  # an idle stream
    ],
)
async def test_frames_that_break_the_rules_end_the_connection(raw: Any, bad: bytes) -> None:
    reader, writer = raw
    writer.write(frames.PREFACE + frames.settings({}) + bad)
    got = await frames_for(reader, 0.5)
    assert [f for f in got if f[0] == frames.Type.GOAWAY]


async def test_graceful_stop_waits_for_open_calls_and_no_longer() -> None:
    t, kv = table()
    engine = H2GrpcServer(t, MAX_RECEIVE)
    listener = await asyncio.get_running_loop().create_server(engine.protocol, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        await put(channel)(rpc_pb2.PutRequest(key=b"k", value=b"v"))  # one call done: not drained yet
        rng = channel.unary_unary("/etcdserverpb.KV/Range", request_serializer=RANGE)
        call = rng(rpc_pb2.RangeRequest(key=b"k"))
        await asyncio.wait_for(kv.ranging.wait(), 5)
        loop = asyncio.get_running_loop()
        started = loop.time()
        stopping = asyncio.ensure_future(engine.stop(grace=0.5))
        await asyncio.sleep(0.2)
        assert not stopping.done()  # the Range is still open: the stop waits
        await stopping
        assert loop.time() - started >= 0.45
        await asyncio.wait_for(kv.cancelled.wait(), 5)  # then the call is cut
        call.cancel()
    finally:
        await channel.close()
        listener.close()


async def test_a_request_stream_message_larger_than_its_window(served: Any) -> None:
    """A streamed request larger than the stream's window still arrives (its bytes are given
    back as they come, since it cannot be read before it is whole)."""
    channel, _ = served
    keep = channel.stream_stream(
        "/etcdserverpb.Lease/LeaseKeepAlive", response_deserializer=rpc_pb2.LeaseKeepAliveResponse.FromString
    )
    big = 600 << 10  # an unknown field (15, bytes) of 600 KiB beside ID=7: parsed, kept, ignored
    request = b"\x08\x07" + b"\x7a" + put_uvarint(big) + b"u" * big
    call = keep()
    await asyncio.wait_for(call.write(request), 10)
    assert (await asyncio.wait_for(call.read(), 10)).TTL == 14
    await call.done_writing()

