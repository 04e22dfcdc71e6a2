"""etcd's Maintenance service on the application API: Alarm, Status, Defragment, Hash, HashKV,
Snapshot, MoveLeader."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TypeAlias

import grpc

from minietcd.api.etcdserverpb import rpc_pb2
from minietcd.server.api import Maintenance
from minietcd.server.v3rpc.guard import request_context, streamed, unary

_Ctx: TypeAlias = grpc.aio.ServicerContext


class MaintenanceService:
    def __init__(self, maintenance: Maintenance) -> None:
        self.m = maintenance

    async def Alarm(self, request: rpc_pb2.AlarmRequest, context: _Ctx) -> rpc_pb2.AlarmResponse:
        return await unary(context, self.m.alarm, request)

    async def Status(self, request: rpc_pb2.StatusRequest, context: _Ctx) -> rpc_pb2.StatusResponse:
        return await unary(context, self.m.status, request)

    async def Defragment(
        self, request: rpc_pb2.DefragmentRequest, context: _Ctx
    ) -> rpc_pb2.DefragmentResponse:
        return await unary(context, self.m.defragment, request)

    async def Hash(self, request: rpc_pb2.HashRequest, context: _Ctx) -> rpc_pb2.HashResponse:
        return await unary(context, self.m.hash, request)

    async def HashKV(self, request: rpc_pb2.HashKVRequest, context: _Ctx) -> rpc_pb2.HashKVResponse:
        return await unary(context, self.m.hash_kv, request)

    async def Snapshot(
        self, request: rpc_pb2.SnapshotRequest, context: _Ctx
    ) -> AsyncIterator[rpc_pb2.SnapshotResponse]:
        responses = self.m.snapshot(request_context(context), request)
        async with contextlib.aclosing(streamed(context, responses)) as out:
            async for resp in out:
                yield resp

    async def MoveLeader(
        self, request: rpc_pb2.MoveLeaderRequest, context: _Ctx
    ) -> rpc_pb2.MoveLeaderResponse:
        return await unary(context, self.m.move_leader, request)
