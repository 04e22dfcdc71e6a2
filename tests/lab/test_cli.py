"""``minietcd-lab`` end to end: separate CLI invocations on one 3-member cluster.

Each command runs as its own ``python -m minietcd.lab`` process, as a user would run them; the
cluster is found again through the lab dir. The fault proxy is the built-in one (no
toxiproxy-server on PATH, no TOXIPROXY_URL), and what the commands did to the links is checked
by asking it through toxiproxy-python.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from toxiproxy import Toxiproxy

from minietcd.lab import probe, processes
from minietcd.lab.state import LabState
from minietcd.lab.toxiproxy import configure_client
from tests.lab.lab_cli import LabCli, local_env, one_leader, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

class Lab(LabCli):
    def __init__(self, lab_dir: Path) -> None:
        super().__init__(lab_dir, local_env(lab_dir))


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    lab = Lab(tmp_path / "lab")
    try:
        yield lab
    finally:
        if LabState.exists(lab.lab_dir):  # the test failed before `down`: kill what `up` started
            state = lab.state()
            for m in state.members:
                print(f"----- {m.name} -----\n" + Path(m.log_path).read_text(errors="replace")[-3000:])
            lab.run("down", ok=False)
            for ref in [m.process for m in state.members] + [state.toxiproxy_process]:
                processes.kill(ref)


def _proxies(state: LabState) -> dict[str, bool]:
    """``{"n1->n2": enabled}`` for this lab's link proxies, as toxiproxy-python reports them."""
    configure_client(state.toxiproxy_url)
    prefix = f"{state.proxy_prefix}-"
    out = {}
    for name, proxy in Toxiproxy().proxies().items():
        if name.startswith(prefix):
            src, dst = name[len(prefix) :].split("-")
            out[f"{src}->{dst}"] = bool(proxy.enabled)
    return out


def test_up_status_kill_restart_partition_heal_down(lab: Lab) -> None:
    out = lab.run("up", "--size", "3").stdout
    assert "export ETCDCTL_ENDPOINTS=http://127.0.0.1:" in out
    state = lab.state()
    assert [m.name for m in state.members] == ["n1", "n2", "n3"]
    proxy_ref = state.toxiproxy_process
    assert proxy_ref is not None and processes.alive(proxy_ref)
    assert "minietcd.lab.faultproxy" in Path(f"/proc/{proxy_ref.pid}/cmdline").read_text()

    # Every directed peer link has its own proxy, all enabled.
    links = _proxies(state)
    assert sorted(links) == ["n1->n2", "n1->n3", "n2->n1", "n2->n3", "n3->n1", "n3->n2"]
    assert all(links.values())

    rows = lab.status()
    assert sum(r["role"] == "leader" for r in rows.values()) == 1
    assert all(r["health"] == "ok" and r["process"] == "running" for r in rows.values())
    assert len({r["term"] for r in rows.values()}) == 1

    # kill: n1 goes down, the other two carry on.
    lab.run("kill", "n1")
    rows = lab.status()
    assert rows["n1"]["process"] == "killed" and rows["n1"]["role"] == "down"
    wait_for("n2 and n3 to agree on a leader", lambda: one_leader(lab.status(), ["n2", "n3"]))
    probe.put(state.member("n2").client_port, "k", "after-kill", timeout=10.0)

    # restart: n1 comes back on its data dir and catches up.
    lab.run("restart", "n1")
    wait_for("all three to agree on a leader", lambda: one_leader(lab.status(), ["n1", "n2", "n3"]))
    assert probe.get(state.member("n1").client_port, "k", timeout=10.0) == "after-kill"

    # partition n1 | n2,n3: the proxies of the four crossing links are disabled.
    r = lab.run("partition", "n1", "n2,n3")
    assert "n1 | n2,n3" in r.stdout
    links = _proxies(state)
    assert {k for k, enabled in links.items() if not enabled} == {"n1->n2", "n1->n3", "n2->n1", "n3->n1"}
    wait_for("n1 to lose its leader", lambda: lab.status()["n1"]["role"] == "no leader")
    leader = wait_for("n2,n3 to have a leader", lambda: one_leader(lab.status(), ["n2", "n3"]))
    assert leader in ("n2", "n3")
    rows = lab.status()
    assert "isolated" in rows["n1"]["faults"]
    assert rows["n1"]["health"] == "RAFT NO LEADER"

    # Clear errors for impossible requests; nothing changes.
    r = lab.run("kill", "n7", ok=False)
    assert r.returncode == 1 and "unknown member 'n7'" in r.stderr
    r = lab.run("partition", "n1,n2", "n2", ok=False)
    assert r.returncode == 1 and "more than one partition group" in r.stderr
    r = lab.run("slow", "n1->n1", ok=False)
    assert r.returncode == 1 and "no link to itself" in r.stderr
    r = lab.run("resume", "n2", ok=False)
    assert r.returncode == 1 and "not paused" in r.stderr

    # heal: every proxy enabled again, one leader for all three.
    lab.run("heal")
    assert all(_proxies(state).values())
    wait_for("all three to agree on a leader again", lambda: one_leader(lab.status(), ["n1", "n2", "n3"]))

    # down: members and the fault proxy it started are gone, and so is the state file.
    member_refs = [m.process for m in lab.state().members]
    out = lab.run("down").stdout
    assert "n1, n2, n3" in out and "toxiproxy" in out
    for ref in member_refs:
        assert ref is not None and not processes.alive(ref)
    assert processes.wait_gone(proxy_ref, 10.0)
    assert not LabState.exists(lab.lab_dir)
    assert (lab.lab_dir / "logs" / "n1.log").exists()
    r = lab.run("status", ok=False)
    assert r.returncode == 1 and "no cluster" in r.stderr
