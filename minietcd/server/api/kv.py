"""etcd's RaftKV (``etcdserver/v3_server.go``): Range, Put, DeleteRange, Txn, Compact.

Each method runs the same steps, once, for every face: admit, validate (v3rpc/key.go's checks),
then either read (after a ReadIndex barrier unless serializable) or check the quota and propose
through Raft, and fill the response header (cluster id, member id, raft term; the revision the
applier set).
"""

from __future__ import annotations

from typing import TypeVar

from minietcd.api.etcdserverpb import raft_internal_pb2, rpc_pb2
from minietcd.server.api import validate
from minietcd.server.api.admission import Admission, Op, RequestContext
from minietcd.server.api.authorize import stale_auth, stamp
from minietcd.server.apply_kv import txn_is_read_only
from minietcd.server.auth.info import AuthInfo
from minietcd.server.etcd_server import EtcdServer
from minietcd.server.nesting import deep_messages

_Request = raft_internal_pb2.InternalRaftRequest
_Resp = TypeVar(
    "_Resp", rpc_pb2.PutResponse, rpc_pb2.DeleteRangeResponse, rpc_pb2.TxnResponse, rpc_pb2.CompactionResponse
)


class KV:
    def __init__(self, server: EtcdServer, admission: Admission, max_txn_ops: int) -> None:
        self._s = server
        self._admission = admission
        self._max_txn_ops = max_txn_ops

    async def range(self, ctx: RequestContext, req: rpc_pb2.RangeRequest) -> rpc_pb2.RangeResponse:
        self._admission.admit(ctx, Op.RANGE, req)
        validate.check_range(req)
        info = await self._admission.authorize(ctx, Op.RANGE, req)
        if not req.serializable:
            await self._s.read_barrier()
        resp = self._s.sm.kv_applier.range(req)
        stale_auth(self._s, info)
        resp.header.CopyFrom(self._s.header(resp.header.revision))
        return resp

    async def put(self, ctx: RequestContext, req: rpc_pb2.PutRequest) -> rpc_pb2.PutResponse:
        self._admission.admit(ctx, Op.PUT, req)
        validate.check_put(req)
        info = await self._admission.authorize(ctx, Op.PUT, req)
        self._s.check_quota(grows=True)
        return await self._write(_Request(put=req), rpc_pb2.PutResponse, info)

    async def delete_range(
        self, ctx: RequestContext, req: rpc_pb2.DeleteRangeRequest
    ) -> rpc_pb2.DeleteRangeResponse:
        self._admission.admit(ctx, Op.DELETE_RANGE, req)
        validate.check_delete(req)
        info = await self._admission.authorize(ctx, Op.DELETE_RANGE, req)
        return await self._write(_Request(delete_range=req), rpc_pb2.DeleteRangeResponse, info)

    async def txn(self, ctx: RequestContext, req: rpc_pb2.TxnRequest) -> rpc_pb2.TxnResponse:
        self._admission.admit(ctx, Op.TXN, req)
        validate.check_txn(req, self._max_txn_ops)
        info = await self._admission.authorize(ctx, Op.TXN, req)
        if txn_is_read_only(req):
            # As etcd: a read-only txn is a read, served here after a ReadIndex (or at once when
            # every range in it is serializable), not through the log.
            if not validate.txn_is_serializable(req):
                await self._s.read_barrier()
            with deep_messages():  # a Txn nested as deep as etcd serves (nesting.py)
                resp = self._s.sm.kv_applier.txn(req)
            stale_auth(self._s, info)
            resp.header.CopyFrom(self._s.header(resp.header.revision))
            return resp
        self._s.check_quota(grows=True)
        with deep_messages():
            entry = _Request(txn=req)
        # Only the top-level header is filled; inner responses carry just their revision (etcd).
        return await self._write(entry, rpc_pb2.TxnResponse, info)

    async def compact(
        self, ctx: RequestContext, req: rpc_pb2.CompactionRequest
    ) -> rpc_pb2.CompactionResponse:
        info = await self._admission.check(ctx, Op.COMPACT, req)
        return await self._write(_Request(compaction=req), rpc_pb2.CompactionResponse, info)

    async def _write(self, entry: _Request, kind: type[_Resp], info: AuthInfo | None) -> _Resp:
        """Propose ``entry`` (with the user the applier checks) and answer with what applying
        it gave, header filled."""
        stamp(entry.header, info)
        resp = await self._s.propose_for(entry, kind)
        resp.header.CopyFrom(self._s.header(resp.header.revision))
        return resp
