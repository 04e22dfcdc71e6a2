"""DNS discovery: the members of a new cluster from DNS SRV records (``--discovery-srv``).

etcd's rules (pkg/srv/srv.go, embed/config.go ``GetDNSClusterNames``), for the domain D and
the optional ``--discovery-srv-name`` suffix S:

- servers: ``_etcd-server-ssl[-S]._tcp.D`` gives ``https://`` peer URLs and
  ``_etcd-server[-S]._tcp.D`` ``http://`` ones; the answers of both are combined. Each
  target whose address (``host:port`` resolved) is one of this member's advertised peer URLs
  is this member (named ``--name``); the others get the names ``0``, ``1``, ... . A target that
  is this member but with the other scheme is an error ("has scheme mismatch"). The result is
  used as ``--initial-cluster`` (with ``--initial-cluster-token`` as usual), and this member
  must be in it ("cannot find local etcd member ... in SRV records");
- clients (``etcdctl --discovery-srv``, ``minietcdctl --discovery-srv``):
  ``_etcd-client-ssl[-S]._tcp.D`` (``https://``) then ``_etcd-client[-S]._tcp.D``
  (``http://``), the targets as written (trailing dot kept, as etcd's client keeps it), or,
  with ``MINIETCD_DNS_SERVER``, the addresses that server gives for them.

Lookups go to the system's resolver (``/etc/resolv.conf``) unless ``MINIETCD_DNS_SERVER`` names
one or more DNS servers (``127.0.0.1:5353``, ``[::1]:53``, comma-separated): then SRV queries,
and the address lookups of their targets, go there first (a target it does not know falls back
to the system's ``/etc/hosts`` and resolver). Members dial each other by the URLs' host names
through the system resolver, as etcd does, so targets must be names the system resolves too.

Difference from etcd 3.4: 3.4's ``GetDNSClusterNames`` keeps the ``_etcd-server`` answers only
when that lookup *fails* (an inverted check) and reports the ``-ssl`` lookup's error, so DNS
discovery over plain http fails there with "error querying DNS SRV records for
_etcd-server-ssl ..." (etcd issue #11321). minietcd combines both answers, as etcd 3.3 and 3.5
do; with ``_etcd-server-ssl`` records both behave alike.
"""

from __future__ import annotations

import ipaddress
import logging
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

from minietcd.errors import ConfigError
from minietcd.server.logsetup import NOTICE
from minietcd.server.urls import URL, go_quote, split_host_port

__all__ = [
    "DNS_SERVER_ENV",
    "SRV",
    "Resolver",
    "SRVLookupError",
    "client_endpoints",
    "get_cluster",
    "get_dns_cluster_names",
    "initial_cluster_from_srv",
    "srv_service",
]

log = logging.getLogger("minietcd.server.discovery_srv")

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
            except ConfigError:
                raise ConfigError(f"${DNS_SERVER_ENV}: {item!r} is not ip[:port]") from None
        if not port.isdigit():
            raise ConfigError(f"${DNS_SERVER_ENV}: {item!r} is not ip[:port]")
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


def get_cluster(
    resolver: Resolver, scheme: str, service: str, name: str, domain: str, apurls: Sequence[URL]
) -> list[str]:
    """etcd's srv.GetCluster: ``["<name>=<scheme>://<target>:<port>", ...]`` for one service."""
    tcp2ap: dict[str, URL] = {}
    for u in apurls:
        host, port = split_host_port(u.host)
        tcp2ap[resolver.resolve_tcp(host, port)] = u
    parts: list[str] = []
    temp_name = 0
    err: str | None = None
    try:
        records = resolver.lookup_srv(service, "tcp", domain)
    except SRVLookupError as e:
        raise SRVLookupError(f"error querying DNS SRV records for _{service} {e}") from None
    for srv in records:
        port = str(srv.port)
        try:
            addr = resolver.resolve_tcp(srv.target, port)
        except SRVLookupError as e:
            err = str(e)
            continue
        own = tcp2ap.get(addr)
        if own is not None:
            n = name
        else:
            n, temp_name = str(temp_name), temp_name + 1
        host = srv.target.removesuffix(".")  # SRV targets end with a dot; URLs should not
        url_host = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if own is not None and own.scheme != scheme:
            err = (
                f"bootstrap at {scheme}://{url_host} from DNS for {service} has scheme mismatch "
                f"with expected peer {own}"
            )
        else:
            parts.append(f"{n}={scheme}://{url_host}")
    if not parts:
        raise SRVLookupError(f"error querying DNS SRV records for _{service} {err or 'no usable record'}")
    return parts


def get_dns_cluster_names(
    resolver: Resolver, name: str, domain: str, service_name: str, apurls: Sequence[URL]
) -> list[str]:
    """Both server services combined (``_etcd-server-ssl`` first); an error only if neither
    gives a member (see the module docstring for etcd 3.4's bug here)."""
    out: list[str] = []
    errors: list[str] = []
    for scheme in ("https", "http"):
        try:
            service = srv_service("etcd-server", service_name, scheme)
            out += get_cluster(resolver, scheme, service, name, domain, apurls)
        except SRVLookupError as e:
            errors.append(str(e))
    if not out:
        raise SRVLookupError("; ".join(errors))
    return out


def initial_cluster_from_srv(
    name: str, domain: str, service_name: str, apurls: Sequence[URL], resolver: Resolver | None = None
) -> str:
    """``--initial-cluster`` from SRV records (etcd's PeerURLsMapAndToken for ``--discovery-srv``);
    ConfigError "error setting up initial cluster: ..." when that fails."""
    resolver = resolver or Resolver()
    try:
        names = get_dns_cluster_names(resolver, name, domain, service_name, apurls)
    except SRVLookupError as e:
        log.error("embed: couldn't resolve during SRV discovery (%s)", e)
        raise ConfigError(f"error setting up initial cluster: {e}") from None
    for s in names:
        log.log(NOTICE, "embed: got bootstrap from DNS for etcd-server at %s", s)
    if not any(s.partition("=")[0] == name for s in names):
        raise ConfigError(
            f"error setting up initial cluster: cannot find local etcd member {go_quote(name)} in SRV records"
        )
    return ",".join(names)


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
