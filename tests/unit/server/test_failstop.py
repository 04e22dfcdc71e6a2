"""Fail-stop (DESIGN rule 8): an unexpected exception at any stage of the Ready loop stops the
member with one critical line naming the stage and the cause, instead of leaving it half-alive.

A real RaftNode (RawNode, DiskStorage, StateMachine) is driven as member 1 of a 3-member cluster
whose other two members are scripted by :class:`ScriptedPeers`: they grant votes and acknowledge
appends, so member 1 becomes leader and commits, reaching every stage. Each test enables one
failpoint (minietcd.server.failstop) and checks that the node stops by itself: ``failure`` set,
the member asked to stop (``on_removed``), one ``CRITICAL`` record in etcd's words, the Ready
loop ended, nothing written after the failure. The real-process side (exit code, the ``C |``
line on stderr) is in tests/cluster/test_failsafe.py.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

import minietcd.storage.wal as wal_module
from minietcd.api.etcdserverpb import raft_internal_pb2, rpc_pb2
from minietcd.lease.lessor import Lessor
from minietcd.raft.config import Config as RaftConfig
from minietcd.raft.rawnode import Peer, RawNode
from minietcd.raft.types import ConfState, Message, MessageType, Snapshot, SnapshotMetadata
from minietcd.server import failstop
from minietcd.server.apply import StateMachine
from minietcd.server.etcd_server import EtcdServer
from minietcd.server.membership import Member, encode_conf_context
from minietcd.server.raft_node import RaftNode
from minietcd.storage.raft_storage import DiskStorage

IDS = (1, 2, 3)
DEADLINE = 10.0


class ScriptedPeers:
    """Members 2 and 3 as member 1's transport sees them: they answer what a healthy peer
    answers (votes granted, appends and heartbeats acknowledged), one event-loop turn later."""

    def __init__(self) -> None:
        self.node: RaftNode | None = None
        self.sent: list[Message] = []

    def send(self, msgs: list[Message]) -> None:
        self.sent.extend(msgs)
        for m in msgs:
            reply = _reply(m)
            if reply is not None:
                asyncio.get_running_loop().call_soon(self._deliver, reply)

    def _deliver(self, m: Message) -> None:
        assert self.node is not None
        self.node.step(m)

    def add_peer(self, member_id: int, peer_urls: list[str]) -> None:
        pass

    def update_peer(self, member_id: int, peer_urls: list[str]) -> None:
        pass

    def remove_peer(self, member_id: int) -> None:
        pass


def _reply(m: Message) -> Message | None:
    kinds = {
        MessageType.MsgPreVote: MessageType.MsgPreVoteResp,
        MessageType.MsgVote: MessageType.MsgVoteResp,
        MessageType.MsgApp: MessageType.MsgAppResp,
        MessageType.MsgHeartbeat: MessageType.MsgHeartbeatResp,
    }
    kind = kinds.get(m.type)
    if kind is None:
        return None
    index = m.index + len(m.entries) if m.type == MessageType.MsgApp else 0
    return Message(type=kind, to=m.from_, from_=m.to, term=m.term, index=index)


def _put(key: bytes, rid: int) -> bytes:
    req = raft_internal_pb2.InternalRaftRequest(put=rpc_pb2.PutRequest(key=key, value=b"v"))
    req.header.ID = rid
    return req.SerializeToString()


class Harness:
    """Member 1's RaftNode on a real data dir, with the scripted peers."""

    def __init__(self, data_dir: Path, *, snapshot_count: int = 1000) -> None:
        self.storage = DiskStorage.open(str(data_dir))
        self.sm = StateMachine(clock=time.monotonic, min_lease_ttl=1, member_id=1)
        rawnode = RawNode(
            RaftConfig(id=1, storage=self.storage, election_tick=3, heartbeat_tick=1, pre_vote=True)
        )
        rawnode.bootstrap([Peer(i, encode_conf_context(Member(i, "", [f"http://m{i}"]), 0)) for i in IDS])
        self.peers = ScriptedPeers()
        self.removed = 0
        self.node = RaftNode(
            rawnode=rawnode,
            storage=self.storage,
            transport=self.peers,
            sm=self.sm,
            tick_seconds=0.01,
            snapshot_count=snapshot_count,
            on_removed=self._on_removed,
        )
        self.peers.node = self.node
        self.applied: list[int] = []
        self.node.on_applied = lambda outcome, index: self.applied.append(index)

    def _on_removed(self) -> None:
        self.removed += 1

    async def until(self, pred: Callable[[], object], what: str) -> None:
        deadline = time.monotonic() + DEADLINE
        while not pred():
            if time.monotonic() > deadline:
                pytest.fail(f"timed out waiting for {what}; failure={self.node.failure}")
            await asyncio.sleep(0.005)

    async def close(self) -> None:
        await self.node.stop()
        self.storage.close()


@pytest.fixture
def failpoints() -> Iterator[set[str]]:
    """The failpoints to enable (set before the node starts); all disabled afterwards."""
    names: set[str] = set()
    yield names
    failstop.enable_failpoints(frozenset())


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    h = Harness(tmp_path)
    try:
        yield h
    finally:
        await h.close()


async def _run_to_leader(h: Harness) -> None:
    h.node.start()
    await h.until(lambda: h.node.is_leader and h.applied, "member 1 to lead and apply")


