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

    @property
    def keeps_connection(self) -> bool:
        return False

    @property
    def closed(self) -> bool:
        return self._ws.state is not ConnectionState.OPEN or self._transport.is_closing()

    def feed(self, data: bytes) -> None:
        """Bytes from the client (b"": the connection ended)."""
        self._ws.receive_data(data or None)
        try:
            for event in self._ws.events():
                self._on(event)
        except RemoteProtocolError:
            self._end()
            self._transport.close()

    def _on(self, event: object) -> None:
        if isinstance(event, TextMessage | BytesMessage):
            self._partial.append(bytes(event.data) if isinstance(event, BytesMessage) else event.data)
            self._partial_size += len(event.data)
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
            self._end()

    def _end(self) -> None:
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
        return await self._messages.get()

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
