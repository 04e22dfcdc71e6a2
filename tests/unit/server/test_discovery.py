"""v3 discovery: the registry layout and parsing, the discovery flags, and the protocol against
an in-process discovery service (minietcd's own KV applier and Watch servicer in a grpc.aio
server on 127.0.0.1, no Raft)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest

from minietcd.api.etcdserverpb import rpc_pb2
from minietcd.api.etcdserverpb import rpc_pb2_grpc as _rpc_grpc_untyped
from minietcd.errors import ConfigError
from minietcd.lease.lessor import Lessor
from minietcd.mvcc import KVStore, WatchHub
from minietcd.server import ids
from minietcd.server.api.admission import Admission
from minietcd.server.api.watch import Watch
from minietcd.server.apply_kv import KVApplier
from minietcd.server.bootstrap import bootstrap_discovery
from minietcd.server.config import FLAGS_BY_NAME, IMPLEMENTED_FLAGS, Config, help_text, parse_config
from minietcd.server.discovery import (
    ERR_BAD_SIZE_KEY,
    ERR_FULL_CLUSTER,
    ERR_SIZE_NOT_FOUND,
    DiscoveryError,
    Registry,
    discover,
    member_key,
    members_prefix,
    parse_endpoint,
    parse_size,
    prefix_range_end,
    size_key,
)
from minietcd.server.v3rpc.watch import WatchService

rpc_pb2_grpc: Any = _rpc_grpc_untyped
TIMEOUT = 30.0


def parse(argv: Sequence[str], env: dict[str, str] | None = None) -> Config:
    return parse_config(list(argv), env or {}, default_host=lambda: None)


# --- layout and parsing --------------------------------------------------------------------------


def test_registry_keys() -> None:
    assert size_key("tok") == "/_etcd/registry/tok/_config/size"
    assert members_prefix("tok") == "/_etcd/registry/tok/members"
    assert member_key("tok", 0xAC091F8D206D22F6) == "/_etcd/registry/tok/members/ac091f8d206d22f6"
    assert member_key("tok", 0x1F) == "/_etcd/registry/tok/members/1f"  # no padding, as etcd
    assert size_key("a/../b") == "/_etcd/registry/b/_config/size"  # Go's path.Join cleans
    assert prefix_range_end(b"/a/") == b"/a0"
    assert prefix_range_end(b"a\xff") == b"b"
    assert prefix_range_end(b"\xff\xff") == b"\0"


@pytest.mark.parametrize(("text", "size"), [(b"3", 3), (b"1", 1), (b"+5", 5), (b"007", 7)])
def test_parse_size(text: bytes, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize(
    "text", [b"", b"0", b"-1", b"abc", b"3 ", b" 3", b"3\n", b"1.5", b"\xff", b"99999999999999999999"]
)
def test_parse_size_refuses(text: bytes) -> None:
    with pytest.raises(DiscoveryError, match=ERR_BAD_SIZE_KEY) as info:
        parse_size(text)
    assert str(info.value).startswith("failed to join discovery cluster (discovery: size key is bad")


def _reg(*entries: tuple[str, str, int]) -> Registry:
    reg, warnings = Registry.from_kvs(
        "tok", [(f"/_etcd/registry/tok/members/{k}".encode(), v.encode(), r) for k, v, r in entries]
    )
    assert warnings == []
    return reg


def test_registry_orders_by_create_revision_and_cuts_at_size() -> None:
    reg = _reg(
        ("c", "n3=http://127.0.0.1:3", 9),
        ("a", "n1=http://127.0.0.1:1", 5),
        ("b", "n2=http://127.0.0.1:2", 7),
    )
    assert [m.member_id for m in reg.members] == ["a", "b", "c"]
    assert reg.initial_cluster(2) == "n1=http://127.0.0.1:1,n2=http://127.0.0.1:2"
    assert reg.initial_cluster(5) == "n1=http://127.0.0.1:1,n2=http://127.0.0.1:2,n3=http://127.0.0.1:3"
    assert {n: [str(u) for u in us] for n, us in reg.urls_map(3).items()} == {
        "n1": ["http://127.0.0.1:1"],
        "n2": ["http://127.0.0.1:2"],
        "n3": ["http://127.0.0.1:3"],
    }
    assert reg.position("/_etcd/registry/tok/members/b") == 1
    assert reg.position("/_etcd/registry/tok/members/x") is None


def test_registry_full() -> None:
    reg = _reg(("a", "n1=http://h:1", 5), ("b", "n2=http://h:2", 6), ("c", "n3=http://h:3", 7))
    key = "/_etcd/registry/tok/members/"
    assert not reg.is_full_for(key + "a", 3)
    assert not reg.is_full_for(key + "c", 3)
    assert reg.is_full_for(key + "c", 2)  # registered third of two
    assert reg.is_full_for(key + "x", 3)  # not registered, three before it
    assert not reg.is_full_for(key + "x", 4)
    assert reg.is_full_for(key + "x", 1)
    assert not _reg().is_full_for(key + "x", 1)


def test_registry_several_peer_urls_per_member() -> None:
    reg = _reg(("a", "n1=http://h:1,n1=http://h:11", 5), ("b", "n2=http://h:2", 6))
    assert {n: len(us) for n, us in reg.urls_map(2).items()} == {"n1": 2, "n2": 1}


def test_registry_skips_bad_entries_with_etcds_reasons() -> None:
    reg, warnings = Registry.from_kvs(
        "tok",
        [
            (b"/_etcd/registry/tok/members/a", b" n1=http://h:1 \n", 5),  # trimmed, as etcd does
            (b"/_etcd/registry/tok/members/b", b"garbage", 6),
            (b"/_etcd/registry/other/members/c", b"n3=http://h:3", 7),
            (b"/_etcd/registry/tok/members/a", b"n1=http://h:1", 8),
        ],
    )
    assert [(m.member_id, m.value) for m in reg.members] == [("a", "n1=http://h:1")]
    assert [w.split(" (key")[0] for w in warnings] == [
        "discovery: invalid peer info returned from discovery service",
        "discovery: invalid peer registry key",
        "discovery: found duplicate peer from discovery service",
    ]


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        (
            [("a", "n1=http://h:1", 1), ("b", "n1=http://h:2", 2)],
            "member name 'n1' is registered by two members",
        ),
        ([("a", "n1=http://h:1", 1), ("b", "n2=http://h:1", 2)], "has duplicate url"),
        ([("a", "n1=h:1", 1)], "discovery: invalid peer URL"),
        ([("a", "n1=http://h:1,n2=http://h:2", 1)], "is not one member's entry"),
    ],
)
def test_registry_refuses_a_member_list_that_cannot_bootstrap(
    entries: list[tuple[str, str, int]], message: str
) -> None:
    with pytest.raises(DiscoveryError, match=message):
        _reg(*entries).urls_map(len(entries))


def test_parse_endpoint() -> None:
    assert parse_endpoint("http://127.0.0.1:2379") == ("127.0.0.1:2379", False)
    assert parse_endpoint("https://etcd.example:2379/") == ("etcd.example:2379", True)
    assert parse_endpoint("127.0.0.1:2379") == ("127.0.0.1:2379", False)
    for bad in ("unix://x", "http://", "http://h:1/v3", "localhost"):
        with pytest.raises(ConfigError, match="--discovery-endpoints"):
            parse_endpoint(bad)


# --- flags ---------------------------------------------------------------------------------------

_MEMBER = ["--name", "n1", "--initial-advertise-peer-urls", "http://127.0.0.1:2380"]


def test_discovery_flags() -> None:
    cfg = parse(
        [*_MEMBER, "--discovery-endpoints", "http://127.0.0.1:1,http://127.0.0.1:2", "--discovery-token", "t"]
    )
    assert cfg.discovery_endpoints == ("http://127.0.0.1:1", "http://127.0.0.1:2")
    assert cfg.discovery_token == "t"
    assert (cfg.discovery_dial_timeout, cfg.discovery_request_timeout) == (
        timedelta(seconds=2),
        timedelta(seconds=5),
    )
    assert cfg.initial_cluster == ""  # the default --initial-cluster is dropped, as with --discovery
    assert cfg.unimplemented_in_use() == []
    assert cfg.peer_urls_map_and_token()[1] == "t"
    assert cfg.member_id() == ids.member_id(["http://127.0.0.1:2380"], "t")
    cfg.verify_bootstrap()
    timed = parse(
        [*_MEMBER, "--discovery-endpoints", "h:1", "--discovery-token", "t",
         "--discovery-dial-timeout", "500ms", "--discovery-request-timeout", "1m"]
    )  # fmt: skip
    assert (timed.discovery_dial_timeout, timed.discovery_request_timeout) == (
        timedelta(milliseconds=500),
        timedelta(minutes=1),
    )
    env = parse(_MEMBER, {"ETCD_DISCOVERY_ENDPOINTS": "http://127.0.0.1:1", "ETCD_DISCOVERY_TOKEN": "e"})
    assert (env.discovery_endpoints, env.discovery_token) == (("http://127.0.0.1:1",), "e")


def test_discovery_flags_are_not_in_etcd_34_help() -> None:
    names = {"discovery-endpoints", "discovery-token", "discovery-dial-timeout", "discovery-request-timeout"}
    assert names <= IMPLEMENTED_FLAGS
    assert all(FLAGS_BY_NAME[n].section is None and "etcd 3.6" in FLAGS_BY_NAME[n].help[0] for n in names)
    assert "discovery-endpoints" not in help_text()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--discovery-token", "t"], "both --discovery-token and --discovery-endpoints must be set"),
        (["--discovery-endpoints", "h:1"], "both --discovery-token and --discovery-endpoints must be set"),
        (["--discovery-endpoints", "h:1,", "--discovery-token", "t"], "must not contain empty endpoints"),
        (["--discovery-endpoints", "", "--discovery-token", "t"], "must not contain empty endpoints"),
        (
            [
                "--discovery-endpoints",
                "h:1",
                "--discovery-token",
                "t",
                "--initial-cluster",
                "n1=http://127.0.0.1:2380",
            ],
            "multiple discovery or bootstrap flags are set",
        ),
        (
            ["--discovery-endpoints", "h:1", "--discovery-token", "t", "--discovery", "http://d:1/x"],
            "multiple discovery or bootstrap flags are set",
        ),
        (
            ["--discovery-endpoints", "h:1", "--discovery-token", "t", "--discovery-proxy", "http://p:1"],
            "both v2 discovery settings",
        ),
    ],
)
def test_discovery_flag_errors(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse([*_MEMBER, *argv])


def test_discovery_cannot_join_an_existing_cluster() -> None:
    cfg = parse(
        [
            *_MEMBER,
            "--discovery-endpoints",
            "h:1",
            "--discovery-token",
            "t",
            "--initial-cluster-state",
            "existing",
        ]
    )
    with pytest.raises(
        ConfigError, match="discovery URL should not be set when joining existing initial cluster"
    ):
        cfg.verify_join_existing()


# --- the protocol against an in-process discovery service ---------------------------------------


class _KV(rpc_pb2_grpc.KVServicer):  # type: ignore[misc]  # grpc has no type hints: the servicer base is Any
    def __init__(self, applier: KVApplier) -> None:
        self.applier = applier

    async def Range(self, request: rpc_pb2.RangeRequest, context: Any) -> rpc_pb2.RangeResponse:
        return self.applier.range(request)

    async def Put(self, request: rpc_pb2.PutRequest, context: Any) -> rpc_pb2.PutResponse:
        return self.applier.put(request)

    async def Txn(self, request: rpc_pb2.TxnRequest, context: Any) -> rpc_pb2.TxnResponse:
        return self.applier.txn(request)


@dataclass
class Service:
    kv: KVApplier
    endpoint: str

    def put(self, key: str, value: str) -> None:
        self.kv.put(rpc_pb2.PutRequest(key=key.encode(), value=value.encode()))

    def registry(self, token: str = "tok") -> dict[str, str]:
        prefix = (members_prefix(token) + "/").encode()
        resp = self.kv.range(rpc_pb2.RangeRequest(key=prefix, range_end=prefix_range_end(prefix)))
        return {kv.key.decode(): kv.value.decode() for kv in resp.kvs}


class _Voter:
    """The member the Watch API's admission asks about: a voter that knows a leader."""

    leader = 1

    def is_learner(self) -> bool:
        return False


