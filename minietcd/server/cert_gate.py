"""The checks etcd 3.4 makes on a TLS client's certificate beyond the CA: revocation lists
(``--client-crl-file``, ``--peer-crl-file``) and the allowed identity of peers
(``--peer-cert-allowed-cn``, ``--peer-cert-allowed-hostname``; ``--client-cert-allowed-hostname``
on the client port), and on the peer port the SANs against the address a peer connects from
(etcd's ``checkSAN``, peer_san.py).

etcd's rules (``pkg/transport/listener.go`` baseConfig, ``listener_tls.go``):

* **CRL**: after the handshake, each certificate the other end presented is looked up by serial
  number in the CRL file (read again for every connection, so a new CRL applies without a
  restart); a revoked one closes the connection: ``transport: certificate serial 1003 revoked``.
  Only the serials are compared (no issuer, no signature, no dates), as etcd does.
* **Allowed CN / hostname**: in the handshake, a verified client certificate must have exactly
  that Subject CN, or carry that hostname (or IP) in its SANs (Go's ``VerifyHostname``: SANs
  only, ``*.`` wildcards in the first label); else ``client certificate authentication failed``.
  The two flags are mutually exclusive. etcd applies the same check to the *server*
  certificate of a member it dials (the rule sits in the TLS config both sides share): that
  half is :func:`identity_problem`, called by ``tls.ChannelOpener`` before it connects.

Certificates are only checked when the other end presented one, which the server asks for only
with ``--client-cert-auth`` / ``--peer-client-cert-auth``.

How minietcd refuses: gRPC's Python server has no hook in its TLS handshake (its C core can
check CRLs, but Python cannot reach that option), so :class:`CertGate`, a server interceptor,
reads the certificate of the connection from the call's auth context before any service code
runs. A refused call logs etcd's line once per connection::

    I | embed: rejected connection from "127.0.0.1:52744" (error "transport: certificate serial
    1003 revoked", ServerName "", IPAddresses [], DNSNames [])

On the client port the call is then left unanswered until the client's own deadline (at most
:data:`CLIENT_HOLD_MAX`; :data:`CLIENT_HOLD_NO_DEADLINE` without one) and ended UNAVAILABLE with
the reason: against etcd a refused client never gets a usable connection, so etcd's clients
(etcdctl, clientv3 waits for a ready connection) print ``context deadline exceeded``, and they
print the same here. On the peer port the call is refused at once, UNAVAILABLE with the reason,
so the member that dialled logs why. (The gRPC server's ``ServerName`` is not visible to Python:
the line always shows ``""``, which is what etcd shows for clients that dial an IP.)
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import grpc
import grpc.aio

from minietcd.errors import ConfigError
from minietcd.golang import quote, quote_list
from minietcd.server.clientmux import remote_address
from minietcd.server.peer_san import remote_host, san_problem

if TYPE_CHECKING:
    from cryptography import x509

__all__ = [
    "AUTH_FAILED",
    "CertGate",
    "CertRules",
    "go_serial_hex",
    "identity_problem",
    "verify_hostname",
]

log = logging.getLogger("minietcd.server.tls")

#: Go's error when a certificate has not the allowed CN or hostname (sic: also for a server's).
AUTH_FAILED: Final = "client certificate authentication failed"
#: The longest a refused client call is held (its deadline, if sooner, ends it first).
CLIENT_HOLD_MAX: Final = 300.0
#: How long a refused client call without a deadline is held.
CLIENT_HOLD_NO_DEADLINE: Final = 10.0
#: How often the CRL file is looked at for a change (etcd reads it for every connection).
CRL_RECHECK_SECONDS: Final = 1.0
_MAX_REMEMBERED = 1024  # verdicts and logged connections kept (bounded: strangers cannot grow it)


def check_exclusive(allowed_cn: str, allowed_hostname: str) -> None:
    """etcd refuses to build a TLS config with both (the start fails with this line)."""
    if allowed_cn and allowed_hostname:
        raise ConfigError(
            "AllowedCN and AllowedHostname are mutually exclusive "
            f"(cn={quote(allowed_cn)}, hostname={quote(allowed_hostname)})"
        )


def go_serial_hex(serial: int) -> str:
    """Go's ``%x`` of ``string(serial.Bytes())``: big-endian bytes, no sign, no leading zeros."""
    return serial.to_bytes((serial.bit_length() + 7) // 8, "big").hex()


def common_name(cert: x509.Certificate) -> str:
    """Go's ``Subject.CommonName``: the last CN of the subject ("" if none)."""
    from cryptography.x509.oid import NameOID

    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    value = names[-1].value if names else ""
    return value if isinstance(value, str) else value.decode(errors="replace")


def _sans(cert: x509.Certificate) -> tuple[list[str], list[str]]:
    """(IP addresses as text, DNS names) of the certificate's SAN extension."""
    from cryptography import x509

    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [], []
    ips = [str(ip) for ip in ext.get_values_for_type(x509.IPAddress)]
    return ips, list(ext.get_values_for_type(x509.DNSName))


def verify_hostname(cert: x509.Certificate, host: str) -> bool:
    """Go's ``Certificate.VerifyHostname`` (Go 1.19: SANs only, never the CN)."""
    ips, dns_names = _sans(cert)
    candidate = host[1:-1] if len(host) >= 3 and host[0] == "[" and host[-1] == "]" else host
    try:
        ip = ipaddress.ip_address(candidate)
    except ValueError:
        ip = None
    if ip is not None:
        return any(ipaddress.ip_address(c) == ip for c in ips)
    name = host.lower()
    for pattern in dns_names:
        if _valid_hostname(name) and _valid_hostname(pattern, is_pattern=True):
            if _match_hostnames(pattern.lower(), name):
                return True
        elif pattern.lower() == name:  # Go: exact match only, for names that are not hostnames
            return True
    return False


def _valid_hostname(host: str, *, is_pattern: bool = False) -> bool:
    """Go's validHostname: letters, digits, '-', '_' (and ':' outside patterns), one '*' label
    first in a pattern; a trailing dot is allowed."""
    host = host.removesuffix(".")
    if not host:
        return False
    for i, label in enumerate(host.split(".")):
        if not label:
            return False
        if is_pattern and i == 0 and label == "*":
            continue
        for c in label:
            if not (c.isascii() and (c.isalnum() or c in "-_" or (c == ":" and not is_pattern))):
                return False
    return True


def _match_hostnames(pattern: str, host: str) -> bool:
    pattern, host = pattern.removesuffix("."), host.removesuffix(".")
    p_labels, h_labels = pattern.split("."), host.split(".")
    if len(p_labels) != len(h_labels):
        return False
    pairs = enumerate(zip(p_labels, h_labels, strict=True))
    return all((i == 0 and p == "*") or p == h for i, (p, h) in pairs)


def identity_problem(cert: x509.Certificate, allowed_cn: str, allowed_hostname: str) -> str | None:
    """etcd's VerifyPeerCertificate: :data:`AUTH_FAILED` unless the certificate has the allowed
    CN (exactly) or names the allowed hostname; None when neither is asked for."""
    if allowed_hostname:
        return None if verify_hostname(cert, allowed_hostname) else AUTH_FAILED
    if allowed_cn:
        return None if common_name(cert) == allowed_cn else AUTH_FAILED
    return None


@dataclass(frozen=True, slots=True)
class _Verdict:
    """What the rules say of one certificate: a problem found in the handshake (its identity,
    or a certificate that cannot be read), one found by the CRL, and its SANs (for checkSAN)."""

    handshake: str | None
    crl: str | None = None
    ips: list[str] = field(default_factory=list)
    dns_names: list[str] = field(default_factory=list)


class CertRules:
    """The checks of one side (client or peer) on a presented certificate, with etcd's texts."""

    def __init__(
        self,
        *,
        crl_file: str = "",
        allowed_cn: str = "",
        allowed_hostname: str = "",
        check_san: bool = False,
    ) -> None:
        check_exclusive(allowed_cn, allowed_hostname)
        self.crl_file = crl_file
        self.allowed_cn = allowed_cn
        self.allowed_hostname = allowed_hostname
        #: The peer port's checkSAN (peer_san.py); off on the client port and with
        #: --experimental-peer-skip-client-san-verification.
        self.check_san = check_san
        self._verdicts: dict[bytes, _Verdict] = {}  # PEM -> what the rules say, for the current CRL
        self._crl_stamp: tuple[int, int, int] | None = None  # (inode, size, mtime) it was read at
        self._crl_checked_at = float("-inf")
        self._san_verdicts: dict[tuple[bytes, str], tuple[float, str | None]] = {}  # (PEM, host)

    @property
    def active(self) -> bool:
        return bool(self.crl_file or self.allowed_cn or self.allowed_hostname or self.check_san)

    def problem(self, pem: bytes, now: float) -> str | None:
        """Why the certificate (PEM) is refused by the identity and CRL rules, or None. ``now``
        (monotonic seconds) paces the look at the CRL file: a changed file drops the
        remembered verdicts."""
        verdict = self._verdict(pem, now)
        return verdict.handshake or verdict.crl

    async def refusal(self, pem: bytes, remote: str, now: float) -> str | None:
        """Why a connection from ``remote`` presenting ``pem`` is refused, in etcd's order: the
        identity (checked in the handshake), then the SANs against ``remote`` (checkSAN), then
        the CRL. A SAN verdict is remembered for a second per certificate and address (it may
        take DNS lookups; etcd makes them for every connection)."""
        verdict = self._verdict(pem, now)
        if verdict.handshake is not None or not self.check_san:
            return verdict.handshake or verdict.crl
        host = remote_host(remote) or remote
        remembered = self._san_verdicts.get((pem, host))
        if remembered is not None and now - remembered[0] < CRL_RECHECK_SECONDS:
            san = remembered[1]
        else:
            san = await san_problem(verdict.ips, verdict.dns_names, remote)
            if len(self._san_verdicts) >= _MAX_REMEMBERED:
                self._san_verdicts.clear()
            self._san_verdicts[(pem, host)] = (now, san)
        return san or verdict.crl

    def _verdict(self, pem: bytes, now: float) -> _Verdict:
        if self.crl_file and now - self._crl_checked_at >= CRL_RECHECK_SECONDS:
            self._crl_checked_at = now
            stamp = _stamp(self.crl_file)
            if stamp != self._crl_stamp:
                self._crl_stamp = stamp
                self._verdicts.clear()
        verdict = self._verdicts.get(pem)
        if verdict is None:
            verdict = self._judge(pem)
            if len(self._verdicts) >= _MAX_REMEMBERED:
                self._verdicts.clear()
            self._verdicts[pem] = verdict
        return verdict

    def _judge(self, pem: bytes) -> _Verdict:
        from cryptography import x509

        try:
            cert = x509.load_pem_x509_certificate(pem)
        except ValueError as e:
            return _Verdict(f"x509: {e}")
        # etcd: the identity check runs in the handshake, the CRL after it.
        handshake = identity_problem(cert, self.allowed_cn, self.allowed_hostname)
        if handshake is not None:
            return _Verdict(handshake)
        crl = _crl_problem(self.crl_file, cert.serial_number) if self.crl_file else None
        ips, dns_names = _sans(cert)
        return _Verdict(None, crl, ips, dns_names)

    def describe_rejection(self, pem: bytes, remote: str, problem: str) -> str:
        """etcd's ``rejected connection`` log line (embed/config.go)."""
        from cryptography import x509

        head = f'embed: rejected connection from {quote(remote)} (error {quote(problem)}, ServerName ""'
        try:
            ips, dns_names = _sans(x509.load_pem_x509_certificate(pem))
        except ValueError:
            return head + ")"
        return f"{head}, IPAddresses {quote_list(ips)}, DNSNames {quote_list(dns_names)})"


def _stamp(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def _crl_problem(path: str, serial: int) -> str | None:
    """etcd's checkCRL for one certificate: its error text, or None if it is not revoked."""
    from cryptography import x509

    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:  # Go: "open <path>: no such file or directory"
        return f"open {path}: {(e.strerror or str(e)).lower()}"
    try:
        crl = x509.load_pem_x509_crl(data) if b"-----BEGIN" in data else x509.load_der_x509_crl(data)
    except ValueError as e:
        return f"x509: {e}"
    if crl.get_revoked_certificate_by_serial_number(serial) is not None:
        return f"transport: certificate serial {go_serial_hex(serial)} revoked"
    return None


# --- the gRPC side ---------------------------------------------------------------------------------


def _remote(context: grpc.aio.ServicerContext) -> str:
    """The caller's address as Go's RemoteAddr (through the client-port multiplexer too)."""
    return remote_address(str(context.peer()))


class CertGate(grpc.aio.ServerInterceptor):  # type: ignore[misc]  # grpc has no type hints: the base is Any
    """Runs :class:`CertRules` on every call before the service sees it (see the module doc).
    ``hold``: the client port's behaviour (hold a refused call); else refuse at once."""

    def __init__(self, rules: CertRules, *, hold: bool, clock: Callable[[], float] = time.monotonic) -> None:
        self.rules = rules
        self.hold = hold
        self._clock = clock
        self._logged: set[str] = set()  # connections whose rejection was logged

    async def _admit(self, context: grpc.aio.ServicerContext) -> None:
        pems = context.auth_context().get("x509_pem_cert")
        if not pems:
            return  # no certificate presented: nothing etcd would check
        pem = bytes(pems[0])
        remote = _remote(context)
        problem = await self.rules.refusal(pem, remote, self._clock())
        if problem is None:
            return
        # Once per connection, as etcd logs it; behind the client-port multiplexer every
        # connection has the same (internal) address, so the certificate and the reason tell
        # connections apart too.
        key = f"{remote} {hashlib.sha256(pem).hexdigest()} {problem}"
        if key not in self._logged:
            if len(self._logged) >= _MAX_REMEMBERED:
                self._logged.clear()
            self._logged.add(key)
            log.info("%s", self.rules.describe_rejection(pem, remote, problem))
        if self.hold:
            remaining = context.time_remaining()
            # Past the deadline: gRPC cancels the call then, so the client's own deadline, not
            # our answer, ends it, as against etcd.
            wait = CLIENT_HOLD_NO_DEADLINE if remaining is None else min(remaining + 1.0, CLIENT_HOLD_MAX)
            await asyncio.sleep(max(wait, 0.0))
        await context.abort(grpc.StatusCode.UNAVAILABLE, f"connection rejected: {problem}")

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:
            return handler
        return _guard(handler, self._admit)


def _guard(
    handler: grpc.RpcMethodHandler, admit: Callable[[grpc.aio.ServicerContext], Awaitable[None]]
) -> grpc.RpcMethodHandler:
    """``handler`` with ``admit(context)`` awaited before its behaviour, for each of the four
    kinds of method (the streaming ones are async generators in this server)."""
    if handler.unary_unary is not None:
        uu = handler.unary_unary

        async def unary_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            await admit(context)
            return await uu(request, context)

        return handler._replace(unary_unary=unary_unary)
    if handler.stream_unary is not None:
        su = handler.stream_unary

        async def stream_unary(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> Any:
            await admit(context)
            return await su(requests, context)

        return handler._replace(stream_unary=stream_unary)
    inner = handler.unary_stream or handler.stream_stream

    async def streaming(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        await admit(context)
        async for response in inner(request, context):
            yield response

    if handler.unary_stream is not None:
        return handler._replace(unary_stream=streaming)
    return handler._replace(stream_stream=streaming)
