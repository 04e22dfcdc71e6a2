"""One or more tests per feature of the core beyond Figure 2 (issue: the Raft core)."""

from __future__ import annotations

import pytest

from minietcd.errors import ConfChangePendingError, ProposalDroppedError, StepError
from minietcd.raft import describe
from minietcd.raft.confchange import decode_conf_change, encode_conf_change
from minietcd.raft.progress import ProgressState
from minietcd.raft.rawnode import RawNode, Ready, coalesce
from minietcd.raft.storage import MemoryStorage
from minietcd.raft.types import (
    ConfChange,
    ConfChangeType,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    StateRole,
)
from tests.raft.helpers import commit_noop, make_leader, raft, rawnode, storage, take
from tests.raft.interaction import Interaction

MT = MessageType


def cluster(n: int = 3, **opts: str) -> Interaction:
    env = Interaction()
    env.run("add-nodes", [str(n), *(f"{k}={v}" for k, v in opts.items())])
    env.run("campaign", ["1"])
    env.run("stabilize", [])
    assert env.nodes[1].node.raft.state == StateRole.LEADER
    return env


# -- pre-vote (thesis 9.6) ---------------------------------------------------------------------


def test_prevote_isolated_node_does_not_raise_its_term() -> None:
    env = cluster()
    env.run("partition", ["1,2", "3"])
    for _ in range(5):
        env.run("tick-election", ["3"])
        env.run("stabilize", [])
    assert env.nodes[3].node.raft.term == 2
    env.run("heal", [])
    env.run("tick-heartbeat", ["1"])
    env.run("stabilize", [])
    assert env.nodes[1].node.raft.state == StateRole.LEADER and env.nodes[1].node.raft.term == 2


def test_without_prevote_isolated_node_disrupts_on_return() -> None:
    env = cluster(prevote="false", checkquorum="false")
    env.run("partition", ["1,2", "3"])
    for _ in range(3):
        env.run("tick-election", ["3"])
        env.run("stabilize", [])
    assert env.nodes[3].node.raft.term == 5
    env.run("heal", [])
    env.run("tick-election", ["3"])
    env.run("stabilize", [])
    # n3's inflated term forced the healthy leader out: the disruption pre-vote prevents.
    assert env.nodes[1].node.raft.term >= 6 and env.nodes[1].node.raft.state != StateRole.LEADER


def test_prevote_is_rejected_for_a_stale_log() -> None:
    r = raft(st=storage(terms=(1, 1, 2), hs=HardState(term=2)))
    r.step(Message(type=MT.MsgPreVote, from_=2, to=1, term=3, log_term=1, index=5))
    (resp,) = take(r)
    assert resp.type == MT.MsgPreVoteResp and resp.reject and r.term == 2 and r.vote == 0


# -- check-quorum (thesis 6.2) -----------------------------------------------------------------


@pytest.mark.parametrize("check_quorum", [True, False])
def test_check_quorum_steps_down_isolated_leader(check_quorum: bool) -> None:
    r = raft(check_quorum=check_quorum)
    make_leader(r)
    for _ in range(2 * r.election_timeout):
        r.tick()
    assert (r.state == StateRole.LEADER) is (not check_quorum)


def test_lease_ignores_disruptive_vote_while_leader_is_heard() -> None:
    r = raft()  # check-quorum on
    r.step(Message(type=MT.MsgHeartbeat, from_=2, to=1, term=1))
    r.step(Message(type=MT.MsgVote, from_=3, to=1, term=5, log_term=1, index=9))
    assert r.term == 1 and take(r)[-1].type == MT.MsgHeartbeatResp


# -- proposals and limits ----------------------------------------------------------------------


def test_proposal_dropped_without_leader() -> None:
    n = rawnode()
    with pytest.raises(ProposalDroppedError, match="no leader"):
        n.propose(b"x")


def test_proposal_dropped_during_transfer() -> None:
    r = raft()
    make_leader(r)
    r.step(Message(type=MT.MsgTransferLeader, from_=2))
    with pytest.raises(ProposalDroppedError, match="transferring leadership"):
        r.step(Message(type=MT.MsgProp, from_=1, entries=(Entry(0, 0, data=b"x"),)))


