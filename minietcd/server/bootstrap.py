"""Deciding how a member starts: restart from its data dir, bootstrap a new cluster (from a
static ``--initial-cluster``, DNS SRV records or a discovery service), or join an existing one. As in
etcd, an existing data dir wins over every ``--initial-cluster*`` and discovery flag.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from minietcd.errors import ConfigError
from minietcd.raft.rawnode import Peer
from minietcd.server.config import Config
from minietcd.server.membership import Member, encode_conf_context
from minietcd.server.urls import parse_urls_map, urls_map_string
from minietcd.storage.raft_storage import DiskStorage

log = logging.getLogger("minietcd.server")
_T = TypeVar("_T")


@dataclass(slots=True)
class Start:
    storage: DiskStorage
    member_id: int
    cluster_id: int
    peers: list[Peer]  # bootstrap peers for a brand-new cluster; empty otherwise
    initial_peer_urls: dict[int, list[str]]  # who to connect to before membership is applied
    restarted: bool


def _metadata(member_id: int, cluster_id: int) -> bytes:
    # Recorded in the WAL's first record, like etcd's WAL metadata (NodeID, ClusterID).
    return json.dumps({"member_id": member_id, "cluster_id": cluster_id}).encode()


def restart(cfg: Config) -> Start:
    storage = DiskStorage.open(cfg.data_dir, wal_path=cfg.wal_dir)
    md = json.loads(storage.metadata or b"{}")
    if "member_id" not in md:
        storage.close()
        raise ConfigError(f"data dir {cfg.data_dir} holds no minietcd member metadata")
    return Start(storage, int(md["member_id"]), int(md["cluster_id"]), [], {}, True)


def bootstrap_new(cfg: Config) -> Start:
    """A member of a new cluster: every member logs the same ADD_NODE entries at term 1."""
    cfg.verify_bootstrap()
    ids = cfg.initial_member_ids()
    urls = cfg.initial_cluster_map()
    member_id = ids[cfg.name]
    cluster_id = cfg.initial_cluster_id()
    peers = []
    for name in sorted(ids, key=lambda n: ids[n]):  # same order on every member
        # As in etcd, members start "unstarted": the name and client URLs are published later
        # by each member itself, through the log.
        member = Member(ids[name], "", [str(u) for u in urls[name]])
        peers.append(Peer(member.id, encode_conf_context(member, 0)))
    storage = DiskStorage.open(cfg.data_dir, wal_path=cfg.wal_dir, metadata=_metadata(member_id, cluster_id))
    initial = {ids[n]: [str(u) for u in urls[n]] for n in ids if ids[n] != member_id}
    return Start(storage, member_id, cluster_id, peers, initial, False)


async def join_existing(cfg: Config) -> Start:
    """A member added with `member add`, started with --initial-cluster-state existing: learn
    the cluster id and our own id from any reachable peer, then wait for the leader's log."""
    from minietcd.server.tls import ChannelOpener, peer_tls_info
    from minietcd.server.transport import fetch_cluster_members

    cfg.verify_join_existing()
    own = {str(u) for u in cfg.initial_advertise_peer_urls}
    others = [str(u) for name, us in cfg.initial_cluster_map().items() if name != cfg.name for u in us]
    if not others:
        raise ConfigError("--initial-cluster-state existing needs other members in --initial-cluster")
    # Over TLS when the peer URLs are https (with --peer-* certificates or --peer-auto-tls).
    peer_tls = peer_tls_info(cfg)
    opener = None if peer_tls.empty() else ChannelOpener(peer_tls)
    resp = await fetch_cluster_members(others, channel_factory=opener, own_peer_urls=sorted(own))
    me = next((m for m in resp.members if own & set(m.peer_urls)), None)
    if me is None:
        raise ConfigError(
            "member not found in the existing cluster: add it first with "
            "`etcdctl member add` using the same peer URLs"
        )
    storage = DiskStorage.open(cfg.data_dir, wal_path=cfg.wal_dir, metadata=_metadata(me.id, resp.cluster_id))
    initial = {m.id: list(m.peer_urls) for m in resp.members if m.id != me.id}
    return Start(storage, me.id, resp.cluster_id, [], initial, False)


