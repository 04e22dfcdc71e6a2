"""etcd 3.4's v2 discovery and DNS discovery, the parts that need no process: the v2 keys JSON
(byte for byte what etcd v2 answered in a recorded session), the discovery URL rules, the
member list checks, the flags, and etcd's SRV rules (pkg/srv) over a scripted resolver, as
etcd's own srv_test.go scripts ``lookupSRV``/``resolveTCPAddr``."""

from __future__ import annotations

import os

import pytest

from minietcd.client.v2keys import (
    V2Error,
    V2Node,
    V2Response,
    error_json,
    parse_error,
    parse_response,
    response_json,
)
from minietcd.errors import ConfigError
from minietcd.server import ids
from minietcd.server.config import parse_config
from minietcd.server.discovery_srv import (
    SRV,
    Resolver,
    SRVLookupError,
    client_endpoints,
    get_cluster,
    get_dns_cluster_names,
    initial_cluster_from_srv,
    srv_service,
)
from minietcd.server.discovery_v2 import (
    ERR_DUPLICATE_NAME,
    ERR_INVALID_URL,
    V2DiscoveryError,
    go_duration,
    nodes_to_cluster,
    proxy_url,
    split_discovery_url,
)
from minietcd.server.urls import parse_urls

TOKEN = "/_etcd/registry/1e997a664eedc4cb60a5ca3af2de38a5"

# --- the v2 keys JSON -----------------------------------------------------------------------------


def test_v2_json_is_etcds_bytes() -> None:
    # Recorded from etcd 3.4.23 --enable-v2 behind Debian's etcd-discovery.
    listing = (
        '{"action":"get","node":{"key":"' + TOKEN + '","dir":true,"nodes":[{"key":"' + TOKEN + '/abc",'
        '"value":"n1=http://127.0.0.1:1","modifiedIndex":5,"createdIndex":5}],"modifiedIndex":4,"createdIndex":4}}\n'
    )
    node = V2Node(TOKEN, None, True, 4, 4, (V2Node(TOKEN + "/abc", "n1=http://127.0.0.1:1", False, 5, 5),))
    assert response_json(V2Response("get", node)).decode() == listing
    parsed = parse_response(listing.encode(), "5")
    assert parsed.index == 5 and parsed.node == node
    exists = '{"errorCode":105,"message":"Key already exists","cause":"' + TOKEN + '/abc","index":5}\n'
    err = V2Error.of(105, TOKEN + "/abc", 5)
    assert error_json(err).decode() == exists and err.http_status == 412
    assert str(parse_error(exists.encode())) == f"105: Key already exists ({TOKEN}/abc) [5]"
    with pytest.raises(ValueError):
        parse_response(b"<html>not etcd</html>", None)


# --- discovery URL, proxy, backoff, member list ----------------------------------------------------


def test_discovery_url_is_endpoint_plus_token_path() -> None:
    assert split_discovery_url("https://discovery.etcd.io/f6a3fb54") == (
        "https://discovery.etcd.io",
        "/f6a3fb54",
    )
    assert split_discovery_url("http://10.0.0.1:2379/v2/keys/discovery/x") == (
        "http://10.0.0.1:2379",
        "/v2/keys/discovery/x",
    )
    with pytest.raises(ConfigError):
        split_discovery_url("discovery.etcd.io/abc")
    assert proxy_url("") is None
    assert proxy_url("10.0.0.9:3128") == "http://10.0.0.9:3128"  # etcd adds http:// to a bare host:port
    assert proxy_url("https://proxy:443") == "https://proxy:443"
    assert [go_duration(2**n) for n in (1, 6, 8)] == ["2s", "1m4s", "4m16s"]


def test_nodes_to_cluster() -> None:
    nodes = [V2Node(f"{TOKEN}/{i}", f"n{i}=http://10.0.0.{i}:2380") for i in (1, 2, 3)]
    assert (
        nodes_to_cluster(nodes, 3)
        == "n1=http://10.0.0.1:2380,n2=http://10.0.0.2:2380,n3=http://10.0.0.3:2380"
    )
    same_name = [*nodes[:2], V2Node(f"{TOKEN}/3", "n1=http://10.0.0.3:2380")]
    with pytest.raises(V2DiscoveryError) as e:
        nodes_to_cluster(same_name, 3)
    assert e.value.reason == ERR_DUPLICATE_NAME
    assert str(e.value) == "failed to join discovery cluster (discovery: found duplicate name)"
    with pytest.raises(V2DiscoveryError) as e:
        nodes_to_cluster([V2Node(f"{TOKEN}/1", "no-equals-sign")], 1)
    assert e.value.reason == ERR_INVALID_URL


def test_discovery_flags_are_implemented_and_the_token_is_the_url() -> None:
    url = "http://127.0.0.1:8087/1e997a664eedc4cb60a5ca3af2de38a5"
    cfg = parse_config(
        ["-name", "etcd0", "-initial-advertise-peer-urls", "http://127.0.0.1:2380",
         "-listen-client-urls", "http://127.0.0.1:2379", "-advertise-client-urls", "http://127.0.0.1:2379",
         "-discovery", url, "--discovery-fallback", "exit", "--discovery-proxy", "10.0.0.9:3128"],
        {},
    )  # fmt: skip
    assert cfg.unimplemented_in_use() == []
    assert cfg.initial_cluster == ""
    assert cfg.member_id() == ids.member_id(["http://127.0.0.1:2380"], url)
    srv = parse_config(["--discovery-srv", "example.com", "--discovery-srv-name", "foo"], {})
    assert srv.unimplemented_in_use() == []
    with pytest.raises(ConfigError, match="multiple discovery or bootstrap flags"):
        parse_config(["--discovery", url, "--discovery-srv", "example.com"], {})


