"""HTTP on the client URLs: the multiplexers of the muxed client URLs, the HTTP-only listeners of
``--listen-client-http-urls``, and the one HTTP server behind both (etcd's JSON gateway,
``/health``, ``/version``, ``/metrics``, ``/debug/vars``:
:func:`minietcd.server.etcdhttp.make_client_server`).

On muxed URLs the server is built when the first HTTP connection arrives: a member that is
only ever asked over gRPC never imports its modules.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING

from minietcd.server.api import Api
from minietcd.server.client_listeners import ClientListeners
from minietcd.server.clientmux import ClientMux
from minietcd.server.config import Config
from minietcd.server.etcd_server import EtcdServer

if TYPE_CHECKING:  # loaded when needed: HTTP on the first HTTP client, the thread splicer on request
    from minietcd.server.httpserver import HttpServer
    from minietcd.server.splicer import Splicer

log = logging.getLogger("minietcd.server")


class ClientHttp:
    """Serves HTTP on a member's client URLs (see the module docstring)."""

    def __init__(
        self,
        server: EtcdServer,
        api: Api,
        listeners: ClientListeners,
        ssl_context: Callable[[], ssl.SSLContext] | None,
        cfg: Config,
        grpc_engine: Callable[[], asyncio.Protocol] | None = None,
    ) -> None:
        self._grpc_engine = grpc_engine  # plain gRPC connections' own server (h2grpc), if any
        self._server = server
        self._api = api
        self._listeners = listeners
        self._cfg = cfg
        self._ssl: ssl.SSLContext | None = None
        if ssl_context is not None and any(
            u.is_tls for u in (*cfg.listen_client_urls, *cfg.listen_client_http_urls)
        ):
            self._ssl = ssl_context()
            # HTTP/1.1 only: a client that offers h2 too (curl) then speaks HTTP/1.1; one that
            # offers only h2 (a gRPC client) never reaches this context (clientmux.classify_tls).
            self._ssl.set_alpn_protocols(["http/1.1"])
        self._muxes: list[ClientMux] = []
        self._http: HttpServer | None = None
        self._splicer: Splicer | None = None

    async def start(self) -> None:
        # gRPC connections are forwarded on the event loop; MINIETCD_SPLICE=thread splices them
        # in a thread of their own instead (benchmarks/client_mux.py compares the two; the
        # loop won: docs/benchmarks.md).
        threaded = os.environ.get("MINIETCD_SPLICE") == "thread"
        splicer = None
        if self._listeners.muxed and threaded:
            from minietcd.server.splicer import Splicer

            splicer = Splicer()
        self._splicer = splicer
        for u, sock, grpc_address in self._listeners.muxed:
            mux = ClientMux(
                sock,
                grpc_address=grpc_address,
                http=self._protocol_factory,
                ssl_context=self._ssl if u.is_tls else None,
                splicer=splicer,
                grpc_engine=self._grpc_engine,
            )
            mux.start()
            self._muxes.append(mux)
        for u, sock in self._listeners.http_only:
            await self._http_server().listen(sock, self._ssl if u.is_tls else None)

    def _http_server(self) -> HttpServer:
        if self._http is None:
            from minietcd.server.etcdhttp import make_client_server

            self._http = make_client_server(self._server, self._api, self._cfg)
        return self._http

    async def _protocol_factory(self) -> Callable[[], asyncio.Protocol]:
        return self._http_server().protocol

    async def stop_accepting(self) -> None:
        """Accept no new connection (those open go on: gRPC drains them next)."""
        for mux in self._muxes:
            await mux.stop_accepting()
        if self._http is not None:
            await self._http.stop_listening()

    async def close(self) -> None:
        """Close what is still open: spliced connections and HTTP ones."""
        await self.stop_accepting()
        for mux in self._muxes:
            await mux.close()
        if self._splicer is not None:
            self._splicer.close()
        if self._http is not None:
            await self._http.close()
