"""The HTTP API: Toxiproxy v2's routes, bodies and status codes over aiohttp.

Routes, defaults and error codes follow Toxiproxy's ``api.go``. Two codes
surprise people and are kept on purpose: creating a toxic answers 200, not
201, and ``/populate`` answers ``{"proxies": null}`` when it created nothing
(a nil Go slice).
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from minietcd.lab.faultproxy.apierror import MISSING_FIELD, ApiError
from minietcd.lab.faultproxy.jsonio import (
    as_object,
    decode_body,
    get_bool,
    get_optional_bool,
    get_str,
    type_error,
)
from minietcd.lab.faultproxy.proxy import (
    Proxy,
    ProxyCollection,
    bind_listener,
    join_host_port,
    split_host_port,
)

log = logging.getLogger(__name__)

# The Toxiproxy release whose API this server follows, tagged so nobody
# mistakes it for the real thing.
VERSION = "2.7.0+minietcd-faultproxy"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(data), status=status, content_type="application/json")


def _error(err: ApiError) -> web.Response:
    return web.Response(text=err.body(), status=err.status, content_type="application/json")


@web.middleware
async def _api_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    # Toxiproxy refuses browsers so that a web page cannot drive it.
    if request.headers.get("User-Agent", "").startswith("Mozilla/"):
        return web.Response(text="User agent not allowed\n", status=403)
    try:
        return await handler(request)
    except ApiError as err:
        return _error(err)


def _parse_proxy_fields(obj: dict[str, Any]) -> tuple[str, str, str]:
    return (
        get_str(obj, "name", "", "Proxy"),
        get_str(obj, "listen", "", "Proxy"),
        get_str(obj, "upstream", "", "Proxy"),
    )


class FaultProxyServer:
    """A Toxiproxy-compatible server running in the current event loop.

    Use ``await FaultProxyServer(host, port).start()`` (or ``start_server``)
    and ``await server.close()``, or ``async with``. ``port=0`` picks a free
    port; ``server.port`` and ``server.url`` tell which. Clients that block
    (toxiproxy-python uses requests) must not be called from this loop's
    thread, or they wait on a server that cannot run: call them through
    ``asyncio.to_thread`` or run the server in a subprocess.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 8474, *, seed: int | None = None):
        self._bind = join_host_port(host, port)
        self.host = host
        self.port = port
        # One generator for toxicity rolls, jitter and slicing, so a seed
        # (toxiproxy-server's -seed) makes a run repeatable.
        self.rng = random.Random(seed)
        self.proxies = ProxyCollection(self.rng)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{join_host_port(self.host, self.port)}"

    def app(self) -> web.Application:
        app = web.Application(middlewares=[_api_errors])
        app.router.add_get("/version", self._version)
        app.router.add_post("/reset", self._reset)
        app.router.add_get("/proxies", self._proxy_index)
        app.router.add_post("/proxies", self._proxy_create)
        app.router.add_post("/populate", self._populate)
        app.router.add_get("/proxies/{proxy}", self._proxy_show)
        app.router.add_post("/proxies/{proxy}", self._proxy_update)
        app.router.add_patch("/proxies/{proxy}", self._proxy_update)
        app.router.add_delete("/proxies/{proxy}", self._proxy_delete)
        app.router.add_get("/proxies/{proxy}/toxics", self._toxic_index)
        app.router.add_post("/proxies/{proxy}/toxics", self._toxic_create)
        app.router.add_get("/proxies/{proxy}/toxics/{toxic}", self._toxic_show)
        app.router.add_post("/proxies/{proxy}/toxics/{toxic}", self._toxic_update)
        app.router.add_patch("/proxies/{proxy}/toxics/{toxic}", self._toxic_update)
        app.router.add_delete("/proxies/{proxy}/toxics/{toxic}", self._toxic_delete)
        return app

    async def start(self) -> FaultProxyServer:
        # shutdown_timeout bounds close(): idle keep-alive clients must not hold it up.
        runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            sock, bound = bind_listener(self._bind)
        except BaseException:
            await runner.cleanup()
            raise
        self.host, self.port = split_host_port(bound)
        site = web.SockSite(runner, sock)
        try:
            await site.start()
        except BaseException:
            sock.close()
            await runner.cleanup()
            raise
        self._runner = runner
        log.info("Toxiproxy-compatible API listening on %s", self.url)
        return self

    async def close(self) -> None:
        self.proxies.stop_all()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> FaultProxyServer:
        if self._runner is None:
            await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def populate(self, body: Any) -> tuple[list[Proxy], ApiError | None]:
        """Create or replace proxies from a decoded populate body (also used by -config).

        Returns the proxies handled before any failure, and the failure.
        """
        if body is None:
            items: list[Any] = []
        elif isinstance(body, list):
            items = body
        else:
            raise type_error(body, "value", "[]struct { toxiproxy.Proxy; Enabled *bool }")
        where = "struct { toxiproxy.Proxy; Enabled *bool }"
        decoded: list[tuple[str, str, str, bool]] = []
        for item in items:
            obj = as_object(item, where)
            name, listen, upstream = _parse_proxy_fields(obj)
            enabled = get_optional_bool(obj, "enabled", "Proxy")
            decoded.append((name, listen, upstream, True if enabled is None else enabled))
        # Every entry is checked before any proxy is touched.
        for index, (name, _listen, upstream, _enabled) in enumerate(decoded, start=1):
            if not name:
                raise MISSING_FIELD.joined(f"name at proxy {index}")
            if not upstream:
                raise MISSING_FIELD.joined(f"upstream at proxy {index}")
        done: list[Proxy] = []
        async with self.proxies.lock:
            for name, listen, upstream, enabled in decoded:
                proxy = self.proxies.new_proxy(name, listen, upstream)
                try:
                    done.append(await self.proxies.add_or_replace(proxy, enabled))
                except ApiError as err:
                    return done, err
        return done, None

    # --- handlers ------------------------------------------------------------------

    async def _version(self, _request: web.Request) -> web.Response:
        return web.Response(
            text=json.dumps({"version": VERSION}) + "\n",
            content_type="application/json",
            charset="utf-8",
        )

    async def _reset(self, _request: web.Request) -> web.Response:
        async with self.proxies.lock:
            for proxy in list(self.proxies.proxies.values()):
                async with proxy.lock:
                    await proxy.start()
                    await proxy.toxics.reset()
        return web.Response(status=204)

    async def _proxy_index(self, _request: web.Request) -> web.Response:
        return _json({name: proxy.to_json() for name, proxy in self.proxies.proxies.items()})

    async def _proxy_create(self, request: web.Request) -> web.Response:
        obj = as_object(decode_body(await request.read()), "toxiproxy.Proxy")
        name, listen, upstream = _parse_proxy_fields(obj)
        enabled = get_bool(obj, "enabled", True, "Proxy")
        if not name:
            raise MISSING_FIELD.joined("name")
        if not upstream:
            raise MISSING_FIELD.joined("upstream")
        async with self.proxies.lock:
            proxy = self.proxies.new_proxy(name, listen, upstream)
            await self.proxies.add(proxy, enabled)
        return _json(proxy.to_json(), status=201)

    async def _populate(self, request: web.Request) -> web.Response:
        done, err = await self.populate(decode_body(await request.read()))
        data: dict[str, Any] = {} if err is None else err.to_json()
        # A Go nil slice: no proxies reads as null, not [].
        data["proxies"] = [proxy.to_json() for proxy in done] or None
        return _json(data, status=201 if err is None else err.status)

    async def _proxy_show(self, request: web.Request) -> web.Response:
        return _json(self.proxies.get(request.match_info["proxy"]).to_json())

    async def _proxy_update(self, request: web.Request) -> web.Response:
        proxy = self.proxies.get(request.match_info["proxy"])
        obj = as_object(decode_body(await request.read()), "toxiproxy.Proxy")
        async with proxy.lock:
            # Fields left out keep their current values; the name cannot change.
            get_str(obj, "name", "", "Proxy")
            listen = get_str(obj, "listen", proxy.listen, "Proxy")
            upstream = get_str(obj, "upstream", proxy.upstream, "Proxy")
            enabled = get_bool(obj, "enabled", proxy.enabled, "Proxy")
            await proxy.update(listen, upstream, enabled)
        return _json(proxy.to_json())

    async def _proxy_delete(self, request: web.Request) -> web.Response:
        async with self.proxies.lock:
            await self.proxies.remove(request.match_info["proxy"])
        return web.Response(status=204)

    async def _toxic_index(self, request: web.Request) -> web.Response:
        proxy = self.proxies.get(request.match_info["proxy"])
        return _json([toxic.to_json() for toxic in proxy.toxics.all()])

    async def _toxic_create(self, request: web.Request) -> web.Response:
        proxy = self.proxies.get(request.match_info["proxy"])
        body = decode_body(await request.read())
        async with proxy.lock:
            toxic = await proxy.toxics.add_json(body)
        return _json(toxic.to_json())

    async def _toxic_show(self, request: web.Request) -> web.Response:
        proxy = self.proxies.get(request.match_info["proxy"])
        return _json(proxy.toxics.get(request.match_info["toxic"]).to_json())

    async def _toxic_update(self, request: web.Request) -> web.Response:
        proxy = self.proxies.get(request.match_info["proxy"])
        raw = await request.read()
        async with proxy.lock:
            # Toxiproxy looks the toxic up before it reads the body.
            toxic = proxy.toxics.get(request.match_info["toxic"])
            await proxy.toxics.update(toxic, decode_body(raw))
        return _json(toxic.to_json())

    async def _toxic_delete(self, request: web.Request) -> web.Response:
        proxy = self.proxies.get(request.match_info["proxy"])
        async with proxy.lock:
            await proxy.toxics.remove(request.match_info["toxic"])
        return web.Response(status=204)


async def start_server(
    host: str = "127.0.0.1", port: int = 8474, *, seed: int | None = None
) -> FaultProxyServer:
    """Start a fault proxy in the running loop and return its handle (call ``close()``)."""
    return await FaultProxyServer(host, port, seed=seed).start()
