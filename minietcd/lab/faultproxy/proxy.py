"""Proxies, their toxic collections, and the collection of proxies.

Mirrors Toxiproxy's ``proxy.go``, ``toxic_collection.go`` and
``proxy_collection.go``: a proxy listens on ``listen``, dials ``upstream`` for
each client, and runs both directions through its toxic chains. Disabling a
proxy closes its listener (new clients are refused) and every open
connection; the toxics stay configured. ``listen`` is rewritten to the
address actually bound, so ``127.0.0.1:0`` picks a port once and keeps it
across disable/enable.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import random
import socket
from typing import Any

from minietcd.lab.faultproxy.apierror import (
    PROXY_ALREADY_EXISTS,
    PROXY_NOT_FOUND,
    TOXIC_NOT_FOUND,
    ApiError,
)
from minietcd.lab.faultproxy.link import Connection, Link, close_writer
from minietcd.lab.faultproxy.toxics import (
    Direction,
    ToxicWrapper,
    toxic_from_json,
    toxic_update_from_json,
)

log = logging.getLogger(__name__)


# --- addresses ------------------------------------------------------------------


def split_host_port(address: str) -> tuple[str, int]:
    """Go's ``net.SplitHostPort`` plus port parsing; ``""`` means any host, port 0."""
    if address == "":
        return "", 0
    if address.startswith("["):
        end = address.find("]")
        if end < 0:
            raise ValueError(f"address {address}: missing ']' in address")
        host, rest = address[1:end], address[end + 1 :]
        if not rest.startswith(":"):
            raise ValueError(f"address {address}: missing port in address")
        port_text = rest[1:]
    else:
        host, sep, port_text = address.rpartition(":")
        if not sep:
            raise ValueError(f"address {address}: missing port in address")
        if ":" in host:
            raise ValueError(f"address {address}: too many colons in address")
    if not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"address {port_text}: invalid port")
    return host, int(port_text)


def join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def bind_listener(address: str) -> tuple[socket.socket, str]:
    """Bind and listen on ``address`` the way Go's ``net.Listen("tcp", ...)`` does.

    Returns the socket and the bound address as Go prints it. A host name
    binds one of its addresses, IPv4 preferred (so ``localhost`` means
    127.0.0.1); an empty host binds every interface, dual-stack when the
    machine has IPv6. SO_REUSEADDR is set, as Go sets it, so a proxy can be
    re-enabled on its port while old connections sit in TIME_WAIT.
    """
    host, port = split_host_port(address)
    if host == "":
        # Dual-stack "::" where the kernel has IPv6, else IPv4 only.
        candidates = [(socket.AF_INET6, "::"), (socket.AF_INET, "0.0.0.0")]
    else:
        try:
            version = ipaddress.ip_address(host).version
            candidates = [(socket.AF_INET6 if version == 6 else socket.AF_INET, host)]
        except ValueError:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            infos.sort(key=lambda info: info[0] != socket.AF_INET)
            candidates = [(infos[0][0], str(infos[0][4][0]))]
    for index, (family, bind_host) in enumerate(candidates):
        try:
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError:
            if index + 1 < len(candidates):
                continue
            raise
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6 and host == "":
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            sock.bind((bind_host, port))
            sock.listen(socket.SOMAXCONN)
            sock.setblocking(False)
        except OSError:
            sock.close()
            if index + 1 < len(candidates):
                continue
            raise
        except BaseException:
            sock.close()
            raise
        bound_host, bound_port = sock.getsockname()[:2]
        return sock, join_host_port(bound_host, bound_port)
    raise OSError(f"no address to listen on for {address!r}")


# --- toxics of one proxy -------------------------------------------------------------


