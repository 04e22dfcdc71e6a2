"""etcd's Lease service on the application API: Grant, Revoke, KeepAlive, TimeToLive, Leases."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TypeAlias

import grpc

from minietcd.api.etcdserverpb import rpc_pb2
from minietcd.server.api import Lease
from minietcd.server.v3rpc.guard import request_context, streamed, unary

_Ctx: TypeAlias = grpc.aio.ServicerContext


class LeaseService:
    def __init__(self, lease: Lease) -> None:
        self.lease = lease

    async def LeaseGrant(
        self, request: rpc_pb2.LeaseGrantRequest, context: _Ctx
    ) -> rpc_pb2.LeaseGrantResponse:
        return await unary(context, self.lease.grant, request)

    async def LeaseRevoke(
        self, request: rpc_pb2.LeaseRevokeRequest, context: _Ctx
    ) -> rpc_pb2.LeaseRevokeResponse:
        return await unary(context, self.lease.revoke, request)

    async def LeaseKeepAlive(
        self, request_iterator: AsyncIterator[rpc_pb2.LeaseKeepAliveRequest], context: _Ctx
    ) -> AsyncIterator[rpc_pb2.LeaseKeepAliveResponse]:
        responses = self.lease.keep_alive(request_context(context), request_iterator)
        async with contextlib.aclosing(streamed(context, responses)) as out:
            async for resp in out:
                yield resp

    async def LeaseTimeToLive(
        self, request: rpc_pb2.LeaseTimeToLiveRequest, context: _Ctx
    ) -> rpc_pb2.LeaseTimeToLiveResponse:
        return await unary(context, self.lease.time_to_live, request)

    async def LeaseLeases(
        self, request: rpc_pb2.LeaseLeasesRequest, context: _Ctx
    ) -> rpc_pb2.LeaseLeasesResponse:
        return await unary(context, self.lease.leases, request)
