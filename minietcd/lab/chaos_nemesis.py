"""The chaos nemesis: from a seeded ``random.Random``, draws a fault among those enabled
(partition, kill, pause, slow, leader-transfer, member-replace), holds it a while, undoes it;
at the end of a run it heals everything. Each fault is recorded as a :class:`Fault` for the
report.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc

from minietcd.api.etcdserverpb import rpc_pb2
from minietcd.api.etcdserverpb import rpc_pb2_grpc as _rpc_grpc_untyped
from minietcd.errors import LabError
from minietcd.lab.cluster import Replacement
from minietcd.lab.faults import Faults

if TYPE_CHECKING:
    from minietcd.lab.chaos_options import ChaosCluster, ChaosOptions

rpc_pb2_grpc: Any = _rpc_grpc_untyped  # the generated stubs are untyped


@dataclass(slots=True)
class Fault:
    at: float  # seconds since the run started
    kind: str
    detail: str
    undone_at: float | None = None
    replacement: Replacement | None = None  # member-replace: ids and refusals, filled in as it goes

    def describe(self) -> str:
        held = "" if self.undone_at is None else f" for {self.undone_at - self.at:.1f}s"
        what = self.detail if self.replacement is None else f"{self.replacement.describe()}{self.detail}"
        return f"t={self.at:6.2f}s  {self.kind:<15} {what}{held}"


class Nemesis:
    def __init__(self, opts: ChaosOptions, cluster: ChaosCluster, rng: random.Random, t0: float) -> None:
        self.opts = opts
        self.cluster = cluster
        self.faults_api = Faults(cluster)
        self.rng = rng
        self.t0 = t0
        self.faults: list[Fault] = []
        self.skipped: list[str] = []
        self.kinds = list(opts.nemeses)
        self.replacements: list[Replacement] = []
        self._unfinished: Replacement | None = None  # removed and wiped, not added back yet
        if "member-replace" in self.kinds and len(cluster.members) < 3:
            self.kinds.remove("member-replace")
            self.skipped.append("member-replace skipped: a cluster of fewer than 3 members cannot lose one")
        if cluster.state.members and len(cluster.members) < 2:
            for k in ("partition", "slow", "leader-transfer"):
                if k in self.kinds:
                    self.kinds.remove(k)
                    self.skipped.append(f"{k} skipped: a 1-member cluster has no peers")

    def _now(self) -> float:
        return time.monotonic() - self.t0

    def _leader(self) -> str | None:
        return self.cluster.leader()

    def inject(self) -> tuple[Fault, Callable[[], None]] | None:
        """Draw and apply one fault; returns it and how to undo it (blocking calls)."""
        if not self.kinds:
            return None
        kind = self.rng.choice(self.kinds)
        names = list(self.cluster.names)
        n = len(names)
        undo: Callable[[], None]
        if kind == "partition":
            shuffled = names[:]
            self.rng.shuffle(shuffled)
            if self.rng.random() < self.opts.minority_bias:
                k = self.rng.randint(1, max(1, (n - 1) // 2))
            else:
                k = n // 2
            side = sorted(shuffled[:k])
            groups = self.faults_api.partition([side])
            detail = " | ".join(",".join(g) for g in groups)
            undo = self.faults_api.heal
        elif kind == "kill":
            target = self._pick_running(prefer_leader=True)
            if target is None:
                return None
            self.cluster.kill(target)
            detail = target
            undo = functools.partial(self.cluster.start, target)
        elif kind == "pause":
            target = self._pick_running(prefer_leader=True)
            if target is None:
                return None
            self.cluster.signal(target, signal.SIGSTOP)
            detail = target
            undo = functools.partial(self.cluster.signal, target, signal.SIGCONT)
        elif kind == "slow":
            target = self.rng.choice(names)
            latency = self.rng.choice((50, 100, 200))
            for other in names:
                if other != target:
                    self.faults_api.slow((target, other), latency, latency // 4)
            detail = f"{target}-> all, {latency}ms"
            undo = self.cluster.links.clear_toxics
        elif kind == "member-replace":
            got = self._begin_replace()
            if got is None:
                return None
            fault, undo = got
            self.faults.append(fault)
            self.opts.log(f"nemesis: {fault.describe()}")
            return fault, undo
        elif kind == "leader-transfer":
            leader = self._leader()
            if leader is None:
                return None
            target = self.rng.choice([x for x in names if x != leader])
            detail = f"{leader} -> {target}"
            try:
                self._move_leader(leader, target)
            except Exception as e:  # the transfer may time out under other faults: still a fault
                detail += f" ({type(e).__name__})"
            undo = _nothing
        else:  # pragma: no cover - filtered above
            return None
        fault = Fault(self._now(), kind, detail)
        self.faults.append(fault)
        self.opts.log(f"nemesis: {fault.describe()}")
        return fault, undo

    def _begin_replace(self) -> tuple[Fault, Callable[[], None]] | None:
        """Remove a member (the leader half the time) through a survivor, stop it and wipe its
        data dir; undoing adds it back (a new id) and starts it joining. A change etcd keeps
        refusing (unhealthy cluster...) for ``replace_timeout`` is recorded as a fault attempt
        that changed nothing."""
        if self._unfinished is not None:
            # A member removed earlier is not back yet: removing another could go below a
            # safe size. Try to add that one back instead (no new fault).
            self._finish_replace(self._unfinished, self.opts.replace_timeout)
            return None
        target = self._pick_running(prefer_leader=True)
        if target is None:
            return None
        rep = Replacement(target, self.cluster.member(target).member_id, was_leader=target == self._leader())
        fault = Fault(self._now(), "member-replace", "", replacement=rep)
        try:
            self.cluster.remove_member(rep, timeout=self.opts.replace_timeout)
        except LabError as e:
            fault.replacement = None
            fault.detail = f"{rep.describe()} NOT replaced: {str(e).splitlines()[0]}"
            return fault, _nothing
        fault.at = self._now()  # the member is gone from now on (refusals came before)
        self.cluster.wipe(target)
        self._unfinished = rep
        self.replacements.append(rep)
        return fault, functools.partial(self._finish_replace, rep, self.opts.replace_timeout)

    def _finish_replace(self, rep: Replacement, timeout: float) -> None:
        """MemberAdd ``rep`` back and start it; if etcd still refuses, ``heal_all`` retries."""
        try:
            if not rep.new_id:
                self.cluster.add_member(rep, timeout=timeout)
            self.cluster.start_joined(rep)
        except LabError as e:
            self.opts.log(f"nemesis: {rep.name} not added back yet: {str(e).splitlines()[0]}")
            return
        self._unfinished = None

    def _pick_running(self, prefer_leader: bool) -> str | None:
        running = [x for x in self.cluster.names if self.cluster.process_state(x) == "running"]
        if not running:
            return None
        if prefer_leader and self.rng.random() < 0.5:
            leader = self._leader()
            if leader in running:
                return leader
        return self.rng.choice(running)

    def _move_leader(self, leader: str, target: str) -> None:
        m = self.cluster.member(leader)
        target_id = self.cluster.member(target).member_id
        with grpc.insecure_channel(f"127.0.0.1:{m.client_port}") as ch:
            rpc_pb2_grpc.MaintenanceStub(ch).MoveLeader(
                rpc_pb2.MoveLeaderRequest(targetID=target_id), timeout=3.0
            )

    async def run(self, stop: asyncio.Event, until: float) -> None:
        rng = self.rng
        while time.monotonic() < until and not stop.is_set():
            await sleep_until(stop, min(until, time.monotonic() + rng.uniform(*self.opts.fault_gap)))
            if until - time.monotonic() < self.opts.fault_hold[0]:
                break  # no time left to hold a fault
            got = await asyncio.to_thread(self.inject)
            if got is None:
                continue
            fault, undo = got
            await sleep_until(stop, min(until, time.monotonic() + rng.uniform(*self.opts.fault_hold)))
            await asyncio.to_thread(undo)
            fault.undone_at = self._now()

    def heal_all(self) -> None:
        """Undo everything: links enabled, toxics gone, paused resumed, a removed member added
        back, killed ones restarted. A member that cannot be added back within 60 s stays out
        (and down: restarting it on an empty data dir would bootstrap a cluster of its own); the
        membership check fails the run for it."""
        self.faults_api.reset()
        if self._unfinished is not None:
            self._finish_replace(self._unfinished, 60.0)
        left_out = self._unfinished.name if self._unfinished is not None else None
        for m in self.cluster.members:
            if m.name != left_out and self.cluster.process_state(m.name) == "killed":
                self.cluster.start(m.name)


def _nothing() -> None:
    return None


async def sleep_until(stop: asyncio.Event, when: float) -> None:
    """Sleep by schedule until ``when`` (monotonic) or until ``stop`` is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), max(0.0, when - time.monotonic()))
