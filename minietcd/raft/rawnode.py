"""RawNode: the core's public face, and the ``Ready`` contract (etcd-io/raft's rawnode.go).

The caller owns all I/O and drives the core in a loop::

    while True:
        # inputs, in any order and number:
        node.tick()                    # every tick interval (e.g. 100 ms)
        node.step(msg)                 # every message received from a peer
        node.propose(data)             # client writes (raises ProposalDroppedError)
        node.read_index(ctx)           # linearizable reads
        if node.has_ready():
            rd = node.ready()
            storage.save(rd.hard_state, rd.entries, rd.snapshot)   # 1. persist (fsync if must_sync)
            transport.send(rd.messages)                            # 2. then send
            for e in rd.committed_entries: state_machine.apply(e)  # 3. apply
            serve(rd.read_states)                                  # 4. reads, once applied
            node.advance(rd)                                       # 5. acknowledge

Nothing leaves the node before the state it depends on is durable: a vote is on disk before
the vote response is sent, entries before the append response that acknowledges them (paper
Figure 2: "respond to RPCs" only after updating stable storage). Steps may continue between
``ready()`` and ``advance()`` (that is how one fsync covers many proposals), but ``ready()`` may
not be called again before ``advance()``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from minietcd.errors import RaftInvariantError, StepError
from minietcd.raft.confchange import encode_conf_change
from minietcd.raft.config import Config
from minietcd.raft.events import RaftEvent
from minietcd.raft.progress import ProgressState
from minietcd.raft.raft import Raft
from minietcd.raft.types import (
    LOCAL_MESSAGES,
    NONE,
    RESPONSE_MESSAGES,
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    ReadState,
    Snapshot,
    SoftState,
    StateRole,
)

MT = MessageType


@dataclass(slots=True)
class Ready:
    """Everything the caller must act on, in the order given in the module docstring."""

    # Changed volatile state (leader, role), or None if unchanged. For display and metrics.
    soft_state: SoftState | None = None
    # Changed term/vote/commit, or None. PERSIST before sending ``messages``.
    hard_state: HardState | None = None
    # Entries to append to stable storage (replacing any conflicting suffix). PERSIST before
    # sending ``messages``.
    entries: list[Entry] = field(default_factory=list)
    # A snapshot to persist and load into the state machine (follower catching up), or None.
    snapshot: Snapshot | None = None
    # Committed entries to APPLY to the state machine, in order, after persisting the above.
    # A CONF_CHANGE entry must be applied through RawNode.apply_conf_change.
    committed_entries: list[Entry] = field(default_factory=list)
    # Messages to SEND after persisting. MsgSnap messages carry the snapshot to stream.
    messages: list[Message] = field(default_factory=list)
    # ReadIndex answers: serve the read for ``request_ctx`` once applied >= ``index``.
    read_states: list[ReadState] = field(default_factory=list)
    # True if hard_state or entries must be fsynced (false when only commit changed).
    must_sync: bool = False
    # What happened and why, for logs and teaching views (see describe.event_line).
    events: list[RaftEvent] = field(default_factory=list)
    # The leader must send a member a snapshot, but the newest one in storage was taken before
    # that member joined. CREATE a snapshot at the applied index (Storage.create_snapshot, with
    # RawNode.status().conf_state) before the next Ready; sending resumes by itself.
    snapshot_needed: bool = False


@dataclass(slots=True, frozen=True)
class Peer:
    """A bootstrap member: its id and opaque context (e.g. name and URLs)."""

    id: int
    context: bytes = b""


@dataclass(slots=True, frozen=True)
class ProgressView:
    match: int
    next: int
    state: ProgressState
    is_learner: bool
    recent_active: bool


@dataclass(slots=True, frozen=True)
class Status:
    id: int
    hard_state: HardState
    soft_state: SoftState
    applied: int
    last_index: int
    lead_transferee: int
    conf_state: ConfState
    progress: dict[int, ProgressView]  # leader only


class RawNode:
    def __init__(self, config: Config) -> None:
        self.raft = Raft(config)
        self._prev_soft = self.raft.soft_state()
        self._prev_hard = self.raft.hard_state()
        self._ready_outstanding = False

    @property
    def id(self) -> int:
        return self.raft.id

    # -- bootstrap ------------------------------------------------------------------------------

    def bootstrap(self, peers: Sequence[Peer]) -> None:
        """Start a brand-new cluster: log an ADD_NODE for each peer at term 1, committed.

        Every member must bootstrap with the same peers in the same order so that their logs
        agree. The entries come out of the first Ready to persist and to apply like any other
        committed change (so the state machine learns the members and their contexts).
        """
        r = self.raft
        if r.raft_log.last_index() != 0 or not r.hard_state().is_empty():
            raise RaftInvariantError("can only bootstrap an empty node")
        if not peers:
            raise RaftInvariantError("must provide at least one peer to bootstrap")
        r.become_follower(1, NONE, quiet=True)
        ents = [
            Entry(
                term=1,
                index=i + 1,
                type=EntryType.CONF_CHANGE,
                data=encode_conf_change(ConfChange(ConfChangeType.ADD_NODE, p.id, p.context)),
            )
            for i, p in enumerate(peers)
        ]
        r.raft_log.append(ents)
        r.raft_log.committed = len(ents)
        for p in peers:
            r.apply_conf_change(ConfChange(ConfChangeType.ADD_NODE, p.id))
        r.events.clear()
        # The caller applies these entries (to learn members) but must not re-apply the change
        # to the core: RawNode.apply_conf_change is idempotent for ADD_NODE of a present voter.

    # -- inputs ---------------------------------------------------------------------------------

    def tick(self) -> None:
        self.raft.tick()

    def campaign(self) -> None:
        self.raft.step(Message(type=MT.MsgHup))

    def propose(self, data: bytes) -> None:
        """Propose one command. Raises ProposalDroppedError if it cannot be appended now."""
        self.propose_many((data,))

    def propose_many(self, datas: Sequence[bytes]) -> None:
        """Propose a batch: all travel in one MsgProp and, on the leader, one append."""
        ents = tuple(Entry(0, 0, EntryType.NORMAL, d) for d in datas)
        self.raft.step(Message(type=MT.MsgProp, from_=self.raft.id, entries=ents))

    def propose_conf_change(self, cc: ConfChange) -> None:
        """Propose a membership change. Raises ConfChangePendingError while one is in flight."""
        e = Entry(0, 0, EntryType.CONF_CHANGE, encode_conf_change(cc))
        self.raft.step(Message(type=MT.MsgProp, from_=self.raft.id, entries=(e,)))

    def apply_conf_change(self, cc: ConfChange) -> ConfState:
        """Apply a committed ConfChange entry's change; returns the configuration in force."""
        return self.raft.apply_conf_change(cc)

    def step(self, m: Message) -> None:
        """Step a message received from a peer."""
        if m.type in LOCAL_MESSAGES:
            raise StepError(f"cannot step local message {m.type.name} received from the network")
        if m.type in RESPONSE_MESSAGES and m.from_ not in self.raft.prs.progress:
            return  # a response from a node no longer in the configuration: nothing to update
        self.raft.step(m)

    def read_index(self, ctx: bytes) -> None:
        """Request a linearizable read; the answer comes back as a ReadState with ``ctx``."""
        self.raft.step(Message(type=MT.MsgReadIndex, entries=(Entry(0, 0, data=ctx),)))

    def transfer_leader(self, transferee: int) -> None:
        """Ask the leader to hand leadership to ``transferee`` (thesis 3.10)."""
        self.raft.step(Message(type=MT.MsgTransferLeader, from_=transferee))

    def report_unreachable(self, node: int) -> None:
        self.raft.step(Message(type=MT.MsgUnreachable, from_=node))

    def report_snapshot(self, node: int, ok: bool) -> None:
        self.raft.step(Message(type=MT.MsgSnapStatus, from_=node, reject=not ok))

    # -- outputs --------------------------------------------------------------------------------

    def has_ready(self) -> bool:
        r = self.raft
        return bool(
            r.msgs
            or r.read_round_due()
            or r.read_states
            or r.events
            or r.snapshot_needed
            or r.raft_log.unstable.entries
            or r.raft_log.unstable.snapshot is not None
            or r.raft_log.has_next_committed_entries()
            or r.lead != self._prev_soft.lead
            or r.state != self._prev_soft.role
            or self._hard_changed()
        )

    def _hard_changed(self) -> bool:
        # Field by field: has_ready runs after every input, and building a HardState to compare
        # would allocate each time.
        r, prev = self.raft, self._prev_hard
        term, vote, commit = r.term, r.vote, r.raft_log.committed
        if term == prev.term and vote == prev.vote and commit == prev.commit:
            return False
        return not (term == 0 and vote == NONE and commit == 0)  # EMPTY_HARD_STATE

    def ready(self) -> Ready:
        if self._ready_outstanding:
            raise RaftInvariantError("ready() called again before advance()")
        r = self.raft
        r.flush_read_round()
        rd = Ready(
            entries=r.raft_log.unstable_entries(),
            committed_entries=r.raft_log.next_committed_entries(),
            messages=coalesce(r.msgs, r.max_msg_size),
            read_states=r.read_states,
            snapshot=r.raft_log.unstable.snapshot,
            events=r.events,
        )
        r.msgs, r.read_states, r.events = [], [], []
        rd.snapshot_needed, r.snapshot_needed = r.snapshot_needed, False
        ss = r.soft_state()
        if ss != self._prev_soft:
            rd.soft_state = ss
        if self._hard_changed():
            rd.hard_state = r.hard_state()
        prev = self._prev_hard
        rd.must_sync = bool(rd.entries) or (
            rd.hard_state is not None
            and (rd.hard_state.term != prev.term or rd.hard_state.vote != prev.vote)
        )
        self._ready_outstanding = True
        return rd

    def advance(self, rd: Ready) -> None:
        """The caller persisted, sent and applied everything in ``rd``."""
        r = self.raft
        if rd.soft_state is not None:
            self._prev_soft = rd.soft_state
        if rd.hard_state is not None:
            self._prev_hard = rd.hard_state
        if rd.committed_entries:
            r.raft_log.applied_to(rd.committed_entries[-1].index)
            r.reduce_uncommitted_size(rd.committed_entries)
        elif rd.snapshot is not None:
            r.raft_log.applied_to(rd.snapshot.metadata.index)
        if rd.entries:
            last = rd.entries[-1]
            r.raft_log.stable_to(last.index, last.term)
        if rd.snapshot is not None:
            r.raft_log.stable_snap_to(rd.snapshot.metadata.index)
        self._ready_outstanding = False

    # -- inspection -----------------------------------------------------------------------------

    def status(self) -> Status:
        r = self.raft
        progress: dict[int, ProgressView] = {}
        if r.state == StateRole.LEADER:
            progress = {
                n: ProgressView(p.match, p.next, p.state, p.is_learner, p.recent_active)
                for n, p in r.prs.progress.items()
            }
        return Status(
            id=r.id,
            hard_state=r.hard_state(),
            soft_state=r.soft_state(),
            applied=r.raft_log.applied,
            last_index=r.raft_log.last_index(),
            lead_transferee=r.lead_transferee,
            conf_state=r.conf_state(),
            progress=progress,
        )


