"""Client and peer TLS with etcd's semantics (``pkg/transport.TLSInfo`` and embed's auto TLS).

* :class:`TLSInfo`: what ``--cert-file --key-file --trusted-ca-file --client-cert-auth``
  (or their ``--peer-*`` twins) say, and what to build from it: gRPC server credentials, an
  :class:`ssl.SSLContext` for the HTTP metrics listener, and gRPC channel credentials for
  dialling other members. Its ``str()`` is etcd's ("cert = ..., key = ..., trusted-ca = ...,
  client-cert-auth = ..., crl-file = ...").
* :func:`client_tls_info` / :func:`peer_tls_info`: the effective settings of a member. As in
  etcd 3.4, ``--auto-tls`` / ``--peer-auto-tls`` apply only when no cert and key are given
  ("ignoring client auto TLS since certs given") and then *replace* the settings with a
  self-signed certificate, so a ``--client-cert-auth`` next to ``--auto-tls`` is dropped
  (etcd logs ``client-cert-auth = false`` too).
* :func:`self_cert`: etcd's ``transport.SelfCert``: ``<data-dir>/fixtures/{client,peer}/
  {cert,key}.pem``, reused when both exist, else generated: a self-signed certificate for the
  hosts of the listen URLs (IP SANs for IPs, DNS SANs otherwise), Subject ``O=etcd``, valid for
  one year, key usage digitalSignature+keyEncipherment, extended key usage serverAuth (and
  clientAuth for peers, as etcd 3.5 adds), ``CA:FALSE``; the key as "EC PRIVATE KEY", mode 0600,
  in a 0700 directory. One difference: etcd 3.4 uses ECDSA P-521, which gRPC's TLS stack
  (BoringSSL) cannot sign handshakes with (NO_COMMON_SIGNATURE_ALGORITHMS), so ours are ECDSA
  P-256 / SHA-256. A reused key on a curve gRPC cannot serve (e.g. fixtures left by real etcd)
  is regenerated with a warning.
* :class:`ChannelOpener`: ``await opener(url, options)`` gives a ``grpc.aio`` channel to a
  member's URL: insecure for http, TLS for https.

Auto TLS trust (the security meaning, honestly): etcd dials members that use generated
certificates with ``InsecureSkipVerify``: traffic is encrypted but the other end is *not
authenticated*, so an active man in the middle can read and alter it. gRPC in Python has no
"skip verification" switch, so for a self-signed :class:`TLSInfo` the opener first makes a
plain TLS handshake with verification off, takes the certificate the other end presents, and
opens the gRPC channel with exactly that certificate as its only trusted root (and, if the
certificate does not name the host dialled, with ``grpc.ssl_target_name_override`` set to a
name it does carry). This is trust on every connection, the same guarantee as etcd's: an
attacker in the path when a connection is opened is trusted; nothing else is. The pin does
add one thing: the gRPC handshake must prove possession of the key of the certificate fetched
a moment earlier, so nobody can step in between the fetch and the connection. A fresh fetch is
made for every channel, so a member that regenerated its certificate is still reached. Use
explicit certificates and ``--peer-client-cert-auth`` / ``--client-cert-auth`` with a CA when
the network is not trusted.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import ipaddress
import logging
import os
import secrets
import ssl
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import grpc
import grpc.aio

from minietcd.errors import ConfigError
from minietcd.server.config import Config
from minietcd.server.urls import URL, parse_url, split_host_port

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

    from minietcd.server.cert_gate import CertRules

# cryptography (certificates of auto TLS) is imported where it is used: a member without auto
# TLS never loads it, which keeps about 8 MiB out of its memory. So are the certificate checks
# (cert_gate.py, peer_san.py): only a side with TLS builds them.

__all__ = [
    "SELF_CERT_VALIDITY",
    "ChannelOpener",
    "TLSInfo",
    "client_tls_info",
    "fetch_server_certificate",
    "peer_tls_info",
    "self_cert",
]

log = logging.getLogger("minietcd.server.tls")

SELF_CERT_VALIDITY: Final = datetime.timedelta(days=365)  # etcd 3.4: 365 * 24h
FETCH_TIMEOUT: Final = 2.0  # seconds for the certificate-fetching handshake of auto TLS
CERT_FILE: Final = "cert.pem"
KEY_FILE: Final = "key.pem"
#: gRPC's authority for a ``unix:`` target: the host name a unixs certificate must carry.
UNIX_AUTHORITY: Final = "localhost"
# Curves whose keys gRPC (BoringSSL) can sign TLS handshakes with.
_GRPC_CURVES: Final = ("secp256r1", "secp384r1")


@dataclasses.dataclass(frozen=True)
class TLSInfo:
    """One side's TLS settings (etcd's ``transport.TLSInfo``)."""

    cert_file: str = ""
    key_file: str = ""
    trusted_ca_file: str = ""
    client_cert_auth: bool = False
    crl_file: str = ""
    #: A certificate of the other end must carry this CN / name this host (cert_gate.py);
    #: mutually exclusive, as in etcd.
    allowed_cn: str = ""
    allowed_hostname: str = ""
    #: Generated by auto TLS: the other members do not verify it (see the module docstring).
    self_cert: bool = False

    def empty(self) -> bool:
        """etcd's ``TLSInfo.Empty``: no cert and no key (a CA alone does not enable TLS)."""
        return not self.cert_file and not self.key_file

    def __str__(self) -> str:
        return (
            f"cert = {self.cert_file}, key = {self.key_file}, trusted-ca = {self.trusted_ca_file}, "
            f"client-cert-auth = {str(self.client_cert_auth).lower()}, crl-file = {self.crl_file}"
        )

    # --- files -------------------------------------------------------------------------------

    def _pair(self) -> tuple[bytes, bytes]:
        """(key, cert chain) PEM; ConfigError if either is missing, unreadable or they do not match."""
        if not self.cert_file or not self.key_file:
            raise ConfigError(
                f"TLS needs both a cert file and a key file (cert = {self.cert_file!r}, "
                f"key = {self.key_file!r})"
            )
        cert, key = _read(self.cert_file, "cert"), _read(self.key_file, "key")
        try:  # grpc accepts a broken pair and fails every handshake later: check it here
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(self.cert_file, self.key_file)
        except (ssl.SSLError, ValueError) as e:
            raise ConfigError(
                f"cannot load TLS key pair (cert {self.cert_file}, key {self.key_file}): {e}"
            ) from e
        return key, cert

    def _client_roots(self) -> bytes:
        """PEM roots to verify client certificates with: --trusted-ca-file, else the system's
        (Go's tls.Config uses the system pool when ClientCAs is nil)."""
        if self.trusted_ca_file:
            return _read(self.trusted_ca_file, "trusted CA")
        paths = ssl.get_default_verify_paths()
        for candidate in (paths.cafile, paths.openssl_cafile):
            if candidate and os.path.isfile(candidate):
                return _read(candidate, "system CA")
        raise ConfigError("client cert auth is enabled but no trusted CA file is given and none is installed")

    # --- what to build from it -----------------------------------------------------------------

    def cert_rules(self, *, check_san: bool = False) -> CertRules:
        """The checks beyond the CA on a certificate the other end presents (cert_gate.py;
        ``check_san``: the peer port's, peer_san.py); ConfigError if both an allowed CN and an
        allowed hostname are set."""
        from minietcd.server.cert_gate import CertRules

        return CertRules(
            crl_file=self.crl_file,
            allowed_cn=self.allowed_cn,
            allowed_hostname=self.allowed_hostname,
            check_san=check_san,
        )

    def server_credentials(self) -> grpc.ServerCredentials:
        """For a gRPC server on an https URL; requires and verifies client certificates when
        client_cert_auth is set (etcd's tls.RequireAndVerifyClientCert)."""
        from minietcd.server.cert_gate import check_exclusive

        check_exclusive(self.allowed_cn, self.allowed_hostname)  # etcd's baseConfig refuses both
        key, cert = self._pair()
        if self.client_cert_auth:
            return grpc.ssl_server_credentials(
                [(key, cert)], root_certificates=self._client_roots(), require_client_auth=True
            )
        return grpc.ssl_server_credentials([(key, cert)])

    def server_ssl_context(self) -> ssl.SSLContext:
        """The same for an HTTP listener (the metrics URLs). A CRL is checked by OpenSSL in the
        handshake: a revoked client certificate is refused there, as etcd refuses it; unlike
        etcd (serials only), OpenSSL also wants the CRL signed by the CA and not expired, and
        reads it once. The allowed hostname is not checked on HTTP listeners (cert_gate.py
        checks gRPC calls; an HTTP face can call CertRules.problem on the peer certificate)."""
        self._pair()
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.cert_file, self.key_file)
        if self.client_cert_auth:
            ctx.verify_mode = ssl.CERT_REQUIRED
            if self.trusted_ca_file:
                ctx.load_verify_locations(cafile=self.trusted_ca_file)
            else:
                ctx.load_default_certs(ssl.Purpose.CLIENT_AUTH)
            if self.crl_file:
                _load_crl(ctx, self.crl_file)
        return ctx

    def channel_credentials(self, roots: bytes | None = None) -> grpc.ChannelCredentials:
        """For dialling an https URL: trust ``roots`` if given, else --trusted-ca-file, else the
        system roots; present our cert and key (if any) as the client certificate, as etcd's
        TLSInfo.ClientConfig does."""
        if roots is None and self.trusted_ca_file:
            roots = _read(self.trusted_ca_file, "trusted CA")
        if self.empty():
            return grpc.ssl_channel_credentials(root_certificates=roots)
        key, cert = self._pair()
        return grpc.ssl_channel_credentials(root_certificates=roots, private_key=key, certificate_chain=cert)


