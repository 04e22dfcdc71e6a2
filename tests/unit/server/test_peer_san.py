"""minietcd.server.peer_san: etcd's checkSAN of a peer's client certificate against the address
it connects from, and where CertRules puts it among the other checks (a real TLS server on
127.0.0.1 for the gate; this machine's /etc/hosts names 127.0.0.1 ``localhost``)."""

from __future__ import annotations

import grpc
import grpc.aio
import pytest

from minietcd.server.cert_gate import AUTH_FAILED, CertGate, CertRules
from minietcd.server.peer_san import hostname_error, remote_host, san_problem
from tests.cluster.pki import TestCA
from tests.unit.server.test_cert_gate import _range, gated_server


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return TestCA(tmp_path_factory.mktemp("pki"))


def test_remote_hosts_split_as_gos_split_host_port() -> None:
    assert remote_host("127.0.0.1:2380") == "127.0.0.1"
    assert remote_host("[::1]:2380") == "::1"
    assert remote_host("unix:/run/etcd.sock") is None  # Go cannot split a unix peer's ""


async def test_a_unix_socket_peer_with_sans_is_refused_as_etcd_refuses_it() -> None:
    assert await san_problem(["127.0.0.1"], [], "unix:/run/peer.sock") == "missing port in address"
    assert await san_problem([], [], "unix:/run/peer.sock") is None


def test_hostname_errors_are_gos() -> None:
    assert (
        hostname_error(["10.0.0.1"], "127.0.0.1") == "x509: certificate is valid for 10.0.0.1, not 127.0.0.1"
    )
    assert hostname_error(["10.0.0.1", "10.0.0.2"], "127.0.0.1") == (
        "x509: certificate is valid for 10.0.0.1, 10.0.0.2, not 127.0.0.1"
    )
    assert hostname_error([], "127.0.0.1") == (
        "x509: cannot validate certificate for 127.0.0.1 because it doesn't contain any IP SANs"
    )


async def test_ip_sans_must_name_the_remote_address() -> None:
    assert await san_problem([], [], "127.0.0.1:5") is None  # nothing to check
    assert await san_problem(["127.0.0.1"], [], "127.0.0.1:5") is None
    assert await san_problem(["::1"], [], "[::1]:5") is None
    assert await san_problem(["0:0:0:0:0:0:0:1"], [], "[::1]:5") is None  # the same address
    assert await san_problem(["127.0.0.2"], [], "127.0.0.1:5") == (
        "x509: certificate is valid for 127.0.0.2, not 127.0.0.1"
    )


async def test_dns_sans_are_looked_up_both_ways() -> None:
    # 127.0.0.1's name is localhost (reverse), and localhost is 127.0.0.1 (forward).
    assert await san_problem([], ["localhost"], "127.0.0.1:5") is None
    assert (
        await san_problem(["10.9.9.9"], ["localhost"], "127.0.0.1:5") is None
    )  # the IP fails, the name does not
    problem = await san_problem([], ["peer.invalid"], "127.0.0.1:5")
    assert problem is not None
    assert problem.startswith(
        'tls: "127.0.0.1" does not match any of DNSNames ["peer.invalid"] (lookup peer.invalid: '
    )
    problem = await san_problem(["10.9.9.9"], ["*.invalid", "peer.invalid"], "127.0.0.1:5")
    assert problem is not None
    assert problem.startswith(
        'tls: "127.0.0.1" does not match any of DNSNames ["*.invalid" "peer.invalid"] ('
    )


async def test_etcds_order_identity_then_san_then_crl(ca: TestCA) -> None:
    revoked_elsewhere = ca.issue(
        "revoked-elsewhere", "etcd-peer", ["10.0.0.1"], serial=0x81
    ).cert.read_bytes()
    crl = str(ca.crl([0x81], name="san-crl.pem"))
    san = "x509: certificate is valid for 10.0.0.1, not 127.0.0.1"
    assert await CertRules(crl_file=crl, check_san=True).refusal(revoked_elsewhere, "127.0.0.1:5", 0.0) == san
    assert await CertRules(crl_file=crl).refusal(revoked_elsewhere, "127.0.0.1:5", 0.0) == (
        "transport: certificate serial 81 revoked"
    )  # the client port (or --experimental-peer-skip-client-san-verification): no SAN check
    wrong_cn = CertRules(allowed_cn="other", check_san=True)
    assert await wrong_cn.refusal(revoked_elsewhere, "127.0.0.1:5", 0.0) == AUTH_FAILED
    good = ca.issue("good-peer", "etcd-peer", ["127.0.0.1"], serial=0x82).cert.read_bytes()
    rules = CertRules(check_san=True)
    assert rules.active
    assert await rules.refusal(good, "127.0.0.1:5", 0.0) is None
    assert (
        await rules.refusal(good, "127.0.0.2:5", 0.5)
        == "x509: certificate is valid for 127.0.0.1, not 127.0.0.2"
    )


async def test_the_peer_gate_refuses_a_certificate_for_another_address(ca: TestCA) -> None:
    async with gated_server(ca, CertGate(CertRules(check_san=True), hold=False)) as target:
        here = ca.issue("here", "etcd-peer", ["127.0.0.1"], serial=0x91)
        assert (await _range(target, ca, here)).count == 1
        no_sans = ca.issue("no-sans", "etcd-peer", [], serial=0x92)
        assert (await _range(target, ca, no_sans)).count == 1
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await _range(target, ca, ca.issue("there", "etcd-peer", ["10.0.0.1"], serial=0x93))
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        refused = "connection rejected: x509: certificate is valid for 10.0.0.1, not 127.0.0.1"
        assert info.value.details() == refused
