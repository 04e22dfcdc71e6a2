"""``MinietcdCluster``: a lab cluster as a test sees it: endpoints, clients, and faults as calls.

The pytest plugin (``minietcd.testing.plugin``) hands these out; they also work without pytest::

    from minietcd.testing import MinietcdCluster

    cluster = MinietcdCluster.start(tmp_dir, size=3)
    try:
        cluster.partition(["n1"], ["n2", "n3"])
        ...
    finally:
        cluster.down()

Every fault is the lab's (``minietcd.lab.faults``: processes by signal, peer links through
Toxiproxy, real or the built-in fault proxy) and returns once it is in force; none waits for the
cluster to react: ``wait_for_leader()`` / ``wait_healthy()`` do that. The fault calls take
milliseconds (a signal, a few local HTTP calls), so they are plain methods usable from async
tests too; the waits block, so async tests use their ``_async`` twins, which wait off the loop
(an application under test in the same loop keeps running meanwhile).

Against a server that is not minietcd (``--minietcd-bin /usr/bin/etcd``) the members' peer
links cannot go through Toxiproxy (etcd dials its peers directly): process faults work, link
faults (``isolate``, ``partition``, ``slow``, ``blackhole``) skip the test, saying why.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import grpc

from minietcd.api.etcdserverpb import rpc_pb2
from minietcd.api.etcdserverpb import rpc_pb2_grpc as _rpc_grpc_untyped
from minietcd.client import Client
from minietcd.errors import LabError
from minietcd.lab import probe, processes
from minietcd.lab.cluster import Cluster, ClusterSpec
from minietcd.lab.faults import Faults, LinkFaultsUnsupported

rpc_pb2_grpc: Any = _rpc_grpc_untyped  # the generated stubs are untyped
_POLL = 0.05


class MinietcdCluster:
    """One running cluster of real processes (see the module docstring)."""

    def __init__(self, lab: Cluster) -> None:
        self.lab = lab
        self._faults = Faults(lab)

    @classmethod
    def start(
        cls,
        lab_dir: str | Path,
        size: int = 1,
        *,
        server: Sequence[str] = (),
        heartbeat_ms: int = 50,
        election_ms: int = 500,
        extra_flags: Sequence[str] = (),
        timeout: float = 60.0,
    ) -> MinietcdCluster:
        """Start ``size`` members in ``lab_dir`` (data, logs) on free ports and wait until they
        are healthy. ``server``: the command of another etcd server (``("/usr/bin/etcd",)``);
        default: this minietcd. Timings are etcd's flags (shorter than etcd's defaults, so
        failovers in tests take a fraction of a second)."""
        spec = ClusterSpec(
            size=size,
            heartbeat_ms=heartbeat_ms,
            election_ms=election_ms,
            token=f"minietcd-test-{Path(lab_dir).name}",
            extra_flags=tuple(extra_flags),
            server=tuple(server),
        )
        return cls(Cluster.up(Path(lab_dir), spec, timeout=timeout))

    # --- what clients use ----------------------------------------------------------------

    @property
    def names(self) -> list[str]:
        """``["n1", "n2", ...]``."""
        return self.lab.names

    @property
    def endpoints(self) -> list[str]:
        """Every member's client URL (``http://127.0.0.1:PORT``)."""
        return self.lab.endpoints()

    def endpoint(self, name: str) -> str:
        return self.lab.member(name).client_url

    def client(self, *names: str, timeout: float | None = 5.0, **kwargs: Any) -> Client:
        """A ``minietcd.client.Client`` on the named members (default: all); use it as
        ``async with cluster.client() as c:``. ``kwargs`` go to ``Client``."""
        return Client(self.lab.endpoints(names or None), timeout=timeout, **kwargs)

    @property
    def is_minietcd(self) -> bool:
        """False when the members are another server (``--minietcd-bin``)."""
        return not self.lab.state.server

    def pids(self) -> dict[str, int]:
        """The pid of every running member (and ``"toxiproxy"`` if the lab started one)."""
        out = {m.name: m.process.pid for m in self.lab.members if m.process and processes.alive(m.process)}
        tp = self.lab.state.toxiproxy_process
        if tp is not None and processes.alive(tp):
            out["toxiproxy"] = tp.pid
        return out

    def log_path(self, name: str) -> Path:
        return Path(self.lab.member(name).log_path)

    # --- process faults ------------------------------------------------------------------

    def kill(self, *names: str) -> None:
        """SIGKILL members; they stay down until ``restart``."""
        self._faults.kill(names)

    def restart(self, *names: str) -> None:
        """SIGKILL members if they run (or are paused), then start them on their data dirs."""
        self._faults.restart(names)

    def pause(self, *names: str) -> None:
        """SIGSTOP members: they keep their connections and answer nothing (a GC pause, a
        stalled VM); ``resume`` ends it."""
        self._faults.pause(names)

    def resume(self, *names: str) -> None:
        self._faults.resume(names)

    # --- link faults ---------------------------------------------------------------------

    def _links(self, fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except LinkFaultsUnsupported as e:
            import pytest

            pytest.skip(str(e))

    def isolate(self, *names: str) -> None:
        """Cut every peer link to and from members (clients still reach them)."""
        self._links(self._faults.isolate, names)

    def partition(self, *groups: Sequence[str]) -> None:
        """The network becomes exactly these groups, e.g. ``partition(["n1"], ["n2", "n3"])``;
        members named in no group form one more group."""
        self._links(self._faults.partition, [list(g) for g in groups])

    def slow(self, src: str, dst: str, ms: int = 200, jitter_ms: int = 0) -> None:
        """Delay what ``src`` sends to ``dst`` by ``ms`` (± ``jitter_ms``) milliseconds."""
        self._links(self._faults.slow, (src, dst), ms, jitter_ms)

    def blackhole(self, src: str, dst: str) -> None:
        """Drop what ``src`` sends to ``dst`` (its connections hang)."""
        self._links(self._faults.blackhole, (src, dst))

    def heal(self) -> None:
        """End partitions and isolation (slow and blackholed links stay: ``reset``)."""
        self._faults.heal()

    def reset(self) -> None:
        """Heal, remove every toxic, resume paused members (killed ones stay down)."""
        self._faults.reset()

    # --- watching it react ---------------------------------------------------------------

    def leader(self) -> str | None:
        """The leader as the first running member that knows one says (None: none known)."""
        return self.lab.leader()

    def _leader_now(self, among: Sequence[str] | None) -> tuple[str | None, str]:
        """The leader a quorum of all members (or every member of ``among``) agrees on and which
        says it leads, if there is one now; else None and what is missing."""
        wanted = list(among) if among else self.names
        votes: dict[int, list[str]] = {}
        said: list[str] = []
        for n in wanted:
            if self.lab.process_state(n) != "running":
                said.append(f"{n} is {self.lab.process_state(n)}")
                continue
            try:
                st = probe.status(self.lab.member(n).client_port, timeout=0.5)
            except probe.ProbeError as e:
                said.append(f"{n}: {e}")
                continue
            if st.leader:
                votes.setdefault(st.leader, []).append(n)
            else:
                said.append(f"{n}: no leader")
        need = len(wanted) if among else len(self.names) // 2 + 1
        for leader_id, voters in votes.items():
            m = self.lab.state.member_by_id(leader_id)
            if m is not None and len(voters) >= need and m.name in voters:
                return m.name, ""
        return None, "; ".join(said) or f"no leader agreed on by {need} members: {votes}"

    def wait_for_leader(self, timeout: float = 30.0, among: Sequence[str] | None = None) -> str:
        """Wait until a quorum of the members (or every member of ``among``, e.g. the majority
        side of a partition) agrees on a leader that says it leads; return its name."""
        deadline = time.monotonic() + timeout
        while True:
            leader, why = self._leader_now(among)
            if leader is not None:
                return leader
            if time.monotonic() >= deadline:
                raise LabError(f"no leader after {timeout:.0f}s: {why}")
            time.sleep(_POLL)

    def wait_healthy(self, timeout: float = 60.0, names: Iterable[str] | None = None) -> str:
        """Wait until the members (default: all that run) agree on a leader and serve a
        linearizable read; return the leader's name."""
        return self.lab.wait_healthy(timeout, names)

    async def wait_for_leader_async(self, timeout: float = 30.0, among: Sequence[str] | None = None) -> str:
        return await asyncio.to_thread(self.wait_for_leader, timeout, among)

    async def wait_healthy_async(self, timeout: float = 60.0, names: Iterable[str] | None = None) -> str:
        return await asyncio.to_thread(self.wait_healthy, timeout, names)

    # --- between tests and at the end ----------------------------------------------------

    def restore(self, timeout: float = 60.0) -> None:
        """Undo every fault (heal, remove toxics, resume paused members, restart killed ones),
        wait until healthy, then delete every key and revoke every lease: the state a test
        sharing this cluster starts from."""
        self._faults.reset()
        for n in self.names:
            if self.lab.process_state(n) == "killed":
                self.lab.start(n)
        leader = self.wait_healthy(timeout)
        port = self.lab.member(leader).client_port
        try:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
                everything = rpc_pb2.DeleteRangeRequest(key=b"\0", range_end=b"\0")
                rpc_pb2_grpc.KVStub(ch).DeleteRange(everything, timeout=10.0)
                leases = rpc_pb2_grpc.LeaseStub(ch)
                for lease in leases.LeaseLeases(rpc_pb2.LeaseLeasesRequest(), timeout=10.0).leases:
                    with contextlib.suppress(grpc.RpcError):  # expired meanwhile
                        leases.LeaseRevoke(rpc_pb2.LeaseRevokeRequest(ID=lease.ID), timeout=10.0)
        except grpc.RpcError as e:
            raise LabError(f"could not empty the cluster through {leader}: {e}") from None

    def log_offsets(self) -> dict[str, int]:
        """How long each member's log is now (to show only what a test added to it)."""
        out = {}
        for n in self.names:
            with contextlib.suppress(OSError):
                out[n] = self.log_path(n).stat().st_size
        return out

    def logs_since(self, offsets: dict[str, int], max_lines: int = 200) -> dict[str, str]:
        """Each member's log from ``offsets`` on (its last ``max_lines`` lines)."""
        out = {}
        for n in self.names:
            try:
                with open(self.log_path(n), "rb") as f:
                    f.seek(offsets.get(n, 0))
                    lines = f.read().decode(errors="replace").splitlines()
            except OSError as e:
                out[n] = f"<cannot read {self.log_path(n)}: {e}>"
                continue
            cut = len(lines) - max_lines
            head = [f"... ({cut} earlier lines in {self.log_path(n)})"] if cut > 0 else []
            out[n] = "\n".join(head + lines[-max_lines:])
        return out

    def down(self) -> list[str]:
        """Stop every process of this cluster (members by SIGKILL, the Toxiproxy it started);
        logs are kept in the lab dir. Returns what was stopped."""
        return self.lab.down()