@pytest.fixture
async def service() -> AsyncIterator[Service]:
    kv = KVStore()
    hub = WatchHub(kv)
    applier = KVApplier(kv, Lessor(time.monotonic, 5))
    server = grpc.aio.server()
    rpc_pb2_grpc.add_KVServicer_to_server(_KV(applier), server)
    watch = Watch(hub, lambda rev: rpc_pb2.ResponseHeader(revision=rev), Admission(_Voter()))
    rpc_pb2_grpc.add_WatchServicer_to_server(WatchService(watch), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield Service(applier, f"http://127.0.0.1:{port}")
    finally:
        await server.stop(None)


def member_cfg(
    name: str, port: int, endpoints: Sequence[str], token: str = "tok", data_dir: str = ""
) -> Config:
    return parse(
        [
            "--name", name,
            "--data-dir", data_dir or f"/nonexistent/{name}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{port}",
            "--discovery-endpoints", ",".join(endpoints),
            "--discovery-token", token,
            "--discovery-dial-timeout", "1s",
        ]
    )  # fmt: skip


def mid(port: int, token: str = "tok") -> int:
    return ids.member_id([f"http://127.0.0.1:{port}"], token)


async def test_three_members_find_each_other(service: Service) -> None:
    service.put(size_key("tok"), "3")
    members = [("n1", 1001), ("n2", 1002), ("n3", 1003)]
    results = await asyncio.wait_for(
        asyncio.gather(*(discover(member_cfg(n, p, [service.endpoint]), mid(p)) for n, p in members)),
        TIMEOUT,
    )
    assert len(set(results)) == 1
    assert sorted((results[0] or "").split(",")) == [f"{n}=http://127.0.0.1:{p}" for n, p in members]
    assert service.registry() == {member_key("tok", mid(p)): f"{n}=http://127.0.0.1:{p}" for n, p in members}

    # A fourth is refused before it registers anything.
    with pytest.raises(DiscoveryError, match=ERR_FULL_CLUSTER) as info:
        await asyncio.wait_for(discover(member_cfg("n4", 1004, [service.endpoint]), mid(1004)), TIMEOUT)
    assert str(info.value) == "failed to join discovery cluster (discovery: cluster is full)"
    assert len(service.registry()) == 3


async def test_first_registered_win_when_more_register(service: Service) -> None:
    # Two registered beyond the size: the first two by create revision form the cluster, a
    # member registered after them (here: by hand, as if it had raced) is refused.
    service.put(size_key("tok"), "2")
    service.put(member_key("tok", mid(1002)), "n2=http://127.0.0.1:1002")
    service.put(member_key("tok", mid(1003)), "n3=http://127.0.0.1:1003")
    with pytest.raises(DiscoveryError, match=ERR_FULL_CLUSTER):
        await asyncio.wait_for(discover(member_cfg("n1", 1001, [service.endpoint]), mid(1001)), TIMEOUT)
    got = await asyncio.wait_for(discover(member_cfg("n3", 1003, [service.endpoint]), mid(1003)), TIMEOUT)
    assert got == "n2=http://127.0.0.1:1002,n3=http://127.0.0.1:1003"


async def test_waits_on_the_watch_for_late_members(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="minietcd.server.discovery")
    service.put(size_key("tok"), "2")
    first = asyncio.ensure_future(discover(member_cfg("n1", 1001, [service.endpoint]), mid(1001)))
    deadline = time.monotonic() + TIMEOUT
    while "discovery: found 1 peer(s), waiting for 1 more" not in caplog.text:
        assert time.monotonic() < deadline and not first.done(), caplog.text
        await asyncio.sleep(0.01)
    assert f"discovery: found self {mid(1001):x} in the cluster" in caplog.text
    # A registration by another member wakes the watch long before the periodic re-read.
    service.put(member_key("tok", mid(1002)), "n2=http://127.0.0.1:1002")
    assert await asyncio.wait_for(first, 5.0) == "n1=http://127.0.0.1:1001,n2=http://127.0.0.1:1002"
    assert f"discovery: found peer {mid(1002):x} in the cluster" in caplog.text
    assert "discovery: found 2 needed peer(s)" in caplog.text


async def test_stop_while_waiting(service: Service) -> None:
    service.put(size_key("tok"), "3")
    stop = asyncio.Event()
    task = asyncio.ensure_future(discover(member_cfg("n1", 1001, [service.endpoint]), mid(1001), stop))
    deadline = time.monotonic() + TIMEOUT
    while not service.registry():
        assert time.monotonic() < deadline and not task.done()
        await asyncio.sleep(0.01)
    stop.set()
    assert await asyncio.wait_for(task, TIMEOUT) is None
    # Registered; starting again keeps the registration (same key, same value).
    second = asyncio.ensure_future(discover(member_cfg("n1", 1001, [service.endpoint]), mid(1001)))
    service.put(member_key("tok", mid(1002)), "n2=http://127.0.0.1:1002")
    service.put(member_key("tok", mid(1003)), "n3=http://127.0.0.1:1003")
    assert (await asyncio.wait_for(second, TIMEOUT) or "").startswith("n1=http://127.0.0.1:1001,")


@pytest.mark.parametrize(
    ("size", "message"),
    [(None, ERR_SIZE_NOT_FOUND), ("zero", ERR_BAD_SIZE_KEY), ("0", ERR_BAD_SIZE_KEY)],
)
async def test_size_key_missing_or_bad(service: Service, size: str | None, message: str) -> None:
    if size is not None:
        service.put(size_key("tok"), size)
    with pytest.raises(DiscoveryError, match=message):
        await asyncio.wait_for(discover(member_cfg("n1", 1001, [service.endpoint]), mid(1001)), TIMEOUT)
    assert service.registry() == {}


async def test_conflicting_registration_is_refused(service: Service) -> None:
    service.put(size_key("tok"), "3")
    service.put(member_key("tok", mid(1001)), "other=http://127.0.0.1:1001")
    with pytest.raises(
        DiscoveryError, match=re.escape("is already registered as 'other=http://127.0.0.1:1001'")
    ):
        await asyncio.wait_for(discover(member_cfg("n1", 1001, [service.endpoint]), mid(1001)), TIMEOUT)


async def test_fails_over_to_the_next_endpoint(service: Service) -> None:
    from tests.cluster.harness import free_ports

    (dead,) = free_ports(1)  # nothing listens there
    service.put(size_key("tok"), "1")
    got = await asyncio.wait_for(
        discover(member_cfg("n1", 1001, [f"http://127.0.0.1:{dead}", service.endpoint]), mid(1001)), TIMEOUT
    )
    assert got == "n1=http://127.0.0.1:1001"


async def test_bootstrap_discovery_derives_the_static_ids(service: Service, tmp_path: Path) -> None:
    service.put(size_key("tok"), "2")
    service.put(member_key("tok", mid(1002)), "n2=http://127.0.0.1:1002")
    start = await asyncio.wait_for(
        bootstrap_discovery(member_cfg("n1", 1001, [service.endpoint], data_dir=str(tmp_path / "n1"))),
        TIMEOUT,
    )
    assert start is not None
    try:
        assert start.member_id == mid(1001)
        assert start.cluster_id == ids.cluster_id([mid(1001), mid(1002)])
        assert sorted(p.id for p in start.peers) == sorted([mid(1001), mid(1002)])
        assert start.initial_peer_urls == {mid(1002): ["http://127.0.0.1:1002"]}
    finally:
        start.storage.close()
