"""Launch real etcd-compatible server processes on 127.0.0.1 and drive them with the real etcdctl.

The same code starts real etcd (``binary=["etcd"]``) or minietcd
(``binary=[sys.executable, "-m", "minietcd.server"]``): both get etcd's static bootstrap flags, so
any difference in behaviour is the server's, never the harness's. It is the one launcher of the
suite: the client and minietcdctl tests (``tests/unit/client``, ``tests/compat``) use it too, with
:func:`client_test_binary` choosing the server.

Members are indexed from 0 in every method (``kill(0)`` kills the member named ``n1``). Every
wait polls against a deadline; nothing sleeps as a means of synchronisation. Every process
started here runs in its own process group and is killed by :meth:`ProcessCluster.close`, which
the context manager and the pytest fixtures in ``conftest.py`` always call.

See ``tests/cluster/README.md`` for examples.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn

import grpc
import pytest

from minietcd.api.etcdserverpb import rpc_pb2
from minietcd.api.etcdserverpb import rpc_pb2_grpc as _rpc_grpc_untyped

# The generated gRPC stubs are untyped; use them through Any.
rpc_pb2_grpc: Any = _rpc_grpc_untyped

ETCDCTL = "/usr/bin/etcdctl"
# etcd reads any ETCD_* variable as a flag and etcdctl any ETCDCTL_*: never inherit them.
_SCRUBBED_ENV_PREFIXES = ("ETCD_", "ETCDCTL_")
# What etcd answers to member add/remove/promote until its peers have been connected for 5 s.
RECONFIG_NOT_READY = "etcdserver: unhealthy cluster"
# What etcd answers to member promote while the learner's log lags the leader's.
LEARNER_NOT_READY = "can only promote a learner member which is in sync with leader"
# What a member answers an anonymous read with while auth is on: it is up and serving.
AUTH_REFUSALS = ("etcdserver: user name is empty", "etcdserver: permission denied")
# Ports handed out by free_ports() in this process, never handed out twice.
_handed_out: set[int] = set()


class ClusterError(RuntimeError):
    """A cluster did not reach the state a test waited for; the message carries the log tails."""


def make_test_certs(d: Path) -> dict[str, str]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate in ``d`` (openssl CLI;
    ECDSA P-256, which gRPC accepts). Returns {file name: path} for ca.pem, server.pem,
    server.key, client.pem, client.key."""
    openssl = require_binary("openssl")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=d, check=True, capture_output=True)

    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=test-ca")
    for name, ext in (("server", "subjectAltName=IP:127.0.0.1"), ("client", "extendedKeyUsage=clientAuth")):
        (d / f"{name}.ext").write_text(ext + "\n")
        run("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext")  # fmt: skip
    return {n: str(d / n) for n in ("ca.pem", "server.pem", "server.key", "client.pem", "client.key")}


def require_binary(name: str) -> str:
    """Return the path of executable ``name``; skip the test if it is missing (fail in CI).

    CI (env ``CI`` set) installs etcd and etcdctl, so a missing one there is a broken set-up,
    not a reason to skip.
    """
    path = shutil.which(name)
    if path is None and os.path.isabs(name) and os.access(name, os.X_OK):
        path = name
    if path is not None:
        return path
    reason = f"{name!r} is not installed (scripts/setup.sh installs etcd-server and etcd-client)"
    if os.environ.get("CI"):
        _fail(f"{reason}; CI must have it")
    pytest.skip(reason)


def _fail(message: str) -> NoReturn:
    pytest.fail(message, pytrace=False)


def free_ports(n: int) -> list[int]:
    """``n`` distinct TCP ports on 127.0.0.1 that were free a moment ago.

    All sockets are held open together so the ports are distinct, and a port is never handed
    out twice by one test process.
    """
    socks: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < n:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(s)
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
            if port in _handed_out:
                continue
            _handed_out.add(port)
            ports.append(port)
    finally:
        for s in socks:
            s.close()
    return ports


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The current environment without ETCD_*/ETCDCTL_* variables, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED_ENV_PREFIXES)}
    if extra:
        env.update(extra)
    return env


