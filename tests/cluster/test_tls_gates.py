"""Certificate revocation lists and allowed peer identities, etcd 3.4 and minietcd side by side.

* Client port (``--client-cert-auth --client-crl-file --client-cert-allowed-hostname``): a
  good certificate is served; a revoked one, or one that does not name the allowed host, is
  refused: etcd logs ``rejected connection from "127.0.0.1:N" (error "...", ServerName "",
  IPAddresses [...], DNSNames [...])`` and etcdctl gives up with ``Error: context deadline
  exceeded``. minietcd logs and prints the same (minietcd/server/cert_gate.py says how).
* Peer port (``--peer-client-cert-auth`` with ``--peer-cert-allowed-cn``,
  ``--peer-cert-allowed-hostname`` or ``--peer-crl-file``): a member whose certificate does
  not pass is refused with the same line on the member it dials.
* Peer port, ``checkSAN``: a member whose certificate names other addresses than the one it
  connects from is refused (``x509: certificate is valid for 127.0.0.2, not 127.0.0.1``), unless
  ``--experimental-peer-skip-client-san-verification``.
* Both identity flags at once: the start fails with etcd's ``C |`` line.

A difference the peer CRL case shows (documented in docs/server.md): etcd's members also talk
over connections the *others* open, so a member whose certificate is revoked is refused when it
dials but still reached by the others (in a two-member etcd cluster it still gets a leader);
minietcd members only send over connections they open themselves, so it is cut off.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.cluster.harness import ClientTLS, ProcessCluster, clean_env, etcd_binary, minietcd_binary
from tests.cluster.pki import Pair, TestCA

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

HEALTHY = 60.0
QUICK = ["--dial-timeout=2s", "--command-timeout=2s"]
SERVERS = ["etcd", "minietcd"]
REVOKED_SERIAL = 0x1003


def _binary(server: str) -> list[str]:
    return etcd_binary() if server == "etcd" else minietcd_binary()


@dataclass
class PerMemberCluster(ProcessCluster):
    """A ProcessCluster with flags of its own for some members (their certificates)."""

    member_flags: Mapping[int, Sequence[str]] = field(default_factory=dict)

    def flags(self, i: int) -> list[str]:
        return [*super().flags(i), *self.member_flags.get(i, ())]


def _rejections(c: ProcessCluster, i: int) -> list[tuple[str, str]]:
    """(error, rest of the line) of each ``rejected connection`` line in member ``i``'s log."""
    text = c.members[i].log_path.read_text(errors="replace")
    return re.findall(
        r'I \| embed: rejected connection from "127\.0\.0\.1:\d+" \(error "([^"]*)", (.*)\)$', text, re.M
    )


