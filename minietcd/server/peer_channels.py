"""The peer port's gRPC plumbing shared by the :class:`~minietcd.server.transport.Transport`
and a member that is joining: channel and server options (message limits, reconnect back-off,
handshake and idle timeouts), the lab's per-link routes, opening a channel to a peer URL, and
:func:`fetch_cluster_members` (the client of ``Members``, etcd's GET /members), with which a
member joining an existing cluster learns the cluster id and member list."""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

import grpc
import grpc.aio

from minietcd.api.raftpb import raft_pb2
from minietcd.api.raftpb.raft_pb2_grpc import RaftPeerStub
from minietcd.errors import ClusterInfoError, ConfigError
from minietcd.server.listeners import bind_grpc
from minietcd.server.urls import parse_url

MAX_GRPC_MESSAGE_BYTES: Final = 64 << 20  # gRPC message limit both ways (default 4 MiB is too small)
BACKOFF_MIN: Final = 0.05  # seconds between reconnect attempts, doubling up to BACKOFF_MAX
BACKOFF_MAX: Final = 1.0

# Lab-only hook (minietcd-lab, docs/lab.md): a JSON object {peer URL: URL to dial instead}, so each
# outgoing peer connection can go through a fault proxy of its own. Unset: peers are dialled as is.
LAB_PEER_ROUTES_ENV: Final = "MINIETCD_LAB_PEER_ROUTES"

CHANNEL_OPTIONS: Final = [
    ("grpc.max_send_message_length", MAX_GRPC_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_GRPC_MESSAGE_BYTES),
    # Our own loop reconnects with backoff; gRPC's (up to 2 minutes) must not stack on top,
    # and a fresh channel must mean a fresh TCP connection, not a shared subchannel.
    ("grpc.use_local_subchannel_pool", 1),
    ("grpc.initial_reconnect_backoff_ms", int(BACKOFF_MIN * 1000)),
    ("grpc.max_reconnect_backoff_ms", int(BACKOFF_MAX * 1000)),
    ("grpc.enable_retries", 0),
]
# Strangers that connect and never finish TLS + HTTP/2 setup, or never call, are dropped (gRPC's
# defaults: 2 minutes, and never). A peer's connection always carries its Send stream.
HANDSHAKE_TIMEOUT_MS: Final = 10_000  # generous: a lab link may add seconds of latency to TLS
IDLE_CONNECTION_MS: Final = 60_000
SERVER_OPTIONS: Final = [
    ("grpc.max_send_message_length", MAX_GRPC_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_GRPC_MESSAGE_BYTES),
    ("grpc.server_handshake_timeout_ms", HANDSHAKE_TIMEOUT_MS),
    ("grpc.max_connection_idle_ms", IDLE_CONNECTION_MS),
]

#: ``await factory(url, options)``: a new grpc.aio channel to a peer URL (e.g.
#: minietcd.server.tls.ChannelOpener, which handles auto TLS). May raise OSError.
ChannelFactory = Callable[[str, Sequence[tuple[str, Any]]], Awaitable[Any]]


def bind_peer_server(
    urls: Sequence[str],
    credentials: grpc.ServerCredentials | None,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
) -> grpc.aio.Server:
    """A server listening on the peer URLs, not started (:meth:`Transport.serve`); ListenError."""
    parsed = [parse_url(u) for u in urls]
    return bind_grpc(parsed, credentials=credentials, options=SERVER_OPTIONS, interceptors=interceptors)


async def fetch_cluster_members(
    peer_urls: Sequence[str],
    channel_credentials: grpc.ChannelCredentials | None = None,
    timeout: float = 5.0,
    channel_factory: ChannelFactory | None = None,
    own_peer_urls: Sequence[str] = (),
) -> raft_pb2.MembersResponse:
    """Ask the members at ``peer_urls`` (first answer wins) for the cluster id and member list.

    For a member started with ``--initial-cluster-state existing``, like etcd's GET /members;
    ``own_peer_urls`` are its advertised peer URLs, without which it is refused (MembersRequest).
    Raises ClusterInfoError if none answers. ``channel_factory`` (as for :class:`Transport`) replaces
    ``channel_credentials``.
    """
    failures: list[str] = []
    for url in peer_urls:
        try:
            if channel_factory is not None:
                channel = await channel_factory(url, CHANNEL_OPTIONS)
            else:
                channel = open_peer_channel(url, channel_credentials)
        except (ConfigError, OSError) as e:  # OSError: auto TLS could not fetch the certificate
            failures.append(f"{url}: {describe_error(e)}")
            continue
        try:
            response: raft_pb2.MembersResponse = await peer_stub(channel).Members(
                raft_pb2.MembersRequest(peer_urls=list(own_peer_urls)), timeout=timeout
            )
            return response
        except grpc.aio.AioRpcError as e:
            failures.append(f"{url}: {describe_error(e)}")
        finally:
            await channel.close(grace=None)
    raise ClusterInfoError(
        "cannot fetch cluster info from peer urls: could not retrieve cluster information "
        f"from the given URLs ({'; '.join(failures) or 'no URLs given'})"
    )


def peer_stub(channel: Any) -> Any:
    return RaftPeerStub(channel)


def lab_route(url: str) -> str:
    """The URL to dial for peer URL ``url``: itself, or its route in $MINIETCD_LAB_PEER_ROUTES."""
    routes = os.environ.get(LAB_PEER_ROUTES_ENV)
    if not routes:
        return url
    try:
        return str(json.loads(routes).get(url.rstrip("/"), url))
    except (ValueError, AttributeError) as e:
        raise ConfigError(f"${LAB_PEER_ROUTES_ENV} must be a JSON object of URL -> URL: {e}") from e


def open_peer_channel(url: str, credentials: grpc.ChannelCredentials | None) -> Any:
    """A new grpc.aio channel (hence a new TCP connection) to a peer URL (or its lab route)."""
    parsed = parse_url(lab_route(url))
    if parsed.is_tls:
        creds = credentials or grpc.ssl_channel_credentials()
        return grpc.aio.secure_channel(parsed.grpc_target, creds, options=CHANNEL_OPTIONS)
    return grpc.aio.insecure_channel(parsed.grpc_target, options=CHANNEL_OPTIONS)


def describe_error(e: Exception) -> str:
    """An error in one line for the log: gRPC's code and details, or the exception's text."""
    if isinstance(e, grpc.aio.AioRpcError):
        return f"{e.code().name}: {e.details()}"
    return str(e) or repr(e)
