"""The HTTP server of a member: a handler behind every connection of its listeners.

:meth:`HttpServer.protocol` makes a connection's protocol (the client-URL multiplexer hands it
sockets it accepted); :meth:`HttpServer.listen` serves a socket of its own (the metrics URLs,
``--listen-client-http-urls``). :meth:`HttpServer.close` is Go's ``http.Server.Shutdown`` with a
deadline: stop listening, close idle connections, let requests being answered finish within
the grace, then cancel them.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable

from minietcd.server.httpserver.connection import HttpConnection
from minietcd.server.httpserver.messages import Handler, HeaderHook, Request

#: How long :meth:`HttpServer.close` lets answers in progress go on.
SHUTDOWN_GRACE = 2.0


def _no_headers(request: Request, headers: dict[str, str]) -> None:
    pass


class HttpServer:
    """Serves ``handler`` (see the module docstring)."""

    def __init__(self, handler: Handler, *, decorate: HeaderHook = _no_headers) -> None:
        self.handler = handler
        #: Adds headers to every answer before it is sent (etcd's CORS headers).
        self.decorate = decorate
        self.connections: set[HttpConnection] = set()
        #: Called first when closing (to end long polls and event streams).
        self.on_shutdown: list[Callable[[], None]] = []
        self._servers: list[asyncio.Server] = []
        #: Closing: a connection ends after the answer in progress.
        self.closing = False

    def protocol(self) -> HttpConnection:
        return HttpConnection(self)

    async def listen(self, sock: socket.socket, ssl_context: ssl.SSLContext | None = None) -> None:
        loop = asyncio.get_running_loop()
        self._servers.append(await loop.create_server(self.protocol, sock=sock, ssl=ssl_context))

    async def stop_listening(self) -> None:
        for s in self._servers:
            s.close()
        self._servers.clear()

    async def close(self, grace: float = SHUTDOWN_GRACE) -> None:
        self.closing = True
        await self.stop_listening()
        for hook in self.on_shutdown:
            hook()
        busy = [c for c in list(self.connections) if not c.close_if_idle()]
        if busy:
            waits = [asyncio.ensure_future(c.finished()) for c in busy]
            _done, late = await asyncio.wait(waits, timeout=grace)
            for c in busy:
                c.abort()
            if late:
                await asyncio.wait(late)
