"""The only place where the pure Raft core meets I/O (design rule 1).

One asyncio task runs the Ready loop in the order the core's contract gives (rawnode.py):

    tick -> ready -> persist (fsync on the WAL syncer's thread) -> send -> apply -> advance

While the fsync runs, the event loop keeps serving: proposals and peer messages are stepped into
the core, and they all come out in the next Ready, so one fsync covers many writes (group
commit) and one append carries many entries.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import time
from collections.abc import Callable
from typing import Protocol

from prometheus_client import Counter, Gauge, Histogram

from minietcd.errors import BackendCommitError, MemberFailedError, ProposalDroppedError, StepError
from minietcd.raft import describe
from minietcd.raft.confchange import decode_conf_change
from minietcd.raft.rawnode import RawNode, Ready
from minietcd.raft.types import (
    EMPTY_HARD_STATE,
    NONE,
    ConfChange,
    ConfChangeType,
    Entry,
    EntryType,
    Message,
    MessageType,
    ReadState,
    Snapshot,
    SnapshotMetadata,
    StateRole,
)
from minietcd.server.apply import Applied, StateMachine
from minietcd.server.apply_snapshot import encode_header
from minietcd.server.failstop import error_text, failpoint
from minietcd.server.observe import EventLog, MessageTrace
from minietcd.server.proposals import ProposalQueue
from minietcd.server.snapshot_files import SnapshotBody
from minietcd.server.wal_syncer import WalSyncer
from minietcd.storage.raft_storage import DiskStorage

log = logging.getLogger("minietcd.raft")

# etcd's metric names, so dashboards built for etcd work unchanged.
HAS_LEADER = Gauge("etcd_server_has_leader", "Whether or not a leader exists. 1 is existence, 0 is not.")
IS_LEADER = Gauge("etcd_server_is_leader", "Whether or not this member is a leader. 1 if is, 0 otherwise.")
LEADER_CHANGES = Counter("etcd_server_leader_changes_seen", "The number of leader changes seen.")
PROPOSALS_COMMITTED = Gauge(
    "etcd_server_proposals_committed_total", "The total number of consensus proposals committed."
)
PROPOSALS_APPLIED = Gauge(
    "etcd_server_proposals_applied_total", "The total number of consensus proposals applied."
)
PROPOSALS_PENDING = Gauge(
    "etcd_server_proposals_pending", "The current number of pending proposals to commit."
)
PROPOSALS_FAILED = Counter("etcd_server_proposals_failed", "The total number of failed proposals seen.")
WAL_FSYNC = Histogram(
    "etcd_disk_wal_fsync_duration_seconds",
    "The latency distributions of fsync called by WAL.",
    buckets=[0.001 * 2**i for i in range(14)],
)

# RaftNode._doing while applying committed entries; fail() names the entry instead.
_APPLYING = "apply"

# Entries kept behind a snapshot so that a slightly slow follower catches up by appends rather
# than by a whole snapshot (etcd's SnapshotCatchUpEntries).
SNAPSHOT_CATCH_UP_ENTRIES = 5000


class Transport(Protocol):
    def send(self, msgs: list[Message]) -> None: ...
    def send_snapshot(self, m: Message, body: SnapshotBody) -> None: ...
    def add_peer(self, member_id: int, peer_urls: list[str]) -> None: ...
    def update_peer(self, member_id: int, peer_urls: list[str]) -> None: ...
    def remove_peer(self, member_id: int) -> None: ...


class RaftNode:
    def __init__(
        self,
        *,
        rawnode: RawNode,
        storage: DiskStorage,
        transport: Transport,
        sm: StateMachine,
        tick_seconds: float,
        snapshot_count: int,
        on_removed: Callable[[], None],
    ) -> None:
        self.rawnode = rawnode
        self.storage = storage
        self.transport = transport
        self.sm = sm
        self.tick_seconds = tick_seconds
        self.snapshot_count = snapshot_count
        self.on_removed = on_removed  # this member was removed, or hit a fatal error: stop
        # Hooks the EtcdServer attaches (no-ops until then):
        self.on_applied: Callable[[Applied, int], None] = lambda outcome, index: None
        self.on_read_state: Callable[[ReadState], None] = lambda rs: None
        self.on_leader_change: Callable[[int, int], None] = lambda lead, term: None  # (leader, term)
        self.on_dropped: Callable[[int, ProposalDroppedError], None] = lambda rid, e: None
        # This member's proposals waiting for their outcome, queued ones included: how many
        # writers the group commit may wait for (proposals.py).
        self.proposals_waiting: Callable[[], int] = lambda: len(self.proposals)
        self.id = rawnode.id
        self.lead = NONE
        self.term = rawnode.status().hard_state.term
        self.is_leader = False
        self.applied_index = sm.applied_index
        self.snapshot_index = storage.snapshot().metadata.index
        self.events = EventLog()  # explained Raft events, for /debug/raft/events (observe.py)
        self.messages = MessageTrace()  # sampled sent messages, for /debug/raft/messages
        self._wake = asyncio.Event()
        self._syncer = WalSyncer()  # fsyncs the WAL off the loop (wal_syncer.py)
        self._tasks: list[asyncio.Task[None]] = []
        self._stopped = False
        # Not yet stepped (proposals.py).
        self.proposals = ProposalQueue(self._wake.set, lambda: self.proposals_waiting())
        self.advance_ticks_pending = True  # see advance_election_ticks
        # Fail-stop (DESIGN rule 8): set once, by fail(), when this member can no longer
        # persist, apply or step; the member then stops and exits non-zero.
        self.failure: MemberFailedError | None = None
        self._doing = ""  # what the Ready loop is doing, in etcd's fatal wording (see fail())
        self._applying = 0  # index of the entry being applied, for the same line

    # -- inputs (any coroutine may call these) -------------------------------------------------

    def step(self, m: Message) -> None:
        if self._stopped:
            return
        try:
            failpoint("raftBeforeStep")
            self.rawnode.step(m)
        except ProposalDroppedError:
            pass  # a forwarded proposal the leader could not take; the proposer times out
        except StepError as e:
            log.warning("dropping message from peer %x: %s", m.from_, e)
        except Exception as e:  # a broken invariant or a bug: the core's state is suspect
            self.fail(f"raft: failed to step {m.type.name} from {m.from_:x}: ", e)
        self._wake.set()

    def propose(self, data: bytes, request_id: int) -> None:
        """Queue a proposal. What is queued enters the core together (one MsgProp, one append
        per follower, one fsync): batching behind the request edge, with a small batch held
        back briefly while other proposals are in flight (proposals.py). If the core refuses
        the batch, ``on_dropped(request_id, error)`` is called."""
        self.proposals.add(data, request_id)

    def _flush_proposals(self) -> None:
        if not self.proposals.due():
            return
        batch = self.proposals.take()
        try:
            self.rawnode.propose_many([data for data, _ in batch])
        except ProposalDroppedError as e:
            PROPOSALS_FAILED.inc(len(batch))
            for _, rid in batch:
                self.on_dropped(rid, e)

    def propose_conf_change(self, cc: ConfChange) -> None:
        self.rawnode.propose_conf_change(cc)
        self._wake.set()

    def read_index(self, ctx: bytes) -> None:
        self.rawnode.read_index(ctx)
        self._wake.set()

    def transfer_leader(self, to: int) -> None:
        self.rawnode.transfer_leader(to)
        self._wake.set()

    def report_unreachable(self, member_id: int) -> None:
        try:
            self.rawnode.report_unreachable(member_id)
        except Exception as e:  # the transport would log it and go on: stop instead
            self.fail(f"raft: failed to report {member_id:x} unreachable: ", e)
        self._wake.set()

    def report_snapshot(self, member_id: int, ok: bool) -> None:
        try:
            self.rawnode.report_snapshot(member_id, ok)
        except Exception as e:
            self.fail(f"raft: failed to report a snapshot to {member_id:x}: ", e)
        self._wake.set()

    # -- the loop --------------------------------------------------------------------------------

    def advance_election_ticks(self) -> None:
        """etcd's --initial-election-tick-advance for a member that is the only voter: it
        would only wait out its election timeout alone, so let it campaign at once."""
        st = self.rawnode.status()
        if st.conf_state.voters == (self.id,) and st.soft_state.lead == NONE:
            self.rawnode.campaign()
            self._wake.set()

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._ticker(), name="raft-ticker"),
            asyncio.create_task(self._run(), name="raft-ready-loop"),
        ]

    async def stop(self) -> None:
        self._stopped = True
        self._wake.set()
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        await self._syncer.stop()  # an fsync in flight ends before the storage is closed
        self.proposals.close()

    async def _ticker(self) -> None:
        while not self._stopped:
            await asyncio.sleep(self.tick_seconds)
            try:
                failpoint("raftBeforeTick")
                self.rawnode.tick()
            except Exception as e:
                self.fail("raft: failed to tick: ", e)
                return
            self._wake.set()

    def fail(self, doing: str, exc: BaseException) -> None:
        """Fail-stop (DESIGN rule 8, etcd's plog.Fatalf): one critical line naming what failed
        and why, then stop stepping, persisting and applying, and ask the member to stop.
        Called for anything unexpected in the Ready loop, the ticker or a step."""
        if self.failure is not None:
            return
        self.failure = MemberFailedError(doing + error_text(exc))
        log.critical("%s", self.failure)
        log.debug("the error behind the fatal line above", exc_info=exc)  # --log-level debug
        self._stopped = True
        self._wake.set()
        self.on_removed()

    async def _run(self) -> None:
        while not self._stopped:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._drain()
            except Exception as e:  # anything at all: never limp on half-alive
                if isinstance(e, BackendCommitError):
                    self._doing = "mvcc/backend: "  # etcd's batch tx: plog.Fatalf("cannot commit tx")
                elif self._doing == _APPLYING:
                    self._doing = f"etcdserver: failed to apply entry {self._applying}: "
                self.fail(self._doing, e)
                return

    async def _drain(self) -> None:
        """Handle Readies until the core has nothing more to say."""
        while not self._stopped:
            self._doing = "etcdserver: failed to propose: "
            self._flush_proposals()
            if not self.rawnode.has_ready():
                break
            self._doing = "raft: failed to build Ready: "
            await self._handle_ready(self.rawnode.ready())
        if self.advance_ticks_pending:
            # Once the bootstrap/restart entries are applied, the membership is known.
            self.advance_ticks_pending = False
            self._doing = "raft: failed to campaign: "
            self.advance_election_ticks()

    async def _handle_ready(self, rd: Ready) -> None:
        if rd.hard_state is not None:
            self.term = rd.hard_state.term
        for ev in rd.events:
            line = describe.event_line(ev, self.tick_seconds)
            log.info("raft: %s", line)
            self.events.append(ev.kind, ev.term, line)
        self.messages.record(rd.messages)
        if rd.soft_state is not None:
            self._soft_state_changed(rd.soft_state.lead, rd.soft_state.role)

        # 1. A leader sends first, writing its log while followers write theirs (thesis
        #    10.2.1). Safe: the leader's own entries count towards a commit only in a later
        #    Ready, which is handled after this one's fsync has finished.
        leader_sends_first = self.is_leader and rd.messages
        if leader_sends_first:
            self._doing = "etcdserver: failed to send raft messages: "
            failpoint("raftBeforeLeaderSend")
            self._send(rd.messages)

        # 2. Persist: entries, hard state and snapshot must be durable before the messages
        #    that depend on them leave (paper Figure 2, "before responding to RPCs").
        #    etcd's words when this fails (raft.go): "failed to save Raft snapshot", "failed to
        #    save state and entries error". ENOSPC and EIO end up here: fatal, as in etcd.
        self._doing = (
            "etcdserver: failed to save state and entries error: "
            if rd.snapshot is None
            else "etcdserver: failed to save Raft snapshot "
        )
        failpoint("raftBeforeSave")
        self.storage.save_ready(rd.hard_state or EMPTY_HARD_STATE, rd.entries, rd.snapshot)
        if rd.must_sync or rd.snapshot is not None:
            failpoint("raftBeforeSync")
            start = time.perf_counter()
            job = self.storage.begin_sync()
            error = await self._syncer.fsync(job.fd)
            self.storage.end_sync(job, error)
            WAL_FSYNC.observe(time.perf_counter() - start)

        # 3. Everyone else speaks only once durable (votes, append acknowledgements).
        if rd.messages and not leader_sends_first:
            self._doing = "etcdserver: failed to send raft messages: "
            failpoint("raftBeforeFollowerSend")
            self._send(rd.messages)

        # 4. Apply: a snapshot replaces the whole state; then committed entries, in order.
        if rd.snapshot is not None:
            self._doing = "etcdserver: recovering store from snapshot error: "
            failpoint("raftBeforeApplySnap")
            self.sm.restore(rd.snapshot.data)
            self.applied_index = self.snapshot_index = rd.snapshot.metadata.index
            self._sync_peers()
            log.info("raft: applied snapshot at index %d", rd.snapshot.metadata.index)
        self._doing = _APPLYING
        for e in rd.committed_entries:
            self._applying = e.index
            failpoint("raftBeforeApply")
            self._apply_entry(e)
        if rd.committed_entries:
            PROPOSALS_COMMITTED.set(rd.committed_entries[-1].index)
            PROPOSALS_APPLIED.set(self.applied_index)

        # 5. Reads confirmed by a heartbeat round.
        self._doing = "etcdserver: failed to serve a read index: "
        for rs in rd.read_states:
            self.on_read_state(rs)

        # 6. Done with this Ready.
        self._doing = "raft: failed to advance: "
        failpoint("raftBeforeAdvance")
        self.rawnode.advance(rd)
        if rd.snapshot_needed or self.applied_index - self.snapshot_index > self.snapshot_count:
            self._doing = "etcdserver: save snapshot error: "  # etcd's snapshot() panics so
            failpoint("raftBeforeSnapshot")
            self._snapshot()

    def _apply_entry(self, e: Entry) -> None:
        if e.type == EntryType.CONF_CHANGE:
            cc = decode_conf_change(e.data)
            outcome, apply_to_raft = self.sm.apply_conf_change(e, cc)
            if apply_to_raft:
                self.rawnode.apply_conf_change(cc)
                self._conf_change_applied(cc)
        else:
            outcome = self.sm.apply(e)
        self.applied_index = e.index
        self.on_applied(outcome, e.index)

    def _conf_change_applied(self, cc: ConfChange) -> None:
        if cc.type == ConfChangeType.REMOVE_NODE:
            if cc.node_id == self.id:
                log.warning("etcdserver: the member has been permanently removed from the cluster")
                self.on_removed()
            else:
                self.transport.remove_peer(cc.node_id)
        else:
            self._sync_peers()

    def _sync_peers(self) -> None:
        """Make the transport's peer list match the applied membership."""
        for m in self.sm.membership.sorted_members():
            if m.id != self.id:
                self.transport.add_peer(m.id, list(m.peer_urls))

    def _soft_state_changed(self, lead: int, role: StateRole) -> None:
        if lead != self.lead:
            if lead == NONE:
                log.info("raft: raft.node: %x lost leader %x at term %d", self.id, self.lead, self.term)
            elif self.lead == NONE:
                log.info("raft: raft.node: %x elected leader %x at term %d", self.id, lead, self.term)
            else:
                log.info(
                    "raft: raft.node: %x changed leader from %x to %x at term %d",
                    self.id,
                    self.lead,
                    lead,
                    self.term,
                )
            if lead != NONE:
                LEADER_CHANGES.inc()
            self.lead = lead
            HAS_LEADER.set(1 if lead != NONE else 0)
            self.on_leader_change(lead, self.term)
        is_leader = role == StateRole.LEADER
        if is_leader != self.is_leader:
            self.is_leader = is_leader
            IS_LEADER.set(1 if is_leader else 0)

    def _send(self, msgs: list[Message]) -> None:
        plain = [m for m in msgs if m.type != MessageType.MsgSnap]
        for m in msgs:
            if m.type == MessageType.MsgSnap:
                self._send_merged_snapshot(m)
        if plain:
            self.transport.send(plain)

    def _send_merged_snapshot(self, m: Message) -> None:
        """A member needs a snapshot: send it the database as it is now (etcd's merged
        snapshot, etcdserver/snapshot_merge.go). The view is taken here, on the loop, at the
        applied index (so index, term and configuration are the applied ones, not those of the
        older snapshot the core picked); copying and streaming it happen off the loop."""
        index, view = self.sm.snapshot_view()
        meta = SnapshotMetadata(
            conf_state=self.rawnode.status().conf_state, index=index, term=self.storage.term(index)
        )
        tmp = os.path.join(os.path.dirname(self.sm.backend.path), f"{index:016x}-to-{m.to:x}.sending")
        body = SnapshotBody(index, view, tmp)
        snap = Snapshot(data=encode_header(index), metadata=meta)
        self.transport.send_snapshot(dataclasses.replace(m, snapshot=snap), body)

    def _snapshot(self) -> None:
        """Snapshot the applied state and release the log before it: every --snapshot-count
        applied entries, and when the leader needs a snapshot that includes a new member.
        Cheap: the state is in the backend, which sm.snapshot() only commits (apply_snapshot)."""
        index = self.applied_index
        if index <= self.snapshot_index:
            return
        conf = self.rawnode.status().conf_state
        self.storage.create_snapshot(index, conf, self.sm.snapshot())
        self.snapshot_index = index
        compact_to = index - SNAPSHOT_CATCH_UP_ENTRIES
        if compact_to > self.storage.first_index():
            self.storage.compact(compact_to)
        log.info("etcdserver: saved snapshot at index %d", index)
