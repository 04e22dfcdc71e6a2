"""Discovery bootstrap on real processes: a new 3-member minietcd cluster finds its members
through an existing cluster (minietcd, or real etcd 3.4 as the discovery service) with
``--discovery-endpoints``/``--discovery-token`` instead of ``--initial-cluster``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from minietcd.server import ids
from minietcd.server.discovery import member_key, members_prefix, size_key
from tests.cluster.discovery_helpers import DiscoveryCluster, wait_exit, wait_for_log
from tests.cluster.discovery_helpers import member_log as _log
from tests.cluster.harness import ProcessCluster, etcd_binary, minietcd_binary

pytestmark = pytest.mark.cluster

TOKEN = "tok-discovery"
def discovery_flags(service: ProcessCluster, token: str = TOKEN) -> list[str]:
    return ["--discovery-endpoints", ",".join(service.endpoints), "--discovery-token", token]


def start_service(binary: Sequence[str], tmp_path: Path) -> ProcessCluster:
    service = ProcessCluster(binary, 1, tmp_path / "discovery-service").start()
    try:
        service.wait_healthy(60.0)
    except BaseException:
        service.close()
        raise
    return service


@pytest.mark.parametrize(
    "service_binary",
    [
        pytest.param("minietcd", id="minietcd-service"),
        pytest.param("etcd", id="etcd-service", marks=pytest.mark.compat),
    ],
)
def test_three_members_bootstrap_through_discovery(service_binary: str, tmp_path: Path) -> None:
    binary = minietcd_binary() if service_binary == "minietcd" else etcd_binary()
    with start_service(binary, tmp_path) as service:
        service.etcdctl_ok("put", size_key(TOKEN), "3")
        new = DiscoveryCluster(minietcd_binary(), 3, tmp_path / "new", extra_flags=discovery_flags(service))
        with new:
            # n1 registers first and waits (on a watch) for the two others.
            new.start_member(0)
            wait_for_log(new, 0, "discovery: found 1 peer(s), waiting for 2 more")
            assert "discovery: found self" in _log(new, 0)
            new.start_member(1)
            new.start_member(2)
            new.wait_healthy(120.0)
            for i in range(3):
                new.wait_published(i, 60.0)
                assert "discovery: found 3 needed peer(s)" in _log(new, i)

            # One cluster of the three, with the names, URLs and IDs a static bootstrap with
            # --initial-cluster-token <discovery token> would give.
            listed = json.loads(new.etcdctl_ok("member", "list", "-w", "json"))["members"]
            got = sorted((m["name"], m["peerURLs"], m["clientURLs"], m["ID"]) for m in listed)
            want = sorted(
                (m.name, [m.peer_url], [m.client_url], ids.member_id([m.peer_url], TOKEN))
                for m in new.members
            )
            assert got == want
            assert not any(m.get("isLearner") for m in listed)
            assert new.cluster_id() == ids.cluster_id(w[3] for w in want)
            new.etcdctl_ok("put", "k", "v")
            assert new.etcdctl_ok("get", "k", "--print-value-only", endpoints=new.endpoint(2)).strip() == "v"

            # The registry on the discovery service: one key per member, named by its ID.
            reg = new.etcdctl_ok("get", "--prefix", members_prefix(TOKEN) + "/", endpoints=service.endpoints)
            lines = reg.split()
            for m in new.members:
                mid = ids.member_id([m.peer_url], TOKEN)
                assert member_key(TOKEN, mid) in lines
                assert f"{m.name}={m.peer_url}" in lines

            # A fourth member with the same token is refused: the cluster is full.
            i = new.add_member_slot("n4")
            new.start_member(i)
            assert wait_exit(new, i) != 0
            log = _log(new, i)
            assert "discovery: cluster is full" in log
            assert "failed to join discovery cluster" in log
            assert not (new.members[i].data_dir / "member").exists()
            new.members[i].proc = None  # exited; not part of the cluster

            # A restart uses the data dir; the discovery flags are then ignored.
            new.restart(0)
            new.wait_healthy(60.0)
            assert "discovery token ignored since a cluster has already been initialized" in _log(new, 0)
            assert len(json.loads(new.etcdctl_ok("member", "list", "-w", "json"))["members"]) == 3


def test_missing_size_key_and_stop_while_waiting(tmp_path: Path) -> None:
    with start_service(minietcd_binary(), tmp_path) as service:
        new = DiscoveryCluster(minietcd_binary(), 2, tmp_path / "new", extra_flags=discovery_flags(service))
        with new:
            # No size key: etcd's error, at once, and a non-zero exit.
            new.start_member(0)
            assert wait_exit(new, 0) != 0
            assert "discovery: size key not found" in _log(new, 0)
            new.members[0].proc = None

            # Waiting for peers that never come; SIGTERM ends the wait and the process cleanly.
            service.etcdctl_ok("put", size_key(TOKEN), "2")
            new.start_member(0)
            wait_for_log(new, 0, "discovery: found 1 peer(s), waiting for 1 more")
            proc = new.members[0].proc
            assert proc is not None
            new.stop(0, timeout=30.0)
            assert proc.returncode == 0
            assert not (new.members[0].data_dir / "member").exists()

            # Started again, it keeps its registration (same ID, same value) and completes
            # the cluster with n2.
            new.start_member(0)
            wait_for_log(new, 0, "already registered; keeping that registration")
            new.start_member(1)
            new.wait_healthy(120.0)
            listed = json.loads(new.etcdctl_ok("member", "list", "-w", "json"))["members"]
            assert sorted(m["ID"] for m in listed) == sorted(
                ids.member_id([m.peer_url], TOKEN) for m in new.members
            )