def test_follower_forwards_proposal_to_leader() -> None:
    r = raft(node_id=2)
    r.step(Message(type=MT.MsgHeartbeat, from_=1, to=2, term=1))
    take(r)
    r.step(Message(type=MT.MsgProp, from_=2, entries=(Entry(0, 0, data=b"x"),)))
    (m,) = take(r)
    assert (m.type, m.to, m.term, m.entries[0].data) == (MT.MsgProp, 1, 0, b"x")


def test_uncommitted_log_is_bounded_while_quorum_is_lost() -> None:
    r = raft(max_uncommitted_entries_size=1000)
    make_leader(r)
    commit_noop(r)
    accepted = 0
    with pytest.raises(ProposalDroppedError, match="uncommitted"):
        for _ in range(100):
            r.step(Message(type=MT.MsgProp, from_=1, entries=(Entry(0, 0, data=b"x" * 100),)))
            accepted += 1
    assert accepted == 10
    # Once entries commit, room frees up again.
    r.step(Message(type=MT.MsgAppResp, from_=2, to=1, term=1, index=r.raft_log.last_index()))
    n_committed = r.raft_log.committed
    r.reduce_uncommitted_size(r.raft_log.slice(2, n_committed + 1))
    r.step(Message(type=MT.MsgProp, from_=1, entries=(Entry(0, 0, data=b"x" * 100),)))


def test_many_proposals_travel_in_one_append() -> None:
    n = rawnode()
    make_leader(n.raft)
    commit_noop(n.raft)
    n.propose_many([b"p%d" % i for i in range(100)])
    apps = [m for m in n.raft.msgs if m.type == MT.MsgApp and m.to == 2]
    assert len(apps) == 1 and len(apps[0].entries) == 100


def test_append_respects_byte_limit() -> None:
    r = raft(max_size_per_msg=1000)
    make_leader(r)
    commit_noop(r)
    # Probe state: one append at a time; move follower 2 to replicate first.
    r.step(Message(type=MT.MsgProp, from_=1, entries=tuple(Entry(0, 0, data=b"y" * 100) for _ in range(30))))
    apps = [m for m in take(r) if m.to == 2]
    assert all(sum(len(e.data) + 16 for e in m.entries) <= 1000 or len(m.entries) == 1 for m in apps)
    assert sum(len(m.entries) for m in apps) == 30


def test_appends_to_one_follower_in_one_ready_are_one_message() -> None:
    """Proposals stepped one by one each broadcast an append; within one Ready those to the
    same follower are merged (rawnode.coalesce): one message with every entry, the newest
    commit index, the follower's state as if it had received them one by one."""
    n = rawnode()
    make_leader(n.raft)
    commit_noop(n.raft)
    for i in range(5):
        n.propose(b"p%d" % i)
    rd = n.ready()
    apps = [m for m in rd.messages if m.type == MT.MsgApp]
    assert sorted(m.to for m in apps) == [2, 3]
    assert all([e.data for e in m.entries] == [b"p%d" % i for i in range(5)] for m in apps)
    assert {m.index for m in apps} == {n.raft.raft_log.last_index() - 5}  # after the no-op


def test_coalesce_keeps_what_is_not_a_continuation() -> None:
    a = Message(type=MT.MsgApp, to=2, term=1, index=5, entries=(Entry(1, 6, data=b"x"),), commit=4)
    b = Message(type=MT.MsgApp, to=2, term=1, index=6, entries=(Entry(1, 7, data=b"y"),), commit=5)
    beat = Message(type=MT.MsgHeartbeat, to=2, term=1)
    resent = Message(type=MT.MsgApp, to=2, term=1, index=3, entries=(Entry(1, 4, data=b"z"),))
    merged = coalesce([a, b], max_size=1 << 20)
    assert len(merged) == 1 and merged[0].index == 5 and merged[0].commit == 5
    assert [e.index for e in merged[0].entries] == [6, 7]
    assert coalesce([a, beat, b], 1 << 20) == [a, beat, b]  # another message in between
    assert coalesce([a, resent], 1 << 20) == [a, resent]  # not where a ends
    assert coalesce([a, b], max_size=1) == [a, b]  # too large together
    ok1 = Message(type=MT.MsgAppResp, to=1, term=1, index=6)
    ok2 = Message(type=MT.MsgAppResp, to=1, term=1, index=7)
    no = Message(type=MT.MsgAppResp, to=1, term=1, index=7, reject=True, reject_hint=5)
    assert coalesce([ok1, ok2], 1 << 20) == [ok2]  # acknowledgements are cumulative
    assert coalesce([ok1, no], 1 << 20) == [ok1, no]  # a rejection is kept
    assert coalesce([ok2, ok1], 1 << 20) == [ok2, ok1]