class ToxicCollection:
    """The toxic chains of one proxy and the live links they are applied to."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.chains: tuple[list[ToxicWrapper], list[ToxicWrapper]] = ([], [])
        self.links: set[Link] = set()

    def all(self) -> list[ToxicWrapper]:
        # Upstream chain first, then downstream, each in insertion order, as
        # Toxiproxy's GetToxicArray lists them.
        return [*self.chains[Direction.UPSTREAM], *self.chains[Direction.DOWNSTREAM]]

    def find(self, name: str) -> ToxicWrapper | None:
        for toxic in self.all():
            if toxic.name == name:
                return toxic
        return None

    def get(self, name: str) -> ToxicWrapper:
        toxic = self.find(name)
        if toxic is None:
            raise TOXIC_NOT_FOUND
        return toxic

    def _links(self, direction: Direction) -> list[Link]:
        # A snapshot: links started from now on are built from the chain as
        # already changed, so they must not be changed again.
        return [link for link in self.links if link.direction == direction and not link.done]

    async def add_json(self, body: Any) -> ToxicWrapper:
        toxic = toxic_from_json(body, lambda name: self.find(name) is not None)
        self.chains[toxic.direction].append(toxic)
        links = self._links(toxic.direction)
        await asyncio.gather(*(link.add_toxic(toxic) for link in links))
        return toxic

    async def update(self, toxic: ToxicWrapper, body: Any) -> None:
        toxic.attributes, toxic.toxicity = toxic_update_from_json(toxic, body)
        links = self._links(toxic.direction)
        await asyncio.gather(*(link.update_toxic(toxic) for link in links))

    async def remove(self, name: str) -> None:
        toxic = self.get(name)
        await self._remove(toxic)

    async def _remove(self, toxic: ToxicWrapper) -> None:
        self.chains[toxic.direction].remove(toxic)
        links = self._links(toxic.direction)
        await asyncio.gather(*(link.remove_toxic(toxic) for link in links))

    async def reset(self) -> None:
        for toxic in self.all():
            await self._remove(toxic)


# --- a proxy ------------------------------------------------------------------------


class Proxy:
    """One listening address forwarding to one upstream, with its toxics."""

    def __init__(self, name: str, listen: str, upstream: str, rng: random.Random) -> None:
        self.name = name
        self.listen = listen
        self.upstream = upstream
        self.enabled = False
        self.toxics = ToxicCollection(rng)
        self.rng = rng
        # Serialises changes to this proxy and its toxics, which await while
        # live links are rewired.
        self.lock = asyncio.Lock()
        self._server: asyncio.Server | None = None
        self._connections: set[Connection] = set()
        self._pending: set[asyncio.Task[Any]] = set()

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "listen": self.listen,
            "upstream": self.upstream,
            "enabled": self.enabled,
            "toxics": [toxic.to_json() for toxic in self.toxics.all()],
        }

    async def start(self) -> None:
        """Listen; a failure is a 500 as in Toxiproxy, and leaves the proxy disabled."""
        if self.enabled:
            return
        try:
            sock, bound = bind_listener(self.listen)
        except (OSError, ValueError) as exc:
            detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise ApiError(f"listen tcp {self.listen}: {detail}", 500) from None
        try:
            self._server = await asyncio.start_server(self._accept, sock=sock)
        except BaseException:
            sock.close()
            raise
        self.listen = bound
        self.enabled = True
        log.info("started proxy %s on %s -> %s", self.name, self.listen, self.upstream)

    def stop(self) -> None:
        """Stop listening and close every connection; synchronous, so it cannot hang."""
        if not self.enabled:
            return
        self.enabled = False
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._pending):
            task.cancel()
        for conn in list(self._connections):
            conn.close()
        log.info("stopped proxy %s on %s", self.name, self.listen)

    async def update(self, listen: str, upstream: str, enabled: bool) -> None:
        # Toxiproxy's Proxy.Update: a new address restarts the proxy.
        if listen != self.listen or upstream != self.upstream:
            was_enabled = self.enabled
            self.stop()
            self.listen = listen
            self.upstream = upstream
            if was_enabled and enabled:
                await self.start()
                return
        if enabled != self.enabled:
            if enabled:
                await self.start()
            else:
                self.stop()

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # asyncio runs a coroutine callback in a task of its own and logs it
        # as an error if it ends cancelled; dialling in a task of ours lets
        # stop() cancel a dial in progress quietly.
        if not self.enabled:
            writer.transport.abort()
            return
        conn = Connection(writer, self._connections.discard)
        self._connections.add(conn)
        task = asyncio.get_running_loop().create_task(self._connect(conn, reader, writer))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _connect(
        self, conn: Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            host, port = split_host_port(self.upstream)
            up_reader, up_writer = await asyncio.open_connection(host or None, port)
        except (OSError, ValueError) as exc:
            # Routine in the lab (a node is down), so not a warning.
            log.info("proxy %s: cannot reach upstream %s: %s", self.name, self.upstream, exc)
            close_writer(writer, reset=False)
            self._connections.discard(conn)
            return
        if conn.closed:
            close_writer(up_writer, reset=False)
            return
        conn.upstream = up_writer
        for direction, source, source_writer, target in (
            (Direction.UPSTREAM, reader, writer, up_writer),
            (Direction.DOWNSTREAM, up_reader, up_writer, writer),
        ):
            link = Link(
                conn,
                direction,
                list(self.toxics.chains[direction]),
                source,
                source_writer,
                target,
                self.rng,
                self._link_done,
            )
            conn.links.append(link)
            self.toxics.links.add(link)
        for link in conn.links:
            link.start()

    def _link_done(self, link: Link) -> None:
        self.toxics.links.discard(link)
        link.conn.link_done(link)


# --- all proxies --------------------------------------------------------------------------


class ProxyCollection:
    """Proxies by name (Toxiproxy's ``ProxyCollection``)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.proxies: dict[str, Proxy] = {}
        # Serialises adding, replacing and removing proxies.
        self.lock = asyncio.Lock()

    def get(self, name: str) -> Proxy:
        proxy = self.proxies.get(name)
        if proxy is None:
            raise PROXY_NOT_FOUND
        return proxy

    def new_proxy(self, name: str, listen: str, upstream: str) -> Proxy:
        return Proxy(name, listen, upstream, self.rng)

    async def add(self, proxy: Proxy, start: bool) -> None:
        if proxy.name in self.proxies:
            raise PROXY_ALREADY_EXISTS
        if start:
            await proxy.start()
        self.proxies[proxy.name] = proxy

    async def add_or_replace(self, proxy: Proxy, start: bool) -> Proxy:
        """Populate's rule: keep a same-named proxy whose listen and upstream match."""
        existing = self.proxies.get(proxy.name)
        if existing is not None:
            if existing.listen == proxy.listen and existing.upstream == proxy.upstream:
                return existing
            async with existing.lock:
                existing.stop()
        # As in Toxiproxy, a replacement that fails to listen leaves the old
        # proxy registered, stopped.
        if start:
            await proxy.start()
        self.proxies[proxy.name] = proxy
        return proxy

    async def remove(self, name: str) -> None:
        proxy = self.get(name)
        async with proxy.lock:
            proxy.stop()
        self.proxies.pop(name, None)

    def stop_all(self) -> None:
        for proxy in self.proxies.values():
            proxy.stop()
