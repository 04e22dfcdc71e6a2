"""etcd's Election service (``v3electionpb.Election``, etcd 3.4's ``etcdserver/api/v3election``)
on the recipes of :mod:`.concurrency`.

- Campaign blocks until the campaign leads; its LeaderKey (name, key, create revision, lease)
  is what Proclaim and Resign take.
- Leader answers the current leader's key-value, or "election: no leader".
- Observe streams the leader's key-value and every later value, leader after leader.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator

from minietcd.api.v3electionpb import v3election_pb2 as pb
from minietcd.errors import MissingLeaderKeyError
from minietcd.server.api import concurrency
from minietcd.server.api.admission import Admission, Op, RequestContext
from minietcd.server.api.lock import ClientFor


class Election:
    def __init__(self, admission: Admission, client_for: ClientFor) -> None:
        self._admission = admission
        self._client_for = client_for

    async def campaign(self, ctx: RequestContext, req: pb.CampaignRequest) -> pb.CampaignResponse:
        await self._admission.check(ctx, Op.CAMPAIGN, req)
        c = self._client_for(ctx)
        header, key, rev, lease = await concurrency.as_etcd(
            concurrency.campaign(c, req.name, req.lease, req.value)
        )
        return pb.CampaignResponse(
            header=header, leader=pb.LeaderKey(name=req.name, key=key, rev=rev, lease=lease)
        )

    async def proclaim(self, ctx: RequestContext, req: pb.ProclaimRequest) -> pb.ProclaimResponse:
        await self._admission.check(ctx, Op.PROCLAIM, req)
        header = await concurrency.as_etcd(self._proclaim(self._client_for(ctx), req))
        return pb.ProclaimResponse(header=header)

    async def _proclaim(self, c: concurrency.LocalClient, req: pb.ProclaimRequest) -> concurrency.Header:
        lk = _leader_key(req)
        lease = await c.session_lease(lk.lease)  # etcd: a session on the leader's lease
        return await concurrency.proclaim(c, lk.key, lk.rev, lease, req.value)

    async def resign(self, ctx: RequestContext, req: pb.ResignRequest) -> pb.ResignResponse:
        await self._admission.check(ctx, Op.RESIGN, req)
        header = await concurrency.as_etcd(self._resign(self._client_for(ctx), req))
        return pb.ResignResponse(header=header)

    async def _resign(self, c: concurrency.LocalClient, req: pb.ResignRequest) -> concurrency.Header:
        lk = _leader_key(req)
        await c.session_lease(lk.lease)
        return await concurrency.resign(c, lk.key, lk.rev)

    async def leader(self, ctx: RequestContext, req: pb.LeaderRequest) -> pb.LeaderResponse:
        await self._admission.check(ctx, Op.LEADER, req)
        header, kv = await concurrency.as_etcd(concurrency.leader(self._client_for(ctx), req.name))
        return pb.LeaderResponse(header=header, kv=kv)

    async def observe(
        self, ctx: RequestContext, req: pb.LeaderRequest
    ) -> AsyncGenerator[pb.LeaderResponse, None]:
        """The leader now and every later one; ends quietly if a read or watch fails, as etcd's."""
        await self._admission.check(ctx, Op.OBSERVE, req)
        async with contextlib.aclosing(concurrency.observe(self._client_for(ctx), req.name)) as leaders:
            async for header, kv in leaders:
                yield pb.LeaderResponse(header=header, kv=kv)


def _leader_key(req: pb.ProclaimRequest | pb.ResignRequest) -> pb.LeaderKey:
    if not req.HasField("leader"):
        raise MissingLeaderKeyError()
    return req.leader
