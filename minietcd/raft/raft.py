"""The Raft state machine of one node (paper Figure 2, thesis chapters 3, 4, 6 and 9).

``Raft`` holds a node's state and the rules shared by every role: terms, votes, timers,
applying membership changes, installing snapshots. What a node does with a message in its
current role lives in ``roles.py`` (``step_leader``, ``step_candidate``, ``step_follower``);
sending appends, heartbeats and snapshots, and handling them on the follower, in
``replication.py``. Output accumulates in ``msgs``, ``read_states`` and ``events`` until
``RawNode.ready()`` collects it: nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Callable

from minietcd.errors import (
    ProposalDroppedError,
    RaftInvariantError,
)
from minietcd.raft import replication, roles
from minietcd.raft.config import Config
from minietcd.raft.describe import node as name
from minietcd.raft.events import RaftEvent
from minietcd.raft.log import RaftLog
from minietcd.raft.progress import ProgressState, ProgressTracker
from minietcd.raft.quorum import VoteResult
from minietcd.raft.read_only import ReadOnly
from minietcd.raft.types import (
    NONE,
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
CAMPAIGN_PRE_ELECTION = "pre-election"
CAMPAIGN_ELECTION = "election"
CAMPAIGN_TRANSFER = "transfer"
TRANSFER_CONTEXT = b"transfer"  # marks votes of a leadership transfer: they bypass the lease

StepFn = Callable[["Raft", Message], None]


class Raft:
    def __init__(self, c: Config) -> None:
        c.validate()
        self.id = c.id
        self.term = 0  # current term (persisted)
        self.vote = NONE  # who we voted for in ``term`` (persisted)
        self.lead = NONE  # who we believe leads in ``term``
        self.state = StateRole.FOLLOWER
        self.is_learner = False
        self.raft_log = RaftLog(c.storage, c.max_committed_size_per_ready)
        self.prs = ProgressTracker(c.max_inflight_msgs, c.max_inflight_bytes)
        self.max_msg_size = c.max_size_per_msg
        self.max_uncommitted_size = c.max_uncommitted_entries_size or (1 << 62)
        self.uncommitted_size = 0  # payload bytes appended by this leader and not yet committed
        self.check_quorum = c.check_quorum
        self.pre_vote = c.pre_vote
        self.disable_proposal_forwarding = c.disable_proposal_forwarding
        self.step_down_on_removal = c.step_down_on_removal
        self.heartbeat_timeout = c.heartbeat_tick
        self.election_timeout = c.election_tick
        self.randomized_election_timeout = 0
        self.election_elapsed = 0  # ticks since we last heard from a leader (or became one)
        self.heartbeat_elapsed = 0  # leader only: ticks since the last heartbeat broadcast
        self.rng = c.rng
        self.lead_transferee = NONE  # leader only: target of a transfer in progress
        # Index of the last membership change the leader appended. A new one may be proposed
        # only once it is applied: one change at a time (thesis 4.1).
        self.pending_conf_index = 0
        # Leader: index of its own removal, proposed but not applied; no proposals until then.
        self.removing_self_index = 0
        self.read_only = ReadOnly()
        self.read_round_needed = False  # a heartbeat round is owed to pending ReadIndex requests
        # ReadIndex requests that arrived before this leader committed an entry of its term.
        self.pending_read_index_messages: list[Message] = []
        # Leader: the snapshot in storage cannot serve a member that needs one (see
        # _send_snapshot); the application should create a new one (Ready.snapshot_needed).
        self.snapshot_needed = False
        self.msgs: list[Message] = []
        self.read_states: list[ReadState] = []
        self.events: list[RaftEvent] = []
        self.step_fn: StepFn = roles.step_follower
        self.tick_fn: Callable[[], None] = self.tick_election

        hs, cs = c.storage.initial_state()
        self._apply_conf_state(cs)
        if not hs.is_empty():
            self.load_state(hs)
        if c.applied > 0:
            self.raft_log.applied_to(c.applied)
        self.become_follower(self.term, NONE, quiet=True)

    # -- small views ----------------------------------------------------------------------------

    def soft_state(self) -> SoftState:
        return SoftState(lead=self.lead, role=self.state)

    def hard_state(self) -> HardState:
        return HardState(term=self.term, vote=self.vote, commit=self.raft_log.committed)

    def conf_state(self) -> ConfState:
        return ConfState(
            voters=tuple(sorted(self.prs.voters)), learners=tuple(sorted(self.prs.learners))
        )

    def promotable(self) -> bool:
        """Can this node become leader? Only voters (not learners, not removed nodes) can."""
        return self.id in self.prs.voters

    def event(self, kind: str, text: str, elapsed_ticks: int | None = None) -> None:
        self.events.append(RaftEvent(kind, self.id, self.term, text, elapsed_ticks))

    def load_state(self, hs: HardState) -> None:
        if hs.commit < self.raft_log.committed or hs.commit > self.raft_log.last_index():
            raise RaftInvariantError(
                f"{name(self.id)} state.commit {hs.commit} is out of range "
                f"[{self.raft_log.committed}, {self.raft_log.last_index()}]"
            )
        self.raft_log.committed = hs.commit
        self.term = hs.term
        self.vote = hs.vote

    # -- sending ------------------------------------------------------------------------------

    def send(self, m: Message) -> None:
        if m.from_ == NONE:
            m.from_ = self.id
        if m.type in (MT.MsgVote, MT.MsgVoteResp, MT.MsgPreVote, MT.MsgPreVoteResp):
            # Votes carry the term being campaigned for (which, for pre-votes, is not ours yet).
            if m.term == 0:
                raise RaftInvariantError(f"term should be set when sending {m.type.name}")
        else:
            if m.term != 0:
                raise RaftInvariantError(f"term should not be set when sending {m.type.name}")
            # Proposals and read requests are forwarded as-is: they carry no term (they are
            # not part of the term-based protocol, and must not make the receiver step down).
            if m.type not in (MT.MsgProp, MT.MsgReadIndex):
                m.term = self.term
        self.msgs.append(m)

    def read_round_due(self) -> bool:
        """ReadIndex requests wait for a heartbeat round and none is in flight (read_only.py)."""
        return self.read_round_needed and not self.read_only.in_flight

    def flush_read_round(self) -> None:
        """Start one heartbeat round for every ReadIndex request that arrived since the last
        one (called when output is collected, so a burst of reads shares a single round), once
        the round in flight, if any, is confirmed."""
        if self.read_round_due():
            self.read_round_needed = False
            if self.state == StateRole.LEADER:
                replication.bcast_heartbeat(self, self.read_only.start_round())

    # -- committing ---------------------------------------------------------------------------

    def maybe_commit(self) -> bool:
        return self.raft_log.maybe_commit(self.prs.committed(), self.term)

    def committed_entry_in_current_term(self) -> bool:
        return self.raft_log.term_or_zero(self.raft_log.committed) == self.term

    def append_entry(self, ents: list[Entry]) -> None:
        """Leader: append new entries of the current term to the local log."""
        li = self.raft_log.last_index()
        ents = [Entry(self.term, li + 1 + i, e.type, e.data) for i, e in enumerate(ents)]
        size = sum(len(e.data) for e in ents)
        # The first entry is always accepted (etcd-io/raft does the same), so a single huge
        # proposal can never wedge an idle leader.
        over = self.uncommitted_size + size > self.max_uncommitted_size
        if self.uncommitted_size > 0 and size > 0 and over:
            raise ProposalDroppedError(
                f"{name(self.id)} dropped a proposal: {self.uncommitted_size} uncommitted bytes "
                f"already (limit {self.max_uncommitted_size}); is a quorum reachable?"
            )
        self.uncommitted_size += size
        li = self.raft_log.append(ents)
        # The leader's own log counts towards the majority at once; the caller persists these
        # entries before acting on any commit they enable (see Ready).
        me = self.prs.progress.get(self.id)
        if me is not None:
            me.maybe_update(li)
        self.maybe_commit()

    def reduce_uncommitted_size(self, ents: list[Entry]) -> None:
        if self.uncommitted_size == 0:
            return  # fast path for followers, which do not track this
        self.uncommitted_size = max(0, self.uncommitted_size - sum(len(e.data) for e in ents))

    # -- role transitions -----------------------------------------------------------------------

    def reset(self, term: int) -> None:
        if self.term != term:
            self.term = term
            self.vote = NONE
        self.lead = NONE
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.reset_randomized_election_timeout()
        self.abort_leader_transfer()
        self.prs.reset_votes()
        last = self.raft_log.last_index()
        for node, pr in self.prs.progress.items():
            pr.match = last if node == self.id else 0
            pr.next = last + 1
            pr.reset_state(ProgressState.PROBE)
            pr.recent_active = node == self.id
        self.pending_conf_index = 0
        self.removing_self_index = 0
        self.uncommitted_size = 0
        self.read_only = ReadOnly()
        self.read_round_needed = False
        self.pending_read_index_messages = []

    def reset_randomized_election_timeout(self) -> None:
        # Paper 5.2: randomised timeouts make split votes rare.
        self.randomized_election_timeout = self.election_timeout + self.rng.randrange(
            self.election_timeout
        )

    def become_follower(self, term: int, lead: int, quiet: bool = False) -> None:
        was = self.state
        self.step_fn = roles.step_follower
        self.reset(term)
        self.tick_fn = self.tick_election
        self.lead = lead
        self.state = StateRole.FOLLOWER
        if not quiet:
            who = f"{name(lead)} leads" if lead != NONE else "leader unknown"
            text = f"{name(self.id)} became follower at term {term} ({who}; was {was})"
            self.event("became-follower", text)

    def become_candidate(self) -> None:
        if self.state == StateRole.LEADER:
            raise RaftInvariantError("invalid transition [leader -> candidate]")
        self.step_fn = roles.step_candidate
        self.reset(self.term + 1)
        self.tick_fn = self.tick_election
        self.vote = self.id
        self.state = StateRole.CANDIDATE
        self.event("became-candidate", f"{name(self.id)} became candidate at term {self.term}")

    def become_pre_candidate(self) -> None:
        if self.state == StateRole.LEADER:
            raise RaftInvariantError("invalid transition [leader -> pre-candidate]")
        # A pre-candidate changes neither term nor vote (thesis 9.6): it only asks around.
        self.step_fn = roles.step_candidate
        self.prs.reset_votes()
        self.tick_fn = self.tick_election
        self.lead = NONE
        self.state = StateRole.PRE_CANDIDATE
        self.event("became-pre-candidate", f"{name(self.id)} became pre-candidate at term {self.term}")

    def become_leader(self) -> None:
        if self.state == StateRole.FOLLOWER:
            raise RaftInvariantError("invalid transition [follower -> leader]")
        votes = sorted(n for n, v in self.prs.votes.items() if v)
        self.step_fn = roles.step_leader
        self.reset(self.term)
        self.tick_fn = self.tick_heartbeat
        self.lead = self.id
        self.state = StateRole.LEADER
        self.prs.progress[self.id].become_replicate()
        # Conservatively forbid a new membership change until everything already in the log
        # (which may hold an unapplied change from an earlier term) is applied.
        self.pending_conf_index = self.raft_log.last_index()
        # Paper 5.4.2 / thesis 6.4: a new leader commits an entry of its own term at once; this
        # is what commits earlier terms' entries and makes ReadIndex safe.
        self.append_entry([Entry(0, 0)])
        self.event(
            "became-leader",
            f"{name(self.id)} became leader at term {self.term} with votes from "
            + ",".join(name(v) for v in votes),
        )

    # -- elections ----------------------------------------------------------------------------

    def hup(self, kind: str, reason: str = "", elapsed: int | None = None) -> None:
        if self.state == StateRole.LEADER:
            return
        if not self.promotable():
            self.event("no-campaign", f"{name(self.id)} cannot campaign: it is not a voter")
            return
        if self.has_unapplied_conf_changes():
            self.event(
                "no-campaign",
                f"{name(self.id)} cannot campaign at term {self.term}: "
                "committed membership changes are not applied yet",
            )
            return
        text = f"{name(self.id)} starts {'a pre-vote' if kind == CAMPAIGN_PRE_ELECTION else 'an election'}"
        text += f" at term {self.term + 1}"
        if reason:
            text += f": {reason}"
        self.event("election", text, elapsed)
        self.campaign(kind)

    def has_unapplied_conf_changes(self) -> bool:
        lo, hi = self.raft_log.applied + 1, self.raft_log.committed + 1
        if lo >= hi:
            return False
        return any(
            e.type == EntryType.CONF_CHANGE for e in self.raft_log.slice(lo, hi)
        )

    def campaign(self, kind: str) -> None:
        if kind == CAMPAIGN_PRE_ELECTION:
            self.become_pre_candidate()
            vote_msg, term = MT.MsgPreVote, self.term + 1
        else:
            self.become_candidate()
            vote_msg, term = MT.MsgVote, self.term
        if self.poll(self.id, True) == VoteResult.WON:
            # A single-voter cluster wins at once.
            if kind == CAMPAIGN_PRE_ELECTION:
                self.campaign(CAMPAIGN_ELECTION)
            else:
                self.become_leader()
            return
        ctx = TRANSFER_CONTEXT if kind == CAMPAIGN_TRANSFER else b""
        for node in sorted(self.prs.voters):
            if node == self.id:
                continue
            self.send(
                Message(
                    type=vote_msg,
                    to=node,
                    term=term,
                    index=self.raft_log.last_index(),
                    log_term=self.raft_log.last_term(),
                    context=ctx,
                )
            )

    def poll(self, node: int, granted: bool) -> VoteResult:
        self.prs.record_vote(node, granted)
        return self.prs.tally_votes()[2]

    # -- ticks ------------------------------------------------------------------------------------

    def tick(self) -> None:
        self.tick_fn()

    def tick_election(self) -> None:
        """Followers and candidates: start an election after a randomised timeout."""
        self.election_elapsed += 1
        if self.promotable() and self.election_elapsed >= self.randomized_election_timeout:
            elapsed = self.election_elapsed
            self.election_elapsed = 0
            reason = (
                "no heartbeat for {elapsed}"
                if self.state == StateRole.FOLLOWER
                else "no majority of votes within {elapsed}"
            )
            self.step_local(MT.MsgHup, reason=reason, elapsed=elapsed)

    def tick_heartbeat(self) -> None:
        """Leader: heartbeats every heartbeat_timeout; check-quorum every election_timeout."""
        self.heartbeat_elapsed += 1
        self.election_elapsed += 1
        if self.election_elapsed >= self.election_timeout:
            self.election_elapsed = 0
            if self.state == StateRole.LEADER and self.step_down_on_removal and not self.promotable():
                self.event("step-down", f"{name(self.id)} steps down: it is no longer a voter")
                self.become_follower(self.term, NONE)
                return
            if self.check_quorum:
                self.step_local(MT.MsgCheckQuorum)
            if self.state == StateRole.LEADER and self.lead_transferee != NONE:
                # Thesis 3.10: give up a transfer that did not finish within an election timeout.
                self.event(
                    "transfer-aborted",
                    f"{name(self.id)} aborts the leadership transfer to {name(self.lead_transferee)}: "
                    "it did not take over within an election timeout",
                )
                self.abort_leader_transfer()
        if self.state != StateRole.LEADER:
            return
        if self.heartbeat_elapsed >= self.heartbeat_timeout:
            self.heartbeat_elapsed = 0
            self.step_local(MT.MsgBeat)

    def step_local(self, t: MessageType, reason: str = "", elapsed: int | None = None) -> None:
        if t == MT.MsgHup:
            kind = CAMPAIGN_PRE_ELECTION if self.pre_vote else CAMPAIGN_ELECTION
            self.hup(kind, reason, elapsed)
            return
        self.step(Message(type=t, from_=self.id))

    # -- the one entry point ---------------------------------------------------------------------

    def step(self, m: Message) -> None:
        """Handle one message. Term rules first (paper Figure 2, "All Servers"), then the role."""
        if m.term == 0:
            pass  # local message, proposal or read request
        elif m.term > self.term:
            if not self._step_higher_term(m):
                return
        elif m.term < self.term:
            self._step_lower_term(m)
            return

        if m.type == MT.MsgHup:
            kind = CAMPAIGN_PRE_ELECTION if self.pre_vote else CAMPAIGN_ELECTION
            self.hup(kind, "asked to campaign")
        elif m.type in (MT.MsgVote, MT.MsgPreVote):
            self._handle_vote_request(m)
        else:
            self.step_fn(self, m)

    def _step_higher_term(self, m: Message) -> bool:
        """A message from a newer term. Returns False if it is to be ignored."""
        if m.type in (MT.MsgVote, MT.MsgPreVote):
            force = m.context == TRANSFER_CONTEXT
            in_lease = (
                self.check_quorum
                and self.lead != NONE
                and self.election_elapsed < self.election_timeout
            )
            if not force and in_lease:
                # Thesis 4.2.3: while we hear from a live leader, ignore a candidate's attempt
                # to disrupt it (e.g. a removed or partitioned server with a high term).
                self.event(
                    "vote-ignored",
                    f"{name(self.id)} ignores {m.type.name} from {name(m.from_)} at term {m.term}: "
                    f"{name(self.lead)} is leader and was heard from {self.election_elapsed} ticks ago",
                )
                return False
        if m.type == MT.MsgPreVote:
            return True  # never change our term in response to a pre-vote
        if m.type == MT.MsgPreVoteResp and not m.reject:
            # A granted pre-vote carries the term we will campaign in; we raise our term only
            # once a majority granted, in the candidate role.
            return True
        if m.type in (MT.MsgApp, MT.MsgHeartbeat, MT.MsgSnap):
            self.become_follower(m.term, m.from_)
        else:
            self.become_follower(m.term, NONE)
        return True

    def _step_lower_term(self, m: Message) -> None:
        if (self.check_quorum or self.pre_vote) and m.type in (MT.MsgHeartbeat, MT.MsgApp):
            # A stale leader (e.g. back from a partition) keeps sending. With check-quorum or
            # pre-vote we ignore its term-raising candidates, so tell it our term instead: the
            # response makes it step down (thesis 9.6 discussion of stuck leaders).
            self.send(Message(type=MT.MsgAppResp, to=m.from_))
        elif m.type == MT.MsgPreVote:
            # Reject with our term so a pre-candidate with a stale term learns of it.
            self.send(Message(type=MT.MsgPreVoteResp, to=m.from_, term=self.term, reject=True))
        # Anything else from an older term is ignored.

    def _handle_vote_request(self, m: Message) -> None:
        can_vote = (
            self.vote == m.from_  # repeated request from the one we voted for
            or (self.vote == NONE and self.lead == NONE)  # haven't voted, no leader known
            or (m.type == MT.MsgPreVote and m.term > self.term)  # pre-vote for a future term
        )
        resp = MT.MsgVoteResp if m.type == MT.MsgVote else MT.MsgPreVoteResp
        last_index, last_term = self.raft_log.last_index(), self.raft_log.last_term()
        if can_vote and self.raft_log.is_up_to_date(m.index, m.log_term):
            # Paper 5.4.1: grant only to a candidate whose log is at least as up-to-date.
            # The response carries the message's term (a pre-vote's term is not ours yet).
            self.send(Message(type=resp, to=m.from_, term=m.term))
            if m.type == MT.MsgVote:
                self.election_elapsed = 0
                self.vote = m.from_
            self.event(
                "vote-granted",
                f"{name(self.id)} grants {m.type.name} to {name(m.from_)} for term {m.term} "
                f"(its log {m.log_term}/{m.index} is at least ours {last_term}/{last_index})",
            )
        else:
            self.send(Message(type=resp, to=m.from_, term=self.term, reject=True))
            if can_vote:
                why = f"its log {m.log_term}/{m.index} is behind ours {last_term}/{last_index}"
            elif self.vote not in (NONE, m.from_):
                why = f"already voted for {name(self.vote)} in term {self.term}"
            else:
                why = f"{name(self.lead)} leads"
            self.event(
                "vote-rejected",
                f"{name(self.id)} rejects {m.type.name} from {name(m.from_)} for term {m.term}: {why}",
            )

    # -- installing a snapshot (received by replication.handle_snapshot) ------------------------

    def restore(self, s: Snapshot) -> bool:
        """Install snapshot ``s`` if it brings news. Returns False if it was ignored."""
        meta = s.metadata
        if meta.index <= self.raft_log.committed:
            return False
        if self.state != StateRole.FOLLOWER:
            # Defensive (as etcd-io/raft): only followers receive snapshots from a leader.
            self.become_follower(self.term + 1, NONE)
            return False
        cs = meta.conf_state
        if self.id not in cs.voters and self.id not in cs.learners:
            return False  # a snapshot that does not include us is not for us
        if self.raft_log.match_term(meta.index, meta.term):
            # We already have the entries: just fast-forward the commit index.
            self.raft_log.commit_to(meta.index)
            return False
        self.raft_log.restore(s)
        self.prs = ProgressTracker(self.prs.max_inflight, self.prs.max_inflight_bytes)
        self._apply_conf_state(cs)
        return True

    # -- membership ---------------------------------------------------------------------------

    def _apply_conf_state(self, cs: ConfState) -> None:
        nxt = self.raft_log.last_index() + 1
        for v in cs.voters:
            self.prs.add(v, 0, nxt, learner=False)
        for v in cs.learners:
            self.prs.add(v, 0, nxt, learner=True)
        if self.id in self.prs.progress:
            self.prs.progress[self.id].match = nxt - 1
        self.is_learner = self.id in self.prs.learners

    def apply_conf_change(self, cc: ConfChange) -> ConfState:
        """Apply a committed membership change (see confchange.py for when this is called)."""
        last = self.raft_log.last_index()
        # A new member starts with next = last index (not last + 1), so the leader's first probe
        # carries an entry and the member's rejection tells where its log really ends.
        nxt = max(last, 1)
        node = cc.node_id
        if cc.type == ConfChangeType.ADD_NODE:
            self.prs.add(node, 0, nxt, learner=False)  # promotes an existing learner
        elif cc.type == ConfChangeType.ADD_LEARNER_NODE:
            if node in self.prs.voters:
                # Demoting a voter in one step is not a single-server change; refuse it.
                self.event("conf-change-ignored", f"{name(node)} is a voter; cannot make it a learner")
            else:
                self.prs.add(node, 0, nxt, learner=True)
        elif cc.type == ConfChangeType.REMOVE_NODE:
            self.prs.remove(node)
        self.is_learner = self.id in self.prs.learners
        if node == self.id and self.id in self.prs.progress:
            self.prs.progress[self.id].match = last
        self.event(
            "conf-change", f"{name(self.id)} applied {cc.type.name} {name(node)}: {self.conf_state_text()}"
        )

        if self.state == StateRole.LEADER:
            if self.id not in self.prs.voters and self.step_down_on_removal:
                # A full election timeout from now, not from the last check-quorum tick
                # (simulator finding F2b: the grace period could otherwise be one tick).
                self.election_elapsed = 0
                # Stepping down at once could wedge the cluster: the others may not know yet
                # that the removal committed, and may still need our vote. So keep leading
                # (without counting ourselves) for one election timeout, telling everyone the
                # new commit index, then step down (tick_heartbeat). etcd's server does the
                # same by stopping a removed member only after a delay.
                self.event(
                    "removed",
                    f"{name(self.id)} was removed from the voters: it leads one more election "
                    "timeout so the others learn the change, then steps down",
                )
            if self.lead_transferee != NONE and self.lead_transferee not in self.prs.voters:
                self.abort_leader_transfer()
            # Fewer voters may mean more is committed; new members need appends at once.
            if self.maybe_commit():
                replication.bcast_append(self)
            else:
                for peer in self.prs.peers():
                    if peer != self.id:
                        replication.maybe_send_append(self, peer, send_if_empty=False)
        return self.conf_state()

    def conf_state_text(self) -> str:
        cs = self.conf_state()
        text = "voters=(" + " ".join(f"{name(v)}" for v in cs.voters) + ")"
        if cs.learners:
            text += " learners=(" + " ".join(f"{name(v)}" for v in cs.learners) + ")"
        return text

    # -- leadership transfer ------------------------------------------------------------------

    def abort_leader_transfer(self) -> None:
        self.lead_transferee = NONE

    def send_timeout_now(self, to: int) -> None:
        self.send(Message(type=MT.MsgTimeoutNow, to=to))
