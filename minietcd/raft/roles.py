"""What a node does with a message in each role (paper Figure 2, "Followers", "Candidates",
"Leaders"). Term checks already happened in ``Raft.step``; these functions see only messages of
the node's current term (or local ones with term 0). Sending appends, heartbeats and snapshots,
and a follower's handling of them, are ``replication.py``'s.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from minietcd.errors import ConfChangePendingError, ProposalDroppedError
from minietcd.raft import replication
from minietcd.raft.confchange import decode_conf_change
from minietcd.raft.describe import node as name
from minietcd.raft.progress import ProgressState
from minietcd.raft.quorum import VoteResult
from minietcd.raft.types import (
    NONE,
    ConfChangeType,
    Entry,
    EntryType,
    Message,
    MessageType,
    ReadState,
    StateRole,
)

if TYPE_CHECKING:
    from minietcd.raft.raft import Raft

MT = MessageType


# -- leader ------------------------------------------------------------------------------------


def step_leader(r: Raft, m: Message) -> None:
    t = m.type
    if t == MT.MsgBeat:
        # Also a new round for every pending read (a lost acknowledgement must not hold them).
        r.read_round_needed = False
        replication.bcast_heartbeat(r, r.read_only.start_round())
    elif t == MT.MsgCheckQuorum:
        _check_quorum(r)
    elif t == MT.MsgProp:
        _leader_propose(r, m)
    elif t == MT.MsgReadIndex:
        _leader_read_index(r, m)
    elif m.from_ in r.prs.progress:
        _step_leader_peer(r, m)


def _check_quorum(r: Raft) -> None:
    # Thesis 6.2: a leader that has not heard from a majority within an election timeout may
    # have been partitioned away; stepping down stops it serving stale reads forever.
    if not r.prs.quorum_active():
        r.event(
            "step-down",
            f"{name(r.id)} steps down at term {r.term}: heard from no majority of "
            f"{len(r.prs.voters)} voters within an election timeout (check-quorum)",
        )
        r.become_follower(r.term, NONE)
        return
    for node, pr in r.prs.progress.items():
        if node != r.id:
            pr.recent_active = False  # must be heard from again before the next check


def _leader_propose(r: Raft, m: Message) -> None:
    if not m.entries:
        raise ProposalDroppedError("empty proposal")
    if r.id not in r.prs.progress:
        raise ProposalDroppedError(f"{name(r.id)} was removed from the cluster; proposal dropped")
    if r.lead_transferee != NONE:
        raise ProposalDroppedError(
            f"{name(r.id)} is transferring leadership to {name(r.lead_transferee)}; proposal dropped"
        )
    if r.removing_self_index > r.raft_log.applied:
        # Entries after our own removal would exist only in our log: the survivors could then
        # never win our vote (simulator finding F2b). Take nothing more until the removal is
        # applied (then we are out, or the change was refused and we carry on).
        raise ProposalDroppedError(f"{name(r.id)} is being removed from the cluster; proposal dropped")
    ents = list(m.entries)
    conf_index = 0  # index the (single) accepted membership change of this batch will get
    removing_self = False
    for i, e in enumerate(ents):
        if e.type != EntryType.CONF_CHANGE:
            continue
        pending = conf_index or r.pending_conf_index
        if pending > r.raft_log.applied:
            if m.from_ in (NONE, r.id):
                raise ConfChangePendingError(
                    f"a membership change at index {pending} is not applied yet "
                    f"(applied {r.raft_log.applied}); one change at a time"
                )
            # Forwarded from a follower: keep the rest of the batch, neutralise the change.
            ents[i] = Entry(0, 0)
        else:
            conf_index = r.raft_log.last_index() + i + 1
            cc = decode_conf_change(e.data)
            removing_self = cc.type == ConfChangeType.REMOVE_NODE and cc.node_id == r.id
    r.append_entry(ents)  # may still drop the whole batch (uncommitted size): record after
    if conf_index:
        r.pending_conf_index = conf_index
        if removing_self:
            r.removing_self_index = conf_index
    replication.bcast_append(r)


def _leader_read_index(r: Raft, m: Message) -> None:
    if r.prs.voters == {r.id}:
        # The only voter is trivially confirmed. (Not merely "one voter": a removed leader whose
        # one remaining voter is another node must still be confirmed by it: simulator F3.)
        _respond_read_index(r, m, r.raft_log.committed)
        return
    if not r.committed_entry_in_current_term():
        # Thesis 6.4: until the leader commits an entry of its term, its commit index may be
        # behind; hold the read until the no-op commits.
        r.pending_read_index_messages.append(m)
        return
    r.read_only.add_request(r.raft_log.committed, m)
    # Coalesced: the broadcast happens once, when the output is collected (flush_read_round).
    r.read_round_needed = True
    r.read_only.recv_ack(r.id, m.entries[0].data)


def _respond_read_index(r: Raft, req: Message, index: int) -> None:
    if req.from_ in (NONE, r.id):
        r.read_states.append(ReadState(index=index, request_ctx=req.entries[0].data))
    else:
        r.send(Message(type=MT.MsgReadIndexResp, to=req.from_, index=index, entries=req.entries))


def release_pending_read_index_messages(r: Raft) -> None:
    if not r.pending_read_index_messages or not r.committed_entry_in_current_term():
        return
    msgs, r.pending_read_index_messages = r.pending_read_index_messages, []
    for m in msgs:
        _leader_read_index(r, m)


def _step_leader_peer(r: Raft, m: Message) -> None:
    pr = r.prs.progress[m.from_]
    t = m.type
    if t == MT.MsgAppResp:
        pr.recent_active = True
        if m.reject:
            _leader_append_rejected(r, m)
        else:
            _leader_append_accepted(r, m)
    elif t == MT.MsgHeartbeatResp:
        pr.recent_active = True
        pr.probe_sent = False
        if pr.state == ProgressState.REPLICATE and pr.inflights.full():
            pr.inflights.free_first_one()  # the follower is alive: let one more append go
        if pr.match < r.raft_log.last_index():
            replication.send_append(r, m.from_)
        if m.context:
            _leader_read_ack(r, m)
    elif t == MT.MsgSnapStatus:
        if pr.state != ProgressState.SNAPSHOT:
            return
        if m.reject:
            pr.pending_snapshot = 0  # failed: probe again from match+1
        pr.become_probe()
        # Wait for the follower's MsgAppResp (or the next heartbeat) before sending appends.
        pr.probe_sent = True
    elif t == MT.MsgUnreachable:
        if pr.state == ProgressState.REPLICATE:
            pr.become_probe()  # appends were probably lost: find the match again
    elif t == MT.MsgTransferLeader:
        _leader_transfer(r, m)


def _leader_append_rejected(r: Raft, m: Message) -> None:
    pr = r.prs.progress[m.from_]
    next_probe = m.reject_hint
    if m.log_term > 0:
        # Skip every entry of ours newer than the follower's term at the hint (thesis 3.5).
        next_probe = r.raft_log.find_conflict_by_term(m.reject_hint, m.log_term)
    if pr.maybe_decr_to(m.index, next_probe):
        if pr.state == ProgressState.REPLICATE:
            pr.become_probe()
        replication.send_append(r, m.from_)


def _leader_append_accepted(r: Raft, m: Message) -> None:
    pr = r.prs.progress[m.from_]
    old_paused = pr.is_paused()
    if not pr.maybe_update(m.index):
        return
    if pr.state == ProgressState.PROBE:
        pr.become_replicate()
    elif pr.state == ProgressState.SNAPSHOT and pr.match >= pr.pending_snapshot:
        pr.become_probe()
        pr.become_replicate()
    elif pr.state == ProgressState.REPLICATE:
        pr.inflights.free_le(m.index)
    if r.maybe_commit():
        release_pending_read_index_messages(r)
        replication.bcast_append(r)
    elif old_paused:
        replication.send_append(r, m.from_)
    # Keep the pipeline full while entries and window allow (many appends per round trip).
    while replication.maybe_send_append(r, m.from_, send_if_empty=False):
        pass
    if m.from_ == r.lead_transferee and pr.match == r.raft_log.last_index():
        r.event("transfer", f"{name(r.id)} sends MsgTimeoutNow to {name(m.from_)}: its log is caught up")
        r.send_timeout_now(m.from_)


def _leader_read_ack(r: Raft, m: Message) -> None:
    acks = r.read_only.recv_ack(m.from_, m.context)
    if acks is None:
        return
    if r.prs.tally_votes_of(acks) != VoteResult.WON:
        return
    for rs in r.read_only.advance(m.context):
        _respond_read_index(r, rs.req, rs.index)


def _leader_transfer(r: Raft, m: Message) -> None:
    target = m.from_  # MsgTransferLeader names the transferee in ``from_`` (etcd-io/raft)
    pr = r.prs.progress[target]
    if pr.is_learner:
        r.event("transfer-ignored", f"{name(r.id)} ignores a transfer to learner {name(target)}")
        return
    if r.lead_transferee != NONE:
        if r.lead_transferee == target:
            return  # already in progress
        r.abort_leader_transfer()
    if target == r.id:
        return  # already leader
    # Thesis 3.10: stop accepting proposals, catch the target up, then tell it to campaign.
    r.election_elapsed = 0  # the transfer must finish within one election timeout
    r.lead_transferee = target
    r.event("transfer", f"{name(r.id)} starts transferring leadership to {name(target)}")
    if pr.match == r.raft_log.last_index():
        r.event("transfer", f"{name(r.id)} sends MsgTimeoutNow to {name(target)}: its log is caught up")
        r.send_timeout_now(target)
    else:
        replication.send_append(r, target)


# -- candidate and pre-candidate ---------------------------------------------------------------


def step_candidate(r: Raft, m: Message) -> None:
    my_resp = MT.MsgPreVoteResp if r.state == StateRole.PRE_CANDIDATE else MT.MsgVoteResp
    t = m.type
    if t in (MT.MsgProp, MT.MsgReadIndex, MT.MsgTransferLeader):
        raise ProposalDroppedError(f"{name(r.id)} is campaigning at term {r.term}: no leader")
    if t == MT.MsgApp:
        r.become_follower(m.term, m.from_)  # a leader exists for our term (paper 5.2)
        replication.handle_append_entries(r, m)
    elif t == MT.MsgHeartbeat:
        r.become_follower(m.term, m.from_)
        replication.handle_heartbeat(r, m)
    elif t == MT.MsgSnap:
        r.become_follower(m.term, m.from_)
        replication.handle_snapshot(r, m)
    elif t == my_resp:
        r.prs.record_vote(m.from_, not m.reject)
        granted, rejected, res = r.prs.tally_votes()
        if res == VoteResult.WON:
            if r.state == StateRole.PRE_CANDIDATE:
                r.event(
                    "pre-vote-won",
                    f"{name(r.id)} won the pre-vote with {granted} of {len(r.prs.voters)}; "
                    f"now campaigning for real at term {r.term + 1}",
                )
                r.campaign("election")
            else:
                r.become_leader()
                replication.bcast_append(r)
        elif res == VoteResult.LOST:
            r.event(
                "election-lost",
                f"{name(r.id)} lost the {'pre-vote' if my_resp == MT.MsgPreVoteResp else 'election'} "
                f"at term {m.term}: {rejected} of {len(r.prs.voters)} rejected",
            )
            # A lost pre-vote leaves our term as it was; a lost election keeps the new term.
            r.become_follower(r.term, NONE)


# -- follower ----------------------------------------------------------------------------------


def step_follower(r: Raft, m: Message) -> None:
    t = m.type
    if t == MT.MsgProp:
        if r.lead == NONE:
            raise ProposalDroppedError(f"{name(r.id)} knows no leader at term {r.term}; proposal dropped")
        if r.disable_proposal_forwarding:
            raise ProposalDroppedError(f"{name(r.id)} does not forward proposals to {name(r.lead)}")
        r.send(Message(type=MT.MsgProp, to=r.lead, entries=m.entries))
    elif t == MT.MsgApp:
        r.election_elapsed = 0
        r.lead = m.from_
        replication.handle_append_entries(r, m)
    elif t == MT.MsgHeartbeat:
        r.election_elapsed = 0
        r.lead = m.from_
        replication.handle_heartbeat(r, m)
    elif t == MT.MsgSnap:
        r.election_elapsed = 0
        r.lead = m.from_
        replication.handle_snapshot(r, m)
    elif t == MT.MsgTransferLeader:
        if r.lead == NONE:
            raise ProposalDroppedError(f"{name(r.id)} knows no leader; cannot transfer leadership")
        r.send(Message(type=MT.MsgTransferLeader, to=r.lead, from_=m.from_))
    elif t == MT.MsgTimeoutNow:
        # Thesis 3.10: the leader asked us to campaign now; this vote bypasses leases.
        r.event("transfer", f"{name(r.id)} received MsgTimeoutNow from {name(m.from_)}: campaigning now")
        r.hup("transfer", "leadership transfer requested")
    elif t == MT.MsgReadIndex:
        if r.lead == NONE:
            raise ProposalDroppedError(f"{name(r.id)} knows no leader; read index dropped")
        r.send(Message(type=MT.MsgReadIndex, to=r.lead, entries=m.entries))
    elif t == MT.MsgReadIndexResp:
        if len(m.entries) != 1:
            return  # malformed
        r.read_states.append(ReadState(index=m.index, request_ctx=m.entries[0].data))
