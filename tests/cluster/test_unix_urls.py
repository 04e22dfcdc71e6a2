"""``unix://`` and ``unixs://`` listen URLs for clients and peers, etcd 3.4 and minietcd side by side.

etcd binds ``unix://localhost:2379`` as the socket file ``localhost:2379`` in its working
directory (``pkg/transport.NewUnixListener(u.Host)``), and etcdctl dials the same path. So every
member of a cluster here runs in one shared directory, which also holds their socket files.

* a three-member cluster whose peers and clients all talk over unix sockets: replication,
  ``member list`` showing the unix URLs, the same member ids as etcd;
* ``unixs://`` with auto TLS on both sides;
* a socket a live member listens on is a taken address: ``C | etcdmain: listen unix
  localhost:2379: bind: address already in use``, nothing written;
* a socket file left by a killed member: etcd 3.4 cannot restart until it is removed by hand
  (its client listener does not replace it); minietcd replaces it (docs/server.md).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from tests.cluster.harness import ETCDCTL, clean_env, etcd_binary, minietcd_binary

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

SERVERS = ["etcd", "minietcd"]
DEADLINE = 60.0
TLS_ETCDCTL = ["--insecure-transport=false", "--insecure-skip-tls-verify"]


def _binary(server: str) -> list[str]:
    return etcd_binary() if server == "etcd" else minietcd_binary()


class UnixCluster:
    """Members n1..nN in one working directory, clients on ``localhost:<10000 * i + 2379>`` and
    peers on ``localhost:<10000 * i + 2380>`` over ``scheme`` (unix or unixs)."""

    def __init__(
        self, binary: Sequence[str], cwd: Path, size: int, scheme: str, extra: Sequence[str]
    ) -> None:
        self.binary, self.cwd, self.size, self.scheme, self.extra = (
            list(binary),
            cwd,
            size,
            scheme,
            list(extra),
        )
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.all_procs: list[subprocess.Popen[bytes]] = []
        peers = [f"n{i + 1}={self.peer_url(i)}" for i in range(size)]
        self.initial_cluster = ",".join(peers)

    def client_url(self, i: int) -> str:
        return f"{self.scheme}://localhost:{10000 * i + 2379}"

    def peer_url(self, i: int) -> str:
        return f"{self.scheme}://localhost:{10000 * i + 2380}"

    def log(self, i: int) -> Path:
        return self.cwd / f"n{i + 1}.log"

    def start(
        self, i: int, name: str | None = None, client_url: str | None = None
    ) -> subprocess.Popen[bytes]:
        client = client_url or self.client_url(i)
        flags = [
            "--name", name or f"n{i + 1}", "--data-dir", f"n{i + 1}.etcd",
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", self.peer_url(i), "--initial-advertise-peer-urls", self.peer_url(i),
            "--initial-cluster", self.initial_cluster, "--initial-cluster-token", "unix",
            "--heartbeat-interval", "50", "--election-timeout", "500", *self.extra,
        ]  # fmt: skip
        with open(self.log(i), "ab") as log:
            proc = subprocess.Popen(
                [*self.binary, *flags],
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=clean_env(),
                start_new_session=True,
            )
        self.procs[i] = proc
        self.all_procs.append(proc)
        return proc

    def etcdctl(
        self, *args: str, endpoints: Sequence[str], plain: bool = False
    ) -> subprocess.CompletedProcess[str]:
        tls = TLS_ETCDCTL if self.scheme == "unixs" and not plain else []
        return subprocess.run(
            [ETCDCTL, f"--endpoints={','.join(endpoints)}", *tls, "--command-timeout=3s", *args],
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=60,
            env=clean_env({"ETCDCTL_API": "3"}),
            check=False,
        )

    def wait_leader(self, indexes: Sequence[int]) -> list[dict[str, object]]:
        """Poll ``endpoint status`` until every member in ``indexes`` answers with a leader."""
        endpoints = [self.client_url(i) for i in indexes]
        deadline = time.monotonic() + DEADLINE
        while True:
            r = self.etcdctl("endpoint", "status", "-w", "json", endpoints=endpoints)
            if r.returncode == 0:
                statuses = [e["Status"] for e in json.loads(r.stdout)]
                if len(statuses) == len(indexes) and all(s.get("leader") for s in statuses):
                    return statuses
            if time.monotonic() >= deadline:
                pytest.fail(f"no leader on {endpoints}: {r.stdout}{r.stderr}\n{self.tails()}")
            time.sleep(0.2)

    def tails(self) -> str:
        return "\n".join(
            f"----- n{i + 1} -----\n" + "\n".join(self.log(i).read_text(errors="replace").splitlines()[-30:])
            for i in range(self.size)
            if self.log(i).exists()
        )

    def stop(self, i: int, sig: signal.Signals = signal.SIGTERM) -> None:
        proc = self.procs.pop(i)
        if proc.poll() is None:
            os.killpg(proc.pid, sig)
        proc.wait(timeout=30)

    def close(self) -> None:
        for proc in self.all_procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)


@pytest.fixture
def unix_cluster(tmp_path: Path) -> Iterator[list[UnixCluster]]:
    made: list[UnixCluster] = []
    yield made
    for c in made:
        c.close()


def _make(
    made: list[UnixCluster], server: str, cwd: Path, size: int, scheme: str = "unix", *extra: str
) -> UnixCluster:
    cwd.mkdir(parents=True, exist_ok=True)
    c = UnixCluster(_binary(server), cwd, size, scheme, extra)
    made.append(c)
    return c


def _member_list(c: UnixCluster) -> list[tuple[str, str, str]]:
    r = c.etcdctl("member", "list", "-w", "json", endpoints=[c.client_url(0)])
    assert r.returncode == 0, r.stderr
    members = json.loads(r.stdout)["members"]
    return sorted((f"{m['ID']:x}", m["peerURLs"][0], m["clientURLs"][0]) for m in members)


def test_three_members_over_unix_sockets(unix_cluster: list[UnixCluster], tmp_path: Path) -> None:
    lists = {}
    for server in SERVERS:
        c = _make(unix_cluster, server, tmp_path / server, 3)
        for i in range(3):
            c.start(i)
        c.wait_leader([0, 1, 2])
        for i in range(3):
            assert (c.cwd / f"localhost:{10000 * i + 2379}").is_socket()
            assert (c.cwd / f"localhost:{10000 * i + 2380}").is_socket()
        r = c.etcdctl("put", "over", "unix", endpoints=[c.client_url(1)])
        assert r.stdout == "OK\n", r.stderr
        deadline = time.monotonic() + DEADLINE
        while (
            c.etcdctl(
                "get", "over", "--print-value-only", "--consistency=s", endpoints=[c.client_url(2)]
            ).stdout
            != "unix\n"
        ):
            assert time.monotonic() < deadline, c.tails()
            time.sleep(0.1)
        lists[server] = _member_list(c)
        for i in range(3):
            c.stop(i)
    # The same member ids (derived from the unix peer URLs) and the same URLs as etcd.
    assert lists["minietcd"] == lists["etcd"]
    assert {u for _, u, _ in lists["etcd"]} == {f"unix://localhost:{10000 * i + 2380}" for i in range(3)}


@pytest.mark.parametrize("server", SERVERS)
def test_unixs_with_auto_tls(server: str, unix_cluster: list[UnixCluster], tmp_path: Path) -> None:
    c = _make(unix_cluster, server, tmp_path, 1, "unixs", "--auto-tls", "--peer-auto-tls")
    c.start(0)
    c.wait_leader([0])
    assert c.etcdctl("put", "k", "tls", endpoints=[c.client_url(0)]).stdout == "OK\n"
    assert c.etcdctl("get", "k", "--print-value-only", endpoints=[c.client_url(0)]).stdout == "tls\n"
    # Not TLS on a TLS socket: refused.
    plain = c.etcdctl("get", "k", endpoints=["unix://localhost:2379"], plain=True)
    assert plain.returncode != 0


@pytest.mark.parametrize("server", SERVERS)
def test_a_live_socket_is_a_taken_address(
    server: str, unix_cluster: list[UnixCluster], tmp_path: Path
) -> None:
    c = _make(unix_cluster, server, tmp_path, 2)
    c.initial_cluster = f"n1={c.peer_url(0)}"
    c.start(0)
    c.wait_leader([0])
    # A second member whose client URL is n1's socket (its own peer socket is free).
    c.initial_cluster = f"n2={c.peer_url(1)}"
    second = c.start(1, client_url=c.client_url(0))
    assert second.wait(timeout=60) == 1
    log = c.log(1).read_text(errors="replace")
    assert "C | etcdmain: listen unix localhost:2379: bind: address already in use" in log, log
    assert not (c.cwd / "n2.etcd").exists()
    assert c.etcdctl("put", "k", "still-served", endpoints=[c.client_url(0)]).stdout == "OK\n"


@pytest.mark.parametrize("server", SERVERS)
def test_a_socket_left_by_a_killed_member(
    server: str, unix_cluster: list[UnixCluster], tmp_path: Path
) -> None:
    c = _make(unix_cluster, server, tmp_path, 1)
    c.start(0)
    c.wait_leader([0])
    assert c.etcdctl("put", "k", "before", endpoints=[c.client_url(0)]).stdout == "OK\n"
    c.stop(0, signal.SIGKILL)
    assert (c.cwd / "localhost:2379").is_socket()  # nobody removed it
    proc = c.start(0)
    if server == "etcd":  # etcd 3.4's client listener does not replace the stale socket
        assert proc.wait(timeout=60) == 1
        assert (
            "C | etcdmain: listen unix localhost:2379: bind: address already in use" in c.log(0).read_text()
        )
        return
    c.wait_leader([0])
    r = c.etcdctl("get", "k", "--print-value-only", endpoints=[c.client_url(0)])
    assert r.stdout == "before\n"
