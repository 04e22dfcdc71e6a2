"""Watchers see exactly the committed history, across leader changes and a leader crash.

Six writer threads put, delete and write two keys per transaction under one prefix, through
every member in turn, while watchers on the prefix are started at various revisions (1, "now",
an old revision while writes go on, an early revision on a member just restarted) on different
members. Meanwhile leadership is moved (``move-leader``), the leader is SIGKILLed, and restarted.
A watcher whose stream breaks resumes on the next member from its last revision + 1, as client
libraries do; it stays one watcher for the checks, so resuming is exactly what is tested.

After the writers stop, every watcher must reach the final revision, then:

* The committed history is read back independently of watch: a ``Range`` of the prefix at every
  revision from 1 to the last (a put at r is a key whose mod_revision is r; a delete at r is a
  key present at r - 1 and absent at r). Every revision after 1 must change something (nothing
  else writes to this cluster).
* A final watch from revision 1 on each member must deliver that same history.
* :func:`minietcd.lab.check.check_watches` checks every watcher against it
  (``committed_complete=True``): in order, no duplicates, no gaps from its start revision to the
  end, every event equal to the committed change at its revision, every acknowledged write
  delivered.

The same test runs against real etcd, to show the test itself holds.
"""

from __future__ import annotations

import contextlib
import queue
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest

from minietcd.api.etcdserverpb import rpc_pb2
from minietcd.api.etcdserverpb import rpc_pb2_grpc as _rpc_grpc_untyped
from minietcd.api.mvccpb import kv_pb2
from minietcd.lab.check import Change, Operation, OpKind, Outcome, WatchEvent, WatchRecord, check_watches
from minietcd.lab.check.watch import EventType
from tests.cluster.conftest import ClusterFactory
from tests.cluster.harness import ProcessCluster, etcd_binary, minietcd_binary

rpc_pb2_grpc: Any = _rpc_grpc_untyped

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

PREFIX = b"wp/"
RANGE_END = b"wp0"
WRITERS = 6
KEYS_PER_WRITER = 5
MAX_OPS_PER_WRITER = 700  # bounds the history (and the Range read-back) on a fast machine
PHASE_SECONDS = 5.0  # each chaos phase lets the writers run this long (or PHASE_REVISIONS)
PHASE_REVISIONS = 300
MIN_PHASE_REVISIONS = 20  # fewer than this in PHASE_DEADLINE: the cluster is not available
PHASE_DEADLINE = 60.0
CATCH_UP_DEADLINE = 120.0  # for every watcher to reach the final revision
RPC_TIMEOUT = 5.0


def target(cluster: ProcessCluster, i: int) -> str:
    return f"127.0.0.1:{cluster.members[i].client_port}"


def decode(b: bytes) -> str:
    return b.decode()


# ------------------------------------------------------------------------------------ writers


