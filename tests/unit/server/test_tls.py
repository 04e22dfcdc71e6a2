"""minietcd.server.tls: self-signed certificates (generation, reuse), etcd's auto-TLS rules, and
gRPC credentials and channels built from them (in-process gRPC servers on 127.0.0.1)."""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from minietcd.errors import ConfigError
from minietcd.server.config import parse_config
from minietcd.server.tls import (
    ChannelOpener,
    TLSInfo,
    client_tls_info,
    fetch_server_certificate,
    peer_tls_info,
    self_cert,
)

# --- self_cert ---------------------------------------------------------------------------------


def _load(info: TLSInfo) -> tuple[x509.Certificate, Any]:
    cert = x509.load_pem_x509_certificate(Path(info.cert_file).read_bytes())
    key = serialization.load_pem_private_key(Path(info.key_file).read_bytes(), password=None)
    return cert, key


def test_self_cert_generates_etcd_like_certificate(tmp_path: Path) -> None:
    d = tmp_path / "data" / "fixtures" / "client"
    info = self_cert(d, ["127.0.0.1:2379", "node1.example:2379", "[::1]:2379", "127.0.0.1:22379"])
    assert info == TLSInfo(cert_file=str(d / "cert.pem"), key_file=str(d / "key.pem"), self_cert=True)
    cert, key = _load(info)

    assert isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1)
    assert cert.public_key() == key.public_key()
    assert Path(info.key_file).read_bytes().startswith(b"-----BEGIN EC PRIVATE KEY-----")
    assert cert.subject == cert.issuer
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "etcd"
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)
    validity = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert validity == datetime.timedelta(days=365)
    now = datetime.datetime.now(datetime.UTC)
    assert cert.not_valid_before_utc <= now <= cert.not_valid_before_utc + datetime.timedelta(minutes=5)

    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]  # one SAN per host, whatever the port
    assert sans.get_values_for_type(x509.DNSName) == ["node1.example"]
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and usage.value.key_encipherment
    assert not usage.value.key_cert_sign
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    basic = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and not basic.value.ca

    assert Path(info.key_file).stat().st_mode & 0o777 == 0o600
    for directory in (d, d.parent, d.parent.parent):  # every directory it created: 0700
        assert directory.stat().st_mode & 0o777 == 0o700
    assert not list(d.glob("*.tmp"))


def test_peer_self_cert_allows_client_auth(tmp_path: Path) -> None:
    cert, _ = _load(self_cert(tmp_path, ["127.0.0.1:2380"], client_auth=True))
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]


def test_self_cert_is_reused_on_restart(tmp_path: Path) -> None:
    first = self_cert(tmp_path, ["127.0.0.1:2379"])
    cert, key = Path(first.cert_file).read_bytes(), Path(first.key_file).read_bytes()
    # Different hosts do not matter: etcd reuses whatever is there.
    again = self_cert(tmp_path, ["10.0.0.1:2379"])
    assert again == first
    assert Path(again.cert_file).read_bytes() == cert
    assert Path(again.key_file).read_bytes() == key


def test_self_cert_regenerates_when_half_missing(tmp_path: Path) -> None:
    first = self_cert(tmp_path, ["127.0.0.1:2379"])
    cert = Path(first.cert_file).read_bytes()
    os.remove(first.key_file)
    second = self_cert(tmp_path, ["127.0.0.1:2379"])
    assert Path(second.cert_file).read_bytes() != cert
    c, k = _load(second)
    assert c.public_key() == k.public_key()


def test_self_cert_replaces_keys_grpc_cannot_use(tmp_path: Path) -> None:
    # What real etcd 3.4 writes: ECDSA P-521, which gRPC's TLS stack cannot sign handshakes with.
    key = ec.generate_private_key(ec.SECP521R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "etcd")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA512())
    )
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    new_cert, new_key = _load(self_cert(tmp_path, ["127.0.0.1:2379"]))
    assert isinstance(new_key.curve, ec.SECP256R1)
    assert new_cert.public_key() == new_key.public_key()


def test_self_cert_reports_unwritable_directory(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ConfigError, match="could not get certs"):
        self_cert(blocker / "fixtures", ["127.0.0.1:2379"])


# --- etcd's rules ------------------------------------------------------------------------------


def _cfg(tmp_path: Path, *flags: str) -> Any:
    return parse_config(["--data-dir", str(tmp_path / "d"), *flags], {}, default_host=lambda: None)


def test_tls_info_string_is_etcds() -> None:
    info = TLSInfo(cert_file="c.pem", key_file="k.pem", trusted_ca_file="ca.pem", client_cert_auth=True)
    assert str(info) == "cert = c.pem, key = k.pem, trusted-ca = ca.pem, client-cert-auth = true, crl-file = "


