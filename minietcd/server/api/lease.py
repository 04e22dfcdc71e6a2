"""etcd's Lessor (``etcdserver/v3_server.go``): Grant, Revoke, KeepAlive, TimeToLive, Leases.

Grant and Revoke go through the log. KeepAlive and TimeToLive need the lease deadlines, which
only the leader keeps, so on a follower they are forwarded to it (:mod:`.forward`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterable

from minietcd.api.etcdserverpb import raft_internal_pb2, rpc_pb2
from minietcd.errors import (
    LeaseNotFoundError,
    LeaseNotPrimaryError,
    MinietcdError,
    NoLeaderError,
    RequestTimeoutError,
)
from minietcd.server.api.admission import Admission, Op, RequestContext
from minietcd.server.api.authorize import stamp
from minietcd.server.api.forward import FORWARD_TIMEOUT, LeaderForwarder
from minietcd.server.etcd_server import EtcdServer

_Request = raft_internal_pb2.InternalRaftRequest


class Lease:
    def __init__(self, server: EtcdServer, admission: Admission, forwarder: LeaderForwarder) -> None:
        self._s = server
        self._admission = admission
        self._forward = forwarder

    # -- through the log ------------------------------------------------------------------------

    async def grant(self, ctx: RequestContext, req: rpc_pb2.LeaseGrantRequest) -> rpc_pb2.LeaseGrantResponse:
        info = await self._admission.check(ctx, Op.LEASE_GRANT, req)
        self._s.check_quota(grows=True)
        if req.ID == 0:
            # The proposer picks the id (a positive int64), so every member applies the same.
            req.ID = self._s.ids.next() & ((1 << 63) - 1)
        entry = _Request(lease_grant=req)
        stamp(entry.header, info)
        resp = await self._s.propose_for(entry, rpc_pb2.LeaseGrantResponse)
        resp.header.CopyFrom(self._s.header())
        return resp

    async def revoke(
        self, ctx: RequestContext, req: rpc_pb2.LeaseRevokeRequest
    ) -> rpc_pb2.LeaseRevokeResponse:
        info = await self._admission.check(ctx, Op.LEASE_REVOKE, req)
        entry = _Request(lease_revoke=req)
        stamp(entry.header, info)
        resp = await self._s.propose_for(entry, rpc_pb2.LeaseRevokeResponse)
        resp.header.CopyFrom(self._s.header(resp.header.revision or None))
        return resp

    # -- on the leader ----------------------------------------------------------------------------

    async def keep_alive(
        self, ctx: RequestContext, requests: AsyncIterable[rpc_pb2.LeaseKeepAliveRequest]
    ) -> AsyncGenerator[rpc_pb2.LeaseKeepAliveResponse, None]:
        """One keep-alive stream: a response for each request, until the requests end."""
        await self._admission.check(ctx, Op.LEASE_KEEP_ALIVE)
        async for req in requests:
            ttl = await self.renew(req.ID)
            yield rpc_pb2.LeaseKeepAliveResponse(header=self._s.header(), ID=req.ID, TTL=ttl)

    async def renew(self, lease_id: int) -> int:
        """etcd's LeaseRenew: the lease's TTL after the renewal, 0 for a lease that does not
        exist (or has just expired), as etcd answers a keep-alive. On a follower it is
        forwarded to the leader; as in etcd (etcdserver/v3_server.go), a forward that fails
        (the leader just went away, an election is on) is tried again, 50 ms apart, with the
        leader known then, until FORWARD_TIMEOUT: "no leader" if none was elected by then,
        else "request timed out"."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + FORWARD_TIMEOUT
        while True:
            try:
                return self._s.sm.lessor.renew(lease_id)
            except LeaseNotFoundError:
                return 0
            except LeaseNotPrimaryError:
                pass
            try:
                return await self._forward.renew(lease_id, max(0.05, deadline - loop.time()))
            except MinietcdError as e:
                failure = e
            if loop.time() >= deadline:
                raise failure if isinstance(failure, NoLeaderError) else RequestTimeoutError()
            await asyncio.sleep(0.05)

    async def time_to_live(
        self, ctx: RequestContext, req: rpc_pb2.LeaseTimeToLiveRequest
    ) -> rpc_pb2.LeaseTimeToLiveResponse:
        await self._admission.check(ctx, Op.LEASE_TIME_TO_LIVE, req)
        try:
            t = self._s.sm.lessor.time_to_live(req.ID)
        except LeaseNotFoundError:
            # etcd answers an unknown lease with TTL -1 (etcdctl prints "already expired").
            return rpc_pb2.LeaseTimeToLiveResponse(header=self._s.header(), ID=req.ID, TTL=-1)
        except LeaseNotPrimaryError:
            # The leader is asked for the deadline only: the keys were checked here, against
            # this member's copy of the lease, and are answered from it (a forwarded request
            # carries no credentials for the leader to check them again).
            resp = await self._forward.time_to_live(rpc_pb2.LeaseTimeToLiveRequest(ID=req.ID))
            resp.header.CopyFrom(self._s.header())
            if req.keys and resp.TTL != -1:
                lease = self._s.sm.lessor.lookup(req.ID)
                resp.keys.extend(lease.keys if lease is not None else ())
            return resp
        return rpc_pb2.LeaseTimeToLiveResponse(
            header=self._s.header(),
            ID=req.ID,
            TTL=t.remaining_ttl,
            grantedTTL=t.granted_ttl,
            keys=list(t.keys) if req.keys else [],
        )

    async def leases(
        self, ctx: RequestContext, req: rpc_pb2.LeaseLeasesRequest
    ) -> rpc_pb2.LeaseLeasesResponse:
        await self._admission.check(ctx, Op.LEASE_LEASES, req)
        leases = [rpc_pb2.LeaseStatus(ID=lease.id) for lease in self._s.sm.lessor.leases()]
        return rpc_pb2.LeaseLeasesResponse(header=self._s.header(), leases=leases)
