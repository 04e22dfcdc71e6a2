"""One test per rule of the Raft paper's Figure 2 (and section 5), on a single node fed by hand.

Ongaro & Ousterhout, "In Search of an Understandable Consensus Algorithm", 2014. Pre-vote is
off here so that elections are exactly the paper's; pre-vote has its own tests.
"""

from __future__ import annotations

import pytest

from minietcd.raft.types import NONE, Entry, HardState, Message, MessageType, StateRole
from tests.raft.helpers import commit_noop, make_leader, raft, storage, take

MT = MessageType


# -- Rules for all servers ---------------------------------------------------------------------


@pytest.mark.parametrize("role", ["follower", "candidate", "leader"])
def test_higher_term_converts_to_follower(role: str) -> None:
    """All servers: if an RPC carries term T > currentTerm, set currentTerm = T, be follower."""
    r = raft(pre_vote=False)
    if role == "candidate":
        r.step(Message(type=MT.MsgHup))
    elif role == "leader":
        make_leader(r)
    newer = r.term + 5
    r.step(Message(type=MT.MsgApp, from_=2, to=1, term=newer, log_term=0, index=0))
    assert (r.state, r.term, r.lead) == (StateRole.FOLLOWER, newer, 2)


def test_stale_term_message_is_answered_not_obeyed() -> None:
    """Receiver rule 1 (both RPCs): reply false if term < currentTerm."""
    r = raft(st=storage(hs=HardState(term=5)), pre_vote=False)
    r.step(Message(type=MT.MsgApp, from_=2, to=1, term=3, log_term=0, index=0, entries=(Entry(3, 1),)))
    out = take(r)
    assert r.term == 5 and r.raft_log.last_index() == 0
    # The answer carries our term, which makes the stale leader step down.
    assert [(m.type, m.term) for m in out] == [(MT.MsgAppResp, 5)]
    r.step(Message(type=MT.MsgVote, from_=2, to=1, term=4, log_term=9, index=9))
    assert take(r) == [] and r.vote == NONE


def test_applies_committed_entries_in_order() -> None:
    """All servers: if commitIndex > lastApplied, apply log[lastApplied+1] (in order)."""
    from tests.raft.helpers import rawnode

    n = rawnode(st=storage(voters=(1,), terms=(1, 1, 1), hs=HardState(term=1, commit=2)))
    rd = n.ready()
    assert [e.index for e in rd.committed_entries] == [1, 2]
    n.advance(rd)
    assert n.raft.raft_log.applied == 2


# -- Followers ---------------------------------------------------------------------------------


def test_follower_starts_election_after_timeout() -> None:
    """Followers: if election timeout elapses without AppendEntries, convert to candidate."""
    r = raft(pre_vote=False)
    for _ in range(2 * r.election_timeout):
        r.tick()
    assert r.state == StateRole.CANDIDATE and r.term == 1


def test_heartbeat_resets_follower_timer() -> None:
    r = raft(pre_vote=False)
    for _ in range(3 * r.election_timeout):
        r.step(Message(type=MT.MsgHeartbeat, from_=2, to=1, term=1))
        r.tick()
    assert r.state == StateRole.FOLLOWER and r.lead == 2


def test_election_timeout_is_randomised_in_range() -> None:
    """Paper 5.2: timeouts are chosen at random from [T, 2T) so split votes are rare."""
    r = raft()
    seen = set()
    for term in range(1, 200):
        r.become_follower(term, NONE, quiet=True)
        seen.add(r.randomized_election_timeout)
    et = r.election_timeout
    assert min(seen) >= et and max(seen) < 2 * et and len(seen) > et // 2


# -- Candidates --------------------------------------------------------------------------------


def test_candidate_increments_term_votes_for_itself_and_requests_votes() -> None:
    """Candidates: increment currentTerm, vote for self, send RequestVote to all others."""
    r = raft(st=storage(terms=(1, 2)), pre_vote=False)
    r.step(Message(type=MT.MsgHup))
    assert r.state == StateRole.CANDIDATE and r.term == 1 and r.vote == 1
    reqs = take(r)
    assert sorted(m.to for m in reqs) == [2, 3]
    # RequestVote carries the candidate's last log index and term (paper 5.4.1).
    assert all((m.type, m.term, m.index, m.log_term) == (MT.MsgVote, 1, 2, 2) for m in reqs)


