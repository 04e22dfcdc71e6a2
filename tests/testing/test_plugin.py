"""The pytest plugin (``minietcd.testing.plugin``), driven as its users drive it: small test suites
run by pytest in a subprocess (``pytester``), against minietcd and against real etcd 3.4
(``--minietcd-bin``), then checked from outside: outcomes, reports, and that no process they
started is left (by pid and start time, as the lab names processes).
"""

from __future__ import annotations

import importlib.metadata
import json
import signal
import subprocess
import sys
import time

import pytest

from minietcd.lab import processes
from tests.cluster.harness import require_binary

pytest_plugins = ("pytester",)
pytestmark = [pytest.mark.cluster]

INI = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
"""

# Written by the inner tests: the pids (and start times) of every process their clusters run.
RECORD_PIDS = """
import json
from pathlib import Path

from minietcd.lab import processes


def record(cluster, name="pids.json"):
    refs = [m.process for m in cluster.lab.members] + [cluster.lab.state.toxiproxy_process]
    pids = [ref.to_json() for ref in refs if ref is not None and processes.alive(ref)]
    path = Path(name)
    old = json.loads(path.read_text()) if path.exists() else []
    path.write_text(json.dumps(old + pids))
"""

SUITE = '''
import pytest

from minietcd.client import EtcdServerError, DeadlineExceededError, OutcomeUnknownError
from record import record


async def test_single_member(minietcd, minietcd_client):
    record(minietcd)
    assert len(minietcd.endpoints) == 1 and minietcd.endpoints[0].startswith("http://127.0.0.1:")
    await minietcd_client.put("k", "v")
    assert (await minietcd_client.get("k")).kvs[0].value == b"v"


async def test_each_test_starts_empty(minietcd_client):
    assert (await minietcd_client.get("k")).kvs == []


async def test_three_members_and_a_killed_leader(minietcd_cluster):
    c = minietcd_cluster
    record(c)
    assert c.names == ["n1", "n2", "n3"]
    old = c.wait_for_leader()
    c.kill(old)
    new = await c.wait_for_leader_async()
    assert new != old
    async with c.client(*[n for n in c.names if n != old]) as client:
        await client.put("after", "failover")


def test_the_shared_cluster_is_restored(minietcd_cluster):
    assert minietcd_cluster.leader() is not None
    assert all(minietcd_cluster.lab.process_state(n) == "running" for n in minietcd_cluster.names)


async def test_partition_fails_writes_then_they_recover(minietcd_cluster):
    c = minietcd_cluster
    c.wait_for_leader()
    c.partition(["n1"], ["n2", "n3"])
    assert c.wait_for_leader(among=["n2", "n3"]) in ("n2", "n3")
    async with c.client("n1", timeout=1.5) as minority, c.client("n2", "n3") as majority:
        with pytest.raises((EtcdServerError, DeadlineExceededError, OutcomeUnknownError)):
            await minority.put("k", "cut off")
        await majority.put("k", "majority")
        c.heal()
        await c.wait_healthy_async()
        await minority.put("k", "recovered", timeout=5)
        assert (await majority.get("k")).kvs[0].value == b"recovered"


def test_a_slow_link_and_a_paused_member(minietcd_cluster):
    c = minietcd_cluster
    c.slow("n1", "n2", ms=100)
    c.pause("n3")
    c.wait_for_leader()
    c.resume("n3")
    c.reset()


SHARED = {}


def test_fresh_clusters_of_any_size(minietcd_factory, minietcd_cluster):
    SHARED.update(minietcd_cluster.pids())
    five = minietcd_factory(5)
    record(five)
    assert len(five.names) == 5 and five.wait_for_leader()
    five.isolate("n5")  # faults on one cluster of the process...
    minietcd_cluster.isolate("n3")  # ...and on another: each its own Toxiproxy


def test_the_shared_cluster_outlives_a_fresh_one(minietcd_cluster):
    # Restored (healed through its own Toxiproxy), not replaced by a new one.
    assert minietcd_cluster.pids() == SHARED
    minietcd_cluster.partition(["n1"], ["n2", "n3"])
'''


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini(INI)
    pytester.makepyfile(record=RECORD_PIDS)
    return pytester


def _left_running(pytester: pytest.Pytester, name: str = "pids.json") -> list[int]:
    """The recorded processes that still run (should be none)."""
    refs = [processes.ProcessRef.from_json(r) for r in json.loads((pytester.path / name).read_text())]
    assert refs, "the inner tests recorded no process"
    return [ref.pid for ref in refs if processes.alive(ref)]


def test_the_plugin_is_installed_and_changes_nothing_unasked(request: pytest.FixtureRequest) -> None:
    ours = [e for e in importlib.metadata.entry_points(group="pytest11") if e.value.startswith("minietcd")]
    names = [e.name for e in ours]
    assert names == ["minietcd"], "run `pip install -e .` to register the pytest11 entry point"
    assert request.config.pluginmanager.has_plugin("minietcd")
    assert not [f for f in request.fixturenames if "minietcd" in f]  # no autouse fixture


@pytest.mark.slow
def test_a_suite_against_minietcd(suite: pytest.Pytester) -> None:
    suite.makepyfile(test_suite=SUITE)
    result = suite.runpytest_subprocess("-v", "-W", "error::UserWarning", timeout=300)
    result.assert_outcomes(passed=8)
    assert _left_running(suite) == []


@pytest.mark.slow
@pytest.mark.compat
def test_the_same_suite_against_real_etcd(suite: pytest.Pytester) -> None:
    etcd = require_binary("/usr/bin/etcd")
    suite.makepyfile(test_suite=SUITE)
    result = suite.runpytest_subprocess("-v", "-rs", f"--minietcd-bin={etcd}", timeout=300)
    # Link faults need minietcd's peer routing: against etcd they skip, saying why.
    result.assert_outcomes(passed=4, skipped=4)
    result.stdout.fnmatch_lines(["*SKIPPED*cannot partition: */etcd members dial their peers directly*"])
    assert _left_running(suite) == []


@pytest.mark.slow
def test_size_option_and_usage_errors(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        test_size="def test_size(minietcd_cluster):\n    assert len(minietcd_cluster.names) == 2\n"
    )
    suite.runpytest_subprocess("--minietcd-size=2", timeout=120).assert_outcomes(passed=1)
    bad = suite.runpytest_subprocess("--minietcd-size=12", timeout=60)
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*--minietcd-size 12: a cluster has 1 to 9 members*"])
    bad = suite.runpytest_subprocess("--minietcd-bin=/no/such/etcd", timeout=60)
    bad.stderr.fnmatch_lines(["*--minietcd-bin /no/such/etcd: no such executable*"])


@pytest.mark.slow
def test_a_failing_test_gets_member_logs_and_leaves_nothing_running(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        test_fails="""
        from record import record

        def test_fails(minietcd_factory):
            cluster = minietcd_factory(3)
            record(cluster)
            cluster.kill(cluster.wait_for_leader())
            assert cluster.leader() == "nobody", "an assertion about the cluster that fails"
        """
    )
    result = suite.runpytest_subprocess(timeout=120)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["E   *AssertionError: an assertion about the cluster that fails"])
    # The members' log lines written during the test are in the failure report.
    result.stdout.fnmatch_lines(
        [
            "*- minietcd n1 log (*/minietcd1/logs/n1.log) -*",
            "*I | embed: ready to serve client requests",
            "*- minietcd n2 log*",
            "*- minietcd n3 log*",
        ]
    )
    assert _left_running(suite) == []


@pytest.mark.slow
def test_ctrl_c_stops_every_process(suite: pytest.Pytester) -> None:
    """SIGINT to pytest while a test waits with a shared and a fresh cluster up: pytest tears the
    fixtures down, and every process is gone."""
    suite.makepyfile(
        test_waits="""
        import time
        from pathlib import Path

        from record import record

        def test_waits(minietcd_cluster, minietcd_factory):
            record(minietcd_cluster)
            record(minietcd_factory(1))
            Path("started").write_text("yes")
            time.sleep(120)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", str(suite.path)],
        cwd=suite.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not (suite.path / "started").exists():
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "the inner test never started"
            time.sleep(0.1)
        recorded = json.loads((suite.path / "pids.json").read_text())
        running = [processes.ProcessRef.from_json(r) for r in recorded]
        assert len(running) == 3 + 1 + 1 + 1 and all(processes.alive(r) for r in running)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert "KeyboardInterrupt" in out, out
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, out
    assert _left_running(suite) == []