# --- effective settings -------------------------------------------------------------------------


def client_tls_info(cfg: Config) -> TLSInfo:
    """The client-facing TLS of a member (``--cert-file`` ... or ``--auto-tls``)."""
    info = TLSInfo(
        cert_file=cfg.cert_file,
        key_file=cfg.key_file,
        trusted_ca_file=cfg.trusted_ca_file,
        client_cert_auth=cfg.client_cert_auth,
        crl_file=cfg.client_crl_file,
        allowed_hostname=cfg.client_cert_allowed_hostname,
    )
    return _or_auto_tls(info, cfg.auto_tls, "client", [u.host for u in cfg.listen_client_urls], cfg.data_dir)


def peer_tls_info(cfg: Config) -> TLSInfo:
    """The peer TLS of a member (``--peer-cert-file`` ... or ``--peer-auto-tls``)."""
    info = TLSInfo(
        cert_file=cfg.peer_cert_file,
        key_file=cfg.peer_key_file,
        trusted_ca_file=cfg.peer_trusted_ca_file,
        client_cert_auth=cfg.peer_client_cert_auth,
        crl_file=cfg.peer_crl_file,
        allowed_cn=cfg.peer_cert_allowed_cn,
        allowed_hostname=cfg.peer_cert_allowed_hostname,
    )
    hosts = [u.host for u in cfg.listen_peer_urls]
    return _or_auto_tls(info, cfg.peer_auto_tls, "peer", hosts, cfg.data_dir, client_auth=True)


