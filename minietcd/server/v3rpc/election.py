"""etcd's Election service (``v3electionpb.Election``) on the recipes of
:mod:`minietcd.server.concurrency`, as etcd 3.4's ``etcdserver/api/v3election`` runs them on
``clientv3/concurrency``.

- Campaign blocks until the campaign leads; its LeaderKey (name, key, create revision, lease)
  is what Proclaim and Resign take.
- Leader answers the current leader's key-value, or "election: no leader".
- Observe streams the leader's key-value and every later value, leader after leader.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import grpc

from minietcd.api.v3electionpb import v3election_pb2, v3election_pb2_grpc
from minietcd.errors import ServerError
from minietcd.mvcc.watch import WatchHub
from minietcd.server import concurrency
from minietcd.server.etcd_server import EtcdServer

_pb = v3election_pb2


def _leader_key(leader: _pb.LeaderKey | None) -> _pb.LeaderKey:
    if leader is None:
        raise ServerError(concurrency.ERR_MISSING_LEADER_KEY)
    return leader


class ElectionService(v3election_pb2_grpc.ElectionServicer):
    def __init__(self, server: EtcdServer, hub: WatchHub) -> None:
        self.s = server
        self.c = concurrency.LocalClient(server, hub)

    async def Campaign(
        self, request: _pb.CampaignRequest, context: grpc.aio.ServicerContext
    ) -> _pb.CampaignResponse:
        await concurrency.check_call(self.s, context)
        header, key, rev, lease = await concurrency.as_etcd(
            context, concurrency.campaign(self.c, request.name, request.lease, request.value)
        )
        return _pb.CampaignResponse(
            header=header, leader=_pb.LeaderKey(name=request.name, key=key, rev=rev, lease=lease)
        )

    async def Proclaim(
        self, request: _pb.ProclaimRequest, context: grpc.aio.ServicerContext
    ) -> _pb.ProclaimResponse:
        await concurrency.check_call(self.s, context)
        leader = request.leader if request.HasField("leader") else None
        header = await concurrency.as_etcd(context, self._proclaim(leader, request.value))
        return _pb.ProclaimResponse(header=header)

    async def _proclaim(self, leader: _pb.LeaderKey | None, value: bytes) -> concurrency.Header:
        lk = _leader_key(leader)
        lease = await self.c.session_lease(lk.lease)  # etcd: a session on the leader's lease
        return await concurrency.proclaim(self.c, lk.key, lk.rev, lease, value)

    async def Resign(
        self, request: _pb.ResignRequest, context: grpc.aio.ServicerContext
    ) -> _pb.ResignResponse:
        await concurrency.check_call(self.s, context)
        leader = request.leader if request.HasField("leader") else None
        header = await concurrency.as_etcd(context, self._resign(leader))
        return _pb.ResignResponse(header=header)

    async def _resign(self, leader: _pb.LeaderKey | None) -> concurrency.Header:
        lk = _leader_key(leader)
        await self.c.session_lease(lk.lease)
        return await concurrency.resign(self.c, lk.key, lk.rev)

    async def Leader(
        self, request: _pb.LeaderRequest, context: grpc.aio.ServicerContext
    ) -> _pb.LeaderResponse:
        await concurrency.check_call(self.s, context)
        header, kv = await concurrency.as_etcd(context, concurrency.leader(self.c, request.name))
        return _pb.LeaderResponse(header=header, kv=kv)

    async def Observe(
        self, request: _pb.LeaderRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[_pb.LeaderResponse]:
        await concurrency.check_call(self.s, context)
        async with contextlib.aclosing(concurrency.observe(self.c, request.name)) as leaders:
            async for header, kv in leaders:
                yield _pb.LeaderResponse(header=header, kv=kv)