@dataclass
class Writer:
    """Writes until stopped (or MAX_OPS_PER_WRITER), rotating members on errors; records ops."""

    index: int
    cluster: ProcessCluster
    stop: threading.Event
    clock: Callable[[], float]
    ops: list[Operation] = field(default_factory=list)
    txns: int = 0
    errors: int = 0
    _member: int = 0
    _channels: dict[int, grpc.Channel] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._member = self.index % len(self.cluster.members)
        self.rng = random.Random(1000 + self.index)
        self.thread = threading.Thread(target=self.run, name=f"writer-{self.index}", daemon=True)

    def stub(self) -> Any:
        if self._member not in self._channels:
            self._channels[self._member] = grpc.insecure_channel(target(self.cluster, self._member))
        return rpc_pb2_grpc.KVStub(self._channels[self._member])

    def run(self) -> None:
        try:
            seq = 0
            while not self.stop.is_set() and seq < MAX_OPS_PER_WRITER:
                seq += 1
                self.one(seq)
        finally:
            for ch in self._channels.values():
                ch.close()

    def one(self, seq: int) -> None:
        key = f"{PREFIX.decode()}{self.index}/{self.rng.randrange(KEYS_PER_WRITER)}"
        value = f"v{self.index}-{seq}"
        roll = self.rng.random()
        op_id = self.index * 1_000_000 + seq
        invoke = self.clock()
        try:
            if roll < 0.15:  # one revision, two events
                a, b = f"{PREFIX.decode()}t{self.index}/a", f"{PREFIX.decode()}t{self.index}/b"
                req = rpc_pb2.TxnRequest(
                    success=[
                        rpc_pb2.RequestOp(
                            request_put=rpc_pb2.PutRequest(key=a.encode(), value=value.encode())
                        ),
                        rpc_pb2.RequestOp(
                            request_put=rpc_pb2.PutRequest(key=b.encode(), value=value.encode())
                        ),
                    ]
                )
                self.stub().Txn(req, timeout=RPC_TIMEOUT)
                self.txns += 1
            elif roll < 0.30:
                r = self.stub().DeleteRange(rpc_pb2.DeleteRangeRequest(key=key.encode()), timeout=RPC_TIMEOUT)
                self.ops.append(
                    Operation(
                        op_id, self.index, OpKind.DELETE, key, invoke, self.clock(), Outcome.OK,
                        succeeded=r.deleted > 0, revision=r.header.revision,
                    )
                )  # fmt: skip
            else:
                r = self.stub().Put(
                    rpc_pb2.PutRequest(key=key.encode(), value=value.encode()), timeout=RPC_TIMEOUT
                )
                self.ops.append(
                    Operation(
                        op_id, self.index, OpKind.PUT, key, invoke, self.clock(), Outcome.OK,
                        value=value, revision=r.header.revision,
                    )
                )  # fmt: skip
        except grpc.RpcError as e:
            # Applied or not, nobody knows: the final read-back decides. Try the next member.
            self.errors += 1
            kind = OpKind.PUT if roll >= 0.30 else OpKind.DELETE
            if roll >= 0.15:
                self.ops.append(
                    Operation(
                        op_id, self.index, kind, key, invoke, None, Outcome.UNKNOWN,
                        value=value if kind is OpKind.PUT else None, error=str(e.code()),
                    )
                )  # fmt: skip
            self._member = (self._member + 1) % len(self.cluster.members)
            self.stop.wait(0.05)  # back off a little before the retry on another member


# ----------------------------------------------------------------------------------- watchers


class Watcher:
    """One logical watcher on the prefix; resumes on the next member when its stream breaks."""

    def __init__(
        self, wid: int, cluster: ProcessCluster, member: int, start_revision: int, clock: Callable[[], float]
    ) -> None:
        self.cluster = cluster
        self.member = member
        self.clock = clock
        self.requested_start = start_revision  # 0: from "now"
        self.record = WatchRecord(
            watcher=wid,
            key=decode(PREFIX),
            range_end=decode(RANGE_END),
            start_revision=max(start_revision, 1),
            client=member,
        )
        self.created = start_revision != 0
        self.last_seen = self.record.start_revision - 1
        self.streams = 0
        self.problems: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._call: Any = None
        self._call_done: threading.Event | None = None
        self.thread = threading.Thread(target=self.run, name=f"watcher-{wid}", daemon=True)

    def start(self) -> Watcher:
        self.thread.start()
        return self

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                self._stream()
            except grpc.RpcError as e:
                if self._stop.is_set():
                    return
                self.problems.append(f"stream on n{self.member + 1} broke: {e.code()}")
            if self._stop.is_set():
                return
            self.member = (self.member + 1) % len(self.cluster.members)
            self._stop.wait(0.1)  # back off a little before resuming on the next member

    def _stream(self) -> None:
        start = self.last_seen + 1 if self.created else 0
        create = rpc_pb2.WatchCreateRequest(key=PREFIX, range_end=RANGE_END, start_revision=start)
        done = threading.Event()

        def requests() -> Iterator[rpc_pb2.WatchRequest]:
            yield rpc_pb2.WatchRequest(create_request=create)
            done.wait()  # keep the stream open until it is cancelled or broken

        with grpc.insecure_channel(target(self.cluster, self.member)) as ch:
            call = rpc_pb2_grpc.WatchStub(ch).Watch(requests())
            with self._lock:
                self._call, self._call_done = call, done
            if self._stop.is_set():
                call.cancel()
            self.streams += 1
            try:
                for resp in call:
                    self._on_response(resp)
            finally:
                done.set()

    def _on_response(self, resp: Any) -> None:
        if resp.created:
            if not self.created:
                # Created "from now": the first revision it must show is the next one.
                self.record.start_revision = resp.header.revision + 1
                self.last_seen = resp.header.revision
                self.created = True
            return
        if resp.canceled or resp.compact_revision:
            self.problems.append(
                f"watch canceled on n{self.member + 1}: compact_revision={resp.compact_revision} "
                f"reason={resp.cancel_reason!r}"
            )
            self.stop()
            return
        now = self.clock()
        for ev in resp.events:
            is_put = ev.type == kv_pb2.Event.PUT
            self.record.events.append(
                WatchEvent(
                    revision=ev.kv.mod_revision,
                    key=decode(ev.kv.key),
                    type=EventType.PUT if is_put else EventType.DELETE,
                    value=decode(ev.kv.value) if is_put else None,
                    received=now,
                )
            )
            self.last_seen = max(self.last_seen, ev.kv.mod_revision)

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            if self._call is not None:
                self._call.cancel()
            if self._call_done is not None:
                self._call_done.set()

    def join(self, timeout: float) -> None:
        self.stop()
        self.thread.join(timeout)
        if self.thread.is_alive():
            raise AssertionError(f"watcher {self.record.watcher} did not stop within {timeout}s")


