"""The member's gRPC engine: which handler serves a method, the open connections, and stopping."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc

if TYPE_CHECKING:
    from minietcd.server.h2grpc.connection import H2Connection

#: A method's handler, or None and grpc-go's error for a method that is not served.
MethodLookup = Callable[[str], tuple[grpc.RpcMethodHandler | None, str]]


@dataclass(frozen=True, slots=True)
class _Details:
    """What a generic handler is asked with (grpc.HandlerCallDetails)."""

    method: str
    invocation_metadata: tuple[Any, ...] = ()


class H2GrpcServer:
    """Serves the methods of ``table`` (a generic handler: ``service(details)`` and ``methods()``)
    on every connection handed to it (``protocol`` is the asyncio protocol factory)."""

    def __init__(self, table: Any, max_receive: int, max_streams: int = 2**32 - 1) -> None:
        self._table = table
        self._max_streams = max_streams  # --max-concurrent-streams, per connection
        self._services = {m.rsplit("/", 1)[0].lstrip("/") for m in table.methods()}
        self._max_receive = max_receive
        self._open: set[H2Connection] = set()
        self._served: dict[str, tuple[grpc.RpcMethodHandler | None, str]] = {}  # methods found

    def lookup(self, method: str) -> tuple[grpc.RpcMethodHandler | None, str]:
        found = self._served.get(method)
        if found is not None:
            return found
        handler = self._table.service(_Details(method))
        if handler is not None:
            self._served[method] = found = (handler, "")  # only served ones: a bounded set
            return found
        service, _, name = method.lstrip("/").rpartition("/")
        if service in self._services:  # grpc-go's words (server.go, handleStream)
            return None, f"unknown method {name} for service {service}"
        return None, f"unknown service {service}"

    def protocol(self) -> H2Connection:
        from minietcd.server.h2grpc.connection import H2Connection  # with the first connection

        conn = H2Connection(self.lookup, self._max_receive, self._open.discard, self._max_streams)
        self._open.add(conn)
        return conn

    async def stop(self, grace: float) -> None:
        """As grpcio's ``stop(grace)``: no new calls (GOAWAY on every connection), up to ``grace``
        seconds for those open to end, then every connection closed."""
        if self._open:
            drains = [asyncio.ensure_future(conn.drain()) for conn in self._open]
            _, pending = await asyncio.wait(drains, timeout=grace)
            for d in pending:
                d.cancel()
        self.close()

    def close(self) -> None:
        """Close every connection now (GOAWAY first)."""
        for conn in list(self._open):
            conn.close()
