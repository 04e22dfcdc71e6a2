"""Small builders for single-node rule tests (multi-node scenarios use interaction.py)."""

from __future__ import annotations

import random

from minietcd.raft.config import Config
from minietcd.raft.raft import Raft
from minietcd.raft.rawnode import RawNode
from minietcd.raft.storage import MemoryStorage
from minietcd.raft.types import Entry, HardState, Message, MessageType

MT = MessageType


def storage(voters: tuple[int, ...] = (1, 2, 3), learners: tuple[int, ...] = (),
            terms: tuple[int, ...] = (), hs: HardState | None = None) -> MemoryStorage:
    """A storage with members and a log whose entry i+1 has term ``terms[i]``."""
    st = MemoryStorage.with_members(voters, learners)
    st.append([Entry(t, i + 1) for i, t in enumerate(terms)])
    if hs is not None:
        st.set_hard_state(hs)
    return st


def raft(node_id: int = 1, st: MemoryStorage | None = None, **kw: object) -> Raft:
    cfg = Config(id=node_id, storage=st if st is not None else storage(), rng=random.Random(node_id))
    for k, v in kw.items():
        setattr(cfg, k, v)
    return Raft(cfg)


def rawnode(node_id: int = 1, st: MemoryStorage | None = None, **kw: object) -> RawNode:
    cfg = Config(id=node_id, storage=st if st is not None else storage(), rng=random.Random(node_id))
    for k, v in kw.items():
        setattr(cfg, k, v)
    return RawNode(cfg)


def take(r: Raft) -> list[Message]:
    """Messages the node has queued since the last call."""
    msgs, r.msgs = r.msgs, []
    return msgs


def make_leader(r: Raft) -> None:
    """Elect ``r`` by hand: campaign (no pre-vote) and feed it every vote."""
    r.pre_vote = False
    r.step(Message(type=MT.MsgHup))
    for v in sorted(r.prs.voters - {r.id}):
        r.step(Message(type=MT.MsgVoteResp, from_=v, to=r.id, term=r.term))
    take(r)
    assert r.lead == r.id


def commit_noop(r: Raft) -> None:
    """Make every follower acknowledge the leader's log, committing its no-op entry."""
    for v in sorted(r.prs.voters - {r.id}):
        r.step(Message(type=MT.MsgAppResp, from_=v, to=r.id, term=r.term, index=r.raft_log.last_index()))
    take(r)
