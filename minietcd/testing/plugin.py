"""The pytest plugin: real minietcd (or etcd) clusters as fixtures, faults as method calls.

Installed with minietcd (entry point ``minietcd`` in the ``pytest11`` group), so every pytest
run in an environment that has minietcd loads it; ``-p no:minietcd`` turns it off. It costs a
run that uses none of its fixtures nothing: it imports only pytest until a fixture is used,
has no autouse fixture, and starts nothing on its own.

Fixtures (``docs/testing.md``):

``minietcd``          a 1-member cluster shared by the session; every test gets it healthy,
                      with no faults, no keys and no leases (``MinietcdCluster``)
``minietcd_cluster``  the same for an N-member cluster (``--minietcd-size``, default 3)
``minietcd_factory``  ``minietcd_factory(size=..., **options)``: fresh clusters of the test's
                      own, stopped when it ends
``minietcd_client``   (with pytest-asyncio) a connected ``minietcd.client.Client`` on ``minietcd``

Options: ``--minietcd-size N`` (ini ``minietcd_size``), ``--minietcd-bin PATH`` (ini
``minietcd_bin``): run every cluster with that server instead, e.g. ``/usr/bin/etcd`` to run
the same tests against real etcd (link faults then skip, saying why).

Processes are real, on free ports of 127.0.0.1, with data and logs under pytest's
``tmp_path`` (``tmp_path_factory`` for the shared ones). Every process is stopped when its
fixture ends, whether the test passed, failed or was interrupted (Ctrl-C: pytest tears
fixtures down), and as a last resort when the interpreter exits (``atexit``). When a test
fails, the log lines its clusters' members wrote during it are added to the report.
"""

from __future__ import annotations

import atexit
import os
import warnings
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from minietcd.client import Client
    from minietcd.testing.cluster import MinietcdCluster

DEFAULT_SIZE = 3
_ATTACHED = pytest.StashKey[list[tuple["MinietcdCluster", dict[str, int]]]]()
_live: list[MinietcdCluster] = []  # every cluster started and not yet downed, for atexit
_atexit_registered = False


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("minietcd", "minietcd: etcd-compatible clusters for tests (docs/testing.md)")
    group.addoption(
        "--minietcd-size",
        type=int,
        default=None,
        metavar="N",
        help=f"members of the minietcd_cluster fixture, 1-9 (ini minietcd_size; default {DEFAULT_SIZE})",
    )
    group.addoption(
        "--minietcd-bin",
        default=None,
        metavar="PATH",
        help="run the clusters with this server instead of minietcd, e.g. /usr/bin/etcd "
        "(default: ini minietcd_bin); link faults then skip",
    )
    parser.addini("minietcd_size", f"members of the minietcd_cluster fixture (default {DEFAULT_SIZE})")
    parser.addini("minietcd_bin", "server command for the minietcd fixtures (default: minietcd itself)")


def _size(config: pytest.Config) -> int:
    raw = config.getoption("--minietcd-size") or config.getini("minietcd_size") or DEFAULT_SIZE
    try:
        size = int(raw)
    except ValueError:
        raise pytest.UsageError(f"--minietcd-size {raw!r}: not a number") from None
    if not 1 <= size <= 9:
        raise pytest.UsageError(f"--minietcd-size {size}: a cluster has 1 to 9 members")
    return size


def _server(config: pytest.Config) -> tuple[str, ...]:
    raw = config.getoption("--minietcd-bin") or config.getini("minietcd_bin")
    if not raw:
        return ()
    path = str(raw)
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise pytest.UsageError(f"--minietcd-bin {path}: no such executable")
    return (str(Path(path).resolve()),)


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--minietcd-size", None) is not None or config.getini("minietcd_size"):
        _size(config)  # a bad value is a usage error at once, not an error in every test
    if config.getoption("--minietcd-bin", None) or config.getini("minietcd_bin"):
        _server(config)


# --- starting and stopping ---------------------------------------------------------------------


def _down_all_live() -> None:
    """Last resort at interpreter exit: stop what no fixture got to stop."""
    for cluster in list(_live):
        _down(cluster)


def _start(config: pytest.Config, lab_dir: Path, size: int, **options: Any) -> MinietcdCluster:
    global _atexit_registered
    from minietcd.testing.cluster import MinietcdCluster

    if not _atexit_registered:
        atexit.register(_down_all_live)
        _atexit_registered = True
    cluster = MinietcdCluster.start(lab_dir, size, server=_server(config), **options)
    _live.append(cluster)
    return cluster


