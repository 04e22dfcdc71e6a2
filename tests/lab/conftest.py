"""Fixtures for minietcd-lab tests: in-process lab clusters that are always brought down."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from toxiproxy.api import APIConsumer

from minietcd.lab.cluster import Cluster, ClusterSpec

LabFactory = Callable[..., Cluster]


@pytest.fixture(autouse=True)
def _restore_api_consumer() -> Iterator[None]:
    # toxiproxy-python keeps its server address on a class: put it back.
    saved = (APIConsumer.host, APIConsumer.port)
    yield
    APIConsumer.host, APIConsumer.port = saved


@pytest.fixture
def lab_cluster(tmp_path: Path) -> Iterator[LabFactory]:
    """``lab_cluster(size, **spec)``: a healthy lab cluster; every one made is brought down
    (members and the fault proxy killed) when the test ends, pass or fail, with the member
    logs printed on failure."""
    made: list[Cluster] = []

    def make(size: int = 3, **spec: Any) -> Cluster:
        cluster = Cluster.up(tmp_path / f"lab{len(made) + 1}", ClusterSpec(size=size, **spec), timeout=120.0)
        made.append(cluster)
        return cluster

    try:
        yield make
    finally:
        for cluster in made:
            print(cluster.log_tails(40))
            cluster.down()
