"""The gateway over https with ``--client-cert-auth``: one TLS client URL serves gRPC (etcdctl)
and HTTP/1.1 (the JSON gateway, /health) to clients with a certificate from the trusted CA, and
refuses a client without one. A client offering both h2 and http/1.1 (as curl does) gets
HTTP/1.1; plain HTTP to the https URL gets Go's one-line 400.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.cluster.harness import ClientTLS, make_test_certs, minietcd_binary

if TYPE_CHECKING:
    from tests.cluster.conftest import ClusterFactory

pytestmark = pytest.mark.cluster


def _post(url: str, body: dict[str, str], ctx: ssl.SSLContext) -> tuple[int, dict[str, object]]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=10, context=ctx) as r:
        return r.status, json.loads(r.read())


def test_gateway_over_https_needs_a_client_certificate(
    process_cluster: ClusterFactory, tmp_path: Path
) -> None:
    certs = make_test_certs(tmp_path)
    ca, crt, key = certs["ca.pem"], certs["client.pem"], certs["client.key"]
    c = process_cluster(
        minietcd_binary(),
        1,
        client_scheme="https",
        extra_flags=[
            "--cert-file", certs["server.pem"], "--key-file", certs["server.key"],
            "--trusted-ca-file", ca, "--client-cert-auth",
        ],
        etcdctl_flags=["--cacert", ca, "--cert", crt, "--key", key],
        client_tls=ClientTLS(ca, crt, key),
    ).start()  # fmt: skip
    c.wait_healthy(60)
    base = c.endpoint(0)
    assert base.startswith("https://")

    good = ssl.create_default_context(cafile=ca)
    good.load_cert_chain(crt, key)
    good.set_alpn_protocols(["h2", "http/1.1"])  # as curl offers: the server picks http/1.1
    status, put = _post(base + "/v3/kv/put", {"key": "Zm9v", "value": "YmFy"}, good)
    header = put["header"]
    assert status == 200 and isinstance(header, dict) and "revision" in header
    status, got = _post(base + "/v3/kv/range", {"key": "Zm9v"}, good)
    assert got["kvs"] == [{"key": "Zm9v", "create_revision": "2", "mod_revision": "2", "version": "1",
                           "value": "YmFy"}]  # fmt: skip
    with urllib.request.urlopen(base + "/health", timeout=10, context=good) as r:
        assert r.read() == b'{"health":"true"}'
    with (
        socket.create_connection(("127.0.0.1", c.members[0].client_port), timeout=10) as raw,
        good.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        assert tls.selected_alpn_protocol() == "http/1.1"

    # gRPC on the same URL, with the client certificate (etcdctl offers h2 only).
    assert c.etcdctl_ok("get", "foo", "--print-value-only").strip() == "bar"

    # No client certificate: refused, over HTTP as over gRPC.
    anonymous = ssl.create_default_context(cafile=ca)
    with pytest.raises((ssl.SSLError, ConnectionError, urllib.error.URLError, http.client.HTTPException)):
        _post(base + "/v3/kv/range", {"key": "Zm9v"}, anonymous)
    refused = c.etcdctl("--cert=", "--key=", "--dial-timeout=2s", "--command-timeout=4s", "get", "foo")
    assert refused.returncode != 0

    # Plain HTTP to the https URL: what Go's server answers.
    with socket.create_connection(("127.0.0.1", c.members[0].client_port), timeout=10) as raw:
        raw.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        reply = raw.recv(4096)
    assert reply == b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"
