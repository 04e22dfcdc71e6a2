"""Fixtures: real etcd members for the client tests (started by tests/cluster/harness.py).

``MINIETCD_CLIENT_TEST_SERVER=minietcd`` runs the same tests against minietcd's server.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.harness import ProcessCluster, client_test_cluster


@pytest.fixture(scope="module")
def etcd1(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessCluster]:
    """One etcd member shared by a module's tests (each test uses its own key prefix)."""
    with client_test_cluster(tmp_path_factory.mktemp("etcd1"), 1) as cluster:
        cluster.start()
        cluster.wait_healthy()
        yield cluster


@pytest.fixture
def etcd3(tmp_path: Path) -> Iterator[ProcessCluster]:
    """A fresh 3-member etcd cluster for one test (tests kill and restart members)."""
    with client_test_cluster(tmp_path, 3) as cluster:
        cluster.start()
        cluster.wait_healthy()
        yield cluster


# No client test may hang the suite: every async test here runs under a deadline.
TEST_DEADLINE = float(__import__("os").environ.get("CLIENT_TEST_DEADLINE", "120"))


def _with_deadline(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(fn)
    async def run(*args: Any, **kwargs: Any) -> Any:
        async with asyncio.timeout(TEST_DEADLINE):
            return await fn(*args, **kwargs)

    return run


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        fn = getattr(item, "obj", None)
        if inspect.iscoroutinefunction(fn) and here in Path(str(item.path)).parents:
            item.obj = _with_deadline(fn)  # type: ignore[attr-defined]  # a pytest Function: it has obj
