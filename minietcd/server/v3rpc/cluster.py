"""etcd's Cluster service: MemberAdd, MemberRemove, MemberUpdate, MemberList, MemberPromote."""

from __future__ import annotations

import time

import grpc

from minietcd.api.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from minietcd.errors import ConfigError, ServerError
from minietcd.raft.types import ConfChangeType
from minietcd.server import ids
from minietcd.server.etcd_server import ERR_MEMBER_NOT_FOUND, EtcdServer
from minietcd.server.membership import Member
from minietcd.server.urls import parse_urls
from minietcd.server.v3rpc.guard import guarded


def member_pb(m: Member) -> rpc_pb2.Member:
    return rpc_pb2.Member(
        ID=m.id, name=m.name, peerURLs=m.peer_urls, clientURLs=m.client_urls, isLearner=m.is_learner
    )


class ClusterService(rpc_pb2_grpc.ClusterServicer):
    def __init__(self, server: EtcdServer, strict_reconfig_check: bool) -> None:
        self.s = server
        self.strict = strict_reconfig_check

    def _members(self, members: list[Member] | None = None) -> list[rpc_pb2.Member]:
        ms = members if members is not None else self.s.sm.membership.sorted_members()
        return [member_pb(m) for m in ms]

    async def MemberAdd(
        self, request: rpc_pb2.MemberAddRequest, context: grpc.aio.ServicerContext
    ) -> rpc_pb2.MemberAddResponse:
        return await guarded(context, self._add(request))

    async def _add(self, req: rpc_pb2.MemberAddRequest) -> rpc_pb2.MemberAddResponse:
        try:
            urls = [str(u) for u in parse_urls(list(req.peerURLs))]
        except ConfigError as e:
            raise ServerError(f"etcdserver: {e}") from None
        if not req.isLearner and self.strict:
            self.s.check_add_voter()
        # Like etcd: an added member's id hashes its peer URLs and the time of the request.
        member = Member(ids.added_member_id(urls, int(time.time())), "", urls, [], req.isLearner)
        kind = ConfChangeType.ADD_LEARNER_NODE if req.isLearner else ConfChangeType.ADD_NODE
        members = await self.s.propose_conf_change(kind, member)
        return rpc_pb2.MemberAddResponse(
            header=self.s.cluster_header(), member=member_pb(member), members=self._members(members)
        )

    async def MemberRemove(
        self, request: rpc_pb2.MemberRemoveRequest, context: grpc.aio.ServicerContext
    ) -> rpc_pb2.MemberRemoveResponse:
        return await guarded(context, self._remove(request))

    async def _remove(self, req: rpc_pb2.MemberRemoveRequest) -> rpc_pb2.MemberRemoveResponse:
        m = self.s.sm.membership.members.get(req.ID)
        if m is None:
            raise ServerError(ERR_MEMBER_NOT_FOUND)
        if self.strict and not m.is_learner:
            self.s.check_remove_voter(req.ID)
        members = await self.s.propose_conf_change(ConfChangeType.REMOVE_NODE, Member(req.ID))
        return rpc_pb2.MemberRemoveResponse(header=self.s.cluster_header(), members=self._members(members))

    async def MemberUpdate(
        self, request: rpc_pb2.MemberUpdateRequest, context: grpc.aio.ServicerContext
    ) -> rpc_pb2.MemberUpdateResponse:
        return await guarded(context, self._update(request))

    async def _update(self, req: rpc_pb2.MemberUpdateRequest) -> rpc_pb2.MemberUpdateResponse:
        m = self.s.sm.membership.members.get(req.ID)
        if m is None:
            raise ServerError(ERR_MEMBER_NOT_FOUND)
        try:
            urls = [str(u) for u in parse_urls(list(req.peerURLs))]
        except ConfigError as e:
            raise ServerError(f"etcdserver: {e}") from None
        new = Member(m.id, m.name, urls, list(m.client_urls), m.is_learner)
        members = await self.s.propose_conf_change(ConfChangeType.UPDATE_NODE, new)
        return rpc_pb2.MemberUpdateResponse(header=self.s.cluster_header(), members=self._members(members))

    async def MemberList(
        self, request: rpc_pb2.MemberListRequest, context: grpc.aio.ServicerContext
    ) -> rpc_pb2.MemberListResponse:
        return rpc_pb2.MemberListResponse(header=self.s.cluster_header(), members=self._members())

    async def MemberPromote(
        self, request: rpc_pb2.MemberPromoteRequest, context: grpc.aio.ServicerContext
    ) -> rpc_pb2.MemberPromoteResponse:
        return await guarded(context, self._promote(request))

    async def _promote(self, req: rpc_pb2.MemberPromoteRequest) -> rpc_pb2.MemberPromoteResponse:
        self.s.check_promote(req.ID)
        m = self.s.sm.membership.members[req.ID]
        members = await self.s.propose_conf_change(
            ConfChangeType.ADD_NODE, Member(m.id, m.name, list(m.peer_urls))
        )
        return rpc_pb2.MemberPromoteResponse(header=self.s.cluster_header(), members=self._members(members))
