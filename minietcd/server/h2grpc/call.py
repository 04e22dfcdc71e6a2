"""One gRPC call on an HTTP/2 stream: its request messages in, the handler run, its responses and
status out (gRPC's "HTTP/2 protocol" document, and grpc-go's server for the words of errors).

A call gets the handler grpc would call (a ``grpc.RpcMethodHandler``: the same deserializers,
serializers and coroutines the member registers with grpcio, v3rpc/services.py) and a
:class:`Context` with the part of ``grpc.aio.ServicerContext`` the gRPC face uses: ``abort``,
``code``, ``invocation_metadata``, ``auth_context`` and ``peer``.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, NoReturn

import grpc
import grpc.aio

from minietcd.server.h2grpc import frames

if TYPE_CHECKING:
    from minietcd.server.h2grpc.connection import H2Connection

log = logging.getLogger("minietcd.server.h2grpc")

_END = object()  # the client half-closed its stream: no more request messages
#: Headers that are HTTP/2's or gRPC's own, not the call's metadata (as grpc-go strips them).
_NOT_METADATA = frozenset(
    {b"content-type", b"te", b"grpc-timeout", b"grpc-encoding", b"grpc-accept-encoding"}
)
#: grpc-go's words for a compressed message (we accept no grpc-encoding) and a message cut short.
_COMPRESSED = "grpc: compressed flag set with identity or empty encoding"
_TRUNCATED = "grpc: failed to unmarshal the received message unexpected EOF"
#: Longest grpc-message of an unexpected error (the status must fit the client's header limits).
_MAX_MESSAGE = 1024
_TIMEOUT_UNITS = {b"H": 3600.0, b"M": 60.0, b"S": 1.0, b"m": 1e-3, b"u": 1e-6, b"n": 1e-9}


def metadata_of(headers: list[tuple[bytes, bytes]]) -> tuple[tuple[str, str | bytes], ...]:
    """The call's metadata as grpcio gives it: text values as str, ``-bin`` values decoded."""
    out: list[tuple[str, str | bytes]] = []
    for k, v in headers:
        if k.startswith(b":") or k in _NOT_METADATA:
            continue
        key = k.decode("latin-1")
        if key.endswith("-bin"):
            try:
                out.append((key, base64.b64decode(v + b"=" * (-len(v) % 4))))
            except ValueError:  # not base64 (binascii.Error): passed on as it came
                out.append((key, v))
        else:
            out.append((key, v.decode("utf-8", errors="replace")))
    return tuple(out)


def parse_timeout(value: bytes) -> float | None:
    """Seconds of a ``grpc-timeout`` header (``5S``, ``4999m``...), None if malformed."""
    unit = _TIMEOUT_UNITS.get(value[-1:])
    digits = value[:-1]
    if unit is None or not digits.isdigit() or len(digits) > 8:
        return None
    return int(digits) * unit


class Context:
    """What a servicer may ask of its call (see the module docstring)."""

    __slots__ = ("_code", "_details", "_headers", "_metadata", "_peer")

    def __init__(self, headers: list[tuple[bytes, bytes]], peer: str) -> None:
        self._headers = headers  # the decoder's pairs, shared with its table: no copies per call
        self._metadata: tuple[tuple[str, str | bytes], ...] | None = None
        self._peer = peer
        self._code: grpc.StatusCode | None = None
        self._details = ""

    async def abort(self, code: grpc.StatusCode, details: str = "", trailing_metadata: Any = ()) -> NoReturn:
        self._code, self._details = code, details
        raise grpc.aio.AbortError()

    def code(self) -> grpc.StatusCode | None:
        return self._code

    def details(self) -> str:
        return self._details

    def invocation_metadata(self) -> tuple[tuple[str, str | bytes], ...]:
        if self._metadata is None:
            self._metadata = metadata_of(self._headers)
        return self._metadata

    def auth_context(self) -> dict[str, list[bytes]]:
        return {}  # plain connections only: no certificate to name a client

    def peer(self) -> str:
        return self._peer


