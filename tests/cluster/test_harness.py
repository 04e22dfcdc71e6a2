"""The harness itself, exercised against real etcd (the reference it must drive correctly)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.cluster.conftest import ClusterFactory
from tests.cluster.harness import ClusterError, ProcessCluster, etcd_binary, free_ports, require_binary

pytestmark = [pytest.mark.cluster, pytest.mark.compat]


def test_free_ports_are_distinct_and_never_repeated() -> None:
    a, b = free_ports(5), free_ports(5)
    assert len(set(a + b)) == 10


def test_require_binary_finds_sh_and_skips_a_missing_one(monkeypatch: pytest.MonkeyPatch) -> None:
    assert require_binary("sh").endswith("/sh")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="not installed"):
        require_binary("no-such-binary-minietcd")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must have it"):
        require_binary("no-such-binary-minietcd")


def test_kill_restart_and_leader_failover(etcd_cluster: ProcessCluster) -> None:
    c = etcd_cluster
    require_binary("etcdctl")
    assert c.etcdctl_ok("put", "k", "v").strip() == "OK"
    leader = c.leader_index()
    c.kill(leader)
    new_leader = c.wait_healthy(30.0)
    assert new_leader != leader
    c.restart(leader)
    c.wait_healthy(30.0)
    assert c.etcdctl_ok("get", "k", "--print-value-only", endpoints=c.endpoint(leader)).strip() == "v"
    follower = next(i for i in c.running_indexes() if i != c.leader_index())
    c.stop(follower)
    c.restart(follower)
    c.transfer_leadership(follower)
    assert c.leader_index() == follower


def test_member_add_and_start_learner(etcd_cluster: ProcessCluster) -> None:
    c = etcd_cluster
    i = c.member_add_and_start("n4", learner=True)
    assert "n4" in c.etcdctl_ok("member", "list")
    assert c.members[i].is_learner
    c.member_promote(i)
    assert "n4" in c.etcdctl_ok("member", "list", endpoints=c.endpoint(i))
    c.member_remove(i)
    assert "n4" not in c.etcdctl_ok("member", "list")


def test_close_kills_every_process(tmp_path: Path) -> None:
    with ProcessCluster(etcd_binary(), 1, tmp_path) as c:
        c.start()
        c.wait_healthy(30.0)
        pids = [m.proc.pid for m in c.members if m.proc is not None]
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_a_member_that_exits_fails_fast_with_its_log(process_cluster: ClusterFactory) -> None:
    c = process_cluster(["sh", "-c", "echo bad flags >&2; exit 3", "member"], 1).start()
    with pytest.raises(ClusterError, match=r"(?s)exited with code 3.*bad flags"):
        c.wait_healthy(10.0)


def test_stop_is_sigterm(etcd_cluster: ProcessCluster) -> None:
    proc = etcd_cluster.members[0].proc
    assert proc is not None
    etcd_cluster.stop(0)
    assert proc.returncode in (0, -signal.SIGTERM)
