"""Typed results of client calls.

Every response is a frozen dataclass built from the server's protobuf message. Keys and values
are ``bytes`` (etcd keys are byte strings); :attr:`KeyValue.key_str` / :attr:`KeyValue.value_str`
decode them as UTF-8 for convenience. The protobuf message a result was built from is kept in
``raw`` (excluded from ``==`` and ``repr``) for callers that need the exact wire form, such as
``minietcdctl``'s ``-w json`` output.

Example::

    resp = await client.get("config/", prefix=True)
    for kv in resp.kvs:
        print(kv.key_str, kv.value_str, kv.mod_revision)
    print("read at revision", resp.header.revision)
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from minietcd.api.etcdserverpb import rpc_pb2
from minietcd.api.mvccpb import kv_pb2

__all__ = [
    "AlarmMember",
    "AlarmResponse",
    "AlarmType",
    "CompactResponse",
    "DefragmentResponse",
    "DeleteResponse",
    "Event",
    "EventType",
    "GetResponse",
    "HashKVResponse",
    "KeyValue",
    "LeaseGrantResponse",
    "LeaseKeepAliveResponse",
    "LeaseRevokeResponse",
    "LeaseTimeToLiveResponse",
    "LeasesResponse",
    "Member",
    "MemberAddResponse",
    "MemberListResponse",
    "MoveLeaderResponse",
    "PutResponse",
    "ResponseHeader",
    "StatusResponse",
    "TxnResponse",
    "WatchResponse",
]


@dataclass(frozen=True)
class ResponseHeader:
    """Sent with every response: which cluster and member answered, the store revision when
    the request was served, and the Raft term."""

    cluster_id: int = 0
    member_id: int = 0
    revision: int = 0
    raft_term: int = 0

    @classmethod
    def from_pb(cls, h: rpc_pb2.ResponseHeader) -> ResponseHeader:
        return cls(h.cluster_id, h.member_id, h.revision, h.raft_term)


@dataclass(frozen=True)
class KeyValue:
    """One key at one revision. ``version`` counts puts since the key was (re)created;
    ``lease`` is 0 when no lease is attached."""

    key: bytes
    value: bytes = b""
    create_revision: int = 0
    mod_revision: int = 0
    version: int = 0
    lease: int = 0

    @property
    def key_str(self) -> str:
        return self.key.decode("utf-8", "replace")

    @property
    def value_str(self) -> str:
        return self.value.decode("utf-8", "replace")

    @classmethod
    def from_pb(cls, kv: kv_pb2.KeyValue) -> KeyValue:
        return cls(kv.key, kv.value, kv.create_revision, kv.mod_revision, kv.version, kv.lease)


@dataclass(frozen=True)
class GetResponse:
    """Result of :meth:`Client.get` (etcd's RangeResponse). ``count`` is the number of keys in
    the range (even with ``limit``); ``more`` tells whether ``limit`` cut the result short."""

    header: ResponseHeader
    kvs: list[KeyValue]
    more: bool = False
    count: int = 0
    raw: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def from_pb(cls, r: rpc_pb2.RangeResponse) -> GetResponse:
        return cls(
            ResponseHeader.from_pb(r.header), [KeyValue.from_pb(kv) for kv in r.kvs], r.more, r.count, r
        )


@dataclass(frozen=True)
class PutResponse:
    """Result of :meth:`Client.put`; ``prev_kv`` is set when asked for with ``prev_kv=True`` and
    the key existed."""

    header: ResponseHeader
    prev_kv: KeyValue | None = None
    raw: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def from_pb(cls, r: rpc_pb2.PutResponse) -> PutResponse:
        prev = KeyValue.from_pb(r.prev_kv) if r.HasField("prev_kv") else None
        return cls(ResponseHeader.from_pb(r.header), prev, r)


@dataclass(frozen=True)
class DeleteResponse:
    """Result of :meth:`Client.delete`: how many keys were deleted (and, with ``prev_kv=True``,
    what they held)."""

    header: ResponseHeader
    deleted: int = 0
    prev_kvs: list[KeyValue] = field(default_factory=list)
    raw: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def from_pb(cls, r: rpc_pb2.DeleteRangeResponse) -> DeleteResponse:
        return cls(
            ResponseHeader.from_pb(r.header), r.deleted, [KeyValue.from_pb(kv) for kv in r.prev_kvs], r
        )


@dataclass(frozen=True)
class TxnResponse:
    """Result of a transaction: whether the compares held (``succeeded``) and one response per
    operation of the branch that ran, in order."""

    header: ResponseHeader
    succeeded: bool
    responses: list[GetResponse | PutResponse | DeleteResponse | TxnResponse]
    raw: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def from_pb(cls, r: rpc_pb2.TxnResponse) -> TxnResponse:
        out: list[GetResponse | PutResponse | DeleteResponse | TxnResponse] = []
        for op in r.responses:
            kind = op.WhichOneof("response")
            if kind == "response_range":
                out.append(GetResponse.from_pb(op.response_range))
            elif kind == "response_put":
                out.append(PutResponse.from_pb(op.response_put))
            elif kind == "response_delete_range":
                out.append(DeleteResponse.from_pb(op.response_delete_range))
            elif kind == "response_txn":
                out.append(TxnResponse.from_pb(op.response_txn))
        return cls(ResponseHeader.from_pb(r.header), r.succeeded, out, r)


@dataclass(frozen=True)
class CompactResponse:
    header: ResponseHeader
    raw: Any = field(default=None, repr=False, compare=False)


class EventType(enum.Enum):
    """What happened to a key (etcd's mvccpb.Event_EventType)."""

    PUT = 0
    DELETE = 1


@dataclass(frozen=True)
class Event:
    """One change seen by a watch. For a DELETE, ``kv`` carries only the key and the deleting
    revision (``kv.mod_revision``); ``prev_kv`` is set when the watch asked for it."""

    type: EventType
    kv: KeyValue
    prev_kv: KeyValue | None = None

    @classmethod
    def from_pb(cls, ev: kv_pb2.Event) -> Event:
        prev = KeyValue.from_pb(ev.prev_kv) if ev.HasField("prev_kv") else None
        return cls(EventType(ev.type), KeyValue.from_pb(ev.kv), prev)


@dataclass(frozen=True)
class WatchResponse:
    """One batch of events from a watch, all in revision order. A batch with no events and a
    non-zero ``header.revision`` is a progress notification (:attr:`is_progress_notify`)."""

    header: ResponseHeader
    events: list[Event]
    compact_revision: int = 0
    created: bool = False
    canceled: bool = False
    cancel_reason: str = ""
    watch_id: int = 0
    raw: Any = field(default=None, repr=False, compare=False)

    @property
    def is_progress_notify(self) -> bool:
        return (
            not self.events
            and not self.canceled
            and not self.created
            and self.compact_revision == 0
            and self.header.revision != 0
        )

    @classmethod
    def from_pb(cls, r: rpc_pb2.WatchResponse) -> WatchResponse:
        return cls(
            ResponseHeader.from_pb(r.header),
            [Event.from_pb(e) for e in r.events],
            r.compact_revision,
            r.created,
            r.canceled,
            r.cancel_reason,
            r.watch_id,
            r,
        )


@dataclass(frozen=True)
class LeaseGrantResponse:
    header: ResponseHeader
    id: int
    ttl: int
    error: str = ""
    raw: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def from_pb(cls, r: rpc_pb2.LeaseGrantResponse) -> LeaseGrantResponse:
        return cls(ResponseHeader.from_pb(r.header), r.ID, r.TTL, r.error, r)


@dataclass(frozen=True)
class LeaseRevokeResponse:
    header: ResponseHeader
    raw: Any = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class LeaseKeepAliveResponse:
    """One renewal: ``ttl`` is the lease's full TTL again, or 0 (or less) if the lease is gone."""

    header: ResponseHeader
    id: int
    ttl: int
    raw: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def from_pb(cls, r: rpc_pb2.LeaseKeepAliveResponse) -> LeaseKeepAliveResponse:
        return cls(ResponseHeader.from_pb(r.header), r.ID, r.TTL, r)


@dataclass(frozen=True)
class LeaseTimeToLiveResponse:
    """``ttl`` is the remaining time in seconds (-1 if the lease does not exist or expired),
    ``granted_ttl`` the TTL it was granted with, ``keys`` the attached keys when asked for."""

    header: ResponseHeader
    id: int
    ttl: int
    granted_ttl: int
    keys: list[bytes]
    raw: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def from_pb(cls, r: rpc_pb2.LeaseTimeToLiveResponse) -> LeaseTimeToLiveResponse:
        return cls(ResponseHeader.from_pb(r.header), r.ID, r.TTL, r.grantedTTL, list(r.keys), r)


@dataclass(frozen=True)
class LeasesResponse:
    header: ResponseHeader
    leases: list[int]
    raw: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def from_pb(cls, r: rpc_pb2.LeaseLeasesResponse) -> LeasesResponse:
        return cls(ResponseHeader.from_pb(r.header), [item.ID for item in r.leases], r)


@dataclass(frozen=True)
class Member:
    """A cluster member. ``name`` is empty until the member has started and published itself."""

    id: int
    name: str
    peer_urls: list[str]
    client_urls: list[str]
    is_learner: bool = False

    @property
    def started(self) -> bool:
        return bool(self.name)

    @classmethod
    def from_pb(cls, m: rpc_pb2.Member) -> Member:
        return cls(m.ID, m.name, list(m.peerURLs), list(m.clientURLs), m.isLearner)


@dataclass(frozen=True)
class MemberListResponse:
    """Result of member list / remove / update / promote: the members after the change."""

    header: ResponseHeader
    members: list[Member]
    raw: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def from_pb(cls, r: Any) -> MemberListResponse:
        return cls(ResponseHeader.from_pb(r.header), [Member.from_pb(m) for m in r.members], r)


@dataclass(frozen=True)
class MemberAddResponse:
    """The added member (``member.id`` is its new ID) and the members after the change."""

    header: ResponseHeader
    member: Member
    members: list[Member]
    raw: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def from_pb(cls, r: rpc_pb2.MemberAddResponse) -> MemberAddResponse:
        return cls(
            ResponseHeader.from_pb(r.header),
            Member.from_pb(r.member),
            [Member.from_pb(m) for m in r.members],
            r,
        )


@dataclass(frozen=True)
class StatusResponse:
    """One member's view of itself: version, database size, leader, Raft progress, errors."""

    header: ResponseHeader
    version: str
    db_size: int
    leader: int
    raft_index: int
    raft_term: int
    raft_applied_index: int
    errors: list[str]
    db_size_in_use: int
    is_learner: bool
    raw: Any = field(default=None, repr=False, compare=False)

    @property
    def is_leader(self) -> bool:
        return self.leader != 0 and self.leader == self.header.member_id

    @classmethod
    def from_pb(cls, r: rpc_pb2.StatusResponse) -> StatusResponse:
        return cls(
            ResponseHeader.from_pb(r.header),
            r.version,
            r.dbSize,
            r.leader,
            r.raftIndex,
            r.raftTerm,
            r.raftAppliedIndex,
            list(r.errors),
            r.dbSizeInUse,
            r.isLearner,
            r,
        )


@dataclass(frozen=True)
class HashKVResponse:
    """The hash of a member's key-value history up to a revision; members that applied the same
    log report the same hash for the same revision."""

    header: ResponseHeader
    hash: int
    compact_revision: int
    raw: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def from_pb(cls, r: rpc_pb2.HashKVResponse) -> HashKVResponse:
        return cls(ResponseHeader.from_pb(r.header), r.hash, r.compact_revision, r)


class AlarmType(enum.Enum):
    NONE = 0
    NOSPACE = 1
    CORRUPT = 2


@dataclass(frozen=True)
class AlarmMember:
    member_id: int
    alarm: AlarmType


@dataclass(frozen=True)
class AlarmResponse:
    header: ResponseHeader
    alarms: list[AlarmMember]
    raw: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def from_pb(cls, r: rpc_pb2.AlarmResponse) -> AlarmResponse:
        return cls(
            ResponseHeader.from_pb(r.header),
            [AlarmMember(a.memberID, AlarmType(a.alarm)) for a in r.alarms],
            r,
        )


@dataclass(frozen=True)
class DefragmentResponse:
    header: ResponseHeader
    raw: Any = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class MoveLeaderResponse:
    header: ResponseHeader
    raw: Any = field(default=None, repr=False, compare=False)
