"""Log replication, both ends (paper 5.3 and Figure 2's AppendEntries; thesis 3.5 and 5).

The leader's side: appends from each follower's ``next`` (or a snapshot when those entries
were compacted, paper 7), heartbeats that carry the commit index, broadcasts to every peer.
The follower's side: the AppendEntries consistency check, heartbeats, installing a snapshot.
``roles.py`` decides when each is called; the state they work on is ``Raft``'s (raft.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from minietcd.errors import (
    LogCompactedError,
    LogUnavailableError,
    RaftInvariantError,
    SnapshotTemporarilyUnavailableError,
)
from minietcd.raft.describe import node as name
from minietcd.raft.types import Message, MessageType

if TYPE_CHECKING:
    from minietcd.raft.raft import Raft

MT = MessageType


# -- the leader's side -------------------------------------------------------------------------


def send_append(r: Raft, to: int) -> None:
    maybe_send_append(r, to, send_if_empty=True)


def maybe_send_append(r: Raft, to: int, send_if_empty: bool) -> bool:
    """Send entries from ``next`` to ``to`` (or a snapshot if they were compacted)."""
    pr = r.prs.progress[to]
    if pr.is_paused():
        return False
    try:
        prev_term = r.raft_log.term(pr.next - 1)
        ents = r.raft_log.entries(pr.next, r.max_msg_size)
    except (LogCompactedError, LogUnavailableError):
        return _send_snapshot(r, to)
    if not ents and not send_if_empty:
        return False
    r.send(
        Message(
            type=MT.MsgApp,
            to=to,
            index=pr.next - 1,
            log_term=prev_term,
            entries=tuple(ents),
            commit=r.raft_log.committed,
        )
    )
    if ents:
        pr.sent_entries(ents[-1].index, sum(len(e.data) for e in ents))
    return True


def _send_snapshot(r: Raft, to: int) -> bool:
    pr = r.prs.progress[to]
    if not pr.recent_active:
        return False  # don't ship a whole snapshot to a member that may be down
    try:
        snap = r.raft_log.snapshot()
    except SnapshotTemporarilyUnavailableError:
        return False
    if snap.is_empty():
        raise RaftInvariantError("need non-empty snapshot")
    cs = snap.metadata.conf_state
    if to not in cs.voters and to not in cs.learners:
        # The newest snapshot predates this member's addition: it would ignore it (see
        # Raft.restore). Ask the application for a fresh one (Ready.snapshot_needed); the next
        # heartbeat response retries. etcd's server sidesteps this by building a new
        # snapshot for every MsgSnap.
        if not r.snapshot_needed:
            r.snapshot_needed = True
            r.event(
                "snapshot-needed",
                f"{name(r.id)} needs a newer snapshot for {name(to)}: the latest one "
                f"(index {snap.metadata.index}) predates {name(to)}'s membership",
            )
        return False
    r.send(Message(type=MT.MsgSnap, to=to, snapshot=snap))
    pr.become_snapshot(snap.metadata.index)
    r.event(
        "send-snapshot",
        f"{name(r.id)} sends {name(to)} a snapshot at index {snap.metadata.index}: "
        f"the entries it needs from {pr.next} on were compacted",
    )
    return True


def send_heartbeat(r: Raft, to: int, ctx: bytes) -> None:
    # Attach min(match, committed): a follower must not commit past what it has matched,
    # because the entries at that index in its log may not be the leader's.
    commit = min(r.prs.progress[to].match, r.raft_log.committed)
    r.send(Message(type=MT.MsgHeartbeat, to=to, commit=commit, context=ctx))


def bcast_append(r: Raft) -> None:
    for node in r.prs.peers():
        if node == r.id:
            continue
        send_append(r, node)
        # A follower in REPLICATE state gets as many appends as the in-flight window allows
        # (pipelining, thesis 10.2.2); a probing one gets one and waits for the answer.
        while maybe_send_append(r, node, send_if_empty=False):
            pass


def bcast_heartbeat(r: Raft, ctx: bytes = b"") -> None:
    for node in r.prs.peers():
        if node != r.id:
            send_heartbeat(r, node, ctx)


# -- the follower's side -----------------------------------------------------------------------


def handle_append_entries(r: Raft, m: Message) -> None:
    if m.index < r.raft_log.committed:
        # Everything up to our commit index matches by definition; say so.
        r.send(Message(type=MT.MsgAppResp, to=m.from_, index=r.raft_log.committed))
        return
    last_new = r.raft_log.maybe_append(m.index, m.log_term, m.commit, m.entries)
    if last_new is not None:
        r.send(Message(type=MT.MsgAppResp, to=m.from_, index=last_new))
        return
    # Consistency check failed (paper Figure 2, rule 2). Hint the largest index that may
    # match so the leader can skip a whole conflicting term in one round trip.
    hint = min(m.index, r.raft_log.last_index())
    hint = r.raft_log.find_conflict_by_term(hint, m.log_term)
    r.send(
        Message(
            type=MT.MsgAppResp,
            to=m.from_,
            index=m.index,
            reject=True,
            reject_hint=hint,
            log_term=r.raft_log.term_or_zero(hint),
        )
    )


def handle_heartbeat(r: Raft, m: Message) -> None:
    r.raft_log.commit_to(m.commit)
    r.send(Message(type=MT.MsgHeartbeatResp, to=m.from_, context=m.context))


def handle_snapshot(r: Raft, m: Message) -> None:
    assert m.snapshot is not None
    meta = m.snapshot.metadata
    if r.restore(m.snapshot):
        r.event(
            "snapshot-restored",
            f"{name(r.id)} restored a snapshot at index {meta.index} term {meta.term} "
            f"from {name(m.from_)}",
        )
        r.send(Message(type=MT.MsgAppResp, to=m.from_, index=r.raft_log.last_index()))
    else:
        r.send(Message(type=MT.MsgAppResp, to=m.from_, index=r.raft_log.committed))
