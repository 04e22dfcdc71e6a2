"""The applied state machine: every committed entry becomes a change to the same state on every
member (design rule 5: no clock, no randomness, no I/O beyond the stores).

An entry's data is an ``etcdserverpb.InternalRaftRequest`` (exactly etcd's log format), except
membership changes, which are CONF_CHANGE entries whose context carries the member as JSON.
``StateMachine.apply`` returns the request id found in the entry and the response (or the error)
for whoever is waiting on that id on this member.

State: the MVCC key-value store, the lessor, the membership, the alarms, users / roles /
permissions (``server/auth``), and the index of the last applied entry. All of it lives in one
:class:`~minietcd.mvcc.backend.Backend` (an LMDB file, etcd's bbolt schema; see
``apply_state``), written in the same batch as the entry that changed it, so the file on disk is
always the state at its ``consistent_index``. Memory holds the key index and the lessor.
``snapshot()`` makes that state durable and names it; ``restore()`` replaces everything (see
``apply_snapshot``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
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
from minietcd.mvcc.backend import Backend, ReadView
from minietcd.raft.types import ConfChange, ConfChangeType, ConfState, Entry
from minietcd.server import apply_snapshot, apply_state
from minietcd.server.apply_auth import NOT_AUTH, AuthApplier
from minietcd.server.apply_kv import KVApplier
from minietcd.server.auth.store import AuthStore
from minietcd.server.cluster_version import CapabilityLog
from minietcd.server.membership import Member, Membership, decode_conf_context
from minietcd.server.nesting import deep_messages, parse_request

log = logging.getLogger("minietcd.server")

ALARM_NOSPACE = rpc_pb2.AlarmType.NOSPACE
#: Where a member's backend lives, beside etcd's own ``member/snap/db``.
DB_FILE = os.path.join("member", "snap", "db.lmdb")


def db_path(data_dir: str) -> str:
    return os.path.join(data_dir, DB_FILE)


@dataclass(slots=True)
class Applied:
    """The outcome of one entry, for the request waiting on ``request_id`` (0: nobody)."""

    request_id: int
    response: object = None
    error: MinietcdError | None = None


class StateMachine:
    def __init__(
        self,
        *,
        clock: Callable[[], float],
        min_lease_ttl: int,
        member_id: int,
        backend: Backend | None = None,
    ) -> None:
        """The state held by ``backend`` (a private temporary one if None): a restart opens
        the member's own backend and finds everything applied so far."""
        self.member_id = member_id
        self.backend = backend if backend is not None else Backend.temporary()
        self.kv = KVStore(backend=self.backend)
        self.lessor = Lessor(clock, min_lease_ttl)
        self.kv_applier = KVApplier(self.kv, self.lessor)
        #: Users, roles, permissions (server/auth/store.py), and their side of apply.
        self.auth = AuthStore(self.backend)
        self.auth_applier = AuthApplier(self.auth, self.lessor, lambda: self.applied_index)
        self.membership = Membership()
        self.alarms: set[tuple[int, int]] = set()  # (member id, AlarmType) active cluster-wide
        self.applied_index = 0  # index of the last entry applied (etcd's consistent index)
        # The cluster version's log lines, which tools wait for on every member (cluster_version.py).
        self.capabilities = CapabilityLog()
        # Called after restore() replaced the store: the watch hub re-syncs its watchers.
        self.restore_hooks: list[Callable[[], None]] = []
        #: Freeze the GC's view after the index grows (see _freeze_gc); a member's own
        #: state machine does (open), a temporary one in a test or tool does not.
        self.freeze_gc = False
        self._load()

    @classmethod
    def open(
        cls,
        data_dir: str,
        *,
        clock: Callable[[], float],
        min_lease_ttl: int,
        member_id: int,
        fresh: bool = False,
        batch_interval: float = 0.0,
        batch_limit: int = 0,
    ) -> StateMachine:
        """The state machine of the member in ``data_dir``. ``fresh``: the member's log was
        just created, so a database left there belongs to nobody and is removed. ``batch_interval``
        and ``batch_limit``: when the backend commits its batch (0: etcd's defaults)."""
        path = db_path(data_dir)
        if fresh and os.path.exists(path):
            log.warning("etcdserver: removing %s: a new member's log cannot continue it", path)
            for stale in (path, path + "-lock"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(stale)
        backend = Backend(path, batch_interval=batch_interval, batch_limit=batch_limit)
        sm = cls(clock=clock, min_lease_ttl=min_lease_ttl, member_id=member_id, backend=backend)
        sm.freeze_gc = True
        return sm

    def _load(self) -> None:
        stored = apply_state.load(self.backend, self.kv.rebuilt_leased_keys())
        self.lessor.restore(stored.leases)
        self.membership = stored.membership
        self.alarms = stored.alarms
        self.applied_index = stored.applied_index
        self.auth.load()
        self.capabilities.recovered(self.membership.cluster_version)

    def settle_memory(self) -> None:
        """After the key index grew a lot or was rebuilt: see _freeze_gc."""
        if self.freeze_gc:
            _freeze_gc()

    def close(self, *, commit: bool = True) -> None:
        """Commit what is applied and close the backend (``commit=False``: drop the open batch,
        for a member that failed; see Backend.close)."""
        self.backend.close(commit=commit)

    def commit(self) -> None:
        """Make everything applied so far durable in the backend now."""
        self.backend.commit()

    # -- what Maintenance reads (the one place that knows where the applied state lives) -------

    def db_sizes(self) -> tuple[int, int]:
        """Status's (dbSize, dbSizeInUse): the backend file's size and the part of it in use."""
        return self.backend.size(), self.backend.size_in_use()

    async def hash_kv(self, revision: int) -> HashKVResult:
        """etcd's HashByRev of the key space at ``revision`` (0: now); the scan of the backend
        runs in a worker thread, off the loop."""
        return await asyncio.to_thread(self.kv.hash_kv_job(revision))

    def defragment(self) -> tuple[int, int]:
        """Rewrite the backend without its free pages; (size before, size after) in bytes."""
        before, after = self.backend.defragment()
        log.info("etcdserver: defragmented the backend: %d -> %d bytes", before, after)
        return before, after

    async def snapshot_db(self) -> bytes:
        """The applied state as the bbolt file a real etcd would hold at this point (no SHA-256
        trailer): `etcdctl snapshot status` reads it, `snapshot restore` makes a data dir of it.
        Built from a read view of the backend in a worker thread: the loop only takes the view."""
        # The bbolt file code only when a snapshot is asked for (an idle member never loads it).
        from minietcd.mvcc.boltdb import write_bolt_from_view

        view = self.backend.read_view()
        try:
            return await asyncio.to_thread(write_bolt_from_view, view)
        finally:
            view.close()

    def conf_state(self) -> ConfState:
        """The Raft configuration of the applied membership."""
        return apply_state.conf_state(self.membership)

    # -- normal entries ---------------------------------------------------------------------

    def apply(self, entry: Entry) -> Applied:
        self.applied_index = entry.index
        apply_state.save_applied_index(self.backend, entry.index)
        if not entry.data:
            self.backend.commit_if_due()
            return Applied(0)  # a new leader's empty entry
        # As deep as the edge parsed it (nesting.py). Bytes that still do not parse are a bug
        # or a corrupt log: the DecodeError stops the member (raft_node.fail), as etcd's
        # MustUnmarshal panics, rather than skipping an entry the others applied. Nothing of
        # the open batch is committed then (no commit below), so a restart applies it again.
        req = parse_request(raft_internal_pb2.InternalRaftRequest, entry.data)
        rid = req.header.ID
        try:
            self.auth_applier.check(req)  # etcd's authApplierV3: a no-op while auth is off
            outcome = Applied(rid, self._dispatch(req))
        except MinietcdError as e:
            outcome = Applied(rid, error=e)
        self.backend.commit_if_due()
        return outcome

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
                if cp.ID in self.lessor:
                    apply_state.save_lease(self.backend, cp.ID, self.lessor.lookup(cp.ID))
            return rpc_pb2.LeaseCheckpointResponse()
        if req.HasField("alarm"):
            return self._alarm(req.alarm)
        if req.HasField("v2"):
            return self._v2(req.v2)
        resp = self.auth_applier.apply(req)
        if resp is not NOT_AUTH:
            return resp
        raise UnsupportedRequestError()

    def _check_space(self) -> None:
        # etcd's applierV3Capped: with the NOSPACE alarm raised, writes that grow the database
        # are refused until an operator compacts, defragments and disarms.
        if any(a == ALARM_NOSPACE for _, a in self.alarms):
            raise NoSpaceError()

    def _lease_grant(self, r: rpc_pb2.LeaseGrantRequest) -> rpc_pb2.LeaseGrantResponse:
        lease = self.lessor.grant(r.ID, r.TTL)
        apply_state.save_lease(self.backend, lease.id, lease)
        return rpc_pb2.LeaseGrantResponse(ID=lease.id, TTL=lease.ttl)

    def _lease_revoke(self, r: rpc_pb2.LeaseRevokeRequest) -> rpc_pb2.LeaseRevokeResponse:
        if self.lessor.lookup(r.ID) is None:
            raise LeaseNotFoundError(f"lease {r.ID:x} not found")
        keys = self.lessor.revoke(r.ID)
        apply_state.save_lease(self.backend, r.ID, None)
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
        apply_state.save_alarms(self.backend, self.alarms)
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
            old, self.membership.cluster_version = self.membership.cluster_version, val
            self.capabilities.applied(old, val)
        else:
            return None
        apply_state.save_membership(self.backend, self.membership)
        return None

    # -- membership -------------------------------------------------------------------------

    def apply_conf_change(self, entry: Entry, cc: ConfChange) -> tuple[Applied, bool]:
        """Validate and apply a membership change. Returns the outcome and whether the Raft
        core must apply it too (an invalid change is a no-op everywhere, as in etcd)."""
        self.applied_index = entry.index
        apply_state.save_applied_index(self.backend, entry.index)
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
        apply_state.save_membership(self.backend, ms)
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
        """The data of a Raft snapshot at ``applied_index``: the backend is committed (durable)
        first, so the header it returns names a state the file holds (apply_snapshot)."""
        self.backend.commit()
        self.settle_memory()
        return apply_snapshot.encode_header(self.applied_index)

    def snapshot_view(self) -> tuple[int, ReadView]:
        """(applied index, a frozen view of the state at it): what a member that needs a
        snapshot is sent, copied and streamed off the loop (apply_snapshot.SnapshotBody)."""
        view = self.backend.read_view()
        return self.applied_index, view

    def restore(self, data: bytes) -> None:
        """Replace the whole state with a snapshot's: the database file received with it, or
        (older data dirs and tools) the state carried in the snapshot itself."""
        index = apply_snapshot.decode_header(data)
        if index is None:
            apply_snapshot.restore_legacy(self, data)
        else:
            path = apply_snapshot.db_file(self.backend, index)
            if os.path.exists(path):
                self.backend.replace_with(path)
            elif self.applied_index < index:
                raise StateSnapshotError(
                    f"etcdserver: snapshot at index {index} has no database file {path}"
                )
            self.kv.reload()
            self._load()
            apply_snapshot.purge_received(os.path.dirname(path), self.applied_index)
            self.settle_memory()
        for hook in self.restore_hooks:
            hook()


def _freeze_gc() -> None:
    """Move every object alive now out of the cyclic garbage collector's sight (gc.freeze).

    The key index is millions of small objects, and each full collection walks all of them:
    about 1.3 s at 10^6 keys, long enough for followers to start an election. The state
    machine calls this where the index has just grown or been rebuilt (each Raft snapshot,
    every --snapshot-count entries; a restart; an installed snapshot), so a full collection
    only ever walks what was made since. Frozen objects are still freed by reference counting
    (a deleted key's index goes at once). A young collection first clears recent cyclic
    garbage; garbage that is already old at this moment stays frozen. The server makes little
    (asyncio and gRPC objects die by reference counting); a full collection here instead would
    walk everything made since the last freeze, a stall of its own (measured: 2.2 s with 10^6
    keys loaded by transactions)."""
    gc.collect(1)
    gc.freeze()


def _txn_writes(t: rpc_pb2.TxnRequest) -> bool:
    for op in list(t.success) + list(t.failure):
        which = op.WhichOneof("request")
        if which in ("request_put", "request_delete_range"):
            return True
        if which == "request_txn" and _txn_writes(op.request_txn):
            return True
    return False
