"""etcd's KV service on the application API: Range, Put, DeleteRange, Txn, Compact."""

from __future__ import annotations

from typing import TypeAlias

import grpc

from minietcd.api.etcdserverpb import rpc_pb2
from minietcd.server.api import KV
from minietcd.server.v3rpc.guard import unary

_Ctx: TypeAlias = grpc.aio.ServicerContext


class KVService:
    def __init__(self, kv: KV) -> None:
        self.kv = kv

    async def Range(self, request: rpc_pb2.RangeRequest, context: _Ctx) -> rpc_pb2.RangeResponse:
        return await unary(context, self.kv.range, request)

    async def Put(self, request: rpc_pb2.PutRequest, context: _Ctx) -> rpc_pb2.PutResponse:
        return await unary(context, self.kv.put, request)

    async def DeleteRange(
        self, request: rpc_pb2.DeleteRangeRequest, context: _Ctx
    ) -> rpc_pb2.DeleteRangeResponse:
        return await unary(context, self.kv.delete_range, request)

    async def Txn(self, request: rpc_pb2.TxnRequest, context: _Ctx) -> rpc_pb2.TxnResponse:
        return await unary(context, self.kv.txn, request)

    async def Compact(self, request: rpc_pb2.CompactionRequest, context: _Ctx) -> rpc_pb2.CompactionResponse:
        return await unary(context, self.kv.compact, request)