def _or_auto_tls(
    info: TLSInfo, auto: bool, kind: str, hosts: list[str], data_dir: str, client_auth: bool = False
) -> TLSInfo:
    """``info``, or with ``--auto-tls``/``--peer-auto-tls`` and no certificate files a
    self-signed certificate kept in <data-dir>/fixtures/<kind> (etcd ignores auto TLS, with a
    warning, when files are given)."""
    if not auto:
        return info
    if not info.empty():
        log.warning("embed: ignoring %s auto TLS since certs given", kind)
        return info
    return self_cert(Path(data_dir) / "fixtures" / kind, hosts, client_auth=client_auth)


# --- self-signed certificates ----------------------------------------------------------------------


def self_cert(
    dirpath: str | os.PathLike[str],
    hosts: Sequence[str],
    *,
    client_auth: bool = False,
    validity: datetime.timedelta = SELF_CERT_VALIDITY,
) -> TLSInfo:
    """etcd's ``transport.SelfCert``: reuse ``dirpath/{cert,key}.pem`` if both exist, else make
    a self-signed certificate for ``hosts`` (``host:port`` or bare hosts) there."""
    d = Path(dirpath)
    cert_path, key_path = d / CERT_FILE, d / KEY_FILE
    info = TLSInfo(cert_file=str(cert_path), key_file=str(key_path), self_cert=True)
    if cert_path.is_file() and key_path.is_file():
        problem = _reuse_problem(cert_path, key_path)
        if problem is None:
            return info
        log.warning("embed: regenerating the self-signed certificate in %s: %s", d, problem)
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        for parent in [*reversed(d.parents), d]:  # etcd's TouchDirAll: every new dir 0700
            if not parent.exists():
                parent.mkdir(mode=0o700, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _make_cert(key, hosts, client_auth=client_auth, validity=validity)
        _write(key_path, key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,  # "EC PRIVATE KEY", as etcd writes it
            serialization.NoEncryption(),
        ), 0o600)  # fmt: skip
        _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    except OSError as e:
        raise ConfigError(f"could not get certs ({e})") from e
    log.info("embed: generated a self-signed certificate for %s in %s", ", ".join(hosts) or "no host", d)
    return info


