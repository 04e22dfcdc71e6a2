"""One seeded run: a random schedule of faults and client requests, then a recovery phase.

A seed fixes everything: the cluster's size and options (:class:`Plan`), the network's
misbehaviour, the schedule (crashes, partitions, proposals, reads, leader transfers,
membership changes) and every interleaving. ``simulate(seed)`` either returns a
:class:`SimResult` or raises :class:`SimFailure` carrying the end of the transcript and the
command that replays it.

A run has two phases:

1. *Chaos* (``plan.rounds`` ticks): each tick, draw faults and requests, tick every live node,
   then let Readys and deliveries interleave until the cluster is quiet for this tick.
2. *Recovery*: heal the network, calm it, restart every crashed node (or, in some runs, leave
   a minority of the voters crashed or isolated for good). Then liveness must hold: a leader
   within ``10 * election_tick + slack`` ticks (30 without pre-vote, see ``recover``), and a
   fresh batch of proposals applied on every reachable member within as many again.
"""

from __future__ import annotations

import random
import traceback
from dataclasses import dataclass, field

from minietcd.raft.types import ConfChange, ConfChangeType
from tests.raft.sim.checker import SafetyViolation
from tests.raft.sim.cluster import Cluster, NodeOptions, SimNode
from tests.raft.sim.network import CALM, Faults, Network
from tests.raft.sim.transcript import Transcript

MAX_MEMBERS = 9
# Seeds from here on plan long runs (5x the chaos), so a soak can reach long logs and many
# compactions while ``--seed S`` still replays any run from its number alone.
LONG_SEEDS = 1_000_000
LIVENESS_SLACK = 20  # ticks on top of 10 election timeouts


class LivenessFailure(AssertionError):
    """The healed cluster did not elect a leader or commit in bounded time."""


@dataclass(slots=True, frozen=True)
class Plan:
    """Everything about a run that is drawn before it starts."""

    seed: int
    voters: int  # initial cluster size (bootstrapped)
    rounds: int  # ticks of chaos
    opts: NodeOptions
    faults: Faults
    split_ready: float  # chance a Ready is handled in stages with other steps in between
    crash_in_ready: float  # chance of a crash between two stages of a Ready
    leader_sends_first: bool  # leaders send appends before their own fsync (thesis 10.2.1)
    keep_down: bool  # recovery leaves a minority of the voters crashed
    p_crash: float  # per tick
    p_pause: float  # per tick: freeze a node (SIGSTOP, GC pause) for a while
    clock_skew: bool  # nodes' clocks run at different rates (x0.5, x1, x2)
    p_partition: float  # per tick, while healed
    p_propose: float
    p_read: float
    p_transfer: float
    p_conf_change: float

    @classmethod
    def from_seed(cls, seed: int) -> Plan:
        rng = random.Random(f"plan/{seed}")
        profile = rng.choice(["calm", "lossy", "lossy", "chaotic"])
        faults = {
            "calm": CALM,
            "lossy": Faults(drop=0.05, duplicate=0.02, max_delay=1),
            "chaotic": Faults(drop=0.15, duplicate=0.1, max_delay=4, reorder=True),
        }[profile]
        opts = NodeOptions(
            election_tick=10,
            heartbeat_tick=rng.choice([1, 1, 2, 3]),
            pre_vote=rng.random() < 0.8,
            check_quorum=rng.random() < 0.8,
            max_size_per_msg=rng.choice([1 << 20, 1 << 20, 40]),  # 40 bytes: one entry a message
            max_inflight_msgs=rng.choice([256, 256, 2]),
            max_uncommitted_entries_size=rng.choice([64 << 20, 64 << 20, 8]),
            max_committed_size_per_ready=rng.choice([1 << 62, 1 << 62, 50]),
            compact_every=rng.choice([0, 4, 10, 30]),
        )
        return cls(
            seed=seed,
            voters=rng.choice([1, 2, 3, 3, 3, 4, 5, 5, 5, 6, 7, 8, 9]),
            rounds=rng.randint(60, 160) * (5 if seed >= LONG_SEEDS else 1),
            opts=opts,
            faults=faults,
            split_ready=rng.choice([0.0, 0.0, 0.3]),
            crash_in_ready=rng.choice([0.0, 0.002]),
            leader_sends_first=rng.random() < 0.3,
            keep_down=rng.random() < 0.3,
            p_crash=rng.choice([0.0, 0.02, 0.05]),
            p_pause=rng.choice([0.0, 0.0, 0.02, 0.05]),
            clock_skew=rng.random() < 0.3,
            p_partition=rng.choice([0.0, 0.03, 0.06]),
            p_propose=rng.choice([0.3, 0.6]),
            p_read=rng.choice([0.05, 0.2]),
            p_transfer=rng.choice([0.0, 0.02]),
            p_conf_change=rng.choice([0.0, 0.03, 0.06]),
        )

    def describe(self) -> str:
        o = self.opts
        return (
            f"seed={self.seed} voters={self.voters} rounds={self.rounds} net=({self.faults.describe()}) "
            f"election={o.election_tick} heartbeat={o.heartbeat_tick} prevote={o.pre_vote} "
            f"checkquorum={o.check_quorum} maxmsg={o.max_size_per_msg} inflight={o.max_inflight_msgs} "
            f"maxuncommitted={o.max_uncommitted_entries_size} maxcommitted={o.max_committed_size_per_ready} "
            f"compact={o.compact_every} split_ready={self.split_ready} crash_in_ready={self.crash_in_ready} "
            f"leader_sends_first={self.leader_sends_first} keep_down={self.keep_down} "
            f"p_crash={self.p_crash} p_pause={self.p_pause} clock_skew={self.clock_skew} "
            f"p_partition={self.p_partition} p_conf={self.p_conf_change}"
        )


