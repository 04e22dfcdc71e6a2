"""etcd's JSON gateway and HTTP pages on the client URL: minietcd answers as etcd 3.4 does.

The same HTTP script (gateway_script.SCRIPT: every gateway path, both streams, errors, bad
bodies, unknown paths, /health, /version...) runs against a fresh 1-member etcd 3.4 and a fresh
1-member minietcd, on their client URLs; after normalising what must differ (IDs, ports, terms,
sizes, hashes), every step's status, content type, gRPC metadata header and JSON are equal. Then
the same few calls over WebSockets (etcd's wsproxy on /v3/) give the same messages.
"""

from __future__ import annotations

import importlib.util
import json
import time
import urllib.request
from pathlib import Path

import pytest

from tests.cluster.harness import ProcessCluster, etcd_binary, minietcd_binary
from tests.compat.gateway_script import WS_SCRIPT, run_script, run_ws_script

pytestmark = [pytest.mark.compat, pytest.mark.cluster]

#: Steps about auth tokens run once minietcd has auth (etcd refuses a bad token, auth on or off).
HAS_AUTH = importlib.util.find_spec("minietcd.server.api.auth") is not None


def _wait_version_decided(cluster: ProcessCluster, timeout: float = 20.0) -> None:
    url = cluster.endpoint(0) + "/version"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with urllib.request.urlopen(url, timeout=2) as r:
            if json.loads(r.read())["etcdcluster"] != "not_decided":
                return
        time.sleep(0.1)
    raise AssertionError(f"{url}: the cluster version was never decided")


def test_minietcd_answers_the_http_script_as_etcd(tmp_path: Path) -> None:
    results = {}
    ws = {}
    for name, binary in (("etcd", etcd_binary()), ("minietcd", minietcd_binary())):
        with ProcessCluster(binary, 1, tmp_path / name) as cluster:
            cluster.start()
            cluster.wait_healthy(30)
            _wait_version_decided(cluster)
            results[name] = run_script(cluster.members[0].client_port, auth=HAS_AUTH)
            ws[name] = run_ws_script(cluster.members[0].client_port)
    diffs = []
    for (step, want), (_, got) in zip(results["etcd"], results["minietcd"], strict=True):
        if want != got:
            diffs.append(f"{step}:\n  etcd:     {json.dumps(want)}\n  minietcd: {json.dumps(got)}")
    for (path, _, _), ws_want, ws_got in zip(WS_SCRIPT, ws["etcd"], ws["minietcd"], strict=True):
        if ws_want != ws_got:
            diffs.append(
                f"websocket {path}:\n  etcd:     {json.dumps(ws_want)}\n  minietcd: {json.dumps(ws_got)}"
            )
    assert not diffs, f"{len(diffs)} of {len(results['etcd']) + len(WS_SCRIPT)} steps differ:\n" + "\n".join(
        diffs
    )