def test_auto_tls_generates_into_data_dir_fixtures(tmp_path: Path) -> None:
    cfg = _cfg(
        tmp_path,
        "--auto-tls",
        "--peer-auto-tls",
        "--client-cert-auth",  # dropped by auto TLS, as in etcd 3.4
        "--listen-client-urls",
        "https://127.0.0.1:12379",
        "--advertise-client-urls",
        "https://127.0.0.1:12379",
        "--listen-peer-urls",
        "https://127.0.0.1:12380",
    )
    client, peer = client_tls_info(cfg), peer_tls_info(cfg)
    base = tmp_path / "d" / "fixtures"
    assert client == TLSInfo(
        str(base / "client" / "cert.pem"), str(base / "client" / "key.pem"), self_cert=True
    )
    assert peer == TLSInfo(str(base / "peer" / "cert.pem"), str(base / "peer" / "key.pem"), self_cert=True)
    assert not client.client_cert_auth
    assert Path(client.cert_file).read_bytes() != Path(peer.cert_file).read_bytes()


def test_auto_tls_is_ignored_when_certs_are_given(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = _cfg(
        tmp_path,
        "--auto-tls",
        "--cert-file", "/x/c.pem", "--key-file", "/x/k.pem", "--trusted-ca-file", "/x/ca.pem",
        "--client-cert-auth",
        "--peer-auto-tls", "--peer-cert-file", "/x/pc.pem", "--peer-key-file", "/x/pk.pem",
    )  # fmt: skip
    assert client_tls_info(cfg) == TLSInfo("/x/c.pem", "/x/k.pem", "/x/ca.pem", client_cert_auth=True)
    assert peer_tls_info(cfg) == TLSInfo("/x/pc.pem", "/x/pk.pem")
    assert "ignoring client auto TLS since certs given" in caplog.text
    assert "ignoring peer auto TLS since certs given" in caplog.text
    assert not (tmp_path / "d").exists()


def test_no_tls_flags_means_empty(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    assert client_tls_info(cfg).empty() and peer_tls_info(cfg).empty()


def test_missing_or_mismatched_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read TLS cert file"):
        TLSInfo(
            cert_file=str(tmp_path / "nope.pem"), key_file=str(tmp_path / "nope.key")
        ).server_credentials()
    a, b = self_cert(tmp_path / "a", ["127.0.0.1:1"]), self_cert(tmp_path / "b", ["127.0.0.1:1"])
    with pytest.raises(ConfigError, match="cannot load TLS key pair"):
        TLSInfo(cert_file=a.cert_file, key_file=b.key_file).server_credentials()


# --- gRPC over it --------------------------------------------------------------------------------


async def _echo(request: bytes, context: Any) -> bytes:
    return b"echo:" + request


async def _serve(credentials: grpc.ServerCredentials) -> tuple[Any, int]:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "test.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(_echo)}
            ),
        )
    )
    port = server.add_secure_port("127.0.0.1:0", credentials)
    await server.start()
    return server, port


async def _call(channel: Any) -> bytes:
    try:
        return bytes(await channel.unary_unary("/test.Echo/Echo")(b"hi", timeout=10))
    finally:
        await channel.close()


@pytest.fixture
async def auto_tls_server(tmp_path: Path) -> AsyncIterator[tuple[TLSInfo, int]]:
    info = self_cert(tmp_path / "server", ["127.0.0.1:0"])
    server, port = await _serve(info.server_credentials())
    try:
        yield info, port
    finally:
        await server.stop(None)


async def test_auto_tls_channel_pins_the_presented_certificate(
    auto_tls_server: tuple[TLSInfo, int], tmp_path: Path
) -> None:
    _, port = auto_tls_server
    own = self_cert(tmp_path / "client", ["127.0.0.1:0"])  # another member's own auto TLS
    assert await _call(await ChannelOpener(own)(f"https://127.0.0.1:{port}")) == b"echo:hi"
    # Without auto TLS the self-signed certificate is not trusted.
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await _call(await ChannelOpener(TLSInfo())(f"https://127.0.0.1:{port}"))
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_auto_tls_channel_when_the_cert_names_other_hosts(tmp_path: Path) -> None:
    # Listening on 0.0.0.0 (or a DNS name) gives a certificate that does not name 127.0.0.1.
    for hosts in (["0.0.0.0:2380"], ["member1.invalid:2380"]):
        info = self_cert(tmp_path / hosts[0].split(":")[0], hosts)
        server, port = await _serve(info.server_credentials())
        try:
            assert await _call(await ChannelOpener(info)(f"https://127.0.0.1:{port}")) == b"echo:hi"
        finally:
            await server.stop(None)


