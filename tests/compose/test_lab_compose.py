"""``minietcd-lab --compose``: the lab's commands and its fault table on docker compose clusters.

Each command runs as its own ``python -m minietcd.lab --compose`` process, as a user would run
them, on a lab dir of the test's own; the cluster is found again through ``<lab dir>/compose``.
Needs docker and a compose (``tools`` in conftest.py: a failure in CI, a skip elsewhere). Every
compose project a test starts is removed when it ends, pass or fail: the lab records a project
(``compose.json``) before starting it, and the fixture removes every one it finds.
"""

from __future__ import annotations

import json
import shlex
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from minietcd.lab import probe
from minietcd.lab.compose import STATE_FILE, ComposeState, compose_args, remove_project
from minietcd.lab.fault_table import DOCUMENTED, VARIANTS
from minietcd.lab.state import LabState
from tests.compose.docker_env import Tools, run
from tests.lab.lab_cli import LabCli, one_leader, wait_for

pytestmark = [pytest.mark.compose, pytest.mark.slow]


class Lab(LabCli):
    """``minietcd-lab --compose ...`` on a lab dir of the test's own."""

    def __init__(self, tools: Tools, base: Path) -> None:
        env = {k: v for k, v in tools.env.items() if not k.startswith("ETCD")}
        env["MINIETCD_LAB_DIR"] = str(base)
        env["MINIETCD_COMPOSE"] = shlex.join(tools.compose)
        super().__init__(base / "compose", env, prefix=["--compose"], timeout=300)  # --compose's dir
        self.base = base

    def compose_state(self) -> ComposeState:
        return ComposeState.load(self.lab_dir)


@pytest.fixture
def lab(tools: Tools, tmp_path: Path) -> Iterator[Lab]:
    lab = Lab(tools, tmp_path / "lab")
    try:
        yield lab
    finally:
        # Whatever the test left running (a failed `down`, a killed fault table): remove it.
        for state_file in sorted(lab.base.rglob(STATE_FILE)):
            cs = ComposeState.load(state_file.parent)
            logs = run(compose_args(cs, "logs", "--no-color", "--tail", "30"), env=cs.env(), check=False)
            print(f"--- leftover project {cs.project} ---\n{logs.stdout}{logs.stderr}")
            left = remove_project(cs)
            assert not left, f"could not remove project {cs.project}: {left}"


def _containers(project: str) -> list[str]:
    out = run(["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={project}"]).stdout
    return out.split()


def _docker_state(cid: str) -> str:
    return run(["docker", "inspect", "--format", "{{.State.Status}}", cid]).stdout.strip()


def _proxies(state: LabState) -> dict[str, bool]:
    """``{"n1->n2": enabled}`` as the project's Toxiproxy (published API port) reports them."""
    with urllib.request.urlopen(f"{state.toxiproxy_url}/proxies", timeout=5) as r:
        data = json.load(r)
    return {name.replace("-", "->"): bool(p["enabled"]) for name, p in data.items()}


