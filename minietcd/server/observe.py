"""What a member shows about its Raft state to people and tools (served by ``http.py``).

Two views, both cheap enough to leave on:

* :func:`raft_status_json`: the Raft status in the shape of etcd's ``raft.status`` in
  ``/debug/vars`` (etcd-io/raft ``Status.MarshalJSON``), so scripts written for etcd read ours.
* :class:`EventLog`: the last :data:`EVENT_LOG_SIZE` explained Raft events ("n2 starts an election
  at term 5: no heartbeat for 1.1 s"), numbered, for a live view of a cluster to poll or stream.
  Bounded: an old event is dropped when a new one arrives; readers that fell behind see a gap in
  the sequence numbers rather than holding memory.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Final

from minietcd.raft.progress import ProgressState
from minietcd.raft.rawnode import Status
from minietcd.raft.types import StateRole

EVENT_LOG_SIZE: Final = 1000

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
