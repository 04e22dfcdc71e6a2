"""The fault-tolerance table, at the level of the Raft core.

A cluster of N voters needs a majority, ``N // 2 + 1``, to elect a leader and to commit. So
with k members crashed, a new proposal commits iff ``N - k >= N // 2 + 1``:

    N          1  2  3  4  5  6  7  8  9
    majority   1  2  2  3  3  4  4  5  5
    tolerates  0  0  1  1  2  2  3  3  4   crashed members

(Even sizes buy nothing: 4 tolerates one failure, like 3.) The same arithmetic says a network
split evenly (2|2, 3|3, 4|4) leaves *no* side with a majority: nobody may lead, nothing may
commit; and a minority side never commits, even if the old leader is on it.

Each case runs on the simulator's cluster with a fault-free network, so every safety check
of the simulator also runs here.
"""

from __future__ import annotations

import random

import pytest

from minietcd.raft.quorum import failures_tolerated, majority
from minietcd.raft.types import StateRole
from tests.raft.sim.cluster import Cluster, NodeOptions
from tests.raft.sim.network import Network

ELECTION = NodeOptions().election_tick
SETTLE = 10 * ELECTION  # ticks to (re-)elect a leader if one can be elected
WAIT = 10 * ELECTION  # ticks a proposal gets to commit


def new_cluster(n: int, seed: int) -> Cluster:
    c = Cluster(rng=random.Random(seed), net=Network(random.Random(seed)))
    c.bootstrap(n)
    return c


def elect(c: Cluster) -> int:
    for _ in range(SETTLE):
        c.run_ticks(1)
        ld = c.leader()
        if ld is not None:
            return ld.id
    raise AssertionError("no leader in a healthy cluster")


def try_to_commit(c: Cluster, data: bytes, nodes: list[int]) -> bool:
    """A client that keeps proposing ``data`` through ``nodes`` (each in turn) while waiting:
    True if any of them ends up applying it."""
    for t in range(WAIT):
        c.propose(nodes[t % len(nodes)], [data])
        c.run_ticks(1)
        if any(data in c.nodes[i].sm.payloads for i in nodes):
            return True
    return False


def cases() -> list[tuple[int, int, str]]:
    out = []
    for n in range(1, 10):
        out.append((n, 0, "none"))
        out += [(n, k, "with-leader") for k in range(1, n + 1)]
        out += [(n, k, "followers-only") for k in range(1, n)]
    return out


@pytest.mark.parametrize(("n", "k", "who"), cases(), ids=[f"N={n}-k={k}-{w}" for n, k, w in cases()])
def test_commit_iff_a_majority_survives(n: int, k: int, who: str) -> None:
    c = new_cluster(n, seed=100 * n + k)
    leader = elect(c)
    others = [i for i in sorted(c.nodes) if i != leader]
    victims = [leader, *others[: k - 1]] if who == "with-leader" else others[:k]
    for v in victims:
        c.crash(v)
    survivors = [i for i in sorted(c.nodes) if i not in victims]
    c.run_ticks(SETTLE)  # time for check-quorum to depose a lonely leader, or to re-elect
    expected = n - k >= majority(n)
    committed = bool(survivors) and try_to_commit(c, b"probe", survivors)
    assert committed == expected, (
        f"N={n} with {k} crashed ({who}): commit={committed}, but the majority of {n} is "
        f"{majority(n)} (tolerates {failures_tolerated(n)})"
    )


def test_table_matches_the_docstring() -> None:
    assert [majority(n) for n in range(1, 10)] == [1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert [failures_tolerated(n) for n in range(1, 10)] == [0, 0, 1, 1, 2, 2, 3, 3, 4]


# -- network splits ------------------------------------------------------------------------------


def leaders_among(c: Cluster, group: list[int]) -> list[int]:
    return [i for i in group if c.nodes[i].up and c.nodes[i].node.raft.state == StateRole.LEADER]


@pytest.mark.parametrize("n", [4, 6, 8])
@pytest.mark.parametrize("when", ["from-boot", "after-election"])
def test_even_split_elects_nobody_and_commits_nothing(n: int, when: str) -> None:
    c = new_cluster(n, seed=n)
    if when == "after-election":
        elect(c)
        # Put the leader in the first half, so that half starts out *with* a leader.
        ld = c.leader()
        assert ld is not None
        ids = [ld.id, *(i for i in sorted(c.nodes) if i != ld.id)]
    else:
        ids = sorted(c.nodes)
    a, b = ids[: n // 2], ids[n // 2 :]
    c.net.partition([frozenset(a), frozenset(b)])
    # A leader cut off from a majority steps down within an election timeout (check-quorum).
    c.run_ticks(2 * ELECTION)
    committed_before = {i: c.nodes[i].node.raft.raft_log.committed for i in ids}
    for t in range(10 * ELECTION):
        assert not leaders_among(c, a) and not leaders_among(c, b), f"a leader at tick {t}"
        for side in (a, b):
            c.propose(side[t % len(side)], [f"x{t}".encode()])
        c.run_ticks(1)
    for i in ids:
        assert not any(p.startswith(b"x") for p in c.nodes[i].sm.payloads)
        assert c.nodes[i].node.raft.raft_log.committed == committed_before[i]


@pytest.mark.parametrize("n", [3, 5, 7, 9])
def test_minority_side_never_commits_even_with_the_old_leader(n: int) -> None:
    c = new_cluster(n, seed=n)
    leader = elect(c)
    others = [i for i in sorted(c.nodes) if i != leader]
    minority = [leader, *others[: majority(n) - 2]]  # the largest group short of a majority
    rest = [i for i in sorted(c.nodes) if i not in minority]
    assert len(minority) < majority(n) <= len(rest)
    c.net.partition([frozenset(minority), frozenset(rest)])
    assert not try_to_commit(c, b"minority", minority)
    assert try_to_commit(c, b"majority", rest)
    assert not any(b"minority" in c.nodes[i].sm.payloads for i in c.nodes)
    # Heal: the old leader's uncommitted proposals are overwritten, the majority's survive.
    c.net.heal()
    c.run_ticks(SETTLE)
    for i in sorted(c.nodes):
        assert b"majority" in c.nodes[i].sm.payloads
        assert b"minority" not in c.nodes[i].sm.payloads
