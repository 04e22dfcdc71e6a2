"""Serving one gateway request over aiohttp: route, decode, call the API, write JSON.

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
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any, Final

from aiohttp import web
from google.protobuf.message import Message

from minietcd.errors import GrpcCode, MinietcdError
from minietcd.server.api import Api, RequestContext
from minietcd.server.gateway import jsonpb
from minietcd.server.gateway.gojson import GoJSONError, Incomplete, value_end
from minietcd.server.gateway.routes import BY_PATH, Kind, Route
from minietcd.server.gateway.status import HTTP_STATUS, GatewayStatus, error_body, status_of, stream_error
from minietcd.server.rpcmetrics import RPC_METRICS, Rpc

log = logging.getLogger("minietcd.server.gateway")

JSON: Final = "application/json"
#: grpc-gateway forwards the gRPC server's response headers as Grpc-Metadata-*: etcd's gRPC
#: server sends only its content type.
SERVER_METADATA: Final = {"Grpc-Metadata-Content-Type": "application/grpc"}
#: etcd's metadata keys (rpctypes/md.go, metadatafields.go) as gateway headers, and the
#: header grpc-gateway passes on as ``authorization`` (etcd's TokenFieldNameSwagger).
HASLEADER_HEADER: Final = "Grpc-Metadata-Hasleader"
TOKEN_HEADER: Final = "Grpc-Metadata-Token"
AUTHORIZATION_HEADER: Final = "Authorization"
#: Read this many bytes of a stream's body at a time.
_CHUNK: Final = 64 * 1024


def text_response(status: int, text: str) -> web.Response:
    """Go's http.Error: the text and a newline, as plain text, not sniffed."""
    return web.Response(
        status=status,
        text=text + "\n",
        content_type="text/plain",
        charset="utf-8",
        headers={"X-Content-Type-Options": "nosniff"},
    )


def request_context(request: web.Request) -> RequestContext:
    """What the HTTP request says beyond its body, as etcd reads it from the gateway's gRPC
    metadata: ``hasleader``, and the token from ``token`` else ``authorization``."""
    headers = request.headers
    token = headers.get(TOKEN_HEADER) or headers.get(AUTHORIZATION_HEADER) or ""
    peername = request.transport.get_extra_info("peername") if request.transport is not None else None
    peer = ""
    if isinstance(peername, tuple) and len(peername) >= 2:
        host = str(peername[0])
        peer = f"ipv6:[{host}]:{peername[1]}" if ":" in host else f"ipv4:{host}:{peername[1]}"
    return RequestContext(
        requires_leader=headers.get(HASLEADER_HEADER) == "true",
        auth_token=token,
        peer=peer,
    )


class Gateway:
    """etcd 3.4's JSON gateway over one member's application API (see the module docstring)."""

    def __init__(self, api: Api, *, max_request_bytes: int) -> None:
        #: grpc-go refuses a request message larger than this (--max-request-bytes + 512 KiB).
        self.max_request_bytes = max_request_bytes
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

    async def handle(self, request: web.Request, path: str) -> web.StreamResponse:
        """Serve ``path`` (under /v3/, already cleaned and rewritten from /v3beta/)."""
        route, method = self._lookup(path)
        if route is None or method is None:
            return text_response(404, "Not Found")
        if request.method != "POST":
            return text_response(405, "Method Not Allowed")
        if route.kind is Kind.BIDI_STREAM:
            return await self._bidi(request, route, method)
        try:
            msg = await self._decode_body(request, route)
        except GatewayStatus as e:
            return self._error(route, e, called=False)
        ctx = request_context(request)
        rpc = self._rpcs[route.path]
        rpc.started += 1
        rpc.received += 1
        if route.kind is Kind.SERVER_STREAM:
            return await self._stream(request, route, method(ctx, msg))
        try:
            resp = await method(ctx, msg)
        except Exception as e:
            return self._error(route, e)
        rpc.sent += 1
        rpc.handle(GrpcCode.OK)
        return web.Response(body=jsonpb.encode(resp), content_type=JSON, headers=SERVER_METADATA)

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

    async def _decode_body(self, request: web.Request, route: Route) -> Message:
        body = await request.read()
        try:
            start = _skip_space(body)
            raw = None if start == len(body) else body[start : value_end(body, start)]
            msg = jsonpb.decode(raw, route.request)
        except GoJSONError as e:
            raise GatewayStatus(GrpcCode.INVALID_ARGUMENT, str(e)) from None
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
        self, request: web.Request, route: Route, method: Callable[..., Any]
    ) -> web.StreamResponse:
        values = _JSONValues(request)
        try:
            first = await values.next()
            first_msg = None if first is None else jsonpb.decode(first, route.request)
            if first_msg is not None:
                self._check_size(first_msg)
        except GoJSONError as e:  # returned unwrapped by etcd's handler: UNKNOWN
            return self._error(route, GatewayStatus(GrpcCode.UNKNOWN, str(e)), called=False)
        except GatewayStatus as e:
            return self._error(route, e, called=False)

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

        return await self._stream(request, route, method(request_context(request), requests()))

    async def _stream(
        self, request: web.Request, route: Route, responses: AsyncGenerator[Message, None]
    ) -> web.StreamResponse:
        rpc = self._rpcs[route.path]
        async with contextlib.aclosing(responses):
            try:
                first = await anext(responses)
            except StopAsyncIteration:
                rpc.handle(GrpcCode.OK)
                resp = web.StreamResponse(headers={"Content-Type": JSON})
                resp.enable_chunked_encoding()
                await resp.prepare(request)
                return resp
            except Exception as e:
                return self._error(route, e)
            resp = web.StreamResponse(headers={"Content-Type": JSON, **SERVER_METADATA})
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            await resp.write(_line(first))
            rpc.sent += 1
            try:
                async for msg in responses:
                    await resp.write(_line(msg))
                    rpc.sent += 1
            except Exception as e:
                if not isinstance(e, MinietcdError | GatewayStatus):
                    log.error("gateway: %s: unexpected error", route.path, exc_info=e)
                code, text = status_of(e)
                rpc.handle(code)
                await resp.write(jsonpb.dumps(stream_error(code, text)))
                return resp
            except asyncio.CancelledError:
                rpc.handle(GrpcCode.CANCELLED)  # the client went away
                raise
            rpc.handle(GrpcCode.OK)
            return resp

    # -- errors and counts -----------------------------------------------------------------------

    def _error(self, route: Route, exc: BaseException, *, called: bool = True) -> web.Response:
        """The error answer; ``called``: the API was called (the call is counted as handled)."""
        if not isinstance(exc, MinietcdError | GatewayStatus):
            log.error("gateway: %s: unexpected error", route.path, exc_info=exc)
        code, text = status_of(exc)
        if called:
            self._rpcs[route.path].handle(code)
        status, _ = HTTP_STATUS[code]
        return web.Response(status=status, body=jsonpb.dumps(error_body(code, text)), content_type=JSON)


def _line(msg: Message) -> bytes:
    return b'{"result":' + jsonpb.encode(msg) + b"}\n"


def _skip_space(data: bytes, i: int = 0) -> int:
    while i < len(data) and data[i] in b" \t\r\n":
        i += 1
    return i


class _JSONValues:
    """Successive JSON values of a request body, each as soon as it has arrived (Go's
    ``json.Decoder`` over the body: ``unexpected EOF`` if the body ends inside one)."""

    def __init__(self, request: web.Request) -> None:
        self._content = request.content
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
            chunk = await self._content.readany()
            if chunk:
                self._buf += chunk
            else:
                self._eof = True
