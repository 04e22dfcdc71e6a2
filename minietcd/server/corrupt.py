"""``--experimental-initial-corrupt-check``: before a restarted member serves anything, compare
the hash of its key space with its peers' (etcd's ``etcdserver/corrupt.go`` CheckInitialHashKV).

The member hashes its key space at its current revision (HashKV), asks every other member for
the hash at that same revision (``RaftPeer.HashKV`` on their peer URLs, as etcd asks
``/members/hashkv`` on its peer port), and refuses to start when a peer with the same compact
revision has another hash::

    I | etcdserver: 8e9e05c52164694d starting initial corruption check with timeout 7s...
    E | etcdserver: 8e9e05c52164694d's hash 1195523217 != 91bc3c398fb3c146's hash 3361331520
        (revision 5, peer revision 5, compact revision -1)
    C | etcdmain: 8e9e05c52164694d found data inconsistency with peers

A peer that cannot be asked (not running, not serving yet) is skipped with a warning, one that
has compacted past our revision or lags behind it cannot be compared (a warning each), and one
with another compact revision is not compared either: as in etcd, only a hash that differs at
the same revision *and* the same compact revision is a mismatch. Otherwise::

    I | etcdserver: 8e9e05c52164694d succeeded on initial corruption checking: no corruption

As in etcd, only a member that restarts from an existing data dir is checked (a new member has
nothing to compare), each peer URL is given the request timeout (5 s + two election timeouts)
and the check runs before this member's peer server serves, so members restarted together
cannot check each other. One difference: etcd's mismatch line names the peer as ``0`` (its
handler leaves the member id out of the header); minietcd names the peer.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc
import grpc.aio

from minietcd.api.raftpb import raft_pb2
from minietcd.api.raftpb.raft_pb2_grpc import RaftPeerStub
from minietcd.errors import CompactedRevisionError, FutureRevisionError, InconsistentDataError
from minietcd.golang import format_duration, quote, quote_list
from minietcd.mvcc import HashKVResult
from minietcd.server.ids import format_id

__all__ = ["check_initial_hash_kv", "request_timeout"]

log = logging.getLogger("minietcd.server")

OpenChannel = Callable[[str], Awaitable[Any]]


def request_timeout(election_timeout_ms: int) -> float:
    """etcd's ``ServerConfig.ReqTimeout``: 5 s plus two election timeouts, in seconds."""
    return 5.0 + 2 * election_timeout_ms / 1000


async def check_initial_hash_kv(
    *,
    member_id: int,
    cluster_id: int,
    hash_kv: Callable[[int], Awaitable[HashKVResult]],
    peers: Sequence[tuple[int, Sequence[str]]],
    open_channel: OpenChannel,
    timeout: float,
) -> None:
    """Compare this member's HashKV with each peer's (``peers``: (member id, peer URLs)) and
    raise :class:`InconsistentDataError` on a mismatch; see the module docstring."""
    me = format_id(member_id)
    log.info(
        "etcdserver: %s starting initial corruption check with timeout %s...", me, format_duration(timeout)
    )
    local = await hash_kv(0)
    rev = local.revision
    mismatch = 0
    for peer_id, urls in peers:
        resp = await _ask_peer(me, member_id, cluster_id, peer_id, urls, rev, open_channel, timeout)
        if resp is None:
            continue
        if resp.problem == raft_pb2.PeerHashKVFutureRev:
            log.warning(
                "etcdserver: %s cannot check the hash of peer(%s) at revision %d: peer is lagging behind(%s)",
                me, quote_list(urls), rev, quote(FutureRevisionError.etcd_message),
            )  # fmt: skip
        elif resp.problem == raft_pb2.PeerHashKVCompacted:
            log.warning(
                "etcdserver: %s cannot check the hash of peer(%s) at revision %d: local node is lagging "
                "behind(%s)",
                me, quote_list(urls), rev, quote(CompactedRevisionError.etcd_message),
            )  # fmt: skip
        elif resp.hash != local.hash:
            if resp.compact_revision == local.compact_revision:
                log.error(
                    "etcdserver: %s's hash %d != %s's hash %d (revision %d, peer revision %d, "
                    "compact revision %d)",
                    me, local.hash, format_id(peer_id), resp.hash, rev, resp.revision, local.compact_revision,
                )  # fmt: skip
                mismatch += 1
            else:
                log.warning(
                    "etcdserver: %s cannot check hash of peer(%s): peer has a different compact revision %d "
                    "(revision:%d)",
                    me, format_id(peer_id), resp.compact_revision, rev,
                )  # fmt: skip
    if mismatch:
        raise InconsistentDataError(f"{me} found data inconsistency with peers")
    log.info("etcdserver: %s succeeded on initial corruption checking: no corruption", me)


async def _ask_peer(
    me: str,
    member_id: int,
    cluster_id: int,
    peer_id: int,
    urls: Sequence[str],
    rev: int,
    open_channel: OpenChannel,
    timeout: float,
) -> raft_pb2.PeerHashKVResponse | None:
    """The first answer from one of the peer's URLs; None (warned per URL) if none answers."""
    request = raft_pb2.PeerHashKVRequest(
        cluster_id=cluster_id, from_member_id=member_id, to_member_id=peer_id, revision=rev
    )
    for url in urls:
        try:
            channel = await open_channel(url)
        except Exception as e:  # auto TLS or the identity check could not connect
            _warn_failed(me, url, rev, str(e) or repr(e))
            continue
        try:
            stub: Any = RaftPeerStub(channel)
            response: raft_pb2.PeerHashKVResponse = await stub.HashKV(request, timeout=timeout)
            return response
        except grpc.aio.AioRpcError as e:
            _warn_failed(me, url, rev, f"{e.code().name}: {e.details()}")
        finally:
            await channel.close(grace=None)
    return None


def _warn_failed(me: str, url: str, rev: int, why: str) -> None:
    log.warning(
        "etcdserver: %s hash-kv error %s on peer %s with revision %d", me, quote(why), quote(url), rev
    )
