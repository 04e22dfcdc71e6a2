"""Cluster membership: list, add (as voter or learner), remove, update peer URLs, promote.

Example::

    resp = await client.member_list()
    for m in resp.members:
        print(f"{m.id:x}", m.name or "(unstarted)", m.peer_urls, m.client_urls, m.is_learner)

    added = await client.member_add(["http://10.0.0.4:2380"], is_learner=True)
    ...  # start the new member with --initial-cluster-state existing, let it catch up
    await client.member_promote(added.member.id)

Membership changes are writes: they are never retried once sent. ``member_list`` is a read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from minietcd.api.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from minietcd.client.results import MemberAddResponse, MemberListResponse

if TYPE_CHECKING:
    from minietcd.client._connection import Connection

__all__ = ["ClusterMixin"]


class ClusterMixin:
    """Membership calls of :class:`~minietcd.client.Client`."""

    _conn: Connection

    async def member_list(self, *, timeout: float | None = None) -> MemberListResponse:
        """All members, voters and learners, with their IDs and URLs."""
        resp = await self._conn.unary(
            rpc_pb2_grpc.ClusterStub,
            "MemberList",
            rpc_pb2.MemberListRequest(),
            idempotent=True,
            timeout=timeout,
        )
        return MemberListResponse.from_pb(resp)

    async def member_add(
        self, peer_urls: Sequence[str], *, is_learner: bool = False, timeout: float | None = None
    ) -> MemberAddResponse:
        """Add a member that will listen on ``peer_urls``; ``member.id`` is its new ID."""
        req = rpc_pb2.MemberAddRequest(peerURLs=list(peer_urls), isLearner=is_learner)
        resp = await self._conn.unary(
            rpc_pb2_grpc.ClusterStub, "MemberAdd", req, idempotent=False, timeout=timeout
        )
        return MemberAddResponse.from_pb(resp)

    async def member_remove(self, member_id: int, *, timeout: float | None = None) -> MemberListResponse:
        """Remove a member; returns the members left."""
        req = rpc_pb2.MemberRemoveRequest(ID=member_id)
        resp = await self._conn.unary(
            rpc_pb2_grpc.ClusterStub, "MemberRemove", req, idempotent=False, timeout=timeout
        )
        return MemberListResponse.from_pb(resp)

    async def member_update(
        self, member_id: int, peer_urls: Sequence[str], *, timeout: float | None = None
    ) -> MemberListResponse:
        """Change a member's peer URLs."""
        req = rpc_pb2.MemberUpdateRequest(ID=member_id, peerURLs=list(peer_urls))
        resp = await self._conn.unary(
            rpc_pb2_grpc.ClusterStub, "MemberUpdate", req, idempotent=False, timeout=timeout
        )
        return MemberListResponse.from_pb(resp)

    async def member_promote(self, member_id: int, *, timeout: float | None = None) -> MemberListResponse:
        """Make a learner a voting member (it must have caught up with the leader)."""
        req = rpc_pb2.MemberPromoteRequest(ID=member_id)
        resp = await self._conn.unary(
            rpc_pb2_grpc.ClusterStub, "MemberPromote", req, idempotent=False, timeout=timeout
        )
        return MemberListResponse.from_pb(resp)