def _make_cert(
    key: ec.EllipticCurvePrivateKey,
    hosts: Sequence[str],
    *,
    client_auth: bool,
    validity: datetime.timedelta,
) -> x509.Certificate:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "etcd")])
    sans: list[x509.GeneralName] = []
    for host in hosts:
        h = _hostname(host)
        if not h:
            continue
        try:
            san: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(h))
        except ValueError:
            san = x509.DNSName(h)
        if san not in sans:
            sans.append(san)
    usages = [ExtendedKeyUsageOID.SERVER_AUTH] + ([ExtendedKeyUsageOID.CLIENT_AUTH] if client_auth else [])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(secrets.randbits(128) or 1)
        .not_valid_before(now)
        .not_valid_after(now + validity)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_encipherment=True,
                content_commitment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(key, hashes.SHA256())


def _hostname(host: str) -> str:
    """The host of ``host:port`` (Go's net.SplitHostPort; "" if it does not split, as etcd)."""
    try:
        h, _ = split_host_port(host)
    except ConfigError:
        return host if ":" not in host else ""
    return h


def _reuse_problem(cert_path: Path, key_path: Path) -> str | None:
    """Why existing fixtures cannot be served by gRPC (None: reuse them, as etcd does)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError, TypeError) as e:
        return f"cannot load it: {e}"
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name not in _GRPC_CURVES:
        return f"its key is on curve {key.curve.name}, which gRPC's TLS cannot use"
    if cert.public_key() != key.public_key():
        return "the certificate does not match the key"
    if cert.not_valid_after_utc < datetime.datetime.now(datetime.UTC):
        log.warning(
            "embed: the self-signed certificate %s expired at %s", cert_path, cert.not_valid_after_utc
        )
    return None


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write via a temporary file and rename, so a crash never leaves half a file to reuse."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, mode)  # whatever the umask
    os.replace(tmp, path)


def _load_crl(ctx: ssl.SSLContext, path: str) -> None:
    """Make ``ctx`` check client certificates against the CRL at ``path`` (PEM or DER, as etcd
    reads it). A CRL that cannot be read refuses every client certificate, as in etcd (OpenSSL
    fails a check it has no CRL for); the start goes on, with a warning."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    try:
        data = _read(path, "CRL")
        crl = x509.load_pem_x509_crl(data) if b"-----BEGIN" in data else x509.load_der_x509_crl(data)
    except (ConfigError, ValueError) as e:
        log.warning("embed: cannot load CRL file %s (%s): every client certificate is refused", path, e)
        return
    with tempfile.NamedTemporaryFile("wb", suffix=".pem") as f:  # OpenSSL reads CRLs from files
        f.write(crl.public_bytes(Encoding.PEM))
        f.flush()
        ctx.load_verify_locations(cafile=f.name)


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise ConfigError(f"cannot read TLS {what} file {path}: {e.strerror or e}") from e


# --- dialling other members ----------------------------------------------------------------------