def test_inflight_window_bounds_pipelining() -> None:
    r = raft(max_inflight_msgs=3, max_size_per_msg=1)
    make_leader(r)
    commit_noop(r)
    assert r.prs.progress[2].state == ProgressState.REPLICATE
    for i in range(10):
        r.step(Message(type=MT.MsgProp, from_=1, entries=(Entry(0, 0, data=b"%d" % i),)))
    to2 = [m for m in take(r) if m.to == 2 and m.entries]
    assert len(to2) == 3  # the window is full; the rest waits for acknowledgements
    r.step(Message(type=MT.MsgAppResp, from_=2, to=1, term=1, index=to2[0].entries[-1].index))
    assert len([m for m in take(r) if m.to == 2 and m.entries]) == 1


# -- ReadIndex (thesis 6.4) ----------------------------------------------------------------------


def test_reads_share_one_heartbeat_round() -> None:
    n = rawnode()
    make_leader(n.raft)
    commit_noop(n.raft)
    for i in range(50):
        n.read_index(b"r%d" % i)
    rd = n.ready()
    beats = [m for m in rd.messages if m.type == MT.MsgHeartbeat]
    assert len(beats) == 2 and {m.context for m in beats} == {b"r49"}
    n.advance(rd)
    n.step(Message(type=MT.MsgHeartbeatResp, from_=2, to=1, term=1, context=b"r49"))
    rd = n.ready()
    assert [rs.request_ctx for rs in rd.read_states] == [b"r%d" % i for i in range(50)]
    assert {rs.index for rs in rd.read_states} == {1}


def _persist_and_advance(n: RawNode, rd: Ready) -> None:
    st = n.raft.raft_log.storage
    assert isinstance(st, MemoryStorage)
    st.append(list(rd.entries))
    n.advance(rd)


def test_reads_arriving_during_a_round_share_the_next_one() -> None:
    """One heartbeat round at a time (read_only.py): reads that arrive while a round is
    unconfirmed wait for it, then share one round that started after they arrived."""
    n = rawnode()
    make_leader(n.raft)
    commit_noop(n.raft)
    n.read_index(b"a")
    rd = n.ready()
    assert {m.context for m in rd.messages if m.type == MT.MsgHeartbeat} == {b"a"}
    _persist_and_advance(n, rd)
    for ctx in (b"b", b"c"):
        n.read_index(ctx)
    assert not n.has_ready()  # b and c wait: no new broadcast while a's round is in flight
    n.step(Message(type=MT.MsgHeartbeatResp, from_=2, to=1, term=1, context=b"a"))
    rd = n.ready()
    assert [rs.request_ctx for rs in rd.read_states] == [b"a"]  # a's round confirms a only
    assert {m.context for m in rd.messages if m.type == MT.MsgHeartbeat} == {b"c"}
    _persist_and_advance(n, rd)
    n.step(Message(type=MT.MsgHeartbeatResp, from_=3, to=1, term=1, context=b"c"))
    assert [rs.request_ctx for rs in n.ready().read_states] == [b"b", b"c"]


def test_a_lost_read_round_is_sent_again_with_the_next_heartbeat() -> None:
    n = rawnode()
    make_leader(n.raft)
    commit_noop(n.raft)
    n.read_index(b"a")
    _persist_and_advance(n, n.ready())  # its heartbeats are lost
    n.read_index(b"b")
    assert not n.has_ready()
    n.raft.step(Message(type=MT.MsgBeat))  # the periodic heartbeat carries the newest read
    rd = n.ready()
    assert {m.context for m in rd.messages if m.type == MT.MsgHeartbeat} == {b"b"}
    _persist_and_advance(n, rd)
    n.step(Message(type=MT.MsgHeartbeatResp, from_=2, to=1, term=1, context=b"b"))
    assert [rs.request_ctx for rs in n.ready().read_states] == [b"a", b"b"]


