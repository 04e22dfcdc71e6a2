"""The HTTP side of a member: /health, /version and etcd's metric names on /metrics."""

from __future__ import annotations

import json
import urllib.request

import pytest

from tests.cluster.harness import ProcessCluster, free_ports, minietcd_binary

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


def test_health_version_and_metrics(process_cluster) -> None:  # type: ignore[no-untyped-def]
    (port,) = free_ports(1)
    c: ProcessCluster = process_cluster(
        minietcd_binary(), 1, extra_flags=["--listen-metrics-urls", f"http://127.0.0.1:{port}"]
    ).start()
    c.wait_healthy(30)
    c.etcdctl_ok("put", "k", "v")
    base = f"http://127.0.0.1:{port}"
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