# --------------------------------------------------------------------------- reading it back


def current_revision(cluster: ProcessCluster, deadline: float) -> int:
    """The cluster's revision, by a linearizable read through any running member."""
    last: object = None
    while True:
        for i in cluster.running_indexes():
            try:
                with grpc.insecure_channel(target(cluster, i)) as ch:
                    r = rpc_pb2_grpc.KVStub(ch).Range(rpc_pb2.RangeRequest(key=b"\0"), timeout=RPC_TIMEOUT)
                    return int(r.header.revision)
            except grpc.RpcError as e:
                last = e.code()
        if time.monotonic() >= deadline:
            raise AssertionError(f"no member answered a linearizable read (last: {last})")
        time.sleep(0.1)  # poll interval


def history_by_range(cluster: ProcessCluster, member: int, last: int) -> list[Change]:
    """Every change to the prefix from revision 2 to ``last``, from a Range at each revision."""
    changes: list[Change] = []
    empty: list[int] = []
    with grpc.insecure_channel(target(cluster, member)) as ch:
        kv = rpc_pb2_grpc.KVStub(ch)
        # A linearizable read first: then this member has applied `last`, and serializable
        # reads of every revision up to it are exact (and much cheaper).
        head = kv.Range(rpc_pb2.RangeRequest(key=PREFIX), timeout=RPC_TIMEOUT).header.revision
        assert head >= last, f"n{member + 1} is at revision {head} after a linearizable read, before {last}"
        before: dict[str, int] = {}
        for rev in range(1, last + 1):
            r = kv.Range(
                rpc_pb2.RangeRequest(key=PREFIX, range_end=RANGE_END, revision=rev, serializable=True),
                timeout=RPC_TIMEOUT,
            )
            now = {decode(x.key): int(x.mod_revision) for x in r.kvs}
            made = [
                Change(rev, decode(x.key), EventType.PUT, decode(x.value))
                for x in r.kvs
                if x.mod_revision == rev
            ]
            made += [Change(rev, k, EventType.DELETE) for k in before if k not in now]
            if rev > 1 and not made:
                empty.append(rev)
            changes.extend(sorted(made, key=lambda c: c.key))
            before = now
    assert not empty, f"revisions that changed nothing under the prefix (gaps in the history): {empty[:20]}"
    return changes


