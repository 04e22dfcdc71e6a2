"""The member's HTTP/1.1 server (minietcd/server/httpserver/) over real sockets on 127.0.0.1,
with handlers of the test's own and clients that misbehave: keep-alive and pipelining, 100-continue,
chunked bodies both ways, HEAD, what net/http refuses (400, 431, 505, 413), clients that go away
or read slowly, WebSockets (wsproto frames the client side), and Shutdown's grace."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import os
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import h11
import pytest
from wsproto.connection import Connection as WsConnection
from wsproto.connection import ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Event, Ping, Pong, TextMessage

from minietcd.server.httpserver import BodyUnreadable, HttpServer, Reply, Request, Response, text_response
from minietcd.server.httpserver.connection import MAX_UNREAD_BODY, HttpConnection
from minietcd.server.tls import self_cert

#: Every wait in these tests is bounded by this (a hang fails instead of blocking the run).
BOUND = 10.0
#: What follows the status line of net/http's answer to a request it refuses (server.go).
REFUSED_HEADERS = b"\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"


@pytest.fixture(autouse=True)
def no_logged_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Bad input is answered, never logged as an error (asyncio's "Fatal error" included);
    a test that expects a handler's error log clears what it expected."""
    caplog.set_level(logging.WARNING)
    yield
    bad = [r for r in caplog.get_records("call") if r.levelno >= logging.WARNING]
    assert not bad, [r.getMessage() for r in bad]


@contextlib.asynccontextmanager
async def serving(handler: Callable[[Request], Awaitable[Reply]]) -> AsyncIterator[tuple[HttpServer, int]]:
    server = HttpServer(handler)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    await server.listen(sock)
    try:
        yield server, port
    finally:
        await server.close(grace=0.5)
        await until(lambda: not server.connections)


async def until(cond: Callable[[], bool], bound: float = BOUND) -> None:
    """Poll ``cond`` until it holds (fail past ``bound`` seconds)."""
    async with asyncio.timeout(bound):
        while not cond():
            await asyncio.sleep(0.005)


@dataclass
class Answer:
    status: int
    reason: str
    headers: dict[str, str]
    body: bytes
    chunks: list[bytes]


