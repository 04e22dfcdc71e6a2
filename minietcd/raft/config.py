"""Configuration of one Raft node. Time is counted in ticks; randomness is a seeded RNG."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from minietcd.errors import RaftError
from minietcd.raft.storage import NO_LIMIT, Storage


@dataclass(slots=True)
class Config:
    id: int  # this node's id (non-zero)
    storage: Storage  # where persisted entries, hard state and snapshots are read from
    # A follower that hears no leader for election_tick ticks (randomised into
    # [election_tick, 2*election_tick) per term, paper 5.2) starts an election.
    election_tick: int = 10
    heartbeat_tick: int = 1  # a leader sends heartbeats every heartbeat_tick ticks
    # Index already applied by the state machine on restart (entries up to it are not
    # returned again as committed entries).
    applied: int = 0
    max_size_per_msg: int = 1 << 20  # byte cap for one append (always carries >= 1 entry)
    max_committed_size_per_ready: int = NO_LIMIT  # byte cap on committed entries per Ready
    # Uncommitted bytes a leader accepts before dropping proposals: keeps the log bounded while
    # quorum is lost (etcd-io/raft MaxUncommittedEntriesSize). 0 = unlimited.
    max_uncommitted_entries_size: int = 64 << 20
    max_inflight_msgs: int = 256  # appends in flight per follower in REPLICATE state
    max_inflight_bytes: int = 32 << 20  # bytes in flight per follower (0 = unlimited)
    check_quorum: bool = True  # leader steps down without a quorum for an election timeout
    pre_vote: bool = True  # thesis 9.6: do not disrupt a cluster by raising terms in vain
    disable_proposal_forwarding: bool = False  # followers drop proposals instead of forwarding
    # A leader that applies its own removal keeps leading for one election timeout (so the
    # others learn the change committed), then steps down; the others elect a new leader.
    step_down_on_removal: bool = True
    rng: random.Random = field(default_factory=lambda: random.Random(0))

    def validate(self) -> None:
        if self.id <= 0:
            raise RaftError("cannot use 0 (or a negative number) as a node id")
        if self.heartbeat_tick <= 0:
            raise RaftError("heartbeat tick must be greater than 0")
        if self.election_tick <= self.heartbeat_tick:
            raise RaftError("election tick must be greater than heartbeat tick")
        if self.max_inflight_msgs <= 0:
            raise RaftError("max inflight messages must be greater than 0")
