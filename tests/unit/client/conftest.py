"""Fixtures: real etcd members for the client tests (see etcd_launcher.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.client.etcd_launcher import EtcdCluster


@pytest.fixture(scope="module")
def etcd1(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    """One etcd member shared by a module's tests (each test uses its own key prefix)."""
    with EtcdCluster(tmp_path_factory.mktemp("etcd1"), size=1) as cluster:
        cluster.start()
        cluster.wait_healthy()
        yield cluster


@pytest.fixture
def etcd3(tmp_path: Path) -> Iterator[EtcdCluster]:
    """A fresh 3-member etcd cluster for one test (tests kill and restart members)."""
    with EtcdCluster(tmp_path, size=3) as cluster:
        cluster.start()
        cluster.wait_healthy()
        yield cluster
