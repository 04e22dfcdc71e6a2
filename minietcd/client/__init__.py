"""minietcd's asyncio client for etcd v3 (works against real etcd 3.4 and minietcd).

Public surface (everything else in this package is private)::

    Client                       connection life cycle + every call below
      get put delete txn compact                       keys and values (kv.py)
      watch                                            -> Watch, async iterator (watch.py)
      grant revoke time_to_live leases keep_alive keep_alive_once     leases (lease.py)
      member_list member_add member_remove member_update member_promote  (cluster.py)
      status hash_kv alarm_list alarm_activate alarm_disarm defragment
      snapshot snapshot_stream move_leader find_leader              (maintenance.py)
      login auth_enable auth_disable authenticate user_* role_*       users, roles (auth.py)
    Compare Op Txn SortOrder SortTarget WatchFilter    building requests
    Session Lock Election                              concurrency recipes (concurrency.py)
    results: GetResponse PutResponse ... KeyValue Event Member ...
    errors:  ClientError OutcomeUnknownError ... (minietcd's one exception tree)

Example::

    import asyncio
    from minietcd.client import Client, Compare, Op

    async def main() -> None:
        async with Client(["127.0.0.1:2379"]) as c:
            await c.put("k", "v1")
            r = await c.txn().if_(Compare.value("k", "=", "v1")).then(Op.put("k", "v2")).commit()
            assert r.succeeded
            async with c.watch("k", start_revision=r.header.revision) as w:
                async for batch in w:
                    print([(e.type.name, e.kv.value) for e in batch.events])
                    break

    asyncio.run(main())

See ``docs/client.md`` for the guide: failover, which calls are retried, watch resumption,
errors.
"""

from __future__ import annotations

from minietcd.client.auth import AuthResponse, Permission, PermissionType, RoleGetResponse
from minietcd.client.client import Client
from minietcd.client.concurrency import Election, Lock, Session
from minietcd.client.errors import (
    ClientClosedError,
    ClientError,
    CompactedRevisionError,
    DeadlineExceededError,
    ElectionNoLeaderError,
    ElectionNotLeaderError,
    EmptyKeyError,
    EndpointsUnavailableError,
    EtcdServerError,
    FutureRevisionError,
    KeyNotFoundError,
    LeaseExistsError,
    LeaseNotFoundError,
    LeaseProvidedError,
    LeaseTTLTooLargeError,
    LockLostError,
    OutcomeUnknownError,
    SessionExpiredError,
    ValueProvidedError,
    WatchCanceledError,
    WatchCompactedError,
)
from minietcd.client.kv import Compare, Op, SortOrder, SortTarget, Txn, prefix_range_end
from minietcd.client.lease import KeepAlive
from minietcd.client.results import (
    AlarmMember,
    AlarmResponse,
    AlarmType,
    CompactResponse,
    DefragmentResponse,
    DeleteResponse,
    Event,
    EventType,
    GetResponse,
    HashKVResponse,
    KeyValue,
    LeaseGrantResponse,
    LeaseKeepAliveResponse,
    LeaseRevokeResponse,
    LeasesResponse,
    LeaseTimeToLiveResponse,
    Member,
    MemberAddResponse,
    MemberListResponse,
    MoveLeaderResponse,
    PutResponse,
    ResponseHeader,
    StatusResponse,
    TxnResponse,
    WatchResponse,
)
from minietcd.client.watch import Watch, WatchFilter

__all__ = [
    "AlarmMember",
    "AlarmResponse",
    "AlarmType",
    "AuthResponse",
    "Client",
    "ClientClosedError",
    "ClientError",
    "CompactResponse",
    "CompactedRevisionError",
    "Compare",
    "DeadlineExceededError",
    "DefragmentResponse",
    "DeleteResponse",
    "Election",
    "ElectionNoLeaderError",
    "ElectionNotLeaderError",
    "EmptyKeyError",
    "EndpointsUnavailableError",
    "EtcdServerError",
    "Event",
    "EventType",
    "FutureRevisionError",
    "GetResponse",
    "HashKVResponse",
    "KeepAlive",
    "KeyNotFoundError",
    "KeyValue",
    "LeaseExistsError",
    "LeaseGrantResponse",
    "LeaseKeepAliveResponse",
    "LeaseNotFoundError",
    "LeaseProvidedError",
    "LeaseRevokeResponse",
    "LeaseTTLTooLargeError",
    "LeaseTimeToLiveResponse",
    "LeasesResponse",
    "Lock",
    "LockLostError",
    "Member",
    "MemberAddResponse",
    "MemberListResponse",
    "MoveLeaderResponse",
    "Op",
    "OutcomeUnknownError",
    "Permission",
    "PermissionType",
    "PutResponse",
    "ResponseHeader",
    "RoleGetResponse",
    "Session",
    "SessionExpiredError",
    "SortOrder",
    "SortTarget",
    "StatusResponse",
    "Txn",
    "TxnResponse",
    "ValueProvidedError",
    "Watch",
    "WatchCanceledError",
    "WatchCompactedError",
    "WatchFilter",
    "WatchResponse",
    "prefix_range_end",
]
