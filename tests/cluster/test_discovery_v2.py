"""etcd 3.4's v2 discovery (``--discovery <token URL>``) on real processes, as seed 002 runs it:
a token from a discovery service's ``/new?size=3``, then every member started with
``--discovery`` instead of ``--initial-cluster``.

- Debian's ``etcd-discovery`` (the discovery.etcd.io server) in front of a real etcd with
  ``--enable-v2``: three minietcd members form one cluster; a fourth is refused (default
  ``--discovery-fallback proxy``: "falling back to proxy", then minietcd's "not supported";
  ``--discovery-fallback exit``: "failed to join discovery cluster (discovery: cluster is full)").
- ``minietcd-lab discovery serve`` backed by minietcd: its token URLs answer etcd v2's JSON and
  errors, three minietcd members form one cluster, a fourth is refused, and a member killed
  after registering is refused with etcd's "found duplicate id" explanation.
- Mixed, through the lab service backed by real etcd: real etcd's discovery client and
  minietcd's agree on the cluster (member IDs, cluster ID) from one token. minietcd's peer
  protocol is not etcd's rafthttp, so the members cannot run Raft together: the two etcd
  members form the quorum and list the minietcd member with the ID minietcd gave itself.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from minietcd.server import ids
from tests.cluster.discovery_helpers import (
    DiscoveryCluster,
    Service,
    http,
    member_log,
    wait_exit,
    wait_for_log,
)
from tests.cluster.harness import ProcessCluster, etcd_binary, free_ports, minietcd_binary, require_binary

pytestmark = pytest.mark.cluster


def new_token(service_url: str, size: int = 3) -> str:
    status, _, body = http("GET", f"{service_url}/new?size={size}")
    assert status == 200, body
    url = body.decode()
    assert re.fullmatch(re.escape(service_url) + r"/[0-9a-f]{32}", url), url
    return url


def v2_discovery_cluster(tmp_path: Path, size: int, token_url: str) -> DiscoveryCluster:
    return DiscoveryCluster(minietcd_binary(), size, tmp_path, extra_flags=["--discovery", token_url])


def backend(binary: list[str], tmp_path: Path, *flags: str) -> ProcessCluster:
    c = ProcessCluster(binary, 1, tmp_path / "backend", extra_flags=list(flags)).start()
    try:
        c.wait_healthy(60.0)
    except BaseException:
        c.close()
        raise
    return c


def lab_service(tmp_path: Path, endpoints: list[str]) -> tuple[Service, str]:
    (port,) = free_ports(1)
    argv = [sys.executable, "-m", "minietcd.lab", "discovery", "serve", "--listen", f"127.0.0.1:{port}",
            "--endpoints", ",".join(endpoints)]  # fmt: skip
    svc = Service(argv, tmp_path / "lab-discovery.log")
    url = f"http://127.0.0.1:{port}"
    try:
        svc.wait_http_ok(url + "/health")
    except BaseException:
        svc.close()
        raise
    return svc, url


def assert_one_cluster(c: DiscoveryCluster, token_url: str) -> None:
    """Every member healthy, listed with the ID etcd derives from its peer URL and the token URL."""
    c.wait_healthy(120.0)
    for i in range(len(c.members)):
        c.wait_published(i, 60.0)
        assert "N | discovery: found 3 needed peer(s)" in member_log(c, i)
    listed = json.loads(c.etcdctl_ok("member", "list", "-w", "json"))["members"]
    got = sorted((m["name"], m["peerURLs"], m["ID"]) for m in listed)
    want = sorted((m.name, [m.peer_url], ids.member_id([m.peer_url], token_url)) for m in c.members)
    assert got == want
    assert c.cluster_id() == ids.cluster_id(w[2] for w in want)
    c.etcdctl_ok("put", "k", "v")
    assert c.etcdctl_ok("get", "k", "--print-value-only", endpoints=c.endpoint(2)).strip() == "v"


def start_three_in_turn(c: DiscoveryCluster) -> None:
    c.start_member(0)
    wait_for_log(c, 0, "N | discovery: found 1 peer(s), waiting for 2 more")
    assert "N | discovery: found self" in member_log(c, 0)
    c.start_member(1)
    wait_for_log(c, 0, "N | discovery: found 2 peer(s), waiting for 1 more")
    c.start_member(2)


def refused_when_full(c: DiscoveryCluster, token_url: str) -> None:
    """A fourth member (default fallback: proxy) and a fifth (fallback exit) are refused."""
    i = c.add_member_slot("n4")
    c.start_member(i)
    assert wait_exit(c, i) == 1
    log = member_log(c, i)
    assert "N | etcdmain: discovery cluster full, falling back to proxy" in log
    assert "proxy mode is not supported by minietcd" in log
    assert not (c.members[i].data_dir / "member").exists()
    c.members[i].proc = None
    j = c.add_member_slot("n5")
    c.member_flags = {j: ["--discovery-fallback", "exit"]}
    c.start_member(j)
    assert wait_exit(c, j) == 1
    log = member_log(c, j)
    assert "E | etcdmain: failed to join discovery cluster (discovery: cluster is full)" in log
    assert f"I | etcdmain: discovery token {token_url} was used, but failed to bootstrap the cluster." in log
    assert not (c.members[j].data_dir / "member").exists()
    c.members[j].proc = None


@pytest.fixture
def etcd_discovery_io(tmp_path: Path) -> Iterator[str]:
    """Debian's etcd-discovery (discovery.etcd.io) in front of a real etcd with --enable-v2."""
    exe = require_binary("/usr/bin/discovery.etcd.io")
    with backend(etcd_binary(), tmp_path, "--enable-v2") as etcd:
        (port,) = free_ports(1)
        url = f"http://127.0.0.1:{port}"
        argv = [exe, "--etcd", etcd.endpoint(0), "--host", url, "--addr", f"127.0.0.1:{port}"]
        with Service(argv, tmp_path / "etcd-discovery.log") as svc:
            svc.wait_http_ok(url + "/health")
            yield url


