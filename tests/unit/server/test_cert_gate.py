"""minietcd.server.cert_gate: etcd's CRL and allowed-identity rules, and the gRPC interceptor that
applies them (real TLS servers on 127.0.0.1 in the test's event loop)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest
from cryptography import x509

from minietcd.api.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from minietcd.errors import ConfigError
from minietcd.server.cert_gate import (
    AUTH_FAILED,
    CertGate,
    CertRules,
    check_exclusive,
    go_serial_hex,
    identity_problem,
    verify_hostname,
)
from minietcd.server.tls import ChannelOpener, TLSInfo
from tests.cluster.pki import Pair, TestCA

KV: Any = rpc_pb2_grpc  # the generated stubs are untyped


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return TestCA(tmp_path_factory.mktemp("pki"))


def _cert(pair: Pair) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pair.cert.read_bytes())


# --- the rules -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("serial", "text"),
    [(0x1003, "1003"), (0x0F, "0f"), (0x80, "80"), (0x123456789ABCDEF0, "123456789abcdef0"), (0, "")],
)
def test_serials_print_as_go_prints_them(serial: int, text: str) -> None:
    # etcd: fmt.Errorf("transport: certificate serial %x revoked", string(serial.Bytes()))
    assert go_serial_hex(serial) == text


def test_hostnames_match_as_gos_verify_hostname(ca: TestCA) -> None:
    cert = _cert(
        ca.issue("h", "not-a-san.example.com", ["10.0.0.1", "::1", "peer.example.com", "*.wild.example.com"])
    )
    for host in (
        "10.0.0.1",
        "::1",
        "[::1]",
        "peer.example.com",
        "PEER.example.com",
        "peer.example.com.",
        "a.wild.example.com",
    ):
        assert verify_hostname(cert, host), host
    for host in (
        "10.0.0.2",
        "other.example.com",
        "wild.example.com",
        "a.b.wild.example.com",
        "not-a-san.example.com",
    ):
        assert not verify_hostname(cert, host), host  # Go 1.19 never falls back to the CN


def test_identity_is_the_cn_or_the_hostname(ca: TestCA) -> None:
    cert = _cert(ca.issue("i", "etcd-peer", ["peer.example.com"]))
    assert identity_problem(cert, "etcd-peer", "") is None
    assert identity_problem(cert, "etcd", "") == AUTH_FAILED  # exact match only
    assert identity_problem(cert, "", "peer.example.com") is None
    assert identity_problem(cert, "", "other.example.com") == AUTH_FAILED
    assert identity_problem(cert, "", "") is None


def test_cn_and_hostname_are_mutually_exclusive() -> None:
    with pytest.raises(ConfigError) as info:
        check_exclusive("a", "b")
    assert str(info.value) == 'AllowedCN and AllowedHostname are mutually exclusive (cn="a", hostname="b")'
    with pytest.raises(ConfigError):
        TLSInfo(allowed_cn="a", allowed_hostname="b").cert_rules()


def test_a_side_without_tls_gets_no_gate_and_cert_files_are_still_checked_as_etcd_does() -> None:
    from minietcd.server.main import _cert_gates

    # No cert, no key, no credentials: etcd's TLSInfo is Empty and nothing checks the flags.
    assert _cert_gates(TLSInfo(allowed_cn="a", allowed_hostname="b"), None, hold=False) == []
    # Cert files given (even for http URLs): etcd's baseConfig refuses the pair.
    with pytest.raises(ConfigError):
        both = TLSInfo(cert_file="c", key_file="k", allowed_cn="a", allowed_hostname="b")
        _cert_gates(both, None, hold=False)
    assert _cert_gates(TLSInfo(cert_file="c", key_file="k", allowed_cn="a"), None, hold=False) == []


def test_the_crl_is_read_again_when_it_changes(ca: TestCA, tmp_path: Path) -> None:
    good = ca.issue("good", "good", serial=0x10).cert.read_bytes()
    bad = ca.issue("bad", "bad", serial=0x11).cert.read_bytes()
    crl = ca.crl([0x11], name="changing.pem")
    rules = CertRules(crl_file=str(crl))
    assert rules.active
    assert rules.problem(good, now=0.0) is None
    assert rules.problem(bad, now=0.0) == "transport: certificate serial 11 revoked"
    ca.crl([0x10, 0x11], name="changing.pem")  # `good` is revoked now
    os.utime(crl, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    assert rules.problem(good, now=0.5) is None  # within a second: the remembered verdict
    assert rules.problem(good, now=1.5) == "transport: certificate serial 10 revoked"
    crl.write_bytes(crl.read_bytes().replace(b"-----BEGIN X509 CRL-----", b"-----BEGIN X509 CRL-----\n!"))
    assert rules.problem(good, now=3.0) is not None  # an unreadable CRL refuses everyone, as in etcd
    crl.unlink()
    assert rules.problem(good, now=5.0) == f"open {crl}: no such file or directory"


def test_a_der_crl_is_read_too(ca: TestCA, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.serialization import Encoding

    pem = ca.crl([0x21], name="der-source.pem")
    der = tmp_path / "crl.der"
    der.write_bytes(x509.load_pem_x509_crl(pem.read_bytes()).public_bytes(Encoding.DER))
    rules = CertRules(crl_file=str(der))
    assert rules.problem(ca.issue("d", "d", serial=0x21).cert.read_bytes(), now=0.0) is not None


def test_the_rejection_line_is_etcds(ca: TestCA) -> None:
    pem = ca.issue("r", "r", ["127.0.0.1", "peer.example.com"]).cert.read_bytes()
    line = CertRules().describe_rejection(
        pem, "127.0.0.1:52744", "transport: certificate serial 1003 revoked"
    )
    assert line == (
        'embed: rejected connection from "127.0.0.1:52744" '
        '(error "transport: certificate serial 1003 revoked", '
        'ServerName "", IPAddresses ["127.0.0.1"], DNSNames ["peer.example.com"])'
    )
    bare = CertRules().describe_rejection(ca.issue("n", "n").cert.read_bytes(), "127.0.0.1:1", "x")
    assert bare.endswith('ServerName "", IPAddresses [], DNSNames [])')


# --- the interceptor, on a real TLS server -------------------------------------------------------------


class _KV(KV.KVServicer):  # type: ignore[misc]  # the generated servicer base is untyped (Any)
    async def Range(self, request: rpc_pb2.RangeRequest, context: Any) -> rpc_pb2.RangeResponse:
        return rpc_pb2.RangeResponse(count=1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def gated_server(ca: TestCA, gate: CertGate) -> AsyncIterator[str]:
    """A KV server on 127.0.0.1 with client cert auth and ``gate``; yields its target."""
    srv_pair = ca.issue("gate-server", "server", ["127.0.0.1"], serial=0x60)
    s = grpc.aio.server(interceptors=[gate])
    KV.add_KVServicer_to_server(_KV(), s)
    creds = grpc.ssl_server_credentials(
        [(srv_pair.key.read_bytes(), srv_pair.cert.read_bytes())],
        root_certificates=ca.cert.read_bytes(),
        require_client_auth=True,
    )
    target = f"127.0.0.1:{_free_port()}"
    s.add_secure_port(target, creds)
    await s.start()
    try:
        yield target
    finally:
        await s.stop(None)


@pytest.fixture
async def server(ca: TestCA) -> AsyncIterator[tuple[str, TestCA, list[CertGate]]]:
    """A KV server with client cert auth and the gate (CRL revoking serial 0x66, allowed
    hostname client.example.com); ``gates[0].hold`` may be flipped by the test."""
    rules = CertRules(
        crl_file=str(ca.crl([0x66], name="gate-crl.pem")), allowed_hostname="client.example.com"
    )
    gate = CertGate(rules, hold=False)
    async with gated_server(ca, gate) as target:
        yield target, ca, [gate]


async def _range(target: str, ca: TestCA, client: Pair, timeout: float = 10.0) -> rpc_pb2.RangeResponse:
    creds = grpc.ssl_channel_credentials(
        ca.cert.read_bytes(), client.key.read_bytes(), client.cert.read_bytes()
    )
    async with grpc.aio.secure_channel(target, creds) as ch:
        response: rpc_pb2.RangeResponse = await KV.KVStub(ch).Range(
            rpc_pb2.RangeRequest(key=b"k"), timeout=timeout
        )
        return response


async def test_the_gate_serves_good_certificates_and_refuses_the_others(
    server: tuple[str, TestCA, list[CertGate]], caplog: pytest.LogCaptureFixture
) -> None:
    target, ca, _ = server
    assert (
        await _range(target, ca, ca.issue("c-ok", "client", ["client.example.com"], serial=0x65))
    ).count == 1
    caplog.set_level(logging.INFO, logger="minietcd.server.tls")
    for pair, error in (
        (
            ca.issue("c-revoked", "client", ["client.example.com"], serial=0x66),
            "transport: certificate serial 66 revoked",
        ),
        (ca.issue("c-elsewhere", "client", ["other.example.com"], serial=0x67), AUTH_FAILED),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await _range(target, ca, pair)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert info.value.details() == f"connection rejected: {error}"
        assert any(f'(error "{error}", ServerName ""' in r.getMessage() for r in caplog.records)


async def test_the_client_port_holds_a_refused_call_until_the_clients_deadline(
    server: tuple[str, TestCA, list[CertGate]],
) -> None:
    target, ca, gates = server
    gates[0].hold = True
    revoked = ca.issue("c-held", "client", ["client.example.com"], serial=0x66)
    start = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _range(target, ca, revoked, timeout=1.0)
    # What a client of etcd sees: its own deadline, never an answer.
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - start >= 0.9


async def test_a_dialled_member_must_have_the_allowed_identity(ca: TestCA, tmp_path: Path) -> None:
    """etcd checks the allowed CN on the server certificate of a member it dials, too."""
    srv_pair = ca.issue("dialled", "other-peer", ["127.0.0.1"], serial=0x70)
    s = grpc.aio.server()
    KV.add_KVServicer_to_server(_KV(), s)
    port = _free_port()
    s.add_secure_port(
        f"127.0.0.1:{port}",
        grpc.ssl_server_credentials([(srv_pair.key.read_bytes(), srv_pair.cert.read_bytes())]),
    )
    await s.start()
    me = ca.issue("dialler", "etcd-peer", ["127.0.0.1"], serial=0x71)
    base = TLSInfo(cert_file=str(me.cert), key_file=str(me.key), trusted_ca_file=str(ca.cert))
    try:
        with pytest.raises(ConnectionRefusedError, match=AUTH_FAILED):
            await ChannelOpener(dataclasses.replace(base, allowed_cn="etcd-peer"))(
                f"https://127.0.0.1:{port}"
            )
        channel = await ChannelOpener(dataclasses.replace(base, allowed_cn="other-peer"))(
            f"https://127.0.0.1:{port}"
        )
        async with channel:
            assert (await KV.KVStub(channel).Range(rpc_pb2.RangeRequest(), timeout=10)).count == 1
    finally:
        await s.stop(None)
    await asyncio.sleep(0)


async def test_an_https_listener_refuses_revoked_certificates_in_the_handshake(ca: TestCA) -> None:
    """The metrics (HTTP) listener's TLS: OpenSSL checks the CRL (tls.TLSInfo.server_ssl_context)."""
    import ssl

    srv_pair = ca.issue("https-server", "server", ["127.0.0.1"], serial=0x80)
    info = TLSInfo(
        cert_file=str(srv_pair.cert),
        key_file=str(srv_pair.key),
        trusted_ca_file=str(ca.cert),
        client_cert_auth=True,
        crl_file=str(ca.crl([0x82], name="https-crl.pem")),
    )

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            writer.write(await reader.readline())
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=info.server_ssl_context())
    port = server.sockets[0].getsockname()[1]

    async def talk(pair: Pair) -> bytes:
        ctx = ssl.create_default_context(cafile=str(ca.cert))
        ctx.load_cert_chain(str(pair.cert), str(pair.key))
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
        try:
            writer.write(b"ping\n")
            return await reader.readline()
        finally:
            writer.close()

    try:
        assert await talk(ca.issue("https-ok", "c", serial=0x81)) == b"ping\n"
        try:  # TLS 1.3: the client may finish first and then read the server's refusal
            got = await talk(ca.issue("https-revoked", "c", serial=0x82))
        except (ssl.SSLError, ConnectionError):
            got = b""
        assert got == b""
    finally:
        server.close()
        await server.wait_closed()


def test_an_unreadable_crl_refuses_every_https_client(ca: TestCA, tmp_path: Path) -> None:
    """As etcd, which fails every connection when it cannot read its CRL; the start goes on."""
    import ssl

    srv_pair = ca.issue("https-server2", "server", ["127.0.0.1"], serial=0x90)
    ctx = TLSInfo(
        cert_file=str(srv_pair.cert),
        key_file=str(srv_pair.key),
        trusted_ca_file=str(ca.cert),
        client_cert_auth=True,
        crl_file=str(tmp_path / "missing.pem"),
    ).server_ssl_context()
    assert ctx.verify_flags & ssl.VERIFY_CRL_CHECK_LEAF
