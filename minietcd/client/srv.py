"""DNS SRV lookups as Go's ``net`` package and etcd's ``pkg/srv`` do them, for clients and servers.

- :class:`Resolver`: SRV and address lookups through ``$MINIETCD_DNS_SERVER`` (one or more DNS
  servers, ``127.0.0.1:5353``, ``[::1]:53``, comma-separated: tests point it at a local DNS
  server) or the system's resolver (``/etc/resolv.conf``), answers ordered as Go's
  ``net.LookupSRV`` orders them (priority, then weight, RFC 2782);
- :func:`client_endpoints`: the client URLs ``etcdctl --discovery-srv`` finds
  (``_etcd-client-ssl[-S]._tcp.D`` then ``_etcd-client[-S]._tcp.D``).

The server's rules for bootstrapping from ``_etcd-server[-ssl]`` records live in
``minietcd/server/discovery_srv.py``.
"""

from __future__ import annotations

import ipaddress
import os
import random
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

import dns.exception
import dns.nameserver
import dns.rdatatype
import dns.resolver

from minietcd.golang import AddrError, split_host_port
from minietcd.golang import quote as go_quote

#: Names the DNS server(s) every SRV lookup of minietcd and minietcdctl goes to.
DNS_SERVER_ENV: Final = "MINIETCD_DNS_SERVER"
LOOKUP_TIMEOUT: Final = 5.0


class SRVLookupError(Exception):
    """A failed DNS lookup, worded as Go's net package words it."""


@dataclass(frozen=True, slots=True)
class SRV:
    target: str  # as in the answer: with the trailing dot
    port: int
    priority: int
    weight: int


def _parse_servers(text: str) -> list[tuple[str, int]]:
    out = []
    for item in (s.strip() for s in text.split(",")):
        if not item:
            continue
        try:
            ipaddress.ip_address(item.strip("[]"))
            host, port = item.strip("[]"), "53"
        except ValueError:
            try:
                host, port = split_host_port(item)
            except AddrError:
                raise SRVLookupError(f"${DNS_SERVER_ENV}: {item!r} is not ip[:port]") from None
        if not port.isdigit():
            raise SRVLookupError(f"${DNS_SERVER_ENV}: {item!r} is not ip[:port]")
        out.append((host, int(port)))
    return out


def _order(records: Sequence[SRV], rng: random.Random) -> list[SRV]:
    """Go's net.LookupSRV order: by priority, then randomised by weight (RFC 2782)."""
    out: list[SRV] = []
    for prio in sorted({r.priority for r in records}):
        group = [r for r in records if r.priority == prio]
        while group:
            total = sum(r.weight for r in group)
            if total == 0:
                rng.shuffle(group)
                out.extend(group)
                break
            pick = rng.randrange(total + 1)
            for i, r in enumerate(group):
                pick -= r.weight
                if pick <= 0 or i == len(group) - 1:
                    out.append(group.pop(i))
                    break
    return out


class Resolver:
    """SRV and address lookups, through ``$MINIETCD_DNS_SERVER`` or the system's resolver."""

    def __init__(self, servers: str | None = None, rng: random.Random | None = None) -> None:
        text = os.environ.get(DNS_SERVER_ENV, "") if servers is None else servers
        self.override = _parse_servers(text)
        self.rng = rng or random.Random()
        if self.override:
            self._dns = dns.resolver.Resolver(configure=False)
            self._dns.nameservers = [dns.nameserver.Do53Nameserver(h, p) for h, p in self.override]
        else:
            self._dns = dns.resolver.Resolver()  # /etc/resolv.conf
        self._dns.lifetime = LOOKUP_TIMEOUT

    @property
    def server_text(self) -> str:
        return ",".join(f"{h}:{p}" for h, p in self.override) or ",".join(
            f"{ns}:53" for ns in self._dns.nameservers
        )

    def lookup_srv(self, service: str, proto: str, domain: str) -> list[SRV]:
        """Go's ``net.LookupSRV(service, proto, domain)``."""
        qname = f"_{service}._{proto}.{domain}"
        try:
            answer = self._dns.resolve(qname, "SRV", search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            raise SRVLookupError(f"lookup {qname} on {self.server_text}: no such host") from None
        except dns.exception.DNSException as e:
            raise SRVLookupError(f"lookup {qname} on {self.server_text}: {e}") from None
        records = [
            SRV(str(r.target), int(r.port), int(r.priority), int(r.weight))
            for r in answer
            if r.rdtype == dns.rdatatype.SRV
        ]
        return _order(records, self.rng)

    def _override_address(self, host: str) -> str | None:
        for rdtype in ("A", "AAAA"):
            try:
                answer = self._dns.resolve(host, rdtype, search=False)
            except dns.exception.DNSException:
                continue
            for r in answer:
                return str(r.address)
        return None

    def resolve_tcp(self, host: str, port: str) -> str:
        """Go's ``net.ResolveTCPAddr("tcp", host:port).String()``: ``ip:port`` (IPv4 preferred)."""
        name = host.strip("[]")
        try:
            ipaddress.ip_address(name)
            addr: str | None = name
        except ValueError:
            addr = self._override_address(name) if self.override else None
        if addr is None:
            try:
                infos = socket.getaddrinfo(name.rstrip("."), int(port), type=socket.SOCK_STREAM)
            except (OSError, ValueError) as e:
                raise SRVLookupError(f"lookup {name}: no such host ({e})") from None
            infos.sort(key=lambda i: i[0] != socket.AF_INET)
            addr = str(infos[0][4][0])
        return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def srv_service(service: str, service_name: str, scheme: str) -> str:
    """etcd's GetSRVService: ``etcd-client`` -> ``etcd-client-ssl`` for https, then ``-<name>``."""
    if scheme == "https":
        service += "-ssl"
    return f"{service}-{service_name}" if service_name else service




def client_endpoints(
    domain: str, service_name: str, insecure: bool = True, resolver: Resolver | None = None,
    warn: Callable[[str], None] | None = None,
) -> list[str]:  # fmt: skip
    """The client URLs etcdctl's ``--discovery-srv`` finds (srv.GetClient("etcd-client", ...));
    with ``insecure=False`` the ``http://`` ones are dropped (``warn`` is told about each)."""
    resolver = resolver or Resolver()
    urls: list[str] = []
    errors: list[str] = []
    for scheme in ("https", "http"):
        try:
            records = resolver.lookup_srv(srv_service("etcd-client", service_name, scheme), "tcp", domain)
        except SRVLookupError as e:
            errors.append(str(e))
            continue
        for r in records:
            if resolver.override:
                # Dial the address the override server gives: the system resolver behind gRPC
                # may not know the name (the TLS server name is the domain, as etcdctl's).
                hostport = resolver.resolve_tcp(r.target, str(r.port))
            else:
                hostport = f"[{r.target}]:{r.port}" if ":" in r.target else f"{r.target}:{r.port}"
            urls.append(f"{scheme}://{hostport}")
    if len(errors) == 2:
        raise SRVLookupError(f"dns lookup errors: {errors[0]} and {errors[1]}")
    if insecure:
        return urls
    kept = []
    for u in urls:
        if u.startswith("http://"):
            if warn is not None:
                warn(f"ignoring discovered insecure endpoint {go_quote(u)}")
            continue
        kept.append(u)
    return kept