class Client:
    """A raw HTTP/1.1 client: writes bytes as given, parses answers itself."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> Client:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 22)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def answer(self, *, head: bool = False) -> Answer:
        async with asyncio.timeout(BOUND):
            raw = await self.reader.readuntil(b"\r\n\r\n")
            line, *fields = raw[:-4].decode("latin-1").split("\r\n")
            _version, status, reason = [*line.split(" ", 2), ""][:3]
            headers = {}
            for f in fields:
                k, _, v = f.partition(":")
                headers[k.strip().lower()] = v.strip()
            code = int(status)
            chunks: list[bytes] = []
            if head or code < 200 or code in (204, 304):
                body = b""
            elif "content-length" in headers:
                body = await self.reader.readexactly(int(headers["content-length"]))
            elif headers.get("transfer-encoding") == "chunked":
                while size := int((await self.reader.readuntil(b"\r\n"))[:-2], 16):
                    chunks.append(await self.reader.readexactly(size))
                    assert await self.reader.readexactly(2) == b"\r\n"
                assert await self.reader.readexactly(2) == b"\r\n"
                body = b"".join(chunks)
            else:
                body = await self.reader.read()
            return Answer(code, reason, headers, body, chunks)

    async def closed(self) -> bool:
        """Whether the server ends the connection (EOF or reset) with nothing more sent."""
        async with asyncio.timeout(BOUND):
            try:
                return await self.reader.read() == b""
            except ConnectionError:
                return True

    async def everything(self) -> bytes:
        async with asyncio.timeout(BOUND):
            return await self.reader.read()

    def close(self) -> None:
        self.writer.close()


def get(path: str = "/", extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: t\r\n{extra}\r\n".encode()


async def echo(request: Request) -> Reply:
    """The method, path and body back, as text."""
    body = await request.read()
    return text_response(200, f"{request.method} {request.path} {body.decode()}")


# -- keep-alive, pipelining, bodies ----------------------------------------------------------------


async def test_two_requests_on_one_keepalive_connection() -> None:
    async with serving(echo) as (server, port):
        c = await Client.open(port)
        for path in ("/a", "/b"):
            await c.send(get(path))
            a = await c.answer()
            assert (a.status, a.reason, a.body) == (200, "OK", f"GET {path} \n".encode())
            assert a.headers["content-type"] == "text/plain; charset=utf-8"
            assert "date" in a.headers and "connection" not in a.headers
        assert len(server.connections) == 1
        c.close()


async def test_pipelined_requests_are_answered_in_order() -> None:
    order: list[str] = []

    async def handler(request: Request) -> Reply:
        order.append(request.path)
        for _ in range(10 if request.path == "/1" else 0):  # the first one takes longest
            await asyncio.sleep(0)
        return await echo(request)

    async with serving(handler) as (_server, port):
        c = await Client.open(port)
        post = b"POST /2 HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc"
        await c.send(get("/1") + post + get("/3") + get("/4", "Connection: close\r\n"))
        bodies = [(await c.answer()).body for _ in range(4)]
        assert bodies == [b"GET /1 \n", b"POST /2 abc\n", b"GET /3 \n", b"GET /4 \n"]
        assert order == ["/1", "/2", "/3", "/4"]
        assert await c.closed()  # after the one that asked for it


async def test_expect_100_continue_is_answered_when_the_handler_reads() -> None:
    async with serving(echo) as (_server, port):
        c = await Client.open(port)
        body = b"x" * 2000  # curl asks first for bodies past 1 KiB
        await c.send(b"PUT /big HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 2000\r\n\r\n")
        go = await c.answer()
        assert (go.status, go.reason) == (100, "Continue")
        await c.send(body)
        a = await c.answer()
        assert a.body == b"PUT /big " + body + b"\n"
        await c.send(get("/next"))  # and the connection goes on
        assert (await c.answer()).body == b"GET /next \n"
        c.close()


async def test_expect_100_continue_unread_closes_after_the_answer() -> None:
    """net/http: a client still waiting for 100 may or may not send its body; the connection
    is not reused (a next request would be read as that body)."""

    async def ignore(request: Request) -> Reply:
        return Response(204)

    async with serving(ignore) as (_server, port):
        c = await Client.open(port)
        await c.send(b"POST / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5000\r\n\r\n")
        a = await c.answer()
        assert a.status == 204 and a.headers["connection"] == "close"
        assert await c.closed()


async def test_chunked_request_body_arrives_piece_by_piece() -> None:
    first = asyncio.Event()
    pieces: list[bytes] = []

    async def handler(request: Request) -> Reply:
        while piece := await request.readany():
            pieces.append(piece)
            first.set()
        return text_response(200, str(len(b"".join(pieces))))

    async with serving(handler) as (_server, port):
        c = await Client.open(port)
        await c.send(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        async with asyncio.timeout(BOUND):
            await first.wait()  # the handler has the first chunk before the rest is sent
        assert pieces == [b"hello"]
        await c.send(b"1;ext=1\r\n \r\n6\r\nworld!\r\n0\r\nTrailer: x\r\n\r\n")
        a = await c.answer()
        assert a.body == b"12\n" and b"".join(pieces) == b"hello world!"
        c.close()


async def test_head_has_headers_and_no_body() -> None:
    async def handler(request: Request) -> Reply:
        return text_response(200, "hello")

    async with serving(handler) as (_server, port):
        c = await Client.open(port)
        await c.send(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n" + get())
        a = await c.answer(head=True)
        assert a.status == 200 and a.headers["content-length"] == "6"
        b = await c.answer()  # no body bytes came between the two
        assert b.body == b"hello\n"
        c.close()


async def test_unread_body_is_dropped_before_the_next_request() -> None:
    async def ignore(request: Request) -> Reply:
        return text_response(200, request.path)

    async with serving(ignore) as (_server, port):
        c = await Client.open(port)
        body = os.urandom(10_000)
        await c.send(b"POST /a HTTP/1.1\r\nHost: t\r\nContent-Length: 10000\r\n\r\n" + body + get("/b"))
        assert (await c.answer()).body == b"/a\n"
        assert (await c.answer()).body == b"/b\n"
        chunked = b"POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
        await c.send(chunked + get("/d"))
        assert (await c.answer()).body == b"/c\n"
        assert (await c.answer()).body == b"/d\n"
        c.close()


async def test_huge_unread_body_closes_the_connection() -> None:
    async def ignore(request: Request) -> Reply:
        return text_response(200, "ok")

    async with serving(ignore) as (server, port):
        c = await Client.open(port)
        size = 4 * MAX_UNREAD_BODY
        await c.send(f"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: {size}\r\n\r\n".encode())
        assert (await c.answer()).status == 200

        async def push() -> None:
            with contextlib.suppress(ConnectionError):
                await c.send(b"x" * size)

        pushing = asyncio.create_task(push())
        assert await c.closed()  # net/http's maxPostHandlerReadBytes: not worth reading on
        pushing.cancel()
        await asyncio.wait([pushing])
        c.close()
        await until(lambda: not server.connections)


async def test_body_past_the_read_limit_is_413() -> None:
    async def small(request: Request) -> Reply:
        return text_response(200, str(len(await request.read(limit=100))))

    async with serving(small) as (_server, port):
        c = await Client.open(port)
        await c.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n" + b"y" * 100)
        assert (await c.answer()).body == b"100\n"
        await c.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n" + b"y" * 1000)
        a = await c.answer()
        assert a.status == 413
        assert a.body == b"http: request body too large (limit 100 bytes)\n"
        await c.send(get())  # the rest of the body was dropped: the connection goes on
        assert (await c.answer()).body == b"0\n"
        c.close()


async def test_absolute_form_target_is_served_by_its_path() -> None:
    async with serving(echo) as (_server, port):
        c = await Client.open(port)
        await c.send(get("http://t:1/a/b?x=1") + get("http://t"))
        assert (await c.answer()).body == b"GET /a/b \n"
        assert (await c.answer()).body == b"GET / \n"
        c.close()


async def test_half_closed_client_is_still_answered() -> None:
    """`printf 'GET ...' | nc -N`: the request and the end arrive together."""
    async with serving(echo) as (server, port):
        for _ in range(5):
            c = await Client.open(port)
            c.writer.write(get("/h") + get("/i"))
            c.writer.write_eof()
            everything = await c.everything()
            assert everything.count(b"HTTP/1.1 200 OK") == 2, everything
            c.close()
        await until(lambda: not server.connections)


# -- what net/http refuses ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_bytes", "answer"),
    [
        (b"\x00\x01garbage\r\n\r\n", b"400 Bad Request"),
        (b"GET\r\n\r\n", b"400 Bad Request"),
        (b"GET / HTTP/1.1\r\nHost: t\r\nBad Header: y\r\n\r\n", b"400 Bad Request"),
        (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n", b"400 Bad Request"),
        (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n", b"400 Bad Request"),
        (b"GET /a%zz HTTP/1.1\r\nHost: t\r\n\r\n", b"400 Bad Request"),
        (b"GET / HTTP/9.9\r\nHost: t\r\n\r\n", b"505 HTTP Version Not Supported"),
    ],
)
async def test_requests_net_http_refuses(request_bytes: bytes, answer: bytes) -> None:
    """The bytes etcd 3.4 (net/http) answers: status and text, no Content-Length, then close."""
    called = False

    async def handler(request: Request) -> Reply:
        nonlocal called
        called = True
        return Response(204)

    async with serving(handler) as (_server, port):
        c = await Client.open(port)
        await c.send(request_bytes)
        assert await c.everything() == b"HTTP/1.1 " + answer + REFUSED_HEADERS + answer
        assert not called
        c.close()


async def test_go_texts_for_a_missing_host_and_an_unknown_transfer_encoding() -> None:
    async with serving(echo) as (_server, port):
        c = await Client.open(port)
        await c.send(b"GET / HTTP/1.1\r\n\r\n")
        text = b"400 Bad Request: missing required Host header"
        assert await c.everything() == b"HTTP/1.1 " + text + REFUSED_HEADERS + text
        c = await Client.open(port)
        await c.send(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n")
        assert await c.everything() == (
            b"HTTP/1.1 501 Not Implemented\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Connection: close\r\n\r\nUnsupported transfer encoding"
        )


@pytest.mark.parametrize("at_once", [True, False])
async def test_oversized_headers_are_431(at_once: bool) -> None:
    async with serving(echo) as (server, port):
        c = await Client.open(port)
        big = b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * ((1 << 20) + 8192) + b"\r\n\r\n"
        if at_once:  # the whole head in the server's buffer before it parses
            c.writer.write(big)
        else:
            with contextlib.suppress(ConnectionError):
                for i in range(0, len(big), 4096):
                    await c.send(big[i : i + 4096])
        text = b"431 Request Header Fields Too Large"
        assert await c.everything() == b"HTTP/1.1 " + text + REFUSED_HEADERS + text
        c.close()
        await until(lambda: not server.connections)
        ok = await Client.open(port)  # just under the limit is served
        await ok.send(b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * ((1 << 20) - 100) + b"\r\n\r\n")
        assert (await ok.answer()).status == 200
        ok.close()


@pytest.mark.parametrize(
    "chunked",
    [b"zz\r\nabc\r\n0\r\n\r\n", b"3\r\nabcXX0\r\n\r\n", b"-1\r\n", b"3 3\r\nabc\r\n0\r\n\r\n"],
)
async def test_bad_chunk_in_a_body_the_handler_reads_is_400_without_a_traceback(chunked: bytes) -> None:
    reached = asyncio.Event()

    async def handler(request: Request) -> Reply:
        reached.set()
        return await echo(request)

    async with serving(handler) as (server, port):
        c = await Client.open(port)
        await c.send(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked)
        everything = await c.everything()
        assert everything.startswith(b"HTTP/1.1 400 Bad Request\r\n"), everything
        assert reached.is_set()
        await until(lambda: not server.connections)
        c = await Client.open(port)  # and the server goes on
        await c.send(get("/ok"))
        assert (await c.answer()).status == 200
        c.close()


async def test_header_values_with_control_characters_still_go_out() -> None:
    """A value made from the request (a redirect's Location from ``/a%0d%0aX: y``): Go writes
    CR and LF as spaces; h11 would refuse the whole answer and the client got nothing."""

    async def redirect(request: Request) -> Reply:
        return Response(301, headers={"Location": request.path})

    async with serving(redirect) as (_server, port):
        c = await Client.open(port)
        await c.send(get("/a%0d%0aX-Evil:%20y%00"))
        a = await c.answer()
        assert a.status == 301 and a.headers["location"] == "/a  X-Evil: y"  # the NUL a space, trimmed
        assert "x-evil" not in a.headers
        c.close()


# -- answers ----------------------------------------------------------------------------------------


async def test_streamed_answer_is_chunked() -> None:
    async def handler(request: Request) -> Reply:
        stream = await request.stream({"Content-Type": "text/event-stream"})
        for line in (b"one\n", b"", b"two\n", b"three\n"):
            await stream.write(line)
        return stream

    async with serving(handler) as (_server, port):
        c = await Client.open(port)
        await c.send(get() + get())
        for _ in range(2):  # and the connection goes on after it
            a = await c.answer()
            assert a.headers["transfer-encoding"] == "chunked"
            assert a.headers["content-type"] == "text/event-stream"
            assert a.chunks == [b"one\n", b"two\n", b"three\n"]
        c.close()


def drop(c: Client, how: str) -> None:
    """End a client's connection: a FIN ("close") or a reset ("reset", SO_LINGER 0)."""
    if how == "reset":
        sock = c.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.writer.transport.abort()


@pytest.mark.parametrize("how", ["close", "reset"])
async def test_client_gone_mid_stream_cancels_its_handler(how: str) -> None:
    streaming = asyncio.Event()
    cancelled = asyncio.Event()

    async def handler(request: Request) -> Reply:
        stream = await request.stream({})
        await stream.write(b"first\n")
        streaming.set()
        try:
            await asyncio.Event().wait()  # a watch with nothing to send
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return stream

    async with serving(handler) as (server, port):
        c = await Client.open(port)
        await c.send(get())
        async with asyncio.timeout(BOUND):
            await streaming.wait()
            await c.reader.readuntil(b"first\n")
        drop(c, how)
        async with asyncio.timeout(BOUND):
            await cancelled.wait()
        await until(lambda: not server.connections)


async def test_handler_that_raises_is_500_and_the_server_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    async def handler(request: Request) -> Reply:
        if request.path == "/boom":
            raise RuntimeError("a handler's bug")
        return text_response(200, "fine")

    async with serving(handler) as (_server, port):
        c = await Client.open(port)
        await c.send(get("/boom") + get("/ok"))
        a = await c.answer()
        assert (a.status, a.body) == (500, b"Internal Server Error\n")
        assert (await c.answer()).body == b"fine\n"  # same connection
        c.close()
    assert [r.getMessage() for r in caplog.records] == ["http: GET /boom: unexpected error"]
    caplog.clear()


async def test_handler_that_raises_mid_stream_ends_the_connection(caplog: pytest.LogCaptureFixture) -> None:
    async def handler(request: Request) -> Reply:
        stream = await request.stream({})
        await stream.write(b"half\n")
        raise RuntimeError("after the status line went out")

    async with serving(handler) as (server, port):
        c = await Client.open(port)
        await c.send(get())
        everything = await c.everything()  # no terminating chunk: the client sees it cut
        assert everything.startswith(b"HTTP/1.1 200 OK\r\n") and not everything.endswith(b"0\r\n\r\n")
        await until(lambda: not server.connections)
    caplog.clear()


async def test_slow_reader_gets_a_large_streamed_answer_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    paused = asyncio.Event()
    pause_writing = HttpConnection.pause_writing

    def spy(self: HttpConnection) -> None:
        paused.set()
        pause_writing(self)

    monkeypatch.setattr(HttpConnection, "pause_writing", spy)
    piece = os.urandom(1 << 16)
    count = 128  # 8 MiB: far past the socket buffers and the transport's high-water mark
    written = 0

    async def handler(request: Request) -> Reply:
        nonlocal written
        stream = await request.stream({})
        for i in range(count):
            await stream.write(struct.pack(">I", i) + piece)
            written += 1
        return stream

    async with serving(handler) as (_server, port):
        c = await Client.open(port)
        await c.send(get())
        async with asyncio.timeout(BOUND):
            await paused.wait()  # the server had to wait for this reader
        assert written < count
        got = hashlib.sha256()
        n = 0
        async with asyncio.timeout(BOUND):
            await c.reader.readuntil(b"\r\n\r\n")
            while size := int((await c.reader.readuntil(b"\r\n"))[:-2], 16):
                data = await c.reader.readexactly(size)
                assert struct.unpack(">I", data[:4])[0] == n
                got.update(data[4:])
                n += 1
                await c.reader.readexactly(2)
        assert n == count and got.digest() == hashlib.sha256(piece * count).digest()
        c.close()


async def test_tls_client_closing_mid_stream_cancels_quietly(tmp_path: Path) -> None:
    """Over TLS the end (close_notify) is the connection's: the stream's handler is cancelled
    and asyncio has no "returning true from eof_received()" warning to log."""
    info = self_cert(tmp_path, ["127.0.0.1"])
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(info.cert_file, info.key_file)
    client_ctx = ssl.create_default_context(cafile=info.cert_file)
    streaming, cancelled = asyncio.Event(), asyncio.Event()

    async def handler(request: Request) -> Reply:
        if request.path == "/plain":
            return text_response(200, f"tls {request.is_tls}")
        stream = await request.stream({})
        await stream.write(b"first\n")
        streaming.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return stream

    server = HttpServer(handler)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    await server.listen(sock, server_ctx)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", sock.getsockname()[1], ssl=client_ctx)
        c = Client(reader, writer)
        await c.send(get("/plain") + get("/stream"))
        assert (await c.answer()).body == b"tls True\n"
        async with asyncio.timeout(BOUND):
            await streaming.wait()
            await reader.readuntil(b"first\n")
        writer.close()  # close_notify, then the end
        async with asyncio.timeout(BOUND):
            await cancelled.wait()
        await until(lambda: not server.connections)
    finally:
        await server.close(grace=0.5)


# -- connections ----------------------------------------------------------------------------------


async def test_many_connections_opened_and_dropped_leave_none() -> None:
    async with serving(echo) as (server, port):
        clients = [await Client.open(port) for _ in range(60)]
        for i, c in enumerate(clients):
            kind = i % 4
            if kind == 1:
                c.writer.write(b"GET / HTTP/1.1\r\nHost:")  # half a head
            elif kind == 2:
                c.writer.write(get() * 3)  # answers nobody reads
            elif kind == 3:
                c.writer.write(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nabc")  # half a body
        await until(lambda: len(server.connections) == 60)
        for i, c in enumerate(clients):
            if i % 2:
                c.writer.transport.abort()
            else:
                c.close()
        await until(lambda: not server.connections)


async def test_close_shuts_idle_connections_at_once_and_waits_for_busy_ones() -> None:
    release = asyncio.Event()
    cancelled: list[str] = []
    started: set[str] = set()

    async def handler(request: Request) -> Reply:
        started.add(request.path)
        if request.path == "/idle":
            return text_response(200, "idle")
        try:
            if request.path == "/finishes":
                await release.wait()
            else:
                await asyncio.Event().wait()  # never done
        except asyncio.CancelledError:
            cancelled.append(request.path)
            raise
        return text_response(200, request.path)

    server = HttpServer(handler)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    port = sock.getsockname()[1]
    await server.listen(sock)
    idle, finishes, stuck, fresh = [await Client.open(port) for _ in range(4)]
    await idle.send(get("/idle"))
    assert (await idle.answer()).status == 200
    await finishes.send(get("/finishes"))
    await stuck.send(get("/stuck"))
    await until(lambda: started == {"/idle", "/finishes", "/stuck"} and len(server.connections) == 4)

    closing = asyncio.create_task(server.close(grace=1.0))
    assert await idle.closed() and await fresh.closed()  # at once, not after the grace
    assert not closing.done()
    release.set()
    a = await finishes.answer()
    assert (a.status, a.body) == (200, b"/finishes\n")
    assert a.headers["connection"] == "close"  # net/http: no keep-alive while shutting down
    assert await finishes.closed()
    async with asyncio.timeout(BOUND):
        await closing
    assert cancelled == ["/stuck"]
    assert await stuck.closed()
    await until(lambda: not server.connections)
    with pytest.raises(OSError):
        await Client.open(port)  # no longer listening
    for c in (idle, finishes, stuck, fresh):
        c.close()


async def test_close_drops_a_client_that_stopped_reading() -> None:
    """Past the grace, a stream blocked on a client that reads nothing is dropped, buffered
    bytes and all (a polite close would wait to flush them, forever)."""
    async def handler(request: Request) -> Reply:
        stream = await request.stream({})
        while True:
            await stream.write(b"z" * (1 << 16))

    server = HttpServer(handler)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    await server.listen(sock)
    c = await Client.open(sock.getsockname()[1])
    cast(asyncio.Transport, c.writer.transport).pause_reading()
    await c.send(get())
    conns = server.connections
    await until(lambda: bool(conns) and not any(x._can_write.is_set() for x in conns))
    async with asyncio.timeout(BOUND):
        await server.close(grace=0.1)
    await until(lambda: not server.connections)
    c.writer.transport.abort()


# -- WebSockets -----------------------------------------------------------------------------------


class WsClient:
    """The client side of a WebSocket: a raw handshake, then wsproto frames."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.ws = WsConnection(ConnectionType.CLIENT)
        self.events: list[object] = []

    @classmethod
    async def connect(cls, port: int, version: str = "13", path: str = "/ws") -> tuple[WsClient, Answer]:
        c = await Client.open(port)
        key = base64.b64encode(os.urandom(16)).decode()
        await c.send(
            (
                f"GET {path} HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: {version}\r\n\r\n"
            ).encode()
        )
        a = await c.answer()
        if a.status == 101:
            digest = hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
            assert a.headers["sec-websocket-accept"] == base64.b64encode(digest).decode()
        return cls(c), a

    async def send(self, *events: Event) -> None:
        await self.client.send(b"".join(self.ws.send(e) for e in events))

    async def next(self) -> object:
        """The next event from the server (a whole message, a pong, a close)."""
        async with asyncio.timeout(BOUND):
            while not self.events:
                data = await self.client.reader.read(65536)
                self.ws.receive_data(data or None)
                self.events.extend(self.ws.events())
                if not data and not self.events:
                    return None
        return self.events.pop(0)


async def ws_echo(request: Request) -> Reply:
    """Each message back as text: ``text:...`` or ``bytes:<hex>``, until the client closes."""
    ws = await request.websocket(max_msg_size=1000)
    while (msg := await ws.receive()) is not None:
        await ws.send_str(f"bytes:{msg.hex()}" if isinstance(msg, bytes) else f"text:{msg}")
    return ws


async def test_websocket_messages_fragments_and_ping() -> None:
    async with serving(ws_echo) as (server, port):
        ws, a = await WsClient.connect(port)
        assert (a.status, a.reason) == (101, "Switching Protocols")
        await ws.send(TextMessage(data="héllo"))
        assert (await ws.next()) == TextMessage(data="text:héllo")
        await ws.send(BytesMessage(data=b"\x00\xff"))
        assert (await ws.next()) == TextMessage(data="bytes:00ff")
        # a fragmented message, with a ping between its fragments (control frames may interleave)
        await ws.send(TextMessage(data="frag", message_finished=False), Ping(payload=b"p1"))
        pong = await ws.next()
        assert isinstance(pong, Pong) and pong.payload == b"p1"
        await ws.send(TextMessage(data="ment", message_finished=False), TextMessage(data="ed"))
        assert (await ws.next()) == TextMessage(data="text:fragmented")
        await ws.send(CloseConnection(code=1000))
        close = await ws.next()
        assert isinstance(close, CloseConnection) and close.code == 1000
        assert await ws.client.closed()
        await until(lambda: not server.connections)


async def test_websocket_first_frame_with_the_handshake() -> None:
    """Bytes that came with the upgrade request (h11's trailing data) are the socket's."""
    async with serving(ws_echo) as (_server, port):
        c = await Client.open(port)
        client = WsConnection(ConnectionType.CLIENT)
        head = (
            b"GET / HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        await c.send(head + client.send(TextMessage(data="early")))
        assert (await c.answer()).status == 101
        ws = WsClient(c)
        ws.ws = client
        assert (await ws.next()) == TextMessage(data="text:early")
        c.close()


@pytest.mark.parametrize("text", [True, False])
async def test_websocket_message_past_max_size_closes_1009(text: bool) -> None:
    async with serving(ws_echo) as (server, port):
        ws, _a = await WsClient.connect(port)
        # 400 characters of 3 bytes each: under 1000 characters, over 1000 bytes
        big = TextMessage(data="€" * 400) if text else BytesMessage(data=b"b" * 1001)
        await ws.send(big)
        close = await ws.next()
        assert isinstance(close, CloseConnection) and close.code == 1009
        assert await ws.client.closed()
        await until(lambda: not server.connections)


async def test_websocket_frames_after_the_close_are_dropped_quietly() -> None:
    release = asyncio.Event()

    async def handler(request: Request) -> Reply:
        ws = await request.websocket(max_msg_size=100)
        while await ws.receive() is not None:
            pass
        await release.wait()  # the handler is still busy when the junk comes
        return ws

    async with serving(handler) as (server, port):
        ws, _a = await WsClient.connect(port, path="/slow-close")
        await ws.send(CloseConnection(code=1000))
        reply = await ws.next()
        assert isinstance(reply, CloseConnection)
        # a hostile client: more frames after the closing handshake (masked, as a client's are)
        await ws.client.send(b"\x81\x85\x00\x00\x00\x00hello" * 3)
        release.set()
        assert await ws.client.closed()
        await until(lambda: not server.connections)
        ws2, _a = await WsClient.connect(port)  # garbage instead of frames
        await ws2.client.send(b"\xff" * 64)
        close = await ws2.next()
        assert isinstance(close, CloseConnection) and close.code == 1002  # protocol error
        assert await ws2.client.closed()
        await until(lambda: not server.connections)


async def test_websocket_client_gone_without_a_close_frame_ends_the_handler() -> None:
    outcome: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def handler(request: Request) -> Reply:
        ws = await request.websocket(max_msg_size=100)
        try:
            msg = await ws.receive()
        except asyncio.CancelledError:
            outcome.set_result("cancelled")
            raise
        outcome.set_result(f"received {msg!r}")
        return ws

    async with serving(handler) as (server, port):
        ws, _a = await WsClient.connect(port)
        ws.client.writer.write_eof()  # the end, no close frame
        async with asyncio.timeout(BOUND):
            assert await outcome in ("received None", "cancelled")
        await until(lambda: not server.connections)
        ws.client.close()


async def test_websocket_bad_version_is_400() -> None:
    async with serving(ws_echo) as (_server, port):
        _ws, a = await WsClient.connect(port, version="8")
        assert a.status == 400
        assert a.headers["sec-websocket-version"] == "13"
        assert a.body == b"Bad Request\n"


def test_h11_knows_these_events() -> None:
    """The tests above lean on h11 refusing what they send (a newer h11 could accept more)."""
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(b"GET / HTTP/1.1\r\nHost: t\r\nBad Header: y\r\n\r\n")
    with pytest.raises(h11.RemoteProtocolError):
        conn.next_event()


async def test_trailers_follow_a_chunked_body_for_http_11_and_are_left_out_for_http_10() -> None:
    """As Go's server sends grpc-gateway's trailers: declared in a Trailer header, sent after
    the last chunk; an HTTP/1.0 client (no chunked bodies) gets the body with its length."""

    async def with_trailers(request: Request) -> Reply:
        return Response(404, b'{"code":5}', "application/json", trailers={"Grpc-Trailer-Content-Type": "x/y"})

    async with serving(with_trailers) as (_server, port):
        c = await Client.open(port)
        await c.send(get(extra="Connection: close\r\n"))
        raw = await c.everything()
        head, _, body = raw.partition(b"\r\n\r\n")
        assert b"\r\nTrailer: Grpc-Trailer-Content-Type\r\n" in head
        assert b"\r\nTransfer-Encoding: chunked" in head and b"Content-Length" not in head
        assert body == b'a\r\n{"code":5}\r\n0\r\nGrpc-Trailer-Content-Type: x/y\r\n\r\n'
        c.close()

        c = await Client.open(port)
        await c.send(b"GET / HTTP/1.0\r\n\r\n")
        raw = await c.everything()
        head, _, body = raw.partition(b"\r\n\r\n")
        assert b"Trailer" not in head and b"\r\nContent-Length: 10" in head
        assert body == b'{"code":5}'
        c.close()


async def test_an_http_10_client_gets_an_http_10_status_line_and_no_connection_header() -> None:
    """Go's server answers an HTTP/1.0 request with ``HTTP/1.0`` and, closing after the
    answer, without a ``Connection`` header (etcd 3.4's /version, /health and gateway answers,
    compared by hand); a keep-alive request is closed all the same (h11 keeps no HTTP/1.0
    connection alive), which a client knows from the missing ``Connection: keep-alive``."""

    async def handler(request: Request) -> Reply:
        return text_response(200, "hello")

    async with serving(handler) as (_server, port):
        for extra in (b"", b"Connection: keep-alive\r\n"):
            c = await Client.open(port)
            await c.send(b"GET / HTTP/1.0\r\n" + extra + b"\r\n")
            raw = await c.everything()
            head, _, body = raw.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.0 200 OK\r\n"), head
            assert b"\r\nconnection:" not in head.lower() and b"\r\nContent-Length: 6" in head
            assert body == b"hello\n"
            c.close()


async def test_a_body_that_cannot_be_read_is_the_handlers_to_answer_in_gos_words() -> None:
    """A bad chunk size or a body cut short reach the handler as BodyUnreadable with Go's
    reader's text (etcd's gateway answers it as JSON); the connection closes after."""
    seen: list[str] = []

    async def reader(request: Request) -> Reply:
        try:
            await request.read()
        except BodyUnreadable as e:
            seen.append(str(e))
            return text_response(400, str(e))
        return Response(200)

    async with serving(reader) as (_server, port):
        c = await Client.open(port)
        await c.send(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
        a = await c.answer()
        assert (a.status, a.headers["connection"]) == (400, "close")
        assert a.body == b"invalid byte in chunk length\n"
        assert await c.closed()
        c = await Client.open(port)
        await c.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 50\r\n\r\n{")
        c.writer.write_eof()
        a = await c.answer()
        assert (a.status, a.body) == (400, b"unexpected EOF\n")
        assert seen == ["invalid byte in chunk length", "unexpected EOF"]


async def test_a_websocket_flood_at_a_slow_handler_stops_reading_instead_of_queueing() -> None:
    """Past QUEUE_HIGH_WATER waiting messages the socket is not read (TCP holds the client
    back); once the handler catches up every message arrives, in order."""
    from minietcd.server.httpserver.websocket import QUEUE_HIGH_WATER, WebSocket

    opened: list[WebSocket] = []
    go = asyncio.Event()

    async def slow(request: Request) -> Reply:
        ws = await request.websocket(max_msg_size=1000)
        opened.append(ws)
        await go.wait()
        got = 0
        while (msg := await ws.receive()) is not None:
            assert msg == f"m{got}"
            got += 1
            if got == 300:
                await ws.send_str(f"got {got}")
        return ws

    async with serving(slow) as (_server, port):
        ws, _a = await WsClient.connect(port)
        await ws.send(*(TextMessage(data=f"m{i}") for i in range(300)))
        await until(lambda: bool(opened) and opened[0]._reading_paused)
        assert opened[0]._messages.qsize() <= QUEUE_HIGH_WATER
        go.set()
        assert (await ws.next()) == TextMessage(data="got 300")
        await ws.send(CloseConnection(code=1000))
        assert isinstance(await ws.next(), CloseConnection)
