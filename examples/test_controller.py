"""Testing an application's failover with the minietcd pytest plugin: the leader-elected
controller of docs/leader-election.md (``examples/controller.py``), three replicas, a real
3-member cluster, and faults injected from the tests.

Run it (the plugin comes with minietcd; the same tests run against real etcd with
``--minietcd-bin=/usr/bin/etcd``, where the partition test skips: etcd's peer links cannot be
cut one by one)::

    python3 -m pytest examples/test_controller.py

What the tests assert is the controller's contract, not minietcd's: exactly one replica works at a
time; a replica that dies is replaced within its lease TTL; a leader change inside etcd does not
cost the controller its leadership; a replica cut off from the majority stops working (its
fenced writes would be refused anyway) and a replica on the majority side takes over.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from minietcd.client import Client
from minietcd.testing import MinietcdCluster

CONTROLLER = Path(__file__).with_name("controller.py")
TTL = 4  # seconds: how long a dead replica blocks a takeover (> a few Raft elections)
PERIOD = 0.3  # seconds between reconcile steps
STATUS = "controller/status"


class Replica:
    """One ``controller.py`` process; ``endpoints`` in the order it tries them."""

    def __init__(self, name: str, endpoints: list[str], log_dir: Path) -> None:
        self.name = name
        self.log = log_dir / f"{name}.log"
        argv = [
            sys.executable, str(CONTROLLER), "--id", name, "--endpoints", ",".join(endpoints),
            "--ttl", str(TTL), "--period", str(PERIOD),
        ]  # fmt: skip
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def exit_code(self, timeout: float) -> int | None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            return self.proc.wait(timeout)
        return None


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[Callable[..., Replica]]:
    """``replicas(name, endpoints)`` starts a controller replica; all are killed at the end (and
    their logs printed if the test failed: pytest shows captured output on failure)."""
    started: list[Replica] = []

    def start(name: str, endpoints: list[str]) -> Replica:
        replica = Replica(name, endpoints, tmp_path)
        started.append(replica)
        return replica

    try:
        yield start
    finally:
        for r in started:
            r.kill()
            print(f"----- {r.name} (exit {r.proc.returncode}) -----\n{r.log.read_text()}")


def _rotate(endpoints: list[str], first: int) -> list[str]:
    return endpoints[first:] + endpoints[:first]


async def _worker(client: Client, timeout: float = 15.0, not_: str | None = None) -> str:
    """The replica that wrote the controller's status last (waiting for one other than ``not_``)."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(Exception):  # the cluster may be failing over
            got = await client.get(STATUS, timeout=1.0)
            if got.kvs:
                who = got.kvs[0].value.decode().split()[2]  # "reconciled by ctrl-b (#3)"
                if who != not_:
                    return who
        if time.monotonic() >= deadline:
            raise AssertionError(f"no replica (other than {not_}) reconciled within {timeout:.0f}s")
        await asyncio.sleep(0.1)


async def _writers_during(client: Client, seconds: float) -> set[str]:
    """Which replicas wrote the status during the next ``seconds`` (from a watch)."""
    writers: set[str] = set()
    start = (await client.get(STATUS)).header.revision + 1
    async with client.watch(STATUS, start_revision=start) as watch:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                async for batch in watch:
                    writers |= {e.kv.value.decode().split()[2] for e in batch.events}
    return writers


Setup = tuple[MinietcdCluster, dict[str, Replica]]  # the cluster, the replicas by name


@pytest.fixture
async def cluster(
    minietcd_cluster: MinietcdCluster, replicas: Callable[..., Replica]
) -> Setup:
    """The shared 3-member cluster and three replicas, each preferring a different member, all
    campaigning (one leads, two queue behind it)."""
    eps = minietcd_cluster.endpoints
    started = {name: replicas(name, _rotate(eps, i)) for i, name in enumerate(("ctrl-a", "ctrl-b", "ctrl-c"))}
    async with minietcd_cluster.client() as client:
        deadline = time.monotonic() + 30.0
        while len((await client.get("controller-leader/", prefix=True)).kvs) < len(started):
            assert time.monotonic() < deadline, "the replicas did not all campaign within 30s"
            await asyncio.sleep(0.1)
    return minietcd_cluster, started


async def test_exactly_one_replica_works(cluster: Setup) -> None:
    etcd, _ = cluster
    async with etcd.client() as client:
        active = await _worker(client)
        assert await _writers_during(client, 4 * PERIOD) == {active}


async def test_a_standby_takes_over_when_the_active_replica_dies(cluster: Setup) -> None:
    etcd, reps = cluster
    async with etcd.client() as client:
        active = await _worker(client)
        reps[active].kill()  # no resignation: its lease has to expire
        killed_at = time.monotonic()
        successor = await _worker(client, not_=active)
        assert time.monotonic() - killed_at < TTL + 3.0
        assert await _writers_during(client, 4 * PERIOD) == {successor}


async def test_an_etcd_leader_change_keeps_the_same_active_replica(cluster: Setup) -> None:
    etcd, _ = cluster
    async with etcd.client() as client:
        active = await _worker(client)
        old_leader = await etcd.wait_for_leader_async()
        etcd.kill(old_leader)
        assert await etcd.wait_for_leader_async() != old_leader
        # The new Raft leader extends every lease: the controller keeps its leadership.
        assert await _writers_during(client, TTL + 2.0) == {active}


async def test_a_replica_cut_off_from_the_majority_stops_and_another_takes_over(cluster: Setup) -> None:
    etcd, reps = cluster
    async with etcd.client() as client:
        active = await _worker(client)
        # Cut the member the active replica talks to (its first endpoint) off from the others.
        cut = etcd.names[list(reps).index(active)]
        rest = [n for n in etcd.names if n != cut]
        etcd.partition([cut], rest)
        # It cannot renew its lease there: it must stop working (exit 1: "leadership lost").
        assert reps[active].exit_code(timeout=TTL + 10.0) == 1
    async with etcd.client(*rest) as majority:
        successor = await _worker(majority, timeout=TTL + 15.0, not_=active)
        assert successor != active
        etcd.heal()