class Call:
    """A stream's gRPC call, from its request headers to its trailers."""

    __slots__ = (
        "_buffer", "_conn", "_expired", "_handler", "_prepaid", "_requests", "_task", "context",
        "deadline", "finished", "headers_sent", "id", "method", "recv_unacked", "remote_closed",
        "send_window", "window_open",
    )  # fmt: skip

    def __init__(
        self, conn: H2Connection, stream: int, method: str, handler: grpc.RpcMethodHandler, context: Context
    ) -> None:
        self._conn = conn
        self.id = stream
        self.method = method
        self._handler = handler
        self.context = context
        self._buffer = bytearray()
        self._prepaid = 0  # bytes of the message being received whose window was given back
        self._requests: asyncio.Queue[Any] | None = None
        self._task: asyncio.Task[None] | None = None
        self.deadline = 0.0  # the loop's time when grpc-timeout runs out (0: none)
        self._expired = False
        self.remote_closed = False
        self.finished = False
        self.headers_sent = False
        self.send_window = conn.peer_initial_window
        self.recv_unacked = 0  # bytes taken in whose stream window we have not given back yet
        self.window_open: asyncio.Event | None = None  # set when a WINDOW_UPDATE may let us send
        if handler.request_streaming:
            self._requests = asyncio.Queue()
            self._task = conn.loop.create_task(self._run(None))

    # -- requests in ---------------------------------------------------------------------------

    def receive(self, data: bytes, end_stream: bool) -> None:
        """DATA for this call: whole messages go to the handler, the rest waits for more."""
        if self.finished or self.remote_closed:  # data after the client's END_STREAM: ignored
            return
        buf = self._buffer
        buf += data
        while len(buf) >= 5:
            length = int.from_bytes(buf[1:5], "big")
            if length > self._conn.max_receive:
                msg = f"grpc: received message larger than max ({length} vs. {self._conn.max_receive})"
                self.finish(grpc.StatusCode.RESOURCE_EXHAUSTED, msg)
                return
            if buf[0] != 0:
                self.finish(grpc.StatusCode.INTERNAL, _COMPRESSED)
                return
            if len(buf) < 5 + length:
                break
            message = bytes(buf[5 : 5 + length])
            del buf[: 5 + length]
            owed, self._prepaid = 5 + length - self._prepaid, 0
            self._message(message, owed)
            if self.finished:
                return
        if buf and self._requests is not None and len(buf) > self._prepaid:
            # A request stream's message larger than what is left of the window could never
            # complete if its window came back only once it is read: its bytes are given back as
            # they come (a message is at most max_receive), the rest when it is read.
            self._conn.credit(self, len(buf) - self._prepaid)
            self._prepaid = len(buf)
        if end_stream:
            self.remote_closed = True
            if buf:
                self.finish(grpc.StatusCode.INTERNAL, _TRUNCATED)
            elif self._requests is not None:
                self._requests.put_nowait(_END)
            elif self._task is None:
                self.finish(grpc.StatusCode.INTERNAL, "grpc: error unmarshalling request: unexpected EOF")

    def _message(self, raw: bytes, owed: int) -> None:
        try:
            request = self._handler.request_deserializer(raw)
        except Exception as e:  # the method table's deserializers answer instead (decode.py)
            self.finish(grpc.StatusCode.INTERNAL, f"grpc: error unmarshalling request: {e}")
            return
        if self._requests is not None:
            self._requests.put_nowait((request, owed))
        elif self._task is None:
            self._task = self._conn.loop.create_task(self._run(request))
        else:  # a second message on a unary call (grpc-go's words)
            self.finish(grpc.StatusCode.INTERNAL, "grpc: too many messages received for a unary call")

    async def _request_stream(self) -> AsyncIterator[Any]:
        """The request messages, as the handler asks for them. The stream's window is given
        back as each is taken, not as it arrives (grpc-go's way): a client cannot queue more
        than a window ahead of a handler that does not read (Watch's back-pressure counts on it)."""
        queue = self._requests
        assert queue is not None
        while (item := await queue.get()) is not _END:
            request, size = item
            self._conn.credit(self, size)
            yield request

    # -- the handler ---------------------------------------------------------------------------

    @property
    def reads_on_demand(self) -> bool:
        """Is the stream's window given back as the handler reads (request streams)?"""
        return self._requests is not None

    async def _run(self, request: Any) -> None:
        try:
            await self._serve(request)
        finally:
            if not self.finished:  # a failure while answering: never leave the client waiting
                self.finish(grpc.StatusCode.INTERNAL, "grpc: the call ended without a status", in_task=True)

    async def _serve(self, request: Any) -> None:
        h = self._handler
        ctx = self.context
        serialize = h.response_serializer
        try:
            if h.request_streaming:
                source = self._request_stream()
                if h.response_streaming:
                    async for resp in h.stream_stream(source, ctx):
                        await self.send_message(serialize(resp))
                else:
                    await self.send_message(serialize(await h.stream_unary(source, ctx)))
            elif h.response_streaming:
                async for resp in h.unary_stream(request, ctx):
                    await self.send_message(serialize(resp))
            else:
                await self.send_message(serialize(await h.unary_unary(request, ctx)))
        except grpc.aio.AbortError:
            code = ctx.code() or grpc.StatusCode.UNKNOWN
            self.finish(code, ctx.details(), in_task=True)
        except asyncio.CancelledError:
            if self._expired:
                self.finish(grpc.StatusCode.DEADLINE_EXCEEDED, "context deadline exceeded", in_task=True)
            # else: the client reset the stream or went away; nobody to answer
        except Exception as e:
            log.exception("h2grpc: %s failed", self.method)
            self.finish(grpc.StatusCode.UNKNOWN, f"Unexpected {type(e)}: {e}"[:_MAX_MESSAGE], in_task=True)
        else:
            self.finish(grpc.StatusCode.OK, "", in_task=True)

    def expire(self) -> None:
        """The call's deadline has passed (the connection checks)."""
        self._expired = True
        if self._task is not None and not self._task.done():
            self._task.cancel()
        else:
            self.finish(grpc.StatusCode.DEADLINE_EXCEEDED, "context deadline exceeded")

    def cancel(self) -> None:
        """The client reset the stream, or the connection is gone: stop the handler."""
        self.finished = True
        if self._task is not None and not self._task.done():
            self._task.cancel()
        if self.window_open is not None:
            self.window_open.set()

    # -- responses out -------------------------------------------------------------------------

    async def send_message(self, payload: bytes) -> None:
        if self.finished:
            raise asyncio.CancelledError()
        if not self.headers_sent:
            self.headers_sent = True
            self._conn.write(frames.response_headers(self.id))
        await self._conn.send_data(self, frames.message_prefix(len(payload)) + payload)

    def finish(self, code: grpc.StatusCode, message: str, in_task: bool = False) -> None:
        """Send the call's status (trailers) and forget the stream; a handler still running
        (``in_task``: this is not the handler's own end) is cancelled."""
        if self.finished:
            return
        if not isinstance(code, grpc.StatusCode):  # e.g. abort() given a bare int
            code, message = grpc.StatusCode.UNKNOWN, f"a status that is not a StatusCode: {code!r}"
        self.finished = True
        ok = code is grpc.StatusCode.OK
        block = frames.OK_STATUS if ok else frames.status_block(code.value[0], message)
        if not self.headers_sent:  # trailers-only
            block = frames.RESPONSE_HEADERS + block
            self.headers_sent = True
        self._conn.take_pending(self)  # its messages before its trailers
        self._conn.write_headers(self.id, block)
        if not self.remote_closed:  # the client may still be sending: tell it to stop (RFC 9113 8.1)
            self._conn.write(frames.rst_stream(self.id, frames.ErrorCode.NO_ERROR))
        self._conn.forget(self)
        if not in_task and self._task is not None and not self._task.done():
            self._task.cancel()