def test_lab_commands_on_a_compose_cluster(lab: Lab) -> None:
    started = time.monotonic()
    out = lab.run("up", "--size", "3").stdout
    assert "3-member compose cluster up" in out, out
    assert "export ETCDCTL_ENDPOINTS=http://127.0.0.1:" in out
    state, cs = lab.state(), lab.compose_state()
    assert [m.name for m in state.members] == ["n1", "n2", "n3"]
    assert sorted(cs.containers) == ["n1", "n2", "n3", "toxiproxy", "toxiproxy-links"]
    assert len(_containers(cs.project)) == 5
    port = {m.name: m.client_port for m in state.members}

    # Every directed peer link has its own proxy in the project's Toxiproxy, all enabled.
    links = _proxies(state)
    assert sorted(links) == ["n1->n2", "n1->n3", "n2->n1", "n2->n3", "n3->n1", "n3->n2"]
    assert all(links.values())

    rows = lab.status()
    leader = next(n for n, r in rows.items() if r["role"] == "leader")
    assert sum(r["role"] == "leader" for r in rows.values()) == 1
    assert all(r["health"] == "ok" and r["process"] == "running" for r in rows.values()), rows

    # kill the leader: docker kill, the container stays down, the other two carry on.
    others = [n for n in ("n1", "n2", "n3") if n != leader]
    lab.run("kill", leader)
    assert _docker_state(cs.containers[leader]) == "exited"
    rows = lab.status()
    assert rows[leader]["process"] == "killed" and rows[leader]["role"] == "down"
    wait_for(f"{others} to agree on a leader", lambda: one_leader(lab.status(), others))
    probe.put(port[others[0]], "k", "after-kill", timeout=10.0)

    # restart: docker start on the same volume; it catches up.
    lab.run("restart", leader)
    assert _docker_state(cs.containers[leader]) == "running"
    wait_for("all three to agree on a leader", lambda: one_leader(lab.status(), ["n1", "n2", "n3"]))
    assert probe.get(port[leader], "k", timeout=10.0) == "after-kill"

    # pause / resume: docker pause / unpause.
    lab.run("pause", "n2")
    assert _docker_state(cs.containers["n2"]) == "paused"
    assert lab.status()["n2"]["process"] == "paused"
    lab.run("resume", "n2")
    assert _docker_state(cs.containers["n2"]) == "running"

    # partition n1 | n2,n3: the proxies of the four crossing links are disabled.
    r = lab.run("partition", "n1", "n2,n3")
    assert "n1 | n2,n3" in r.stdout
    links = _proxies(state)
    assert {k for k, enabled in links.items() if not enabled} == {"n1->n2", "n1->n3", "n2->n1", "n3->n1"}
    wait_for("n1 to lose its leader", lambda: lab.status()["n1"]["role"] == "no leader")
    wait_for("n2,n3 to have a leader", lambda: one_leader(lab.status(), ["n2", "n3"]))
    rows = lab.status()
    assert "isolated" in rows["n1"]["faults"] and rows["n1"]["health"] == "RAFT NO LEADER", rows
    probe.put(port["n2"], "k", "after-partition", timeout=10.0)

    # A toxic on one link, shown in status and cleared.
    lab.run("slow", "n2", "n3", "--latency", "50ms")
    assert "slow 50ms ->n3" in lab.status()["n2"]["faults"]
    assert "1 toxic(s) removed" in lab.run("clear", "n2", "n3").stdout

    # Clear errors for impossible requests.
    r = lab.run("kill", "n7", ok=False)
    assert r.returncode == 1 and "unknown member 'n7'" in r.stderr and "Traceback" not in r.stderr
    r = lab.run("resume", "n2", ok=False)
    assert r.returncode == 1 and "not paused" in r.stderr

    # heal: every proxy enabled again, one leader for all three, n1 has the write it missed.
    lab.run("heal")
    assert all(_proxies(state).values())
    wait_for("all three to agree on a leader again", lambda: one_leader(lab.status(), ["n1", "n2", "n3"]))
    assert probe.get(port["n1"], "k", timeout=10.0) == "after-partition"

    # down: the project is gone (containers, volumes), the logs are kept, the state is gone.
    out = lab.run("down").stdout
    assert "n1, n2, n3" in out and cs.project in out
    assert _containers(cs.project) == []
    volumes = run(
        ["docker", "volume", "ls", "-q", "--filter", f"label=com.docker.compose.project={cs.project}"]
    )
    assert volumes.stdout.split() == []
    assert not LabState.exists(lab.lab_dir) and not (lab.lab_dir / STATE_FILE).exists()
    assert (
        "became leader"
        in (lab.lab_dir / "logs" / "n1.log").read_text()
        + (lab.lab_dir / "logs" / "n2.log").read_text()
        + (lab.lab_dir / "logs" / "n3.log").read_text()
    )
    r = lab.run("status", ok=False)
    assert r.returncode == 1 and "no compose cluster" in r.stderr
    print(f"minietcd-lab --compose up..down on 3 members: {time.monotonic() - started:.1f}s")


def test_fault_table_in_containers(lab: Lab, tmp_path: Path) -> None:
    """etcd's table for 3 and 5 members in containers: kill, partition and partition-leader."""
    table = tmp_path / "table.json"
    started = time.monotonic()
    r = lab.run("fault-table", "--sizes", "3,5", "--json", str(table), ok=False, timeout=900)
    took = time.monotonic() - started
    print(r.stdout, r.stderr[-3000:], f"fault-table --compose --sizes 3,5: {took:.0f}s", sep="\n")
    assert r.returncode == 0, f"exit status {r.returncode}\n{r.stdout}\n{r.stderr[-5000:]}"
    assert "all as documented" in r.stdout and "in containers" in r.stdout
    data = json.loads(table.read_text())
    assert data["ok"] and data["options"]["backend"] == "compose"
    assert [s["size"] for s in data["sizes"]] == [3, 5]
    for s in data["sizes"]:
        majority, tolerance = DOCUMENTED[s["size"]]
        assert s["majority"] == majority and s["failures_tolerated_documented"] == tolerance
        assert s["failures_tolerated_observed"] == {v: tolerance for v in VARIANTS}, s
        for v in s["variants"]:
            assert v["converged"], v["convergence"]
            assert [st["observed"] for st in v["steps"]] == [
                s["size"] - k >= majority for k in range(s["size"] + 1)
            ]
    # Every size's project was removed by the table itself.
    assert not list(lab.base.rglob(STATE_FILE))
