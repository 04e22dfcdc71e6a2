"""Replacing a lab member the way etcd operators do (MemberRemove, wipe, MemberAdd the same name
and peer URL, start with ``--initial-cluster-state existing``): the new id is saved, the member
rejoins, and its peer links still go through their Toxiproxy proxies (routes are keyed by peer
URL, which a same-URL replacement keeps)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from minietcd.errors import LabError
from minietcd.lab import cli, probe
from minietcd.lab.cluster import Cluster, Replacement
from minietcd.lab.faults import Faults
from minietcd.lab.state import LabState, MemberState
from tests.lab.conftest import LabFactory


def _wait_no_leader(cluster: Cluster, name: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if probe.status(cluster.member(name).client_port, timeout=0.5).leader == 0:
                return
        except probe.ProbeError:
            pass
        time.sleep(0.1)  # poll pacing, bounded by the deadline
    raise AssertionError(f"{name} still follows a leader {timeout:.0f}s after being isolated")


def test_member_state_keeps_initial_cluster_state() -> None:
    m = MemberState("n3", 1, 2, 3, 0xABC, "/d", "/l", initial_cluster_state="existing")
    assert MemberState.from_json(m.to_json()).initial_cluster_state == "existing"
    old = m.to_json()
    del old["initial_cluster_state"]  # a lab.json written before replacements existed
    assert MemberState.from_json(old).initial_cluster_state == "new"


@pytest.mark.cluster
@pytest.mark.slow
def test_replace_member_rejoins_with_a_new_id_and_keeps_its_links(lab_cluster: LabFactory) -> None:
    cluster = lab_cluster(3)
    routes = {m.name: cluster.links.routes_for(m) for m in cluster.members}
    old_id, n1_id = cluster.member("n3").member_id, cluster.member("n1").member_id

    rep = cluster.replace_member("n3", timeout=30.0)

    assert rep.old_id == old_id and rep.new_id not in (0, old_id)
    saved = LabState.load(Path(cluster.state.lab_dir)).member("n3")
    assert saved.member_id == rep.new_id and saved.initial_cluster_state == "existing"
    assert "--initial-cluster-state existing" in " ".join(cluster.command(cluster.member("n3")))
    listed = probe.member_list(cluster.member("n1").client_port)
    assert sorted((m.name, m.id) for m in listed) == sorted((m.name, m.member_id) for m in cluster.members)
    assert {m.name: cluster.links.routes_for(m) for m in cluster.members} == routes
    probe.put(cluster.member("n3").client_port, "after", "replace", timeout=5.0)
    assert probe.get(cluster.member("n1").client_port, "after", timeout=5.0) == "replace"

    # Its links are still the proxies: isolating it cuts it off (it loses the leader), the
    # others carry on, and healing brings it back.
    faults = Faults(cluster)
    faults.isolate(["n3"])
    _wait_no_leader(cluster, "n3", 15.0)
    probe.put(cluster.member("n1").client_port, "while", "isolated", timeout=5.0)
    faults.heal()
    cluster.wait_healthy(30.0)
    assert probe.get(cluster.member("n3").client_port, "while", timeout=5.0) == "isolated"

    # A restart of the replaced member uses its data dir (no second join, same id).
    cluster.kill("n3")
    cluster.start("n3")
    cluster.wait_healthy(30.0)
    assert probe.status(cluster.member("n3").client_port).member_id == rep.new_id

    # The same from the command line, on another member.
    lab_dir = Path(cluster.state.lab_dir)
    assert cli.main(["--lab-dir", str(lab_dir), "replace", "n1", "--timeout", "30"]) == 0
    cluster.state.members[:] = LabState.load(lab_dir).members  # the fixture brings these down
    assert cluster.member("n1").member_id not in (0, n1_id)
    cluster.wait_healthy(30.0)
    assert cli.main(["--lab-dir", str(lab_dir), "replace", "n9"]) == 1


def test_remove_refuses_to_shrink_a_two_member_cluster(tmp_path: Path) -> None:
    state = LabState(str(tmp_path), "tkn", 50, 500, False, "http://127.0.0.1:1", "lab-x")
    state.members = [MemberState(f"n{i}", 1, 2, 3, i, "/d", "/l") for i in (1, 2)]
    with pytest.raises(LabError, match="fewer than 2"):
        Cluster(state).remove_member(Replacement("n2", 2))
