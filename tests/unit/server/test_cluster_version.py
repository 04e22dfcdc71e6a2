"""The cluster version's log lines (minietcd/server/cluster_version.py): printed by every member
that applies the version entry, and "from store" by one that starts with it already set."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from minietcd.api.etcdserverpb import etcdserver_pb2, raft_internal_pb2
from minietcd.raft.types import Entry
from minietcd.server.apply import StateMachine
from minietcd.server.logsetup import NOTICE


def _version_entry(index: int, version: str) -> Entry:
    req = raft_internal_pb2.InternalRaftRequest(
        v2=etcdserver_pb2.Request(Method="PUT", Path="/0/version", Val=version)
    )
    return Entry(term=2, index=index, data=req.SerializeToString())


def _lines(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    lines = [(r.levelno, r.getMessage()) for r in caplog.records if "version" in r.getMessage()]
    caplog.clear()
    return lines


def _open(data_dir: Path) -> StateMachine:
    return StateMachine.open(str(data_dir), clock=lambda: 0.0, min_lease_ttl=1, member_id=1)


def test_apply_then_restart(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    sm = _open(tmp_path)
    assert _lines(caplog) == []  # a new member knows no version yet: nothing to announce
    sm.apply(_version_entry(3, "3.4.0"))
    assert _lines(caplog) == [
        (NOTICE, "etcdserver/membership: set the initial cluster version to 3.4"),
        (logging.INFO, "etcdserver/api: enabled capabilities for version 3.4"),
    ]
    sm.apply(_version_entry(4, "3.4.0"))  # applied again (etcd: updated ..., no new capabilities)
    assert _lines(caplog) == [(NOTICE, "etcdserver/membership: updated the cluster version from 3.4 to 3.4")]
    sm.apply(_version_entry(5, "3.5.0"))
    assert _lines(caplog) == [
        (NOTICE, "etcdserver/membership: updated the cluster version from 3.4 to 3.5"),
        (logging.INFO, "etcdserver/api: enabled capabilities for version 3.5"),
    ]
    sm.close()

    restarted = _open(tmp_path)  # etcd's restart from a snapshot: RaftCluster.Recover
    assert restarted.membership.cluster_version == "3.5.0"
    assert _lines(caplog) == [
        (logging.INFO, "etcdserver/api: enabled capabilities for version 3.5"),
        (logging.INFO, "etcdserver/membership: set the cluster version to 3.5 from store"),
    ]
    restarted.close()


def test_the_leader_announces_before_proposing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    sm = StateMachine(clock=lambda: 0.0, min_lease_ttl=1, member_id=1)
    try:
        sm.capabilities.proposing("3.4.0")
        assert _lines(caplog) == [(logging.INFO, "etcdserver: setting up the initial cluster version to 3.4")]
    finally:
        sm.close()  # a temporary backend: removed now, not by the garbage collector