def test_read_waits_for_leader_to_commit_in_its_term() -> None:
    r = raft()
    make_leader(r)
    r.step(Message(type=MT.MsgReadIndex, entries=(Entry(0, 0, data=b"early"),)))
    assert not r.read_round_needed and r.pending_read_index_messages
    commit_noop(r)
    assert r.read_round_needed


def test_single_voter_reads_immediately() -> None:
    n = rawnode(st=storage(voters=(1,)))
    n.campaign()
    n.advance(n.ready())
    n.read_index(b"solo")
    assert [rs.request_ctx for rs in n.ready().read_states] == [b"solo"]


def test_follower_read_index_round_trip() -> None:
    env = cluster()
    env.run("propose", ["1", "v"])
    env.run("stabilize", [])
    out = env.run("read-index", ["3", "f1"]) + env.run("stabilize", [])
    assert "n3->n1 MsgReadIndex read=f1" in out and "read f1 may be served once applied >= 5" in out


# -- leadership transfer (thesis 3.10) -----------------------------------------------------------


def test_transfer_to_caught_up_follower() -> None:
    env = cluster()
    env.run("transfer-leadership", ["1", "2"])
    env.run("stabilize", [])
    assert env.nodes[2].node.raft.state == StateRole.LEADER
    assert env.nodes[1].node.raft.lead == 2


def test_transfer_aborts_after_election_timeout() -> None:
    r = raft()
    make_leader(r)
    r.step(Message(type=MT.MsgTransferLeader, from_=3))
    assert r.lead_transferee == 3
    for _ in range(r.election_timeout):
        r.tick()
    assert (r.lead_transferee == 0 and r.state == StateRole.LEADER) or r.state == StateRole.FOLLOWER


def test_transfer_to_learner_is_ignored() -> None:
    r = raft(st=storage(voters=(1, 2), learners=(3,)))
    make_leader(r)
    r.step(Message(type=MT.MsgTransferLeader, from_=3))
    assert r.lead_transferee == 0


# -- membership ----------------------------------------------------------------------------------


def test_one_membership_change_at_a_time() -> None:
    n = rawnode()
    make_leader(n.raft)
    commit_noop(n.raft)
    n.propose_conf_change(ConfChange(ConfChangeType.ADD_NODE, 4))
    with pytest.raises(ConfChangePendingError):
        n.propose_conf_change(ConfChange(ConfChangeType.ADD_NODE, 5))


def test_learner_does_not_vote_or_campaign() -> None:
    r = raft(node_id=3, st=storage(voters=(1, 2), learners=(3,)))
    for _ in range(5 * r.election_timeout):
        r.tick()
    assert r.state == StateRole.FOLLOWER and r.term == 0


def test_promote_learner_changes_majority() -> None:
    r = raft(st=storage(voters=(1, 2), learners=(3,)))
    make_leader(r)
    assert r.prs.voters == {1, 2}
    r.apply_conf_change(ConfChange(ConfChangeType.ADD_NODE, 3))
    assert r.prs.voters == {1, 2, 3} and not r.prs.progress[3].is_learner


def test_removed_leader_leads_one_more_election_timeout_then_steps_down() -> None:
    r = raft()
    make_leader(r)
    r.apply_conf_change(ConfChange(ConfChangeType.REMOVE_NODE, 1))
    # Still leading, so the others learn that the removal committed (simulator finding F2).
    assert r.state == StateRole.LEADER and not r.promotable()
    with pytest.raises(ProposalDroppedError, match="removed"):
        r.step(Message(type=MT.MsgProp, from_=1, entries=(Entry(0, 0, data=b"x"),)))
    for _ in range(r.election_timeout):
        r.tick()
    assert r.state == StateRole.FOLLOWER  # type: ignore[comparison-overlap]  # tick() changed it; mypy keeps the narrowing