@dataclass(slots=True)
class SimResult:
    plan: Plan
    transcript: Transcript
    ticks: int
    stats: dict[str, int] = field(default_factory=dict)


class SimFailure(AssertionError):
    def __init__(self, seed: int, what: str, transcript: str) -> None:
        super().__init__(what)
        self.seed = seed
        self.what = what
        self.transcript = transcript

    def report(self) -> str:
        return (
            f"simulation seed {self.seed} failed:\n{self.what}\n\n"
            f"--- last lines of the transcript ---\n{self.transcript}\n\n"
            f"replay: pytest tests/raft/test_simulation.py --seed {self.seed}"
        )


def simulate(seed: int, keep: int | None = 400) -> SimResult:
    """Run one seed; raise SimFailure if any safety or liveness check fails."""
    return Simulation(seed, keep).run()


class Simulation:
    def __init__(self, seed: int, keep: int | None = 400) -> None:
        self.plan = plan = Plan.from_seed(seed)
        self.rng = random.Random(f"schedule/{seed}")
        net = Network(random.Random(f"network/{seed}"), plan.faults)
        self.c = Cluster(
            rng=random.Random(f"cluster/{seed}"),
            net=net,
            opts=plan.opts,
            transcript=Transcript(keep),
            split_ready=plan.split_ready,
            crash_in_ready=plan.crash_in_ready,
            leader_sends_first=plan.leader_sends_first,
            report_unreachable=0.2,
        )
        self.down_until: dict[int, int] = {}  # crashed node -> tick it comes back
        self.paused_until: dict[int, int] = {}  # paused node -> tick it resumes
        self.clock_rate: dict[int, float] = {}  # node -> ticks per round (clock skew)
        self.heal_at = 0
        self.payloads = 0  # client payloads are b"p1", b"p2", ... (unique)
        self.reads = 0
        self.next_id = plan.voters + 1  # ids are never reused
        self.kept_down: list[int] = []  # voters left crashed or isolated through recovery

    # -- the run -------------------------------------------------------------------------------

    def run(self) -> SimResult:
        c = self.c
        try:
            c.say(self.plan.describe())
            c.bootstrap(self.plan.voters)
            for _ in range(self.plan.rounds):
                self.round(chaos=True)
            self.recover()
        except (SafetyViolation, LivenessFailure) as e:
            raise SimFailure(self.plan.seed, f"{type(e).__name__}: {e}", self._tail()) from e
        except Exception as e:  # a core exception (e.g. RaftInvariantError) is a failure too
            tb = "".join(traceback.format_exception(e)[-8:])
            raise SimFailure(self.plan.seed, f"{type(e).__name__}: {e}\n{tb}", self._tail()) from e
        stats = {**c.checker.stats, **c.net.stats, "ticks": c.now}
        return SimResult(self.plan, c.transcript, c.now, stats)

    def _tail(self) -> str:
        return self.c.transcript.render(last=200)

    def round(self, chaos: bool) -> None:
        c = self.c
        c.now += 1
        if chaos:
            self.chaos()
        for n in c.live():
            for _ in range(self.ticks_this_round(n.id) if chaos else 1):
                c.tick(n.id)
        c.settle()
        c.stop_removed()

    def ticks_this_round(self, nid: int) -> int:
        """How many ticks a node's clock advances this round: about its rate (0.5, 1 or 2);
        without clock skew, now and then a tick is lost (a slow clock)."""
        if nid not in self.clock_rate:
            skew = self.plan.clock_skew
            self.clock_rate[nid] = self.rng.choice([0.5, 1.0, 1.0, 2.0]) if skew else 0.97
        rate = self.clock_rate[nid]
        whole = int(rate)
        return whole + (1 if self.rng.random() < rate - whole else 0)

    # -- chaos ---------------------------------------------------------------------------------

    def chaos(self) -> None:
        p, c, rng = self.plan, self.c, self.rng
        for n in c.nodes.values():  # crashed in the middle of a Ready: schedule its return
            if not n.up and not n.stopped and n.id not in self.down_until:
                self.down_until[n.id] = c.now + rng.randint(1, 4 * p.opts.election_tick)
        for nid, t in sorted(self.down_until.items()):
            if t <= c.now:
                del self.down_until[nid]
                if not c.nodes[nid].stopped:
                    c.restart(nid)
        for nid, t in sorted(self.paused_until.items()):
            if t <= c.now:
                del self.paused_until[nid]
                if c.nodes[nid].paused:
                    c.resume(nid)
        if rng.random() < p.p_crash:
            self.crash_someone()
        if rng.random() < p.p_pause:
            self.pause_someone()
        if c.net.groups is None:
            if rng.random() < p.p_partition:
                self.partition()
        elif c.now >= self.heal_at:
            c.net.heal()
            c.say("heal")
        if rng.random() < p.p_propose:
            self.propose()
        if rng.random() < p.p_read:
            self.read()
        if rng.random() < p.p_transfer:
            self.transfer()
        if rng.random() < p.p_conf_change:
            self.conf_change()

    def crash_someone(self) -> None:
        c, rng = self.c, self.rng
        live = c.live()
        if not live:
            return
        ld = c.leader()
        victim = ld if ld is not None and rng.random() < 0.4 else rng.choice(live)
        c.crash(victim.id)
        self.down_until[victim.id] = c.now + rng.randint(1, 4 * self.plan.opts.election_tick)

    def pause_someone(self) -> None:
        c, rng = self.c, self.rng
        live = c.live()
        if not live:
            return
        ld = c.leader()
        victim = ld if ld is not None and rng.random() < 0.5 else rng.choice(live)
        c.pause(victim.id)
        self.paused_until[victim.id] = c.now + rng.randint(3, 3 * self.plan.opts.election_tick)

    def partition(self) -> None:
        c, rng = self.c, self.rng
        ids = sorted(n.id for n in c.nodes.values() if not n.stopped)
        if len(ids) < 2:
            return
        rng.shuffle(ids)
        kind = rng.choice(["split", "split", "even", "isolate-leader", "three", "bridge"])
        ld = c.leader()
        if kind == "even" and len(ids) % 2 == 0:
            half = len(ids) // 2
            groups = [ids[:half], ids[half:]]
        elif kind == "isolate-leader" and ld is not None:
            groups = [[ld.id], [i for i in ids if i != ld.id]]
        elif kind == "three" and len(ids) >= 3:
            a, b = sorted(rng.sample(range(1, len(ids)), 2))
            groups = [ids[:a], ids[a:b], ids[b:]]
        elif kind == "bridge" and len(ids) >= 3:
            # Non-transitive: the bridge node talks to both sides, which cannot talk directly.
            a = rng.randint(1, len(ids) - 2)
            groups = [ids[: a + 1], ids[a:]]
            kind = f"bridge via n{ids[a]}"
        else:
            cut = rng.randint(1, len(ids) - 1)
            groups = [ids[:cut], ids[cut:]]
            kind = "split"
        c.net.partition([frozenset(g) for g in groups])
        self.heal_at = c.now + rng.randint(5, 6 * self.plan.opts.election_tick)
        text = " | ".join(",".join(f"n{i}" for i in sorted(g)) for g in groups)
        c.say(f"partition ({kind}) {text} until t={self.heal_at}")

    # -- clients -------------------------------------------------------------------------------

    def any_live(self) -> SimNode | None:
        live = self.c.live()
        return self.rng.choice(live) if live else None

    def propose(self) -> None:
        n = self.any_live()
        if n is None:
            return
        datas = []
        for _ in range(self.rng.choice([1, 1, 1, 2, 3])):
            self.payloads += 1
            datas.append(f"p{self.payloads}".encode())
        self.c.propose(n.id, datas)

    def read(self) -> None:
        n = self.any_live()
        if n is None:
            return
        self.reads += 1
        self.c.read_index(n.id, f"r{self.reads}".encode())

    def transfer(self) -> None:
        ld = self.c.leader()
        if ld is None:
            return
        voters = ld.node.status().conf_state.voters
        self.c.transfer_leader(ld.id, self.rng.choice(voters))

    def conf_change(self) -> None:
        """Add a voter or learner, promote a learner, or remove anyone (even the leader)."""
        c, rng = self.c, self.rng
        ld = c.leader()
        if ld is None:
            return
        cs = ld.node.status().conf_state
        members = len(cs.voters) + len(cs.learners)
        kinds = []
        if members < MAX_MEMBERS:
            kinds += ["add", "learner"]
        if cs.learners:
            kinds.append("promote")
        voters_removable = len(cs.voters) > 1
        if voters_removable or cs.learners:
            kinds.append("remove")
        if not kinds:
            return
        kind = rng.choice(kinds)
        if kind in ("add", "learner"):
            node = self.next_id
            self.next_id += 1
            t = ConfChangeType.ADD_NODE if kind == "add" else ConfChangeType.ADD_LEARNER_NODE
        elif kind == "promote":
            node, t = rng.choice(cs.learners), ConfChangeType.ADD_NODE
        else:
            pool = list(cs.learners) + (list(cs.voters) if voters_removable else [])
            node, t = rng.choice(pool), ConfChangeType.REMOVE_NODE
        # Usually through the leader; sometimes through another node, which forwards it (the
        # leader turns a forwarded change into a no-op if one is already pending).
        via = ld if rng.random() < 0.8 else self.any_live()
        assert via is not None
        c.propose_conf_change(via.id, ConfChange(t, node))

    # -- recovery and liveness -----------------------------------------------------------------

    def recover(self) -> None:
        c = self.c
        c.say("recover: heal the network, stop all faults, restart every crashed node")
        c.net.heal()
        c.net.faults = CALM
        c.crash_in_ready = 0.0
        for n in list(c.nodes.values()):
            if n.paused:
                c.resume(n.id)
            if not n.up and not n.stopped:
                c.restart(n.id)
        self.down_until.clear()
        self.paused_until.clear()
        self.kept_down = self.crash_a_minority() if self.plan.keep_down else []
        # Without pre-vote, nodes whose logs are too short to win still raise the term and reset
        # everyone's timer; only a node that times out first (alone) can win, a lottery each
        # round. Raft promises liveness only in probability, so those runs get more rounds.
        timeouts = 10 if self.plan.opts.pre_vote else 30
        bound = timeouts * self.plan.opts.election_tick + LIVENESS_SLACK
        start = c.now
        while self.stable_leader() is None:
            if c.now - start > bound:
                raise LivenessFailure(f"no leader {bound} ticks after healing\n{self.status()}")
            self.round(chaos=False)
        c.say(f"leader n{self.stable_leader()} after {c.now - start} ticks")
        self.commit_final_batch(bound)
        self.read_everywhere(bound)
        self.final_checks()

    def crash_a_minority(self) -> list[int]:
        """Crash or isolate a few voters for good: the majority must still make progress.
        At most (N - 2) // 2 of N, so that a membership change still in flight (removing a
        live voter) cannot turn the rest into a minority."""
        voters = list(self.c.latest_conf().voters)
        k = (len(voters) - 2) // 2
        if k <= 0:
            return []
        down = sorted(self.rng.sample(voters, self.rng.randint(1, k)))
        if self.rng.random() < 0.5:
            self.c.net.isolate(frozenset(down))
            self.c.say(f"isolate {' '.join(f'n{i}' for i in down)} for good (a minority)")
        else:
            for nid in down:
                if self.c.nodes[nid].up:
                    self.c.crash(nid, "(stays down: a minority)")
        return down

    def stable_leader(self) -> int | None:
        """The leader, if one leads the highest term among the members of its configuration."""
        ld = self.c.leader()
        if ld is None:
            return None
        cs = ld.node.status().conf_state
        for nid in (*cs.voters, *cs.learners):
            n = self.c.nodes.get(nid)
            if nid in self.kept_down or n is None or not n.up:
                continue
            if n.node.raft.term > ld.node.raft.term:
                return None
        return ld.id

    def members(self) -> list[SimNode]:
        cs = self.c.latest_conf()
        return [self.c.nodes[i] for i in (*cs.voters, *cs.learners) if i in self.c.nodes]

    def commit_final_batch(self, bound: int) -> None:
        """Propose a few payloads through the leader (retrying as a client would) and wait
        until every member applied all of them and caught up with the leader's log."""
        c = self.c
        batch = [f"final{i}".encode() for i in range(1, 4)]
        proposed_in_term: dict[bytes, int] = {}
        start = c.now
        while True:
            ld_id = self.stable_leader()
            if ld_id is not None:
                ld = c.nodes[ld_id]
                for data in batch:
                    term = ld.node.raft.term
                    retry = data not in ld.sm.payloads and proposed_in_term.get(data) != term
                    if retry and c.propose(ld_id, [data]):
                        proposed_in_term[data] = term
                if self.converged(ld, batch):
                    c.say(f"converged {c.now - start} ticks after the leader appeared")
                    return
            if c.now - start > bound:
                raise LivenessFailure(
                    f"proposals not applied on every member {bound} ticks after a leader "
                    f"appeared\n{self.status()}"
                )
            self.round(chaos=False)

    def read_everywhere(self, bound: int) -> None:
        """Every reachable member (voter or learner) asks for a linearizable read; each must be
        answered (ReadState on that member) in bounded time. Retried while dropped."""
        c = self.c
        ctxs = {n.id: f"final-read-n{n.id}".encode() for n in self.members()
                if n.up and n.id not in self.kept_down}
        start = c.now
        while True:
            waiting = {nid: ctx for nid, ctx in ctxs.items() if ctx not in c.checker.answered}
            if not waiting:
                return
            if c.now - start > bound:
                raise LivenessFailure(
                    f"ReadIndex on {', '.join(f'n{i}' for i in sorted(waiting))} not answered "
                    f"{bound} ticks after the cluster converged\n{self.status()}"
                )
            for nid, ctx in waiting.items():
                if c.nodes[nid].up and (c.now - start) % 5 == 0:  # a client retrying
                    c.read_index(nid, ctx)
            self.round(chaos=False)

    def converged(self, ld: SimNode, batch: list[bytes]) -> bool:
        log = ld.node.raft.raft_log
        if log.committed != log.last_index():
            return False
        if self.c.removals and not self.kept_down:
            return False  # removed nodes must have stopped (unless they wait on a downed voter)
        for n in self.members():
            if n.id in self.kept_down:
                continue
            if not n.up or n.sm.applied != log.committed:
                return False
            if any(d not in n.sm.payloads for d in batch):
                return False
        return True

    def final_checks(self) -> None:
        members = [n for n in self.members() if n.up and n.id not in self.kept_down]
        states = {(n.sm.applied, n.sm.hash) for n in members}
        if len(states) != 1:
            raise SafetyViolation(f"members ended in different states\n{self.status()}")
        # Log Matching, directly: every pair of members agrees on their common entries.
        logs = {}
        for n in members:
            log = n.node.raft.raft_log
            logs[n.id] = {i: log.term(i) for i in range(log.first_index() - 1, log.last_index() + 1)}
        for a in logs:
            for b in logs:
                common = logs[a].keys() & logs[b].keys()
                bad = [i for i in common if logs[a][i] != logs[b][i]]
                if bad:
                    raise SafetyViolation(f"n{a} and n{b} disagree at index {min(bad)}")

    def status(self) -> str:
        lines = []
        for n in self.c.nodes.values():
            r = n.node.raft
            state = "stopped" if n.stopped else "down" if not n.up else str(r.state)
            state += " (paused)" if n.paused else ""
            lines.append(
                f"  n{n.id}: {state} term={r.term} lead=n{r.lead} commit={r.raft_log.committed} "
                f"last={r.raft_log.last_index()} applied={n.sm.applied} {r.conf_state_text()}"
            )
        lines.append(f"  latest conf: {self.c.latest_conf()}")
        return "\n".join(lines)