async def bootstrap_discovery(cfg: Config, stop: asyncio.Event | None = None) -> Start | None:
    """A member of a new cluster whose members are found through a discovery service
    (``--discovery-endpoints`` + ``--discovery-token``, etcd 3.6's v3 discovery).

    Registers with the service and waits for the other members (see discovery.py), then
    bootstraps exactly as :func:`bootstrap_new` with the discovered member list as
    ``--initial-cluster`` and the discovery token as ``--initial-cluster-token``, so every
    member derives the same member and cluster IDs. Returns None if ``stop`` is set while
    waiting; raises DiscoveryError if this member cannot be part of the cluster.
    """
    from minietcd.server.discovery import discover

    cfg.verify_bootstrap()  # this member alone, its advertised URLs: before registering them
    member_id = cfg.member_id()
    initial_cluster = await discover(cfg, member_id, stop)
    if initial_cluster is None:
        return None
    static = dataclasses.replace(
        cfg,
        initial_cluster=initial_cluster,
        initial_cluster_token=cfg.discovery_token,
        discovery_endpoints=(),
        discovery_token="",
    )
    if static.member_id() != member_id:  # pragma: no cover - the registry holds our own entry
        raise ConfigError(
            f"discovery: member ID {static.member_id():x} derived from the discovered cluster "
            f"differs from the registered {member_id:x}"
        )
    return bootstrap_new(static)


async def _until_stopped(coro: Coroutine[Any, Any, _T], stop: asyncio.Event | None) -> _T | None:
    """``await coro``, or None (coro cancelled) if ``stop`` is set first."""
    task = asyncio.ensure_future(coro)
    stopped = asyncio.ensure_future(stop.wait()) if stop is not None else None
    try:
        waiting = {task} if stopped is None else {task, stopped}
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            log.info("discovery: stopped while waiting for the discovery service")
            return None
        return task.result()
    finally:
        for t in (task, stopped):
            if t is not None and not t.done():
                t.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await t


async def bootstrap_v2_discovery(cfg: Config, stop: asyncio.Event | None = None) -> Start | None:
    """A member of a new cluster found through a discovery URL (``--discovery``, etcd 3.4's v2
    protocol, see discovery_v2.py): register, wait for the others, then bootstrap as with
    ``--initial-cluster <discovered>`` and the discovery URL as ``--initial-cluster-token``
    (etcdserver.NewServer). None if ``stop`` is set while waiting."""
    from minietcd.server.discovery_v2 import ERR_FULL_CLUSTER, V2DiscoveryError, join_cluster
    from minietcd.server.logsetup import NOTICE

    cfg.verify_bootstrap()  # this member alone, its advertised URLs, before registering them
    own = urls_map_string({cfg.name: cfg.initial_advertise_peer_urls})
    join = join_cluster(
        cfg.discovery, cfg.discovery_proxy, cfg.member_id(), own, name=cfg.name, data_dir=cfg.data_dir
    )
    try:
        initial = await _until_stopped(join, stop)
    except V2DiscoveryError as e:
        if e.reason == ERR_FULL_CLUSTER and cfg.discovery_fallback == "proxy":
            log.log(NOTICE, "etcdmain: discovery cluster full, falling back to proxy")
            raise ConfigError(
                "proxy: etcd's v2 proxy mode is not supported by minietcd (this member found the "
                "discovery cluster full); start it with --discovery-fallback exit, or add it to the "
                "running cluster with `etcdctl member add` and --initial-cluster-state existing"
            ) from None
        raise
    if initial is None:
        return None
    urls_map = parse_urls_map(initial)
    all_urls = [str(u) for us in urls_map.values() for u in us]
    if len(set(all_urls)) != len(all_urls):
        raise ConfigError(f"discovery cluster {urls_map_string(urls_map)} has duplicate url")
    log.info("discovery: joined cluster %s", initial)
    return bootstrap_new(
        dataclasses.replace(cfg, initial_cluster=initial, initial_cluster_token=cfg.discovery, discovery="")
    )


async def resolve_srv_cluster(cfg: Config) -> Config:
    """``cfg`` with ``--discovery-srv`` turned into the ``--initial-cluster`` its SRV records
    give (see discovery_srv.py); the lookups run in a thread (dnspython's resolver blocks)."""
    from minietcd.server.discovery_srv import initial_cluster_from_srv

    initial = await asyncio.to_thread(
        initial_cluster_from_srv, cfg.name, cfg.discovery_srv, cfg.discovery_srv_name,
        list(cfg.initial_advertise_peer_urls),
    )  # fmt: skip
    return dataclasses.replace(cfg, initial_cluster=initial, discovery_srv="", discovery_srv_name="")


async def start_networked(cfg: Config, stop: asyncio.Event | None = None) -> Start | None:
    """The starts that need the network before the data dir is created: DNS discovery, a
    discovery service (v2 URL or v3 endpoints), or joining an existing cluster."""
    if cfg.discovery_srv:
        cfg = await resolve_srv_cluster(cfg)
    if cfg.initial_cluster_state == "existing":
        return await join_existing(cfg)
    if cfg.discovery:
        return await bootstrap_v2_discovery(cfg, stop)
    if cfg.discovery_endpoints:
        return await bootstrap_discovery(cfg, stop)
    return bootstrap_new(cfg)
