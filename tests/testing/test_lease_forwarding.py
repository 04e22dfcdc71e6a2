"""A lease renewal sent to a follower while the leader dies waits for the next leader, as etcd's
LeaseRenew does (etcdserver/v3_server.go), instead of failing at once: the controller of
examples/ lost its leadership to this. Written with the plugin's own fixtures (it is loaded
in this suite too)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest

from minietcd.api.etcdserverpb import rpc_pb2
from minietcd.api.etcdserverpb import rpc_pb2_grpc as _rpc_grpc_untyped
from minietcd.testing import MinietcdCluster

rpc_pb2_grpc: Any = _rpc_grpc_untyped
pytestmark = [pytest.mark.cluster]


async def test_a_renewal_through_a_follower_outlives_the_leader(
    minietcd_factory: Callable[..., MinietcdCluster],
) -> None:
    cluster = minietcd_factory(3)
    leader = cluster.wait_for_leader()
    follower = next(n for n in cluster.names if n != leader)
    target = cluster.endpoint(follower).split("//")[1]
    async with grpc.aio.insecure_channel(target) as channel:
        leases = rpc_pb2_grpc.LeaseStub(channel)
        lease = (await leases.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=5), timeout=5)).ID

        async def once() -> AsyncIterator[rpc_pb2.LeaseKeepAliveRequest]:
            yield rpc_pb2.LeaseKeepAliveRequest(ID=lease)

        async def renew() -> int:
            async for resp in leases.LeaseKeepAlive(once(), timeout=10):
                return int(resp.TTL)
            raise AssertionError("no answer")

        assert await renew() == 5
        cluster.kill(leader)
        # Sent at once, on the same member (no client-side retry): it still believes in the dead
        # leader, then sees an election, and answers once the new leader renewed the lease.
        assert await renew() == 5
    assert await cluster.wait_for_leader_async() != leader
