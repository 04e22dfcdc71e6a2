"""One client URL, both protocols: etcd's cmux, for a gRPC server that can only listen itself.

etcd serves gRPC (HTTP/2) and HTTP/1.1 (the JSON gateway, ``/health``, ``/metrics``...) on every
``--listen-client-urls`` URL: on a plain URL ``soheilhy/cmux`` looks at the first bytes of each
connection (``embed/serve.go``), on an https URL Go's HTTP server dispatches each request by
protocol and content type. minietcd's gRPC server is grpcio's C core, which accepts only on
sockets it binds itself, so a :class:`ClientMux` owns the client URL's socket and routes each
connection it accepts:

* **gRPC** (a plain connection that opens with HTTP/2's preface ``PRI * HTTP/2.0``; a TLS
  connection whose ClientHello offers ALPN ``h2`` and not ``http/1.1``, as every gRPC client
  does): spliced, bytes untouched, to grpcio listening on an abstract unix socket of this
  process. On https the bytes are still encrypted: grpcio does the handshake itself, with the
  same credentials, so client certificates (and their Common Name) work as before.
* **HTTP** (anything else): handed, as an accepted socket, to the HTTP server's protocol
  (server/httpserver/, built on the first HTTP connection: a member nobody asks over HTTP never
  loads it); on https
  this module's SSL context does the handshake and offers only ``http/1.1`` (curl, which offers
  both, then speaks HTTP/1.1).

Nothing is consumed while deciding (``MSG_PEEK``), so either side sees the connection from its
first byte. A gRPC connection's bytes are forwarded by two asyncio protocols on the event loop
(:class:`_Splice`), or, with ``MINIETCD_SPLICE=thread``, by the splicing thread of
:mod:`.splicer`; what each costs is measured in docs/benchmarks.md ("One client URL, both
protocols").
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import secrets
import socket
import ssl
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from minietcd.server.splicer import Splicer

log = logging.getLogger("minietcd.server.clientmux")

#: HTTP/2's connection preface (RFC 7540 section 3.5): a gRPC client's first bytes.
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#: TLS record type of a handshake message, and the handshake type of a ClientHello.
_TLS_HANDSHAKE, _CLIENT_HELLO = 0x16, 0x01
#: The ALPN extension (RFC 7301).
_EXT_ALPN = 0x0010
#: Longest ClientHello we wait for (several TLS records of 16 KiB would be absurd).
_MAX_HELLO = 64 * 1024
#: How long a connection may take to send the bytes that decide its protocol.
PEEK_TIMEOUT = 30.0
#: What Go's HTTP server answers plain HTTP sent to an https URL (net/http server.go).
_PLAIN_ON_TLS = b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"
_HTTP_METHODS = (b"GET ", b"POST", b"PUT ", b"HEAD", b"DELE", b"OPTI", b"PATC", b"CONN", b"TRAC")

#: Makes the HTTP side's protocol factory (:meth:`HttpServer.protocol`) on first use.
HttpFactory = Callable[[], Awaitable[Callable[[], asyncio.Protocol]]]


class Route(enum.Enum):
    GRPC = "grpc"
    HTTP = "http"
    #: Plain HTTP on an https URL: answered with Go's one-line 400, then closed.
    PLAIN_ON_TLS = "plain-on-tls"


def classify_plain(head: bytes) -> Route | None:
    """The route of a plain connection that started with ``head``; None: need more bytes."""
    n = min(len(head), len(H2_PREFACE))
    if head[:n] != H2_PREFACE[:n]:
        return Route.HTTP
    return Route.GRPC if n == len(H2_PREFACE) else None


def classify_tls(head: bytes) -> Route | None:
    """The route of a TLS connection whose first bytes are ``head``; None: need more bytes."""
    if not head:
        return None
    if head[0] != _TLS_HANDSHAKE:
        if any(m.startswith(head[:4]) or head.startswith(m) for m in _HTTP_METHODS):
            return Route.PLAIN_ON_TLS if len(head) >= 4 else None
        return Route.HTTP  # not TLS at all: the handshake fails and the connection closes
    hello = _handshake_bytes(head)
    if hello is None:
        return None if len(head) < _MAX_HELLO else Route.HTTP
    protocols = alpn_protocols(hello)
    return Route.GRPC if b"h2" in protocols and b"http/1.1" not in protocols else Route.HTTP


def _handshake_bytes(head: bytes) -> bytes | None:
    """The first handshake message, joined from its TLS records; None if not all there yet."""
    out = b""
    pos = 0
    while True:
        if len(head) < pos + 5:
            return None
        if head[pos] != _TLS_HANDSHAKE:
            return out  # a malformed hello: parse what there is
        length = int.from_bytes(head[pos + 3 : pos + 5], "big")
        if len(head) < pos + 5 + length:
            return None
        out += head[pos + 5 : pos + 5 + length]
        pos += 5 + length
        if len(out) >= 4 and len(out) >= 4 + int.from_bytes(out[1:4], "big"):
            return out


def alpn_protocols(hello: bytes) -> list[bytes]:
    """The ALPN protocol names a ClientHello handshake message offers (RFC 8446 4.1.2)."""
    try:
        if hello[0] != _CLIENT_HELLO:
            return []
        pos = 4 + 2 + 32  # type + length, legacy_version, random
        pos += 1 + hello[pos]  # session id
        pos += 2 + int.from_bytes(hello[pos : pos + 2], "big")  # cipher suites
        pos += 1 + hello[pos]  # compression methods
        end = pos + 2 + int.from_bytes(hello[pos : pos + 2], "big")
        pos += 2
        while pos + 4 <= end:
            kind = int.from_bytes(hello[pos : pos + 2], "big")
            size = int.from_bytes(hello[pos + 2 : pos + 4], "big")
            data = hello[pos + 4 : pos + 4 + size]
            pos += 4 + size
            if kind != _EXT_ALPN:
                continue
            names, i = [], 2
            while i < len(data):
                names.append(data[i + 1 : i + 1 + data[i]])
                i += 1 + data[i]
            return names
    except IndexError:
        pass
    return []


#: The client address behind each spliced gRPC connection, by the abstract unix name its inner
#: connection is bound to: grpcio only sees the inner connection, and reports it as
#: ``unix-abstract:<name>`` (what :func:`client_address` translates back).
_CLIENTS: dict[str, str] = {}
_PEER_PREFIX = "unix-abstract:"


def client_address(grpc_peer: str) -> str | None:
    """The client's ``host:port`` for gRPC's peer string of a spliced connection, else None."""
    if not grpc_peer.startswith(_PEER_PREFIX):
        return None
    return _CLIENTS.get(grpc_peer[len(_PEER_PREFIX) :])


def remote_address(grpc_peer: str) -> str:
    """gRPC's peer (``ipv4:127.0.0.1:52744``, ``ipv6:[::1]:5``, ``unix:...``) as Go's
    ``RemoteAddr().String()``: the client's own address for a call through the multiplexer."""
    spliced = client_address(grpc_peer)
    if spliced is not None:
        return spliced
    kind, _, address = grpc_peer.partition(":")
    return address if kind in ("ipv4", "ipv6") else grpc_peer


