"""etcd's check of a peer's client certificate against the address it connects from
(``checkSAN`` in ``pkg/transport/listener_tls.go``, etcd 3.4).

On the peer port, after the handshake, a certificate that names IP addresses or DNS names in its
SANs must name the address the connection comes from:

* no IP and no DNS SAN: accepted (nothing to check);
* IP SANs: the remote IP must be one of them (Go's ``VerifyHostname``); if it is not and there
  are no DNS SANs, Go's hostname error: ``x509: certificate is valid for 10.0.0.1, not
  127.0.0.1``;
* DNS SANs: a reverse lookup of the remote IP must give one of the names (``*.`` wildcards match
  a suffix), or a forward lookup of one of the (non-wildcard) names must give the remote IP;
  else ``tls: "127.0.0.1" does not match any of DNSNames ["a.example"]``, with the last lookup
  error in brackets (Go's resolver words it ``lookup a.example on 10.0.0.2:53: no such host``;
  ours says ``lookup a.example: no such host``).

``--experimental-peer-skip-client-san-verification`` turns it off. The client port never checks
it (etcd's client listeners are built without ``checkSAN``).

The lookups are the system resolver's (``getaddrinfo`` and ``gethostbyaddr``, off the event
loop), as Go's ``net.DefaultResolver`` is on Linux when cgo is used.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Final

from minietcd.golang import quote, quote_list

__all__ = ["hostname_error", "remote_host", "san_problem"]

#: Go's ``EAI_NONAME`` text ("no such host"), for a name the resolver does not know.
_NO_SUCH_HOST: Final = "no such host"


def remote_host(remote: str) -> str | None:
    """Go's ``net.SplitHostPort`` host of ``127.0.0.1:5`` or ``[::1]:5``; None for what is not
    a TCP address (gRPC's ``unix:...`` peers: Go's unnamed unix peer is "", which it cannot split)."""
    if remote.startswith("unix:"):
        return None
    host, sep, _ = remote.rpartition(":")
    if not sep:
        return None
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def hostname_error(ips: list[str], host: str) -> str:
    """Go's ``x509.HostnameError`` text for an IP ``host`` that none of ``ips`` is."""
    if not ips:
        return f"x509: cannot validate certificate for {host} because it doesn't contain any IP SANs"
    return f"x509: certificate is valid for {', '.join(ips)}, not {host}"


def _ip_matches(ips: list[str], host: str) -> bool:
    try:
        wanted = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(ipaddress.ip_address(ip) == wanted for ip in ips)


async def san_problem(ips: list[str], dns_names: list[str], remote: str) -> str | None:
    """Why etcd's ``checkCertSAN`` refuses a certificate with these IP and DNS SANs from
    ``remote`` (``host:port``), or None."""
    if not ips and not dns_names:
        return None
    host = remote_host(remote)
    if host is None:  # a unix socket peer: etcd's SplitHostPort fails with this
        return "missing port in address"
    if ips:
        if _ip_matches(ips, host):
            return None
        if not dns_names:
            return hostname_error(ips, host)
    matched, error = await _host_in_dns(host, dns_names)
    if matched:
        return None
    suffix = f" ({error})" if error else ""
    return f"tls: {quote(host)} does not match any of DNSNames {quote_list(dns_names)}{suffix}"


async def _host_in_dns(host: str, dns_names: list[str]) -> tuple[bool, str]:
    """etcd's ``isHostInDNS``: (matched, the last lookup error or "")."""
    loop = asyncio.get_running_loop()
    wildcards = [name[1:] for name in dns_names if name.startswith("*.")]
    names = [name for name in dns_names if not name.startswith("*.")]
    error = ""
    try:  # reverse lookup: the remote address's names
        primary, aliases, _ = await loop.run_in_executor(None, socket.gethostbyaddr, host)
        found = [primary, *aliases]
    except (OSError, UnicodeError) as e:
        found = []
        error = f"lookup {host}: {_lookup_reason(e)}"
    for name in (n.removesuffix(".") for n in found):
        if any(name.endswith(suffix) for suffix in wildcards) or name in names:
            return True, ""
    for name in names:  # forward lookup: the certificate's names' addresses
        try:
            infos = await loop.getaddrinfo(name.encode("ascii", "replace"), None, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as e:
            error = f"lookup {name}: {_lookup_reason(e)}"
            continue
        if any(_same_address(str(info[4][0]), host) for info in infos):
            return True, ""
    return False, error


def _same_address(found: str, host: str) -> bool:
    """Go compares the address strings; an IPv6 scope or a different spelling of the same
    address is the same address here."""
    try:
        return ipaddress.ip_address(found.partition("%")[0]) == ipaddress.ip_address(host)
    except ValueError:
        return found == host


def _lookup_reason(e: BaseException) -> str:
    if isinstance(e, (socket.gaierror, socket.herror)) and e.errno in (
        socket.EAI_NONAME,
        getattr(socket, "EAI_NODATA", socket.EAI_NONAME),
        1,  # h_errno HOST_NOT_FOUND from gethostbyaddr
    ):
        return _NO_SUCH_HOST
    if isinstance(e, OSError) and e.strerror:
        return e.strerror.lower()
    return str(e) or type(e).__name__
