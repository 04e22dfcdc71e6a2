"""Leases (etcd's lessor): TTL'd handles that keys attach to and die with.

Public surface: :class:`Lessor` and its value types. The domain layer only: no protobuf, no
asyncio, no wall clock (time comes from an injected monotonic clock). See ``lessor`` for the
split between applied (replicated) state and the leader's volatile expiry state.
"""

from __future__ import annotations

from minietcd.lease.lessor import (
    EXPIRED_LEASE_RETRY_INTERVAL,
    FOREVER,
    LEASE_REVOKE_RATE,
    MAX_LEASE_TTL,
    NO_LEASE,
    Lease,
    Lessor,
    TimeToLive,
    min_lease_ttl,
)

__all__ = [
    "EXPIRED_LEASE_RETRY_INTERVAL",
    "FOREVER",
    "LEASE_REVOKE_RATE",
    "MAX_LEASE_TTL",
    "NO_LEASE",
    "Lease",
    "Lessor",
    "TimeToLive",
    "min_lease_ttl",
]
