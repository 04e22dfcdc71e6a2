"""Replacing a lab member the way etcd operators do (MemberRemove, wipe, MemberAdd the same name
and peer URL, start with ``--initial-cluster-state existing``): the new id is saved, the member
rejoins, and its peer links still go through their Toxiproxy proxies (routes are keyed by peer
URL, which a same-URL replacement keeps)."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from minietcd.errors import LabError
from minietcd.lab import cli, probe
from minietcd.lab.chaos import ChaosOptions
from minietcd.lab.chaos_nemesis import Nemesis
from minietcd.lab.cluster import Cluster, Replacement, outcome_unknown
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


# --- membership changes whose answer was lost (fake probe: no cluster) -----------------------------

TIMED_OUT = "DEADLINE_EXCEEDED: Deadline Exceeded"


def _fake_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int = 3) -> Cluster:
    """A lab state of ``size`` members that all count as running; no process, no Toxiproxy."""
    state = LabState(str(tmp_path), "tkn", 50, 500, False, "http://127.0.0.1:1", "lab-x")
    state.members = [
        MemberState(f"n{i}", 100 + i, 200 + i, 300 + i, i, str(tmp_path / f"d{i}"), str(tmp_path / f"{i}.l"))
        for i in range(1, size + 1)
    ]
    monkeypatch.setattr(Cluster, "process_state", lambda self, name: "running")
    return Cluster(state)


class FakeMembership:
    """The fake probe: what the survivors list is ``members`` (id -> peer URL) as committed,
    seen at once by the members in ``current`` and never by the others (laggards still list
    ``stale``). ``commit`` says whether a MemberRemove / MemberAdd commits; every one's answer
    is lost (a timeout) unless ``answer`` is set."""

    def __init__(self, cluster: Cluster, current: set[str] | None = None, commit: bool = True) -> None:
        self.ports = {m.client_port: m.name for m in cluster.members}
        self.members = {m.member_id: m.peer_url for m in cluster.members}
        self.stale = dict(self.members)
        self.current = current if current is not None else set(self.ports.values())
        self.commit = commit
        self.answer = False
        self.lists: list[str] = []  # who was asked for MemberList

    def install(self, monkeypatch: pytest.MonkeyPatch) -> FakeMembership:
        for name in ("member_list", "member_remove", "member_add"):
            monkeypatch.setattr(probe, name, getattr(self, name))
        return self

    def member_list(self, port: int, timeout: float = 2.0) -> list[probe.ListedMember]:
        name = self.ports[port]
        self.lists.append(name)
        seen = self.members if name in self.current else self.stale
        return [probe.ListedMember(i, "", (url,), False) for i, url in seen.items()]

    def member_remove(self, port: int, member_id: int, timeout: float = 5.0) -> None:
        if self.commit:
            self.members.pop(member_id, None)
        if not self.answer:
            raise probe.ProbeError(TIMED_OUT)

    def member_add(self, port: int, peer_urls: list[str], timeout: float = 5.0) -> int:
        if self.commit:
            self.members[0x99] = peer_urls[0]
        if not self.answer:
            raise probe.ProbeError(TIMED_OUT)
        return 0x99


def test_a_timed_out_removal_that_committed_counts_as_done(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every MemberRemove times out, but the first one committed: the survivors' MemberList no
    # longer has the id, so the removal is done (not "still refused" at the deadline).
    cluster = _fake_cluster(tmp_path, monkeypatch)
    fake = FakeMembership(cluster).install(monkeypatch)
    rep = Replacement("n3", 3)
    cluster.remove_member(rep, timeout=0.5)
    assert rep.removed_via == "n1" and rep.refusals == [f"remove via n1: {TIMED_OUT}"]
    assert 3 not in fake.members


def test_a_lagging_survivor_does_not_hide_a_removal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # n1 has not applied the removal yet (still lists the id); n2 has: n2 decides.
    cluster = _fake_cluster(tmp_path, monkeypatch)
    fake = FakeMembership(cluster, current={"n2"}).install(monkeypatch)
    rep = Replacement("n3", 3)
    cluster.remove_member(rep, timeout=0.5)
    assert rep.removed_via == "n2" and fake.lists == ["n1", "n2"]


def test_a_removal_that_did_not_commit_is_still_refused_at_the_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster = _fake_cluster(tmp_path, monkeypatch)
    fake = FakeMembership(cluster, commit=False).install(monkeypatch)
    rep = Replacement("n3", 3)
    with pytest.raises(LabError, match=r"remove n3: still refused .*MemberList: n1's does not show it"):
        cluster.remove_member(rep, timeout=0.5)
    assert not rep.removed_via and 3 in fake.members


def test_a_timed_out_add_that_committed_takes_the_listed_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster = _fake_cluster(tmp_path, monkeypatch)
    url = cluster.member("n3").peer_url
    fake = FakeMembership(cluster, current={"n2"}).install(monkeypatch)  # n1 still lists id 3 at url
    del fake.members[3]
    rep = Replacement("n3", 3)
    assert cluster.add_member(rep, timeout=0.5) == 0x99
    assert (rep.added_via, rep.new_id) == ("n2", 0x99) and fake.members[0x99] == url
    saved = LabState.load(tmp_path).member("n3")
    assert saved.member_id == 0x99 and saved.initial_cluster_state == "existing"


def test_an_add_not_in_member_list_is_still_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Only the removed id carries the peer URL (a lagging list): that is not the add.
    cluster = _fake_cluster(tmp_path, monkeypatch)
    FakeMembership(cluster, commit=False).install(monkeypatch)
    rep = Replacement("n3", 3)
    with pytest.raises(LabError, match="add n3: still refused"):
        cluster.add_member(rep, timeout=0.5)
    assert rep.new_id == 0 and cluster.member("n3").member_id == 3


def test_outcome_unknown_tells_timeouts_from_refusals() -> None:
    assert outcome_unknown(TIMED_OUT)
    assert outcome_unknown("UNAVAILABLE: etcdserver: request timed out")
    assert outcome_unknown("UNAVAILABLE: etcdserver: leader changed")
    assert not outcome_unknown("UNAVAILABLE: etcdserver: unhealthy cluster")
    assert not outcome_unknown("UNAVAILABLE: failed to connect to all addresses; connection refused")
    assert not outcome_unknown("NOT_FOUND: etcdserver: member not found")  # not retriable at all


def test_the_nemesis_goes_on_with_a_removal_whose_answer_was_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The chaos member-replace: the removal timed out but committed. It must be recorded as a
    # replacement in progress (wipe now, add back on undo), not "NOT replaced".
    cluster = _fake_cluster(tmp_path, monkeypatch)
    fake = FakeMembership(cluster).install(monkeypatch)  # the add's answer is lost too: MemberList has it
    started: list[str] = []
    monkeypatch.setattr(Cluster, "leader", lambda self, timeout=0.5: None)
    monkeypatch.setattr(Cluster, "start", lambda self, name: started.append(name))
    for m in cluster.members:
        Path(m.log_path).write_text("")
    opts = ChaosOptions(lab_dir=tmp_path, size=3, nemeses=("member-replace",), replace_timeout=0.5)
    nemesis = Nemesis(opts, cluster, random.Random(1), 0.0)
    got = nemesis._begin_replace()
    assert got is not None
    fault, undo = got
    rep = fault.replacement
    assert rep is not None and "NOT replaced" not in fault.describe(), fault.describe()
    assert nemesis.replacements == [rep] and fake.members.keys() == {1, 2, 3} - {rep.old_id}
    undo()
    assert rep.new_id == 0x99 and rep.started and started == [rep.name]
