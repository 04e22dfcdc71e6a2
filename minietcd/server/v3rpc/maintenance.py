"""etcd's Maintenance service: Alarm, Status, Defragment, Hash, HashKV, Snapshot, MoveLeader."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from minietcd import ETCD_API_VERSION
from minietcd.api.etcdserverpb import raft_internal_pb2, rpc_pb2, rpc_pb2_grpc
from minietcd.mvcc.boltdb import append_sha256, write_bolt_snapshot
from minietcd.server.etcd_server import EtcdServer
from minietcd.server.v3rpc.guard import guarded

SNAPSHOT_CHUNK = 32 * 1024  # etcd streams its snapshot in 32 KiB blobs


class MaintenanceService(rpc_pb2_grpc.MaintenanceServicer):
    def __init__(self, server: EtcdServer) -> None:
        self.s = server

    async def Alarm(
        self, request: rpc_pb2.AlarmRequest, context: grpc.aio.ServicerContext
    ) -> rpc_pb2.AlarmResponse:
        return await guarded(context, self._alarm(request))

    async def _alarm(self, req: rpc_pb2.AlarmRequest) -> rpc_pb2.AlarmResponse:
        # As etcd: every alarm action, GET included, goes through the log, and the answer
        # carries no header (etcd's maintenance server returns the applier's response as is).
        resp = await self.s.propose(raft_internal_pb2.InternalRaftRequest(alarm=req))
        assert isinstance(resp, rpc_pb2.AlarmResponse)
        return resp

    async def Status(
        self, request: rpc_pb2.StatusRequest, context: grpc.aio.ServicerContext
    ) -> rpc_pb2.StatusResponse:
        s = self.s
        st = s.node.rawnode.status()
        size = s.sm.kv.size_bytes()
        errors = [f"memberID:{mid} alarm:{_alarm_name(a)} " for mid, a in sorted(s.sm.alarms)]
        return rpc_pb2.StatusResponse(
            header=s.header(),
            version=ETCD_API_VERSION,
            dbSize=size,
            leader=s.leader,
            raftIndex=st.hard_state.commit,
            raftTerm=st.hard_state.term,
            raftAppliedIndex=s.node.applied_index,
            errors=errors,
            dbSizeInUse=size,
            isLearner=s.is_learner(),
        )

    async def Defragment(
        self, request: rpc_pb2.DefragmentRequest, context: grpc.aio.ServicerContext
    ) -> rpc_pb2.DefragmentResponse:
        # The store lives in memory and compaction already frees what it drops: there is no file
        # to rewrite. Answer as etcd does when it has defragmented.
        return rpc_pb2.DefragmentResponse(header=self.s.header())

    async def Hash(
        self, request: rpc_pb2.HashRequest, context: grpc.aio.ServicerContext
    ) -> rpc_pb2.HashResponse:
        return rpc_pb2.HashResponse(header=self.s.header(), hash=self.s.sm.kv.hash_kv(0).hash)

    async def HashKV(
        self, request: rpc_pb2.HashKVRequest, context: grpc.aio.ServicerContext
    ) -> rpc_pb2.HashKVResponse:
        return await guarded(context, self._hash_kv(request))

    async def _hash_kv(self, req: rpc_pb2.HashKVRequest) -> rpc_pb2.HashKVResponse:
        r = self.s.sm.kv.hash_kv(req.revision)
        return rpc_pb2.HashKVResponse(
            header=self.s.header(r.revision), hash=r.hash, compact_revision=r.compact_revision
        )

    async def Snapshot(
        self, request: rpc_pb2.SnapshotRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[rpc_pb2.SnapshotResponse]:
        # The applied state as the bbolt file a real etcd would hold at this point: `etcdctl
        # snapshot status` reads it, and `etcdctl snapshot restore` turns it into a data dir a
        # real etcd serves. The stream ends with the file's SHA-256, as etcd's does.
        sm = self.s.sm
        db = write_bolt_snapshot(
            sm.kv,
            consistent_index=sm.applied_index,
            leases=sm.lessor.leases(),
            members=[m.to_json() for m in sm.membership.sorted_members()],
            removed_members=sorted(sm.membership.removed),
            cluster_version=sm.membership.cluster_version,
            alarms=sorted(sm.alarms),
        )
        data = append_sha256(db)
        total = len(data)
        for off in range(0, total, SNAPSHOT_CHUNK):
            blob = data[off : off + SNAPSHOT_CHUNK]
            yield rpc_pb2.SnapshotResponse(
                header=self.s.header(), remaining_bytes=total - off - len(blob), blob=blob
            )

    async def MoveLeader(
        self, request: rpc_pb2.MoveLeaderRequest, context: grpc.aio.ServicerContext
    ) -> rpc_pb2.MoveLeaderResponse:
        return await guarded(context, self._move(request))

    async def _move(self, req: rpc_pb2.MoveLeaderRequest) -> rpc_pb2.MoveLeaderResponse:
        await self.s.move_leader(req.targetID)
        return rpc_pb2.MoveLeaderResponse(header=self.s.header())


def _alarm_name(alarm: int) -> str:
    """Go's String() of an AlarmType: its name, or the number for one etcd does not know (an
    Alarm ACTIVATE with any number is applied, as etcd applies it; Status must still answer)."""
    try:
        return rpc_pb2.AlarmType.Name(alarm)
    except ValueError:
        return str(alarm)