def _wait_rejection(c: ProcessCluster, i: int, error: str, timeout: float = 30.0) -> str:
    """The rest of the first rejection line with ``error`` (ServerName, IPAddresses, DNSNames)."""
    deadline = time.monotonic() + timeout
    while True:
        for got, rest in _rejections(c, i):
            if got == error:
                return rest
        if time.monotonic() >= deadline:
            pytest.fail(f"{c.members[i].name} never rejected a connection with {error!r}:\n{c.log_tails()}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Pair | Path]]:
    ca = TestCA(tmp_path_factory.mktemp("pki"))
    yield {
        "ca": ca.cert,
        "server": ca.issue("server", "server", ["127.0.0.1", "localhost"], serial=0x1001),
        "client": ca.issue("client", "client", ["client.example.com"], serial=0x1002),
        "revoked": ca.issue("revoked", "client", ["client.example.com"], serial=REVOKED_SERIAL),
        "elsewhere": ca.issue("elsewhere", "client", ["other.example.com"], serial=0x1004),
        "peer": ca.issue("peer", "etcd-peer", ["127.0.0.1", "peer.example.com"], serial=0x2001),
        "peer-other": ca.issue("peer-other", "other-peer", ["127.0.0.1", "other.example.com"], serial=0x2002),
        "peer-revoked": ca.issue(
            "peer-revoked", "etcd-peer", ["127.0.0.1", "peer.example.com"], serial=0x2003
        ),
        "peer-second-address": ca.issue("peer-second-address", "etcd-peer", ["127.0.0.2"], serial=0x2005),
        "crl": ca.crl([REVOKED_SERIAL, 0x2003]),
    }


def _pair(pki: Mapping[str, Pair | Path], name: str) -> Pair:
    pair = pki[name]
    assert isinstance(pair, Pair)
    return pair


def _two_peers(
    cls: type[PerMemberCluster],
    server: str,
    pki: Mapping[str, Pair | Path],
    tmp_path: Path,
    certs: tuple[str, str],
    flags: Sequence[str],
) -> PerMemberCluster:
    """Two members over https peer URLs with peer client cert auth, n1 and n2 with the
    certificates named ``certs``, ``flags`` on both; not started."""

    def peer_tls(name: str) -> list[str]:
        pair = _pair(pki, name)
        return ["--peer-cert-file", str(pair.cert), "--peer-key-file", str(pair.key)]

    common = ["--peer-trusted-ca-file", str(pki["ca"]), "--peer-client-cert-auth", *flags]
    return cls(
        _binary(server),
        2,
        tmp_path,
        scheme="https",
        client_scheme="http",
        extra_flags=common,
        member_flags={0: peer_tls(certs[0]), 1: peer_tls(certs[1])},
    )


@pytest.mark.parametrize("server", SERVERS)
def test_client_crl_and_allowed_hostname(server: str, pki: Mapping[str, Pair | Path], tmp_path: Path) -> None:
    ca, srv, client = str(pki["ca"]), _pair(pki, "server"), _pair(pki, "client")
    flags = [
        "--cert-file", str(srv.cert), "--key-file", str(srv.key), "--trusted-ca-file", ca,
        "--client-cert-auth", "--client-crl-file", str(pki["crl"]),
        "--client-cert-allowed-hostname", "client.example.com",
    ]  # fmt: skip
    with ProcessCluster(
        _binary(server),
        1,
        tmp_path,
        client_scheme="https",
        extra_flags=flags,
        client_tls=ClientTLS(ca, str(client.cert), str(client.key)),
    ) as c:
        c.start()
        c.wait_healthy(HEALTHY)
        endpoint = c.endpoint(0)

        def etcdctl(pair: Pair, *args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [c.etcdctl_path, f"--endpoints={endpoint}", "--cacert", ca, "--cert", str(pair.cert),
                 "--key", str(pair.key), *QUICK, *args],
                capture_output=True, text=True, timeout=60, env=clean_env({"ETCDCTL_API": "3"}), check=False,
            )  # fmt: skip

        ok = etcdctl(client, "put", "k", "v")
        assert (ok.returncode, ok.stdout) == (0, "OK\n"), ok.stderr
        for name, error in (
            ("revoked", f"transport: certificate serial {REVOKED_SERIAL:x} revoked"),
            ("elsewhere", "client certificate authentication failed"),
        ):
            r = etcdctl(_pair(pki, name), "put", "k", name)
            assert r.returncode == 1, (name, r.stdout, r.stderr)
            assert r.stderr.endswith("Error: context deadline exceeded\n"), (name, r.stderr)
            rest = _wait_rejection(c, 0, error)
            dns = "other.example.com" if name == "elsewhere" else "client.example.com"
            assert rest == f'ServerName "", IPAddresses [], DNSNames ["{dns}"]', rest
        assert etcdctl(client, "get", "k", "--print-value-only").stdout == "v\n"


@pytest.mark.parametrize(
    ("case", "bad_cert", "error"),
    [
        ("--peer-cert-allowed-cn=etcd-peer", "peer-other", "client certificate authentication failed"),
        (
            "--peer-cert-allowed-hostname=peer.example.com",
            "peer-other",
            "client certificate authentication failed",
        ),
        ("--peer-crl-file", "peer-revoked", "transport: certificate serial 2003 revoked"),
    ],
    ids=["allowed-cn", "allowed-hostname", "crl"],
)
@pytest.mark.parametrize("server", SERVERS)
def test_peer_certificate_rules(
    server: str, case: str, bad_cert: str, error: str, pki: Mapping[str, Pair | Path], tmp_path: Path
) -> None:
    rule = [case, str(pki["crl"])] if case == "--peer-crl-file" else [case]
    with _two_peers(PerMemberCluster, server, pki, tmp_path, ("peer", bad_cert), rule) as c:
        c.start()
        rest = _wait_rejection(c, 0, error)  # n2 dialled n1 and was refused
        assert rest == 'ServerName "", IPAddresses ["127.0.0.1"], DNSNames ' + (
            '["peer.example.com"]' if bad_cert == "peer-revoked" else '["other.example.com"]'
        )
        assert all(got == error for got, _ in _rejections(c, 0))


@pytest.mark.parametrize("server", SERVERS)
def test_allowed_cn_and_hostname_together_refuse_to_start(
    server: str, pki: Mapping[str, Pair | Path], tmp_path: Path
) -> None:
    peer = _pair(pki, "peer")
    flags = [
        "--peer-cert-file", str(peer.cert), "--peer-key-file", str(peer.key),
        "--peer-trusted-ca-file", str(pki["ca"]), "--peer-client-cert-auth",
        "--peer-cert-allowed-cn", "a", "--peer-cert-allowed-hostname", "b",
    ]  # fmt: skip
    with ProcessCluster(
        _binary(server), 1, tmp_path, scheme="https", client_scheme="http", extra_flags=flags
    ) as c:
        c.start()
        proc = c.members[0].proc
        assert proc is not None
        assert proc.wait(timeout=60) == 1
        log = c.members[0].log_path.read_text(errors="replace")
        assert (
            'C | etcdmain: AllowedCN and AllowedHostname are mutually exclusive (cn="a", hostname="b")' in log
        )
        assert not c.members[0].data_dir.exists()


@dataclass
class SecondPeerElsewhere(PerMemberCluster):
    """n2's peer URL on 127.0.0.2 (a second address of the same host): it still dials n1 from
    127.0.0.1, the address the kernel picks for a connection to 127.0.0.1."""

    def flags(self, i: int) -> list[str]:
        here = f"127.0.0.1:{self.members[1].peer_port}"
        there = f"127.0.0.2:{self.members[1].peer_port}"
        return [flag.replace(here, there) for flag in super().flags(i)]


@pytest.mark.parametrize("skip", [False, True], ids=["checked", "skipped"])
@pytest.mark.parametrize("server", SERVERS)
def test_a_peer_certificate_must_name_the_address_it_connects_from(
    server: str, skip: bool, pki: Mapping[str, Pair | Path], tmp_path: Path
) -> None:
    """etcd's checkSAN on the peer port: n2's certificate names 127.0.0.2, where it listens,
    but its connections to n1 come from 127.0.0.1, so n1 refuses them, unless
    --experimental-peer-skip-client-san-verification, when the two form a cluster."""
    skip_flag = ["--experimental-peer-skip-client-san-verification"] if skip else []
    certs = ("peer", "peer-second-address")
    with _two_peers(SecondPeerElsewhere, server, pki, tmp_path, certs, skip_flag) as c:
        c.start()
        if skip:
            c.wait_healthy(HEALTHY)
            assert _rejections(c, 0) == []
            return
        rest = _wait_rejection(c, 0, "x509: certificate is valid for 127.0.0.2, not 127.0.0.1")
        assert rest == 'ServerName "", IPAddresses ["127.0.0.2"], DNSNames []'
