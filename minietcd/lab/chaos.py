"""Chaos runs: a real lab cluster, concurrent clients, a seeded nemesis, then the checkers.

``run_chaos(options)`` starts a cluster (``minietcd.lab.cluster``), runs for ``duration``
seconds:

* **clients** (asyncio, ``grpc.aio``), ``clients_per_member`` bound to each member, over a few
  keys ``chaos/k0..``: linearizable reads (Range), puts, and compare-and-set transactions
  (compare the value this client last saw, then put, else get: a failed CAS is a read too);
* **watchers**, one per member, on the prefix ``chaos/`` from revision 1, resuming from
  ``last revision + 1`` when their stream breaks;
* a **nemesis** that draws, from ``random.Random(seed)``, a fault among those enabled
  (partition, kill, pause, slow, leader-transfer, member-replace), holds it a while, undoes it.

Every request is recorded with its invoke/complete instants (one monotonic clock) and outcome:
``ok``; ``fail`` only when the request provably did not take effect (a read, whose failure has
no effect, or a write that never left the client: connection refused); ``unknown`` otherwise
(timeouts, server errors after proposal, connection lost mid-call).

At the end the nemesis heals everything, killed members are restarted, the cluster must become
healthy, every key is read once more from the leader, and the linearizability, watch and
durability checkers run. The final membership is checked too (``check_membership``: MemberList
holds every member, started, each replacement finished): a run that lost a member fails. The
report gives operations, faults, elections seen (``became leader`` in the member logs),
verdicts and checker time, and on failure the reason, the shrunk failing sub-history and the
seed that replays the schedule.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import random
import re
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import grpc.aio

from minietcd.api.etcdserverpb import rpc_pb2
from minietcd.api.etcdserverpb import rpc_pb2_grpc as _rpc_grpc_untyped
from minietcd.errors import LabError
from minietcd.lab import probe
from minietcd.lab.check import (
    DurabilityResult,
    FinalValue,
    LinearizabilityResult,
    OpKind,
    Recorder,
    Verdict,
    WatchEvent,
    WatchRecord,
    WatchResult,
    check_durability,
    check_linearizability,
    check_watches,
    format_report,
    save_history,
    write_html_timeline,
)
from minietcd.lab.check.watch import EventType, prefix_range_end
from minietcd.lab.cluster import Cluster, ClusterSpec, Replacement
from minietcd.lab.compose import ComposeCluster
from minietcd.lab.faults import Faults
from minietcd.lab.labdir import exclusive
from minietcd.lab.ports import PortPlan
from minietcd.lab.web import chaos_view

rpc_pb2_grpc: Any = _rpc_grpc_untyped  # the generated stubs are untyped
# The same run, checkers and report on local processes or compose containers (--compose).
ChaosCluster = Cluster | ComposeCluster

NEMESES = ("partition", "kill", "pause", "slow", "leader-transfer", "member-replace")
UNSAFE_READS_ENV = "MINIETCD_UNSAFE_LOCAL_READS"
PREFIX = "chaos/"
_ELECTED = re.compile(r"became leader at term (\d+)")


def parse_nemeses(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in NEMESES and n != "none"]
    if bad:
        raise LabError(f"unknown nemesis {', '.join(bad)}: choose among {', '.join(NEMESES)}, none")
    return [n for n in names if n != "none"]


@dataclass(slots=True)
class ChaosOptions:
    lab_dir: Path
    size: int = 5
    duration: float = 60.0  # seconds of workload under faults
    nemeses: Sequence[str] = ("partition", "kill", "pause")
    seed: int = 0
    clients_per_member: int = 2
    keys: int = 3
    op_timeout: float = 1.0  # per request
    fault_hold: tuple[float, float] = (1.5, 4.0)  # seconds a fault stays in force
    fault_gap: tuple[float, float] = (0.5, 1.5)  # seconds between faults
    # Partition nemesis: the fraction of partitions that cut a *minority* (vs. random halves).
    minority_bias: float = 0.5
    read_ratio: float = 0.5  # fraction of client ops that are reads (rest: puts and txns)
    unsafe_local_reads: bool = False  # start members with MINIETCD_UNSAFE_LOCAL_READS=1
    heartbeat_ms: int = 50
    election_ms: int = 500
    html: Path | None = None
    history_json: Path | None = None
    record: Path | None = None  # the run for `minietcd-lab web --replay` (lab/web/chaos_view.py)
    check_timeout: float = 60.0
    # Members snapshot (and release their log 5,000 entries behind) this often, so that a member
    # replaced late in a run has to catch up from a snapshot rather than from the whole log.
    snapshot_count: int = 1000
    replace_timeout: float = 20.0  # seconds a refused MemberRemove / MemberAdd is retried
    ports: PortPlan | None = None  # the cluster's ports (minietcd.lab.ports); None: random free ones
    backend: str = "local"  # or "compose": members are containers (minietcd.lab.compose)
    log: Callable[[str], None] = print


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


@dataclass(slots=True)
class MembershipCheck:
    """Did the cluster end as it began: ``expected`` members in MemberList, every one started,
    every replacement finished? ``problems`` says what is wrong (empty: ok)."""

    expected: int
    listed: int
    started: int
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        state = "ok" if self.ok else f"FAILED: {len(self.problems)} problem(s)"
        counts = f"{self.listed} in MemberList, {self.started} started, expected {self.expected}"
        head = f"membership: {state} ({counts})"
        return [head, *(f"  {p}" for p in self.problems)]


def check_membership(
    size: int,
    listed: Sequence[probe.ListedMember],
    replacements: Sequence[Replacement] = (),
    expected_ids: dict[str, int] | None = None,
    not_running: Sequence[str] = (),
) -> MembershipCheck:
    """The final membership against what the run should have left: ``size`` voters in the final
    MemberList ``listed``, all started (a member publishes its name once it has started), the
    newest replacement of each member added back and started under its new id, no removed id
    left, each member under the id the lab has for it (``expected_ids``: name -> id) and every
    member process running (``not_running`` names those that were not)."""
    problems: list[str] = []
    ids = {m.id for m in listed}
    if not listed:
        problems.append("MemberList could not be read from any member")
    elif len(listed) != size:
        problems.append(f"{len(listed)} members in MemberList, expected {size}")
    unstarted = [f"{m.id:x}" for m in listed if not m.name]
    if unstarted:
        problems.append(f"never started (no name published): {', '.join(unstarted)}")
    learners = [m.name or f"{m.id:x}" for m in listed if m.is_learner]
    if learners:
        problems.append(f"still learners: {', '.join(learners)}")
    newest = {rep.name: rep for rep in replacements}
    for rep in newest.values():
        if not rep.new_id:
            problems.append(f"{rep.name} was removed ({rep.old_id:x}) and never added back")
        elif not rep.started:
            problems.append(f"{rep.name} was added back as {rep.new_id:x} but never started")
        elif listed and rep.new_id not in ids:
            problems.append(f"{rep.name}'s new id {rep.new_id:x} is not in MemberList")
    for rep in replacements:
        if rep.old_id in ids:
            problems.append(f"{rep.name}'s removed id {rep.old_id:x} is still in MemberList")
    if listed:
        for name, want in (expected_ids or {}).items():
            if want not in ids:
                problems.append(f"{name} ({want:x}) is missing from MemberList")
    if not_running:
        problems.append(f"not running at the end: {', '.join(not_running)}")
    started = sum(1 for m in listed if m.name)
    return MembershipCheck(size, len(listed), started, problems)


@dataclass(slots=True)
class ChaosResult:
    options: ChaosOptions
    ops: list[Any]
    faults: list[Fault]
    skipped: list[str]
    elections: int
    linearizability: LinearizabilityResult
    watch: WatchResult
    durability: DurabilityResult
    report: str
    lab_dir: Path = field(default_factory=Path)
    replacements: list[Replacement] = field(default_factory=list)
    final_members: list[probe.ListedMember] = field(default_factory=list)  # MemberList at the end
    expected_ids: dict[str, int] = field(default_factory=dict)  # name -> id in the lab state at the end
    not_running: list[str] = field(default_factory=list)  # members whose process was not running at the end

    @property
    def membership(self) -> MembershipCheck:
        return check_membership(
            self.options.size, self.final_members, self.replacements, self.expected_ids, self.not_running
        )

    @property
    def histories_ok(self) -> bool:
        """The linearizability, watch and durability checks passed."""
        return self.linearizability.verdict is not Verdict.ILLEGAL and self.watch.ok and self.durability.ok

    @property
    def ok(self) -> bool:
        return self.histories_ok and self.membership.ok


# --- clients -------------------------------------------------------------------------------------


def _not_sent(e: grpc.aio.AioRpcError) -> bool:
    """The request provably never reached a server (so a write was not applied)."""
    if e.code() is not grpc.StatusCode.UNAVAILABLE:
        return False
    d = (e.details() or "").lower()
    return "failed to connect" in d or "connection refused" in d


class _Workload:
    def __init__(self, opts: ChaosOptions, cluster: ChaosCluster, rng: random.Random) -> None:
        self.opts = opts
        self.cluster = cluster
        self.t0 = time.monotonic()
        self.recorder = Recorder(clock=time.monotonic)
        self.keys = [f"{PREFIX}k{i}" for i in range(opts.keys)]
        self.stop = asyncio.Event()
        self.watches: list[WatchRecord] = []
        self._rng_seeds = [rng.randrange(1 << 30) for _ in range(64)]

    async def client(self, cid: int, port: int) -> None:
        rng = random.Random(self._rng_seeds[cid % len(self._rng_seeds)] + cid)
        known: dict[str, tuple[str | None, int]] = {}  # key -> (value, mod_revision) last seen
        n = 0
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            kv = rpc_pb2_grpc.KVStub(ch)
            while not self.stop.is_set():
                key = rng.choice(self.keys)
                n += 1
                value = f"c{cid}-{n}"
                r = rng.random()
                if r < self.opts.read_ratio:
                    ok = await self._get(kv, cid, key, known)
                elif r < self.opts.read_ratio + (1 - self.opts.read_ratio) / 2:
                    ok = await self._put(kv, cid, key, value, known)
                else:
                    ok = await self._txn(kv, cid, key, value, known)
                if not ok:
                    await asyncio.sleep(rng.uniform(0.02, 0.1))  # pacing after an error

    async def _get(self, kv: Any, cid: int, key: str, known: dict[str, tuple[str | None, int]]) -> bool:
        rec = self.recorder
        op = rec.invoke(cid, OpKind.GET, key)
        try:
            resp = await kv.Range(rpc_pb2.RangeRequest(key=key.encode()), timeout=self.opts.op_timeout)
        except grpc.aio.AioRpcError as e:
            rec.fail(op, _err(e))  # a read has no effect: a failed one is simply dropped
            return False
        val, mod = (resp.kvs[0].value.decode(), int(resp.kvs[0].mod_revision)) if resp.kvs else (None, 0)
        rec.ok(op, read_value=val, read_mod_revision=mod, revision=int(resp.header.revision))
        known[key] = (val, mod)
        return True

    async def _put(
        self, kv: Any, cid: int, key: str, value: str, known: dict[str, tuple[str | None, int]]
    ) -> bool:
        rec = self.recorder
        op = rec.invoke(cid, OpKind.PUT, key, value=value)
        try:
            resp = await kv.Put(
                rpc_pb2.PutRequest(key=key.encode(), value=value.encode()), timeout=self.opts.op_timeout
            )
        except grpc.aio.AioRpcError as e:
            self._write_error(op, e)
            return False
        rev = int(resp.header.revision)
        rec.ok(op, revision=rev)
        known[key] = (value, rev)
        return True

    async def _txn(
        self, kv: Any, cid: int, key: str, value: str, known: dict[str, tuple[str | None, int]]
    ) -> bool:
        rec = self.recorder
        expect, _ = known.get(key, (None, 0))
        k = key.encode()
        if expect is None:  # "create if absent": compare mod_revision == 0
            cmp = rpc_pb2.Compare(
                key=k, target=rpc_pb2.Compare.MOD, result=rpc_pb2.Compare.EQUAL, mod_revision=0
            )
            op = rec.invoke(cid, OpKind.TXN, key, value=value, expect_mod_revision=0)
        else:
            cmp = rpc_pb2.Compare(
                key=k, target=rpc_pb2.Compare.VALUE, result=rpc_pb2.Compare.EQUAL, value=expect.encode()
            )
            op = rec.invoke(cid, OpKind.TXN, key, value=value, expect_value=expect)
        req = rpc_pb2.TxnRequest(
            compare=[cmp],
            success=[rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=k, value=value.encode()))],
            failure=[rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=k))],
        )
        try:
            resp = await kv.Txn(req, timeout=self.opts.op_timeout)
        except grpc.aio.AioRpcError as e:
            self._write_error(op, e)
            return False
        rev = int(resp.header.revision)
        if resp.succeeded:
            rec.ok(op, succeeded=True, revision=rev)
            known[key] = (value, rev)
        else:
            kvs = resp.responses[0].response_range.kvs if resp.responses else []
            val, mod = (kvs[0].value.decode(), int(kvs[0].mod_revision)) if kvs else (None, 0)
            rec.ok(op, succeeded=False, read_value=val, read_mod_revision=mod, revision=rev)
            known[key] = (val, mod)
        return True

    def _write_error(self, op: int, e: grpc.aio.AioRpcError) -> None:
        if _not_sent(e):
            self.recorder.fail(op, _err(e))
        else:
            self.recorder.unknown(op, _err(e))

    async def watcher(self, wid: int, port: int) -> None:
        rec = WatchRecord(
            watcher=wid, key=PREFIX, range_end=prefix_range_end(PREFIX), start_revision=1, client=1000 + wid
        )
        self.watches.append(rec)
        next_rev = 1
        while not self.stop.is_set():
            try:
                async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
                    stub = rpc_pb2_grpc.WatchStub(ch)
                    create = rpc_pb2.WatchRequest(
                        create_request=rpc_pb2.WatchCreateRequest(
                            key=PREFIX.encode(),
                            range_end=prefix_range_end(PREFIX).encode(),
                            start_revision=next_rev,
                        )
                    )
                    call = stub.Watch(iter([create]))
                    async for resp in call:
                        for ev in resp.events:
                            r = int(ev.kv.mod_revision)
                            typ = EventType.DELETE if ev.type == 1 else EventType.PUT
                            rec.events.append(
                                WatchEvent(
                                    revision=r,
                                    key=ev.kv.key.decode(),
                                    type=typ,
                                    value=ev.kv.value.decode() if typ is EventType.PUT else None,
                                    received=time.monotonic(),
                                )
                            )
                            next_rev = max(next_rev, r + 1)
                        if resp.canceled:
                            break
            except grpc.aio.AioRpcError:
                pass
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), 0.2)  # reconnect pacing


def _err(e: grpc.aio.AioRpcError) -> str:
    return f"{e.code().name}: {e.details()}"


# --- nemesis -------------------------------------------------------------------------------------


class _Nemesis:
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
            await _sleep_until(stop, min(until, time.monotonic() + rng.uniform(*self.opts.fault_gap)))
            if until - time.monotonic() < self.opts.fault_hold[0]:
                break  # no time left to hold a fault
            got = await asyncio.to_thread(self.inject)
            if got is None:
                continue
            fault, undo = got
            await _sleep_until(stop, min(until, time.monotonic() + rng.uniform(*self.opts.fault_hold)))
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


async def _sleep_until(stop: asyncio.Event, when: float) -> None:
    """Sleep by schedule until ``when`` (monotonic) or until ``stop`` is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), max(0.0, when - time.monotonic()))