@pytest.mark.parametrize(
    ("size", "grants", "outcome"),
    [
        (1, {}, StateRole.LEADER),
        (3, {2: True}, StateRole.LEADER),
        (3, {2: False, 3: False}, StateRole.FOLLOWER),
        (3, {2: False}, StateRole.CANDIDATE),
        (5, {2: True, 3: True}, StateRole.LEADER),
        (5, {2: True}, StateRole.CANDIDATE),
        (5, {2: False, 3: False, 4: False}, StateRole.FOLLOWER),
        (4, {2: True}, StateRole.CANDIDATE),  # 2 of 4 is no majority
        (4, {2: True, 3: True}, StateRole.LEADER),
    ],
)
def test_candidate_wins_with_majority(size: int, grants: dict[int, bool], outcome: StateRole) -> None:
    """Candidates: votes from a majority -> leader; a majority rejecting -> follower."""
    r = raft(st=storage(voters=tuple(range(1, size + 1))), pre_vote=False)
    r.step(Message(type=MT.MsgHup))
    for v, ok in grants.items():
        r.step(Message(type=MT.MsgVoteResp, from_=v, to=1, term=r.term, reject=not ok))
    assert r.state == outcome


def test_candidate_yields_to_leader_of_same_term() -> None:
    """Candidates: if AppendEntries is received from a new leader, convert to follower."""
    r = raft(pre_vote=False)
    r.step(Message(type=MT.MsgHup))
    r.step(Message(type=MT.MsgApp, from_=2, to=1, term=r.term, log_term=0, index=0))
    assert r.state == StateRole.FOLLOWER and r.lead == 2


def test_candidate_restarts_election_on_timeout() -> None:
    """Candidates: if election timeout elapses, start a new election."""
    r = raft(pre_vote=False)
    r.step(Message(type=MT.MsgHup))
    for _ in range(2 * r.election_timeout):
        r.tick()
    assert r.state == StateRole.CANDIDATE and r.term == 2


# -- RequestVote receiver ----------------------------------------------------------------------


def test_votes_at_most_once_per_term() -> None:
    """RequestVote rule 2: grant if votedFor is null or candidateId (first come, first served)."""
    r = raft(pre_vote=False)
    r.step(Message(type=MT.MsgVote, from_=2, to=1, term=1))
    r.step(Message(type=MT.MsgVote, from_=3, to=1, term=1))
    r.step(Message(type=MT.MsgVote, from_=2, to=1, term=1))
    assert [(m.to, m.reject) for m in take(r)] == [(2, False), (3, True), (2, False)]
    assert r.vote == 2


@pytest.mark.parametrize(
    ("log_term", "index", "granted"),
    [
        (2, 3, True),  # same last term, same length
        (2, 4, True),  # same last term, longer
        (2, 2, False),  # same last term, shorter
        (3, 1, True),  # later last term wins regardless of length
        (1, 9, False),  # earlier last term loses regardless of length
    ],
)
def test_vote_only_for_up_to_date_log(log_term: int, index: int, granted: bool) -> None:
    """Paper 5.4.1: grant only if the candidate's log is at least as up-to-date as ours."""
    r = raft(st=storage(terms=(1, 2, 2)), pre_vote=False)
    r.step(Message(type=MT.MsgVote, from_=2, to=1, term=3, log_term=log_term, index=index))
    (resp,) = take(r)
    assert resp.reject is not granted


# -- AppendEntries receiver --------------------------------------------------------------------


def test_rejects_append_without_matching_previous_entry() -> None:
    """AppendEntries rule 2: reply false if log has no entry at prevLogIndex with prevLogTerm."""
    r = raft(st=storage(terms=(1, 2)), pre_vote=False)
    r.step(Message(type=MT.MsgApp, from_=2, to=1, term=3, log_term=3, index=2, entries=(Entry(3, 3),)))
    (resp,) = take(r)
    assert resp.reject and r.raft_log.last_index() == 2
    # The hint points at the last entry of a term not newer than the leader's prevLogTerm.
    assert resp.reject_hint == 2 and resp.log_term == 2


def test_deletes_conflicting_entries_and_appends_new_ones() -> None:
    """AppendEntries rules 3-4: delete a conflicting entry and all after it; append new ones."""
    r = raft(st=storage(terms=(1, 1, 1)), pre_vote=False)
    r.step(Message(type=MT.MsgApp, from_=2, to=1, term=2, log_term=1, index=1,
                   entries=(Entry(2, 2), Entry(2, 3), Entry(2, 4))))
    assert [e.term for e in r.raft_log.entries(1)] == [1, 2, 2, 2]
    # An append that is already in the log changes nothing (idempotent retries).
    r.step(Message(type=MT.MsgApp, from_=2, to=1, term=2, log_term=1, index=1, entries=(Entry(2, 2),)))
    assert r.raft_log.last_index() == 4