# Each failpoint, what makes the node reach it, and the words of the fatal line.
STAGES = [
    ("raftBeforeTick", "raft: failed to tick: failpoint raftBeforeTick triggered"),
    ("raftBeforeLeaderSend", "etcdserver: failed to send raft messages: failpoint raftBeforeLeaderSend"),
    ("raftBeforeSave", "etcdserver: failed to save state and entries error: failpoint raftBeforeSave"),
    ("raftBeforeSync", "etcdserver: failed to save state and entries error: failpoint raftBeforeSync"),
    ("raftBeforeApply", "etcdserver: failed to apply entry "),
    ("raftBeforeAdvance", "raft: failed to advance: failpoint raftBeforeAdvance triggered"),
    ("raftBeforeStep", "raft: failed to step "),
]


@pytest.mark.parametrize(("point", "words"), STAGES, ids=[p for p, _ in STAGES])
async def test_an_unexpected_exception_at_each_stage_stops_the_member(
    harness: Harness, point: str, words: str, caplog: pytest.LogCaptureFixture
) -> None:
    h = harness
    caplog.set_level(logging.DEBUG)
    await _run_to_leader(h)  # every stage has run at least once, failpoints off
    failstop.enable_failpoints(frozenset({point}))
    try:
        h.node.propose(_put(b"k", 7), 7)  # appends, sends, saves, syncs, applies, advances
        await h.until(lambda: h.node.failure is not None, f"{point} to stop the member")
    finally:
        failstop.enable_failpoints(frozenset())
    assert words in str(h.node.failure)
    assert h.removed == 1  # the member was asked to stop, once
    critical = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert len(critical) == 1 and critical[0].getMessage() == str(h.node.failure)
    assert critical[0].exc_info is None  # one line; the traceback is at debug level only
    # The loop is over: nothing is stepped, persisted or applied any more.
    await h.until(lambda: all(t.done() for t in h.node._tasks[1:]), "the Ready loop to end")
    last, applied = h.storage.last_index(), list(h.applied)
    h.node.step(Message(type=MessageType.MsgHeartbeat, to=1, from_=2, term=99))
    h.node.propose(_put(b"after", 8), 8)
    await asyncio.sleep(0.05)
    assert (h.storage.last_index(), h.applied) == (last, applied)
    assert h.node.rawnode.status().hard_state.term < 99


async def test_a_failed_local_snapshot_stops_the_member(tmp_path: Path) -> None:
    h = Harness(tmp_path, snapshot_count=2)
    try:
        failstop.enable_failpoints(frozenset({"raftBeforeSnapshot"}))
        h.node.start()
        for rid in range(1, 6):
            h.node.propose(_put(b"k%d" % rid, rid), rid)
            await asyncio.sleep(0.01)
        await h.until(lambda: h.node.failure is not None, "the snapshot to fail")
        assert str(h.node.failure).startswith("etcdserver: save snapshot error: failpoint raftBeforeSnapshot")
    finally:
        failstop.enable_failpoints(frozenset())
        await h.close()


async def test_a_received_snapshot_that_cannot_be_restored_stops_the_member(harness: Harness) -> None:
    h = harness
    h.node.start()
    # Member 2, leader of a later term, sends a snapshot whose data is not a state snapshot.
    meta = SnapshotMetadata(ConfState(voters=IDS), index=50, term=5)
    snap = Snapshot(data=b"not a minietcd state snapshot", metadata=meta)
    h.node.step(Message(type=MessageType.MsgSnap, to=1, from_=2, term=5, snapshot=snap))
    await h.until(lambda: h.node.failure is not None, "the restore to fail")
    assert str(h.node.failure).startswith("etcdserver: recovering store from snapshot error: ")
    assert "not a minietcd state snapshot" in str(h.node.failure)


async def test_an_entry_that_cannot_be_parsed_stops_the_member(harness: Harness) -> None:
    # etcd's applier panics on an entry it cannot unmarshal (pbutil.MustUnmarshal) rather than
    # skip it: the others applied it, skipping would fork the state.
    h = harness
    await _run_to_leader(h)
    h.node.propose(b"\xff\xff garbage that is no InternalRaftRequest", 9)
    await h.until(lambda: h.node.failure is not None, "the apply to fail")
    assert "etcdserver: failed to apply entry" in str(h.node.failure)
    assert "DecodeError" in str(h.node.failure)


async def test_a_disk_error_is_fatal_with_the_error_in_the_line(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = harness
    await _run_to_leader(h)
    wal = h.storage.wal

    def no_space(*_args: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    # The WAL's next write fails as a full disk makes it (the WAL's own wrapping included;
    # tests/cluster/test_failsafe.py fills a real tmpfs).
    monkeypatch.setattr(wal_module, "write_all", no_space)
    h.node.propose(_put(b"k", 3), 3)
    await h.until(lambda: h.node.failure is not None, "the write to fail")
    text = str(h.node.failure)
    assert text.startswith("etcdserver: failed to save state and entries error: write ")
    assert text.endswith(": no space left on device") and wal.dir in text


async def test_a_crashed_lease_expiry_loop_stops_the_member(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Left dead, the loop would leave the member serving with leases that never expire.
    h = harness
    server = EtcdServer(
        member_id=1,
        cluster_id=9,
        name="n1",
        sm=h.sm,
        node=h.node,
        election_timeout=0.03,
        max_request_bytes=1 << 20,
        quota_bytes=0,
        active_since=lambda _peer: None,
    )

    def broken(self: Lessor, limit: int) -> list[int]:
        raise KeyError("a bug in the lessor")

    monkeypatch.setattr(Lessor, "expired_leases", broken)
    h.node.start()  # (the server took over on_applied: wait for leadership only)
    await h.until(lambda: h.node.is_leader, "member 1 to lead")
    server.start()
    try:
        await h.until(lambda: h.node.failure is not None, "the lease loop's crash to stop the member")
        assert str(h.node.failure) == "etcdserver: lease-expiry failed: KeyError: 'a bug in the lessor'"
    finally:
        await server.stop()
