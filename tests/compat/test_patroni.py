"""Patroni (PostgreSQL high availability, Debian's package) on a 3-member minietcd, through
etcd's JSON gateway (Patroni's ``etcd3:`` mode): two PostgreSQL nodes elect a leader, the other
follows it; when the leader's Patroni is killed, the other node takes over.

Patroni and PostgreSQL run as the ``postgres`` user (``runuser``), in a scratch directory of
their own; every process is stopped by its PID at the end (Patroni's process group, each
postmaster from its ``postmaster.pid``).
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.harness import ProcessCluster, free_ports, minietcd_binary

pytestmark = [pytest.mark.compat, pytest.mark.cluster, pytest.mark.slow]

ELECT_TIMEOUT = 180.0  # initdb, start, a base backup for the replica: slow on a busy machine
FAILOVER_TIMEOUT = 120.0  # the leader key's TTL (20 s) runs out, then the replica promotes


def _missing(what: str) -> None:
    reason = f"{what} (apt-get install patroni postgresql; scripts/setup.sh installs them)"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must have it", pytrace=False)
    pytest.skip(reason)


def _requirements() -> str:
    """PostgreSQL's bin dir; skips (fails in CI) if Patroni, PostgreSQL or the user is missing."""
    if shutil.which("patroni") is None:
        _missing("patroni is not installed")
    if shutil.which("runuser") is None or os.geteuid() != 0:
        _missing("the test runs Patroni as the postgres user: it needs root and runuser")
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        _missing("there is no postgres user")
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not bins:
        _missing("PostgreSQL's server is not installed")
    return str(Path(bins[-1]).parent)


@dataclass
class Node:
    name: str
    rest_port: int
    pg_port: int
    home: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    def cluster_view(self) -> dict[str, Any] | None:
        """Patroni's GET /cluster from this node's REST API, or None if it does not answer."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.rest_port}/cluster", timeout=3) as r:
                return dict(json.loads(r.read()))
        except (urllib.error.URLError, OSError, ValueError):
            return None


def _config(node: Node, endpoints: str, bin_dir: str) -> str:
    return f"""\
scope: minietcd-test
namespace: /service/
name: {node.name}
restapi:
  listen: 127.0.0.1:{node.rest_port}
  connect_address: 127.0.0.1:{node.rest_port}
etcd3:
  hosts: {endpoints}
bootstrap:
  dcs:
    ttl: 20
    loop_wait: 2
    retry_timeout: 5
    maximum_lag_on_failover: 1048576
  initdb:
  - encoding: UTF8
  pg_hba:
  - host replication replicator 127.0.0.1/32 md5
  - host all all 127.0.0.1/32 md5
postgresql:
  listen: 127.0.0.1:{node.pg_port}
  connect_address: 127.0.0.1:{node.pg_port}
  data_dir: {node.data_dir}
  bin_dir: {bin_dir}
  pgpass: {node.home}/pgpass
  authentication:
    replication:
      username: replicator
      password: rep-pass
    superuser:
      username: postgres
      password: super-pass
  parameters:
    unix_socket_directories: '{node.home}'
"""


@contextlib.contextmanager
def patroni_nodes(endpoints: str, bin_dir: str) -> Iterator[list[Node]]:
    """Two Patroni nodes, started; every process they started is stopped on the way out."""
    work = Path(tempfile.mkdtemp(prefix="minietcd-patroni-"))
    os.chmod(work, 0o755)
    user = pwd.getpwnam("postgres")
    ports = free_ports(4)
    nodes = [Node(f"pg{i + 1}", ports[2 * i], ports[2 * i + 1], work / f"pg{i + 1}") for i in range(2)]
    try:
        for node in nodes:
            node.home.mkdir(mode=0o700)
            cfg = node.home / "patroni.yml"
            cfg.write_text(_config(node, endpoints, bin_dir))
            for p in (node.home, cfg):
                os.chown(p, user.pw_uid, user.pw_gid)
            with open(work / f"{node.name}.log", "wb") as log:
                node.proc = subprocess.Popen(
                    ["runuser", "-u", "postgres", "--", "patroni", str(cfg)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group: killed as one below
                )
        yield nodes
    except BaseException:
        for node in nodes:
            log_file = work / f"{node.name}.log"
            if log_file.exists():
                tail = log_file.read_text(errors="replace")[-4000:]
                print(f"---- {node.name}'s Patroni log (tail)\n{tail}")
        raise
    finally:
        for node in nodes:
            kill_patroni(node)
            _stop_postgres(node)
        shutil.rmtree(work, ignore_errors=True)


def kill_patroni(node: Node) -> None:
    """SIGKILL the node's Patroni (runuser, Patroni: one process group); its PostgreSQL lives on."""
    if node.proc is not None and node.proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(node.proc.pid, signal.SIGKILL)
        node.proc.wait(timeout=10)


def _stop_postgres(node: Node) -> None:
    pid_file = node.data_dir / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGQUIT)  # PostgreSQL's immediate shutdown: the postmaster ends its children
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _roles(view: dict[str, Any] | None) -> dict[str, tuple[str, str]]:
    """{member name: (role, state)} of a /cluster answer."""
    if not view:
        return {}
    return {m["name"]: (m.get("role", ""), m.get("state", "")) for m in view.get("members", [])}


def _wait_for(what: str, timeout: float, check: Any) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def test_patroni_elects_and_fails_over_on_minietcd(tmp_path: Path) -> None:
    bin_dir = _requirements()
    with ProcessCluster(minietcd_binary(), 3, tmp_path / "minietcd", heartbeat_ms=100, election_ms=1000) as c:
        c.start()
        c.wait_healthy(60)
        endpoints = ",".join(f"127.0.0.1:{m.client_port}" for m in c.members)
        with patroni_nodes(endpoints, bin_dir) as nodes:

            def elected() -> tuple[Node, Node] | None:
                roles = _roles(nodes[0].cluster_view() or nodes[1].cluster_view())
                leaders = [n for n in nodes if roles.get(n.name, ("", ""))[0] == "leader"]
                role = {n.name: roles.get(n.name, ("", "")) for n in nodes}
                followers = [n for n in nodes if role[n.name][0] in ("replica", "sync_standby")]
                running = all(role[n.name][1] in ("running", "streaming") for n in nodes)
                if len(leaders) == 1 and len(followers) == 1 and running:
                    return leaders[0], followers[0]
                return None

            leader, follower = _wait_for("a leader and a running replica", ELECT_TIMEOUT, elected)
            started = time.monotonic()
            kill_patroni(leader)

            def took_over() -> bool:
                return _roles(follower.cluster_view()).get(follower.name, ("", ""))[0] == "leader"

            what = f"{follower.name} to lead after {leader.name}'s Patroni died"
            _wait_for(what, FAILOVER_TIMEOUT, took_over)
            print(f"failover in {time.monotonic() - started:.1f} s")
