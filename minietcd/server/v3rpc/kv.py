"""etcd's KV service: Range, Put, DeleteRange, Txn, Compact. Thin: check, propose or read."""

from __future__ import annotations

import grpc

from minietcd.api.etcdserverpb import raft_internal_pb2, rpc_pb2, rpc_pb2_grpc
from minietcd.server import validate
from minietcd.server.etcd_server import EtcdServer
from minietcd.server.nesting import deep_messages
from minietcd.server.v3rpc.guard import guarded


class KVService(rpc_pb2_grpc.KVServicer):
    def __init__(self, server: EtcdServer, max_txn_ops: int) -> None:
        self.s = server
        self.max_txn_ops = max_txn_ops

    async def Range(
        self, request: rpc_pb2.RangeRequest, context: grpc.aio.ServicerContext
    ) -> rpc_pb2.RangeResponse:
        return await guarded(context, self._range(request))

    async def _range(self, req: rpc_pb2.RangeRequest) -> rpc_pb2.RangeResponse:
        validate.check_range(req)
        if not req.serializable:
            await self.s.read_barrier()
        resp = self.s.sm.kv_applier.range(req)
        resp.header.CopyFrom(self.s.header(resp.header.revision))
        return resp

    async def Put(
        self, request: rpc_pb2.PutRequest, context: grpc.aio.ServicerContext
    ) -> rpc_pb2.PutResponse:
        return await guarded(context, self._put(request))

    async def _put(self, req: rpc_pb2.PutRequest) -> rpc_pb2.PutResponse:
        validate.check_put(req)
        self.s.check_quota(grows=True)
        resp = await self.s.propose(raft_internal_pb2.InternalRaftRequest(put=req))
        assert isinstance(resp, rpc_pb2.PutResponse)
        resp.header.CopyFrom(self.s.header(resp.header.revision))
        return resp

    async def DeleteRange(
        self, request: rpc_pb2.DeleteRangeRequest, context: grpc.aio.ServicerContext
    ) -> rpc_pb2.DeleteRangeResponse:
        return await guarded(context, self._delete(request))

    async def _delete(self, req: rpc_pb2.DeleteRangeRequest) -> rpc_pb2.DeleteRangeResponse:
        validate.check_delete(req)
        resp = await self.s.propose(raft_internal_pb2.InternalRaftRequest(delete_range=req))
        assert isinstance(resp, rpc_pb2.DeleteRangeResponse)
        resp.header.CopyFrom(self.s.header(resp.header.revision))
        return resp

    async def Txn(
        self, request: rpc_pb2.TxnRequest, context: grpc.aio.ServicerContext
    ) -> rpc_pb2.TxnResponse:
        return await guarded(context, self._txn(request))

    async def _txn(self, req: rpc_pb2.TxnRequest) -> rpc_pb2.TxnResponse:
        validate.check_txn(req, self.max_txn_ops)
        if validate.txn_is_read_only(req):
            # As etcd: a read-only txn is a read, served here after a ReadIndex (or at once when
            # every range in it is serializable), not through the log.
            if not validate.txn_is_serializable(req):
                await self.s.read_barrier()
            with deep_messages():  # a Txn nested as deep as etcd serves (nesting.py)
                resp = self.s.sm.kv_applier.txn(req)
        else:
            self.s.check_quota(grows=True)
            with deep_messages():
                entry = raft_internal_pb2.InternalRaftRequest(txn=req)
            out = await self.s.propose(entry)
            assert isinstance(out, rpc_pb2.TxnResponse)
            resp = out
        # Only the top-level header is filled; inner responses carry just their revision (etcd).
        resp.header.CopyFrom(self.s.header(resp.header.revision))
        return resp

    async def Compact(
        self, request: rpc_pb2.CompactionRequest, context: grpc.aio.ServicerContext
    ) -> rpc_pb2.CompactionResponse:
        return await guarded(context, self._compact(request))

    async def _compact(self, req: rpc_pb2.CompactionRequest) -> rpc_pb2.CompactionResponse:
        resp = await self.s.propose(raft_internal_pb2.InternalRaftRequest(compaction=req))
        assert isinstance(resp, rpc_pb2.CompactionResponse)
        resp.header.CopyFrom(self.s.header(resp.header.revision))
        return resp
