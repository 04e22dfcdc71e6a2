"""etcd's Election service (``v3electionpb.Election``) on the application API: Campaign,
Proclaim, Resign, Leader, Observe."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TypeAlias

import grpc

from minietcd.api.v3electionpb import v3election_pb2 as pb
from minietcd.server.api import Election
from minietcd.server.v3rpc.guard import request_context, streamed, unary

_Ctx: TypeAlias = grpc.aio.ServicerContext


class ElectionService:
    def __init__(self, election: Election) -> None:
        self.election = election

    async def Campaign(self, request: pb.CampaignRequest, context: _Ctx) -> pb.CampaignResponse:
        return await unary(context, self.election.campaign, request)

    async def Proclaim(self, request: pb.ProclaimRequest, context: _Ctx) -> pb.ProclaimResponse:
        return await unary(context, self.election.proclaim, request)

    async def Resign(self, request: pb.ResignRequest, context: _Ctx) -> pb.ResignResponse:
        return await unary(context, self.election.resign, request)

    async def Leader(self, request: pb.LeaderRequest, context: _Ctx) -> pb.LeaderResponse:
        return await unary(context, self.election.leader, request)

    async def Observe(self, request: pb.LeaderRequest, context: _Ctx) -> AsyncIterator[pb.LeaderResponse]:
        responses = self.election.observe(request_context(context), request)
        async with contextlib.aclosing(streamed(context, responses)) as out:
            async for resp in out:
                yield resp
