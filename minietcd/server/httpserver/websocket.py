"""A WebSocket after an HTTP upgrade (RFC 6455), framed by wsproto: what etcd's wsproxy needs,
whole messages in and text messages out. Imported on the first upgrade only.

As gorilla/websocket's Upgrader (etcd's wsproxy) does: version 13 only, no compression, no
subprotocol; a ping is answered; a message past ``max_msg_size`` closes the socket with 1009.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Final

from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Event, Ping, TextMessage
from wsproto.frame_protocol import CloseReason
from wsproto.utilities import LocalProtocolError, RemoteProtocolError, generate_accept_token

from minietcd.server.httpserver.messages import Streamed, UpgradeRefused

if TYPE_CHECKING:
    from minietcd.server.httpserver.messages import Request

#: Whole messages waiting for the handler before the socket stops being read (a client that
#: floods a slow handler is held back by TCP instead of growing the member's memory).
QUEUE_HIGH_WATER: Final = 64
#: How long :meth:`WebSocket.finish` waits for the client's close frame.
CLOSE_TIMEOUT: Final = 2.0


def accept_headers(request: Request) -> dict[str, str]:
    """The 101 answer's headers for ``request``'s handshake."""
    if request.headers.get("sec-websocket-version") != "13":
        raise UpgradeRefused("websocket: unsupported version: 13 not found in 'Sec-Websocket-Version' header")
    key = request.headers.get("sec-websocket-key")
    if not key:
        raise UpgradeRefused("websocket: not a websocket handshake: 'Sec-WebSocket-Key' header is missing")
    return {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Accept": generate_accept_token(key.encode("latin-1")).decode(),
    }


class WebSocket(Streamed):
    """The server's side of one WebSocket (see the module docstring)."""

    def __init__(self, transport: asyncio.Transport, max_msg_size: int, can_write: asyncio.Event) -> None:
        self._transport = transport
        self._ws = Connection(ConnectionType.SERVER)
        self._limit = max_msg_size
        self._can_write = can_write
        self._messages: asyncio.Queue[bytes | str | None] = asyncio.Queue()
        self._partial: list[bytes | str] = []
        self._partial_size = 0
        self._peer_closed = asyncio.Event()
        self._reading_paused = False

    @property
    def keeps_connection(self) -> bool:
        return False

    @property
    def closed(self) -> bool:
        return self._ws.state is not ConnectionState.OPEN or self._transport.is_closing()

    def feed(self, data: bytes) -> None:
        """Bytes from the client (b"": the connection ended)."""
        try:
            self._ws.receive_data(data or None)
        except (RemoteProtocolError, LocalProtocolError):  # as in _take_events
            self._drop()
        else:
            self._take_events()
        if data == b"":
            self._end()  # the end without a close frame: wsproto reports no event for it

    def _take_events(self) -> None:
        """Frame what has arrived into events, until QUEUE_HIGH_WATER messages wait: the rest
        stays in wsproto's buffer, and the socket is not read, until the handler catches up.

        Frames wsproto cannot parse, or frames after the closing handshake (wsproto: "Connection
        already closed"), are the client's fault: the connection is dropped rather than the
        error raised out of data_received (which asyncio logs as a fatal error)."""
        try:
            for event in self._ws.events():
                self._on(event)
                if self._messages.qsize() >= QUEUE_HIGH_WATER:
                    if not self._reading_paused:
                        self._transport.pause_reading()
                        self._reading_paused = True
                    return
        except (RemoteProtocolError, LocalProtocolError):
            self._drop()

    def _drop(self) -> None:
        self._end()
        self._transport.close()

    def _on(self, event: object) -> None:
        if isinstance(event, TextMessage | BytesMessage):
            if self._peer_closed.is_set():
                return  # closing (1009 sent): what still arrives is not delivered
            self._partial.append(bytes(event.data) if isinstance(event, BytesMessage) else event.data)
            # gorilla's read limit is in bytes: a text fragment counts as its UTF-8 encoding.
            size = len(event.data.encode()) if isinstance(event, TextMessage) else len(event.data)
            self._partial_size += size
            if self._partial_size > self._limit:
                self._write(CloseConnection(code=CloseReason.MESSAGE_TOO_BIG))
                self._end()
                return
            if event.message_finished:
                message: bytes | str = (
                    "".join(str(p) for p in self._partial)
                    if isinstance(event, TextMessage)
                    else b"".join(p.encode() if isinstance(p, str) else p for p in self._partial)
                )
                self._partial, self._partial_size = [], 0
                self._messages.put_nowait(message)
        elif isinstance(event, Ping):
            self._write(event.response())
        elif isinstance(event, CloseConnection):
            if self._ws.state is ConnectionState.REMOTE_CLOSING:
                self._write(event.response())
            elif self._ws.state is ConnectionState.OPEN:
                # wsproto's report of frames it cannot parse (1002, 1007...): say so and close,
                # as RFC 6455 7.1.7 asks, instead of a normal close after CLOSE_TIMEOUT.
                self._write(CloseConnection(code=event.code, reason=event.reason))
            self._end()

    def _end(self) -> None:
        if not self._peer_closed.is_set():
            self._peer_closed.set()
            self._messages.put_nowait(None)

    def _write(self, event: Event) -> None:
        if self._transport.is_closing():
            return
        with contextlib.suppress(LocalProtocolError):
            self._transport.write(self._ws.send(event))

    async def receive(self) -> bytes | str | None:
        """The next whole message; None once the socket is closed."""
        if self._peer_closed.is_set() and self._messages.empty():
            return None
        message = await self._messages.get()
        if self._reading_paused and self._messages.qsize() < QUEUE_HIGH_WATER // 2:
            self._reading_paused = False
            self._take_events()  # what waited in wsproto's buffer first
            if not self._reading_paused and not self._transport.is_closing():
                self._transport.resume_reading()
        return message

    async def send_str(self, text: str) -> None:
        if self.closed:
            return
        self._write(TextMessage(data=text))
        await self._can_write.wait()

    async def finish(self) -> None:
        """Close: our close frame, the client's (or a short wait), then the connection."""
        if self._ws.state is ConnectionState.OPEN:
            self._write(CloseConnection(code=CloseReason.NORMAL_CLOSURE))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._peer_closed.wait(), CLOSE_TIMEOUT)
        self._transport.close()
