"""etcd's Lease service: Grant, Revoke, KeepAlive, TimeToLive, Leases.

Grant and Revoke go through the log. KeepAlive and TimeToLive need the lease deadlines, which
only the leader keeps (its lessor is "primary"), so a follower forwards them to the leader's
client URL, as etcd forwards them to the leader over its peer port. An https client URL is
dialled with the member's client TLS (``open_channel``: trusted CA and, for client cert auth,
our cert as the client certificate; auto TLS pins the leader's self-signed certificate).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc

from minietcd.api.etcdserverpb import raft_internal_pb2, rpc_pb2, rpc_pb2_grpc
from minietcd.errors import LeaseNotFoundError, LeaseNotPrimaryError, ServerError
from minietcd.server.etcd_server import ERR_NO_LEADER, ERR_TIMEOUT, EtcdServer
from minietcd.server.tls import ChannelOpener
from minietcd.server.v3rpc.guard import guarded

FORWARD_TIMEOUT = 5.0
log = logging.getLogger("minietcd.v3rpc")


class LeaseService(rpc_pb2_grpc.LeaseServicer):
    def __init__(
        self, server: EtcdServer, open_channel: Callable[[str], Awaitable[grpc.aio.Channel]] | None = None
    ) -> None:
        self.s = server
        # http: insecure; https: system roots, unless main passes the member's client TLS
        self._open_channel = open_channel or ChannelOpener()
        self._channels: dict[str, grpc.aio.Channel] = {}

    # -- through the log ------------------------------------------------------------------------

    async def LeaseGrant(
        self, request: rpc_pb2.LeaseGrantRequest, context: grpc.aio.ServicerContext
    ) -> rpc_pb2.LeaseGrantResponse:
        return await guarded(context, self._grant(request))

    async def _grant(self, req: rpc_pb2.LeaseGrantRequest) -> rpc_pb2.LeaseGrantResponse:
        self.s.check_quota(grows=True)
        if req.ID == 0:
            # The proposer picks the id (a positive int64), so every member applies the same.
            req.ID = self.s.ids.next() & ((1 << 63) - 1)
        resp = await self.s.propose(raft_internal_pb2.InternalRaftRequest(lease_grant=req))
        assert isinstance(resp, rpc_pb2.LeaseGrantResponse)
        resp.header.CopyFrom(self.s.header())
        return resp

    async def LeaseRevoke(
        self, request: rpc_pb2.LeaseRevokeRequest, context: grpc.aio.ServicerContext
    ) -> rpc_pb2.LeaseRevokeResponse:
        return await guarded(context, self._revoke(request))

    async def _revoke(self, req: rpc_pb2.LeaseRevokeRequest) -> rpc_pb2.LeaseRevokeResponse:
        resp = await self.s.propose(raft_internal_pb2.InternalRaftRequest(lease_revoke=req))
        assert isinstance(resp, rpc_pb2.LeaseRevokeResponse)
        resp.header.CopyFrom(self.s.header(resp.header.revision or None))
        return resp

    # -- on the leader ----------------------------------------------------------------------------

    async def LeaseKeepAlive(
        self,
        request_iterator: AsyncIterator[rpc_pb2.LeaseKeepAliveRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[rpc_pb2.LeaseKeepAliveResponse]:
        async for req in request_iterator:
            try:
                ttl = await self._renew(req.ID)
            except ServerError as e:
                await context.abort(grpc.StatusCode.UNAVAILABLE, str(e))
            yield rpc_pb2.LeaseKeepAliveResponse(header=self.s.header(), ID=req.ID, TTL=ttl)

    async def _renew(self, lease_id: int) -> int:
        """Renew here if this member's lessor is primary, else forward to the leader. As etcd's
        LeaseRenew (etcdserver/v3_server.go), a forward that fails (the leader just went away,
        an election is on) is tried again, 50 ms apart, with the leader known then, until
        FORWARD_TIMEOUT: "no leader" if none was elected by then, else "request timed out"."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + FORWARD_TIMEOUT

        async def one() -> AsyncIterator[rpc_pb2.LeaseKeepAliveRequest]:
            yield rpc_pb2.LeaseKeepAliveRequest(ID=lease_id)

        while True:
            try:
                return self.s.sm.lessor.renew(lease_id)
            except LeaseNotFoundError:
                return 0  # etcd answers an unknown (or just expired) lease with TTL 0
            except LeaseNotPrimaryError:
                pass
            failure = ERR_TIMEOUT
            try:
                stub = await self._leader_stub()
                call = stub.LeaseKeepAlive(one(), timeout=max(0.05, deadline - loop.time()))
                async for resp in call:
                    return int(resp.TTL)
                return 0
            except ServerError as e:
                failure = str(e)  # no leader known yet
            except grpc.aio.AioRpcError as e:
                log.debug("lease: forwarding a renewal to the leader failed: %s", e.details())
            if loop.time() >= deadline:
                raise ServerError(failure)
            await asyncio.sleep(0.05)

    async def LeaseTimeToLive(
        self, request: rpc_pb2.LeaseTimeToLiveRequest, context: grpc.aio.ServicerContext
    ) -> rpc_pb2.LeaseTimeToLiveResponse:
        return await guarded(context, self._ttl(request))

    async def _ttl(self, req: rpc_pb2.LeaseTimeToLiveRequest) -> rpc_pb2.LeaseTimeToLiveResponse:
        lessor = self.s.sm.lessor
        try:
            t = lessor.time_to_live(req.ID)
        except LeaseNotFoundError:
            # etcd answers an unknown lease with TTL -1 (etcdctl prints "already expired").
            return rpc_pb2.LeaseTimeToLiveResponse(header=self.s.header(), ID=req.ID, TTL=-1)
        except LeaseNotPrimaryError:
            stub = await self._leader_stub()
            resp: rpc_pb2.LeaseTimeToLiveResponse = await stub.LeaseTimeToLive(req, timeout=FORWARD_TIMEOUT)
            resp.header.CopyFrom(self.s.header())
            return resp
        return rpc_pb2.LeaseTimeToLiveResponse(
            header=self.s.header(),
            ID=req.ID,
            TTL=t.remaining_ttl,
            grantedTTL=t.granted_ttl,
            keys=list(t.keys) if req.keys else [],
        )

    async def LeaseLeases(
        self, request: rpc_pb2.LeaseLeasesRequest, context: grpc.aio.ServicerContext
    ) -> rpc_pb2.LeaseLeasesResponse:
        leases = [rpc_pb2.LeaseStatus(ID=lease.id) for lease in self.s.sm.lessor.leases()]
        return rpc_pb2.LeaseLeasesResponse(header=self.s.header(), leases=leases)

    # -- forwarding -------------------------------------------------------------------------------

    async def _leader_stub(self) -> rpc_pb2_grpc.LeaseStub:
        lead = self.s.leader
        member = self.s.sm.membership.members.get(lead)
        if lead == 0 or member is None or not member.client_urls:
            raise ServerError(ERR_NO_LEADER)
        url = member.client_urls[0]
        ch = self._channels.get(url)
        if ch is None or ch.get_state() == grpc.ChannelConnectivity.TRANSIENT_FAILURE:
            try:
                new = await self._open_channel(url)
            except OSError as e:  # auto TLS: the leader's certificate could not be fetched
                log.warning("lease: cannot reach the leader at %s: %s", url, e)
                raise ServerError(ERR_NO_LEADER) from e
            if ch is not None:  # a pinned certificate may be stale: redial with a fresh one
                await ch.close(grace=None)
            ch = self._channels[url] = new
        return rpc_pb2_grpc.LeaseStub(ch)