def final_watch(cluster: ProcessCluster, member: int, wid: int, last: int) -> WatchRecord:
    """Everything a fresh watch from revision 1 on ``member`` delivers up to ``last``."""
    rec = WatchRecord(
        watcher=wid, key=decode(PREFIX), range_end=decode(RANGE_END), start_revision=1, client=member
    )
    deadline = time.monotonic() + CATCH_UP_DEADLINE
    done = threading.Event()
    responses: queue.Queue[Any] = queue.Queue()

    def requests() -> Iterator[rpc_pb2.WatchRequest]:
        yield rpc_pb2.WatchRequest(
            create_request=rpc_pb2.WatchCreateRequest(key=PREFIX, range_end=RANGE_END, start_revision=1)
        )
        done.wait()

    with grpc.insecure_channel(target(cluster, member)) as ch:
        call = rpc_pb2_grpc.WatchStub(ch).Watch(requests(), timeout=CATCH_UP_DEADLINE)

        def pump() -> None:
            try:
                for resp in call:
                    responses.put(resp)
            except grpc.RpcError as e:
                responses.put(e)

        t = threading.Thread(target=pump, daemon=True)
        t.start()
        seen = 0
        try:
            while seen < last:
                left = deadline - time.monotonic()
                assert left > 0, f"final watch on n{member + 1} reached revision {seen} of {last}"
                try:
                    item = responses.get(timeout=min(left, 1.0))
                except queue.Empty:
                    continue
                if isinstance(item, grpc.RpcError):
                    raise AssertionError(f"final watch on n{member + 1} broke: {item}")
                assert not item.canceled, f"final watch on n{member + 1} canceled: {item.cancel_reason}"
                for ev in item.events:
                    is_put = ev.type == kv_pb2.Event.PUT
                    rec.events.append(
                        WatchEvent(
                            ev.kv.mod_revision,
                            decode(ev.kv.key),
                            EventType.PUT if is_put else EventType.DELETE,
                            decode(ev.kv.value) if is_put else None,
                        )
                    )
                    seen = max(seen, ev.kv.mod_revision)
        finally:
            done.set()
            call.cancel()
            t.join(10.0)
    return rec


# --------------------------------------------------------------------------------------- test


class Run:
    def __init__(self, cluster: ProcessCluster) -> None:
        self.cluster = cluster
        self.t0 = time.monotonic()
        self.stop_writers = threading.Event()
        self.writers = [Writer(i, cluster, self.stop_writers, self.clock) for i in range(WRITERS)]
        self.watchers: list[Watcher] = []
        self.log: list[str] = []

    def clock(self) -> float:
        return time.monotonic() - self.t0

    def note(self, what: str) -> None:
        self.log.append(f"{self.clock():7.2f}s {what}")

    def watch(self, member: int, start_revision: int) -> None:
        w = Watcher(len(self.watchers), self.cluster, member, start_revision, self.clock).start()
        self.watchers.append(w)
        self.note(f"watcher {w.record.watcher} on n{member + 1} from revision {start_revision or 'now'}")

    def phase(self, what: str) -> int:
        """Let the writers run PHASE_SECONDS or PHASE_REVISIONS, whichever comes first; insist
        on MIN_PHASE_REVISIONS within PHASE_DEADLINE. Returns the revision reached."""
        start = time.monotonic()
        deadline = start + PHASE_DEADLINE
        rev0 = current_revision(self.cluster, deadline)
        while True:
            rev = current_revision(self.cluster, deadline)
            elapsed = time.monotonic() - start
            if rev - rev0 >= PHASE_REVISIONS or (
                elapsed >= PHASE_SECONDS and rev - rev0 >= MIN_PHASE_REVISIONS
            ):
                self.note(f"{what}: revision {rev0} -> {rev}")
                return rev
            if not any(w.thread.is_alive() for w in self.writers):
                self.note(f"{what}: writers done at revision {rev}")
                return rev
            assert time.monotonic() < deadline, (
                f"{what}: only {rev - rev0} revisions in {PHASE_DEADLINE:.0f}s\n" + "\n".join(self.log)
            )
            time.sleep(0.2)  # poll interval

    def chaos(self) -> None:
        c = self.cluster
        self.watch(0, 1)
        self.watch(1, 0)
        for w in self.writers:
            w.thread.start()
        rev = self.phase("writes")
        self.watch(2, max(1, rev - 100))  # catches up from history while writes go on
        leader = c.leader_index(30.0)
        to = (leader + 1) % 3
        c.transfer_leadership(to)
        self.note(f"moved leadership n{leader + 1} -> n{to + 1}")
        rev = self.phase("after move-leader")
        leader = c.leader_index(30.0)
        self.watch(leader, 0)
        c.kill(leader)
        self.note(f"SIGKILLed the leader n{leader + 1}")
        survivors = [i for i in range(3) if i != leader]
        new_leader = c.wait_healthy(60.0, indexes=survivors)
        self.note(f"n{new_leader + 1} leads")
        self.watch(survivors[1] if survivors[0] == new_leader else survivors[0], max(1, rev - 50))
        self.phase("with a member down")
        c.start_member(leader)
        c.wait_healthy(60.0)
        self.note(f"restarted n{leader + 1}")
        self.watch(leader, 2)  # replays almost everything from the restarted member's own store
        c.transfer_leadership(leader)
        self.note(f"moved leadership to the restarted n{leader + 1}")
        self.phase("after moving leadership back")
        self.stop_writers.set()
        for w in self.writers:
            w.thread.join(RPC_TIMEOUT * 4)
            assert not w.thread.is_alive(), f"writer {w.index} did not stop"
        self.note("writers stopped")

    def wait_watchers(self, last: int) -> None:
        deadline = time.monotonic() + CATCH_UP_DEADLINE
        while True:
            behind = [w for w in self.watchers if w.last_seen < last]
            stopped = [w for w in behind if not w.thread.is_alive()]
            if not behind:
                return
            if stopped or time.monotonic() >= deadline:
                raise AssertionError(
                    f"watchers behind the final revision {last}: "
                    + "; ".join(
                        f"{w.record.watcher} at {w.last_seen} (on n{w.member + 1}, "
                        f"{'stopped' if not w.thread.is_alive() else 'running'}, {w.problems[-3:]})"
                        for w in behind
                    )
                    + "\n"
                    + "\n".join(self.log)
                )
            time.sleep(0.1)  # poll interval

    def close(self) -> None:
        self.stop_writers.set()
        for w in self.watchers:
            with contextlib.suppress(AssertionError):
                w.join(10.0)


