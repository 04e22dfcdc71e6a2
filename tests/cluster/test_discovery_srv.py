"""DNS discovery (``--discovery-srv``) on real processes, with a real DNS server (Debian's
dnsmasq) serving SRV records for ``example.test`` on port 53 of a random 127.x.y.z address.

- http: ``_etcd-server._tcp`` records -> three minietcd members bootstrap one cluster;
  ``_etcd-client._tcp`` records -> ``minietcdctl --discovery-srv`` and the real ``etcdctl
  --discovery-srv`` find the members.
- TLS: ``_etcd-server-ssl._tcp`` / ``_etcd-client-ssl._tcp`` -> https peers and clients, with
  certificates that name ``localhost`` (the SRV targets) and ``example.test`` (etcdctl checks
  the domain as the server name).

minietcd and minietcdctl are pointed at the server with ``MINIETCD_DNS_SERVER``; the real
etcdctl reads ``/etc/resolv.conf``, so it runs in a private mount namespace (``unshare -m``)
where a resolv.conf naming the test server is bind-mounted over it. Needs root (port 53, the
mount namespace), dnsmasq and unshare: skipped with the reason elsewhere, failed in CI.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from minietcd.server import ids
from tests.cluster.discovery_helpers import DiscoveryCluster, Service, member_log
from tests.cluster.harness import ETCDCTL, ClientTLS, ClusterError, clean_env, minietcd_binary, require_binary

pytestmark = pytest.mark.cluster

DOMAIN = "example.test"
TOKEN = "etcd-cluster"  # the --initial-cluster-token default: SRV discovery keeps the flag's token


def _need_root() -> None:
    if os.geteuid() != 0:
        reason = "DNS discovery tests need root (a DNS server on port 53, a private mount namespace)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI runs as root", pytrace=False)
        pytest.skip(reason)


class DNSServer(Service):
    """dnsmasq on <ip>:53: the SRV records of DOMAIN, and /etc/hosts (the targets are
    ``localhost.``, which Go's resolver asks DNS for); ``resolv_conf`` names it."""

    def __init__(self, tmp_path: Path, srv: list[tuple[str, int]]) -> None:
        _need_root()
        exe = require_binary("dnsmasq")
        self.ip = f"127.{random.randrange(1, 255)}.{random.randrange(0, 255)}.{random.randrange(1, 255)}"
        argv = [
            exe, "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv",
            "--bind-interfaces", f"--listen-address={self.ip}", "--port=53", "--pid-file=",
            "--log-facility=-", "--user=root", f"--local=/{DOMAIN}/",
            *(f"--srv-host={name}.{DOMAIN},localhost,{port},0,0" for name, port in srv),
        ]  # fmt: skip
        super().__init__(argv, tmp_path / "dnsmasq.log")
        self.resolv_conf = tmp_path / "resolv.conf"
        self.resolv_conf.write_text(f"nameserver {self.ip}\noptions timeout:1 attempts:2\n")
        self._wait_ready(srv[0][0])

    def _wait_ready(self, name: str, timeout: float = 20.0) -> None:
        import dns.exception
        import dns.nameserver
        import dns.resolver

        r = dns.resolver.Resolver(configure=False)
        r.nameservers = [dns.nameserver.Do53Nameserver(self.ip, 53)]
        r.lifetime = 1.0
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise ClusterError(f"dnsmasq exited {self.proc.returncode}:\n{self.log()}")
            try:
                r.resolve(f"{name}.{DOMAIN}", "SRV")
                return
            except dns.exception.DNSException as e:
                if time.monotonic() >= deadline:
                    raise ClusterError(f"dnsmasq not answering: {e}\n{self.log()}") from None
            time.sleep(0.05)

    @property
    def env(self) -> dict[str, str]:
        return {"MINIETCD_DNS_SERVER": self.ip}

    def run_with_resolv_conf(self, argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        """``argv`` in a private mount namespace whose /etc/resolv.conf names this server."""
        unshare = require_binary("unshare")
        script = 'mount --bind "$0" /etc/resolv.conf && exec "$@"'
        return subprocess.run(
            [unshare, "-m", "sh", "-c", script, str(self.resolv_conf), *argv],
            capture_output=True, text=True, timeout=60, env=clean_env(env), stdin=subprocess.DEVNULL,
        )  # fmt: skip


def srv_certs(d: Path) -> dict[str, str]:
    """A CA and one certificate (server and client use) naming localhost, DOMAIN and 127.0.0.1."""
    openssl = require_binary("openssl")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=d, check=True, capture_output=True)

    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=srv-test-ca")
    (d / "member.ext").write_text(
        f"subjectAltName=DNS:localhost,DNS:{DOMAIN},IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n"
    )
    run("req", *ec, "-keyout", "member.key", "-out", "member.csr", "-subj", "/CN=member")
    run("x509", "-req", "-in", "member.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "member.pem", "-days", "2", "-extfile", "member.ext")  # fmt: skip
    return {n: str(d / n) for n in ("ca.pem", "member.pem", "member.key")}


class SRVCluster(DiscoveryCluster):
    """Members advertise their peer URL by the SRV target's name (``localhost``), as a DNS
    discovery deployment advertises host names: etcd compares the advertised URLs with the
    discovered ones as strings, resolving DNS names but never ``localhost`` (netutil.resolveURL)."""

    def flags(self, i: int) -> list[str]:
        out = super().flags(i)
        j = out.index("--initial-advertise-peer-urls") + 1
        out[j] = out[j].replace("127.0.0.1", "localhost")
        return out


def _srv_records(c: SRVCluster, ssl: bool) -> list[tuple[str, int]]:
    sfx = "-ssl" if ssl else ""
    out = [(f"_etcd-server{sfx}._tcp", m.peer_port) for m in c.members]
    return out + [(f"_etcd-client{sfx}._tcp", m.client_port) for m in c.members]


def _check_cluster(c: SRVCluster, scheme: str) -> list[int]:
    c.wait_healthy(120.0)
    want = sorted(ids.member_id([f"{scheme}://localhost:{m.peer_port}"], TOKEN) for m in c.members)
    for i in range(len(c.members)):
        c.wait_published(i, 60.0)
        assert f"N | embed: got bootstrap from DNS for etcd-server at n{i + 1}={scheme}://localhost:" in (
            member_log(c, i)
        )
    assert c.cluster_id() == ids.cluster_id(want)
    return want


@pytest.fixture
def srv_cluster(
    tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[SRVCluster, DNSServer]]:
    ssl: bool = request.param
    tls_flags: list[str] = []
    client_tls = None
    if ssl:
        certs = srv_certs(tmp_path)
        ca, crt, key = certs["ca.pem"], certs["member.pem"], certs["member.key"]
        tls_flags = ["--peer-cert-file", crt, "--peer-key-file", key, "--peer-trusted-ca-file", ca,
                     "--cert-file", crt, "--key-file", key, "--trusted-ca-file", ca]  # fmt: skip
        client_tls = ClientTLS(ca)
    c = SRVCluster(
        minietcd_binary(), 3, tmp_path / "srv", extra_flags=["--discovery-srv", DOMAIN, *tls_flags],
        scheme="https" if ssl else "http", client_tls=client_tls,
        etcdctl_flags=["--cacert", client_tls.ca_file] if client_tls else [],
    )  # fmt: skip
    with DNSServer(tmp_path, _srv_records(c, ssl)) as dns_server:
        c.env = dns_server.env
        with c:
            yield c, dns_server


@pytest.mark.parametrize(
    "srv_cluster", [pytest.param(False, id="http"), pytest.param(True, id="tls")], indirect=True
)
def test_members_and_clients_found_through_srv(srv_cluster: tuple[SRVCluster, DNSServer]) -> None:
    c, dns_server = srv_cluster
    scheme = c.scheme
    c.start()
    want = _check_cluster(c, scheme)

    tls = ["--cacert", c.client_tls.ca_file] if c.client_tls else []
    # minietcdctl, with the same resolver override as the server.
    ctl = subprocess.run(
        [sys.executable, "-m", "minietcdctl", "-d", DOMAIN, *tls, "member", "list", "-w", "json"],
        capture_output=True, text=True, timeout=60, env=clean_env({**dns_server.env, "ETCDCTL_API": "3"}),
        cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    assert ctl.returncode == 0, ctl.stderr
    assert sorted(m["ID"] for m in json.loads(ctl.stdout)["members"]) == want
    # The real etcdctl, through the system resolver (/etc/resolv.conf naming the test server).
    real = dns_server.run_with_resolv_conf(
        [ETCDCTL, "--discovery-srv", DOMAIN, *tls, "member", "list", "-w", "json"], {"ETCDCTL_API": "3"}
    )
    assert real.returncode == 0, real.stderr
    listed = json.loads(real.stdout)["members"]
    assert sorted(m["ID"] for m in listed) == want
    assert sorted(u for m in listed for u in m["peerURLs"]) == sorted(
        f"{scheme}://localhost:{m.peer_port}" for m in c.members
    )
    put = dns_server.run_with_resolv_conf(
        [ETCDCTL, "--discovery-srv", DOMAIN, *tls, "put", "k", "v"], {"ETCDCTL_API": "3"}
    )
    assert put.returncode == 0 and put.stdout.strip() == "OK", put.stderr
