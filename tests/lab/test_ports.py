"""The lab on a machine several people share: port ranges (``--port-base`` / ``--port-range`` and
their env vars), lab dirs of their own, runs that refuse to trample each other.

The clusters here use ports 7200-7599: the range this test suite keeps for port-base tests.
It lies below both the kernel's ephemeral ports (32768-60999 on Linux, where every other test's
free ports and every outgoing connection come from) and the lab's own random choices
(10000-32767), so nothing else in a run can be holding one of them by chance.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from minietcd.errors import LabError
from minietcd.lab import probe, processes
from minietcd.lab.cluster import Cluster, ClusterSpec
from minietcd.lab.labdir import default_lab_dir, exclusive
from minietcd.lab.ports import PORT_BASE_ENV, PORT_RANGE_ENV, PortPlan, cluster_purposes
from minietcd.lab.state import LabState
from tests.lab.lab_cli import LabCli, local_env

BASE_A, BASE_B, BASE_C = 7200, 7300, 7400


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A socket listening on 127.0.0.1 (bind it with ``listener.bind``... before use)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        yield s
    finally:
        s.close()


# --- no processes ----------------------------------------------------------------------------


def test_exact_plan_hands_out_ports_in_order() -> None:
    purposes = ["toxiproxy API", *cluster_purposes(["n1", "n2"])]
    assert purposes[1:4] == ["n1 client", "n1 peer", "n1 metrics"]
    assert purposes[-2:] == ["link n1->n2", "link n2->n1"]
    assert PortPlan(BASE_C).take(purposes) == list(range(BASE_C, BASE_C + 9))


def test_a_taken_port_is_one_line_naming_it(listener: socket.socket) -> None:
    listener.bind(("127.0.0.1", BASE_C + 2))
    listener.listen()
    purposes = ["toxiproxy API", *cluster_purposes(["n1", "n2"])]
    with pytest.raises(LabError) as e:
        PortPlan(BASE_C).take(purposes)
    assert str(e.value) == (
        f"port {BASE_C + 2} (n1 peer) is already in use: choose another --port-base than {BASE_C}, "
        "or give a --port-range to skip ports in use"
    )
    # With a range, the port in use is skipped.
    ports = PortPlan(BASE_C, 20).take(purposes)
    assert BASE_C + 2 not in ports and ports[:2] == [BASE_C, BASE_C + 1] and len(ports) == 9
    with pytest.raises(LabError, match=r"is too small: this cluster needs 9 ports \(1 for the Toxiproxy API"):
        PortPlan(BASE_C, 5).take(purposes)
    with pytest.raises(LabError, match="only 8 of the 9 ports"):
        PortPlan(BASE_C, 9).take(purposes)


def test_bad_plans() -> None:
    for base, span, message in (
        (80, None, "between 1024 and 65535"),
        (65500, 100, "past port 65535"),
        (45000, 0, "at least 1"),
    ):
        with pytest.raises(LabError, match=message):
            PortPlan(base, span)
    assert PortPlan(45000, 100).after(1) == PortPlan(45001, 99)


def test_default_lab_dir_is_per_port_base(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MINIETCD_LAB_DIR", raising=False)
    uid = os.getuid()
    assert default_lab_dir() == Path(f"/tmp/minietcd-lab-{uid}")
    assert default_lab_dir(PortPlan(45000)) == Path(f"/tmp/minietcd-lab-{uid}-p45000")
    monkeypatch.setenv("MINIETCD_LAB_DIR", "/somewhere")
    assert default_lab_dir(PortPlan(45000)) == Path("/somewhere")


def test_a_second_run_in_the_same_work_dir_is_refused(tmp_path: Path) -> None:
    with exclusive(tmp_path, "chaos"):
        # Another process tries the same dir while this one holds it.
        code = (
            "import sys; from pathlib import Path; from minietcd.lab.labdir import exclusive\n"
            "from minietcd.errors import LabError\n"
            "try:\n"
            f"    with exclusive(Path({str(tmp_path)!r}), 'chaos'): print('got it')\n"
            "except LabError as e: print(e)\n"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        assert out.startswith(f"another chaos run (pid {os.getpid()}) is using {tmp_path}"), out
    with exclusive(tmp_path, "chaos"):  # released when the first run ended
        pass


# --- real clusters ---------------------------------------------------------------------------


def _cleanup(lab_dir: Path) -> None:
    if LabState.exists(lab_dir):
        state = LabState.load(lab_dir)
        for ref in [m.process for m in state.members] + [state.toxiproxy_process]:
            processes.kill(ref)


@pytest.mark.cluster
def test_two_clusters_started_at_once_on_different_port_bases(tmp_path: Path) -> None:
    """One by ``--port-base/--port-range``, one by the env vars, both at the same moment: each
    opens every port in its own range, and each is a cluster of its own."""
    labs = {b: LabCli(tmp_path / f"lab{b}", local_env(tmp_path / f"lab{b}")) for b in (BASE_A, BASE_B)}
    labs[BASE_B].env.update({PORT_BASE_ENV: str(BASE_B), PORT_RANGE_ENV: "100"})
    argv = {BASE_A: ["--port-base", str(BASE_A), "--port-range", "100", "up", "--size", "3"], BASE_B: ["up"]}
    try:
        procs = {
            base: subprocess.Popen(
                [sys.executable, "-m", "minietcd.lab", *argv[base]],
                env=lab.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for base, lab in labs.items()
        }
        for base, proc in procs.items():
            out, _ = proc.communicate(timeout=180)
            assert proc.returncode == 0, f"up on port base {base} failed:\n{out}"
        members: set[int] = set()
        for base, lab in labs.items():
            state = lab.state()
            ports = [int(state.toxiproxy_url.rsplit(":", 1)[1])]
            ports += [p for m in state.members for p in (m.client_port, m.peer_port, m.metrics_port)]
            ports += [link.port for link in state.links]
            assert len(ports) == 1 + 9 + 6 and all(base <= p < base + 100 for p in ports), ports
            probe.put(state.members[0].client_port, "whose", str(base), timeout=5.0)
            members |= {m.id for m in probe.member_list(state.members[0].client_port)}
            assert lab.status()["n3"]["health"] == "ok"
        assert len(members) == 6  # two clusters of three, none joined to the other
        for base, lab in labs.items():
            assert probe.get(lab.state().members[2].client_port, "whose", timeout=5.0) == str(base)
        for lab in labs.values():
            lab.run("down")
    finally:
        for lab in labs.values():
            _cleanup(lab.lab_dir)


@pytest.mark.cluster
def test_an_exact_port_base_whose_port_is_taken_fails_in_one_line(
    tmp_path: Path, listener: socket.socket
) -> None:
    listener.bind(("127.0.0.1", BASE_C + 4))  # n2's client port
    listener.listen()
    lab = LabCli(tmp_path / "lab", local_env(tmp_path / "lab"))
    try:
        r = lab.run("--port-base", str(BASE_C), "up", "--size", "3", ok=False)
        assert r.returncode == 1
        assert r.stderr == (
            f"Error: port {BASE_C + 4} (n2 client) is already in use: choose another --port-base than "
            f"{BASE_C}, or give a --port-range to skip ports in use\n"
        )
        assert not LabState.exists(lab.lab_dir)
    finally:
        _cleanup(lab.lab_dir)


@pytest.mark.cluster
def test_up_refuses_a_running_cluster_and_clears_a_dead_one(tmp_path: Path) -> None:
    cluster = Cluster.up(tmp_path / "lab", ClusterSpec(size=1), timeout=60)
    try:
        with pytest.raises(LabError, match=r"already holds a running cluster \(n1 pid \d+, its Toxiproxy\)"):
            Cluster.up(tmp_path / "lab", ClusterSpec(size=1), timeout=60)
        # A run that was killed: its processes are gone, its state file is not.
        state = cluster.state
        for ref in [state.members[0].process, state.toxiproxy_process]:
            processes.kill(ref)
        cluster._toxiproxy = None
        again = Cluster.up(tmp_path / "lab", ClusterSpec(size=1), timeout=60)
        again.down()
    finally:
        _cleanup(tmp_path / "lab")
