"""One HTTP/1.1 connection: h11 parses and frames, this protocol reads, runs the handler and
writes, one request after another (keep-alive and pipelined requests in order).

As Go's net/http server does for etcd: a client that goes away cancels the request it was
waiting on (a watch stream ends with it); a body the handler left unread is read and dropped up
to 256 KiB before the next request, else the connection closes (net/http's maxPostHandlerReadBytes);
a request h11 cannot parse is answered 400 (431 for oversized headers, 505 for a version other
than 1.x) and the connection closed; a stream whose client ends its side is cancelled.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from http import HTTPStatus
from typing import TYPE_CHECKING, Final, cast

import h11

from minietcd.server.httpserver.messages import (
    TEXT_UTF8,
    BodyTooLarge,
    BodyUnreadable,
    Headers,
    Request,
    Response,
    Streamed,
    UpgradeRefused,
    text_response,
)

if TYPE_CHECKING:
    from minietcd.server.httpserver.server import HttpServer
    from minietcd.server.httpserver.websocket import WebSocket

log = logging.getLogger("minietcd.server.http")

#: Go's http.DefaultMaxHeaderBytes.
MAX_HEADER_BYTES: Final = 1 << 20
#: What net/http reads of a request line and headers before answering 431: MaxHeaderBytes and
#: its 4096 bytes of slack (server.go's initialReadLimitSize).
_HEAD_LIMIT: Final = MAX_HEADER_BYTES + 4096
#: Unread body bytes dropped after an answer before the connection is given up on (net/http).
MAX_UNREAD_BODY: Final = 256 << 10
#: A percent sign not followed by two hex digits: Go's url.ParseRequestURI refuses the path (400).
_BAD_ESCAPE: Final = re.compile(r"%(?![0-9A-Fa-f]{2})")
#: What h11 refuses to send in a header value. Go's server writes CR and LF as spaces
#: (headerNewlineToSpace); h11 would raise instead and the answer would never go out, so a value
#: made from the request (a redirect's Location from a path with %0d%0a) gets them as spaces.
_BAD_VALUE_CHARS: Final = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
#: Stop reading the socket while this much has arrived that nobody has asked for yet.
_READ_HIGH_WATER: Final = 1 << 20


def _reason(status: int) -> bytes:
    """Go's status line carries the text (h11 leaves it empty unless given)."""
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


