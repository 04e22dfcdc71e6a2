"""etcd's Maintenance (``etcdserver/api/v3rpc/maintenance.go``): Status, Hash, HashKV, Alarm,
Defragment, Snapshot, MoveLeader.

What it reads of the applied state goes through the state machine's narrow maintenance methods
(``StateMachine.db_sizes / hash_kv / defragment / snapshot_db``), so a storage backend changes
those, not this.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncGenerator

from minietcd import ETCD_API_VERSION
from minietcd.api.etcdserverpb import raft_internal_pb2, rpc_pb2
from minietcd.errors import NoLeaderError
from minietcd.server.api.admission import Admission, Op, RequestContext
from minietcd.server.api.authorize import admin_only
from minietcd.server.etcd_server import EtcdServer

SNAPSHOT_CHUNK = 32 * 1024  # etcd streams its snapshot in 32 KiB blobs


class Maintenance:
    def __init__(self, server: EtcdServer, admission: Admission) -> None:
        self._s = server
        self._admission = admission

    async def status(self, ctx: RequestContext, req: rpc_pb2.StatusRequest) -> rpc_pb2.StatusResponse:
        await self._admission.check(ctx, Op.STATUS, req)
        s = self._s
        st = s.node.rawnode.status()
        size, in_use = s.sm.db_sizes()
        leader = s.leader
        # As etcd's maintenanceServer.Status: no leader first, then one line per alarm (Go's
        # String() of the Alarm message); `etcdctl endpoint status` shows them as ERRORS.
        errors = [NoLeaderError.etcd_message] if leader == 0 else []
        errors += [f"memberID:{mid} alarm:{_alarm_name(a)} " for mid, a in sorted(s.sm.alarms)]
        return rpc_pb2.StatusResponse(
            header=s.header(),
            version=ETCD_API_VERSION,
            dbSize=size,
            leader=leader,
            raftIndex=st.hard_state.commit,
            raftTerm=st.hard_state.term,
            raftAppliedIndex=s.node.applied_index,
            errors=errors,
            dbSizeInUse=in_use,
            isLearner=s.is_learner(),
        )

    async def hash(self, ctx: RequestContext, req: rpc_pb2.HashRequest) -> rpc_pb2.HashResponse:
        self._admission.admit(ctx, Op.HASH, req)
        await admin_only(self._admission, ctx, Op.HASH, req)
        r = await self._s.sm.hash_kv(0)
        return rpc_pb2.HashResponse(header=self._s.header(), hash=r.hash)

    async def hash_kv(self, ctx: RequestContext, req: rpc_pb2.HashKVRequest) -> rpc_pb2.HashKVResponse:
        self._admission.admit(ctx, Op.HASH_KV, req)
        await admin_only(self._admission, ctx, Op.HASH_KV, req)
        r = await self._s.sm.hash_kv(req.revision)
        return rpc_pb2.HashKVResponse(
            header=self._s.header(r.revision), hash=r.hash, compact_revision=r.compact_revision
        )

    async def alarm(self, ctx: RequestContext, req: rpc_pb2.AlarmRequest) -> rpc_pb2.AlarmResponse:
        await self._admission.check(ctx, Op.ALARM, req)
        # As etcd: every alarm action, GET included, goes through the log, and the answer
        # carries no header (etcd's maintenance server returns the applier's response as is).
        return await self._s.propose_for(
            raft_internal_pb2.InternalRaftRequest(alarm=req), rpc_pb2.AlarmResponse
        )

    async def defragment(
        self, ctx: RequestContext, req: rpc_pb2.DefragmentRequest
    ) -> rpc_pb2.DefragmentResponse:
        self._admission.admit(ctx, Op.DEFRAGMENT, req)
        await admin_only(self._admission, ctx, Op.DEFRAGMENT, req)
        self._s.sm.defragment()
        return rpc_pb2.DefragmentResponse()  # no header: etcd's maintenance server sets none

    async def snapshot(
        self, ctx: RequestContext, req: rpc_pb2.SnapshotRequest
    ) -> AsyncGenerator[rpc_pb2.SnapshotResponse, None]:
        """The applied state as the bbolt file a real etcd would hold at this point, in chunks
        without a header, then the file's SHA-256 as a chunk of its own, as etcd streams it."""
        self._admission.admit(ctx, Op.SNAPSHOT, req)
        await admin_only(self._admission, ctx, Op.SNAPSHOT, req)
        db = await self._s.sm.snapshot_db()
        total = len(db)
        for off in range(0, total, SNAPSHOT_CHUNK):
            blob = db[off : off + SNAPSHOT_CHUNK]
            yield rpc_pb2.SnapshotResponse(remaining_bytes=total - off - len(blob), blob=blob)
        yield rpc_pb2.SnapshotResponse(blob=hashlib.sha256(db).digest())  # what etcdctl checks

    async def move_leader(
        self, ctx: RequestContext, req: rpc_pb2.MoveLeaderRequest
    ) -> rpc_pb2.MoveLeaderResponse:
        await self._admission.check(ctx, Op.MOVE_LEADER, req)
        await self._s.move_leader(req.targetID)
        return rpc_pb2.MoveLeaderResponse()  # no header, as etcd's


def _alarm_name(alarm: int) -> str:
    """Go's String() of an AlarmType: its name, or the number for one etcd does not know (an
    Alarm ACTIVATE with any number is applied, as etcd applies it; Status must still answer)."""
    try:
        return rpc_pb2.AlarmType.Name(alarm)
    except ValueError:
        return str(alarm)
