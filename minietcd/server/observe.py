"""What a member shows about its Raft state to people and tools (served by ``http.py``).

Two views, both cheap enough to leave on:

* :func:`raft_status_json`: the Raft status in the shape of etcd's ``raft.status`` in
  ``/debug/vars`` (etcd-io/raft ``Status.MarshalJSON``), so scripts written for etcd read ours.
* :class:`EventLog`: the last :data:`EVENT_LOG_SIZE` explained Raft events ("n2 starts an election
  at term 5: no heartbeat for 1.1 s"), numbered, for a live view of a cluster to poll or stream.
  Bounded: an old event is dropped when a new one arrives; readers that fell behind see a gap in
  the sequence numbers rather than holding memory.
* :class:`MessageTrace`: a bounded, sampled trace of the Raft messages the member sent (votes,
  appends and their answers), numbered like the events, so that a live view (``minietcd-lab
  web``) draws real traffic as moving dots. Sampled so that it stays cheap at any pace:
  heartbeats at most one per peer and direction every :data:`HEARTBEAT_SAMPLE_SECONDS`, other
  messages at most :data:`MESSAGE_RATE` a second; what sampling skipped is counted.
* :func:`raft_view_json`: what a picture of the member needs beyond etcd's status: role
  (pre-candidate, learner), vote, the election timer, and the tail of its log with each entry's
  term and a few words on what it holds.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from google.protobuf.message import DecodeError

from minietcd.api.etcdserverpb import raft_internal_pb2
from minietcd.errors import MinietcdError
from minietcd.raft.confchange import decode_conf_change
from minietcd.raft.progress import ProgressState
from minietcd.raft.rawnode import RawNode, Status
from minietcd.raft.types import Entry, EntryType, Message, MessageType, StateRole

EVENT_LOG_SIZE: Final = 1000
MESSAGE_TRACE_SIZE: Final = 2000
HEARTBEAT_SAMPLE_SECONDS: Final = 0.2
MESSAGE_RATE: Final = 200.0  # messages other than heartbeats recorded per second, at most
LOG_TAIL: Final = 30  # entries of the log shown by raft_view_json

# etcd-io/raft's names for roles and progress states, as its JSON status prints them.
_ROLE_NAMES: Final = {
    StateRole.FOLLOWER: "StateFollower",
    StateRole.CANDIDATE: "StateCandidate",
    StateRole.LEADER: "StateLeader",
    StateRole.PRE_CANDIDATE: "StatePreCandidate",
}
_PROGRESS_NAMES: Final = {
    ProgressState.PROBE: "StateProbe",
    ProgressState.REPLICATE: "StateReplicate",
    ProgressState.SNAPSHOT: "StateSnapshot",
}


def raft_status_json(st: Status) -> dict[str, Any]:
    """``{"id": "8e9e05c52164694d", "term": 2, "vote": ..., "raftState": "StateLeader", ...}``;
    ids in hex as etcd prints them, ``progress`` filled on the leader only."""
    return {
        "id": f"{st.id:x}",
        "term": st.hard_state.term,
        "vote": f"{st.hard_state.vote:x}",
        "commit": st.hard_state.commit,
        "lead": f"{st.soft_state.lead:x}",
        "raftState": _ROLE_NAMES[st.soft_state.role],
        "applied": st.applied,
        "progress": {
            f"{member:x}": {"match": p.match, "next": p.next, "state": _PROGRESS_NAMES[p.state]}
            for member, p in sorted(st.progress.items())
        },
        "leadtransferee": f"{st.lead_transferee:x}",
    }


@dataclass(slots=True, frozen=True)
class ObservedEvent:
    seq: int  # 1, 2, 3, ... in the order this member saw them
    time: float  # Unix time when the Ready carrying it was handled
    kind: str  # RaftEvent.kind: "election", "became-leader", ...
    term: int
    text: str  # the explained line, time already rendered

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "time": self.time, "kind": self.kind, "term": self.term, "text": self.text}


class EventLog:
    """A bounded, numbered log of explained Raft events with waiting for new ones."""

    def __init__(self, size: int = EVENT_LOG_SIZE) -> None:
        self._events: deque[ObservedEvent] = deque(maxlen=size)
        self._last_seq = 0
        self._arrived = asyncio.Event()  # set and replaced on every append (and on close)
        self.closed = False  # the member is stopping: waiters return now, streams end

    @property
    def last_seq(self) -> int:
        return self._last_seq

    def append(self, kind: str, term: int, text: str) -> ObservedEvent:
        self._last_seq += 1
        ev = ObservedEvent(self._last_seq, time.time(), kind, term, text)
        self._events.append(ev)
        arrived, self._arrived = self._arrived, asyncio.Event()
        arrived.set()
        return ev

    def close(self) -> None:
        """Wake every waiter for good: a member must not wait for its HTTP readers to stop."""
        self.closed = True
        self._arrived.set()

    def after(self, seq: int) -> list[ObservedEvent]:
        """Events numbered above ``seq`` still held, oldest first."""
        if seq >= self._last_seq:
            return []
        return [ev for ev in self._events if ev.seq > seq]

    async def wait_after(self, seq: int, timeout: float) -> list[ObservedEvent]:
        """Like :meth:`after`, but waits up to ``timeout`` seconds for one if there is none yet
        (and not at all once the log is closed)."""
        if seq >= self._last_seq and not self.closed:
            try:
                await asyncio.wait_for(self._arrived.wait(), timeout)
            except TimeoutError:
                return []
        return self.after(seq)


# --- messages --------------------------------------------------------------------------------------

MT = MessageType
# The messages that travel between members, by the short names a picture labels them with.
# Local messages (MsgHup, MsgBeat, ...) never leave the member and are not traced.
MESSAGE_KINDS: Final = {
    MT.MsgApp: "append",
    MT.MsgAppResp: "append-resp",
    MT.MsgVote: "vote",
    MT.MsgVoteResp: "vote-resp",
    MT.MsgPreVote: "pre-vote",
    MT.MsgPreVoteResp: "pre-vote-resp",
    MT.MsgHeartbeat: "heartbeat",
    MT.MsgHeartbeatResp: "heartbeat-resp",
    MT.MsgSnap: "snapshot",
    MT.MsgTimeoutNow: "timeout-now",
    MT.MsgProp: "propose",
    MT.MsgTransferLeader: "transfer-leader",
    MT.MsgReadIndex: "read-index",
    MT.MsgReadIndexResp: "read-index-resp",
}
_HEARTBEATS: Final = frozenset({MT.MsgHeartbeat, MT.MsgHeartbeatResp})


@dataclass(slots=True, frozen=True)
class TracedMessage:
    seq: int  # 1, 2, 3, ... in the order this member sent them (gaps: sampled away)
    time: float  # Unix time the Ready carrying it was handled
    kind: str  # MESSAGE_KINDS' name: "vote", "append-resp", ...
    from_: int
    to: int
    term: int
    index: int  # append: the entry before the entries; answers and votes: see raft Message
    log_term: int
    commit: int
    entries: int  # how many entries it carries
    reject: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "time": self.time,
            "type": self.kind,
            "from": f"{self.from_:x}",
            "to": f"{self.to:x}",
            "term": self.term,
            "index": self.index,
            "log_term": self.log_term,
            "commit": self.commit,
            "entries": self.entries,
            "reject": self.reject,
        }


class MessageTrace:
    """A bounded, sampled, numbered trace of the messages a member sent (module docstring).

    ``record`` is called once per Ready with its messages: it must stay cheap, so a message
    becomes a small frozen record (no entry data is kept) or is only counted in ``sampled_out``.
    """

    def __init__(
        self,
        size: int = MESSAGE_TRACE_SIZE,
        rate: float = MESSAGE_RATE,
        heartbeat_every: float = HEARTBEAT_SAMPLE_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._messages: deque[TracedMessage] = deque(maxlen=size)
        self._clock = clock
        self._rate = rate
        self._heartbeat_every = heartbeat_every
        self._tokens = rate  # token bucket: one message costs one token, refilled at `rate`/s
        self._refilled = clock()
        self._last_beat: dict[tuple[MessageType, int], float] = {}  # (type, peer) -> time recorded
        self._last_seq = 0
        self.sampled_out = 0  # messages sent but not recorded (sampling), since start
        self.started = self._refilled  # tells a restarted member apart (its numbers start again)

    @property
    def last_seq(self) -> int:
        return self._last_seq

    def record(self, msgs: Sequence[Message]) -> None:
        if not msgs:
            return
        now = self._clock()
        self._tokens = min(self._rate, self._tokens + (now - self._refilled) * self._rate)
        self._refilled = now
        for m in msgs:
            kind = MESSAGE_KINDS.get(m.type)
            if kind is None:
                continue
            if m.type in _HEARTBEATS:
                key = (m.type, m.to)
                if now - self._last_beat.get(key, -math.inf) < self._heartbeat_every:
                    self.sampled_out += 1
                    continue
                self._last_beat[key] = now
            elif self._tokens < 1.0:
                self.sampled_out += 1
                continue
            else:
                self._tokens -= 1.0
            self._last_seq += 1
            self._messages.append(
                TracedMessage(
                    self._last_seq, now, kind, m.from_, m.to, m.term, m.index, m.log_term, m.commit,
                    len(m.entries), m.reject,
                )
            )  # fmt: skip

    def after(self, seq: int) -> list[TracedMessage]:
        """Messages numbered above ``seq`` still held, oldest first."""
        if seq >= self._last_seq:
            return []
        return [m for m in self._messages if m.seq > seq]


# --- the member's Raft state, for a picture --------------------------------------------------------

_ROLES: Final = {
    StateRole.FOLLOWER: "follower",
    StateRole.CANDIDATE: "candidate",
    StateRole.PRE_CANDIDATE: "pre-candidate",
    StateRole.LEADER: "leader",
}
_CONF_WORDS: Final = {0: "add member", 1: "remove member", 2: "update member", 3: "add learner"}
_SUMMARY_CACHE_SIZE: Final = 4096
_summaries: dict[tuple[int, int], str] = {}  # (index, term) -> describe_entry: entries never change


def describe_entry(e: Entry) -> str:
    """A few words on what a log entry holds: ``put greeting``, ``no-op`` (a new leader's empty
    entry, paper 5.4.2), ``add member 8e9e05c52164694d``..."""
    if e.type == EntryType.CONF_CHANGE:
        try:
            cc = decode_conf_change(e.data)
        except MinietcdError:
            return "conf change"
        return f"{_CONF_WORDS.get(int(cc.type), 'conf change')} {cc.node_id:x}"
    if not e.data:
        return "no-op"
    req = raft_internal_pb2.InternalRaftRequest()
    try:
        req.ParseFromString(e.data)
    except DecodeError:  # an entry this member wrote, but a view must never crash it
        return "?"
    for field, value in req.ListFields():
        if field.name in ("header", "ID"):
            continue
        if field.name in ("put", "delete_range"):
            key = value.key.decode(errors="replace")
            word = "put" if field.name == "put" else "delete"
            return f"{word} {_short(key)}"
        if field.name == "v2":  # how members publish their names and the cluster version
            return f"v2 {value.Method} {_short(value.Path)}"
        return field.name.replace("_", " ")
    return "request"


def _short(text: str, width: int = 24) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _summary(e: Entry) -> str:
    key = (e.index, e.term)
    text = _summaries.get(key)
    if text is None:
        if len(_summaries) >= _SUMMARY_CACHE_SIZE:
            _summaries.clear()
        text = _summaries[key] = describe_entry(e)
    return text


def raft_view_json(raw: RawNode, tick_seconds: float, tail: int = LOG_TAIL) -> dict[str, Any]:
    """Role, term, vote, leader, commit and applied index, the election timer (ticks elapsed of
    this term's randomised timeout, paper 5.2) and the last ``tail`` log entries as
    ``[index, term, what]``; member ids in hex as etcd prints them."""
    st = raw.status()
    r = raw.raft
    log = r.raft_log
    first, last = log.first_index(), log.last_index()
    lo = max(first, last - tail + 1)
    entries = log.slice(lo, last + 1) if lo <= last else []
    return {
        "id": f"{st.id:x}",
        "time": time.time(),
        "term": st.hard_state.term,
        "vote": f"{st.hard_state.vote:x}",
        "lead": f"{st.soft_state.lead:x}",
        "role": _ROLES[st.soft_state.role],
        "learner": st.id in st.conf_state.learners,
        "voters": [f"{v:x}" for v in st.conf_state.voters],
        "learners": [f"{v:x}" for v in st.conf_state.learners],
        "commit": st.hard_state.commit,
        "applied": st.applied,
        "first_index": first,
        "last_index": last,
        "lead_transferee": f"{st.lead_transferee:x}",
        "tick_ms": round(tick_seconds * 1000, 3),
        "election_elapsed": r.election_elapsed,
        "election_timeout": r.randomized_election_timeout,
        "election_tick": r.election_timeout,
        "heartbeat_elapsed": r.heartbeat_elapsed,
        "heartbeat_tick": r.heartbeat_timeout,
        "log": [[e.index, e.term, _summary(e)] for e in entries],
    }