def coalesce(msgs: list[Message], max_size: int) -> list[Message]:
    """The messages of one Ready with the appends that follow one another merged.

    Each input the leader steps (a proposal forwarded by a follower, an acknowledgement that
    moves the commit index) sends its own MsgApp; within one Ready those to the same follower
    are contiguous pieces of one log, and a follower's answers to them are cumulative. So a
    MsgApp that continues the previous message to the same peer joins it (entries appended,
    the newer commit index; up to ``max_size`` bytes of entries), and an accepting MsgAppResp
    replaces the accepting MsgAppResp before it. The receiver ends in the state the separate
    messages would have left it in; the cost of a message (encoding, transport, a step, an
    answer) is paid once instead of for every piece. Order per destination is kept."""
    if len(msgs) < 2:
        return msgs
    out: list[Message] = []
    last: dict[int, int] = {}  # destination -> position in out of the last message to it
    for m in msgs:
        i = last.get(m.to)
        if i is not None:
            merged = _merged(out[i], m, max_size)
            if merged is not None:
                out[i] = merged
                continue
        last[m.to] = len(out)
        out.append(m)
    return out


def _merged(a: Message, b: Message, max_size: int) -> Message | None:
    if a.type != b.type or a.term != b.term:
        return None
    if a.type == MT.MsgApp:
        if b.index != a.index + len(a.entries):
            return None  # not the continuation (a probe resent from further back)
        if a.entries and b.entries and sum(len(e.data) for e in (*a.entries, *b.entries)) > max_size:
            return None
        return replace(a, entries=a.entries + b.entries, commit=max(a.commit, b.commit))
    if a.type == MT.MsgAppResp and not a.reject and not b.reject and b.index >= a.index:
        return b
    return None