def test_removal_can_commit_pending_entries() -> None:
    r = raft(st=storage(voters=(1, 2, 3, 4)))
    make_leader(r)
    r.step(Message(type=MT.MsgAppResp, from_=2, to=1, term=1, index=1))  # 2 of 4: no majority
    assert r.raft_log.committed == 0
    r.apply_conf_change(ConfChange(ConfChangeType.REMOVE_NODE, 4))  # now 2 of 3 is a majority
    assert r.raft_log.committed == 1


def test_conf_change_encoding_round_trips() -> None:
    cc = ConfChange(ConfChangeType.ADD_LEARNER_NODE, 0xDEADBEEF, b"ctx")
    assert decode_conf_change(encode_conf_change(cc)) == cc


# -- snapshots -----------------------------------------------------------------------------------


def test_follower_behind_first_index_gets_snapshot() -> None:
    st = storage(terms=(1, 1, 1, 1))
    st.set_hard_state(HardState(term=1, commit=4))
    r = raft(st=st)
    r.raft_log.applied_to(4)
    st.create_snapshot(4, r.conf_state(), b"state")
    st.compact(4)
    make_leader(r)
    r.prs.progress[2].recent_active = True
    # Follower 2 rejects the leader's first probe (at index 4): its log ends at 1.
    r.step(Message(type=MT.MsgAppResp, from_=2, to=1, term=r.term, index=4, reject=True, reject_hint=1))
    snaps = [m for m in take(r) if m.type == MT.MsgSnap]
    assert len(snaps) == 1 and snaps[0].snapshot is not None and snaps[0].snapshot.data == b"state"
    assert r.prs.progress[2].state == ProgressState.SNAPSHOT
    r.step(Message(type=MT.MsgSnapStatus, from_=2))
    assert r.prs.progress[2].state == ProgressState.PROBE  # type: ignore[comparison-overlap]  # step() changed it


def test_restore_from_snapshot_on_follower() -> None:
    n = rawnode(node_id=2)
    leader = raft(st=storage(terms=(1, 1, 1), hs=HardState(term=1, commit=3)))
    leader.raft_log.applied_to(3)
    snap = leader.raft_log.storage.create_snapshot(3, leader.conf_state(), b"img")  # type: ignore[attr-defined]  # the storage here is a MemoryStorage
    n.step(Message(type=MT.MsgSnap, from_=1, to=2, term=1, snapshot=snap))
    rd = n.ready()
    assert rd.snapshot == snap and rd.hard_state is not None and rd.hard_state.commit == 3
    n.raft.raft_log.storage.apply_snapshot(rd.snapshot)  # type: ignore[attr-defined]  # persist
    n.advance(rd)
    assert n.raft.raft_log.applied == 3 and n.raft.raft_log.last_index() == 3


# -- misc -------------------------------------------------------------------------------------


def test_local_message_from_network_is_refused() -> None:
    with pytest.raises(StepError):
        rawnode().step(Message(type=MT.MsgHup, from_=2))


def test_ready_must_be_advanced_before_next() -> None:
    n = rawnode()
    n.campaign()
    n.ready()
    with pytest.raises(Exception, match="advance"):
        n.ready()


def test_describe_message_matches_documented_format() -> None:
    m = Message(type=MT.MsgApp, from_=1, to=2, term=3, log_term=3, index=17, commit=16,
                entries=(Entry(3, 18), Entry(3, 19), Entry(3, 20)))
    assert describe.message(m) == "n1->n2 MsgApp term=3 log=3/17 commit=16 entries=[3/18..3/20]"
    cc = Entry(3, 21, EntryType.CONF_CHANGE, encode_conf_change(ConfChange(ConfChangeType.ADD_NODE, 4)))
    assert describe.entries([cc]) == "[3/21 ADD_NODE n4]"


def test_election_event_explains_itself_in_seconds() -> None:
    n = rawnode(node_id=2)
    for _ in range(30):
        n.tick()
    rd = n.ready()
    lines = [describe.event_line(e, tick_seconds=0.1) for e in rd.events if e.kind == "election"]
    assert lines and lines[0].startswith("n2 starts a pre-vote at term 1: no heartbeat for ")
    assert lines[0].endswith(" s")
