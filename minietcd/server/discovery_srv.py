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

The lookups themselves (``minietcd/client/srv.py``, shared with minietcdctl) go to the
system's resolver (``/etc/resolv.conf``) unless ``MINIETCD_DNS_SERVER`` names
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

import logging
from collections.abc import Sequence

from minietcd.client.srv import DNS_SERVER_ENV, SRV, Resolver, SRVLookupError, client_endpoints, srv_service
from minietcd.errors import ConfigError
from minietcd.golang import quote as go_quote
from minietcd.server.logsetup import NOTICE
from minietcd.server.urls import URL, split_host_port

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
    try:
        resolver = resolver or Resolver()
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
