"""What a handler of :mod:`minietcd.server.httpserver` sees and answers: a :class:`Request`, and
a :class:`Response` (a whole body) or a :class:`Streamed` answer it wrote itself (a chunked
:class:`~.connection.Stream`, a :class:`~.websocket.WebSocket`)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final
from urllib.parse import parse_qs, unquote

if TYPE_CHECKING:
    import asyncio

    from minietcd.server.httpserver.connection import HttpConnection, Stream
    from minietcd.server.httpserver.websocket import WebSocket

UTF8: Final = "charset=utf-8"
#: Go's http.Error and ServeMux answers use this type.
TEXT_UTF8: Final = f"text/plain; {UTF8}"
JSON_UTF8: Final = f"application/json; {UTF8}"


class Headers:
    """A request's header fields, names in any case (the first value)."""

    __slots__ = ("_fields",)

    def __init__(self, fields: list[tuple[bytes, bytes]]) -> None:
        # h11 gives names lower-cased; values as sent.
        self._fields = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in fields]

    def get(self, name: str, default: str = "") -> str:
        name = name.lower()
        for k, v in self._fields:
            if k == name:
                return v
        return default


class BodyTooLarge(Exception):
    """A body past the limit :meth:`Request.read` was given (answered 413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body larger than {limit} bytes")
        self.limit = limit


class BodyUnreadable(Exception):
    """The request's body broke off or is not valid HTTP (a bad chunk size); the text is what
    Go's body reader says. A handler may answer it; else it is answered 400 and the connection
    closes."""


class UpgradeRefused(Exception):
    """Not a WebSocket handshake this server takes (answered 400 with the text, as gorilla)."""


class Request:
    """One HTTP request: its line and headers, its body as it arrives, and the ways to answer
    it other than returning a :class:`Response` (a stream, a WebSocket)."""

    __slots__ = ("_conn", "_query", "headers", "method", "path", "query_string")

    def __init__(self, conn: HttpConnection, method: str, target: str, headers: Headers) -> None:
        self._conn = conn
        self.method = method
        raw_path, _, self.query_string = target.partition("?")
        if not raw_path.startswith("/") and "://" in raw_path:
            # The absolute form a proxy sends (RFC 9112 3.2.2): Go's r.URL.Path is its path.
            raw_path = "/" + raw_path.partition("://")[2].partition("/")[2]
        #: Decoded, as Go's r.URL.Path.
        self.path = unquote(raw_path)
        self.headers = headers
        self._query: dict[str, list[str]] | None = None

    @property
    def query(self) -> dict[str, list[str]]:
        if self._query is None:
            self._query = parse_qs(self.query_string, keep_blank_values=True)
        return self._query

    def query_get(self, name: str, default: str = "") -> str:
        values = self.query.get(name)
        return values[0] if values else default

    @property
    def host(self) -> str:
        """The Host header, as Go's r.Host (HTTP/1.0 without one: the address it reached)."""
        host = self.headers.get("host")
        if host:
            return host
        sockname = self.transport.get_extra_info("sockname")
        return f"{sockname[0]}:{sockname[1]}" if isinstance(sockname, tuple) else ""

    @property
    def transport(self) -> asyncio.Transport:
        return self._conn.transport

    @property
    def is_tls(self) -> bool:
        return self.transport.get_extra_info("sslcontext") is not None

    async def readany(self) -> bytes:
        """The next bytes of the body as they arrive; b"" at its end."""
        return await self._conn.read_body()

    async def read(self, limit: int = 1 << 20) -> bytes:
        """The whole body; :class:`BodyTooLarge` past ``limit`` bytes."""
        parts: list[bytes] = []
        size = 0
        while chunk := await self.readany():
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge(limit)
            parts.append(chunk)
        return b"".join(parts)

    async def stream(self, headers: dict[str, str], status: int = 200) -> Stream:
        """Start a chunked answer; the handler writes to it and returns it."""
        return await self._conn.start_stream(self, status, headers)

    async def websocket(self, max_msg_size: int) -> WebSocket:
        """Accept the WebSocket this request asks for; the handler returns it."""
        return await self._conn.accept_websocket(self, max_msg_size)


@dataclass(slots=True)
class Response:
    """A whole answer. ``content_type`` None: no Content-Type (Go's empty bodies have none)."""

    status: int = 200
    body: bytes = b""
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    #: Sent after the body (chunked, declared in a Trailer header; HTTP/1.0 clients get none).
    trailers: dict[str, str] = field(default_factory=dict)


class Streamed:
    """An answer the handler wrote itself; the server finishes it when the handler returns."""

    async def finish(self) -> None:
        raise NotImplementedError

    @property
    def keeps_connection(self) -> bool:
        """Whether the connection may serve another request afterwards."""
        return True


#: The answer a handler gives.
Reply = Response | Streamed
Handler = Callable[[Request], Awaitable[Reply]]
#: Called with each answer's request and headers before they are sent (CORS headers).
HeaderHook = Callable[[Request, dict[str, str]], None]


def text_response(status: int, text: str) -> Response:
    """Go's http.Error: the text and a newline, as plain UTF-8 text (not to be sniffed)."""
    return Response(status, (text + "\n").encode(), TEXT_UTF8, {"X-Content-Type-Options": "nosniff"})


def json_response(body: object, status: int = 200, content_type: str = JSON_UTF8) -> Response:
    return Response(status, json.dumps(body).encode(), content_type)
