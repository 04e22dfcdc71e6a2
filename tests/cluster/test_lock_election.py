"""Locks and elections on real processes: the real ``etcdctl lock`` / ``etcdctl elect`` (which
run etcd's client-side recipes on KV, lease and watch), and the server-side ``v3lockpb.Lock`` /
``v3electionpb.Election`` services over gRPC.

Every scenario is parametrized over minietcd and real etcd 3.4 (the ``compat`` half): the
etcdctl transcripts are compared with the same expected text, recorded from etcd, after
replacing each lease id by L1, L2, ... in order of appearance; the gRPC scenarios make the same
assertions against both servers.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from minietcd.api.etcdserverpb import rpc_pb2
from minietcd.api.etcdserverpb import rpc_pb2_grpc as _rpc_grpc
from minietcd.api.v3electionpb import v3election_pb2 as epb
from minietcd.api.v3electionpb import v3election_pb2_grpc as _election_grpc
from minietcd.api.v3lockpb import v3lock_pb2 as lpb
from minietcd.api.v3lockpb import v3lock_pb2_grpc as _lock_grpc
from tests.cluster.harness import ETCDCTL, ProcessCluster, clean_env, etcd_binary, minietcd_binary

pytestmark = [pytest.mark.cluster]

ClusterFactory = Callable[..., ProcessCluster]

# The generated stubs are untyped.
rpc_grpc: Any = _rpc_grpc
election_grpc: Any = _election_grpc
lock_grpc: Any = _lock_grpc

SERVERS = ["minietcd", pytest.param("etcd", marks=pytest.mark.compat)]
#: Generous: the machine may be busy with other test runs.
WAIT = 60.0
#: etcdctl lock's session TTL in these tests: how long a SIGKILLed holder keeps the lock.
LOCK_TTL = "5"
#: etcdctl get flags listing keys oldest first (key order would follow the lease ids).
BY_CREATION = ("--sort-by=CREATE", "--order=ASCEND")


def start_cluster(process_cluster: ClusterFactory, server: str) -> ProcessCluster:
    binary = etcd_binary() if server == "etcd" else minietcd_binary()
    c = process_cluster(binary, 3).start()
    c.wait_healthy(WAIT)
    return c


def poll(pred: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)


# --- etcdctl in the background -------------------------------------------------------------------


class Etcdctl:
    """One long-running etcdctl (``lock`` / ``elect``), its output going to files."""

    def __init__(
        self, c: ProcessCluster, endpoint: int, args: tuple[str, ...], workdir: Path, n: int
    ) -> None:
        self.args = args
        self._out = workdir / f"etcdctl{n}.out"
        self._err = workdir / f"etcdctl{n}.err"
        with open(self._out, "wb") as out, open(self._err, "wb") as err:
            self.proc = subprocess.Popen(
                [ETCDCTL, f"--endpoints={c.endpoint(endpoint)}", *args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=clean_env({"ETCDCTL_API": "3"}),
                cwd=workdir,
                start_new_session=True,
            )

    @property
    def stdout(self) -> str:
        return self._out.read_text()

    @property
    def stderr(self) -> str:
        return self._err.read_text()

    def wait_lines(self, n: int, timeout: float = WAIT) -> str:
        """Wait until at least ``n`` lines were printed; return stdout."""
        poll(
            lambda: self.stdout.count("\n") >= n or self.proc.poll() is not None,
            f"{n} lines from etcdctl {' '.join(self.args)}",
            timeout,
        )
        out = self.stdout
        assert out.count("\n") >= n, f"etcdctl {self.args} exited {self.proc.returncode}: {out}{self.stderr}"
        return out

    def signal(self, sig: signal.Signals, timeout: float = WAIT) -> int:
        """Send ``sig`` and return the exit code."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
        return self.proc.wait(timeout=timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


@pytest.fixture
def etcdctl_bg(tmp_path: Path) -> Iterator[Callable[..., Etcdctl]]:
    """``etcdctl_bg(cluster, endpoint_index, *args)`` starts etcdctl; all are killed at the end."""
    started: list[Etcdctl] = []

    def start(c: ProcessCluster, endpoint: int, *args: str) -> Etcdctl:
        p = Etcdctl(c, endpoint, args, tmp_path, len(started))
        started.append(p)
        return p

    yield start
    for p in started:
        p.close()


class Transcript:
    """What a scenario saw, with lease ids (hex, after a '/') replaced by L1, L2, ..."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._ids: dict[str, str] = {}

    def _norm(self, text: str) -> str:
        def name(m: re.Match[str]) -> str:
            return "/" + self._ids.setdefault(m.group(1), f"L{len(self._ids) + 1}")

        return re.sub(r"/([0-9a-f]{6,16})\b", name, text)

    def add(self, step: str, text: str) -> None:
        self.lines.append(f"# {step}")
        self.lines.extend(self._norm(text).splitlines())

    def run(self, c: ProcessCluster, step: str, *args: str) -> None:
        r = c.etcdctl(*args, timeout=WAIT)
        self.add(f"{step} (exit {r.returncode})", r.stdout + r.stderr)


def keys_under(c: ProcessCluster, prefix: str) -> int:
    return c.etcdctl_ok("get", "--prefix", prefix, "--keys-only").count(prefix)


# --- etcdctl lock ------------------------------------------------------------------------------

LOCK_EXPECTED = """\
# A holds the lock
mylock/L1

# both queued
mylock/L1

mylock/L2

# B while A holds
# B after A is SIGKILLed and its lease expired
mylock/L2

# B on SIGTERM (exit 0)
# keys left (exit 0)
# lock with a command (exit 0)
mylock/L3
rev-ok
# lock with a failing command (exit 1)
Error: exit status 1
# lock without a name (exit 128)
Error: lock takes a lock name argument and an optional command to execute"""


@pytest.mark.parametrize("server", SERVERS)
def test_etcdctl_lock(
    process_cluster: ClusterFactory, etcdctl_bg: Callable[..., Etcdctl], server: str
) -> None:
    c = start_cluster(process_cluster, server)
    t = Transcript()
    a = etcdctl_bg(c, 0, "lock", "--ttl", LOCK_TTL, "mylock")
    t.add("A holds the lock", a.wait_lines(2))
    b = etcdctl_bg(c, 1, "lock", "--ttl", LOCK_TTL, "mylock")
    poll(lambda: keys_under(c, "mylock/") == 2, "B to queue behind A")
    t.add("both queued", c.etcdctl_ok("get", "--prefix", "mylock/", "--keys-only", *BY_CREATION))
    t.add("B while A holds", b.stdout)
    a.signal(signal.SIGKILL)
    # A's keep-alives stopped: its lease expires within the TTL, its key goes, B holds the lock.
    t.add("B after A is SIGKILLed and its lease expired", b.wait_lines(2))
    code = b.signal(signal.SIGTERM)
    t.add(f"B on SIGTERM (exit {code})", b.stderr)
    t.run(c, "keys left", "get", "--prefix", "mylock/")
    script = 'echo "$ETCD_LOCK_KEY"; test "$ETCD_LOCK_REV" -gt 0 && echo rev-ok'
    t.run(c, "lock with a command", "lock", "mylock", "--", "sh", "-c", script)
    t.run(c, "lock with a failing command", "lock", "mylock", "false")
    t.run(c, "lock without a name", "lock")
    assert "\n".join(t.lines) == LOCK_EXPECTED


@pytest.mark.parametrize("server", SERVERS)
def test_etcdctl_lock_exec_excludes(
    process_cluster: ClusterFactory, etcdctl_bg: Callable[..., Etcdctl], server: str, tmp_path: Path
) -> None:
    """Several ``etcdctl lock NAME cmd`` at once through different members: the commands never
    overlap (each claims a directory that must not exist, holds it a while, and removes it)."""
    c = start_cluster(process_cluster, server)
    cmd = "mkdir held || echo OVERLAP; sleep 0.3; rmdir held; echo done"
    procs = [etcdctl_bg(c, i % 3, "lock", "crit", "--", "sh", "-c", cmd) for i in range(5)]
    for p in procs:
        assert p.proc.wait(timeout=WAIT * 2) == 0, p.stderr
        assert p.stdout == "done\n", p.stdout + p.stderr
    assert not (tmp_path / "held").exists()
    assert keys_under(c, "crit/") == 0


# --- etcdctl elect -----------------------------------------------------------------------------

ELECT_EXPECTED = """\
# C1 elected
myelection/L1
p1
# observer sees C1
myelection/L1
p1
# a late observer sees the current leader at once
myelection/L1
p1
# both campaigning
myelection/L1
p1
myelection/L2
p2
# C2 while C1 leads
# C1 on SIGTERM (exit 0)
# C2 elected
myelection/L2
p2
# observer sees C2
myelection/L1
p1
myelection/L2
p2
# C2 on SIGINT (exit 0)
# keys left (exit 0)
# observer on SIGTERM (exit 0)
# no proposal without -l (exit 128)
Error: no proposal argument but -l not set"""


@pytest.mark.parametrize("server", SERVERS)
def test_etcdctl_elect(
    process_cluster: ClusterFactory, etcdctl_bg: Callable[..., Etcdctl], server: str
) -> None:
    c = start_cluster(process_cluster, server)
    t = Transcript()
    observer = etcdctl_bg(c, 2, "elect", "-l", "myelection")  # before anyone campaigns
    c1 = etcdctl_bg(c, 0, "elect", "myelection", "p1")
    t.add("C1 elected", c1.wait_lines(2))
    t.add("observer sees C1", observer.wait_lines(2))
    late = etcdctl_bg(c, 1, "elect", "-l", "myelection")
    t.add("a late observer sees the current leader at once", late.wait_lines(2))
    late.signal(signal.SIGTERM)
    c2 = etcdctl_bg(c, 1, "elect", "myelection", "p2")
    poll(lambda: keys_under(c, "myelection/") == 2, "C2 to campaign")
    t.add("both campaigning", c.etcdctl_ok("get", "--prefix", "myelection/", *BY_CREATION))
    t.add("C2 while C1 leads", c2.stdout)
    code = c1.signal(signal.SIGTERM)  # resigns
    t.add(f"C1 on SIGTERM (exit {code})", c1.stderr)
    t.add("C2 elected", c2.wait_lines(2))
    t.add("observer sees C2", observer.wait_lines(4))
    code = c2.signal(signal.SIGINT)
    t.add(f"C2 on SIGINT (exit {code})", c2.stderr)
    t.run(c, "keys left", "get", "--prefix", "myelection/")
    code = observer.signal(signal.SIGTERM)
    t.add(f"observer on SIGTERM (exit {code})", observer.stderr)
    t.run(c, "no proposal without -l", "elect", "myelection")
    assert "\n".join(t.lines) == ELECT_EXPECTED


# --- the gRPC services ---------------------------------------------------------------------------


class Stubs:
    def __init__(self, c: ProcessCluster) -> None:
        self.channels = [grpc.insecure_channel(u.split("://", 1)[1]) for u in c.endpoints]
        self.lock = [lock_grpc.LockStub(ch) for ch in self.channels]
        self.election = [election_grpc.ElectionStub(ch) for ch in self.channels]
        self.lease = rpc_grpc.LeaseStub(self.channels[0])
        self.kv = rpc_grpc.KVStub(self.channels[0])

    def grant(self, ttl: int = 60) -> int:
        return int(self.lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=ttl), timeout=WAIT).ID)

    def revoke(self, lease: int) -> None:
        self.lease.LeaseRevoke(rpc_pb2.LeaseRevokeRequest(ID=lease), timeout=WAIT)

    def keys(self, prefix: bytes) -> list[bytes]:
        end = prefix[:-1] + bytes([prefix[-1] + 1])
        r = self.kv.Range(rpc_pb2.RangeRequest(key=prefix, range_end=end, keys_only=True), timeout=WAIT)
        return [bytes(kv.key) for kv in r.kvs]

    def close(self) -> None:
        for ch in self.channels:
            ch.close()


@pytest.fixture
def stubs_for() -> Iterator[Callable[[ProcessCluster], Stubs]]:
    made: list[Stubs] = []

    def make(c: ProcessCluster) -> Stubs:
        made.append(Stubs(c))
        return made[-1]

    yield make
    for s in made:
        s.close()


def status(err: Any) -> grpc.StatusCode:
    code: grpc.StatusCode = err.code()
    return code


def assert_deadline(err: Any) -> None:
    """A call that outlived its deadline. Either side may notice first: the client's own timer
    (DEADLINE_EXCEEDED), or the server's copy of the deadline, which etcd's handler returns as
    the plain error of its context (grpc-go then sends UNKNOWN "context deadline exceeded");
    under load etcd 3.4 was seen to answer both ways."""
    assert (err.code(), err.details()) in (
        (grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"),
        (grpc.StatusCode.UNKNOWN, "context deadline exceeded"),
    ), err


def unknown_error(call: Callable[[], object]) -> str:
    """The message of the UNKNOWN status ``call`` fails with (etcd sends recipe errors so)."""
    with pytest.raises(grpc.RpcError) as info:
        call()
    err: Any = info.value
    assert err.code() == grpc.StatusCode.UNKNOWN, err
    return str(err.details())


class Observer:
    """An Observe stream read by a thread into a queue."""

    def __init__(self, stub: Any, name: bytes) -> None:
        self.call = stub.Observe(epb.LeaderRequest(name=name), timeout=WAIT * 4)
        self.q: queue.Queue[epb.LeaderResponse] = queue.Queue()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        with contextlib.suppress(grpc.RpcError):
            for resp in self.call:
                self.q.put(resp)

    def next(self) -> epb.LeaderResponse:
        return self.q.get(timeout=WAIT)

    def close(self) -> None:
        self.call.cancel()
        self.thread.join(timeout=10)


@pytest.mark.parametrize("server", SERVERS)
def test_lock_service(
    process_cluster: ClusterFactory, stubs_for: Callable[[ProcessCluster], Stubs], server: str
) -> None:
    c = start_cluster(process_cluster, server)
    s = stubs_for(c)
    la, lb, lc = s.grant(), s.grant(), s.grant()

    r1 = s.lock[0].Lock(lpb.LockRequest(name=b"lk", lease=la), timeout=WAIT)
    assert r1.key == b"lk/%x" % la
    assert r1.header.revision > 0 and r1.header.member_id != 0
    f2 = s.lock[1].Lock.future(lpb.LockRequest(name=b"lk", lease=lb), timeout=WAIT)
    poll(lambda: len(s.keys(b"lk/")) == 2, "the second Lock to queue")
    assert not f2.done()
    # The same lease locking again gets its own key back at once (etcd reuses the key).
    assert s.lock[2].Lock(lpb.LockRequest(name=b"lk", lease=la), timeout=WAIT).key == r1.key
    unlocked = s.lock[2].Unlock(lpb.UnlockRequest(key=r1.key), timeout=WAIT)
    assert unlocked.header.revision > r1.header.revision
    r2 = f2.result(timeout=WAIT)
    assert r2.key == b"lk/%x" % lb
    assert r2.header.revision >= unlocked.header.revision

    # A waiter whose call ends (deadline) takes its key out of the queue.
    with pytest.raises(grpc.RpcError) as info:
        s.lock[0].Lock(lpb.LockRequest(name=b"lk", lease=lc), timeout=1.0)
    assert_deadline(info.value)
    poll(lambda: s.keys(b"lk/") == [r2.key], "the abandoned waiter's key to go")

    # The holder's lease ends: the next waiter holds the lock.
    f3 = s.lock[0].Lock.future(lpb.LockRequest(name=b"lk", lease=lc), timeout=WAIT)
    poll(lambda: len(s.keys(b"lk/")) == 2, "the third Lock to queue")
    assert not f3.done()
    s.revoke(lb)
    assert f3.result(timeout=WAIT).key == b"lk/%x" % lc

    # No lease: the server grants one with etcd's 60 s session TTL (and does not keep it alive).
    r4 = s.lock[1].Lock(lpb.LockRequest(name=b"solo"), timeout=WAIT)
    lease = int(r4.key.split(b"/")[1], 16)
    ttl = s.lease.LeaseTimeToLive(rpc_pb2.LeaseTimeToLiveRequest(ID=lease), timeout=WAIT)
    assert ttl.grantedTTL == 60

    assert unknown_error(lambda: s.lock[0].Lock(lpb.LockRequest(name=b"x", lease=12345), timeout=WAIT)) == (
        "etcdserver: requested lease not found"
    )
    assert unknown_error(lambda: s.lock[0].Unlock(lpb.UnlockRequest(key=b""), timeout=WAIT)) == (
        "etcdserver: key is not provided"
    )


@pytest.mark.parametrize("server", SERVERS)
def test_lock_service_excludes(
    process_cluster: ClusterFactory, stubs_for: Callable[[ProcessCluster], Stubs], server: str
) -> None:
    """Three clients, one per member, lock and unlock in a loop: never two holders."""
    c = start_cluster(process_cluster, server)
    s = stubs_for(c)
    holder: list[int] = []
    overlaps: list[tuple[int, list[int]]] = []
    errors: list[BaseException] = []

    def client(i: int) -> None:
        try:
            lease = s.grant()
            for _ in range(5):
                r = s.lock[i].Lock(lpb.LockRequest(name=b"mx", lease=lease), timeout=WAIT)
                if holder:
                    overlaps.append((i, list(holder)))
                holder.append(i)
                time.sleep(0.02)  # hold it a moment, so that an overlap would show
                holder.remove(i)
                s.lock[i].Unlock(lpb.UnlockRequest(key=r.key), timeout=WAIT)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=WAIT * 3)
    assert not errors
    assert not overlaps


@pytest.mark.parametrize("server", SERVERS)
def test_election_service(
    process_cluster: ClusterFactory, stubs_for: Callable[[ProcessCluster], Stubs], server: str
) -> None:
    c = start_cluster(process_cluster, server)
    s = stubs_for(c)
    e = s.election
    name = b"el"
    la, lb, lc = s.grant(), s.grant(), s.grant()

    assert (
        unknown_error(lambda: e[0].Leader(epb.LeaderRequest(name=name), timeout=WAIT))
        == "election: no leader"
    )
    obs = Observer(e[2], name)
    try:
        # Campaign: the first campaign leads at once.
        ca = e[0].Campaign(epb.CampaignRequest(name=name, lease=la, value=b"a1"), timeout=WAIT)
        assert ca.leader == epb.LeaderKey(name=name, key=b"el/%x" % la, rev=ca.header.revision, lease=la)
        seen = obs.next()
        assert (seen.kv.key, seen.kv.value, seen.kv.create_revision) == (ca.leader.key, b"a1", ca.leader.rev)
        assert seen.kv.lease == la

        # A second campaign waits behind it.
        fb = e[1].Campaign.future(epb.CampaignRequest(name=name, lease=lb, value=b"b1"), timeout=WAIT * 2)
        poll(lambda: len(s.keys(b"el/")) == 2, "the second campaign to queue")
        assert not fb.done()
        assert e[1].Leader(epb.LeaderRequest(name=name), timeout=WAIT).kv.value == b"a1"

        # Proclaim: a new value from the leader, observed.
        p = e[1].Proclaim(epb.ProclaimRequest(leader=ca.leader, value=b"a2"), timeout=WAIT)
        seen = obs.next()
        assert (seen.kv.value, seen.kv.mod_revision, seen.kv.version) == (b"a2", p.header.revision, 2)
        stale = epb.LeaderKey(name=name, key=ca.leader.key, rev=ca.leader.rev + 1000, lease=la)
        assert (
            unknown_error(lambda: e[0].Proclaim(epb.ProclaimRequest(leader=stale, value=b"x"), timeout=WAIT))
            == "election: not leader"
        )
        assert unknown_error(lambda: e[0].Proclaim(epb.ProclaimRequest(value=b"x"), timeout=WAIT)) == (
            '"leader" field must be provided'
        )
        assert unknown_error(lambda: e[0].Resign(epb.ResignRequest(), timeout=WAIT)) == (
            '"leader" field must be provided'
        )
        # Resign with a stale leader key does nothing.
        e[0].Resign(epb.ResignRequest(leader=stale), timeout=WAIT)
        assert not fb.done()

        # Resign: the waiting campaign leads.
        e[2].Resign(epb.ResignRequest(leader=ca.leader), timeout=WAIT)
        cb = fb.result(timeout=WAIT)
        assert cb.leader.key == b"el/%x" % lb and cb.leader.lease == lb
        assert e[0].Leader(epb.LeaderRequest(name=name), timeout=WAIT).kv.value == b"b1"
        seen = obs.next()
        assert (seen.kv.key, seen.kv.value) == (cb.leader.key, b"b1")

        # Campaigning again on the leading lease with another value proclaims it.
        again = e[2].Campaign(epb.CampaignRequest(name=name, lease=lb, value=b"b2"), timeout=WAIT)
        assert again.leader == cb.leader
        assert obs.next().kv.value == b"b2"

        # A campaign abandoned while it waits resigns (its key goes).
        with pytest.raises(grpc.RpcError) as info:
            e[0].Campaign(epb.CampaignRequest(name=name, lease=la, value=b"a3"), timeout=1.0)
        assert_deadline(info.value)
        poll(lambda: s.keys(b"el/") == [cb.leader.key], "the abandoned campaign's key to go")

        # The leader's lease ends: the next campaign leads, observers follow.
        fc = e[0].Campaign.future(epb.CampaignRequest(name=name, lease=lc, value=b"c1"), timeout=WAIT * 2)
        poll(lambda: len(s.keys(b"el/")) == 2, "the third campaign to queue")
        s.revoke(lb)
        cc = fc.result(timeout=WAIT)
        assert cc.leader.key == b"el/%x" % lc
        seen = obs.next()
        assert (seen.kv.key, seen.kv.value) == (cc.leader.key, b"c1")

        e[1].Resign(epb.ResignRequest(leader=cc.leader), timeout=WAIT)
        assert unknown_error(lambda: e[1].Leader(epb.LeaderRequest(name=name), timeout=WAIT)) == (
            "election: no leader"
        )
        assert obs.q.empty()
    finally:
        obs.close()
