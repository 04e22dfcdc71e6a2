"""What scripts and test harnesses wait for, on etcd 3.4 and minietcd side by side.

* Every member, followers too, logs the cluster version as it applies it::

      N | etcdserver/membership: set the initial cluster version to 3.4
      I | etcdserver/api: enabled capabilities for version 3.4

  and the leader ``I | etcdserver: setting up the initial cluster version to 3.4`` before it
  proposes it. On a restart every member logs ``enabled capabilities for version 3.4`` again
  (etcd, restarted before its first snapshot, replays the version entry; minietcd restarts
  from its database, which is etcd's after-a-snapshot case: ``set the cluster version to 3.4
  from store``; see minietcd/server/cluster_version.py).
* ``etcdctl endpoint status`` on a member that has no leader shows ``etcdserver: no leader``
  in its errors column (and in the JSON ``errors``).
"""

from __future__ import annotations

import json
import time

import pytest

from tests.cluster.conftest import ClusterFactory
from tests.cluster.harness import ProcessCluster, etcd_binary, minietcd_binary

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

HEALTHY = 60.0
SET = "N | etcdserver/membership: set the initial cluster version to 3.4"
ENABLED = "I | etcdserver/api: enabled capabilities for version 3.4"
SETTING_UP = "I | etcdserver: setting up the initial cluster version to 3.4"
FROM_STORE = "I | etcdserver/membership: set the cluster version to 3.4 from store"


def _run_log(c: ProcessCluster, i: int) -> str:
    """Member ``i``'s log since its latest start."""
    text = c.members[i].log_path.read_text(errors="replace")
    return text.rsplit("==== start #", 1)[-1]


def _wait_lines(c: ProcessCluster, i: int, *lines: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        log = _run_log(c, i)
        if all(line in log for line in lines):
            return log
        if time.monotonic() >= deadline:
            missing = [line for line in lines if line not in log]
            pytest.fail(f"{c.members[i].name} never logged {missing}:\n{c.log_tails()}")
        time.sleep(0.1)


def _status_json(c: ProcessCluster, i: int) -> dict[str, object]:
    out = c.etcdctl_ok("endpoint", "status", "-w", "json", endpoints=c.endpoint(i))
    entries = json.loads(out)
    assert len(entries) == 1
    status: dict[str, object] = entries[0]["Status"]
    return status


@pytest.mark.parametrize("server", ["etcd", "minietcd"])
def test_version_lines_on_every_member_and_no_leader_in_status(
    server: str, process_cluster: ClusterFactory
) -> None:
    c = process_cluster(etcd_binary() if server == "etcd" else minietcd_binary(), 3).start()
    c.wait_healthy(HEALTHY)

    # Every member applies the version, in this order; one of them (the leader then) proposed it.
    logs = [_wait_lines(c, i, SET, ENABLED) for i in range(3)]
    for log in logs:
        assert log.index(SET) < log.index(ENABLED)
        assert log.count(ENABLED) == 1
    proposers = [i for i, log in enumerate(logs) if SETTING_UP in log]
    assert len(proposers) >= 1
    assert logs[proposers[0]].index(SETTING_UP) < logs[proposers[0]].index(SET)

    # Healthy: no errors. Then two members stop and the last one has no leader.
    assert "errors" not in _status_json(c, 0)
    c.stop(1)
    c.stop(2)
    deadline = time.monotonic() + 30.0
    while True:
        status = _status_json(c, 0)
        if "errors" in status:
            break
        if time.monotonic() >= deadline:
            pytest.fail(f"n1 still reports a leader:\n{c.log_tails()}")
        time.sleep(0.2)
    assert status["errors"] == ["etcdserver: no leader"]
    assert "leader" not in status  # 0, omitted in JSON
    out = c.etcdctl_ok("endpoint", "status", endpoints=c.endpoint(0)).strip()
    assert out.endswith(", etcdserver: no leader"), out
    table = c.etcdctl_ok("endpoint", "status", "-w", "table", endpoints=c.endpoint(0))
    assert "| etcdserver: no leader |" in table, table

    # A restart: every member announces the capabilities again.
    c.stop(0)
    c.start()
    c.wait_healthy(HEALTHY)
    for i in range(3):
        log = _wait_lines(c, i, ENABLED)
        if server == "etcd":
            assert SET in log and log.index(SET) < log.index(ENABLED)  # the version entry replayed
        else:
            assert FROM_STORE in log and log.index(ENABLED) < log.index(FROM_STORE)
            assert "starting server... [version: 3.4.23, cluster version: 3.4]" in log
        assert SETTING_UP not in log  # nobody proposes it again