async def fetch_server_certificate(
    host: str,
    port: int,
    *,
    timeout: float = FETCH_TIMEOUT,
    client: TLSInfo | None = None,
    unix_path: str | None = None,
) -> bytes:
    """The certificate (DER) presented at host:port (or at the unix socket ``unix_path``),
    *without verifying it*: auto TLS only.

    ``client``'s cert and key are offered if the other end asks for one. Raises OSError (or
    TimeoutError) if no handshake completes.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])  # what gRPC speaks
    if client is not None and not client.empty():
        ctx.load_cert_chain(client.cert_file, client.key_file)
    async with asyncio.timeout(timeout):
        if unix_path is not None:
            _reader, writer = await asyncio.open_unix_connection(unix_path, ssl=ctx, server_hostname=host)
        else:
            _reader, writer = await asyncio.open_connection(host, port, ssl=ctx)
    try:
        sslobj = writer.get_extra_info("ssl_object")
        der = sslobj.getpeercert(binary_form=True) if sslobj is not None else None
    finally:
        # No close_notify exchange: a gRPC server need not answer it, and waiting for it (as
        # writer.wait_closed() does under uvloop) could hang. The connection carried nothing.
        writer.transport.abort()
    if not der:
        raise ConnectionError(f"{host}:{port} presented no certificate")
    return bytes(der)


class ChannelOpener:
    """``await opener(url, options)``: a new ``grpc.aio`` channel to another member's URL.

    http: insecure. https: TLS from ``info`` (None: system roots, no client certificate); a
    self-signed ``info`` (auto TLS) pins the certificate the other end presents (see the module
    docstring). Raises ConfigError for a URL it cannot parse, OSError/TimeoutError if auto TLS
    cannot fetch the certificate.
    """

    def __init__(self, info: TLSInfo | None = None, *, fetch_timeout: float = FETCH_TIMEOUT) -> None:
        self._info = info
        self._fetch_timeout = fetch_timeout
        self._credentials: grpc.ChannelCredentials | None = None  # built once (files read once)

    async def __call__(self, url: str | URL, options: Sequence[tuple[str, Any]] = ()) -> grpc.aio.Channel:
        parsed = parse_url(url) if isinstance(url, str) else url
        target = parsed.grpc_target
        if not parsed.is_tls:
            return grpc.aio.insecure_channel(target, options=list(options))
        info = self._info or TLSInfo()
        if not info.self_cert:
            if self._credentials is None:
                from minietcd.server.cert_gate import check_exclusive

                check_exclusive(info.allowed_cn, info.allowed_hostname)
                self._credentials = info.channel_credentials()
            if info.allowed_cn or info.allowed_hostname:
                await _check_server_identity(parsed, info, self._fetch_timeout)
            return grpc.aio.secure_channel(target, self._credentials, options=list(options))
        host, port = parsed.hostname, parsed.port
        if port is None:
            raise ConfigError(f"URL {url} has no port")
        unix_path = parsed.host if parsed.is_unix else None
        if unix_path is not None:
            host = UNIX_AUTHORITY  # the name gRPC checks the certificate against on a unix socket
        der = await fetch_server_certificate(
            host, port, timeout=self._fetch_timeout, client=info, unix_path=unix_path
        )
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        cert = x509.load_der_x509_certificate(der)
        opts = list(options)
        override = _target_name_override(cert, host)
        if override is not None:
            opts.append(("grpc.ssl_target_name_override", override))
        roots = cert.public_bytes(serialization.Encoding.PEM)
        return grpc.aio.secure_channel(target, info.channel_credentials(roots), options=opts)


async def _check_server_identity(url: URL, info: TLSInfo, timeout: float) -> None:
    """etcd checks the allowed CN / hostname on the certificate of a member it dials too (the
    rule is in the TLS config both directions share). gRPC's Python channel has no hook for
    it, so the certificate is fetched first, verified against the trusted CA, and checked;
    the gRPC handshake that follows verifies the CA again. ConnectionRefusedError (Go's text)
    if it is not allowed; OSError/TimeoutError if no handshake completes."""
    from cryptography import x509

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False  # gRPC checks the name; here only the CA and the identity
    if info.trusted_ca_file:
        ctx.load_verify_locations(cafile=info.trusted_ca_file)
    else:
        ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
    ctx.set_alpn_protocols(["h2"])
    if not info.empty():
        ctx.load_cert_chain(info.cert_file, info.key_file)
    async with asyncio.timeout(timeout):
        if url.is_unix:
            _reader, writer = await asyncio.open_unix_connection(
                url.host, ssl=ctx, server_hostname=UNIX_AUTHORITY
            )
        else:
            _reader, writer = await asyncio.open_connection(url.hostname, url.port, ssl=ctx)
    try:
        sslobj = writer.get_extra_info("ssl_object")
        der = sslobj.getpeercert(binary_form=True) if sslobj is not None else None
    finally:
        writer.transport.abort()  # as fetch_server_certificate: the connection carried nothing
    from minietcd.server.cert_gate import AUTH_FAILED, identity_problem

    cert = x509.load_der_x509_certificate(der) if der else None
    if cert is None or identity_problem(cert, info.allowed_cn, info.allowed_hostname):
        raise ConnectionRefusedError(f"{url}: {AUTH_FAILED}")


def _target_name_override(cert: x509.Certificate, host: str) -> str | None:
    """None if ``cert`` names ``host``; else a name it does carry (gRPC checks the name)."""
    from cryptography import x509

    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    ips = [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)]
    dns = list(sans.get_values_for_type(x509.DNSName))
    try:
        target = str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        target = host.lower()
    if target in ips or target in (d.lower() for d in dns):
        return None
    names = dns + ips
    return names[0] if names else None
