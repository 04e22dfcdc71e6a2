"""A 1-member cluster may add a voter though the new member has not started (etcd's
IsReadyToAddVotingMember: the way etcd's recovery guide grows a restored member into a cluster),
on minietcd as on etcd 3.4. Found by the gateway's side-by-side script (issue 12)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cluster.harness import ProcessCluster, etcd_binary, free_ports, minietcd_binary

pytestmark = pytest.mark.cluster


@pytest.mark.parametrize("server", ["etcd", "minietcd"])
def test_a_one_member_cluster_adds_a_voter(server: str, tmp_path: Path) -> None:
    binary = etcd_binary() if server == "etcd" else minietcd_binary()
    with ProcessCluster(binary, 1, tmp_path) as c:
        c.start()
        c.wait_healthy(30)
        (port,) = free_ports(1)
        r = c.etcdctl("member", "add", "n2", f"--peer-urls=http://127.0.0.1:{port}")
        assert r.returncode == 0, r.stderr
        assert "Member" in r.stdout and "added to cluster" in r.stdout, r.stdout
        # A second voter that has not started: now the quorum is 2 of 2 and the next add waits.
        (port2,) = free_ports(1)
        r = c.etcdctl("member", "add", "n3", f"--peer-urls=http://127.0.0.1:{port2}", "--command-timeout=3s")
        assert r.returncode != 0