def _down(cluster: MinietcdCluster) -> None:
    try:
        cluster.down()
    finally:
        if cluster in _live:
            _live.remove(cluster)


def _attach(item: pytest.Item, cluster: MinietcdCluster, whole: bool = False) -> None:
    """Show ``cluster``'s member logs in ``item``'s report if it fails: from this point on, or
    ``whole`` (a cluster started for this test)."""
    item.stash.setdefault(_ATTACHED, []).append((cluster, {} if whole else cluster.log_offsets()))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report: pytest.TestReport = yield
    if report.failed:
        for cluster, offsets in item.stash.get(_ATTACHED, []):
            for name, text in cluster.logs_since(offsets).items():
                report.sections.append((f"minietcd {name} log ({cluster.log_path(name)})", text))
    return report


class _Shared:
    """The session's shared clusters, one per size, started on first use."""

    def __init__(self, config: pytest.Config, tmp: pytest.TempPathFactory) -> None:
        self.config = config
        self.tmp = tmp
        self.clusters: dict[int, MinietcdCluster] = {}

    def get(self, size: int) -> MinietcdCluster:
        """The shared ``size``-member cluster, restored (no faults, no keys); one that cannot be
        restored (a test broke it for good) is replaced by a fresh one."""
        from minietcd.errors import LabError

        cluster = self.clusters.get(size)
        if cluster is not None:
            try:
                cluster.restore()
                return cluster
            except LabError as e:
                warnings.warn(
                    f"minietcd: the shared {size}-member cluster could not be restored, starting a "
                    f"fresh one: {str(e).splitlines()[0]}",
                    stacklevel=1,
                )
                del self.clusters[size]
                _down(cluster)
        cluster = _start(self.config, self.tmp.mktemp(f"minietcd-shared-{size}"), size)
        self.clusters[size] = cluster
        return cluster

    def close(self) -> None:
        for cluster in self.clusters.values():
            _down(cluster)


@pytest.fixture(scope="session")
def _minietcd_shared(
    pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[_Shared]:
    shared = _Shared(pytestconfig, tmp_path_factory)
    try:
        yield shared
    finally:
        shared.close()


# --- the fixtures ------------------------------------------------------------------------------


@pytest.fixture
def minietcd(request: pytest.FixtureRequest, _minietcd_shared: _Shared) -> MinietcdCluster:
    """A 1-member cluster shared by the session: healthy, no keys, no leases, no faults."""
    cluster = _minietcd_shared.get(1)
    _attach(request.node, cluster)
    return cluster


@pytest.fixture
def minietcd_cluster(request: pytest.FixtureRequest, _minietcd_shared: _Shared) -> MinietcdCluster:
    """An N-member cluster (``--minietcd-size``, default 3) shared by the session; each test gets
    it healthy, with every fault undone and no keys or leases."""
    cluster = _minietcd_shared.get(_size(request.config))
    _attach(request.node, cluster)
    return cluster


@pytest.fixture
def minietcd_factory(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[..., MinietcdCluster]]:
    """``minietcd_factory(size=N, **options)`` starts a fresh cluster of this test's own (options:
    ``heartbeat_ms``, ``election_ms``, ``extra_flags``, ``timeout``); every one is stopped when
    the test ends."""
    made: list[MinietcdCluster] = []

    def make(size: int | None = None, **options: Any) -> MinietcdCluster:
        n = size if size is not None else _size(request.config)
        cluster = _start(request.config, tmp_path / f"minietcd{len(made) + 1}", n, **options)
        made.append(cluster)
        _attach(request.node, cluster, whole=True)
        return cluster

    try:
        yield make
    finally:
        for cluster in made:
            _down(cluster)


try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - the async client fixture needs pytest-asyncio
    pytest_asyncio = None  # type: ignore[assignment]  # None marks the optional module as missing

if pytest_asyncio is not None:

    @pytest_asyncio.fixture
    async def minietcd_client(minietcd: MinietcdCluster) -> AsyncIterator[Client]:
        """A ``minietcd.client.Client`` connected to the ``minietcd`` fixture's member."""
        async with minietcd.client() as client:
            yield client
