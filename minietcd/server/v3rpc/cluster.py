"""etcd's Cluster service on the application API: MemberAdd, MemberRemove, MemberUpdate,
MemberList, MemberPromote."""

from __future__ import annotations

from typing import TypeAlias

import grpc

from minietcd.api.etcdserverpb import rpc_pb2
from minietcd.server.api import Cluster
from minietcd.server.v3rpc.guard import unary

_Ctx: TypeAlias = grpc.aio.ServicerContext


class ClusterService:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    async def MemberAdd(self, request: rpc_pb2.MemberAddRequest, context: _Ctx) -> rpc_pb2.MemberAddResponse:
        return await unary(context, self.cluster.member_add, request)

    async def MemberRemove(
        self, request: rpc_pb2.MemberRemoveRequest, context: _Ctx
    ) -> rpc_pb2.MemberRemoveResponse:
        return await unary(context, self.cluster.member_remove, request)

    async def MemberUpdate(
        self, request: rpc_pb2.MemberUpdateRequest, context: _Ctx
    ) -> rpc_pb2.MemberUpdateResponse:
        return await unary(context, self.cluster.member_update, request)

    async def MemberList(
        self, request: rpc_pb2.MemberListRequest, context: _Ctx
    ) -> rpc_pb2.MemberListResponse:
        return await unary(context, self.cluster.member_list, request)

    async def MemberPromote(
        self, request: rpc_pb2.MemberPromoteRequest, context: _Ctx
    ) -> rpc_pb2.MemberPromoteResponse:
        return await unary(context, self.cluster.member_promote, request)
