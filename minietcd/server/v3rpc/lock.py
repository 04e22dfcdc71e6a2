"""etcd's Lock service (``v3lockpb.Lock``) on the application API: Lock, Unlock."""

from __future__ import annotations

from typing import TypeAlias

import grpc

from minietcd.api.v3lockpb import v3lock_pb2 as pb
from minietcd.server.api import Lock
from minietcd.server.v3rpc.guard import unary

_Ctx: TypeAlias = grpc.aio.ServicerContext


class LockService:
    def __init__(self, lock: Lock) -> None:
        self.lock = lock

    async def Lock(self, request: pb.LockRequest, context: _Ctx) -> pb.LockResponse:
        return await unary(context, self.lock.lock, request)

    async def Unlock(self, request: pb.UnlockRequest, context: _Ctx) -> pb.UnlockResponse:
        return await unary(context, self.lock.unlock, request)
