"""The client side's listeners, bound before the data dir is touched (as listeners.py does for
every listener), and what serves each one.

etcd 3.4 serves gRPC and HTTP/1.1 on every ``--listen-client-urls`` URL. etcd 3.5 added
``--listen-client-http-urls``: given, HTTP moves to those URLs and the client URLs serve gRPC
only. So a client URL is served one of two ways:

* **muxed** (no ``--listen-client-http-urls``, the default): this process holds the URL's socket
  and a :class:`~minietcd.server.clientmux.ClientMux` routes each connection, gRPC to grpcio
  listening on an internal abstract unix socket, HTTP to the member's HTTP server;
* **gRPC only** (with ``--listen-client-http-urls``): grpcio listens on the URL itself, exactly
  as before the multiplexer existed; each HTTP URL is a plain listener of the HTTP server.

``unix://`` client URLs are left to grpcio (gRPC only) whatever the flags.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
import grpc.aio

from minietcd.errors import ConfigError, ListenError
from minietcd.server.clientmux import internal_grpc_address
from minietcd.server.listeners import NO_REUSEPORT, bind_sockets, check_bindable
from minietcd.server.urls import URL


@dataclass(slots=True)
class ClientListeners:
    """Every client-facing listener of a member, bound, nothing served yet."""

    grpc: grpc.aio.Server
    #: Client URLs the multiplexer serves: (URL, its socket, grpcio's internal address for it
    #: in Python's form).
    muxed: list[tuple[URL, socket.socket, str]] = field(default_factory=list)
    #: --listen-client-http-urls: (URL, its socket), HTTP only.
    http_only: list[tuple[URL, socket.socket]] = field(default_factory=list)

    def close_sockets(self) -> None:
        for _u, sock, _a in self.muxed:
            sock.close()
        for _u, sock in self.http_only:
            sock.close()


def bind_client_listeners(
    client_urls: Sequence[URL],
    http_urls: Sequence[URL],
    *,
    credentials: grpc.ServerCredentials | None,
    options: Sequence[tuple[str, Any]],
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
) -> ClientListeners:
    """Bind the client URLs (muxed unless ``http_urls`` are given) and the HTTP-only URLs.
    Raises :class:`ListenError` in Go's words for a taken port, nothing left bound."""
    split = bool(http_urls)
    direct = [u for u in client_urls if split or u.is_unix]
    muxed = [u for u in client_urls if u not in direct]
    for u in client_urls:
        if u.is_tls and credentials is None:
            raise ConfigError(f"client URL {u} is https but no TLS credentials are set")
        check_bindable(u)
    muxed_sockets = bind_sockets(muxed)
    try:
        http_sockets = bind_sockets(http_urls)
    except BaseException:
        for sock in muxed_sockets:
            sock.close()
        raise
    server = grpc.aio.server(options=[*options, NO_REUSEPORT], interceptors=list(interceptors))
    out = ClientListeners(server, http_only=list(zip(http_urls, http_sockets, strict=True)))
    try:
        internal: dict[bool, str] = {}  # one internal listener per scheme serves every muxed URL
        for u, sock in zip(muxed, muxed_sockets, strict=True):
            if u.is_tls not in internal:
                grpc_addr, internal[u.is_tls] = internal_grpc_address()
                _add_port(server, grpc_addr, u.is_tls, credentials, u)
            out.muxed.append((u, sock, internal[u.is_tls]))
        for u in direct:
            _add_port(server, u.grpc_target, u.is_tls, credentials, u)
    except BaseException:
        for sock in muxed_sockets:
            sock.close()
        out.close_sockets()
        raise
    return out


def _add_port(
    server: grpc.aio.Server, address: str, tls: bool, credentials: grpc.ServerCredentials | None, url: URL
) -> None:
    try:
        if tls:
            assert credentials is not None  # checked by the caller
            server.add_secure_port(address, credentials)
        else:
            server.add_insecure_port(address)
    except RuntimeError as e:  # lost a race for the port since check_bindable
        raise ListenError(f"listen {'unix' if url.is_unix else 'tcp'} {url.host}: bind: {e}") from None


async def close_unstarted(listeners: ClientListeners | None) -> None:
    """Release everything a failed start bound (see listeners.close_grpc)."""
    if listeners is None:
        return
    listeners.close_sockets()
    with contextlib.suppress(Exception):
        await listeners.grpc.start()
    with contextlib.suppress(Exception):
        await listeners.grpc.stop(grace=None)
