"""minietcd as real processes under faults (issue "minietcd server", done-when list)."""

from __future__ import annotations

import contextlib
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import pytest

from tests.cluster.grpc_kv import KV, wait_until
from tests.cluster.harness import ProcessCluster, minietcd_binary

if TYPE_CHECKING:
    from tests.cluster.conftest import ClusterFactory

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def write_until(kvs: list[KV], prefix: bytes, n: int, acked: dict[bytes, bytes]) -> None:
    """Write n keys, moving to the next member on failure; record what was acknowledged."""
    i = 0
    for k in range(n):
        key, value = prefix + b"%05d" % k, b"v%d" % k
        for _ in range(len(kvs) * 20):
            try:
                kvs[i % len(kvs)].put(key, value, timeout=3.0)
                acked[key] = value
                break
            except grpc.RpcError:
                i += 1
                time.sleep(0.05)


def test_kill9_follower_during_writes_catches_up_by_appends(process_cluster: ClusterFactory) -> None:
    c: ProcessCluster = process_cluster(minietcd_binary(), 3).start()
    c.wait_healthy(30)
    leader = c.leader_index()
    follower = next(i for i in range(3) if i != leader)
    kvs = [KV(c.endpoint(i)) for i in range(3) if i != follower]
    acked: dict[bytes, bytes] = {}
    write_until(kvs, b"a/", 100, acked)
    c.kill(follower)
    write_until(kvs, b"b/", 200, acked)
    c.start_member(follower)
    back = KV(c.endpoint(follower))
    wait_until(
        lambda: (
            len(back.prefix(b"a/", serializable=True)) + len(back.prefix(b"b/", serializable=True)) == 300
        ),
        30,
        "the restarted follower to catch up",
    )
    for key, value in acked.items():
        assert back.get(key, serializable=True) == value
    for kv in [*kvs, back]:
        kv.close()


def test_kill9_follower_catches_up_by_snapshot(process_cluster: ClusterFactory) -> None:
    # A small --snapshot-count makes the leader compact its log while the follower is down, so
    # it must catch up by snapshot (streamed over the peer protocol).
    c: ProcessCluster = process_cluster(minietcd_binary(), 3, extra_flags=["--snapshot-count", "50"]).start()
    c.wait_healthy(30)
    leader = c.leader_index()
    follower = next(i for i in range(3) if i != leader)
    c.kill(follower)
    kvs = [KV(c.endpoint(i)) for i in range(3) if i != follower]
    acked: dict[bytes, bytes] = {}
    write_until(kvs, b"s/", 6000, acked)  # > snapshot-count + the 5000 entries kept for catch-up
    c.start_member(follower)
    back = KV(c.endpoint(follower))
    wait_until(lambda: back.prefix(b"s/", serializable=True) == acked, 60, "catch-up by snapshot")
    assert "applied snapshot" in c.members[follower].log_path.read_text()
    for kv in [*kvs, back]:
        kv.close()


def test_kill9_leader_writes_resume_within_two_election_timeouts(process_cluster: ClusterFactory) -> None:
    c: ProcessCluster = process_cluster(minietcd_binary(), 3, election_ms=500).start()
    c.wait_healthy(30)
    leader = c.leader_index()
    others = [KV(c.endpoint(i)) for i in range(3) if i != leader]
    others[0].put(b"before", b"1")
    c.kill(leader)
    killed = time.monotonic()
    done = False
    while time.monotonic() - killed < 10 and not done:
        for kv in others:
            try:
                kv.put(b"after", b"2", timeout=0.5)
                done = True
                break
            except grpc.RpcError:
                pass
    took = time.monotonic() - killed
    # Two election timeouts: one to notice, one for the (randomised) election. Allow the
    # clients' own 0.5 s attempts on top.
    assert done and took < 2 * 0.5 * 2 + 1.0, f"writes resumed after {took:.2f}s"
    assert others[1].get(b"before") == b"1"
    for kv in others:
        kv.close()


def test_sigkill_all_then_restart_loses_no_acknowledged_write(process_cluster: ClusterFactory) -> None:
    c: ProcessCluster = process_cluster(minietcd_binary(), 3).start()
    c.wait_healthy(30)
    kvs = [KV(c.endpoint(i)) for i in range(3)]
    acked: dict[bytes, bytes] = {}
    write_until(kvs, b"d/", 300, acked)
    for i in range(3):
        c.kill(i)
    c.start()
    c.wait_healthy(30)
    kv = KV(c.endpoint(0))
    assert kv.prefix(b"d/") == acked
    wait_until(lambda: len({KV(c.endpoint(i)).hash_kv() for i in range(3)}) == 1, 20, "equal HashKV")
    for k in [*kvs, kv]:
        k.close()


def test_garbage_on_peer_and_client_ports_crashes_nothing(process_cluster: ClusterFactory) -> None:
    c: ProcessCluster = process_cluster(minietcd_binary(), 3).start()
    c.wait_healthy(30)
    for m in c.members:
        for port in (m.peer_port, m.client_port):
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.sendall(b"\x00\xffGET / HTTP/1.1\r\n\r\n" + bytes(range(256)) * 8)
                s.settimeout(2)
                with contextlib.suppress(TimeoutError, ConnectionError):
                    s.recv(1024)
    kv = KV(c.endpoint(0))
    kv.put(b"still", b"alive")
    assert all(m.running for m in c.members)
    kv.close()


def test_wal_dir_holds_the_wal_and_a_restart_reads_it(
    process_cluster: ClusterFactory, tmp_path: Path
) -> None:
    """etcd's --wal-dir: the log goes there (not under the data dir) and the member restarts
    from it; without it the same data dir would look like a new member."""
    wal = tmp_path / "fast-disk" / "wal"
    c: ProcessCluster = process_cluster(minietcd_binary(), 1, extra_flags=["--wal-dir", str(wal)]).start()
    c.wait_healthy(30)
    c.etcdctl_ok("put", "k", "kept")
    assert any(p.suffix == ".wal" for p in wal.iterdir())
    assert not (c.members[0].data_dir / "member" / "wal").exists()
    assert (c.members[0].data_dir / "member" / "snap").is_dir()
    c.kill(0)
    c.start_member(0)
    c.wait_healthy(30)
    assert c.etcdctl_ok("get", "k", "--print-value-only").strip() == "kept"
