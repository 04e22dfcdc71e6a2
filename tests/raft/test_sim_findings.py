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
