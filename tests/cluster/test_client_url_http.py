"""HTTP on the client URL (issue 12): one port for gRPC and HTTP, etcd 3.5's
``--listen-client-http-urls`` to split them, the calls counted in go-grpc-prometheus's metrics,
CORS and ``--host-whitelist``, and a taken client port still one line in Go's words."""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.cluster.harness import free_ports, minietcd_binary

if TYPE_CHECKING:
    from tests.cluster.conftest import ClusterFactory

pytestmark = pytest.mark.cluster


def _http(url: str, body: str | None = None, headers: dict[str, str] | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url, data=body.encode() if body is not None else None, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def _count(metrics: str, family: str, **labels: str) -> float:
    """The value of one series of ``family`` whose labels include ``labels``."""
    for line in metrics.splitlines():
        if line.startswith(family + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {family} {labels} in /metrics")


def test_one_port_serves_grpc_and_http_and_counts_both(process_cluster: ClusterFactory) -> None:
    c = process_cluster(minietcd_binary(), 1, extra_flags=["--cors", "http://good.example:8080"]).start()
    c.wait_healthy(30)
    base = c.endpoint(0)
    c.etcdctl_ok("put", "k", "v")  # gRPC
    assert _http(base + "/v3/kv/range", '{"key": "aw=="}')[0] == 200  # the gateway
    assert _http(base + "/v3/kv/range", '{"key": ""}')[0] == 400
    status, metrics = _http(base + "/metrics")
    assert status == 200
    kv = {"grpc_service": "etcdserverpb.KV", "grpc_type": "unary"}
    assert _count(metrics, "grpc_server_handled_total", grpc_method="Put", grpc_code="OK", **kv) == 1
    assert _count(metrics, "grpc_server_handled_total", grpc_method="Range", grpc_code="OK", **kv) >= 1
    bad = _count(metrics, "grpc_server_handled_total", grpc_method="Range", grpc_code="InvalidArgument", **kv)
    assert bad == 1
    assert _count(metrics, "grpc_server_started_total", grpc_method="Watch", grpc_type="bidi_stream") == 0
    assert re.search(r'^etcd_server_id\{server_id="[0-9a-f]+"\} 1\.0$', metrics, re.M)

    # CORS as --cors says: only the listed origin is echoed.
    conn = http.client.HTTPConnection("127.0.0.1", c.members[0].client_port, timeout=10)
    conn.request("OPTIONS", "/v3/kv/put", headers={"Origin": "http://good.example:8080"})
    r = conn.getresponse()
    assert r.status == 200 and r.getheader("Access-Control-Allow-Origin") == "http://good.example:8080"
    r.read()
    conn.request("GET", "/health", headers={"Origin": "http://evil.example:8080"})
    r = conn.getresponse()
    assert r.status == 200 and r.getheader("Access-Control-Allow-Origin") is None
    conn.close()


def test_closed_connections_leave_nothing_open(process_cluster: ClusterFactory) -> None:
    """Every gRPC connection spliced to grpcio, and every HTTP one, is closed on both sides
    when its client goes (a half-closed internal socket once kept grpcio's end open)."""
    c = process_cluster(minietcd_binary(), 1).start()
    c.wait_healthy(30)
    proc = c.members[0].proc
    assert proc is not None
    pid = proc.pid
    c.etcdctl_ok("put", "k", "v")

    def open_fds() -> int:
        return len(os.listdir(f"/proc/{pid}/fd"))

    before = open_fds()
    for _ in range(20):
        c.etcdctl_ok("get", "k")  # a new gRPC connection each time
        _http(c.endpoint(0) + "/v3/kv/range", '{"key": "aw=="}')
    deadline = time.monotonic() + 10
    while open_fds() > before + 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert open_fds() <= before + 2, (before, open_fds())


def test_listen_client_http_urls_splits_the_protocols(process_cluster: ClusterFactory) -> None:
    (http_port,) = free_ports(1)
    flags = ["--listen-client-http-urls", f"http://127.0.0.1:{http_port}", "--host-whitelist", "localhost"]
    c = process_cluster(minietcd_binary(), 1, extra_flags=flags).start()
    c.wait_healthy(30)
    assert c.etcdctl_ok("put", "k", "v").strip() == "OK"  # gRPC on the client URL
    # HTTP on its own URL; the Host must be whitelisted on plain HTTP (etcd's 421 otherwise).
    assert _http(f"http://localhost:{http_port}/health") == (200, '{"health":"true"}')
    status, body = _http(f"http://127.0.0.1:{http_port}/health")
    assert status == 421 and 'etcd --host-whitelist "127.0.0.1"' in body
    status, body = _http(f"http://localhost:{http_port}/v3/kv/range", '{"key": "aw=="}')
    assert status == 200 and json.loads(body)["kvs"][0]["value"] == "dg=="
    # The client URL speaks gRPC only: grpcio hangs up on HTTP/1.1.
    with socket.create_connection(("127.0.0.1", c.members[0].client_port), timeout=10) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        reply = s.recv(4096)
    assert not reply.startswith(b"HTTP/1.1 200"), reply


def test_a_taken_client_port_is_one_line(tmp_path: Path) -> None:
    client, peer = free_ports(2)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", client))
        taken.listen(1)
        r = subprocess.run(
            [*minietcd_binary(), "--name", "x", "--data-dir", f"{tmp_path}/x.etcd",
             "--listen-client-urls", f"http://127.0.0.1:{client}",
             "--advertise-client-urls", f"http://127.0.0.1:{client}",
             "--listen-peer-urls", f"http://127.0.0.1:{peer}",
             "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
             "--initial-cluster", f"x=http://127.0.0.1:{peer}"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert r.returncode == 1
    fatal = [line for line in r.stderr.splitlines() if " C | " in line]
    assert len(fatal) == 1 and fatal[0].endswith(
        f"etcdmain: listen tcp 127.0.0.1:{client}: bind: address already in use"
    ), r.stderr
    assert not (tmp_path / "x.etcd").exists()
