"""etcd's Cluster (``etcdserver/api/v3rpc/member.go`` over ``etcdserver/server.go``):
MemberList, MemberAdd, MemberRemove, MemberUpdate, MemberPromote.

Changes go through the log as ConfChange entries and answer with the member list as this
member applied it. With ``--strict-reconfig-check`` (etcd's default) a change that could cost
the cluster its quorum is refused first (EtcdServer.check_add_voter / check_remove_voter).
The Cluster service's header carries no revision, as etcd's.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from minietcd.api.etcdserverpb import rpc_pb2
from minietcd.errors import ConfigError, MemberBadURLsError, MemberNotFoundError
from minietcd.raft.types import ConfChangeType
from minietcd.server import ids
from minietcd.server.api.admission import Admission, Op, RequestContext
from minietcd.server.etcd_server import EtcdServer
from minietcd.server.membership import Member
from minietcd.server.urls import parse_urls


def member_pb(m: Member) -> rpc_pb2.Member:
    return rpc_pb2.Member(
        ID=m.id, name=m.name, peerURLs=m.peer_urls, clientURLs=m.client_urls, isLearner=m.is_learner
    )


class Cluster:
    def __init__(self, server: EtcdServer, admission: Admission, strict_reconfig_check: bool) -> None:
        self._s = server
        self._admission = admission
        self._strict = strict_reconfig_check

    async def member_list(
        self, ctx: RequestContext, req: rpc_pb2.MemberListRequest
    ) -> rpc_pb2.MemberListResponse:
        await self._admission.check(ctx, Op.MEMBER_LIST, req)
        return rpc_pb2.MemberListResponse(header=self._s.cluster_header(), members=self._members())

    async def member_add(
        self, ctx: RequestContext, req: rpc_pb2.MemberAddRequest
    ) -> rpc_pb2.MemberAddResponse:
        self._admission.admit(ctx, Op.MEMBER_ADD, req)
        urls = _peer_urls(req.peerURLs)
        await self._admission.authorize(ctx, Op.MEMBER_ADD, req)
        if not req.isLearner and self._strict:
            self._s.check_add_voter()
        # Like etcd: an added member's id hashes its peer URLs and the time of the request.
        member = Member(ids.added_member_id(urls, int(time.time())), "", urls, [], req.isLearner)
        kind = ConfChangeType.ADD_LEARNER_NODE if req.isLearner else ConfChangeType.ADD_NODE
        members = await self._s.propose_conf_change(kind, member)
        return rpc_pb2.MemberAddResponse(
            header=self._s.cluster_header(), member=member_pb(member), members=self._members(members)
        )

    async def member_remove(
        self, ctx: RequestContext, req: rpc_pb2.MemberRemoveRequest
    ) -> rpc_pb2.MemberRemoveResponse:
        await self._admission.check(ctx, Op.MEMBER_REMOVE, req)
        m = self._member(req.ID)
        if self._strict and not m.is_learner:
            self._s.check_remove_voter(req.ID)
        members = await self._s.propose_conf_change(ConfChangeType.REMOVE_NODE, Member(req.ID))
        return rpc_pb2.MemberRemoveResponse(header=self._s.cluster_header(), members=self._members(members))

    async def member_update(
        self, ctx: RequestContext, req: rpc_pb2.MemberUpdateRequest
    ) -> rpc_pb2.MemberUpdateResponse:
        await self._admission.check(ctx, Op.MEMBER_UPDATE, req)
        m = self._member(req.ID)
        new = Member(m.id, m.name, _peer_urls(req.peerURLs), list(m.client_urls), m.is_learner)
        members = await self._s.propose_conf_change(ConfChangeType.UPDATE_NODE, new)
        return rpc_pb2.MemberUpdateResponse(header=self._s.cluster_header(), members=self._members(members))

    async def member_promote(
        self, ctx: RequestContext, req: rpc_pb2.MemberPromoteRequest
    ) -> rpc_pb2.MemberPromoteResponse:
        await self._admission.check(ctx, Op.MEMBER_PROMOTE, req)
        self._s.check_promote(req.ID)
        m = self._s.sm.membership.members[req.ID]
        members = await self._s.propose_conf_change(
            ConfChangeType.ADD_NODE, Member(m.id, m.name, list(m.peer_urls))
        )
        return rpc_pb2.MemberPromoteResponse(header=self._s.cluster_header(), members=self._members(members))

    def _member(self, member_id: int) -> Member:
        m = self._s.sm.membership.members.get(member_id)
        if m is None:
            raise MemberNotFoundError()
        return m

    def _members(self, members: list[Member] | None = None) -> list[rpc_pb2.Member]:
        ms = members if members is not None else self._s.sm.membership.sorted_members()
        return [member_pb(m) for m in ms]


def _peer_urls(raw: Iterable[str]) -> list[str]:
    """The request's peer URLs, normalised; unparsable ones are etcd's ErrGRPCMemberBadURLs."""
    try:
        return [str(u) for u in parse_urls(list(raw))]
    except ConfigError as e:
        raise MemberBadURLsError(str(e)) from None
