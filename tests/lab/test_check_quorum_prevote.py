"""Check-quorum and pre-vote on real processes, the leader cut off through Toxiproxy.

A leader isolated by a partition steps down by itself (check-quorum), the majority elects a new
leader, and when the partition heals the old leader rejoins as a follower without disrupting the
new one: with --pre-vote its term did not grow while it was cut off, so it cannot force an
election on its return.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from minietcd.lab import probe
from minietcd.lab.cluster import Cluster
from minietcd.lab.faults import Faults
from tests.lab.conftest import LabFactory

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

DEADLINE = 60.0  # generous: the machine is shared with other test runs
T = TypeVar("T")


def wait_for(what: str, fn: Callable[[], T | None], timeout: float = DEADLINE) -> T:
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            result = fn()
        except probe.ProbeError as e:
            result, last = None, e
        if result is not None and result is not False:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last error: {last})")
        time.sleep(0.05)


def status(cluster: Cluster, name: str) -> probe.Status:
    return probe.status(cluster.member(name).client_port)


def test_isolated_leader_steps_down_and_rejoins_without_disruption(lab_cluster: LabFactory) -> None:
    cluster = lab_cluster(3, pre_vote=True, heartbeat_ms=50, election_ms=500)
    faults = Faults(cluster)
    old = cluster.wait_healthy(60.0)
    old_id = cluster.member(old).member_id
    old_term = status(cluster, old).term
    rest = [n for n in cluster.names if n != old]

    faults.isolate([old])

    # check-quorum: the old leader hears from no majority and steps down by itself.
    wait_for(f"{old} to step down", lambda: status(cluster, old).leader == 0)
    # The majority elects one of its own.
    new = wait_for(
        "the majority to elect a new leader",
        lambda: next((n for n in rest if status(cluster, n).is_leader), None),
    )
    assert new != old
    new_id = cluster.member(new).member_id
    wait_for(
        "both majority members to follow the new leader",
        lambda: all(status(cluster, n).leader == new_id for n in rest),
    )
    new_term = status(cluster, new).term
    assert new_term > old_term
    probe.put(cluster.member(new).client_port, "after-isolation", "v", timeout=5.0)

    # Pre-vote: while cut off, the old leader's pre-votes fail and its term does not grow.
    watch_until = time.monotonic() + 6 * cluster.state.election_ms / 1000
    while time.monotonic() < watch_until:
        st = status(cluster, old)
        assert st.term == old_term, f"isolated {old} moved to term {st.term} (pre-vote should prevent it)"
        assert st.leader == 0
        time.sleep(0.1)
    log = Path(cluster.member(old).log_path).read_text()
    assert "check-quorum" in log, "the old leader's log should say why it stepped down"
    assert "starts a pre-vote" in log

    faults.heal()

    # The old leader rejoins as a follower of the new one and catches up...
    wait_for(f"{old} to follow {new}", lambda: status(cluster, old).leader == new_id)
    target = status(cluster, new).raft_index
    wait_for(f"{old} to catch up", lambda: status(cluster, old).applied_index >= target)
    assert probe.get(cluster.member(old).client_port, "after-isolation", timeout=5.0) == "v"
    # ...without disrupting it: same leader, same term, on every member, for a while.
    watch_until = time.monotonic() + 6 * cluster.state.election_ms / 1000
    while time.monotonic() < watch_until:
        for n in cluster.names:
            st = status(cluster, n)
            assert (st.leader, st.term) == (new_id, new_term), (
                f"{n} sees leader {st.leader:x} at term {st.term} after the heal; "
                f"expected {new} ({new_id:x}) at term {new_term}"
            )
        time.sleep(0.1)
    assert old_id != new_id
