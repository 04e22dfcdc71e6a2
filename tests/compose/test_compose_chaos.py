"""``minietcd-lab --compose replace`` and ``--compose chaos``: the member replacement and the chaos
run with its checkers, on containers (new container and data volume for a replaced member)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from minietcd.lab import probe
from minietcd.lab.compose import STATE_FILE
from tests.compose import test_lab_compose
from tests.compose.docker_env import run
from tests.compose.test_lab_compose import Lab
from tests.lab.lab_cli import one_leader, wait_for

pytestmark = [pytest.mark.compose, pytest.mark.slow]
lab = test_lab_compose.lab  # the same fixture: a lab dir of the test's own; removes what a test left


def _volumes(project: str) -> list[str]:
    out = run(["docker", "volume", "ls", "-q", "--filter", f"label=com.docker.compose.project={project}"])
    return sorted(out.stdout.split())


def test_replace_a_member_of_a_compose_cluster(lab: Lab) -> None:
    lab.run("up", "--size", "3")
    state, cs = lab.state(), lab.compose_state()
    port = {m.name: m.client_port for m in state.members}
    probe.put(port["n1"], "k", "before", timeout=10.0)
    old_container = cs.containers["n2"]

    out = lab.run("replace", "n2").stdout
    match = re.match(r"replaced n2 (?:\(leader\) )?([0-9a-f]+) -> ([0-9a-f]+) ", out)
    assert match and match.group(1) == f"{state.member('n2').member_id:x}", out
    new_id = int(match.group(2), 16)
    assert new_id != state.member("n2").member_id
    # A new container on a new volume, joined with --initial-cluster-state=existing.
    cs = lab.compose_state()
    assert cs.containers["n2"] != old_container
    assert f"{cs.project}_n2-data" in _volumes(cs.project)
    assert "--initial-cluster-state=existing" in Path(cs.file).read_text()
    assert {m.id for m in probe.member_list(port["n1"])} == {
        state.member("n1").member_id, new_id, state.member("n3").member_id
    }
    wait_for("all three to agree on a leader", lambda: one_leader(lab.status(), ["n1", "n2", "n3"]))
    assert probe.get(port["n2"], "k", timeout=10.0) == "before"  # caught up
    # It can be killed and restarted like any member: docker start of its new container.
    lab.run("restart", "n2")
    wait_for("n2 back", lambda: one_leader(lab.status(), ["n1", "n2", "n3"]))

    lab.run("down")
    # Every run of n2 is in its log: its first container, the new one, and its restart.
    log = (lab.lab_dir / "logs" / "n2.log").read_text()
    assert log.count("etcdmain: etcd Version") == 3, log[-3000:]
    assert _volumes(cs.project) == []


def test_chaos_in_containers(lab: Lab, tmp_path: Path) -> None:
    r = lab.run(
        "chaos", "--size", "3", "--duration", "20s", "--seed", "7",
        "--nemesis", "member-replace,kill,pause,partition", "--clients-per-member", "1",
        ok=False, timeout=600,
    )  # fmt: skip
    print(r.stdout, r.stderr[-5000:], sep="\n")
    assert r.returncode == 0, f"exit status {r.returncode}\n{r.stdout}\n{r.stderr[-5000:]}"
    assert "verdict: OK: no violation" in r.stdout
    assert re.search(r"membership: ok \(3 in MemberList, 3 started, expected 3\)", r.stdout)
    found = re.search(r"faults injected: (\d+)", r.stdout)
    assert found is not None, r.stdout
    faults = int(found.group(1))
    assert faults >= 2
    assert "compose/chaos" in r.stderr  # the run's cluster was a compose one, in <lab dir>/compose/chaos
    assert not list(lab.base.rglob(STATE_FILE))  # its project is removed
