"""The third-party Python clients ``etcd3`` and ``aetcd`` work against minietcd, unmodified.

Each client library runs one scenario (``clients/scenario.py``: put, get with metadata, prefix
get, delete, transactions, watch, leases, member list and status) against one member of a fresh
3-member minietcd cluster, and the same scenario against a 3-member real etcd; each once through
a follower and once through the leader. Then the observations of both servers (revisions
relative to the step's first write, values, versions, events, TTLs) must be equal.

The clients run as subprocesses (``python tests/compat/clients/<lib>_client.py``), never in the
pytest process: each library ships generated ``_pb2`` modules for the same proto packages as
minietcd's, and one protobuf descriptor pool cannot hold both. ``etcd3`` (0.12.0, its last
release) needs protobuf's pure-Python implementation on protobuf >= 4; its script selects it.

Install the libraries with ``pip install etcd3==0.12.0 aetcd==1.0.0`` (neither pins an old
protobuf or grpcio). A missing library skips its tests with that command as the reason; in CI
(env ``CI`` set) it fails them instead.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.harness import ProcessCluster, clean_env, etcd_binary, minietcd_binary

pytestmark = [pytest.mark.compat, pytest.mark.cluster]

CLIENTS_DIR = Path(__file__).with_name("clients")
CLIENTS = {"etcd3": "etcd3_client.py", "aetcd": "aetcd_client.py"}
PINS = {"etcd3": "etcd3==0.12.0", "aetcd": "aetcd==1.0.0"}
SERVERS = ("minietcd", "etcd")
ROLES = ("follower", "leader")
SCRIPT_TIMEOUT = 300.0


def require_client(lib: str) -> None:
    """Skip (fail in CI) unless client library ``lib`` is importable by this interpreter.

    Only looked up, not imported: importing it here would clash with minietcd's protobufs.
    """
    if importlib.util.find_spec(lib) is not None:
        return
    reason = f"Python client library {lib!r} is not installed (pip install {PINS[lib]})"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must have it", pytrace=False)
    pytest.skip(reason)


@dataclass
class Run:
    server: str
    client: str
    role: str
    cluster: ProcessCluster
    endpoint_index: int
    proc: subprocess.CompletedProcess[str]
    result: dict[str, Any] | None

    def describe(self) -> str:
        return f"{self.client} against {self.server} (through the {self.role}, n{self.endpoint_index + 1})"

    def failure_report(self) -> str:
        lines = [f"{self.describe()}: exit code {self.proc.returncode}"]
        if self.result is not None:
            for name, step in self.result["steps"].items():
                if not step["ok"]:
                    lines.append(f"  step {name}: {step['error']}")
        else:
            lines.append(f"  no JSON result on stdout: {self.proc.stdout[-2000:]!r}")
        lines.append(f"  stderr (last 3000 chars):\n{self.proc.stderr[-3000:]}")
        return "\n".join(lines)


class Runs:
    """Clusters started on first use (one per server kind) and client runs, each done once."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.clusters: dict[str, ProcessCluster] = {}
        self.runs: dict[tuple[str, str, str], Run] = {}

    def cluster(self, server: str) -> ProcessCluster:
        if server not in self.clusters:
            binary = minietcd_binary() if server == "minietcd" else etcd_binary()
            cluster = ProcessCluster(binary, 3, self.tmp / server)
            self.clusters[server] = cluster
            cluster.start()
            cluster.wait_healthy(60.0)
        return self.clusters[server]

    def run(self, server: str, client: str, role: str) -> Run:
        key = (server, client, role)
        if key not in self.runs:
            require_client(client)
            cluster = self.cluster(server)
            leader = cluster.wait_healthy(60.0)
            index = leader if role == "leader" else (leader + 1) % 3
            cmd = [
                sys.executable,
                str(CLIENTS_DIR / CLIENTS[client]),
                "--endpoint",
                f"127.0.0.1:{cluster.members[index].client_port}",
                "--prefix",
                f"/compat/{client}/{role}/",
            ]
            proc = subprocess.run(
                cmd,
                capture_output=True,
                text=True,
                timeout=SCRIPT_TIMEOUT,
                env=clean_env(),
                stdin=subprocess.DEVNULL,
                check=False,
            )
            result: dict[str, Any] | None
            try:
                result = json.loads(proc.stdout.strip().splitlines()[-1])
            except (IndexError, json.JSONDecodeError):
                result = None
            self.runs[key] = Run(server, client, role, cluster, index, proc, result)
        return self.runs[key]

    def close(self) -> None:
        for cluster in self.clusters.values():
            cluster.close()


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    r = Runs(tmp_path_factory.mktemp("python-clients"))
    try:
        yield r
    finally:
        r.close()


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("client", list(CLIENTS))
@pytest.mark.parametrize("server", SERVERS)
def test_client_scenario(runs: Runs, server: str, client: str, role: str) -> None:
    """Every step of the scenario passes its own checks, and the member list is the cluster's."""
    run = runs.run(server, client, role)
    assert run.result is not None and run.proc.returncode == 0, (
        run.failure_report() + "\n" + run.cluster.log_tails(30)
    )
    listed = {m["name"]: m for m in run.result["members"]}
    assert sorted(listed) == ["n1", "n2", "n3"], run.result["members"]
    for i, m in enumerate(run.cluster.members):
        got = listed[m.name]
        assert got["id"] == run.cluster.member_id(i), (m.name, got)
        assert got["peer_urls"] == [m.peer_url], (m.name, got)
        assert got["client_urls"] == [m.client_url], (m.name, got)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("client", list(CLIENTS))
