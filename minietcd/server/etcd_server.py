"""EtcdServer: turns client requests into proposals and linearizable reads (etcd's etcdserver).

- A write becomes an ``InternalRaftRequest`` with a unique id, is proposed through the Raft node
  (a follower's core forwards it to the leader), and completes when *this* member applies the
  entry carrying that id. Waiting here, not on the leader, means the answer comes from the same
  state machine that the next read on this member sees.
- A linearizable read asks the core for a ReadIndex, waits until the state machine has applied
  up to it, then reads locally. Concurrent reads share one ReadIndex round (a round for one
  or two readers among many waits up to 1 ms for more: proposals.GroupCommit).
- The leader expires leases by proposing revocations; on becoming leader it refreshes every
  lease's deadline so that a failover never expires a healthy lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from minietcd import ETCD_API_VERSION
from minietcd.api.etcdserverpb import etcdserver_pb2, raft_internal_pb2, rpc_pb2
from minietcd.errors import (
    BadLeaderTransfereeError,
    ConfChangePendingError,
    LeaderChangedError,
    LeaderTransferTimeoutError,
    LearnerNotReadyError,
    MemberNotEnoughStartedError,
    MemberNotFoundError,
    MemberNotLearnerError,
    MinietcdError,
    NoLeaderError,
    NoSpaceError,
    NotLeaderError,
    ProposalDroppedError,
    RequestTimeoutError,
    RequestTooLargeError,
    StoppedError,
    UnhealthyError,
)
from minietcd.raft.types import NONE, ConfChange, ConfChangeType
from minietcd.server.apply import ALARM_NOSPACE, Applied, StateMachine
from minietcd.server.membership import Member, encode_conf_context
from minietcd.server.raft_node import PROPOSALS_PENDING, RaftNode
from minietcd.server.read_rounds import ReadRounds, time_out

log = logging.getLogger("minietcd.server")
_T = TypeVar("_T")

HEALTH_INTERVAL = 5.0  # seconds all peers must have been connected before a reconfiguration

LEASE_REVOKE_RATE = 1000  # lease revocations proposed per second at most (etcd's leaseRevokeRate)


class IdGenerator:
    """Unique request ids: member id prefix, start time, then a counter (etcd's idutil)."""

    def __init__(self, member_id: int) -> None:
        prefix = (member_id & 0xFFFF) << 48
        suffix = (int(time.time() * 1000) & ((1 << 40) - 1)) << 8
        self._next = prefix | suffix

    def next(self) -> int:
        self._next = (self._next + 1) & ((1 << 64) - 1)
        return self._next


class EtcdServer:
    def __init__(
        self,
        *,
        member_id: int,
        cluster_id: int,
        name: str,
        sm: StateMachine,
        node: RaftNode,
        election_timeout: float,
        max_request_bytes: int,
        quota_bytes: int,
        active_since: Callable[[int], float | None],
    ) -> None:
        self.member_id = member_id
        self.cluster_id = cluster_id
        self.name = name
        self.sm = sm
        self.node = node
        self.election_timeout = election_timeout
        self.request_timeout = 5.0 + 2 * election_timeout  # etcd's ReqTimeout()
        self.max_request_bytes = max_request_bytes
        self.quota_bytes = quota_bytes
        self.active_since = active_since
        self.ids = IdGenerator(member_id)
        self._waiting: dict[int, asyncio.Future[object]] = {}
        self._applied_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._leader_changed = asyncio.Event()
        # Linearizable reads (read_barrier): ReadIndex rounds shared by concurrent readers.
        self.reads = ReadRounds(node, self.wait_leader, lambda: self.request_timeout, self._keep)
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[None]] = set()  # fire-and-forget work, kept alive
        self.stopped = asyncio.Event()
        node.on_applied = self._on_applied
        node.on_read_state = self.reads.on_read_state
        node.on_leader_change = self._on_leader_change
        node.on_dropped = self._on_dropped
        node.proposals_waiting = self._waiting.__len__  # the group commit's writers (proposals.py)

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        task = asyncio.create_task(self._lease_expiry_loop(), name="lease-expiry")
        task.add_done_callback(self._fail_stop_on_crash)
        self._tasks.append(task)

    def _fail_stop_on_crash(self, task: asyncio.Task[None]) -> None:
        # A loop of the member that ends by an exception leaves it half-alive (leases that
        # never expire): stop the member instead (DESIGN rule 8).
        if not task.cancelled() and task.exception() is not None:
            self.node.fail(f"etcdserver: {task.get_name()} failed: ", task.exception() or RuntimeError())

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        self.reads.stop()
        for fut in self._waiting.values():
            if not fut.done():
                fut.set_exception(StoppedError())
        self.stopped.set()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` in the background, holding a reference until it ends."""
        self._keep(asyncio.create_task(coro))

    def _keep(self, task: asyncio.Task[None]) -> None:
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- what the API reports --------------------------------------------------------------------

    @property
    def leader(self) -> int:
        return self.node.lead

    @property
    def term(self) -> int:
        return self.node.term

    def cluster_header(self) -> rpc_pb2.ResponseHeader:
        """The Cluster service's header: etcd sets no revision there."""
        return rpc_pb2.ResponseHeader(
            cluster_id=self.cluster_id, member_id=self.member_id, raft_term=self.term
        )

    def header(self, revision: int | None = None) -> rpc_pb2.ResponseHeader:
        return rpc_pb2.ResponseHeader(
            cluster_id=self.cluster_id,
            member_id=self.member_id,
            revision=self.sm.kv.current_revision if revision is None else revision,
            raft_term=self.term,
        )

    def is_learner(self) -> bool:
        m = self.sm.membership.members.get(self.member_id)
        return m is not None and m.is_learner

    # -- applied entries and reads: called from the Raft node loop ---------------------------------

    def _on_applied(self, outcome: Applied, index: int) -> None:
        fut = self._waiting.pop(outcome.request_id, None) if outcome.request_id else None
        if fut is not None and not fut.done():
            if outcome.error is not None:
                fut.set_exception(outcome.error)
            else:
                fut.set_result(outcome.response)
        if self._applied_waiters:
            keep = []
            for want, f in self._applied_waiters:
                if want <= index:
                    if not f.done():
                        f.set_result(None)
                else:
                    keep.append((want, f))
            self._applied_waiters = keep

    def _on_leader_change(self, lead: int, term: int) -> None:
        self._leader_changed.set()
        self._leader_changed = asyncio.Event()
        lessor = self.sm.lessor
        if lead == self.member_id:
            # Refresh every lease: remaining TTLs restart from now, plus an election timeout
            # to cover the time a keep-alive needs to find the new leader (etcd's Promote).
            lessor.promote(self.election_timeout)
        elif lessor.is_primary:
            lessor.demote()
        self.reads.on_leader_change()

    async def wait_applied(self, index: int) -> None:
        """Return once this member has applied ``index`` (a simple auth token issued by another
        member at that index is known here only then: auth/tokens.py). The caller bounds it."""
        if self.node.applied_index < index:
            await self._applied_future(asyncio.get_running_loop(), index)

    def _applied_future(self, loop: asyncio.AbstractEventLoop, index: int) -> asyncio.Future[None]:
        """A future resolved by :meth:`_on_applied` once ``index`` is applied."""
        fut: asyncio.Future[None] = loop.create_future()
        self._applied_waiters.append((index, fut))
        return fut

    async def wait_leader(self, timeout: float) -> int:
        """The current leader, waiting up to ``timeout`` for one to be elected."""
        deadline = time.monotonic() + timeout
        while self.node.lead == NONE:
            left = deadline - time.monotonic()
            if left <= 0:
                raise NoLeaderError()
            try:
                await asyncio.wait_for(self._leader_changed.wait(), left)
            except TimeoutError:
                raise NoLeaderError() from None
        return self.node.lead

    # -- writes ---------------------------------------------------------------------------------

    async def propose(self, req: raft_internal_pb2.InternalRaftRequest) -> object:
        """Propose ``req`` and return what applying it produced on this member.

        The hot path of every write, so it is lean: one future per request, answered by
        ``_on_applied``, and one timer for the deadline (no ``wait_for``/``shield`` pair, which
        costs a task, two more futures and their callbacks per request)."""
        rid = self.ids.next()
        req.header.ID = rid
        data = req.SerializeToString()
        if len(data) > self.max_request_bytes:  # etcd checks the marshalled request, no slack
            raise RequestTooLargeError()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.request_timeout
        _Pending.count += 1
        try:
            while True:
                if self.node.lead == NONE:
                    await self.wait_leader(deadline - loop.time())
                fut: asyncio.Future[object] = loop.create_future()
                self._waiting[rid] = fut
                self.node.propose(data, rid)
                timer = loop.call_at(deadline, time_out, fut)
                try:
                    return await fut
                except ProposalDroppedError:
                    # Nothing was appended (a batch is taken whole or not at all). The leader was
                    # lost or is transferring: wait for the next one, within the same deadline.
                    await asyncio.sleep(min(0.05, max(0.0, deadline - loop.time())))
                    if loop.time() >= deadline:
                        raise RequestTimeoutError() from None
                finally:
                    timer.cancel()
        finally:
            self._waiting.pop(rid, None)
            _Pending.count -= 1

    async def propose_for(self, req: raft_internal_pb2.InternalRaftRequest, kind: type[_T]) -> _T:
        """:meth:`propose`, for a request whose applier answers with a ``kind``."""
        resp = await self.propose(req)
        assert isinstance(resp, kind), (type(resp), kind)
        return resp

    def _on_dropped(self, request_id: int, error: ProposalDroppedError) -> None:
        fut = self._waiting.get(request_id)
        if fut is not None and not fut.done():
            fut.set_exception(error)

    def check_quota(self, grows: bool) -> None:
        """Refuse writes once the backend passed --quota-backend-bytes (and raise NOSPACE)."""
        if any(a == ALARM_NOSPACE for _, a in self.sm.alarms):
            if grows:
                raise NoSpaceError()
            return
        if grows and self.quota_bytes > 0 and self.sm.kv.size_bytes() > self.quota_bytes:
            self.spawn(self._raise_nospace())
            raise NoSpaceError()

    async def _raise_nospace(self) -> None:
        req = raft_internal_pb2.InternalRaftRequest(
            alarm=rpc_pb2.AlarmRequest(
                action=rpc_pb2.AlarmRequest.ACTIVATE, memberID=self.member_id, alarm=ALARM_NOSPACE
            )
        )
        try:
            await self.propose(req)
            log.warning(
                "etcdserver: alarm NOSPACE raised by member %x: database space exceeded", self.member_id
            )
        except MinietcdError as e:
            log.warning("etcdserver: could not raise the NOSPACE alarm: %s", e)

    # -- linearizable reads ------------------------------------------------------------------------

    # !!! TEST-ONLY, UNSAFE: MINIETCD_UNSAFE_LOCAL_READS=1 skips ReadIndex, so "linearizable" reads are
    # !!! served from local state (stale under partitions). It exists only so that the lab's chaos
    # !!! checker can be shown to catch it (tests/lab/test_chaos.py). Never set it anywhere else.
    UNSAFE_LOCAL_READS = os.environ.get("MINIETCD_UNSAFE_LOCAL_READS") == "1"
    if UNSAFE_LOCAL_READS:
        os.write(2, b"WARNING: MINIETCD_UNSAFE_LOCAL_READS=1: linearizable reads are NOT linearizable\n")

    async def read_barrier(self) -> None:
        """Return once a read on this member would see every write committed before the call
        (thesis 6.4: ReadIndex, then wait for the state machine to apply up to it).

        Per reader: one future for the round it joins and one timer for its deadline (no
        ``wait_for``, which would wrap each wait in a task of its own), and no wait at all
        for the apply when the state machine is already there, the usual case."""
        if self.UNSAFE_LOCAL_READS:  # !!! TEST-ONLY, UNSAFE: see above
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.request_timeout
        while True:
            try:
                index = await self.reads.join(loop, deadline)
                break
            except LeaderChangedError:  # no leader or stopped: the reader gets it
                if loop.time() >= deadline:
                    raise
                await asyncio.sleep(0.01)  # the leader changed mid-round: try again
        if self.node.applied_index >= index:
            return
        fut = self._applied_future(loop, index)
        timer = loop.call_at(deadline, time_out, fut)
        try:
            await fut
        finally:
            timer.cancel()

    # -- leases: only the leader expires them ------------------------------------------------------

    async def _lease_expiry_loop(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            if not self.node.is_leader:
                continue
            for lease_id in self.sm.lessor.expired_leases(LEASE_REVOKE_RATE // 2):
                req = raft_internal_pb2.InternalRaftRequest(
                    lease_revoke=rpc_pb2.LeaseRevokeRequest(ID=lease_id)
                )
                # As root (etcd's authStore.WithRoot): with auth on, the applier checks revokes.
                req.header.username, req.header.auth_revision = "root", self.sm.auth.revision
                self.spawn(self._revoke_expired(req, lease_id))

    async def _revoke_expired(self, req: raft_internal_pb2.InternalRaftRequest, lease_id: int) -> None:
        try:
            await self.propose(req)
        except MinietcdError as e:
            log.debug("lease %x: revoke not applied (%s); will retry", lease_id, e)

    # -- membership ----------------------------------------------------------------------------

    async def propose_conf_change(self, cc_type: ConfChangeType, member: Member) -> list[Member]:
        rid = self.ids.next()
        cc = ConfChange(cc_type, member.id, encode_conf_context(member, rid))
        fut: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._waiting[rid] = fut
        deadline = time.monotonic() + self.request_timeout
        try:
            await self.wait_leader(self.request_timeout)
            try:
                self.node.propose_conf_change(cc)
            except ConfChangePendingError:
                raise  # another change is not applied yet: UNKNOWN with the core's words
            except ProposalDroppedError:
                raise RequestTimeoutError() from None
            result = await asyncio.wait_for(asyncio.shield(fut), deadline - time.monotonic())
        except TimeoutError:
            raise RequestTimeoutError() from None
        finally:
            self._waiting.pop(rid, None)
        assert isinstance(result, list)
        return result

    def _started(self, member_id: int) -> bool:
        """etcd's "started": the member has published its name (it has run at least once)."""
        m = self.sm.membership.members.get(member_id)
        return m is not None and bool(m.name)

    def _connected_since(self, ids: list[int], since: float) -> int:
        """How many of ``ids`` (this member included) we have been connected to since ``since``."""
        n = 0
        for i in ids:
            t = self.active_since(i)
            if i == self.member_id or (t is not None and t <= since):
                n += 1
        return n

    def check_add_voter(self) -> None:
        """--strict-reconfig-check for adding a voter (etcd's mayAddMember)."""
        voters = self.sm.membership.voters()
        started = sum(1 for v in voters if self._started(v))
        # etcd's IsReadyToAddVotingMember lets a 1-member cluster grow (its recovery guide
        # restores one member, then adds the others) though the new quorum is not started.
        growing_one = started == 1 and len(voters) == 1
        if started < (len(voters) + 1) // 2 + 1 and not growing_one:
            raise MemberNotEnoughStartedError()
        if self._connected_since(voters, time.monotonic() - HEALTH_INTERVAL) < len(voters):
            raise UnhealthyError()

    def check_remove_voter(self, member_id: int) -> None:
        """--strict-reconfig-check for removing a voter (etcd's mayRemoveMember)."""
        voters = self.sm.membership.voters()
        if member_id not in voters:
            return
        rest = [v for v in voters if v != member_id]
        if sum(1 for v in rest if self._started(v)) < len(rest) // 2 + 1:
            raise MemberNotEnoughStartedError()
        if member_id != self.member_id and self.active_since(member_id) is None:
            return  # a member that is down is not part of the active quorum: safe to remove
        active = self._connected_since(voters, time.monotonic() - HEALTH_INTERVAL)
        if active - 1 < 1 + (len(voters) - 1) // 2:
            raise UnhealthyError()

    async def transfer_leadership_on_shutdown(self) -> None:
        """A leader stopping cleanly hands leadership to the peer it has been connected to longest,
        so the cluster does not wait out an election timeout (etcd does the same on SIGTERM)."""
        voters = [v for v in self.sm.membership.voters() if v != self.member_id]
        if not self.node.is_leader or not voters:
            return
        since = {v: self.active_since(v) for v in voters}
        candidates = sorted((t, v) for v, t in since.items() if t is not None)
        if not candidates:
            return
        target = candidates[0][1]
        log.info("etcdserver: leadership transfer to %x before stopping", target)
        try:
            await asyncio.wait_for(self.move_leader(target), self.election_timeout * 2)
        except (MinietcdError, TimeoutError) as e:
            log.warning("etcdserver: leadership transfer before stopping failed: %s", e)

    def check_promote(self, member_id: int) -> None:
        m = self.sm.membership.members.get(member_id)
        if m is None:
            raise MemberNotFoundError()
        if not m.is_learner:
            raise MemberNotLearnerError()
        st = self.node.rawnode.status()
        if st.progress:  # on the leader: a learner must be nearly caught up (etcd: 90%)
            pr = st.progress.get(member_id)
            leader_match = st.progress[self.member_id].match
            if pr is None or pr.match < leader_match * 9 // 10:
                raise LearnerNotReadyError()

    async def move_leader(self, target: int) -> None:
        if not self.node.is_leader:
            raise NotLeaderError()
        m = self.sm.membership.members.get(target)
        if m is None or m.is_learner:
            raise BadLeaderTransfereeError()
        if target == self.member_id:
            return
        self.node.transfer_leader(target)
        deadline = time.monotonic() + self.request_timeout
        while self.node.lead != target:
            left = deadline - time.monotonic()
            if left <= 0:
                raise LeaderTransferTimeoutError()
            ev = self._leader_changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ev.wait(), min(left, 0.1))
        log.info("etcdserver: leadership transfer to %x finished", target)

    # -- publishing this member's attributes (etcd 3.4's v2 PUT through the log) ------------------

    async def publish(self, client_urls: list[str]) -> None:
        val = json.dumps({"name": self.name, "clientURLs": client_urls}, separators=(",", ":"))
        req = raft_internal_pb2.InternalRaftRequest(
            v2=etcdserver_pb2.Request(Method="PUT", Path=f"/0/members/{self.member_id:x}/attributes", Val=val)
        )
        while not self.stopped.is_set():
            try:
                await self.propose(req)
                log.info(
                    "etcdserver: published {Name:%s ClientURLs:[%s]} to cluster %x",
                    self.name,
                    " ".join(client_urls),
                    self.cluster_id,
                )
                return
            except MinietcdError as e:
                log.warning("etcdserver: failed to publish local member to cluster through raft (%s)", e)
                await asyncio.sleep(0.5)

    async def ensure_cluster_version(self) -> None:
        """The leader records the cluster version once (etcd's monitorVersions); every member
        logs it when it applies the entry (StateMachine, cluster_version.py)."""
        announced = False
        while not self.stopped.is_set():
            await asyncio.sleep(0.2)
            if self.sm.membership.cluster_version:
                return
            if not self.node.is_leader:
                continue
            version = ".".join(ETCD_API_VERSION.split(".")[:2]) + ".0"
            if not announced:
                self.sm.capabilities.proposing(version)
                announced = True
            req = raft_internal_pb2.InternalRaftRequest(
                v2=etcdserver_pb2.Request(Method="PUT", Path="/0/version", Val=version)
            )
            with contextlib.suppress(MinietcdError):
                await self.propose(req)


class _Pending:
    """Proposals of this process waiting for their outcome (etcd_server_proposals_pending)."""

    count = 0


PROPOSALS_PENDING.set_function(lambda: _Pending.count)
