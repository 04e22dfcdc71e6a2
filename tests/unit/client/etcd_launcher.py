"""Start real etcd 3.4 members on 127.0.0.1 for the client and minietcdctl tests.

A small private launcher (the shared one in ``tests/cluster`` is for minietcd's own server):
members get free ports, live in a temporary directory, run in their own process group and are
always killed by :meth:`EtcdCluster.close` (the fixtures call it). Every wait polls against a
deadline. A missing ``etcd`` binary skips the test, or fails it when ``CI`` is set.

``MINIETCD_CLIENT_TEST_SERVER=minietcd`` starts minietcd's server (``python -m minietcd.server``,
same flags) instead, to run the very same client and minietcdctl tests against it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import pytest

ETCD = "/usr/bin/etcd"
ETCDCTL = "/usr/bin/etcdctl"
_handed_out: set[int] = set()


def require(path: str) -> str:
    """``path`` if it is an executable; otherwise skip (or fail under CI) with the reason."""
    found = path if os.access(path, os.X_OK) else shutil.which(os.path.basename(path))
    if found:
        return found
    reason = f"{path} is not installed (scripts/setup.sh installs etcd-server and etcd-client)"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must have it", pytrace=False)
    pytest.skip(reason)


def free_ports(n: int) -> list[int]:
    """``n`` distinct free TCP ports on 127.0.0.1, never handed out twice by this process."""
    socks: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < n:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(s)
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
            if port not in _handed_out:
                _handed_out.add(port)
                ports.append(port)
    finally:
        for s in socks:
            s.close()
    return ports


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment without ETCD_* / ETCDCTL_* variables (both tools read them as flags)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ETCD_", "ETCDCTL_"))}
    env.update(extra or {})
    return env


@dataclass
class Member:
    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    scheme: str = "http"

    @property
    def client_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@dataclass
class EtcdCluster:
    """``size`` etcd members bootstrapped statically. ``ports`` (client, peer per member) may be
    given to start an identical cluster again (same member and cluster IDs)."""

    tmp: Path
    size: int = 1
    token: str = "minietcd-client-test"
    ports: list[int] | None = None
    #: "https" with TLS flags in ``extra_flags`` (--cert-file, --key-file, ...).
    client_scheme: str = "http"
    extra_flags: list[str] = field(default_factory=list)
    members: list[Member] = field(default_factory=list)
    _procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        # MINIETCD_CLIENT_TEST_SERVER=minietcd runs the same tests against minietcd's server.
        if os.environ.get("MINIETCD_CLIENT_TEST_SERVER") == "minietcd":
            self.command = [sys.executable, "-m", "minietcd.server"]
        else:
            self.command = [require(ETCD)]
        if self.ports is None:
            self.ports = free_ports(2 * self.size)
        for i in range(self.size):
            name = f"n{i + 1}"
            base = self.tmp / name
            base.mkdir(parents=True, exist_ok=True)
            self.members.append(
                Member(
                    name, self.ports[2 * i], self.ports[2 * i + 1], base / "data", base / "etcd.log",
                    scheme=self.client_scheme,
                )
            )  # fmt: skip

    @property
    def initial_cluster(self) -> str:
        return ",".join(f"{m.name}={m.peer_url}" for m in self.members)

    @property
    def endpoints(self) -> list[str]:
        return [m.client_url for m in self.members]

    def start(self) -> EtcdCluster:
        for i, m in enumerate(self.members):
            if not m.running:
                self.start_member(i)
        return self

    def start_member(self, i: int) -> None:
        m = self.members[i]
        cmd = [
            *self.command,
            "--name", m.name,
            "--data-dir", str(m.data_dir),
            "--listen-client-urls", m.client_url,
            "--advertise-client-urls", m.client_url,
            "--listen-peer-urls", m.peer_url,
            "--initial-advertise-peer-urls", m.peer_url,
            "--initial-cluster", self.initial_cluster,
            "--initial-cluster-token", self.token,
            "--initial-cluster-state", "new",
            "--heartbeat-interval", "50",
            "--election-timeout", "500",
            *self.extra_flags,
        ]  # fmt: skip
        with open(m.log, "ab") as log:
            m.proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=clean_env(), start_new_session=True,
            )  # fmt: skip
        self._procs.append(m.proc)

    def kill(self, i: int) -> None:
        """SIGKILL member ``i`` and reap it."""
        m = self.members[i]
        if m.proc is not None:
            _kill(m.proc)
            m.proc = None

    def close(self) -> None:
        for p in self._procs:
            _kill(p)
        for m in self.members:
            m.proc = None

    def wipe(self) -> None:
        """Kill everything and delete the data directories (to start an identical cluster)."""
        self.close()
        for m in self.members:
            shutil.rmtree(m.data_dir, ignore_errors=True)

    def wait_healthy(self, timeout: float = 30.0, indexes: list[int] | None = None) -> int:
        """Wait until the running members (or ``indexes``) agree on a leader and serve a
        linearizable read; return the leader's index."""
        import grpc

        from minietcd.api.etcdserverpb import rpc_pb2, rpc_pb2_grpc

        wanted = indexes if indexes is not None else [i for i, m in enumerate(self.members) if m.running]
        deadline = time.monotonic() + timeout
        last = ""
        while True:
            leaders = set()
            ids = {}
            ok = True
            for i in wanted:
                m = self.members[i]
                if m.proc is not None and m.proc.poll() is not None:
                    raise RuntimeError(f"{m.name} exited ({m.proc.returncode}):\n{self.log_tail(i)}")
                try:
                    with self._channel(i) as ch:
                        st = rpc_pb2_grpc.MaintenanceStub(ch).Status(rpc_pb2.StatusRequest(), timeout=1)
                        rpc_pb2_grpc.KVStub(ch).Range(rpc_pb2.RangeRequest(key=b"health"), timeout=1)
                    leaders.add(st.leader)
                    ids[st.header.member_id] = i
                    ok = ok and st.leader != 0
                except grpc.RpcError as e:
                    ok = False
                    last = f"{m.name}: {e}"
            if ok and len(leaders) == 1:
                leader = leaders.pop()
                if leader in ids:
                    return ids[leader]
                if indexes is not None:
                    return -1
            if time.monotonic() > deadline:
                raise RuntimeError(f"etcd not healthy after {timeout}s ({last})\n{self.log_tail(0)}")
            time.sleep(0.05)

    def ids(self, i: int) -> tuple[int, int]:
        """(cluster ID, member ID) as member ``i`` reports them."""

        from minietcd.api.etcdserverpb import rpc_pb2, rpc_pb2_grpc

        with self._channel(i) as ch:
            st = rpc_pb2_grpc.MaintenanceStub(ch).Status(rpc_pb2.StatusRequest(), timeout=5)
        return int(st.header.cluster_id), int(st.header.member_id)

    #: (ca, cert, key) file paths for probing a TLS cluster.
    probe_tls: tuple[str, str, str] | None = None

    def _channel(self, i: int):  # type: ignore[no-untyped-def]
        import grpc

        target = f"127.0.0.1:{self.members[i].client_port}"
        if self.probe_tls is None:
            return grpc.insecure_channel(target)
        ca, cert, key = (Path(p).read_bytes() for p in self.probe_tls)
        return grpc.secure_channel(target, grpc.ssl_channel_credentials(ca, key, cert))

    def member_id(self, i: int) -> int:
        return self.ids(i)[1]

    def log_tail(self, i: int, lines: int = 30) -> str:
        try:
            return "\n".join(self.members[i].log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def __enter__(self) -> EtcdCluster:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
