"""Domain values of the MVCC store: key-values, events, range options and results.

These mirror etcd's ``mvccpb.KeyValue`` / ``mvccpb.Event`` and ``mvcc.RangeOptions`` /
``RangeResult`` field for field, without protobuf: the gRPC edge converts. All are frozen, so a
result handed to a caller can never alias and change the store's own records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum


@dataclass(frozen=True, slots=True)
class KeyValue:
    """One version of a key (etcd ``mvccpb.KeyValue``)."""

    key: bytes
    #: Revision of the put that created the key's current generation (0 for a delete event).
    create_revision: int = 0
    #: Revision of the change that produced this version.
    mod_revision: int = 0
    #: 1 for the put that created the key, +1 per later put; 0 for a delete event.
    version: int = 0
    value: bytes = b""
    #: The lease the key is attached to; 0 means none.
    lease: int = 0


class EventType(IntEnum):
    """Values as in ``mvccpb.Event.EventType``."""

    PUT = 0
    DELETE = 1


@dataclass(frozen=True, slots=True)
class Event:
    """One change seen by watchers (etcd ``mvccpb.Event``)."""

    type: EventType
    #: For PUT the new key-value; for DELETE only ``key`` and ``mod_revision`` are set.
    kv: KeyValue
    #: The key-value just before the transaction, or None if the key did not exist then (or,
    #: for history read back with ``events_since``, if that revision is compacted).
    prev_kv: KeyValue | None = None


@dataclass(frozen=True, slots=True)
class RangeOptions:
    """The store-level range options (etcd ``mvcc.RangeOptions`` plus keys_only)."""

    #: At most this many kvs; <= 0 means no limit (etcd's convention).
    limit: int = 0
    #: Read the key space as of this revision; <= 0 means the current revision.
    revision: int = 0
    #: Return only the count, no kvs.
    count_only: bool = False
    #: Return kvs with empty values.
    keys_only: bool = False


@dataclass(frozen=True, slots=True)
class RangeResult:
    """What a store-level range returns."""

    #: Matching kvs in key order, at most ``limit`` of them.
    kvs: list[KeyValue] = field(default_factory=list)
    #: How many keys are in the range at the read revision, regardless of limit.
    count: int = 0
    #: True when ``limit`` cut the result short.
    more: bool = False
    #: The store's current revision when the read ran (the response header's revision), not
    #: the revision read at.
    revision: int = 0


@dataclass(frozen=True, slots=True)
class PutResult:
    #: The revision of the transaction the put belongs to.
    revision: int
    #: The key-value before the put, when asked for and the key existed.
    prev_kv: KeyValue | None = None


@dataclass(frozen=True, slots=True)
class DeleteResult:
    #: How many keys were deleted.
    deleted: int
    #: The deleted key-values, in key order.
    prev_kvs: list[KeyValue]
    #: The transaction's revision if it changed anything, else the current revision.
    revision: int


@dataclass(frozen=True, slots=True)
class HashKVResult:
    #: crc32 (Castagnoli) over the stored revisions up to the asked revision.
    hash: int
    #: The store's current revision.
    revision: int
    #: The store's compacted revision (-1 if never compacted).
    compact_revision: int
