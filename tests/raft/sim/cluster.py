"""An in-memory cluster of Raft nodes driven exactly by the Ready contract (rawnode.py).

Each :class:`SimNode` is a RawNode, a MemoryStorage standing for its disk, and a tiny state
machine. The cluster runs the loop of ``rawnode``'s docstring::

    rd = node.ready()
    persist(rd)      # 1. snapshot, entries, hard state -> MemoryStorage
    send(rd)         # 2. messages -> the network
    apply(rd)        # 3. snapshot -> state machine, committed entries -> state machine
    node.advance(rd) # 4. acknowledge

but it may stop between the stages (the node keeps receiving messages, ticks and proposals
meanwhile, as the contract allows) and it may *crash* between any two of them. A crash loses
everything not yet persisted; a restart builds a fresh RawNode from a copy of the disk only.

Every step ends with the :class:`Checker` looking at the node that changed.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from minietcd.errors import ProposalDroppedError
from minietcd.raft.confchange import decode_conf_change
from minietcd.raft.config import Config
from minietcd.raft.rawnode import Peer, RawNode, Ready
from minietcd.raft.storage import MemoryStorage
from minietcd.raft.types import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    Message,
    MessageType,
    StateRole,
)
from tests.raft.sim.checker import Checker, SafetyViolation
from tests.raft.sim.network import Network
from tests.raft.sim.state_machine import StateMachine
from tests.raft.sim.transcript import Transcript

MT = MessageType

# What a leader may send before its own fsync (see Cluster.leader_sends_first).
LEADER_EARLY = frozenset({MT.MsgApp, MT.MsgHeartbeat, MT.MsgSnap})

# Where a node is in handling its current Ready.
IDLE, TAKEN, PERSISTED, SENT = 0, 1, 2, 3


@dataclass(slots=True, frozen=True)
class NodeOptions:
    """The Config knobs a run varies (everything else keeps Config's defaults)."""

    election_tick: int = 10
    heartbeat_tick: int = 1
    pre_vote: bool = True
    check_quorum: bool = True
    max_size_per_msg: int = 1 << 20
    max_inflight_msgs: int = 256
    max_uncommitted_entries_size: int = 64 << 20  # leader drops proposals beyond this
    max_committed_size_per_ready: int = 1 << 62  # committed entries are paged across Readys
    compact_every: int = 0  # snapshot+compact every this many applied entries (0: never)


@dataclass(slots=True)
class SimNode:
    id: int
    node: RawNode
    storage: MemoryStorage  # the node's disk: written only when a Ready is persisted
    sm: StateMachine  # volatile: rebuilt from the snapshot (and the log) on restart
    incarnation: int = 0  # bumped by every restart
    up: bool = True  # False while crashed (or once stopped)
    # Frozen (think SIGSTOP, a long GC pause): no ticks, no steps; messages to it wait.
    paused: bool = False
    pending_reports: list[tuple[int, bool]] = field(default_factory=list)  # snapshot reports
    stopped: bool = False  # removed from the cluster and shut down for good
    rd: Ready | None = None  # the Ready being handled, if any
    stage: int = IDLE  # how far handling ``rd`` got
    one_stage_at_a_time: bool = False  # handle ``rd`` in several steps (others interleave)
    outbox: list[Message] = field(default_factory=list)  # ``rd``'s messages not sent yet


@dataclass(slots=True)
class Removal:
    """A committed REMOVE_NODE: ``node`` stops once the voters after it have applied it."""

    node: int
    index: int
    voters_after: tuple[int, ...]


@dataclass(slots=True)
class Cluster:
    rng: random.Random  # the schedule's randomness (interleavings, crash points)
    net: Network
    opts: NodeOptions = field(default_factory=NodeOptions)
    transcript: Transcript = field(default_factory=Transcript)
    checker: Checker = field(default_factory=Checker)
    nodes: dict[int, SimNode] = field(default_factory=dict)
    now: int = 0  # the current tick
    split_ready: float = 0.0  # probability that a Ready is handled one stage at a time
    crash_in_ready: float = 0.0  # probability of crashing between two stages of a Ready
    report_unreachable: float = 0.0  # probability a sender is told a message was undeliverable
    # A leader sends its appends and heartbeats before its own fsync (thesis 10.2.1, allowed
    # by DESIGN rule 4); everything else still waits for the disk.
    leader_sends_first: bool = False
    removals: list[Removal] = field(default_factory=list)
    conf_history: dict[int, ConfState] = field(default_factory=dict)  # index -> conf after it
    max_applied: dict[int, int] = field(default_factory=dict)  # node -> highest applied ever
    initial: list[Peer] = field(default_factory=list)  # the bootstrap members

    # -- building nodes ------------------------------------------------------------------------

    def config(self, nid: int, storage: MemoryStorage, applied: int = 0) -> Config:
        o = self.opts
        return Config(
            id=nid,
            storage=storage,
            election_tick=o.election_tick,
            heartbeat_tick=o.heartbeat_tick,
            pre_vote=o.pre_vote,
            check_quorum=o.check_quorum,
            max_size_per_msg=o.max_size_per_msg,
            max_inflight_msgs=o.max_inflight_msgs,
            max_uncommitted_entries_size=o.max_uncommitted_entries_size,
            max_committed_size_per_ready=o.max_committed_size_per_ready,
            applied=applied,
            rng=random.Random(self.rng.getrandbits(64)),
        )

    def bootstrap(self, voters: int) -> None:
        """Start nodes 1..voters as a brand-new cluster (RawNode.bootstrap on each)."""
        peers = self.initial = [Peer(i) for i in range(1, voters + 1)]
        for i in range(1, voters + 1):
            st = MemoryStorage()
            node = RawNode(self.config(i, st))
            node.bootstrap(peers)
            self.nodes[i] = SimNode(i, node, st, StateMachine())
        self.say(f"bootstrap n1..n{voters}")
        for i in self.nodes:
            self.check(i)

    def add_empty_node(self, nid: int) -> None:
        """A new member's process: empty disk, no bootstrap; it learns all from the leader."""
        st = MemoryStorage()
        self.nodes[nid] = SimNode(nid, RawNode(self.config(nid, st)), st, StateMachine())
        self.say(f"start n{nid} (empty)")

    # -- queries -------------------------------------------------------------------------------

    def live(self) -> list[SimNode]:
        """Nodes that run: up and not paused."""
        return [n for n in self.nodes.values() if n.up and not n.paused]

    def leader(self) -> SimNode | None:
        """The live leader with the highest term (a stale one may linger in a partition)."""
        best: SimNode | None = None
        for n in self.live():
            r = n.node.raft
            if r.state == StateRole.LEADER and (best is None or r.term > best.node.raft.term):
                best = n
        return best

    def latest_conf(self) -> ConfState:
        """The membership after the last membership change anyone applied."""
        return self.conf_history[max(self.conf_history)] if self.conf_history else ConfState()

    def busy(self) -> list[SimNode]:
        return [n for n in self.live() if n.stage != IDLE or n.node.has_ready()]

    # -- the transcript and the checker ----------------------------------------------------------

    def say(self, text: str) -> None:
        self.transcript.say(self.now, text)

    def check(self, nid: int) -> None:
        n = self.nodes[nid]
        if n.up:
            self.checker.check_node(nid, n.node)

    # -- time ----------------------------------------------------------------------------------

    def tick(self, nid: int) -> None:
        self.nodes[nid].node.tick()
        self.check(nid)

    def run_ticks(self, ticks: int) -> None:
        """Advance time on a fault-free schedule: tick every live node, then settle."""
        for _ in range(ticks):
            self.now += 1
            for n in self.live():
                self.tick(n.id)
            self.settle()
            self.stop_removed()

    # -- the Ready loop ------------------------------------------------------------------------

    def handle_ready(self, nid: int) -> None:
        """Advance ``nid``'s Ready handling by one stage, or (usually) all the way."""
        n = self.nodes[nid]
        if n.stage == IDLE:
            n.rd = n.node.ready()
            n.stage = TAKEN
            n.one_stage_at_a_time = self.rng.random() < self.split_ready
            n.outbox = list(n.rd.messages)
            self._record_ready(n, n.rd)
            if self.leader_sends_first and n.node.raft.state == StateRole.LEADER:
                early = [m for m in n.outbox if m.type in LEADER_EARLY]
                n.outbox = [m for m in n.outbox if m.type not in LEADER_EARLY]
                self._send(n, early)
            if n.one_stage_at_a_time:
                return  # the node keeps stepping meanwhile; the next call persists
        while n.stage != IDLE:
            if self.crash_in_ready and self.rng.random() < self.crash_in_ready:
                self.crash(nid, f"with its Ready {('', 'taken', 'persisted', 'sent')[n.stage]}")
                return
            self._next_stage(n)
            if n.one_stage_at_a_time:
                break
        self.check(nid)

    def _next_stage(self, n: SimNode) -> None:
        rd = n.rd
        assert rd is not None
        if n.stage == TAKEN:
            self._persist(n, rd)
            n.stage = PERSISTED
        elif n.stage == PERSISTED:
            self._send(n, n.outbox)
            n.outbox = []
            n.stage = SENT
        else:
            self._apply(n, rd)
            n.node.advance(rd)
            n.rd, n.stage = None, IDLE
            if rd.snapshot_needed:  # a member needs a snapshot newer than our latest one
                self.say(f"n{n.id} takes a snapshot at {n.sm.applied}, as the Ready asks")
                self.snapshot(n.id)
            self._maybe_compact(n)

    def _record_ready(self, n: SimNode, rd: Ready) -> None:
        for ev in rd.events:
            self.transcript.event(self.now, ev)
            if ev.kind == "became-leader":
                self.checker.note_leader(ev.node, ev.term)

    def _persist(self, n: SimNode, rd: Ready) -> None:
        """1. Make the Ready durable (one atomic write, as a WAL record would be)."""
        if rd.snapshot is not None:
            n.storage.apply_snapshot(rd.snapshot)
        n.storage.append(rd.entries)
        if rd.hard_state is not None:
            n.storage.set_hard_state(rd.hard_state)
        self.checker.on_persist(n.id, n.storage, rd.entries)

    def _send(self, n: SimNode, msgs: list[Message]) -> None:
        """2. Only now may messages leave: what they promise is on disk."""
        for m in msgs:
            self.checker.on_send(n.id, m, n.storage)
            note = self.net.send(m, self.now)
            if note:
                self.transcript.message(self.now, m, note)
            if m.type == MT.MsgSnap and note.startswith("dropped"):
                self._report_snapshot(m, ok=False)

    def _apply(self, n: SimNode, rd: Ready) -> None:
        """3. Apply: load a snapshot, then committed entries, then serve ReadIndex answers."""
        if rd.snapshot is not None:
            meta = rd.snapshot.metadata
            n.sm = StateMachine.restore(rd.snapshot.data, meta.conf_state)
            self.checker.on_restore(n.id, rd.snapshot, n.sm, n.storage.initial_state()[0].term)
            self.say(f"n{n.id} restored snapshot {meta.term}/{meta.index}")
        for e in rd.committed_entries:
            if e.type == EntryType.CONF_CHANGE:
                cc = decode_conf_change(e.data)
                n.sm.conf_state = n.node.apply_conf_change(cc)
                self._conf_change_applied(n, e, cc, n.sm.conf_state)
            n.sm.apply(e)
            self.checker.on_apply(n.id, e, n.sm)
        if n.sm.applied > self.max_applied.get(n.id, 0):
            self.max_applied[n.id] = n.sm.applied
        for rs in rd.read_states:
            self.checker.on_read_state(n.id, rs)

    def _maybe_compact(self, n: SimNode) -> None:
        """Periodic log compaction: every ``compact_every`` applied entries."""
        every = self.opts.compact_every
        if every and n.sm.applied - n.storage.snapshot().metadata.index >= every:
            self.compact(n.id)

    def snapshot(self, nid: int) -> bool:
        """Record a snapshot of the state machine at its applied index (if newer)."""
        n = self.nodes[nid]
        if n.sm.applied <= n.storage.snapshot().metadata.index:
            return False
        n.storage.create_snapshot(n.sm.applied, n.sm.conf_state, n.sm.snapshot_data())
        return True

    def compact(self, nid: int) -> None:
        """Snapshot the state machine at its applied index and drop the log up to it."""
        if self.snapshot(nid):
            n = self.nodes[nid]
            n.storage.compact(n.sm.applied)

    def _conf_change_applied(self, n: SimNode, e: Entry, cc: ConfChange, cs: ConfState) -> None:
        first = e.index not in self.conf_history
        seen = self.conf_history.setdefault(e.index, cs)
        # Membership is part of the replicated state: the same index gives the same members
        # everywhere. (Not for the bootstrap entries: bootstrap() applies them all up front.)
        if seen != cs and e.index > len(self.initial):
            raise SafetyViolation(
                f"n{n.id} has {cs} after applying {cc.type.name} n{cc.node_id} at {e.index}, "
                f"another node had {seen}"
            )
        if not first:
            return
        self.say(f"n{n.id} applied {cc.type.name} n{cc.node_id} at {e.index}")
        if cc.type in (ConfChangeType.ADD_NODE, ConfChangeType.ADD_LEARNER_NODE):
            if cc.node_id not in self.nodes:
                self.add_empty_node(cc.node_id)
        elif cc.type == ConfChangeType.REMOVE_NODE and cc.node_id in self.nodes:
            self.removals.append(Removal(cc.node_id, e.index, cs.voters))

    def stop_removed(self) -> None:
        """A removed node shuts down once every voter of the new configuration has applied
        its removal. (Stopping it earlier can wedge the cluster: a removed leader of a 2-node
        cluster may step down before the survivor learns the removal committed, and the
        survivor still needs its vote.)"""
        for rm in list(self.removals):
            waiting = [
                v for v in rm.voters_after
                if v in self.nodes and not self.nodes[v].stopped
                and self.max_applied.get(v, 0) < rm.index
            ]
            if not waiting:
                self.removals.remove(rm)
                n = self.nodes[rm.node]
                if not n.stopped:
                    n.up, n.stopped, n.rd, n.stage = False, True, None, IDLE
                    self._drop_traffic_to(n.id)
                    self.say(f"stop n{n.id} (removed at {rm.index})")

    # -- the network ---------------------------------------------------------------------------

    def deliver_one(self) -> bool:
        m = self.net.pop_due(self.now)
        if m is None:
            return False
        target = self.nodes.get(m.to)
        why = ""
        if target is None or not target.up:
            why = f"n{m.to} is down"
        elif not self.net.connected(m.from_, m.to):
            why = "partitioned"
        if why:
            self.transcript.message(self.now, m, f"lost: {why}")
            if m.type == MT.MsgSnap:
                self._report_snapshot(m, ok=False)
            elif self.report_unreachable and self.rng.random() < self.report_unreachable:
                sender = self.nodes.get(m.from_)
                if sender is not None and sender.up and not sender.paused:
                    sender.node.report_unreachable(m.to)
                    self.check(sender.id)
            return True
        assert target is not None
        self.transcript.message(self.now, m)
        try:
            target.node.step(m)
        except ProposalDroppedError as e:
            self.transcript.say(self.now, f"  n{m.to} dropped it: {e}")
        self.check(target.id)
        if m.type == MT.MsgSnap:
            self._report_snapshot(m, ok=True)
        return True

    def _report_snapshot(self, m: Message, ok: bool) -> None:
        """The transport tells the leader how streaming a snapshot went (etcd does the same)."""
        sender = self.nodes.get(m.from_)
        if sender is None or not sender.up:
            return
        if sender.paused:
            sender.pending_reports.append((m.to, ok))  # it hears once it runs again
            return
        sender.node.report_snapshot(m.to, ok)
        self.check(sender.id)

    def settle(self, max_steps: int = 20_000) -> None:
        """Interleave Ready handling and deliveries at random until nothing is left to do now."""
        for _ in range(max_steps):
            busy = self.busy()
            net = self.net.has_due(self.now)
            if not busy and not net:
                return
            pick = self.rng.randrange(len(busy) + (1 if net else 0))
            if pick == len(busy):
                self.deliver_one()
            else:
                self.handle_ready(busy[pick].id)

    # -- faults --------------------------------------------------------------------------------

    def pause(self, nid: int) -> None:
        self.nodes[nid].paused = True
        self.net.held.add(nid)
        self.say(f"pause n{nid}")

    def resume(self, nid: int) -> None:
        n = self.nodes[nid]
        n.paused = False
        self.net.held.discard(nid)
        self.say(f"resume n{nid}")
        reports, n.pending_reports = n.pending_reports, []
        for to, ok in reports:
            n.node.report_snapshot(to, ok)
        self.check(nid)

    def crash(self, nid: int, when: str = "") -> None:
        n = self.nodes[nid]
        if n.paused:
            n.paused = False
            self.net.held.discard(nid)
        n.up, n.rd, n.stage = False, None, IDLE
        self.say(f"crash n{nid} {when}".rstrip())
        self._drop_traffic_to(nid)

    def _drop_traffic_to(self, nid: int) -> None:
        """Connections to a dead node break: its in-flight messages are lost, and a leader
        streaming it a snapshot hears that the stream failed."""
        for m in self.net.drop_to(nid):
            if m.type == MT.MsgSnap:
                self._report_snapshot(m, ok=False)

    def restart(self, nid: int) -> None:
        """Bring a crashed node back from its disk alone (a copy, so nothing else leaks in)."""
        old = self.nodes[nid]
        disk = copy_storage(old.storage)
        snap = disk.snapshot()
        node = RawNode(self.config(nid, disk, applied=snap.metadata.index))
        disk_hs, _ = disk.initial_state()
        if node.raft.raft_log.committed != max(disk_hs.commit, snap.metadata.index):
            raise SafetyViolation(f"n{nid} restarted with commit {node.raft.raft_log.committed}, "
                                  f"disk says {disk_hs.commit}")
        if disk.last_index() == 0 and disk_hs.is_empty() and Peer(nid) in self.initial:
            # It crashed before its bootstrap reached the disk; like `etcd --initial-cluster-state
            # new` on an empty data dir, it bootstraps again (to the same entries).
            node.bootstrap(self.initial)
        sm = StateMachine.restore(snap.data, snap.metadata.conf_state)
        self.nodes[nid] = SimNode(nid, node, disk, sm, incarnation=old.incarnation + 1)
        hs = node.status().hard_state
        self.checker.last_commit[nid] = node.raft.raft_log.committed  # reloaded from disk
        self.checker.check_whole_log(nid, node)
        self.say(f"restart n{nid} term={hs.term} commit={hs.commit} "
                 f"log={disk.first_index()}..{disk.last_index()} snapshot={snap.metadata.index}")
        self.check(nid)

    # -- clients -------------------------------------------------------------------------------

    def propose(self, nid: int, datas: list[bytes]) -> bool:
        self.checker.proposals.update(datas)
        self.say(f"propose {b' '.join(datas).decode()} at n{nid}")
        return self._call(nid, lambda node: node.propose_many(datas))

    def read_index(self, nid: int, ctx: bytes) -> bool:
        self.checker.on_read_request(ctx)
        self.say(f"read-index {ctx.decode()} at n{nid} (committed so far: {self.checker.commit_top[0]})")
        return self._call(nid, lambda node: node.read_index(ctx))

    def transfer_leader(self, nid: int, target: int) -> bool:
        self.say(f"transfer-leader to n{target} at n{nid}")
        return self._call(nid, lambda node: node.transfer_leader(target))

    def propose_conf_change(self, nid: int, cc: ConfChange) -> bool:
        self.say(f"propose {cc.type.name} n{cc.node_id} at n{nid}")
        return self._call(nid, lambda node: node.propose_conf_change(cc))

    def _call(self, nid: int, fn: Callable[[RawNode], None]) -> bool:
        try:
            fn(self.nodes[nid].node)
        except ProposalDroppedError as e:
            self.say(f"  dropped: {type(e).__name__}: {e}")
            return False
        finally:
            self.check(nid)
        return True


def copy_storage(src: MemoryStorage) -> MemoryStorage:
    """A deep copy of a MemoryStorage through its public interface (what a disk holds)."""
    dst = MemoryStorage()
    snap = src.snapshot()
    if not snap.is_empty():
        dst.apply_snapshot(snap)
    first, last = src.first_index(), src.last_index()
    if last >= first:
        dst.append(src.entries(first, last + 1))
    hs, _ = src.initial_state()
    dst.set_hard_state(hs)
    return dst
