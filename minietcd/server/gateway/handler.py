"""Serving one gateway request over the member's HTTP server: route, decode, call the API, write JSON.

:class:`Gateway` is grpc-gateway's ``ServeMux`` for the routes of :mod:`.routes`: a POST to a
known path is served; another method on a known path is ``405 Method Not Allowed``; an unknown
path ``404 Not Found`` (grpc-gateway's plain-text answers). A request is served as etcd's
generated handlers do:

* **unary**: the body's first JSON value is the request (undecodable: 400, gRPC code 3), the
  API method answers, the response is one JSON object;
* **server stream** (snapshot, election observe): the same request, then each response as a
  line ``{"result": ...}``;
* **bidirectional stream** (watch, lease keep-alive): every JSON value of the body, as it
  arrives, is the next request (the first undecodable: 500, code 2, as etcd's gateway returns
  the decoder's error unwrapped; a later one ends the requests, as etcd's CloseSend), responses
  as lines ``{"result": ...}``.

The HTTP status of a stream is sent with its first response: an error before it is answered
like a unary error, one after it is a last line ``{"error": {...}}`` (:mod:`.status`).

A WebSocket upgrade on any path is etcd's wsproxy: the client's messages are the body's lines,
each line of the answer goes back as a text message, then the socket closes
(:class:`_WebSocketExchange`; plain HTTP is :class:`_HttpExchange`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final

from google.protobuf.message import Message

from minietcd.errors import GrpcCode, MinietcdError
from minietcd.server.api import Api, RequestContext
from minietcd.server.gateway import jsonpb
from minietcd.server.gateway.gojson import GoJSONError, Incomplete, value_end
from minietcd.server.gateway.routes import BY_PATH, Kind, Route
from minietcd.server.gateway.status import HTTP_STATUS, GatewayStatus, error_body, status_of, stream_error
from minietcd.server.httpserver import BodyUnreadable, Reply, Request, Response, Stream, text_response
from minietcd.server.rpcmetrics import RPC_METRICS, Rpc

if TYPE_CHECKING:  # wsproto is loaded on the first WebSocket only
    from minietcd.server.httpserver.websocket import WebSocket

log = logging.getLogger("minietcd.server.gateway")

JSON: Final = "application/json"
#: grpc-gateway forwards the gRPC server's response headers as Grpc-Metadata-*: etcd's gRPC
#: server sends only its content type.
SERVER_METADATA: Final = {"Grpc-Metadata-Content-Type": "application/grpc"}
#: ... and its trailers as Grpc-Trailer-* (an error's Trailers-Only answer has the content type).
SERVER_TRAILERS: Final = {"Grpc-Trailer-Content-Type": "application/grpc"}
#: etcd's metadata keys (rpctypes/md.go, metadatafields.go) as gateway headers, and the
#: header grpc-gateway passes on as ``authorization`` (etcd's TokenFieldNameSwagger).
HASLEADER_HEADER: Final = "Grpc-Metadata-Hasleader"
TOKEN_HEADER: Final = "Grpc-Metadata-Token"
AUTHORIZATION_HEADER: Final = "Authorization"
#: Read this many bytes of a stream's body at a time.
_CHUNK: Final = 64 * 1024


def request_context(request: Request) -> RequestContext:
    """What the HTTP request says beyond its body, as etcd reads it from the gateway's gRPC
    metadata: ``hasleader``, and the token from ``token`` else ``authorization``."""
    headers = request.headers
    token = headers.get(TOKEN_HEADER) or headers.get(AUTHORIZATION_HEADER) or ""
    return RequestContext(requires_leader=headers.get(HASLEADER_HEADER) == "true", auth_token=token)


class Gateway:
    """etcd 3.4's JSON gateway over one member's application API (see the module docstring)."""

    def __init__(self, api: Api, *, max_request_bytes: int) -> None:
        #: grpc-go refuses a request message larger than this (--max-request-bytes + 512 KiB).
        self.max_request_bytes = max_request_bytes
        #: The most JSON one request may take (base64 is 4/3 of the bytes, plus the JSON around).
        self.body_limit = 2 * max_request_bytes + 64 * 1024
        self._methods: dict[str, Callable[..., Any]] = {}
        #: etcd's gateway calls etcd's gRPC server: its calls are in the gRPC metrics.
        self._rpcs: dict[str, Rpc] = {}
        for route in BY_PATH.values():
            facet = getattr(api, route.facet, None)
            if facet is not None:  # the Auth facet may not exist yet
                self._methods[route.path] = getattr(facet, route.method)
                self._rpcs[route.path] = RPC_METRICS.rpc(f"/{route.grpc_service}/{route.grpc_method}")

    def routes(self) -> list[str]:
        """The paths this gateway serves."""
        return sorted(self._methods)

    async def handle(self, request: Request, path: str) -> Reply:
        """Serve ``path`` (under /v3/, already cleaned and rewritten from /v3beta/), over plain
        HTTP or, for a WebSocket upgrade, over the WebSocket (etcd's wsproxy)."""
        route, method = self._lookup(path)
        ex: _Exchange
        if _is_websocket(request):
            ex = await _WebSocketExchange.accept(request, self.body_limit)
        else:
            ex = _HttpExchange(request, self.body_limit)
            if route is not None and method is not None and request.method != "POST":
                return await ex.text(405, "Method Not Allowed")
        if route is None or method is None:
            return await ex.text(404, "Not Found")
        ctx = request_context(request)
        if route.kind is Kind.BIDI_STREAM:
            return await self._bidi(ex, ctx, route, method)
        try:
            msg = await self._first_request(ex, route)
        except GatewayStatus as e:
            return await self._error(ex, route, e, called=False)
        rpc = self._rpcs[route.path]
        rpc.started += 1
        rpc.received += 1
        if route.kind is Kind.SERVER_STREAM:
            return await self._stream(ex, route, method(ctx, msg))
        try:
            resp = await method(ctx, msg)
        except Exception as e:
            return await self._error(ex, route, e)
        rpc.sent += 1
        rpc.handle(GrpcCode.OK)
        return await ex.reply(200, jsonpb.encode(resp), metadata=True)

    def _lookup(self, path: str) -> tuple[Route | None, Callable[..., Any] | None]:
        # grpc-gateway splits a ":verb" off the last segment; no etcd route has one, so a path
        # with a verb matches nothing, and one with an empty verb ("range:") is the plain path.
        head, _, last = path.rpartition("/")
        if ":" in last:
            idx = last.rindex(":")
            if idx == 0 or idx < len(last) - 1:
                return None, None
            path = f"{head}/{last[:idx]}"
        route = BY_PATH.get(path)
        return route, self._methods.get(path)

    # -- bodies ----------------------------------------------------------------------------------

    async def _first_request(self, ex: _Exchange, route: Route) -> Message:
        """A unary or server-stream call's request: the body's first JSON value (none: empty)."""
        try:
            raw = await ex.values.next()
            msg = jsonpb.decode(raw, route.request)
        except GoJSONError as e:
            raise GatewayStatus(GrpcCode.INVALID_ARGUMENT, str(e), from_server=False) from None
        self._check_size(msg)
        return msg

    def _check_size(self, msg: Message) -> None:
        size = msg.ByteSize()
        if size > self.max_request_bytes:
            raise GatewayStatus(
                GrpcCode.RESOURCE_EXHAUSTED,
                f"grpc: received message larger than max ({size} vs. {self.max_request_bytes})",
            )

    # -- streams ---------------------------------------------------------------------------------

    async def _bidi(
        self, ex: _Exchange, ctx: RequestContext, route: Route, method: Callable[..., Any]
    ) -> Reply:
        values = ex.values
        try:
            first = await values.next()
            first_msg = None if first is None else jsonpb.decode(first, route.request)
            if first_msg is not None:
                self._check_size(first_msg)
        except GoJSONError as e:  # returned unwrapped by etcd's handler: UNKNOWN
            undecodable = GatewayStatus(GrpcCode.UNKNOWN, str(e), from_server=False)
            return await self._error(ex, route, undecodable, called=False)
        except GatewayStatus as e:
            return await self._error(ex, route, e, called=False)

        rpc = self._rpcs[route.path]
        rpc.started += 1

        async def requests() -> AsyncIterator[Message]:
            if first_msg is None:
                return
            rpc.received += 1
            yield first_msg
            while True:
                try:
                    raw = await values.next()
                    if raw is None:
                        return
                    msg = jsonpb.decode(raw, route.request)
                    self._check_size(msg)
                except (GoJSONError, GatewayStatus) as e:
                    log.debug("gateway: %s: failed to decode request: %s", route.path, e)
                    return  # etcd's gateway stops sending (CloseSend); the stream goes on
                rpc.received += 1
                yield msg

        return await self._stream(ex, route, method(ctx, requests()))

    async def _stream(
        self, ex: _Exchange, route: Route, responses: AsyncGenerator[Message, None]
    ) -> Reply:
        rpc = self._rpcs[route.path]
        async with contextlib.aclosing(responses):
            try:
                first = await anext(responses)
            except StopAsyncIteration:
                rpc.handle(GrpcCode.OK)
                await ex.open_stream(metadata=False)
                return await ex.finish()
            except Exception as e:
                return await self._error(ex, route, e)
            await ex.open_stream(metadata=True)
            await ex.line(_line(first))
            rpc.sent += 1
            try:
                async for msg in responses:
                    await ex.line(_line(msg))
                    rpc.sent += 1
            except Exception as e:
                if not isinstance(e, MinietcdError | GatewayStatus):
                    log.error("gateway: %s: unexpected error", route.path, exc_info=e)
                code, text = status_of(e)
                rpc.handle(code)
                await ex.line(jsonpb.dumps(stream_error(code, text)))
                return await ex.finish()
            except asyncio.CancelledError:
                rpc.handle(GrpcCode.CANCELLED)  # the client went away
                raise
            rpc.handle(GrpcCode.OK)
            return await ex.finish()

    # -- errors ----------------------------------------------------------------------------------

    async def _error(
        self, ex: _Exchange, route: Route, exc: BaseException, *, called: bool = True
    ) -> Reply:
        """The error answer; ``called``: the API was called (the call is counted as handled)."""
        if not isinstance(exc, MinietcdError | GatewayStatus):
            log.error("gateway: %s: unexpected error", route.path, exc_info=exc)
        code, text = status_of(exc)
        if called:
            self._rpcs[route.path].handle(code)
        status, _ = HTTP_STATUS[code]
        # grpc-gateway passes on the gRPC server's trailers after an error's body (the
        # Trailers-Only answer's content type): every error but the gateway's own.
        server_said = not isinstance(exc, GatewayStatus) or exc.from_server
        return await ex.reply(status, jsonpb.dumps(error_body(code, text)), trailers=server_said)


def _line(msg: Message) -> bytes:
    return b'{"result":' + jsonpb.encode(msg) + b"}\n"


def _skip_space(data: bytes, i: int = 0) -> int:
    while i < len(data) and data[i] in b" \t\r\n":
        i += 1
    return i


class _JSONValues:
    """Successive JSON values of a request body, each as soon as it has arrived (Go's
    ``json.Decoder`` over the body: ``unexpected EOF`` if the body ends inside one)."""

    def __init__(self, read: Callable[[], Awaitable[bytes]], limit: int) -> None:
        self._read = read  # the next bytes of the body; b"" at its end
        self._limit = limit  # the most bytes one value may take
        self._buf = b""
        self._eof = False

    async def next(self) -> bytes | None:
        """The next value's bytes; None at the end of the body."""
        while True:
            start = _skip_space(self._buf)
            self._buf = self._buf[start:]
            if self._buf:
                try:
                    end = value_end(self._buf)
                    # A number or literal at the end of what has arrived may go on.
                    if end < len(self._buf) or self._eof or self._buf[:1] in (b"{", b"[", b'"'):
                        raw, self._buf = self._buf[:end], self._buf[end:]
                        return raw
                except Incomplete:
                    if self._eof:
                        raise
            elif self._eof:
                return None
            if len(self._buf) > self._limit:  # grpc-go refuses a message this size anyway
                raise GatewayStatus(
                    GrpcCode.RESOURCE_EXHAUSTED,
                    f"grpc: received message larger than max ({len(self._buf)} vs. {self._limit})",
                )
            try:
                chunk = await self._read()
            except BodyUnreadable as e:  # Go's decoder returns its reader's error as its own
                raise GoJSONError(str(e)) from None
            if chunk:
                self._buf += chunk
            else:
                self._eof = True


class _Exchange:
    """One gateway request's transport: where its JSON values come from, where answers go."""

    values: _JSONValues

    async def reply(
        self, status: int, body: bytes, *, metadata: bool = False, trailers: bool = False
    ) -> Reply:
        """A whole answer (a unary response, an error): JSON ``body`` with ``status``; with
        ``metadata`` the server's header metadata, with ``trailers`` its trailer metadata."""
        raise NotImplementedError

    async def text(self, status: int, text: str) -> Reply:
        """grpc-gateway's plain-text answers (404, 405)."""
        raise NotImplementedError

    async def open_stream(self, *, metadata: bool) -> None:
        """The status line of a stream (200), before its first line."""
        raise NotImplementedError

    async def line(self, data: bytes) -> None:
        """One line of a stream: ``{"result": ...}`` or a last ``{"error": ...}``."""
        raise NotImplementedError

    async def finish(self) -> Reply:
        raise NotImplementedError


class _HttpExchange(_Exchange):
    """The request body in, the HTTP response out (a stream is chunked, a line per message)."""

    def __init__(self, request: Request, limit: int) -> None:
        self._request = request
        self.values = _JSONValues(request.readany, limit)
        self._stream: Stream | None = None

    async def reply(
        self, status: int, body: bytes, *, metadata: bool = False, trailers: bool = False
    ) -> Reply:
        return Response(
            status,
            body,
            JSON,
            dict(SERVER_METADATA) if metadata else {},
            trailers=dict(SERVER_TRAILERS) if trailers else {},
        )

    async def text(self, status: int, text: str) -> Reply:
        return text_response(status, text)

    async def open_stream(self, *, metadata: bool) -> None:
        headers = {"Content-Type": JSON, **(SERVER_METADATA if metadata else {})}
        self._stream = await self._request.stream(headers)

    async def line(self, data: bytes) -> None:
        assert self._stream is not None  # opened first
        await self._stream.write(data)

    async def finish(self) -> Reply:
        assert self._stream is not None
        return self._stream


class _WebSocketExchange(_Exchange):
    """etcd's wsproxy (tmc/grpc-websocket-proxy): each message the client sends is a line of
    the request body, each line of the answer is a text message; the socket closes after."""

    def __init__(self, ws: WebSocket, limit: int) -> None:
        self._ws = ws
        self.values = _JSONValues(self._read, limit)

    @classmethod
    async def accept(cls, request: Request, limit: int) -> _WebSocketExchange:
        return cls(await request.websocket(max_msg_size=limit), limit)

    async def _read(self) -> bytes:
        msg = await self._ws.receive()
        if msg is None:
            return b""  # closed: the end of the body
        return (msg.encode() if isinstance(msg, str) else msg) + b"\n"

    async def reply(
        self, status: int, body: bytes, *, metadata: bool = False, trailers: bool = False
    ) -> Reply:
        await self.line(body)
        return await self.finish()

    async def text(self, status: int, text: str) -> Reply:
        return await self.reply(status, text.encode())

    async def open_stream(self, *, metadata: bool) -> None:
        pass

    async def line(self, data: bytes) -> None:
        if not self._ws.closed:
            await self._ws.send_str(data.decode().rstrip("\n"))

    async def finish(self) -> Reply:
        return self._ws


def _is_websocket(request: Request) -> bool:
    """gorilla/websocket's IsWebSocketUpgrade: Connection has "upgrade", Upgrade is websocket."""
    connection = [t.strip().lower() for t in request.headers.get("Connection", "").split(",")]
    return "upgrade" in connection and request.headers.get("Upgrade", "").lower() == "websocket"