@pytest.mark.compat
def test_seed_002_discovery_through_etcd_discovery_io(etcd_discovery_io: str, tmp_path: Path) -> None:
    token_url = new_token(etcd_discovery_io)
    c = v2_discovery_cluster(tmp_path / "new", 3, token_url)
    with c:
        start_three_in_turn(c)
        assert_one_cluster(c, token_url)
        refused_when_full(c, token_url)
        # The service holds the three registrations etcd's way: key = member ID, value = entry.
        _, _, body = http("GET", token_url)
        nodes = json.loads(body)["node"]["nodes"]
        assert sorted(n["value"] for n in nodes) == sorted(f"{m.name}={m.peer_url}" for m in c.members[:3])


def test_lab_discovery_service(tmp_path: Path) -> None:
    with backend(minietcd_binary(), tmp_path) as store:
        svc, url = lab_service(tmp_path, store.endpoints)
        with svc:
            token_url = new_token(url)
            token = token_url.rsplit("/", 1)[1]
            # etcd v2's JSON, headers and errors on the token URLs.
            status, headers, body = http("GET", token_url + "/_config/size")
            assert status == 200 and int(headers["X-Etcd-Index"]) > 0
            size = json.loads(body)["node"]
            assert (size["key"], size["value"]) == (f"/_etcd/registry/{token}/_config/size", "3")
            status, _, body = http("GET", token_url)
            assert json.loads(body)["node"]["dir"] is True and "nodes" not in json.loads(body)["node"]
            status, _, body = http("GET", url + "/" + "0" * 32 + "/_config/size")
            err = json.loads(body)
            assert status == 404 and err["errorCode"] == 100 and err["message"] == "Key not found"
            assert err["cause"] == "/_etcd/registry/" + "0" * 32
            status, _, body = http("GET", url + "/new?size=abc")
            assert status == 400 and b"invalid syntax" in body

            c = v2_discovery_cluster(tmp_path / "new", 3, token_url)
            with c:
                start_three_in_turn(c)
                assert_one_cluster(c, token_url)
                # Registering an ID again: etcd v2's "Key already exists", 412.
                mid = ids.format_id(ids.member_id([c.members[0].peer_url], token_url))
                status, _, body = http(
                    "PUT", f"{token_url}/{mid}?prevExist=false", b"value=x%3Dhttp%3A%2F%2Fh%3A1"
                )
                assert status == 412 and json.loads(body)["errorCode"] == 105
                refused_when_full(c, token_url)
                # The v3 keys behind it, on the backing cluster.
                keys = store.etcdctl_ok("get", "--prefix", "--keys-only", f"/_etcd/registry/{token}/").split()
                assert len(keys) == 4 and f"/_etcd/registry/{token}/_config/size" in keys

            # A member killed after registering, started again without a data dir: etcd's
            # "found duplicate id" and its explanation.
            token2 = new_token(url, size=2)
            d = v2_discovery_cluster(tmp_path / "dup", 2, token2)
            with d:
                d.start_member(0)
                wait_for_log(d, 0, "N | discovery: found 1 peer(s), waiting for 1 more")
                d.kill(0)
                d.start_member(0)
                assert wait_exit(d, 0) == 1
                log = member_log(d, 0)
                assert (
                    f'E | etcdmain: member "n1" has previously registered with discovery service '
                    f"token ({token2})" in log
                )
                assert "or use a new discovery token if the previous bootstrap failed." in log
                d.members[0].proc = None


@pytest.mark.compat
def test_mixed_etcd_and_minietcd_agree_through_one_token(tmp_path: Path) -> None:
    with backend(etcd_binary(), tmp_path) as store:
        svc, url = lab_service(tmp_path, store.endpoints)
        with svc:
            token_url = new_token(url)
            c = v2_discovery_cluster(tmp_path / "new", 3, token_url)
            c.binaries = {1: etcd_binary(), 2: etcd_binary()}
            with c:
                c.start_member(0)  # minietcd registers first
                wait_for_log(c, 0, "N | discovery: found 1 peer(s), waiting for 2 more")
                c.start_member(1)
                c.start_member(2)
                want = {m.name: ids.member_id([m.peer_url], token_url) for m in c.members}
                cid = ids.cluster_id(want.values())
                wait_for_log(c, 0, f"etcdserver: starting member {want['n1']:x} in cluster {cid:x}")
                for i in (1, 2):
                    wait_for_log(c, i, "N | discovery: found 3 needed peer(s)")
                    wait_for_log(
                        c, i, f"added member {want['n1']:x} [{c.members[0].peer_url}] to cluster {cid:x}"
                    )
                c.wait_healthy(120.0, indexes=[1, 2])
                listed = json.loads(c.etcdctl_ok("member", "list", "-w", "json", endpoints=c.endpoint(1)))
                assert sorted(m["ID"] for m in listed["members"]) == sorted(want.values())
                assert listed["header"]["cluster_id"] == cid
