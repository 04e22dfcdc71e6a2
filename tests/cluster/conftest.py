"""Fixtures for tests that start real server processes (see harness.py and README.md)."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.harness import ProcessCluster, etcd_binary, minietcd_binary

ClusterFactory = Callable[..., ProcessCluster]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    """Keep each phase's report on the test item, so fixtures can tell whether the test failed."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture
def process_cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ClusterFactory]:
    """A factory of :class:`ProcessCluster`: ``process_cluster(binary, size, **kwargs)``.

    Every cluster it made is closed (every process killed) when the test ends, pass or fail; on
    failure the tail of each member's log is printed (pytest shows it under the failure).
    """
    made: list[ProcessCluster] = []

    def make(binary: Sequence[str], size: int = 3, **kwargs: Any) -> ProcessCluster:
        cluster = ProcessCluster(binary, size, tmp_path / f"cluster{len(made) + 1}", **kwargs)
        made.append(cluster)
        return cluster

    yield make
    failed = any(getattr(getattr(request.node, f"rep_{w}", None), "failed", False) for w in ("setup", "call"))
    for cluster in made:
        if failed:
            cluster.print_logs()
        cluster.close()


@pytest.fixture
def etcd_cluster(process_cluster: ClusterFactory) -> ProcessCluster:
    """A healthy 3-member real etcd cluster (skips without etcd, fails in CI)."""
    cluster = process_cluster(etcd_binary(), 3).start()
    cluster.wait_healthy(30.0)
    return cluster


@pytest.fixture
def minietcd_cluster(process_cluster: ClusterFactory) -> ProcessCluster:
    """A healthy 3-member minietcd cluster."""
    cluster = process_cluster(minietcd_binary(), 3).start()
    cluster.wait_healthy(30.0)
    return cluster