async def test_fetch_server_certificate(auto_tls_server: tuple[TLSInfo, int], tmp_path: Path) -> None:
    info, port = auto_tls_server
    der = await fetch_server_certificate("127.0.0.1", port)
    assert der == x509.load_pem_x509_certificate(Path(info.cert_file).read_bytes()).public_bytes(
        serialization.Encoding.DER
    )
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    with pytest.raises(OSError):
        await fetch_server_certificate("127.0.0.1", closed, timeout=5)
    with pytest.raises(OSError):
        await ChannelOpener(info)(f"https://127.0.0.1:{closed}")


async def test_plain_http_url_gives_an_insecure_channel() -> None:
    channel = await ChannelOpener(TLSInfo(cert_file="/nonexistent", key_file="/nonexistent"))(
        "http://127.0.0.1:1"
    )
    await channel.close()  # no files read, no TLS for http


def _ca_signed(tmp_path: Path) -> dict[str, str]:
    """A CA, a server cert for 127.0.0.1 and a client cert; another CA's client cert. File paths."""
    now = datetime.datetime.now(datetime.UTC)
    out: dict[str, str] = {}

    def write(name: str, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
        (tmp_path / f"{name}.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        (tmp_path / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        out[name + ".key"], out[name + ".crt"] = str(tmp_path / f"{name}.key"), str(tmp_path / f"{name}.crt")

    def make(
        cn: str, issuer: tuple[ec.EllipticCurvePrivateKey, x509.Name] | None, usage: Any, ca: bool = False
    ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        signer, issuer_name = issuer if issuer else (key, subject)
        b = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if usage is not None:
            b = b.add_extension(x509.ExtendedKeyUsage(usage), critical=False)
        if cn == "server":
            b = b.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            )
        return key, b.sign(signer, hashes.SHA256())

    ca_key, ca = make("ca", None, None, ca=True)
    write("ca", ca_key, ca)
    other_key, other = make("other", None, None, ca=True)
    write("other", other_key, other)
    write("server", *make("server", (ca_key, ca.subject), [ExtendedKeyUsageOID.SERVER_AUTH]))
    write("client", *make("client", (ca_key, ca.subject), [ExtendedKeyUsageOID.CLIENT_AUTH]))
    write("stranger", *make("stranger", (other_key, other.subject), [ExtendedKeyUsageOID.CLIENT_AUTH]))
    return out


async def test_client_cert_auth(tmp_path: Path) -> None:
    f = _ca_signed(tmp_path)
    server_info = TLSInfo(f["server.crt"], f["server.key"], f["ca.crt"], client_cert_auth=True)
    server, port = await _serve(server_info.server_credentials())
    url = f"https://127.0.0.1:{port}"
    try:
        good = TLSInfo(f["client.crt"], f["client.key"], f["ca.crt"])
        assert await _call(await ChannelOpener(good)(url)) == b"echo:hi"
        refused = {
            "no client certificate": TLSInfo(trusted_ca_file=f["ca.crt"]),
            "another CA's certificate": TLSInfo(f["stranger.crt"], f["stranger.key"], f["ca.crt"]),
            "server not verifiable": TLSInfo(f["client.crt"], f["client.key"], f["other.crt"]),
        }
        for what, info in refused.items():
            with pytest.raises(grpc.aio.AioRpcError) as e:
                await _call(await ChannelOpener(info)(url))
            assert e.value.code() == grpc.StatusCode.UNAVAILABLE, what
    finally:
        await server.stop(None)


async def test_trusted_ca_without_client_cert_auth_does_not_ask_for_certs(tmp_path: Path) -> None:
    f = _ca_signed(tmp_path)
    server, port = await _serve(TLSInfo(f["server.crt"], f["server.key"], f["ca.crt"]).server_credentials())
    try:
        anonymous = TLSInfo(trusted_ca_file=f["ca.crt"])
        assert await _call(await ChannelOpener(anonymous)(f"https://127.0.0.1:{port}")) == b"echo:hi"
    finally:
        await server.stop(None)


def test_server_ssl_context_for_metrics(tmp_path: Path) -> None:
    f = _ca_signed(tmp_path)
    ctx = TLSInfo(f["server.crt"], f["server.key"], f["ca.crt"], client_cert_auth=True).server_ssl_context()
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    ctx = TLSInfo(f["server.crt"], f["server.key"]).server_ssl_context()
    assert ctx.verify_mode == ssl.CERT_NONE