@dataclass(frozen=True)
class ClientTLS:
    """Files the harness's own gRPC probes use against https members: ``ca_file`` to verify them,
    and ``cert_file``/``key_file`` as the client certificate (for ``--client-cert-auth``)."""

    ca_file: str
    cert_file: str = ""
    key_file: str = ""

    def credentials(self) -> grpc.ChannelCredentials:
        def read(path: str) -> bytes | None:
            return Path(path).read_bytes() if path else None

        return grpc.ssl_channel_credentials(read(self.ca_file), read(self.key_file), read(self.cert_file))


def _tail(path: Path, lines: int) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as e:
        return f"<cannot read {path}: {e}>"
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class Member:
    """One member: its ports, directories and (while running) its process."""

    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    log_path: Path
    initial_cluster: str
    initial_cluster_state: str = "new"
    proc: subprocess.Popen[bytes] | None = None
    member_id: int | None = None  # learned from the member's Status header once it answers
    is_learner: bool = False  # as added by this harness; learners are left out of default endpoints
    starts: int = 0
    scheme: str = "http"  # of its peer URLs, and of its client URLs unless client_scheme is set
    client_scheme: str | None = None

    @property
    def client_url(self) -> str:
        return f"{self.client_scheme or self.scheme}://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.peer_port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@dataclass
class _Health:
    ok: bool
    detail: str
    member_id: int = 0
    leader: int = 0
    raft_index: int = 0
    applied_index: int = 0
    is_learner: bool = False


