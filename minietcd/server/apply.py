"""The applied state machine: every committed entry becomes a change to the same state on every
member (design rule 5: no clock, no randomness, no I/O beyond the stores).

An entry's data is an ``etcdserverpb.InternalRaftRequest`` (exactly etcd's log format), except
membership changes, which are CONF_CHANGE entries whose context carries the member as JSON.
``StateMachine.apply`` returns the request id found in the entry and the response (or the error)
for whoever is waiting on that id on this member.

State: the MVCC key-value store, the lessor, the membership, the alarms, and the index of the
last applied entry. ``snapshot()`` captures all of it; ``restore()`` discards everything first.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from dataclasses import dataclass

from minietcd.api.etcdserverpb import etcdserver_pb2, raft_internal_pb2, rpc_pb2
from minietcd.errors import (
    LeaseNotFoundError,
    MemberContextMissingError,
    MemberExistError,
    MemberIDRemovedError,
    MemberNotFoundError,
    MembershipError,
    MinietcdError,
    NoSpaceError,
    PeerURLExistError,
    StateSnapshotError,
    TooManyLearnersError,
    UnsupportedRequestError,
)
from minietcd.lease.lessor import Lessor
from minietcd.mvcc import HashKVResult, KVStore
from minietcd.mvcc.boltdb import write_bolt_snapshot
from minietcd.raft.types import ConfChange, ConfChangeType, Entry
from minietcd.server.apply_kv import KVApplier
from minietcd.server.membership import Member, Membership, decode_conf_context
from minietcd.server.nesting import deep_messages, parse_request

ALARM_NOSPACE = rpc_pb2.AlarmType.NOSPACE
_SNAP_MAGIC = b"MINIETCDSNAP1\n"
_LEN = struct.Struct(">Q")


@dataclass(slots=True)
class Applied:
    """The outcome of one entry, for the request waiting on ``request_id`` (0: nobody)."""

    request_id: int
    response: object = None
    error: MinietcdError | None = None


class StateMachine:
    def __init__(self, *, clock: Callable[[], float], min_lease_ttl: int, member_id: int) -> None:
        self.member_id = member_id
        self.kv = KVStore()
        self.lessor = Lessor(clock, min_lease_ttl)
        self.kv_applier = KVApplier(self.kv, self.lessor)
        self.membership = Membership()
        self.alarms: set[tuple[int, int]] = set()  # (member id, AlarmType) active cluster-wide
        self.applied_index = 0  # index of the last entry applied (etcd's consistent index)
        # Called after restore() replaced the store: the watch hub re-syncs its watchers.
        self.restore_hooks: list[Callable[[], None]] = []

    # -- what Maintenance reads (the one place that knows where the applied state lives) -------

    def db_sizes(self) -> tuple[int, int]:
        """Status's (dbSize, dbSizeInUse): the store lives in memory, so both are its size."""
        size = self.kv.size_bytes()
        return size, size

    async def hash_kv(self, revision: int) -> HashKVResult:
        """etcd's HashByRev of the key space at ``revision`` (0: now); async so that a store on
        disk can scan off the loop."""
        return self.kv.hash_kv(revision)

    def defragment(self) -> tuple[int, int]:
        """(size before, size after). The store lives in memory and compaction already frees
        what it drops: there is no file to rewrite."""
        size = self.kv.size_bytes()
        return size, size

    async def snapshot_db(self) -> bytes:
        """The applied state as the bbolt file a real etcd would hold at this point (no SHA-256
        trailer): `etcdctl snapshot status` reads it, `snapshot restore` makes a data dir of it."""
        return write_bolt_snapshot(
            self.kv,
            consistent_index=self.applied_index,
            leases=self.lessor.leases(),
            members=[m.to_json() for m in self.membership.sorted_members()],
            removed_members=sorted(self.membership.removed),
            cluster_version=self.membership.cluster_version,
            alarms=sorted(self.alarms),
        )

    # -- normal entries ---------------------------------------------------------------------

    def apply(self, entry: Entry) -> Applied:
        self.applied_index = entry.index
        if not entry.data:
            return Applied(0)  # a new leader's empty entry
        # As deep as the edge parsed it (nesting.py). Bytes that still do not parse are a bug
        # or a corrupt log: the DecodeError stops the member (raft_node.fail), as etcd's
        # MustUnmarshal panics, rather than skipping an entry the others applied.
        req = parse_request(raft_internal_pb2.InternalRaftRequest, entry.data)
        rid = req.header.ID
        try:
            return Applied(rid, self._dispatch(req))
        except MinietcdError as e:
            return Applied(rid, error=e)

    def _dispatch(self, req: raft_internal_pb2.InternalRaftRequest) -> object:
        kv = self.kv_applier
        if req.HasField("put"):
            self._check_space()
            return kv.put(req.put)
        if req.HasField("delete_range"):
            return kv.delete_range(req.delete_range)
        if req.HasField("txn"):
            if _txn_writes(req.txn):
                self._check_space()
            with deep_messages():  # builds the nested response by copies (nesting.py)
                return kv.txn(req.txn)
        if req.HasField("range"):
            return kv.range(req.range)
        if req.HasField("compaction"):
            return kv.compaction(req.compaction)
        if req.HasField("lease_grant"):
            self._check_space()
            return self._lease_grant(req.lease_grant)
        if req.HasField("lease_revoke"):
            return self._lease_revoke(req.lease_revoke)
        if req.HasField("lease_checkpoint"):
            for cp in req.lease_checkpoint.checkpoints:
                self.lessor.checkpoint(cp.ID, cp.remaining_TTL)
            return rpc_pb2.LeaseCheckpointResponse()
        if req.HasField("alarm"):
            return self._alarm(req.alarm)
        if req.HasField("v2"):
            return self._v2(req.v2)
        raise UnsupportedRequestError()

    def _check_space(self) -> None:
        # etcd's applierV3Capped: with the NOSPACE alarm raised, writes that grow the database
        # are refused until an operator compacts, defragments and disarms.
        if any(a == ALARM_NOSPACE for _, a in self.alarms):
            raise NoSpaceError()

    def _lease_grant(self, r: rpc_pb2.LeaseGrantRequest) -> rpc_pb2.LeaseGrantResponse:
        lease = self.lessor.grant(r.ID, r.TTL)
        return rpc_pb2.LeaseGrantResponse(ID=lease.id, TTL=lease.ttl)

    def _lease_revoke(self, r: rpc_pb2.LeaseRevokeRequest) -> rpc_pb2.LeaseRevokeResponse:
        if self.lessor.lookup(r.ID) is None:
            raise LeaseNotFoundError(f"lease {r.ID:x} not found")
        keys = self.lessor.revoke(r.ID)
        # Delete through the store in one transaction so watchers see the deletes (etcd's
        # lessor revokes through the watchable store).
        if keys:
            with self.kv.write() as txn:
                for key in sorted(keys):
                    txn.delete_range(key)
        resp = rpc_pb2.LeaseRevokeResponse()
        resp.header.revision = self.kv.current_revision
        return resp

    def _alarm(self, r: rpc_pb2.AlarmRequest) -> rpc_pb2.AlarmResponse:
        resp = rpc_pb2.AlarmResponse()
        if r.action == rpc_pb2.AlarmRequest.ACTIVATE:
            if r.alarm != rpc_pb2.AlarmType.NONE:
                self.alarms.add((r.memberID, r.alarm))
                resp.alarms.add(memberID=r.memberID, alarm=r.alarm)
        elif r.action == rpc_pb2.AlarmRequest.DEACTIVATE:
            if (r.memberID, r.alarm) in self.alarms:
                self.alarms.discard((r.memberID, r.alarm))
                resp.alarms.add(memberID=r.memberID, alarm=r.alarm)
        else:  # GET
            for mid, alarm in sorted(self.alarms):
                if r.alarm in (rpc_pb2.AlarmType.NONE, alarm):
                    resp.alarms.add(memberID=mid, alarm=alarm)
        return resp

    def _v2(self, r: etcdserver_pb2.Request) -> object:
        # etcd 3.4 publishes member attributes and the cluster version through its v2 store:
        # PUT /0/members/<hex id>/attributes {"name":..., "clientURLs":[...]}, PUT /0/version.
        path, val = r.Path, r.Val
        if path.startswith("/0/members/") and path.endswith("/attributes"):
            mid = int(path.split("/")[3], 16)
            attrs = json.loads(val)
            self.membership.set_attributes(mid, attrs.get("name", ""), attrs.get("clientURLs", []))
        elif path == "/0/version":
            self.membership.cluster_version = val
        return None

    # -- membership -------------------------------------------------------------------------

    def apply_conf_change(self, entry: Entry, cc: ConfChange) -> tuple[Applied, bool]:
        """Validate and apply a membership change. Returns the outcome and whether the Raft
        core must apply it too (an invalid change is a no-op everywhere, as in etcd)."""
        self.applied_index = entry.index
        member, rid = decode_conf_context(cc.context)
        try:
            self._validate_conf_change(cc, member)
        except MembershipError as e:
            return Applied(rid, error=e), False
        ms = self.membership
        if cc.type in (ConfChangeType.ADD_NODE, ConfChangeType.ADD_LEARNER_NODE):
            if cc.node_id in ms.members and cc.type == ConfChangeType.ADD_NODE:
                ms.promote(cc.node_id)
            else:
                assert member is not None
                member.is_learner = cc.type == ConfChangeType.ADD_LEARNER_NODE
                ms.add(member)
        elif cc.type == ConfChangeType.REMOVE_NODE:
            ms.remove(cc.node_id)
        elif cc.type == ConfChangeType.UPDATE_NODE and member is not None:
            ms.update_peer_urls(cc.node_id, member.peer_urls)
        return Applied(rid, [m for m in ms.sorted_members()]), True

    def _validate_conf_change(self, cc: ConfChange, member: Member | None) -> None:
        # etcd's RaftCluster.ValidateConfigurationChange, decided on applied state only.
        ms = self.membership
        node = cc.node_id
        if node in ms.removed:
            raise MemberIDRemovedError(f"member {node:x} was removed")
        if cc.type == ConfChangeType.ADD_NODE and node in ms.members:
            if not ms.members[node].is_learner:
                raise MemberExistError()
            return  # promotion
        if cc.type in (ConfChangeType.ADD_NODE, ConfChangeType.ADD_LEARNER_NODE):
            if node in ms.members:
                raise MemberExistError()
            if member is None:
                raise MemberContextMissingError()
            for url in member.peer_urls:
                if ms.by_peer_url(url) is not None:
                    raise PeerURLExistError()
            learners = sum(1 for m in ms.members.values() if m.is_learner)
            if cc.type == ConfChangeType.ADD_LEARNER_NODE and learners >= 1:
                raise TooManyLearnersError()
        elif cc.type in (ConfChangeType.REMOVE_NODE, ConfChangeType.UPDATE_NODE):
            if node not in ms.members:
                raise MemberNotFoundError()
            if cc.type == ConfChangeType.UPDATE_NODE and member is not None:
                for url in member.peer_urls:
                    other = ms.by_peer_url(url)
                    if other is not None and other.id != node:
                        raise PeerURLExistError()

    # -- snapshots --------------------------------------------------------------------------

    def snapshot(self) -> bytes:
        meta = json.dumps(
            {
                "applied_index": self.applied_index,
                "membership": self.membership.to_json(),
                "alarms": sorted([m, a] for m, a in self.alarms),
            },
            sort_keys=True,
        ).encode()
        parts = [meta, self.kv.snapshot(), self.lessor.snapshot()]
        return _SNAP_MAGIC + b"".join(_LEN.pack(len(p)) + p for p in parts)

    def restore(self, data: bytes) -> None:
        if not data.startswith(_SNAP_MAGIC):
            raise StateSnapshotError("etcdserver: snapshot data is not a minietcd state snapshot")
        parts: list[bytes] = []
        off = len(_SNAP_MAGIC)
        for _ in range(3):  # meta, kv, leases; anything after them is padding
            (n,) = _LEN.unpack_from(data, off)
            parts.append(data[off + 8 : off + 8 + n])
            off += 8 + n
        meta = json.loads(parts[0])
        self.kv.restore(parts[1])
        self.lessor.restore(parts[2])
        self.membership.restore(meta["membership"])
        self.alarms = {(m, a) for m, a in meta["alarms"]}
        self.applied_index = meta["applied_index"]
        for hook in self.restore_hooks:
            hook()


def _txn_writes(t: rpc_pb2.TxnRequest) -> bool:
    for op in list(t.success) + list(t.failure):
        which = op.WhichOneof("request")
        if which in ("request_put", "request_delete_range"):
            return True
        if which == "request_txn" and _txn_writes(op.request_txn):
            return True
    return False