# --- etcd's SRV rules -------------------------------------------------------------------------------


class ScriptedResolver(Resolver):
    """SRV answers and addresses from tables (etcd's srv_test.go does the same)."""

    def __init__(self, srvs: dict[str, list[SRV]], addrs: dict[str, str]) -> None:
        super().__init__(servers="")
        self.srvs, self.addrs = srvs, addrs

    def lookup_srv(self, service: str, proto: str, domain: str) -> list[SRV]:
        qname = f"_{service}._{proto}.{domain}"
        if qname not in self.srvs:
            raise SRVLookupError(f"lookup {qname} on 127.0.0.53:53: no such host")
        return self.srvs[qname]

    def resolve_tcp(self, host: str, port: str) -> str:
        return f"{self.addrs.get(host.rstrip('.'), host)}:{port}"


def _srv(*targets: tuple[str, int]) -> list[SRV]:
    return [SRV(t, p, 0, 0) for t, p in targets]


ADDRS = {"infra0.example.com": "10.0.0.1", "infra1.example.com": "10.0.0.2", "infra2.example.com": "10.0.0.3"}


def test_get_cluster_names_self_and_numbers_the_others() -> None:
    r = ScriptedResolver(
        {"_etcd-server._tcp.example.com": _srv(("infra0.example.com.", 2380), ("infra1.example.com.", 2380))},
        ADDRS,
    )
    got = get_cluster(r, "http", "etcd-server", "infra1", "example.com", parse_urls("http://10.0.0.2:2380"))
    assert got == ["0=http://infra0.example.com:2380", "infra1=http://infra1.example.com:2380"]
    # This member's record under the other scheme is left out; alone, it is etcd's error.
    https = parse_urls("https://10.0.0.2:2380")
    assert get_cluster(r, "http", "etcd-server", "infra1", "example.com", https) == [
        "0=http://infra0.example.com:2380"
    ]
    r.srvs["_etcd-server._tcp.example.com"] = _srv(("infra1.example.com.", 2380))
    with pytest.raises(
        SRVLookupError, match=r"has scheme mismatch with expected peer https://10\.0\.0\.2:2380"
    ):
        get_cluster(r, "http", "etcd-server", "infra1", "example.com", https)


def test_ssl_and_plain_records_combine_and_the_suffix_is_used() -> None:
    r = ScriptedResolver(
        {
            "_etcd-server-ssl-foo._tcp.example.com": _srv(("infra0.example.com.", 2380)),
            "_etcd-server-foo._tcp.example.com": _srv(("infra1.example.com.", 2380)),
        },
        ADDRS,
    )
    got = get_dns_cluster_names(r, "infra0", "example.com", "foo", parse_urls("https://10.0.0.1:2380"))
    assert got == ["infra0=https://infra0.example.com:2380", "0=http://infra1.example.com:2380"]
    assert srv_service("etcd-client", "foo", "https") == "etcd-client-ssl-foo"
    with pytest.raises(SRVLookupError, match="error querying DNS SRV records for _etcd-server-ssl"):
        get_dns_cluster_names(r, "x", "example.com", "", parse_urls("http://10.0.0.9:2380"))


def test_initial_cluster_needs_this_member() -> None:
    r = ScriptedResolver({"_etcd-server._tcp.example.com": _srv(("infra0.example.com.", 2380))}, ADDRS)
    with pytest.raises(ConfigError, match='cannot find local etcd member "infra2" in SRV records'):
        initial_cluster_from_srv("infra2", "example.com", "", parse_urls("http://10.0.0.3:2380"), r)
    assert (
        initial_cluster_from_srv("infra0", "example.com", "", parse_urls("http://10.0.0.1:2380"), r)
        == "infra0=http://infra0.example.com:2380"
    )


def test_client_endpoints_as_etcdctl_finds_them() -> None:
    r = ScriptedResolver(
        {
            "_etcd-client-ssl._tcp.example.com": _srv(("infra0.example.com.", 2379)),
            "_etcd-client._tcp.example.com": _srv(("infra1.example.com.", 2379)),
        },
        ADDRS,
    )
    assert client_endpoints("example.com", "", resolver=r) == [
        "https://infra0.example.com.:2379",
        "http://infra1.example.com.:2379",
    ]
    warned: list[str] = []
    assert client_endpoints("example.com", "", insecure=False, resolver=r, warn=warned.append) == [
        "https://infra0.example.com.:2379"
    ]
    assert warned == ['ignoring discovered insecure endpoint "http://infra1.example.com.:2379"']
    with pytest.raises(SRVLookupError, match="dns lookup errors: "):
        client_endpoints("nothing.example.com", "", resolver=r)


def test_dns_server_override_is_parsed() -> None:
    assert Resolver("127.0.0.1:5353,[::1]:53,10.0.0.1").override == [
        ("127.0.0.1", 5353),
        ("::1", 53),
        ("10.0.0.1", 53),
    ]
    with pytest.raises(SRVLookupError, match="MINIETCD_DNS_SERVER"):
        Resolver("not a server:x")
    assert "MINIETCD_DNS_SERVER" not in os.environ or Resolver().override