def _go_address(addr: object) -> str:
    """A socket address as Go's RemoteAddr().String() prints it (``[::1]:5`` for IPv6)."""
    if isinstance(addr, tuple) and len(addr) >= 2:
        host, port = addr[0], addr[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(addr)


def internal_grpc_address() -> tuple[str, str]:
    """A fresh abstract unix socket for grpcio behind a mux: (grpc's address, Python's)."""
    name = f"minietcd-{os.getpid()}-{secrets.token_hex(6)}"
    return f"unix-abstract:{name}", "\0" + name


class _Splice(asyncio.Protocol):
    """One direction's reader: what it reads is written to ``peer``. Backpressure both ways."""

    __slots__ = ("closed", "mux", "on_close", "peer", "pending", "transport")

    def __init__(self, mux: ClientMux | None, on_close: Callable[[], object] = lambda: None) -> None:
        self.on_close = on_close  # called once this half's connection is gone
        self.transport: asyncio.Transport | None = None
        self.peer: _Splice | None = None
        self.pending: list[bytes] = []  # read before the peer was connected
        self.mux = mux  # the client side registers itself, to be closed with the mux
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        if self.mux is not None:
            self.mux._open.add(self)

    def data_received(self, data: bytes) -> None:
        peer = self.peer
        if peer is not None and peer.transport is not None:
            peer.transport.write(data)
        else:
            self.pending.append(data)

    def eof_received(self) -> bool:
        # HTTP/2 has no half-close: one side's end is the connection's. (Passing a half-close
        # on left grpcio holding its end of the internal socket.) close() flushes what is queued.
        peer = self.peer
        if peer is not None and peer.transport is not None:
            peer.transport.close()
        return False

    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.on_close()
        if self.mux is not None:
            self.mux._open.discard(self)
        if self.peer is not None and self.peer.transport is not None and not self.peer.closed:
            self.peer.transport.close()

    def link(self, peer: _Splice) -> None:
        """Join two connected halves; flush what each read before the other was there."""
        self.peer, peer.peer = peer, self
        for half in (self, peer):
            for data in half.pending:
                assert half.peer is not None and half.peer.transport is not None
                half.peer.transport.write(data)
            half.pending.clear()
            if half.closed and half.peer is not None and half.peer.transport is not None:
                half.peer.transport.close()


class ClientMux:
    """Serves one client URL's listening socket (see the module docstring)."""

    def __init__(
        self,
        sock: socket.socket,
        *,
        grpc_address: str,
        http: HttpFactory,
        ssl_context: ssl.SSLContext | None = None,
        splicer: Splicer | None = None,
        grpc_engine: Callable[[], asyncio.Protocol] | None = None,
    ) -> None:
        self.sock = sock
        self.grpc_engine = grpc_engine  # serves plain gRPC connections itself (h2grpc), if set
        self.grpc_address = grpc_address  # Python's form: "\0name" (abstract unix socket)
        self.http = http
        self.ssl_context = ssl_context
        self._accepting: asyncio.Task[None] | None = None
        self._routing: set[asyncio.Task[None]] = set()
        self._open: set[_Splice] = set()
        self.splicer = splicer

    def start(self) -> None:
        self.sock.setblocking(False)
        self._accepting = asyncio.get_running_loop().create_task(self._accept_loop())

    async def stop_accepting(self) -> None:
        """Close the listening socket and drop connections not yet routed."""
        tasks = [t for t in (self._accepting, *self._routing) if t is not None]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(BaseException):
                await t
        self.sock.close()

    async def close(self) -> None:
        """Stop accepting and close every spliced connection (HTTP ones belong to its server)."""
        await self.stop_accepting()
        for half in list(self._open):
            if half.transport is not None:
                half.transport.abort()

    async def _accept_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, _addr = await loop.sock_accept(self.sock)
            except OSError as e:  # EMFILE and friends: keep serving those already connected
                log.warning("embed: accept on %s failed: %s", self.sock.getsockname(), e)
                await asyncio.sleep(0.1)
                continue
            task = loop.create_task(self._route(conn))
            self._routing.add(task)
            task.add_done_callback(self._routing.discard)

    async def _route(self, conn: socket.socket) -> None:
        """Decide, then hand ``conn`` over; a transport owns it from then on (never closed here)."""
        loop = asyncio.get_running_loop()
        try:
            conn.setblocking(False)
            classify = classify_tls if self.ssl_context is not None else classify_plain
            route = await asyncio.wait_for(_peek(conn, classify), PEEK_TIMEOUT)
            if route is Route.PLAIN_ON_TLS:
                with contextlib.suppress(OSError):
                    conn.send(_PLAIN_ON_TLS)
            if route is None or route is Route.PLAIN_ON_TLS:  # closed before saying anything
                conn.close()
                return
        except BaseException as e:
            conn.close()
            if isinstance(e, OSError | TimeoutError):
                log.debug("embed: client connection dropped before it was routed: %s", e)
                return
            raise
        try:
            if route is Route.GRPC and self.grpc_engine is not None and self.ssl_context is None:
                await loop.connect_accepted_socket(self.grpc_engine, conn)
            elif route is Route.GRPC:
                await self._splice(conn)
            else:
                factory = await self.http()
                await loop.connect_accepted_socket(factory, conn, ssl=self.ssl_context)
        except (OSError, ssl.SSLError) as e:  # the transport closed it
            log.debug("embed: client connection dropped: %s", e)

    async def _splice(self, conn: socket.socket) -> None:
        """Join ``conn`` to a new connection to grpcio's internal socket."""
        loop = asyncio.get_running_loop()
        inner = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # Named, so that grpcio's peer for the call names this connection and the client's
        # address can be found again (client_address): logs and checks show the real client.
        name = f"minietcd-{os.getpid()}-client-{secrets.token_hex(8)}"
        try:
            inner.bind("\0" + name)
            inner.setblocking(False)
            await loop.sock_connect(inner, self.grpc_address)
        except BaseException:
            inner.close()
            conn.close()
            raise
        with contextlib.suppress(OSError):  # the client is gone already: the splice finds out
            _CLIENTS[name] = _go_address(conn.getpeername())

        def forget() -> None:
            _CLIENTS.pop(name, None)

        if self.splicer is not None:
            self.splicer.join(conn, inner, forget)
            return
        back = _Splice(None, forget)
        try:
            await loop.create_unix_connection(lambda: back, sock=inner)
        except BaseException:
            forget()
            conn.close()
            raise
        front = _Splice(self)
        try:
            await loop.connect_accepted_socket(lambda: front, conn)
        except BaseException:
            if back.transport is not None:
                back.transport.close()
            raise
        front.link(back)


async def _peek(conn: socket.socket, classify: Callable[[bytes], Route | None]) -> Route | None:
    """Look at the connection's first bytes without taking them until ``classify`` decides."""
    loop = asyncio.get_running_loop()
    delay = 0.001
    seen = -1
    while True:
        await _readable(loop, conn)
        head = conn.recv(_MAX_HELLO, socket.MSG_PEEK)
        if not head:
            return None
        route = classify(head)
        if route is not None:
            return route
        if len(head) == seen:  # nothing new yet (peeked bytes keep the socket readable)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)
        seen = len(head)


async def _readable(loop: asyncio.AbstractEventLoop, conn: socket.socket) -> None:
    ready: asyncio.Future[Any] = loop.create_future()
    fd = conn.fileno()
    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(fd, wake)
    try:
        await ready
    finally:
        loop.remove_reader(fd)