def run_property(cluster: ProcessCluster) -> None:
    cluster.start()
    cluster.wait_healthy(60.0)
    run = Run(cluster)
    try:
        run.chaos()
        last = current_revision(cluster, time.monotonic() + 60.0)
        run.note(f"final revision {last}")
        run.wait_watchers(last)
        run.note("every watcher reached it")
    finally:
        run.close()
    leader = cluster.wait_healthy(60.0)
    committed = history_by_range(cluster, leader, last)
    finals = [final_watch(cluster, i, 100 + i, last) for i in range(3)]
    ops = [op for w in run.writers for op in w.ops]
    records = [w.record for w in run.watchers] + finals
    result = check_watches(records, committed=committed, ops=ops, committed_complete=True)
    summary = "\n".join(
        [
            *run.log,
            f"history: {len(committed)} changes in revisions 2..{last}; "
            f"{len(ops)} single-key ops ({sum(op.outcome is Outcome.OK for op in ops)} acknowledged), "
            f"{sum(w.txns for w in run.writers)} txns, {sum(w.errors for w in run.writers)} client errors",
            *(
                f"watcher {w.record.watcher}: from {w.record.start_revision}, {len(w.record.events)} events, "
                f"{w.streams} stream(s), {w.problems[:3]}"
                for w in run.watchers
            ),
        ]
    )
    assert result.ok, (
        f"{len(result.violations)} watch violations {result.by_kind()}:\n"
        + "\n".join(str(v) for v in result.violations[:40])
        + "\n"
        + summary
    )
    # Every watcher covered something of the run, and the resumed ones really did resume.
    assert all(w.record.events for w in run.watchers), summary
    assert any(w.streams > 1 for w in run.watchers), f"no watcher stream broke and resumed\n{summary}"
    print(summary)


@pytest.mark.parametrize("server", ["minietcd", "etcd"])
def test_watchers_see_exactly_the_committed_history(process_cluster: ClusterFactory, server: str) -> None:
    binary: Sequence[str] = minietcd_binary() if server == "minietcd" else etcd_binary()
    run_property(process_cluster(binary, 3))