# --- the run -------------------------------------------------------------------------------------


@contextlib.contextmanager
def _member_env(unsafe: bool) -> Iterator[None]:
    """Members inherit the lab's environment (``Cluster.environment``): set the unsafe flag
    there for the members started inside this block, and take it away again."""
    saved = os.environ.get(UNSAFE_READS_ENV)
    if unsafe:
        os.environ[UNSAFE_READS_ENV] = "1"
    else:
        os.environ.pop(UNSAFE_READS_ENV, None)
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(UNSAFE_READS_ENV, None)
        else:
            os.environ[UNSAFE_READS_ENV] = saved


def count_elections(cluster: ChaosCluster) -> int:
    terms: set[int] = set()
    for m in cluster.members:
        for line in cluster.log_bytes(m.name).decode(errors="replace").splitlines():
            match = _ELECTED.search(line)
            if match:
                terms.add(int(match.group(1)))
    return len(terms)


def _final_read(
    cluster: ChaosCluster, keys: Sequence[str], timeout: float
) -> tuple[dict[str, FinalValue | None], int]:
    """Every key, read linearizably (retrying any member until ``timeout``)."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        for m in cluster.members:
            try:
                with grpc.insecure_channel(f"127.0.0.1:{m.client_port}") as ch:
                    kv = rpc_pb2_grpc.KVStub(ch)
                    resp = kv.Range(
                        rpc_pb2.RangeRequest(
                            key=PREFIX.encode(), range_end=prefix_range_end(PREFIX).encode()
                        ),
                        timeout=2.0,
                    )
            except grpc.RpcError as e:
                last = str(e)
                continue
            final: dict[str, FinalValue | None] = {k: None for k in keys}
            for item in resp.kvs:
                final[item.key.decode()] = FinalValue(item.value.decode(), int(item.mod_revision))
            return final, int(resp.header.revision)
        time.sleep(0.1)  # poll pacing, bounded by the deadline
    raise LabError(f"final read failed for {timeout:.0f}s: {last}")


async def _run_async(opts: ChaosOptions, cluster: ChaosCluster) -> tuple[_Workload, _Nemesis]:
    rng = random.Random(opts.seed)
    work = _Workload(opts, cluster, rng)
    nemesis = _Nemesis(opts, cluster, random.Random(rng.randrange(1 << 30)), work.t0)
    for note in nemesis.skipped:
        opts.log(f"note: {note}")
    tasks: list[asyncio.Task[None]] = []
    cid = 0
    for m in cluster.members:
        for _ in range(opts.clients_per_member):
            tasks.append(asyncio.create_task(work.client(cid, m.client_port)))
            cid += 1
    watchers = [asyncio.create_task(work.watcher(i, m.client_port)) for i, m in enumerate(cluster.members)]
    until = time.monotonic() + opts.duration
    try:
        await nemesis.run(work.stop, until)
        await _sleep_until(work.stop, until)
        work.stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), opts.op_timeout + 10)
        opts.log("workload stopped; healing")
        await asyncio.to_thread(nemesis.heal_all)
        await asyncio.to_thread(cluster.wait_healthy, 60.0)
        # Let the watchers catch up with the store before they stop (poll, bounded).
        _, final_rev = await asyncio.to_thread(_final_read, cluster, work.keys, 30.0)
        deadline = time.monotonic() + 15.0
        while time.monotonic() < deadline:
            if all(w.end_revision >= final_rev for w in work.watches):
                break
            await asyncio.sleep(0.1)
    finally:
        work.stop.set()
        for t in [*tasks, *watchers]:
            t.cancel()
        await asyncio.gather(*tasks, *watchers, return_exceptions=True)
    return work, nemesis


def run_chaos(opts: ChaosOptions) -> ChaosResult:
    """One chaos run (see the module docstring); the cluster is always brought down."""
    log = opts.log
    spec = ClusterSpec(
        size=opts.size,
        heartbeat_ms=opts.heartbeat_ms,
        election_ms=opts.election_ms,
        extra_flags=("--snapshot-count", str(opts.snapshot_count)),
        ports=opts.ports,
    )
    if opts.backend == "compose" and opts.unsafe_local_reads:
        raise LabError("--unsafe-local-reads (a test of the checker) runs on local clusters only")
    with exclusive(Path(opts.lab_dir), "chaos"), _member_env(opts.unsafe_local_reads):
        if opts.unsafe_local_reads:
            log(f"WARNING: members run with {UNSAFE_READS_ENV}=1 (reads are NOT linearizable)")
        cluster: ChaosCluster
        if opts.backend == "compose":
            cluster = ComposeCluster.up(opts.lab_dir, spec, timeout=180.0)
        else:
            cluster = Cluster.up(opts.lab_dir, spec, timeout=90.0)
        recorder = chaos_view.BackgroundRecorder(opts.lab_dir).start() if opts.record else None
        try:
            log(
                f"{opts.size}-member cluster up in {cluster.state.lab_dir}; seed {opts.seed}; "
                f"nemeses {','.join(opts.nemeses) or 'none'}; {opts.duration:.0f}s"
            )
            work, nemesis = asyncio.run(_run_async(opts, cluster))
            final, final_rev = _final_read(cluster, work.keys, 30.0)
            elections = count_elections(cluster)
            final_members = _final_members(cluster, 30.0)
            expected_ids = {m.name: m.member_id for m in cluster.members}
            not_running = [m.name for m in cluster.members if cluster.process_state(m.name) != "running"]
            caught_up = _caught_up(cluster, nemesis.replacements)
        finally:
            if recorder is not None:
                recorder.stop()
            cluster.down()
    ops = work.recorder.close()
    log(f"checking {len(ops)} operations...")
    lin = check_linearizability(ops, timeout=opts.check_timeout)
    watch = check_watches(work.watches, ops=ops)
    dur = check_durability(ops, final, final_revision=final_rev)
    result = ChaosResult(
        opts,
        ops,
        nemesis.faults,
        nemesis.skipped,
        elections,
        lin,
        watch,
        dur,
        "",
        Path(opts.lab_dir),
        nemesis.replacements,
        final_members,
        expected_ids,
        not_running,
    )
    result.report = _report(result, caught_up)
    if opts.history_json is not None:
        save_history(opts.history_json, ops)
    if opts.html is not None:
        write_html_timeline(opts.html, ops, result=lin, title=f"minietcd chaos, seed {opts.seed}")
    if opts.record is not None and recorder is not None:
        lines = result.report.splitlines()
        verdict = next((x for x in lines if x.startswith("verdict: ")), "")
        offset = chaos_view.monotonic_offset()
        section = chaos_view.chaos_section(lines[0], ops, nemesis.faults, work.t0, offset, verdict)
        chaos_view.save(opts.record, recorder, section)
    return result


def _caught_up(cluster: ChaosCluster, reps: Sequence[Replacement]) -> dict[int, int | None]:
    """``id(rep)`` -> index of the snapshot each fresh member caught up from (None: the log)."""
    out: dict[int, int | None] = {}
    for i, rep in enumerate(reps):
        if not rep.started:
            out[id(rep)] = None
            continue
        later = [r.log_offset for r in reps[i + 1 :] if r.name == rep.name]
        out[id(rep)] = cluster.caught_up_by_snapshot(rep, later[0] if later else None)
    return out


def _final_members(cluster: ChaosCluster, timeout: float) -> list[probe.ListedMember]:
    """MemberList once every member in it has started (published its name), bounded."""
    deadline = time.monotonic() + timeout
    listed: list[probe.ListedMember] = []
    while time.monotonic() < deadline:
        for m in cluster.members:
            with contextlib.suppress(probe.ProbeError):
                listed = probe.member_list(m.client_port)
                if len(listed) == len(cluster.members) and all(x.name for x in listed):
                    return listed
        time.sleep(0.2)  # poll pacing, bounded by the deadline
    return listed  # the report shows what is missing


def _report(r: ChaosResult, caught_up: dict[int, int | None] | None = None) -> str:
    o = r.options
    title = f"minietcd-lab chaos: {o.size} members, {o.duration:.0f}s, seed {o.seed}"
    body = format_report(r.linearizability, r.ops, watch=r.watch, durability=r.durability, title=title)
    head, _, rest = body.partition("\n\n")
    by_kind: dict[str, int] = {}
    for f in r.faults:
        by_kind[f.kind] = by_kind.get(f.kind, 0) + 1
    lines = [head, ""]
    if o.unsafe_local_reads:
        lines.append(f"!!! members ran with {UNSAFE_READS_ENV}=1 (deliberately broken reads)")
    lines.append(
        f"faults injected: {len(r.faults)} ("
        + ", ".join(f"{k} {n}" for k, n in sorted(by_kind.items()))
        + ")"
    )
    lines += [f"  {f.describe()}" for f in r.faults]
    lines += [f"  note: {s}" for s in r.skipped]
    if r.replacements:
        how = []
        for rep in r.replacements:
            snap = (caught_up or {}).get(id(rep))
            how.append(f"{rep.name} from a snapshot at index {snap}" if snap else f"{rep.name} from the log")
        lines.append(f"members replaced: {len(r.replacements)}, caught up: " + "; ".join(how))
    lines.append(f"elections seen: {r.elections} (terms with a 'became leader' in the member logs)")
    lines.append("")
    membership = r.membership
    if r.ok:
        verdict = "OK: no violation"
    else:
        failed = [] if r.histories_ok else ["VIOLATION"]
        if not membership.ok:
            failed.append(f"membership FAILED ({membership.problems[0]})")
        verdict = "; ".join(failed)
    replay = (
        f"minietcd-lab chaos --size {o.size} --duration {o.duration:g}s "
        f"--nemesis {','.join(o.nemeses)} --seed {o.seed}"
        + (" --unsafe-local-reads" if o.unsafe_local_reads else "")
    )
    tail = ["", *membership.lines(), "", f"verdict: {verdict}"]
    if not r.ok:
        tail.append(f"replay the fault schedule with: {replay}")
    return "\n".join(lines) + "\n" + rest + "\n".join(tail) + "\n"