def test_minietcd_observations_match_etcd(runs: Runs, client: str, role: str) -> None:
    """What the client observed through minietcd is what it observed through real etcd."""
    mini = runs.run("minietcd", client, role)
    etcd = runs.run("etcd", client, role)
    if etcd.result is None or any(not s["ok"] for s in etcd.result["steps"].values()):
        pytest.fail(f"the scenario fails against real etcd itself:\n{etcd.failure_report()}", pytrace=False)
    assert mini.result is not None, mini.failure_report()
    diffs = []
    for name, want in etcd.result["steps"].items():
        got = mini.result["steps"].get(name)
        if got is None or got["observed"] != want["observed"]:
            seen = None if got is None else (got["observed"] if got["ok"] else f"failed: {got['error']}")
            diffs.append(f"step {name}:\n  etcd:     {want['observed']}\n  minietcd: {seen}")
    assert not diffs, f"{client} through the {role}: minietcd differs from etcd\n" + "\n".join(diffs)


# ------------------------------------------------------------------------------------ auth


def _auth_cluster(binary: list[str], tmp: Path) -> ProcessCluster:
    """A fresh 3-member cluster with auth on: root, and alice with READWRITE on /app/."""
    cluster = ProcessCluster(binary, 3, tmp, extra_flags=["--bcrypt-cost", "4"])
    cluster.start()
    cluster.wait_healthy(60.0)
    for args in (
        ("user", "add", "root:rootpw"), ("user", "add", "alice:alicepw"), ("role", "add", "app"),
        ("role", "grant-permission", "app", "readwrite", "/app/", "--prefix"),
        ("user", "grant-role", "alice", "app"), ("put", "/secret", "s"), ("auth", "enable"),
    ):  # fmt: skip
        cluster.etcdctl_ok(*args)
    return cluster


@pytest.mark.parametrize("client", list(CLIENTS))
def test_clients_log_in_and_get_etcds_refusals(client: str, tmp_path: Path) -> None:
    """etcd3 and aetcd log in with a user and password (through a follower: the token was
    issued by whichever member answered the log-in) and see the same answers and refusals
    from minietcd as from etcd (tests/compat/clients/auth_check.py)."""
    require_client(client)
    outcomes = {}
    for server, binary in (("etcd", etcd_binary()), ("minietcd", minietcd_binary())):
        cluster = _auth_cluster(binary, tmp_path / server)
        try:
            follower = (cluster.wait_healthy(60.0) + 1) % 3
            proc = subprocess.run(
                [sys.executable, str(CLIENTS_DIR / "auth_check.py"), client,
                 "--endpoint", f"127.0.0.1:{cluster.members[follower].client_port}"],
                capture_output=True, text=True, timeout=SCRIPT_TIMEOUT, env=clean_env(),
                stdin=subprocess.DEVNULL, check=False,
            )  # fmt: skip
            assert proc.returncode == 0, proc.stderr[-3000:]
            outcomes[server] = json.loads(proc.stdout.strip().splitlines()[-1])
        finally:
            cluster.close()
    etcd, mini = outcomes["etcd"], outcomes["minietcd"]
    assert etcd["login"] == {"ok": "done"} and "error" in etcd["wrong_password"], etcd
    assert etcd["anonymous"]["message"] == "etcdserver: user name is empty", etcd
    if client == "aetcd":
        assert etcd["put"] == {"ok": "done"} and "error" in etcd["put_denied"], etcd
    # etcd3 0.12.0 sends its token as gRPC call credentials, which grpcio sends only over TLS:
    # on these plain-http clusters its calls after the log-in fail in the client, alike for both.
    assert mini == etcd