@dataclass
class ProcessCluster:
    """N members started with etcd's static bootstrap flags, all on 127.0.0.1.

    ``binary`` is the command that starts one member, e.g. ``["etcd"]`` or
    ``[sys.executable, "-m", "minietcd.server"]``; the member flags are appended to it.
    ``extra_flags`` are appended to every member's command line (e.g.
    ``["--max-request-bytes", "4096"]``), ``env`` is added to each member's environment.

    TLS: ``scheme="https"`` gives every member https client and peer URLs (the TLS flags go in
    ``extra_flags``); ``etcdctl_flags`` are put before the arguments of every etcdctl call (e.g.
    ``["--cacert", ca, "--cert", crt, "--key", key]``); the harness's own probes verify members
    with ``client_tls``, or, without it, trust the certificate each member presents (auto TLS).
    ``client_scheme="https"`` makes only the client URLs https (TLS on the client port alone).

    ``ports`` (client, peer for each member) starts an identical cluster again: the same ports,
    token and names give the same member and cluster IDs (see :meth:`wipe`).
    """

    binary: Sequence[str]
    size: int
    tmp_path: Path
    extra_flags: Sequence[str] = ()
    env: Mapping[str, str] | None = None
    heartbeat_ms: int = 50
    election_ms: int = 500
    token: str = "tok"
    etcdctl_path: str = ETCDCTL
    scheme: str = "http"
    etcdctl_flags: Sequence[str] = ()
    client_tls: ClientTLS | None = None
    client_scheme: str | None = None
    ports: Sequence[int] | None = None
    members: list[Member] = field(default_factory=list)
    _all_procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.tmp_path = Path(self.tmp_path)
        ports = list(self.ports) if self.ports is not None else free_ports(2 * self.size)
        if len(ports) != 2 * self.size:
            raise ValueError(f"{self.size} members need {2 * self.size} ports, got {len(ports)}")
        names = [f"n{i + 1}" for i in range(self.size)]
        initial = ",".join(f"{n}={self.scheme}://127.0.0.1:{ports[2 * i + 1]}" for i, n in enumerate(names))
        for i, name in enumerate(names):
            self.members.append(self._new_member(name, ports[2 * i], ports[2 * i + 1], initial, "new"))

    def _new_member(self, name: str, client: int, peer: int, initial: str, state: str) -> Member:
        if any(m.name == name for m in self.members):
            raise ValueError(f"member name {name!r} already used")
        base = self.tmp_path / name
        base.mkdir(parents=True, exist_ok=True)
        return Member(
            name=name,
            client_port=client,
            peer_port=peer,
            data_dir=base / "data",
            log_path=base / "member.log",
            initial_cluster=initial,
            initial_cluster_state=state,
            scheme=self.scheme,
            client_scheme=self.client_scheme,
        )

    # ----------------------------------------------------------------------------- life cycle

    def flags(self, i: int) -> list[str]:
        """The flags member ``i`` is started with (the same on every restart)."""
        m = self.members[i]
        return [
            "--name", m.name,
            "--data-dir", str(m.data_dir),
            "--listen-client-urls", m.client_url,
            "--advertise-client-urls", m.client_url,
            "--listen-peer-urls", m.peer_url,
            "--initial-advertise-peer-urls", m.peer_url,
            "--initial-cluster", m.initial_cluster,
            "--initial-cluster-token", self.token,
            "--initial-cluster-state", m.initial_cluster_state,
            "--heartbeat-interval", str(self.heartbeat_ms),
            "--election-timeout", str(self.election_ms),
            *self.extra_flags,
        ]  # fmt: skip

    def command(self, i: int) -> list[str]:
        return [*self.binary, *self.flags(i)]

    def start(self) -> ProcessCluster:
        """Start every member that is not running (does not wait: see :meth:`wait_healthy`)."""
        for i in range(len(self.members)):
            if not self.members[i].running:
                self.start_member(i)
        return self

    def start_member(self, i: int) -> None:
        m = self.members[i]
        if m.running:
            raise ClusterError(f"{m.name} is already running")
        m.starts += 1
        with open(m.log_path, "ab") as log:
            log.write(f"==== start #{m.starts}: {' '.join(self.command(i))}\n".encode())
            log.flush()
            proc = subprocess.Popen(
                self.command(i),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=clean_env(self.env),
                cwd=m.data_dir.parent,
                start_new_session=True,  # own process group: close() kills children too
            )
        m.proc = proc
        self._all_procs.append(proc)

    def kill(self, i: int) -> None:
        """SIGKILL member ``i`` (and its process group) and reap it."""
        self._signal(i, signal.SIGKILL, timeout=10.0)

    def stop(self, i: int, timeout: float = 10.0) -> None:
        """SIGTERM member ``i``; SIGKILL it if it has not exited within ``timeout`` seconds."""
        self._signal(i, signal.SIGTERM, timeout=timeout)

    def restart(self, i: int, timeout: float = 10.0) -> None:
        """Stop member ``i`` if it runs, then start it again with the same data dir and flags."""
        if self.members[i].running:
            self.stop(i, timeout)
        self.start_member(i)

    def _signal(self, i: int, sig: signal.Signals, timeout: float) -> None:
        proc = self.members[i].proc
        if proc is None:
            return
        _terminate(proc, sig, timeout)
        self.members[i].proc = None

    def close(self) -> None:
        """Kill every process this cluster ever started. Safe to call more than once."""
        for proc in self._all_procs:
            _terminate(proc, signal.SIGKILL, timeout=10.0)
        for m in self.members:
            m.proc = None

    def wipe(self) -> None:
        """Kill every process and delete the data directories (to start an identical cluster)."""
        self.close()
        for m in self.members:
            shutil.rmtree(m.data_dir, ignore_errors=True)
            m.member_id = None

    def __enter__(self) -> ProcessCluster:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc_type is not None and not isinstance(exc, ClusterError):
                # ClusterError messages already carry the logs.
                self.print_logs()
        finally:
            self.close()

    # ---------------------------------------------------------------------------- addresses

    @property
    def endpoints(self) -> list[str]:
        """Client URLs of all members, running or not, in member order."""
        return [m.client_url for m in self.members]

    def endpoint(self, i: int) -> str:
        return self.members[i].client_url

    def running_indexes(self) -> list[int]:
        return [i for i, m in enumerate(self.members) if m.running]

    def index_of(self, name_or_id: str | int) -> int:
        """The index of the member with this name or member ID."""
        for i, m in enumerate(self.members):
            if name_or_id in (m.name, m.member_id):
                return i
        raise KeyError(name_or_id)

    # ------------------------------------------------------------------------------ health

    def _client_channel(self, port: int, timeout: float = 1.0) -> grpc.Channel:
        """A gRPC channel to the client port of a member (raises OSError if auto TLS cannot
        fetch the member's certificate)."""
        target = f"127.0.0.1:{port}"
        if (self.client_scheme or self.scheme) != "https":
            return grpc.insecure_channel(target)
        if self.client_tls is not None:
            return grpc.secure_channel(target, self.client_tls.credentials())
        # Auto TLS: trust whatever certificate the member presents (etcdctl --insecure-skip-tls-verify).
        pem = ssl.get_server_certificate(("127.0.0.1", port), timeout=timeout)
        return grpc.secure_channel(target, grpc.ssl_channel_credentials(pem.encode()))

    def _probe(self, i: int, timeout: float = 1.0) -> _Health:
        """Status (and, for voting members, a linearizable read) on member ``i`` over gRPC."""
        m = self.members[i]
        if not m.running:
            code = m.proc.returncode if m.proc is not None else None
            return _Health(False, f"{m.name}: not running (exit code {code})")
        try:
            with self._client_channel(m.client_port, timeout) as ch:
                st = rpc_pb2_grpc.MaintenanceStub(ch).Status(rpc_pb2.StatusRequest(), timeout=timeout)
                m.member_id = st.header.member_id or m.member_id
                if st.leader == 0:
                    return _Health(False, f"{m.name}: no leader", member_id=st.header.member_id)
                if not st.isLearner:
                    # What `etcdctl endpoint health` does: a linearizable read of key "health"
                    # (an auth refusal, with auth on, is an answer: healthy, as etcdctl counts it).
                    try:
                        rpc_pb2_grpc.KVStub(ch).Range(rpc_pb2.RangeRequest(key=b"health"), timeout=timeout)
                    except grpc.RpcError as e:
                        if e.details() not in AUTH_REFUSALS:
                            raise
                return _Health(
                    True,
                    f"{m.name}: ok, leader {st.leader:x}",
                    member_id=st.header.member_id,
                    leader=st.leader,
                    raft_index=st.raftIndex,
                    applied_index=st.raftAppliedIndex,
                    is_learner=st.isLearner,
                )
        except grpc.RpcError as e:
            return _Health(False, f"{m.name}: {e.code()} {e.details()}")
        except OSError as e:  # auto TLS: no certificate to fetch yet
            return _Health(False, f"{m.name}: {e}")

    def wait_healthy(self, timeout: float = 30.0, indexes: Iterable[int] | None = None) -> int:
        """Wait until every started member (or those in ``indexes``) is healthy and all agree on
        one leader; return the leader's index. Raises :class:`ClusterError` (with the log tails)
        if that has not happened within ``timeout`` seconds, or at once if a member exits."""
        deadline = time.monotonic() + timeout
        # Default: every member started and not since stopped by the harness, so a member that
        # crashed is noticed even if it crashed before this call.
        started = [i for i, m in enumerate(self.members) if m.proc is not None]
        wanted = list(indexes) if indexes is not None else started
        if not wanted:
            self._raise("wait_healthy: no member has been started")
        last: list[_Health] = []
        while True:
            for i in wanted:
                m = self.members[i]
                if m.proc is not None and m.proc.poll() is not None:
                    self._raise(f"{m.name} exited with code {m.proc.returncode} while waiting for health")
            last = [self._probe(i) for i in wanted]
            leaders = {h.leader for h in last}
            if all(h.ok for h in last) and len(leaders) == 1:
                with contextlib.suppress(KeyError):
                    return self.index_of(leaders.pop())
            if time.monotonic() >= deadline:
                self._raise(f"cluster not healthy after {timeout}s: " + "; ".join(h.detail for h in last))
            time.sleep(0.05)

    def leader_index(self, timeout: float = 10.0) -> int:
        """Index of the current leader, as the running members see it."""
        return self.wait_healthy(timeout)

    def cluster_id(self, timeout: float = 10.0) -> int:
        """The cluster ID, from the response header of a running member."""
        deadline = time.monotonic() + timeout
        while True:
            for i in self.running_indexes():
                try:
                    with self._client_channel(self.members[i].client_port) as ch:
                        st = rpc_pb2_grpc.MaintenanceStub(ch).Status(rpc_pb2.StatusRequest(), timeout=1.0)
                except (grpc.RpcError, OSError):
                    continue
                if st.header.cluster_id:
                    return int(st.header.cluster_id)
            if time.monotonic() >= deadline:
                self._raise("no member reported a cluster ID")
            time.sleep(0.05)

    def ids(self, i: int, timeout: float = 10.0) -> tuple[int, int]:
        """(cluster ID, member ID) as member ``i`` reports them in a response header."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                with self._client_channel(self.members[i].client_port) as ch:
                    st = rpc_pb2_grpc.MaintenanceStub(ch).Status(rpc_pb2.StatusRequest(), timeout=1.0)
                return int(st.header.cluster_id), int(st.header.member_id)
            except (grpc.RpcError, OSError) as e:
                if time.monotonic() >= deadline:
                    self._raise(f"{self.members[i].name} did not answer Status: {e}")
            time.sleep(0.05)

    def member_id(self, i: int, timeout: float = 10.0) -> int:
        """Member ``i``'s ID (asks the member if it has not answered yet)."""
        deadline = time.monotonic() + timeout
        while self.members[i].member_id is None:
            if time.monotonic() >= deadline:
                self._raise(f"{self.members[i].name} never reported its member ID")
            self._probe(i)
            time.sleep(0.05)
        mid = self.members[i].member_id
        assert mid is not None
        return mid

    def wait_caught_up(self, i: int, timeout: float = 30.0) -> None:
        """Wait until member ``i`` has applied everything the leader had committed when called."""
        leader = self.wait_healthy(timeout, indexes=[j for j in self.running_indexes() if j != i])
        target = self._probe(leader).raft_index
        deadline = time.monotonic() + timeout
        while True:
            h = self._probe(i)
            if h.member_id and h.applied_index >= target:
                return
            if time.monotonic() >= deadline:
                self._raise(f"{self.members[i].name} did not catch up to index {target}: {h.detail}")
            time.sleep(0.05)

    def wait_converged(self, timeout: float = 30.0) -> None:
        """Wait until the cluster is healthy and every running member has applied everything the
        leader had committed when called (so each member's own view, e.g. of membership, is
        current)."""
        deadline = time.monotonic() + timeout
        leader = self.wait_healthy(timeout)
        target = self._probe(leader).raft_index
        for i in self.running_indexes():
            while True:
                h = self._probe(i)
                if h.member_id and h.applied_index >= target:
                    break
                if time.monotonic() >= deadline:
                    self._raise(f"{self.members[i].name} did not catch up to index {target}: {h.detail}")
                time.sleep(0.05)

    def wait_published(self, i: int, timeout: float = 30.0) -> None:
        """Wait until the cluster's member list shows member ``i`` as started (it has published
        its name and client URLs), as seen from a running voting member."""
        mid = self.member_id(i, timeout)
        deadline = time.monotonic() + timeout
        while True:
            for j in self.running_indexes():
                if j == i:
                    continue
                try:
                    with self._client_channel(self.members[j].client_port) as ch:
                        resp = rpc_pb2_grpc.ClusterStub(ch).MemberList(
                            rpc_pb2.MemberListRequest(), timeout=1.0
                        )
                except (grpc.RpcError, OSError):
                    continue
                if any(mid == m.ID and m.name for m in resp.members):
                    return
            if time.monotonic() >= deadline:
                self._raise(f"{self.members[i].name} not shown as started in the member list")
            time.sleep(0.05)

    def transfer_leadership(self, i: int, timeout: float = 20.0) -> None:
        """Make member ``i`` the leader (``etcdctl move-leader``), polling until it is."""
        deadline = time.monotonic() + timeout
        while True:
            leader = self.wait_healthy(max(0.1, deadline - time.monotonic()))
            if leader == i:
                return
            r = self.etcdctl("move-leader", f"{self.member_id(i):x}", endpoints=self.endpoint(leader))
            if time.monotonic() >= deadline:
                self._raise(f"could not move leadership to {self.members[i].name}: {r.stdout}{r.stderr}")
            if r.returncode != 0:
                time.sleep(0.1)

    # ------------------------------------------------------------------------------ etcdctl

    def etcdctl(
        self,
        *args: str,
        endpoints: str | Sequence[str] | None = None,
        env: Mapping[str, str] | None = None,
        input: str | None = None,
        timeout: float = 30.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run the real etcdctl (API v3) against ``endpoints`` (default: all running members but
        learners, unless ``args`` has its own ``--endpoints``), with ``input`` as its stdin."""
        flags: list[str] = []
        if endpoints is None and not any(a.startswith("--endpoints") for a in args):
            endpoints = [self.endpoint(i) for i in self.running_indexes() if not self.members[i].is_learner]
        if endpoints is not None:
            flags.append("--endpoints=" + (endpoints if isinstance(endpoints, str) else ",".join(endpoints)))
        return subprocess.run(
            [self.etcdctl_path, *flags, *self.etcdctl_flags, *args],
            input=input if input is not None else "",
            capture_output=True,
            text=True,
            timeout=timeout,
            env=clean_env({"ETCDCTL_API": "3", **(env or {})}),
            check=False,
        )

    def etcdctl_ok(self, *args: str, **kwargs: object) -> str:
        """:meth:`etcdctl` that raises :class:`ClusterError` unless the exit code is 0; returns stdout."""
        r = self.etcdctl(*args, **kwargs)  # type: ignore[arg-type]  # etcdctl's keywords
        if r.returncode != 0:
            self._raise(f"etcdctl {' '.join(args)} exited {r.returncode}: {r.stdout}{r.stderr}")
        return r.stdout

    def etcdctl_retry(
        self,
        *args: str,
        retry_if: str | Sequence[str] = RECONFIG_NOT_READY,
        timeout: float = 30.0,
        endpoints: str | Sequence[str] | None = None,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """:meth:`etcdctl`, run again (polling, up to ``timeout`` seconds) while its output contains
        ``retry_if`` (a string, or any of several). Default: etcd's "unhealthy cluster", returned by
        reconfiguration requests until every voting member has been connected to the leader for 5 s
        (etcd's ``--strict-reconfig-check``)."""
        deadline = time.monotonic() + timeout
        markers = [retry_if] if isinstance(retry_if, str) else list(retry_if)
        while True:
            r = self.etcdctl(*args, endpoints=endpoints, input=input)
            if not any(x in r.stdout + r.stderr for x in markers) or time.monotonic() >= deadline:
                return r
            time.sleep(0.2)

    # --------------------------------------------------------------------------- membership

    def add_member_slot(self, name: str, initial_cluster: str = "") -> int:
        """Reserve ports and directories for a new member ``name`` without telling the cluster;
        return its index. Start it with :meth:`start_added_member` after ``member add``."""
        client, peer = free_ports(2)
        self.members.append(self._new_member(name, client, peer, initial_cluster, "existing"))
        return len(self.members) - 1

    def start_added_member(self, i: int, member_add_stdout: str) -> None:
        """Start member ``i`` with the ETCD_INITIAL_CLUSTER printed by ``etcdctl member add``."""
        match = re.search(r'^ETCD_INITIAL_CLUSTER="([^"]*)"', member_add_stdout, re.M)
        if match is None:
            self._raise(f"no ETCD_INITIAL_CLUSTER in member add output:\n{member_add_stdout}")
        added = re.search(r"^Member +([0-9a-f]+) added", member_add_stdout, re.M)
        if added is not None:
            self.members[i].member_id = int(added.group(1), 16)
        self.members[i].initial_cluster = match.group(1)
        self.members[i].initial_cluster_state = "existing"
        self.start_member(i)

    def member_add_and_start(self, name: str, learner: bool = False, timeout: float = 30.0) -> int:
        """``etcdctl member add`` a new member, start it with ``--initial-cluster-state existing``,
        wait until it has caught up; return its index."""
        i = self.add_member_slot(name)
        args = ["member", "add", name, f"--peer-urls={self.members[i].peer_url}"]
        if learner:
            args.append("--learner")
        r = self.etcdctl_retry(*args, timeout=timeout)
        if r.returncode != 0:
            self._raise(f"etcdctl {' '.join(args)} exited {r.returncode}: {r.stdout}{r.stderr}")
        self.members[i].is_learner = learner
        self.start_added_member(i, r.stdout)
        self.wait_published(i, timeout)
        self.wait_caught_up(i, timeout)
        return i

    def member_promote(self, i: int, timeout: float = 30.0) -> None:
        """``etcdctl member promote`` learner ``i``, retried while etcd says it is not in sync yet or
        the cluster is not ready for reconfiguration; then wait until every member has applied it."""
        mid = self.member_id(i, timeout)
        retry_if = (RECONFIG_NOT_READY, LEARNER_NOT_READY)
        r = self.etcdctl_retry("member", "promote", f"{mid:x}", retry_if=retry_if, timeout=timeout)
        if r.returncode != 0:
            self._raise(f"etcdctl member promote {mid:x} exited {r.returncode}: {r.stdout}{r.stderr}")
        self.members[i].is_learner = False
        self.wait_converged(timeout)

    def member_remove(self, i: int, timeout: float = 30.0) -> None:
        """``etcdctl member remove`` member ``i`` (retried while etcd says the cluster is not ready
        for reconfiguration), then stop its process if it has not exited by itself."""
        mid = self.member_id(i, timeout)
        others = [self.endpoint(j) for j in self.running_indexes() if j != i]
        r = self.etcdctl_retry("member", "remove", f"{mid:x}", timeout=timeout, endpoints=others)
        if r.returncode != 0:
            self._raise(f"etcdctl member remove {mid:x} exited {r.returncode}: {r.stdout}{r.stderr}")
        self.stop(i)

    # ---------------------------------------------------------------------------------- logs

    def log_tails(self, lines: int = 40) -> str:
        return "\n".join(
            f"----- {m.name} ({m.log_path}), last {lines} lines -----\n{_tail(m.log_path, lines)}"
            for m in self.members
        )

    def print_logs(self, lines: int = 40) -> None:
        print(self.log_tails(lines), file=sys.stderr)

    def _raise(self, message: str) -> NoReturn:
        raise ClusterError(f"{message}\n{self.log_tails()}")


def _terminate(proc: subprocess.Popen[bytes], sig: signal.Signals, timeout: float) -> None:
    """Send ``sig`` to the process group of ``proc`` (ours: started with a new session), wait for
    it up to ``timeout`` seconds, then SIGKILL the group."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10.0)
    # A process already reaped is left alone: its pid (= group id) may belong to someone else now.


def etcd_binary() -> list[str]:
    """The command for real etcd (skips, or fails in CI, if it is not installed)."""
    return [require_binary("etcd")]


def minietcd_binary() -> list[str]:
    """The command for minietcd's server."""
    return [sys.executable, "-m", "minietcd.server"]


def client_test_binary() -> list[str]:
    """The server the client and minietcdctl tests run against: real etcd, or minietcd's server
    with ``MINIETCD_CLIENT_TEST_SERVER=minietcd`` (the very same tests against both)."""
    if os.environ.get("MINIETCD_CLIENT_TEST_SERVER") == "minietcd":
        return minietcd_binary()
    return etcd_binary()


def client_test_cluster(tmp_path: Path, size: int, **kwargs: Any) -> ProcessCluster:
    """A cluster (not started) of the server the client tests run against (:func:`client_test_binary`)."""
    return ProcessCluster(client_test_binary(), size, tmp_path, token="minietcd-client-test", **kwargs)
