"""The HTTP side of a member: /health, /version and etcd's metric names on /metrics."""

from __future__ import annotations

import json
import urllib.request
from typing import TYPE_CHECKING

import pytest

from tests.cluster.harness import ProcessCluster, free_ports, minietcd_binary

if TYPE_CHECKING:
    from tests.cluster.conftest import ClusterFactory

pytestmark = pytest.mark.cluster

METRICS = [
    "etcd_server_has_leader",
    "etcd_server_is_leader",
    "etcd_server_leader_changes_seen_total",
    "etcd_server_proposals_committed_total",
    "etcd_server_proposals_applied_total",
    "etcd_server_proposals_pending",
    "etcd_server_proposals_failed_total",
    "etcd_disk_wal_fsync_duration_seconds_bucket",
    "etcd_mvcc_db_total_size_in_bytes",
    "etcd_network_peer_round_trip_time_seconds_bucket",
]


def fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def one_member_with_metrics_url(process_cluster: ClusterFactory) -> tuple[ProcessCluster, str]:
    """A 1-member cluster with --listen-metrics-urls and one key written; (cluster, base URL)."""
    (port,) = free_ports(1)
    c: ProcessCluster = process_cluster(
        minietcd_binary(), 1, extra_flags=["--listen-metrics-urls", f"http://127.0.0.1:{port}"]
    ).start()
    c.wait_healthy(30)
    c.etcdctl_ok("put", "k", "v")
    return c, f"http://127.0.0.1:{port}"


def test_health_version_and_metrics(process_cluster: ClusterFactory) -> None:
    _c, base = one_member_with_metrics_url(process_cluster)
    status, body = fetch(base + "/health")
    assert status == 200 and json.loads(body)["health"] == "true"
    status, body = fetch(base + "/version")
    assert status == 200 and json.loads(body)["etcdserver"].startswith("3.4")
    status, body = fetch(base + "/metrics")
    assert status == 200
    names = {
        line.split("{")[0].split(" ")[0] for line in body.splitlines() if line and not line.startswith("#")
    }
    missing = [m for m in METRICS if m not in names]
    # A 1-member cluster has no peers, so no round-trip samples yet; etcd behaves the same.
    assert missing in ([], ["etcd_network_peer_round_trip_time_seconds_bucket"]), missing
    assert "etcd_server_has_leader 1.0" in body and "etcd_server_is_leader 1.0" in body


# The keys of etcd 3.4's raft.status in /debug/vars (checked against etcd 3.4.23).
ETCD_RAFT_STATUS_KEYS = {
    "id",
    "term",
    "vote",
    "commit",
    "lead",
    "raftState",
    "applied",
    "progress",
    "leadtransferee",
}


def test_debug_vars_and_raft_events(process_cluster: ClusterFactory) -> None:
    c, base = one_member_with_metrics_url(process_cluster)
    member = f"{c.member_id(0):x}"

    status, body = fetch(base + "/debug/vars")
    assert status == 200
    dv = json.loads(body)
    assert "--listen-metrics-urls" in dv["cmdline"] and dv["file_descriptor_limit"] > 0
    raft = dv["raft.status"]
    assert set(raft) == ETCD_RAFT_STATUS_KEYS
    assert raft["id"] == raft["lead"] == raft["vote"] == member
    assert raft["raftState"] == "StateLeader" and raft["leadtransferee"] == "0"
    assert raft["applied"] == raft["commit"] >= 2  # bootstrap entry, the leader's empty entry, the put
    progress = {"match": raft["commit"], "next": raft["commit"] + 1, "state": "StateReplicate"}
    assert raft["progress"] == {member: progress}

    status, body = fetch(base + "/debug/raft/events?after=0")
    assert status == 200
    page = json.loads(body)
    kinds = [e["kind"] for e in page["events"]]
    assert "became-leader" in kinds, kinds
    assert [e["seq"] for e in page["events"]] == list(range(1, page["last_seq"] + 1))
    leader_event = page["events"][kinds.index("became-leader")]
    assert leader_event["text"] == f"{member} became leader at term {raft['term']} with votes from {member}"
    assert leader_event["term"] == raft["term"] and leader_event["time"] > 0

    # Nothing new: an immediate empty answer, and a bounded wait that also ends empty.
    last = page["last_seq"]
    assert json.loads(fetch(base + f"/debug/raft/events?after={last}")[1])["events"] == []
    assert json.loads(fetch(base + f"/debug/raft/events?after={last}&wait=0.2")[1])["events"] == []
    assert fetch(base + "/debug/raft/events?after=x")[0] == 400

    # The stream replays what is held after the given sequence number as Server-Sent Events.
    with urllib.request.urlopen(base + "/debug/raft/events/stream?after=0", timeout=5) as r:
        assert r.headers["Content-Type"].startswith("text/event-stream")
        lines = [r.readline().decode().rstrip("\n") for _ in range(3)]
    assert lines[0] == "id: 1" and lines[1] == "event: raft"
    assert json.loads(lines[2].removeprefix("data: ")) == page["events"][0]
