"""Core bugs the simulator found, each as a minimal deterministic reproduction.

A finding's test is marked ``xfail(strict=True)`` while the bug is open; when the core is fixed
the test starts passing, strict xfail turns that into a failure, and the marker must go (with
any workaround the simulator had for it). Fixed findings stay here as regression tests.
"""

from __future__ import annotations

import random

from minietcd.raft.types import ConfChange, ConfChangeType, StateRole
from tests.raft.interaction import Interaction
from tests.raft.sim.cluster import Cluster, NodeOptions
from tests.raft.sim.network import Network


def calm_cluster(voters: int) -> Cluster:
    """A fault-free cluster of ``voters`` bootstrapped nodes, with a leader."""
    c = Cluster(rng=random.Random(7), net=Network(random.Random(7)), opts=NodeOptions())
    c.bootstrap(voters)
    c.run_ticks(30)
    assert c.leader() is not None
    return c


def test_f1_member_added_after_the_latest_snapshot_catches_up() -> None:
    """F1 (simulator seeds 2, 6, 14, 32 at the time).

    The leader compacts its log; then a member is added. The new member's log is empty, so
    the leader must send its snapshot -- but that snapshot predates the ADD, so its ConfState
    does not name the new member, and ``Raft.restore`` ("a snapshot that does not include us is
    not for us") ignores it. The leader re-sends the same snapshot on every heartbeat response,
    forever: the member never catches up until the leader happens to take a newer snapshot.

    Fixed: the leader no longer sends such a snapshot; it sets ``Ready.snapshot_needed`` and the
    application (here ``Cluster``) takes a fresh snapshot, which names the new member.
    """
    c = calm_cluster(1)
    for i in range(3):
        c.propose(1, [f"v{i}".encode()])
    c.run_ticks(2)
    c.compact(1)  # snapshot at the applied index: voters=(n1)
    assert c.propose_conf_change(1, ConfChange(ConfChangeType.ADD_LEARNER_NODE, 2))
    c.run_ticks(20)
    leader = c.nodes[1]
    assert leader.node.raft.state == StateRole.LEADER
    assert c.nodes[2].sm.applied == leader.sm.applied, "n2 never caught up"


def test_f2_removing_the_leader_of_two_voters_does_not_wedge_the_survivor() -> None:
    """F2 (simulator seed 606 at the time).

    n1 leads {n1, n2} and proposes its own removal (index 4), then a client entry (5). n2
    acknowledges 4, n1 commits and applies it, and steps down -- but the appends carrying
    ``commit=4`` and entry 5 are lost. Now:

    - n2 still uses {n1, n2} (it never learned 4 committed), so it needs n1's vote;
    - n1 rejects n2's (pre-)vote: n2's log (2/4) is behind n1's (2/5);
    - n1 cannot campaign: it is not a voter in its own configuration (``promotable``).

    Nobody could ever become leader. Fixed: a removed leader keeps leading for one election
    timeout (telling n2 the commit index) before it steps down, as etcd keeps a removed member
    running for a while.
    """
    env = Interaction()
    for line in [
        "add-nodes 2", "campaign 1", "stabilize",
        "propose-conf-change 1 remove 1", "process-ready 1",  # 2/4 REMOVE n1 sent to n2
        "propose 1 x",  # 2/5 appended on n1
        "deliver-msgs 2", "process-ready 2", "deliver-msgs 1",  # n2 acks 4: n1 commits it
        "partition 1 2", "process-ready 1", "heal",  # n1's next appends are lost
        "tick 200", "stabilize", "tick 200", "stabilize",
    ]:
        cmd, *args = line.split()
        env.run(cmd, args)
    n2 = env.nodes[2].node.raft
    assert n2.state == StateRole.LEADER or n2.conf_state().voters == (2,), "no leader, ever"


def test_f3_removed_leader_does_not_serve_stale_reads() -> None:
    """F3 (found by review of the F2 fix, reproduced on the simulator's cluster).

    Since F2's fix, a leader that applied its own removal keeps leading for an election
    timeout. In {n1, n2} minus the leader, one voter is left -- the *other* node -- but
    ``roles._leader_read_index`` takes ``len(r.prs.voters) <= 1`` to mean "I am alone, so I am
    trivially confirmed" and answers a ReadIndex at once with its own commit index.
    Meanwhile the survivor, a single voter now, elects itself (a partition and a slow clock on
    the old leader suffice) and commits a write. The old leader's read misses that write: a
    stale read, which breaks linearizability (thesis 6.4).

    Fixed: the fast path is taken only when ``r.prs.voters == {r.id}``; a leader outside the
    voters confirms through a heartbeat round like any other.
    """
    c = calm_cluster(2)
    old = c.leader()
    assert old is not None
    survivor = c.nodes[3 - old.id]
    assert c.propose_conf_change(old.id, ConfChange(ConfChangeType.REMOVE_NODE, old.id))
    c.settle()
    assert survivor.node.raft.conf_state().voters == (survivor.id,)
    assert old.node.raft.state == StateRole.LEADER  # still leading, for one election timeout
    c.net.partition([frozenset([old.id]), frozenset([survivor.id])])
    for _ in range(4 * NodeOptions().election_tick):  # only the survivor's clock runs
        c.now += 1
        c.tick(survivor.id)
        c.settle()
    assert survivor.node.raft.state == StateRole.LEADER
    c.propose(survivor.id, [b"write"])
    c.settle()
    assert b"write" in survivor.sm.payloads
    c.read_index(old.id, b"read")  # the checker raises SafetyViolation on a stale ReadState
    c.settle()


def test_f2b_removed_leader_cut_off_for_longer_than_its_grace_period() -> None:
    """F2b (simulator seed 694 at the time): F2 again, with a longer partition.

    F2's fix keeps the removed leader leading for one election timeout so the survivor hears
    that the removal committed. If the survivor is unreachable for that whole timeout, n1 steps
    down anyway, and the old wedge is back: n2 still uses {n1, n2}, n1 (not promotable) rejects
    n2's votes because n1's log is longer (it appended entry 5 after its own removal). The
    window is often much shorter than a timeout, too: it ends at the next check-quorum
    boundary (``election_elapsed`` is not reset when the removal is applied), which in seed
    1000149 came 4 ticks later on a lossy network.

    Fixed both ways: a leader that has proposed its own removal accepts no more proposals (so a
    survivor that acknowledged the removal has a log at least as long, and n1 grants it the
    vote), and applying the removal restarts the election timer, so the grace period is a whole
    election timeout.
    """
    env = Interaction()
    for line in [
        "add-nodes 2", "campaign 1", "stabilize",
        "propose-conf-change 1 remove 1", "process-ready 1",  # 2/4 REMOVE n1 sent to n2
        "propose 1 x",  # 2/5 appended on n1
        "deliver-msgs 2", "process-ready 2", "deliver-msgs 1",  # n2 acks 4: n1 commits it
        "partition 1 2", "process-ready 1",
        "tick 30 1", "stabilize",  # n1 leads alone through its grace period, then steps down
        "heal",
        "tick 200", "stabilize", "tick 200", "stabilize",
    ]:
        cmd, *args = line.split()
        env.run(cmd, args)
    n2 = env.nodes[2].node.raft
    assert n2.state == StateRole.LEADER or n2.conf_state().voters == (2,), "no leader, ever"
