"""Raw ``grpc.aio`` connections for the load generators, one TCP connection per channel.

Connection ``i`` goes to endpoint ``i % len(endpoints)``, and client ``c`` uses connection
``c % conns`` (etcd's benchmark hands its clients out over its connections the same way). gRPC
shares one TCP connection between channels with the same target and arguments unless told not
to; every channel here asks for a subchannel pool of its own, so ``--conns 8`` really is eight
connections. Endpoint syntax and TLS files are the client library's (:class:`Endpoint`,
:class:`TLSConfig`); with a user name, one Authenticate call gets the token sent with every
request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc

from minietcd.api.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from minietcd.client._connection import Endpoint, TLSConfig

MAX_MESSAGE = 2 * 1024 * 1024 * 1024 - 1
#: The generated stub module (its constructors are untyped).
_STUBS: Any = rpc_pb2_grpc


class DialError(Exception):
    """An endpoint could not be connected to within the dial timeout."""


@dataclass(slots=True)
class Target:
    """Where to connect and how: endpoints, TLS and credentials (from minietcdctl's flags)."""

    endpoints: Sequence[str]
    tls: TLSConfig = field(default_factory=TLSConfig)
    username: str = ""
    password: str = ""
    dial_timeout: float = 2.0


@dataclass(slots=True)
class Conn:
    """One channel and the stubs the workloads use on it."""

    endpoint: str
    channel: grpc.aio.Channel
    kv: rpc_pb2_grpc.KVStub
    lease: rpc_pb2_grpc.LeaseStub
    watch: rpc_pb2_grpc.WatchStub


@dataclass(slots=True)
class Pool:
    conns: list[Conn]
    #: gRPC metadata for every call (the auth token), or None.
    metadata: tuple[tuple[str, str], ...] | None = None

    def conn(self, client: int) -> Conn:
        """The connection of client number ``client``."""
        return self.conns[client % len(self.conns)]

    async def close(self) -> None:
        await asyncio.gather(*(c.channel.close() for c in self.conns), return_exceptions=True)


def _channel(ep: Endpoint, tls: TLSConfig) -> grpc.aio.Channel:
    options: list[tuple[str, Any]] = [
        ("grpc.use_local_subchannel_pool", 1),
        ("grpc.max_receive_message_length", MAX_MESSAGE),
        ("grpc.max_send_message_length", MAX_MESSAGE),
    ]
    if tls.server_name:
        options.append(("grpc.ssl_target_name_override", tls.server_name))
    if ep.secure:
        return grpc.aio.secure_channel(ep.target, tls.credentials(), options=options)
    return grpc.aio.insecure_channel(ep.target, options=options)


async def open_pool(target: Target, conns: int) -> Pool:
    """``conns`` connected channels spread over ``target.endpoints``.

    Raises :class:`DialError` if one cannot connect within the dial timeout and ``ValueError``
    for an endpoint that does not parse.
    """
    eps = [Endpoint.parse(e, target.tls.enabled) for e in target.endpoints]
    if not eps:
        raise ValueError("no endpoints")
    out: list[Conn] = []
    for i in range(max(1, conns)):
        ep = eps[i % len(eps)]
        ch = _channel(ep, target.tls)
        out.append(
            Conn(ep.url, ch, _STUBS.KVStub(ch), _STUBS.LeaseStub(ch), _STUBS.WatchStub(ch))
        )
    pool = Pool(out)
    try:
        await asyncio.wait_for(
            asyncio.gather(*(c.channel.channel_ready() for c in out)), max(target.dial_timeout, 0.1)
        )
    except TimeoutError:
        await pool.close()
        raise DialError("context deadline exceeded") from None
    if target.username:
        auth = _STUBS.AuthStub(out[0].channel)
        req = rpc_pb2.AuthenticateRequest(name=target.username, password=target.password)
        try:
            resp = await auth.Authenticate(req, timeout=max(target.dial_timeout, 5.0))
        except BaseException:
            await pool.close()
            raise
        pool.metadata = (("token", resp.token),)
    return pool
