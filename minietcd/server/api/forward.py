"""Lease calls only the leader can answer, forwarded to it (etcd's ``LeaseRenew`` /
``LeaseTimeToLive`` in ``etcdserver/v3_server.go``).

Only the leader keeps lease deadlines (its lessor is "primary"), so a follower asks the leader.
etcd does it over its peer port (``leasehttp``); we call the leader's own Lease service on its
first client URL. An https URL is dialled with the member's client TLS (``open_channel``: the
trusted CA and, for client cert auth, our certificate; auto TLS pins the leader's self-signed
certificate). Channels are kept per URL and redialled after a transient failure.

A reply that is one of etcd's errors is raised as its class, so the client sees what the
leader said; a leader that cannot be reached (or does not answer in time) is "etcdserver:
request timed out", etcd's answer once its forwarding gives up.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

import grpc

from minietcd.api.etcdserverpb import rpc_pb2
from minietcd.errors import MinietcdError, NoLeaderError, RequestTimeoutError, error_for_message
from minietcd.server.etcd_server import EtcdServer

if TYPE_CHECKING:
    from minietcd.api.etcdserverpb import rpc_pb2_grpc

FORWARD_TIMEOUT = 5.0
log = logging.getLogger("minietcd.server.api")

OpenChannel = Callable[[str], Awaitable[grpc.aio.Channel]]


class LeaderForwarder:
    def __init__(self, server: EtcdServer, open_channel: OpenChannel) -> None:
        self._s = server
        self._open_channel = open_channel
        self._channels: dict[str, grpc.aio.Channel] = {}

    async def renew(self, lease_id: int, timeout: float = FORWARD_TIMEOUT) -> int:
        """The leader's answer to a keep-alive of ``lease_id``: its new TTL (0: not found)."""
        stub = await self._leader_stub()

        async def one() -> AsyncIterator[rpc_pb2.LeaseKeepAliveRequest]:
            yield rpc_pb2.LeaseKeepAliveRequest(ID=lease_id)

        try:
            async for resp in stub.LeaseKeepAlive(one(), timeout=timeout):
                return int(resp.TTL)
        except grpc.aio.AioRpcError as e:
            raise reply_error(e) from None
        return 0

    async def time_to_live(self, req: rpc_pb2.LeaseTimeToLiveRequest) -> rpc_pb2.LeaseTimeToLiveResponse:
        stub = await self._leader_stub()
        try:
            resp: rpc_pb2.LeaseTimeToLiveResponse = await stub.LeaseTimeToLive(req, timeout=FORWARD_TIMEOUT)
        except grpc.aio.AioRpcError as e:
            raise reply_error(e) from None
        return resp

    async def close(self) -> None:
        for ch in self._channels.values():
            await ch.close(grace=None)
        self._channels.clear()

    async def _leader_stub(self) -> rpc_pb2_grpc.LeaseStub:
        # The generated stubs load with the first forwarded call: a member that never forwards
        # one keeps them out of its memory.
        from minietcd.api.etcdserverpb import rpc_pb2_grpc

        lead = self._s.leader
        member = self._s.sm.membership.members.get(lead)
        if lead == 0 or member is None or not member.client_urls:
            raise NoLeaderError()
        url = member.client_urls[0]
        ch = self._channels.get(url)
        if ch is None or ch.get_state() == grpc.ChannelConnectivity.TRANSIENT_FAILURE:
            try:
                new = await self._open_channel(url)
            except OSError as e:  # auto TLS: the leader's certificate could not be fetched
                log.warning("lease: cannot reach the leader at %s: %s", url, e)
                raise NoLeaderError() from e
            if ch is not None:  # a pinned certificate may be stale: redial with a fresh one
                await ch.close(grace=None)
            ch = self._channels[url] = new
        return rpc_pb2_grpc.LeaseStub(ch)


def reply_error(e: grpc.aio.AioRpcError) -> MinietcdError:
    """The typed error for a forwarded call that failed (see the module docstring)."""
    cls = error_for_message(e.details() or "")
    if cls is not None:
        return cls()
    return RequestTimeoutError(f"forwarding to the leader failed: {e.code()}: {e.details()}")
