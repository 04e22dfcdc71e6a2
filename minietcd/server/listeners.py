"""Every listener of a member, bound before its data dir is touched (etcd's ``embed.StartEtcd``
configures its peer and client listeners first, so a taken port fails before anything is
written; minietcd binds its metrics listeners first too, which etcd 3.4 binds only later).

A bind that fails is one line in Go's words, as etcd prints it::

    C | etcdmain: listen tcp 127.0.0.1:2379: bind: address already in use

gRPC's C core binds when a port is added and logs its own error line to stderr when that fails.
So each address is first bound here with a plain socket (and closed at once): a taken port is
reported in Go's words and gRPC never sees it. The gRPC servers are then created with their ports
added (the sockets listen from then on) and started later, once there is something to serve;
the metrics sockets are kept open and handed to the HTTP server (server/httpserver/).

``unix://host:port`` and ``unixs://host:port`` URLs listen on the socket file ``host:port`` in
the working directory, as etcd does. A file there that a live process listens on is a taken
address (``listen unix localhost:2379: bind: address already in use``); a socket file nobody
listens on (left by a member that was killed) is replaced. etcd 3.4 replaces it for its peer
URLs but refuses it for its client URLs, so a killed etcd cannot restart until the file is
removed by hand; minietcd restarts.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
from collections.abc import Sequence
from typing import Any

import grpc
import grpc.aio

from minietcd.errors import ConfigError, ListenError
from minietcd.server.urls import URL, lookup_name

#: gRPC's default SO_REUSEPORT would let a second member share our port silently; etcd (Go)
#: never sets it, so a second etcd on the same port fails with "address already in use".
NO_REUSEPORT = ("grpc.so_reuseport", 0)


def _go_addr(sockaddr: Any) -> str:
    host, port = sockaddr[0], sockaddr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _network(url: URL) -> str:
    """Go's network name in a listen error."""
    return "unix" if url.is_unix else "tcp"


def _reason(e: OSError) -> str:
    reason = e.strerror or str(e)
    return reason[:1].lower() + reason[1:]


def check_bindable(url: URL) -> None:
    """Bind and listen on ``url``'s address with a plain socket, then let it go: raise
    :class:`ListenError` in Go's words if that fails (etcd's ``net.Listen`` error)."""
    if url.is_unix:
        _check_unix_path(url.host)
        return
    host, port = url.hostname.strip("[]"), url.port
    try:
        name = lookup_name(host) if host else None
        infos = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as e:
        raise ListenError(f"listen tcp {url.host}: lookup {host}: {_reason(e)}") from None
    for family, kind, proto, _name, sockaddr in infos:
        with socket.socket(family, kind, proto) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Go's listeners do
            if family == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                s.bind(sockaddr)
                s.listen(1)
            except OSError as e:
                raise ListenError(f"listen tcp {_go_addr(sockaddr)}: bind: {_reason(e)}") from None


def _check_unix_path(path: str) -> None:
    """The unix twin of the TCP check: ListenError if ``path`` cannot become our socket."""
    taken = ListenError(f"listen unix {path}: bind: address already in use")
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as e:
        raise ListenError(f"listen unix {path}: bind: {_reason(e)}") from None
    if mode is not None:
        if not stat.S_ISSOCK(mode):
            raise taken  # never replace a file that is not a socket
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(path)
            except OSError:
                return  # a stale socket: nobody listens, the bind replaces it
        raise taken
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.bind(path)  # e.g. a missing directory or no write permission fails here
        except OSError as e:
            raise ListenError(f"listen unix {path}: bind: {_reason(e)}") from None
        os.unlink(path)


def bind_grpc(
    urls: Sequence[URL],
    *,
    credentials: grpc.ServerCredentials | None,
    options: Sequence[tuple[str, Any]],
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    what: str = "peer",
) -> grpc.aio.Server:
    """A gRPC server listening on every URL (https ones with ``credentials``), not started:
    the caller adds its services and starts it. Raises :class:`ListenError`."""
    for u in urls:
        if u.is_tls and credentials is None:
            raise ConfigError(f"{what} URL {u} is https but no TLS credentials are set")
        check_bindable(u)
    server = grpc.aio.server(options=[*options, NO_REUSEPORT], interceptors=list(interceptors))
    for u in urls:
        try:
            if u.is_tls:
                assert credentials is not None  # checked above
                server.add_secure_port(u.grpc_target, credentials)
            else:
                server.add_insecure_port(u.grpc_target)
        except RuntimeError as e:  # lost a race for the port since check_bindable
            raise ListenError(f"listen {_network(u)} {u.host}: bind: {e}") from None
    return server


def bind_sockets(urls: Sequence[URL]) -> list[socket.socket]:
    """Listening sockets for plain HTTP servers (the metrics URLs), held from now on."""
    socks: list[socket.socket] = []
    try:
        for u in urls:
            check_bindable(u)
            if u.is_unix:
                socks.append(_unix_server(u.host))
                continue
            host = u.hostname.strip("[]")
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            if not host:
                host = "0.0.0.0"
            s = socket.create_server((host, u.port or 0), family=family, reuse_port=False)
            s.setblocking(False)
            socks.append(s)
    except OSError as e:
        for s in socks:
            s.close()
        raise ListenError(f"listen {_network(u)} {u.host}: bind: {_reason(e)}") from None
    except BaseException:
        for s in socks:
            s.close()
        raise
    return socks


def _unix_server(path: str) -> socket.socket:
    """A listening unix socket at ``path`` (a stale socket file there is replaced)."""
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(os.lstat(path).st_mode):  # checked stale by check_bindable
            os.unlink(path)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.bind(path)
        s.listen(socket.SOMAXCONN)
        s.setblocking(False)
    except BaseException:
        s.close()
        raise
    return s


async def close_grpc(server: grpc.aio.Server | None) -> None:
    """Release the ports of a bound server that may never have been started. gRPC releases a
    server's listeners only when a *started* server stops, so it is started first (it has no
    service yet: a call in that instant is UNIMPLEMENTED)."""
    if server is None:
        return
    with contextlib.suppress(Exception):  # already started: fine
        await server.start()
    with contextlib.suppress(Exception):
        await server.stop(grace=None)
