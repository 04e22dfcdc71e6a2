"""Auth is part of the replicated state: it survives a member restart, reaches a new member by
snapshot install (the leader sends its database), travels in ``snapshot save`` / ``restore``
(to a new minietcd cluster and to real etcd), and every member agrees on it (HashKV, and the
auth buckets of each member's own snapshot)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import pytest

from minietcd.api.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from minietcd.mvcc.boltdb import read_bolt_snapshot
from minietcd.mvcc.bucket_values import AUTH_BUCKETS
from tests.cluster.harness import ETCDCTL, ProcessCluster, clean_env, etcd_binary, free_ports, minietcd_binary

if TYPE_CHECKING:
    from tests.cluster.conftest import ClusterFactory

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

ROOT = ("--user=root:rootpw",)
ALICE = ("--user=alice:alicepw",)
#: More entries than a leader keeps for catch-up (5000) beyond --snapshot-count: a member added
#: afterwards can only catch up by snapshot.
BULK = 5200


def setup_auth(c: ProcessCluster) -> None:
    for args in (
        ("user", "add", "root:rootpw"), ("user", "add", "alice:alicepw"), ("role", "add", "app"),
        ("role", "grant-permission", "app", "readwrite", "/app/", "--prefix"),
        ("user", "grant-role", "alice", "app"), ("put", "/app/x", "1"), ("put", "/secret", "s"),
        ("auth", "enable"),
    ):  # fmt: skip
        c.etcdctl_ok(*args)


def check_alice(c: ProcessCluster, i: int) -> None:
    """On member ``i``: alice reads her prefix, is refused elsewhere, anonymous is refused."""
    ep = c.endpoint(i)
    assert c.etcdctl_ok(*ALICE, "get", "/app/x", "--consistency=s", endpoints=ep) == "/app/x\n1\n"
    denied = c.etcdctl(*ALICE, "get", "/secret", "--consistency=s", endpoints=ep)
    assert denied.returncode == 1 and "Error: etcdserver: permission denied" in denied.stderr
    anonymous = c.etcdctl("get", "/app/x", endpoints=ep)
    assert "Error: etcdserver: user name is empty" in anonymous.stderr


def bulk_puts(ep: str, n: int) -> None:
    with grpc.insecure_channel(ep.split("://")[-1]) as ch:
        token = (
            rpc_pb2_grpc.AuthStub(ch)
            .Authenticate(rpc_pb2.AuthenticateRequest(name="root", password="rootpw"), timeout=10)
            .token
        )
        kv = rpc_pb2_grpc.KVStub(ch)
        for k in range(n):
            kv.Put(
                rpc_pb2.PutRequest(key=b"bulk/%05d" % k, value=b"v"), timeout=10, metadata=(("token", token),)
            )


def auth_hash(snapshot: Path) -> str:
    """A digest of the auth buckets of an etcd backend file (users, roles, flag, revision)."""
    auth = read_bolt_snapshot(snapshot.read_bytes()).auth
    h = hashlib.sha256()
    for bucket in AUTH_BUCKETS:
        for k, v in sorted(auth.get(bucket, {}).items()):
            h.update(bucket + b"\0" + k + b"\0" + v + b"\0")
    return h.hexdigest()


def test_auth_survives_restart_snapshot_install_and_restore(
    process_cluster: ClusterFactory, tmp_path: Path
) -> None:
    c = process_cluster(minietcd_binary(), 3, extra_flags=["--snapshot-count", "50", "--bcrypt-cost", "4"])
    c.start()
    c.wait_healthy(30)
    setup_auth(c)

    # A new member, added now and started after the leader compacted its log: a snapshot install.
    n4 = c.add_member_slot("n4")
    added = c.etcdctl_retry(*ROOT, "member", "add", "n4", f"--peer-urls={c.members[n4].peer_url}")
    assert added.returncode == 0, added.stderr
    bulk_puts(c.endpoint(c.leader_index()), BULK)
    c.start_added_member(n4, added.stdout)
    c.wait_caught_up(n4, 60)
    assert "applied snapshot" in c.members[n4].log_path.read_text()
    check_alice(c, n4)

    # A restart: the state comes back from the member's own backend.
    c.restart(1)
    c.wait_caught_up(1, 30)
    check_alice(c, 1)

    # Every member agrees: on the key space, and on the auth state (each member's own snapshot).
    c.wait_converged(30)
    hashes = c.etcdctl_ok(*ROOT, "endpoint", "hashkv", endpoints=",".join(c.endpoints))
    assert len({line.split(", ")[1] for line in hashes.splitlines()}) == 1, hashes
    digests = set()
    for i in c.running_indexes():
        snap = tmp_path / f"n{i + 1}.db"
        c.etcdctl_ok(*ROOT, "snapshot", "save", str(snap), endpoints=c.endpoint(i))
        digests.add(auth_hash(snap))
    assert len(digests) == 1

    # snapshot restore: into a new minietcd member, and into real etcd; auth comes along.
    snap = tmp_path / "n1.db"
    for binary, restore in (
        (minietcd_binary(), [sys.executable, "-m", "minietcdctl"]),
        (etcd_binary(), [ETCDCTL]),
    ):
        client, peer = free_ports(2)
        data = tmp_path / f"restored-{Path(binary[-1]).name}"
        peer_url = f"http://127.0.0.1:{peer}"
        subprocess.run(
            [*restore, "snapshot", "restore", str(snap), "--name", "r1", "--data-dir", str(data),
             "--initial-cluster", f"r1={peer_url}", "--initial-advertise-peer-urls", peer_url],
            check=True, capture_output=True, env=clean_env({"ETCDCTL_API": "3"}),
        )  # fmt: skip
        r = ProcessCluster(
            binary, 1, tmp_path / f"run-{Path(binary[-1]).name}", ports=[client, peer], token="r"
        )
        r.members[0].name = "r1"
        r.members[0].data_dir = data
        r.members[0].initial_cluster = f"r1={peer_url}"
        try:
            r.start()
            r.wait_healthy(30)
            check_alice(r, 0)
            assert r.etcdctl_ok(*ROOT, "user", "list") == "alice\nroot\n"
        finally:
            r.close()
