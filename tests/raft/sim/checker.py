"""Raft's safety properties (paper Figure 3), checked after every step of a simulation.

The checker keeps a little *global* history (who led which term, which entry was seen at each
(index, term), what was applied at each index) and compares each node's state against it
whenever the node changes. That makes every check O(change) instead of O(cluster x log):

Election Safety
    ``leaders[term]`` is the one node ever seen leading ``term``.

Log Matching
    If two logs hold an entry with the same index and term, they are identical up to it. By
    induction this holds iff every (index, term) ever appended anywhere names one entry *and*
    one predecessor term. So every entry entering any log (the unstable tail, where all new
    entries arrive) is checked against ``entries[(index, term)] = (type, data, prev_term)``.

Leader Completeness
    An entry committed in term T is in the log of every leader of a term after T. Which term
    an entry was committed in is not observable, but it is at most the (persisted) term of
    the node on whose disk we first see the commit; so a new leader of term U must hold every
    commit first seen at a term below U. (Not every commit seen so far: a candidate paused
    for a while can still win its old term with votes granted long ago, legitimately, after a
    later term committed entries it lacks.) With Log Matching checked, the highest such
    committed (index, term) is enough.

State Machine Safety
    ``applied[index]`` is the state hash after the first apply of ``index`` anywhere; every
    later apply of that index (on any node, in any incarnation) must reach the same hash.

Plus the contract between the core and its caller ("persist before you speak"): a granted
vote and an append acknowledgement leave a node only once what they promise is on its
storage, commit indexes never go back (except when a crash reloads them from disk), and a
ReadIndex answer is never behind an entry committed before the read was asked.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from minietcd.errors import LogCompactedError, LogUnavailableError
from minietcd.raft.rawnode import RawNode
from minietcd.raft.storage import MemoryStorage
from minietcd.raft.types import Entry, EntryType, Message, MessageType, ReadState, Snapshot, StateRole
from tests.raft.sim.state_machine import StateMachine

MT = MessageType


class SafetyViolation(AssertionError):
    """A Raft safety property or the Ready contract was broken."""


@dataclass(slots=True)
class Checker:
    # Election Safety: term -> the node that led it.
    leaders: dict[int, int] = field(default_factory=dict)
    # Log Matching: (index, term) -> (type, data, term of the entry before it).
    entries: dict[tuple[int, int], tuple[EntryType, bytes, int]] = field(default_factory=dict)
    # Commits seen on some node's disk: index -> term of the committed entry there.
    committed: dict[int, int] = field(default_factory=dict)
    commit_top: tuple[int, int] = (0, 0)  # the highest committed (index, term) seen
    # Observer's term -> the highest committed (index, term) first seen by a node in that term.
    commit_seen_in_term: dict[int, tuple[int, int]] = field(default_factory=dict)
    # State Machine Safety: index -> (state hash after applying it, the entry, who applied it).
    applied: dict[int, tuple[bytes, Entry, int]] = field(default_factory=dict)
    votes: dict[tuple[int, int], int] = field(default_factory=dict)  # (voter, term) -> candidate
    proposals: set[bytes] = field(default_factory=set)  # every payload a client proposed
    reads: dict[bytes, int] = field(default_factory=dict)  # read ctx -> commit_top index at request
    answered: dict[bytes, int] = field(default_factory=dict)  # read ctx -> node that got its answer
    last_commit: dict[int, int] = field(default_factory=dict)  # node -> its in-memory commit
    checked_leader: set[tuple[int, int]] = field(default_factory=set)  # (term, node) checked
    stats: dict[str, int] = field(
        default_factory=lambda: {"leaders": 0, "applied": 0, "reads": 0, "snapshots": 0}
    )

    # -- after every step on a node ---------------------------------------------------------------

    def check_node(self, nid: int, node: RawNode) -> None:
        r = node.raft
        log = r.raft_log
        # Commit index is monotonic while the node lives (restart() resets the baseline).
        prev = self.last_commit.get(nid, 0)
        if log.committed < prev:
            raise SafetyViolation(f"n{nid} commit index went back from {prev} to {log.committed}")
        self.last_commit[nid] = log.committed
        # Log Matching: every entry that entered the log since the last check is in ``unstable``.
        ents = log.unstable.entries
        if ents:
            prev_term = log.term_or_zero(ents[0].index - 1)
            for e in ents:
                self._check_entry(nid, e, prev_term)
                prev_term = e.term
        if r.state == StateRole.LEADER:
            self.note_leader(nid, r.term)
            if (r.term, nid) not in self.checked_leader:
                self.checked_leader.add((r.term, nid))
                self._check_leader_completeness(nid, node)

    def note_leader(self, nid: int, term: int) -> None:
        """Election Safety: at most one leader per term, over the whole history."""
        other = self.leaders.setdefault(term, nid)
        if other != nid:
            raise SafetyViolation(f"Election Safety: n{nid} and n{other} both led term {term}")
        self.stats["leaders"] = len(self.leaders)

    def _check_entry(self, nid: int, e: Entry, prev_term: int) -> None:
        key = (e.index, e.term)
        seen = self.entries.setdefault(key, (e.type, e.data, prev_term))
        if seen != (e.type, e.data, prev_term):
            raise SafetyViolation(
                f"Log Matching: n{nid} holds {e.term}/{e.index} {e.type.name} {e.data!r} after "
                f"term {prev_term}, but another log had {seen[0].name} {seen[1]!r} after term {seen[2]}"
            )

    def _check_leader_completeness(self, nid: int, node: RawNode) -> None:
        lead_term = node.raft.term
        earlier = [pt for t, pt in self.commit_seen_in_term.items() if t < lead_term]
        if not earlier:
            return
        index, term = max(earlier)
        got = _term_at(node, index)
        if got is None:
            return  # compacted by a snapshot newer than index: committed state by construction
        if got != term:
            raise SafetyViolation(
                f"Leader Completeness: n{nid} leads term {node.raft.term} but its log has term "
                f"{got or 'nothing'} at index {index}, where term {term} was committed"
            )

    # -- the Ready loop ---------------------------------------------------------------------------

    def on_persist(self, nid: int, storage: MemoryStorage, written: list[Entry]) -> None:
        """The node just wrote a Ready to disk: the disk holds exactly what was written (a
        conflicting suffix was cut), and what it records as committed is committed."""
        if written and (
            storage.last_index() != written[-1].index
            or storage.term(written[0].index) != written[0].term
        ):
            raise SafetyViolation(
                f"n{nid} wrote entries {written[0].index}..{written[-1].index} but its disk now "
                f"ends at {storage.last_index()}"
            )
        hs, _ = storage.initial_state()
        snap = storage.snapshot()
        if snap.metadata.index > hs.commit:
            raise SafetyViolation(
                f"n{nid} persisted commit {hs.commit} below its snapshot {snap.metadata.index}"
            )
        if hs.commit == 0:
            return
        try:
            term = storage.term(hs.commit)
        except (LogCompactedError, LogUnavailableError) as e:
            raise SafetyViolation(
                f"n{nid} persisted commit={hs.commit} but its persisted log ends at "
                f"{storage.last_index()}: a restart could not load it ({e})"
            ) from None
        self.note_committed(nid, hs.commit, term, seen_in_term=hs.term)
        if storage.first_index() - 1 <= self.commit_top[0] <= hs.commit:
            # Our disk must agree with the highest commit known anywhere.
            top_i, top_t = self.commit_top
            if storage.term(top_i) != top_t:
                raise SafetyViolation(
                    f"n{nid} committed up to {hs.commit} but has term {storage.term(top_i)} at "
                    f"{top_i}, where term {top_t} was committed"
                )

    def note_committed(self, nid: int, index: int, term: int, seen_in_term: int) -> None:
        seen = self.committed.setdefault(index, term)
        if seen != term:
            raise SafetyViolation(
                f"n{nid} committed term {term} at index {index}, where term {seen} was committed"
            )
        if index > self.commit_top[0]:
            self.commit_top = (index, term)
        if index > self.commit_seen_in_term.get(seen_in_term, (0, 0))[0]:
            self.commit_seen_in_term[seen_in_term] = (index, term)

    def check_whole_log(self, nid: int, node: RawNode) -> None:
        """Log Matching over a log loaded from disk (on restart): every entry, not just new ones."""
        log = node.raft.raft_log
        first, last = log.first_index(), log.last_index()
        if last < first:
            return
        prev_term = log.term(first - 1)
        for e in log.slice(first, last + 1):
            self._check_entry(nid, e, prev_term)
            prev_term = e.term

    def on_send(self, nid: int, m: Message, storage: MemoryStorage) -> None:
        """Persist before you speak (paper Figure 2; DESIGN rule 4)."""
        hs, _ = storage.initial_state()
        if m.type in (MT.MsgPreVote, MT.MsgPreVoteResp) or m.term == 0:
            pass  # pre-votes carry a future term and promise nothing; term 0: proposals, reads
        elif m.term > hs.term:
            raise SafetyViolation(
                f"n{nid} sent {m.type.name} at term {m.term} before persisting that term "
                f"(disk: term {hs.term})"
            )
        if m.type == MT.MsgVoteResp and not m.reject:
            # The vote must be on disk -- or a later term, which rules out voting again in
            # m.term just as well (one Ready may grant votes in two terms; only the last stays).
            if hs.term < m.term or (hs.term == m.term and hs.vote != m.to):
                raise SafetyViolation(
                    f"n{nid} granted its vote to n{m.to} at term {m.term} before persisting it "
                    f"(disk: term {hs.term} vote n{hs.vote})"
                )
            other = self.votes.setdefault((nid, m.term), m.to)
            if other != m.to:
                raise SafetyViolation(f"n{nid} voted for n{other} and n{m.to} in term {m.term}")
        elif (
            m.type == MT.MsgAppResp
            and not m.reject
            and m.term == hs.term
            and m.index > storage.last_index()
        ):
            # Only acks of the node's current term must be on disk. An ack generated while a
            # Ready was out can see its entries cut by a newer leader before the next Ready
            # ships it; it then names entries the node no longer has -- harmless: no leader of
            # the old term can count it into a majority (the newer leader's voters, which must
            # intersect that majority elsewhere, would have refused it for a shorter log).
            raise SafetyViolation(
                f"n{nid} acknowledged entries up to {m.index} with only {storage.last_index()} on disk"
            )

    def on_restore(self, nid: int, snap: Snapshot, sm: StateMachine, term: int) -> None:
        """``nid`` (now at ``term``) loaded ``snap`` into its state machine."""
        meta = snap.metadata
        self.stats["snapshots"] += 1
        self.note_committed(nid, meta.index, meta.term, seen_in_term=term)
        first = self.applied.get(meta.index)
        if first is None:
            raise SafetyViolation(f"n{nid} restored a snapshot at {meta.index}, an index nobody applied")
        if sm.applied != meta.index or sm.hash != first[0]:
            raise SafetyViolation(
                f"State Machine Safety: n{nid} restored a snapshot at {meta.index} whose state "
                f"differs from what n{first[2]} applied there"
            )

    def on_apply(self, nid: int, e: Entry, sm: StateMachine) -> None:
        self.stats["applied"] += 1
        if e.type == EntryType.NORMAL and e.data and e.data not in self.proposals:
            raise SafetyViolation(f"n{nid} applied {e.data!r}, which no client proposed")
        first = self.applied.setdefault(e.index, (sm.hash, e, nid))
        if first[0] != sm.hash:
            raise SafetyViolation(
                f"State Machine Safety: n{nid} applied {e.term}/{e.index} {e.data!r} but "
                f"n{first[2]} applied {first[1].term}/{first[1].index} {first[1].data!r} "
                "(or their earlier histories differ)"
            )

    # -- ReadIndex -----------------------------------------------------------------------------

    def on_read_request(self, ctx: bytes) -> None:
        # A client retrying the same ctx may be answered for any of its tries: hold the answer
        # to the weakest promise, the one made at the first try.
        self.reads.setdefault(ctx, self.commit_top[0])

    def on_read_state(self, nid: int, rs: ReadState) -> None:
        need = self.reads.get(rs.request_ctx)
        if need is None:
            raise SafetyViolation(f"n{nid} got a ReadState for {rs.request_ctx!r}, never requested")
        self.stats["reads"] += 1
        self.answered[rs.request_ctx] = nid
        if rs.index < need:
            raise SafetyViolation(
                f"linearizable read {rs.request_ctx!r} on n{nid} got read index {rs.index}, "
                f"but index {need} was already committed when it was requested"
            )


def _term_at(node: RawNode, index: int) -> int | None:
    """Term of ``index`` in the node's log; 0 if beyond its end; None if compacted."""
    try:
        return node.raft.raft_log.term(index)
    except LogCompactedError:
        return None
    except LogUnavailableError:
        return 0