def test_follower_commit_is_min_of_leader_commit_and_last_new_entry() -> None:
    """AppendEntries rule 5: commitIndex = min(leaderCommit, index of last new entry)."""
    r = raft(pre_vote=False)
    r.step(Message(type=MT.MsgApp, from_=2, to=1, term=1, log_term=0, index=0, commit=10,
                   entries=(Entry(1, 1), Entry(1, 2))))
    assert r.raft_log.committed == 2
    r.step(Message(type=MT.MsgApp, from_=2, to=1, term=1, log_term=1, index=2, commit=1))
    assert r.raft_log.committed == 2  # commit never moves backwards


# -- Leaders -----------------------------------------------------------------------------------


def test_leader_sends_heartbeats() -> None:
    """Leaders: send empty AppendEntries (heartbeats) during idle periods."""
    r = raft(pre_vote=False)
    make_leader(r)
    for _ in range(r.heartbeat_timeout):
        r.tick()
    assert sorted((m.type, m.to) for m in take(r)) == [(MT.MsgHeartbeat, 2), (MT.MsgHeartbeat, 3)]


def test_new_leader_appends_empty_entry_of_its_term() -> None:
    r = raft(st=storage(terms=(1, 1)), pre_vote=False)
    r.step(Message(type=MT.MsgHup))
    r.step(Message(type=MT.MsgVoteResp, from_=2, to=1, term=r.term))
    last = r.raft_log.entries(3)
    assert r.state == StateRole.LEADER and [(e.term, e.data) for e in last] == [(r.term, b"")]


def test_leader_replicates_and_commits_on_majority() -> None:
    """Leaders: append client commands, replicate, commit once on a majority (paper 5.3)."""
    r = raft(pre_vote=False)
    make_leader(r)
    commit_noop(r)
    r.step(Message(type=MT.MsgProp, from_=1, entries=(Entry(0, 0, data=b"x"),)))
    apps = take(r)
    assert {(m.type, m.index, m.log_term, m.commit) for m in apps} == {(MT.MsgApp, 1, 1, 1)}
    assert r.raft_log.committed == 1
    r.step(Message(type=MT.MsgAppResp, from_=2, to=1, term=1, index=2))
    assert r.raft_log.committed == 2
    # Followers learn the new commit index in the next append.
    assert {m.commit for m in take(r)} == {2}


def test_leader_never_commits_previous_term_entries_by_counting() -> None:
    """Paper 5.4.2 / Figure 8: an entry of an earlier term is not committed just because it is
    on a majority; only committing an entry of the current term commits it (indirectly)."""
    r = raft(st=storage(terms=(1, 2), hs=HardState(term=2)), pre_vote=False)
    make_leader(r)  # term 3, appends 3/3
    r.step(Message(type=MT.MsgAppResp, from_=2, to=1, term=3, index=2))  # 2/2 on a majority
    assert r.raft_log.committed == 0
    r.step(Message(type=MT.MsgAppResp, from_=2, to=1, term=3, index=3))  # 3/3 on a majority
    assert r.raft_log.committed == 3


def test_leader_backs_off_next_index_on_rejection() -> None:
    """Leaders: if AppendEntries fails because of log inconsistency, decrement nextIndex and
    retry; the follower's hint lets it skip the whole conflicting term (thesis 3.5)."""
    r = raft(st=storage(terms=(1, 1, 2, 2, 2), hs=HardState(term=2)), pre_vote=False)
    make_leader(r)
    r.step(Message(type=MT.MsgAppResp, from_=2, to=1, term=3, index=5, reject=True,
                   reject_hint=2, log_term=1))
    (m,) = take(r)
    assert (m.type, m.to, m.index, m.log_term) == (MT.MsgApp, 2, 2, 1)
    assert [e.index for e in m.entries] == [3, 4, 5, 6]


def test_leader_steps_down_on_higher_term_response() -> None:
    r = raft(pre_vote=False)
    make_leader(r)
    r.step(Message(type=MT.MsgAppResp, from_=2, to=1, term=7, index=0))
    assert r.state == StateRole.FOLLOWER and r.term == 7
