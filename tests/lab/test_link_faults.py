"""Directed link faults and process pauses on a real 3-member cluster.

proxy(i->j) carries only what i sends to j, so a toxic on it acts in one direction: slowing the
leader's links to its followers slows every commit; blackholing them silences its heartbeats and
the followers elect another leader.
"""

from __future__ import annotations

import time

import pytest

from minietcd.errors import LabError
from minietcd.lab import probe
from minietcd.lab.faults import Faults
from tests.lab.conftest import LabFactory
from tests.lab.test_check_quorum_prevote import status, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def timed_put(port: int, key: str) -> float:
    start = time.monotonic()
    probe.put(port, key, "v", timeout=10.0)
    return time.monotonic() - start


def test_slow_blackhole_pause_and_errors(lab_cluster: LabFactory) -> None:
    cluster = lab_cluster(3, heartbeat_ms=50, election_ms=1000)
    faults = Faults(cluster)
    leader = cluster.wait_healthy(60.0)
    followers = [n for n in cluster.names if n != leader]
    port = cluster.member(leader).client_port

    # slow: what the leader sends to its followers arrives 400 ms late, so a put (committed when
    # a follower has the entry) takes at least that long. The reverse links are untouched.
    for f in followers:
        faults.slow((leader, f), 400, 0)
    in_force = faults.in_force()
    assert f"slow 400ms ->{followers[0]}" in in_force[leader]
    assert not any(x.startswith("slow") for f in followers for x in in_force[f])
    assert min(timed_put(port, f"slow{i}") for i in range(3)) >= 0.35
    for f in followers:
        assert faults.clear((leader, f)) == 1
    wait_for("puts to be fast again", lambda: timed_put(port, "fast") < 0.3)

    # blackhole: the leader's heartbeats are dropped; the followers elect one of their own.
    for f in followers:
        faults.blackhole((leader, f))
    new = wait_for(
        "a follower to become leader",
        lambda: next((n for n in followers if status(cluster, n).is_leader), None),
    )
    assert new in followers
    faults.reset()
    cluster.wait_healthy(60.0)

    # pause: a SIGSTOPped member answers nothing until it is resumed.
    follower = next(n for n in cluster.names if not status(cluster, n).is_leader)
    faults.pause([follower])
    assert cluster.process_state(follower) == "paused"
    with pytest.raises(probe.ProbeError):
        probe.status(cluster.member(follower).client_port, timeout=0.5)
    with pytest.raises(LabError, match="cannot pause"):
        faults.pause([follower])
    faults.resume([follower])
    cluster.wait_healthy(60.0)

    # Impossible requests are refused with a clear error.
    with pytest.raises(LabError, match="unknown member 'n9'"):
        faults.kill(["n9"])
    with pytest.raises(LabError, match="no link to itself"):
        faults.blackhole(("n1", "n1"))
    with pytest.raises(LabError, match="0 < p < 1"):
        faults.flaky(("n1", "n2"), 1.5)
    with pytest.raises(LabError, match="at least two groups"):
        faults.partition([cluster.names])
    with pytest.raises(LabError, match="cannot isolate every member"):
        faults.isolate(cluster.names)


def test_one_member_cluster_has_no_links(lab_cluster: LabFactory) -> None:
    cluster = lab_cluster(1)
    faults = Faults(cluster)
    with pytest.raises(LabError, match="no peer links"):
        faults.partition([["n1"], []])
    with pytest.raises(LabError, match="no peer links"):
        faults.slow(("n1", "n2"), 100)
    faults.kill(["n1"])
    with pytest.raises(LabError, match="not running"):
        faults.kill(["n1"])
    faults.restart(["n1"])
    assert cluster.wait_healthy(60.0) == "n1"
