"""HTTP on the client URLs: the multiplexers of the muxed client URLs, the HTTP-only listeners of
``--listen-client-http-urls``, and the one aiohttp application behind both (etcd's JSON gateway,
``/health``, ``/version``, ``/metrics``, ``/debug/vars``: :func:`minietcd.server.http.make_client_app`).

On muxed URLs the application is built when the first HTTP connection arrives: a member that is
only ever asked over gRPC never imports aiohttp (its idle memory stays what it was).
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
from minietcd.server.splicer import Splicer

if TYPE_CHECKING:
    from aiohttp import web

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
    ) -> None:
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
        self._runner: web.AppRunner | None = None
        self._building: asyncio.Lock | None = None
        self._sites: list[web.BaseSite] = []
        self._splicer: Splicer | None = None

    async def start(self) -> None:
        # gRPC connections are forwarded on the event loop; MINIETCD_SPLICE=thread splices them
        # in a thread of their own instead (benchmarks/client_mux.py compares the two; the
        # loop won: docs/benchmarks.md).
        threaded = os.environ.get("MINIETCD_SPLICE") == "thread"
        splicer = Splicer() if self._listeners.muxed and threaded else None
        self._splicer = splicer
        for u, sock, grpc_address in self._listeners.muxed:
            mux = ClientMux(
                sock,
                grpc_address=grpc_address,
                http=self._protocol_factory,
                ssl_context=self._ssl if u.is_tls else None,
                splicer=splicer,
            )
            mux.start()
            self._muxes.append(mux)
        if self._listeners.http_only:
            from aiohttp import web

            runner = await self._app_runner()
            for u, sock in self._listeners.http_only:
                site = web.SockSite(runner, sock, ssl_context=self._ssl if u.is_tls else None)
                await site.start()
                self._sites.append(site)

    async def _app_runner(self) -> web.AppRunner:
        if self._building is None:
            self._building = asyncio.Lock()
        async with self._building:
            if self._runner is None:
                from aiohttp import web

                from minietcd.server.etcdhttp import make_client_app

                app = make_client_app(self._server, self._api, self._cfg)
                # A client that goes away cancels its request (a watch stream ends with it).
                runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0, handler_cancellation=True)
                await runner.setup()
                self._runner = runner
        return self._runner

    async def _protocol_factory(self) -> Callable[[], asyncio.Protocol]:
        runner = await self._app_runner()
        server = runner.server
        assert server is not None  # set up
        return server

    async def stop_accepting(self) -> None:
        """Accept no new connection (those open go on: gRPC drains them next)."""
        for mux in self._muxes:
            await mux.stop_accepting()
        for site in self._sites:
            await site.stop()
        self._sites.clear()

    async def close(self) -> None:
        """Close what is still open: spliced connections and HTTP ones."""
        await self.stop_accepting()
        for mux in self._muxes:
            await mux.close()
        if self._splicer is not None:
            self._splicer.close()
        if self._runner is not None:
            await self._runner.cleanup()