class _Refused(Exception):
    """A request net/http refuses before any handler sees it (answered by :meth:`_refuse`)."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.error_status_hint = status


def http_date(now: float | None = None) -> str:
    """RFC 7231's IMF-fixdate, as Go's Date header."""
    return time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now))


class Stream(Streamed):
    """A chunked answer a handler writes line by line (a watch, an event stream)."""

    __slots__ = ("_conn",)

    def __init__(self, conn: HttpConnection) -> None:
        self._conn = conn

    async def write(self, data: bytes) -> None:
        if data:
            await self._conn.send(h11.Data(data=data))

    async def finish(self) -> None:
        await self._conn.send(h11.EndOfMessage())


class HttpConnection(asyncio.Protocol):
    """The protocol of one accepted connection (see the module docstring)."""

    def __init__(self, server: HttpServer) -> None:
        self._server = server
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADER_BYTES)
        self._transport: asyncio.Transport | None = None
        self._arrived = asyncio.Event()  # bytes (or the end) arrived since the last wait
        self._unasked = 0  # bytes received since the parser last ran out
        self._reading_paused = False
        self._can_write = asyncio.Event()
        self._can_write.set()
        self._lost = False
        self._their_end = False  # the client ended its side (EOF)
        self._task: asyncio.Task[None] | None = None
        #: A request is being answered (shutdown waits for it; an idle connection just closes).
        self.busy = False
        #: After a WebSocket upgrade the bytes go to it instead of to h11.
        self._websocket: WebSocket | None = None

    @property
    def transport(self) -> asyncio.Transport:
        assert self._transport is not None  # connected
        return self._transport

    # -- asyncio.Protocol ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's are not its subclasses
        self._server.connections.add(self)
        self._task = asyncio.get_running_loop().create_task(self._serve())

    def data_received(self, data: bytes) -> None:
        if self._websocket is not None:
            self._websocket.feed(data)
            return
        self._h11.receive_data(data)
        self._unasked += len(data)
        if self._unasked > _READ_HIGH_WATER and not self._reading_paused:
            self.transport.pause_reading()
            self._reading_paused = True
        self._arrived.set()

    def eof_received(self) -> bool:
        if self._websocket is not None:
            self._websocket.feed(b"")
            return False
        self._h11.receive_data(b"")
        self._their_end = True
        self._arrived.set()
        if self.busy and self._h11.our_state is h11.SEND_BODY and self._task is not None:
            # A stream (a watch, an event stream) whose client ended its side: net/http cancels
            # the request's context when its background read hits the end (connReader's
            # handleReadError), and the stream would otherwise go on until it next writes.
            self._task.cancel()
        # Keep the writing half open: requests that came before the end (a client that half-closes
        # after sending, as `nc -N` does) are still answered, as net/http does; the request loop
        # closes once h11 reports the end. Over TLS the end is the connection's (asyncio warns
        # if asked to keep it open).
        return self.transport.get_extra_info("sslcontext") is None

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._server.connections.discard(self)
        self._arrived.set()
        self._can_write.set()
        if self._websocket is not None:
            self._websocket.feed(b"")
        if self._task is not None and not self._task.done():
            self._task.cancel()  # the client went away: so does its request

    def pause_writing(self) -> None:
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._can_write.set()

    # -- reading and writing ---------------------------------------------------------------------

    async def _next_event(self) -> h11.Event | type[h11.PAUSED]:
        while True:
            event = self._h11.next_event()
            if event is not h11.NEED_DATA:
                return cast("h11.Event | type[h11.PAUSED]", event)
            if self._lost:
                raise ConnectionResetError("client went away")
            self._unasked = 0
            if self._reading_paused:
                self.transport.resume_reading()
                self._reading_paused = False
            self._arrived.clear()
            await self._arrived.wait()

    async def read_body(self) -> bytes:
        """The next bytes of the current request's body; b"" at its end."""
        if self._h11.they_are_waiting_for_100_continue:
            await self.send(h11.InformationalResponse(status_code=100, headers=[], reason=b"Continue"))
        while self._h11.their_state is h11.SEND_BODY:
            try:
                event = await self._next_event()
            except h11.RemoteProtocolError as e:
                # Go's body reader's words (net/http/internal/chunked.go; io.ErrUnexpectedEOF).
                text = "unexpected EOF" if self._their_end else "invalid byte in chunk length"
                raise BodyUnreadable(text) from e
            if isinstance(event, h11.Data):
                return bytes(event.data)
        return b""

    async def send(self, event: h11.Event) -> None:
        if self._lost:
            raise ConnectionResetError("client went away")
        data = self._h11.send(event) or b""
        if isinstance(event, h11.Response) and self._h11.their_http_version == b"1.0":
            data = _as_http10_head(data)
        self.transport.write(data)
        if not self._can_write.is_set():
            await self._can_write.wait()
            if self._lost:
                raise ConnectionResetError("client went away")

    def _head(self, request: Request | None, status: int, headers: dict[str, str]) -> h11.Response:
        fields = dict(headers)
        if request is not None:
            self._server.decorate(request, fields)
        fields.setdefault("Date", http_date())
        broken = self._h11.their_state is h11.ERROR
        if self._h11.they_are_waiting_for_100_continue or self._server.closing or broken:
            # net/http: a client still waiting for "100 Continue" may send its body or not; the
            # connection is in an unknown state, so it is not reused (chunkWriter.writeHeader).
            # Shutting down: no keep-alive either (doKeepAlives); nor after a body that could
            # not be read (the handler answered BodyUnreadable).
            fields["Connection"] = "close"
        # (h11 also refuses whitespace at either end of a value: Go trims it when reading.)
        items = [(k, _BAD_VALUE_CHARS.sub(" ", v).strip(" \t")) for k, v in fields.items()]
        return h11.Response(status_code=status, headers=items, reason=_reason(status))

    async def start_stream(self, request: Request, status: int, headers: dict[str, str]) -> Stream:
        await self.send(self._head(request, status, headers))
        return Stream(self)

    async def accept_websocket(self, request: Request, max_msg_size: int) -> WebSocket:
        from minietcd.server.httpserver.websocket import WebSocket, accept_headers

        while self._h11.their_state is h11.SEND_BODY:  # an upgrade request has no body to speak of
            await self.read_body()
        headers = accept_headers(request)
        self._server.decorate(request, headers)
        switching = h11.InformationalResponse(
            status_code=101, headers=list(headers.items()), reason=b"Switching Protocols"
        )
        await self.send(switching)
        ws = WebSocket(self.transport, max_msg_size, self._can_write)
        self._websocket = ws
        trailing, _closed = self._h11.trailing_data
        if trailing:
            ws.feed(trailing)
        return ws

    async def _respond(self, request: Request, response: Response) -> None:
        headers = dict(response.headers)
        if response.content_type is not None:
            headers.setdefault("Content-Type", response.content_type)
        # Trailers need a chunked body, which only HTTP/1.1 clients read (RFC 9112 section 7.1.2);
        # like Go's server, an answer with trailers is declared with a Trailer header and chunked.
        trailers = (
            response.trailers
            if response.trailers and request.method != "HEAD" and self._h11.their_http_version == b"1.1"
            else {}
        )
        if trailers:
            headers["Trailer"] = ", ".join(trailers)
        elif response.status not in (204, 304):
            headers["Content-Length"] = str(len(response.body))
        await self.send(self._head(request, response.status, headers))
        if response.body and request.method != "HEAD":
            await self.send(h11.Data(data=response.body))
        await self.send(h11.EndOfMessage(headers=list(trailers.items())))

    # -- the request loop ------------------------------------------------------------------------

    async def _serve(self) -> None:
        try:
            while await self._serve_one() and not self._server.closing:
                self._h11.start_next_cycle()
        except (h11.RemoteProtocolError, _Refused) as e:
            self._refuse(e)
        except (ConnectionError, asyncio.CancelledError, h11.LocalProtocolError):
            pass  # the client went away, or broke off mid-answer (logged by nobody, as Go)
        finally:
            self.busy = False
            if self._transport is not None and self._websocket is None:
                self._transport.close()

    async def _serve_one(self) -> bool:
        """Answer the next request; whether the connection can take another."""
        event = await self._next_event()
        if not isinstance(event, h11.Request):
            return False  # closed (or a protocol switch nobody asked for)
        self._check(event)
        self.busy = True
        request = Request(
            self,
            event.method.decode("latin-1"),
            event.target.decode("latin-1"),
            Headers(list(event.headers)),
        )
        reply = await self._answer(request)
        if isinstance(reply, Response):
            await self._respond(request, reply)
        else:
            await reply.finish()
            if not reply.keeps_connection:
                return False
        self.busy = False
        return await self._drop_unread_body()

    @staticmethod
    def _check(event: h11.Request) -> None:
        """What net/http refuses that h11 lets through."""
        # h11 takes any "HTTP/d.d"; net/http serves 1.x only (http1ServerSupportsRequest).
        if not event.http_version.startswith(b"1."):
            raise _Refused(505)
        # h11 bounds a head only while it is incomplete; a whole one that arrived at once can
        # be any size. net/http counts what it read (MaxHeaderBytes + 4096).
        size = len(event.method) + len(event.target) + 12
        for name, value in event.headers.raw_items():
            size += len(name) + len(value) + 4
            if size > _HEAD_LIMIT:
                raise _Refused(431)
        raw_path = event.target.partition(b"?")[0]
        if b"%" in raw_path and _BAD_ESCAPE.search(raw_path.decode("latin-1")):
            raise _Refused(400)

    async def _answer(self, request: Request) -> Response | Streamed:
        try:
            return await self._server.handler(request)
        except UpgradeRefused as e:  # gorilla's answer: the status text, and the version it takes
            log.debug("http: %s: %s", request.path, e)
            response = text_response(400, "Bad Request")
            response.headers["Sec-Websocket-Version"] = "13"
            return response
        except BodyTooLarge as e:
            return text_response(413, f"http: request body too large (limit {e.limit} bytes)")
        except BodyUnreadable as e:
            raise _Refused(400) from e
        except (ConnectionError, asyncio.CancelledError, h11.RemoteProtocolError):
            # A body h11 cannot read (a bad chunk size) is the client's fault, not the handler's:
            # answered 400 and closed by the request loop, without a traceback.
            raise
        except Exception as e:
            log.error("http: %s %s: unexpected error", request.method, request.path, exc_info=e)
            if self._h11.our_state is not h11.SEND_RESPONSE:
                raise ConnectionAbortedError from e  # half an answer went out: end the connection
            return text_response(500, "Internal Server Error")

    async def _drop_unread_body(self) -> bool:
        if self._h11.our_state is not h11.DONE:
            return False  # the answer said "Connection: close": nothing more is read
        dropped = 0
        while self._h11.their_state is h11.SEND_BODY:
            event = await self._next_event()
            if isinstance(event, h11.Data):
                dropped += len(event.data)
                if dropped > MAX_UNREAD_BODY:
                    return False
        return self._h11.our_state is h11.DONE and self._h11.their_state is h11.DONE

    def _refuse(self, error: h11.RemoteProtocolError | _Refused) -> None:
        """Go's answer to a request it cannot read: the status and its text, then close."""
        status = error.error_status_hint
        text = _reason(status).decode()  # Go's status text (h11 hints 400, 431, 501; we 505)
        if self._h11.our_state not in (h11.IDLE, h11.SEND_RESPONSE) or self._lost:
            return
        # h11 has no error class of its own for this one, only its text (h11/_connection.py).
        if str(error).startswith("Missing mandatory Host"):  # as net/http's badRequestError
            text += ": missing required Host header"
        body = f"{status} {text}"
        if status == 501:  # h11's hint for a Transfer-Encoding it does not know
            body = "Unsupported transfer encoding"
        head = f"HTTP/1.1 {status} {text}\r\nContent-Type: {TEXT_UTF8}\r\nConnection: close\r\n\r\n"
        self.transport.write(head.encode() + body.encode())

    def close_if_idle(self) -> bool:
        """Close now if no request is being answered; whether it was closed."""
        if self.busy or self._transport is None:
            return False
        self._transport.close()
        return True

    def abort(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
        if self._transport is not None:
            # Not close(): that waits to flush what is queued, forever for a client that stopped
            # reading, and the connection would outlive the server (Go closes the socket).
            self._transport.abort()

    async def finished(self) -> None:
        if self._task is not None:
            await asyncio.wait([self._task])


def _as_http10_head(head: bytes) -> bytes:
    """An answer's head for an HTTP/1.0 client as Go's server writes it (net/http's
    writeStatusLine and chunkWriter.writeHeader): an ``HTTP/1.0`` status line, and no
    ``Connection`` header when the connection closes after the answer, which it always does
    here (h11 keeps no HTTP/1.0 connection alive and says ``Connection: close``; an HTTP/1.0
    client that gets no ``Connection: keep-alive`` knows the connection ends)."""
    lines = head.split(b"\r\n")
    if lines[0].startswith(b"HTTP/1.1 "):
        lines[0] = b"HTTP/1.0 " + lines[0][len(b"HTTP/1.1 ") :]
    return b"\r\n".join(line for line in lines if not line.lower().startswith(b"connection:"))
