"""Client and peer TLS on real minietcd processes, driven by the real etcdctl.

* ``--auto-tls --peer-auto-tls`` with https URLs (the static TLS bootstrap of etcd's clustering
  guide): etcdctl over https with ``--insecure-skip-tls-verify``, replication between members over
  TLS, lease keep-alives forwarded from a follower to the leader over TLS, certificates reused
  across a restart, metrics served over https.
* Explicit certificates from a test CA (made here with the ``openssl`` CLI) with
  ``--client-cert-auth --trusted-ca-file`` and ``--peer-client-cert-auth``: etcdctl with
  ``--cacert --cert --key`` works; a client without a certificate, with one from another CA,
  without the CA, or speaking plaintext is refused, and so is a peer without a certificate.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
import time
import urllib.request
from pathlib import Path

import grpc
import pytest

from minietcd.api.raftpb import raft_pb2
from minietcd.api.raftpb.raft_pb2_grpc import RaftPeerStub
from tests.cluster.conftest import ClusterFactory
from tests.cluster.harness import ClientTLS, ProcessCluster, free_ports, minietcd_binary

pytestmark = pytest.mark.cluster

HEALTHY_TIMEOUT = 120.0  # the machine is busy; three Python processes start and elect
# Keep refused etcdctl calls short: a refused handshake makes etcdctl retry until its timeouts.
QUICK = ["--dial-timeout=3s", "--command-timeout=5s"]


def _logs(c: ProcessCluster, i: int) -> str:
    return c.members[i].log_path.read_text(errors="replace")


def _wait_for_log(c: ProcessCluster, i: int, text: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in _logs(c, i):
        if time.monotonic() >= deadline:
            pytest.fail(f"{c.members[i].name} never logged {text!r}:\n{c.log_tails()}")
        time.sleep(0.1)


def _get(c: ProcessCluster, i: int, key: str) -> str:
    return c.etcdctl_ok("get", key, "--print-value-only", endpoints=c.endpoint(i)).strip()


def _wait_value(c: ProcessCluster, i: int, key: str, want: str, timeout: float = 30.0) -> None:
    """Serializable reads on member ``i`` until it has applied the write (polling a deadline)."""
    deadline = time.monotonic() + timeout
    while True:
        got = c.etcdctl_ok(
            "get", key, "--print-value-only", "--consistency=s", endpoints=c.endpoint(i)
        ).strip()
        if got == want:
            return
        if time.monotonic() >= deadline:
            pytest.fail(f"{c.members[i].name} has {key}={got!r}, not {want!r}:\n{c.log_tails()}")
        time.sleep(0.1)


# --- auto TLS ---------------------------------------------------------------------------------


def test_auto_tls_cluster_serves_etcdctl_over_https(process_cluster: ClusterFactory) -> None:
    c = process_cluster(
        minietcd_binary(),
        3,
        scheme="https",
        extra_flags=["--auto-tls", "--peer-auto-tls"],
        etcdctl_flags=["--insecure-transport=false", "--insecure-skip-tls-verify"],
    ).start()
    leader = c.wait_healthy(HEALTHY_TIMEOUT)

    for i, m in enumerate(c.members):
        for side in ("client", "peer"):
            fixtures = m.data_dir / "fixtures" / side
            assert (fixtures / "cert.pem").is_file() and (fixtures / "key.pem").is_file()
            assert (fixtures / "key.pem").stat().st_mode & 0o777 == 0o600
        log = _logs(c, i)
        assert f"embed: peerTLS: cert = {m.data_dir}/fixtures/peer/cert.pem" in log
        assert f"embed: ClientTLS: cert = {m.data_dir}/fixtures/client/cert.pem" in log
        _wait_for_log(c, i, f"embed: serving client requests on 127.0.0.1:{m.client_port}")
        assert "serving insecure client requests" not in _logs(c, i)

    # Every member serves etcdctl over https; a write on one is read on the others (peers over TLS).
    writer = (leader + 1) % 3  # a follower: its proposal travels to the leader over peer TLS
    c.etcdctl_ok("put", "tls-key", "auto", endpoints=c.endpoint(writer))
    for i in range(3):
        assert _get(c, i, "tls-key") == "auto"

    # Lease keep-alives and TTL reads on a follower are forwarded to the leader's https client URL.
    follower = (leader + 2) % 3
    out = c.etcdctl_ok("lease", "grant", "60", endpoints=c.endpoint(follower))
    lease_id = out.split()[1]
    out = c.etcdctl_ok("lease", "keep-alive", "--once", lease_id, endpoints=c.endpoint(follower))
    assert f"lease {lease_id} keepalived with TTL(" in out
    out = c.etcdctl_ok("lease", "timetolive", lease_id, endpoints=c.endpoint(follower))
    assert f"lease {lease_id} granted with TTL(60s)" in out

    # Plaintext is refused on a TLS port.
    r = c.etcdctl(*QUICK, "get", "tls-key", endpoints=f"http://127.0.0.1:{c.members[0].client_port}")
    assert r.returncode != 0

    # A restarted member reuses its certificates and catches up over TLS.
    before = {
        side: (c.members[1].data_dir / "fixtures" / side / "cert.pem").read_bytes()
        for side in ("client", "peer")
    }
    c.restart(1)
    c.wait_healthy(HEALTHY_TIMEOUT)
    for side, cert in before.items():
        assert (c.members[1].data_dir / "fixtures" / side / "cert.pem").read_bytes() == cert
    c.etcdctl_ok("put", "after-restart", "yes", endpoints=c.endpoint(leader if leader != 1 else 0))
    _wait_value(c, 1, "after-restart", "yes")


def test_auto_tls_metrics_over_https(process_cluster: ClusterFactory) -> None:
    (metrics_port,) = free_ports(1)
    c = process_cluster(
        minietcd_binary(),
        1,
        scheme="https",
        extra_flags=[
            "--auto-tls",
            "--peer-auto-tls",
            "--listen-metrics-urls",
            f"https://127.0.0.1:{metrics_port}",
        ],
        etcdctl_flags=["--insecure-transport=false", "--insecure-skip-tls-verify"],
    ).start()
    c.wait_healthy(HEALTHY_TIMEOUT)
    ctx = ssl.create_default_context()
    ctx.load_verify_locations(cafile=str(c.members[0].data_dir / "fixtures" / "client" / "cert.pem"))
    with urllib.request.urlopen(f"https://127.0.0.1:{metrics_port}/health", timeout=10, context=ctx) as r:
        assert r.status == 200
        assert b'"health":"true"' in r.read().replace(b" ", b"")


# --- explicit certificates ----------------------------------------------------------------------


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _make_ca(d: Path, name: str) -> tuple[Path, Path]:
    key, crt = d / f"{name}.key", d / f"{name}.crt"
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(key), cwd=d)
    _openssl(
        "req", "-x509", "-new", "-key", str(key), "-sha256", "-days", "2", "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-out", str(crt), cwd=d,
    )  # fmt: skip
    return crt, key


def _make_cert(d: Path, name: str, ca: tuple[Path, Path], usages: str, server: bool) -> tuple[Path, Path]:
    """A P-256 key and a certificate signed by ``ca``; servers get IP:127.0.0.1 and localhost."""
    key, csr, crt, ext = d / f"{name}.key", d / f"{name}.csr", d / f"{name}.crt", d / f"{name}.ext"
    lines = [
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature,keyEncipherment",
        f"extendedKeyUsage={usages}",
    ]
    if server:
        lines.append("subjectAltName=IP:127.0.0.1,DNS:localhost")
    ext.write_text("\n".join(lines) + "\n")
    _openssl(
        "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", str(key), "-subj", f"/CN={name}", "-out", str(csr), cwd=d,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]), "-set_serial",
        str(int.from_bytes(name.encode(), "big") % (1 << 60) + 1), "-days", "2", "-sha256",
        "-extfile", str(ext), "-out", str(crt), cwd=d,
    )  # fmt: skip
    return crt, key


def test_explicit_certs_with_client_cert_auth(process_cluster: ClusterFactory, tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    pki = tmp_path / "pki"
    pki.mkdir()
    ca = _make_ca(pki, "ca")
    other_ca = _make_ca(pki, "other-ca")
    # The server cert is also the client cert a follower presents when it forwards lease
    # keep-alives to the leader's client URL, so it carries clientAuth as well (as etcd's own
    # gateway needs with --client-cert-auth).
    server = _make_cert(pki, "server", ca, "serverAuth,clientAuth", server=True)
    peer = _make_cert(pki, "peer", ca, "serverAuth,clientAuth", server=True)
    client = _make_cert(pki, "client", ca, "clientAuth", server=False)
    stranger = _make_cert(pki, "stranger", other_ca, "clientAuth", server=False)

    c = process_cluster(
        minietcd_binary(),
        3,
        scheme="https",
        extra_flags=[
            "--cert-file", str(server[0]), "--key-file", str(server[1]),
            "--trusted-ca-file", str(ca[0]), "--client-cert-auth",
            "--peer-cert-file", str(peer[0]), "--peer-key-file", str(peer[1]),
            "--peer-trusted-ca-file", str(ca[0]), "--peer-client-cert-auth",
        ],
        etcdctl_flags=["--cacert", str(ca[0]), "--cert", str(client[0]), "--key", str(client[1])],
        client_tls=ClientTLS(str(ca[0]), str(client[0]), str(client[1])),
    ).start()  # fmt: skip
    leader = c.wait_healthy(HEALTHY_TIMEOUT)
    log = _logs(c, 0)
    assert (
        f"embed: peerTLS: cert = {peer[0]}, key = {peer[1]}, trusted-ca = {ca[0]}, "
        "client-cert-auth = true, crl-file = "
    ) in log
    _wait_for_log(
        c,
        0,
        f"embed: ClientTLS: cert = {server[0]}, key = {server[1]}, trusted-ca = {ca[0]}, "
        "client-cert-auth = true, crl-file = ",
    )
    assert not (c.members[0].data_dir / "fixtures").exists()  # no auto TLS here

    # Replication over peer TLS: write on one member, read on another.
    writer, reader = (leader + 1) % 3, (leader + 2) % 3
    c.etcdctl_ok("put", "tls-key", "explicit", endpoints=c.endpoint(writer))
    assert _get(c, reader, "tls-key") == "explicit"
    assert _get(c, leader, "tls-key") == "explicit"

    # Lease forwarding from a follower to the leader's client URL (mutual TLS with the server cert).
    lease_id = c.etcdctl_ok("lease", "grant", "60", endpoints=c.endpoint(reader)).split()[1]
    out = c.etcdctl_ok("lease", "keep-alive", "--once", lease_id, endpoints=c.endpoint(reader))
    assert f"lease {lease_id} keepalived with TTL(" in out

    # Refused: no client certificate, a certificate from another CA, no CA to verify the server,
    # plaintext.
    endpoint = c.endpoint(reader)
    attempts = {
        "no client certificate": ["--cacert", str(ca[0])],
        "certificate from another CA": [
            "--cacert", str(ca[0]), "--cert", str(stranger[0]), "--key", str(stranger[1]),
        ],
        "server not verifiable": ["--cert", str(client[0]), "--key", str(client[1])],
    }  # fmt: skip
    for what, flags in attempts.items():
        r = subprocess.run(
            [c.etcdctl_path, f"--endpoints={endpoint}", *QUICK, *flags, "put", "intruder", what],
            capture_output=True,
            text=True,
            timeout=60,
            env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"},
            check=False,
        )
        assert r.returncode != 0, f"{what}: etcdctl succeeded: {r.stdout}"
    r = subprocess.run(
        [c.etcdctl_path, f"--endpoints=http://127.0.0.1:{c.members[reader].client_port}", *QUICK, "get", "x"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert r.returncode != 0, "plaintext etcdctl succeeded"
    assert c.etcdctl_ok("get", "intruder", "--print-value-only").strip() == ""

    # A peer without a client certificate is refused by the peer port (--peer-client-cert-auth).
    ca_pem = ca[0].read_bytes()
    target = f"127.0.0.1:{c.members[0].peer_port}"
    with grpc.secure_channel(target, grpc.ssl_channel_credentials(ca_pem)) as ch:
        with pytest.raises(grpc.RpcError) as excinfo:
            RaftPeerStub(ch).Hello(raft_pb2.HelloRequest(), timeout=10)
        assert excinfo.value.code() == grpc.StatusCode.UNAVAILABLE
    # ... and one with the peer certificate is answered (the refusal above was the certificate).
    # The Hello must name the cluster and a member: strangers are refused (and told no ids).
    creds = grpc.ssl_channel_credentials(ca_pem, peer[1].read_bytes(), peer[0].read_bytes())
    (cluster_id, member_id), (_, sender) = c.ids(0), c.ids(1)
    hello = raft_pb2.HelloRequest(
        cluster_id=cluster_id, from_member_id=sender, to_member_id=member_id, protocol_version=1
    )
    with grpc.secure_channel(target, creds) as ch:
        resp = RaftPeerStub(ch).Hello(hello, timeout=10)
        assert (resp.member_id, resp.reject_reason) == (member_id, "")
