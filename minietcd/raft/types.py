"""The vocabulary of the Raft core: entries, messages, hard state, snapshots.

These mirror etcd-io/raft's ``raftpb`` so that the peer protocol (``proto/minietcd/api/raftpb``)
can carry them field for field. Every class is a plain slotted dataclass: the core never
mutates a value it has handed out in a ``Ready``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

# Node ids are positive integers; 0 means "nobody" (no vote, no leader).
NONE = 0


class EntryType(enum.IntEnum):
    """What an entry's ``data`` holds."""

    NORMAL = 0  # an opaque client command (or empty: a new leader's no-op)
    CONF_CHANGE = 1  # an encoded ConfChange (see confchange.encode_conf_change)


@dataclass(slots=True, frozen=True)
class Entry:
    """One log entry. (term, index) identifies it uniquely (paper 5.3, Log Matching)."""

    term: int  # the leader's term when the entry was created
    index: int  # position in the log, starting at 1
    type: EntryType = EntryType.NORMAL
    data: bytes = b""  # opaque to the core

    def size(self) -> int:
        """Bytes this entry counts for in append and uncommitted-size limits."""
        return len(self.data) + 16


@dataclass(slots=True, frozen=True)
class HardState:
    """The state that must be on stable storage before responding to RPCs (paper Figure 2)."""

    term: int = 0  # latest term this node has seen
    vote: int = NONE  # candidate voted for in ``term`` (NONE if none)
    commit: int = 0  # highest index known committed (persisted so restarts skip re-apply)

    def is_empty(self) -> bool:
        return self.term == 0 and self.vote == NONE and self.commit == 0


EMPTY_HARD_STATE = HardState()


@dataclass(slots=True, frozen=True)
class ConfState:
    """The membership in force: who votes and who only learns (thesis 4.2.1, learners)."""

    voters: tuple[int, ...] = ()  # sorted ids whose votes count for elections and commits
    learners: tuple[int, ...] = ()  # sorted ids that receive the log but never vote


@dataclass(slots=True, frozen=True)
class SnapshotMetadata:
    conf_state: ConfState = field(default_factory=ConfState)  # membership as of ``index``
    index: int = 0  # last log index the snapshot covers
    term: int = 0  # term of the entry at ``index``


@dataclass(slots=True, frozen=True)
class Snapshot:
    """A state-machine image replacing the log up to ``metadata.index`` (paper section 7)."""

    data: bytes = b""  # opaque application state
    metadata: SnapshotMetadata = field(default_factory=SnapshotMetadata)

    def is_empty(self) -> bool:
        return self.metadata.index == 0


EMPTY_SNAPSHOT = Snapshot()


class ConfChangeType(enum.IntEnum):
    ADD_NODE = 0  # add a voter, or promote an existing learner to voter
    REMOVE_NODE = 1  # remove a voter or a learner (the leader may remove itself)
    UPDATE_NODE = 2  # no membership effect; carries application context (e.g. new URLs)
    ADD_LEARNER_NODE = 3  # add a non-voting member


@dataclass(slots=True, frozen=True)
class ConfChange:
    """One membership change. Only one may be pending (uncommitted+unapplied) at a time."""

    type: ConfChangeType
    node_id: int
    context: bytes = b""  # opaque to the core (the server puts member attributes here)


class MessageType(enum.IntEnum):
    """Every input the core steps on. Numbers match etcd-io/raft's raftpb.MessageType.

    Local messages (never sent over the wire): MsgHup, MsgBeat, MsgUnreachable,
    MsgSnapStatus, MsgCheckQuorum. MsgProp, MsgTransferLeader and MsgReadIndex are local when
    the node leads and are forwarded to the leader otherwise.
    """

    MsgHup = 0  # local: election timeout elapsed, start a (pre-)campaign
    MsgBeat = 1  # local: heartbeat timeout elapsed, leader broadcasts heartbeats
    MsgProp = 2  # a proposal of new entries
    MsgApp = 3  # AppendEntries RPC (paper Figure 2)
    MsgAppResp = 4
    MsgVote = 5  # RequestVote RPC (paper Figure 2)
    MsgVoteResp = 6
    MsgSnap = 7  # InstallSnapshot RPC (paper Figure 13)
    MsgHeartbeat = 8  # empty AppendEntries carrying only a safe commit index
    MsgHeartbeatResp = 9
    MsgUnreachable = 10  # local: transport could not reach ``from``
    MsgSnapStatus = 11  # local: a snapshot send to ``from`` finished (reject = failed)
    MsgCheckQuorum = 12  # local: leader checks it heard from a quorum (thesis 6.2)
    MsgTransferLeader = 13  # leadership transfer request (thesis 3.10)
    MsgTimeoutNow = 14  # leader tells transfer target to campaign at once
    MsgReadIndex = 15  # linearizable read request (thesis 6.4)
    MsgReadIndexResp = 16
    MsgPreVote = 17  # pre-vote: "would you vote for me?" without raising terms (thesis 9.6)
    MsgPreVoteResp = 18


LOCAL_MESSAGES = frozenset(
    {
        MessageType.MsgHup,
        MessageType.MsgBeat,
        MessageType.MsgUnreachable,
        MessageType.MsgSnapStatus,
        MessageType.MsgCheckQuorum,
    }
)

RESPONSE_MESSAGES = frozenset(
    {
        MessageType.MsgAppResp,
        MessageType.MsgVoteResp,
        MessageType.MsgHeartbeatResp,
        MessageType.MsgUnreachable,
        MessageType.MsgReadIndexResp,
        MessageType.MsgPreVoteResp,
    }
)


@dataclass(slots=True)
class Message:
    """A Raft message. Which fields mean what depends on ``type``:

    - MsgApp: ``log_term``/``index`` name the entry preceding ``entries`` (the consistency
      check), ``commit`` is the leader's commit index.
    - MsgAppResp: ``index`` is the follower's last matching index on success; on reject,
      ``index`` echoes the rejected MsgApp index and ``reject_hint``/``log_term`` give a
      conflict hint for fast back-off (thesis 5.3 optimisation).
    - MsgVote/MsgPreVote: ``index``/``log_term`` describe the candidate's last entry
      (paper 5.4.1 up-to-date check); ``context`` is b"transfer" for a leadership transfer.
    - MsgHeartbeat: ``commit`` = min(leader commit, follower match); ``context`` carries a
      ReadIndex round id.
    - MsgReadIndex/MsgReadIndexResp: ``entries[0].data`` is the request context;
      ``index`` in the response is the read index.
    """

    type: MessageType
    to: int = NONE
    from_: int = NONE
    term: int = 0
    log_term: int = 0
    index: int = 0
    entries: tuple[Entry, ...] = ()
    commit: int = 0
    snapshot: Snapshot | None = None
    reject: bool = False
    reject_hint: int = 0
    context: bytes = b""


@dataclass(slots=True, frozen=True)
class SoftState:
    """Volatile state worth showing but never persisted."""

    lead: int  # who this node believes leads (NONE if unknown)
    role: StateRole


class StateRole(enum.IntEnum):
    FOLLOWER = 0
    CANDIDATE = 1
    LEADER = 2
    PRE_CANDIDATE = 3

    def __str__(self) -> str:
        return {0: "follower", 1: "candidate", 2: "leader", 3: "pre-candidate"}[self.value]


@dataclass(slots=True, frozen=True)
class ReadState:
    """A ReadIndex answer: once ``applied >= index``, a read for ``request_ctx`` is safe."""

    index: int
    request_ctx: bytes
