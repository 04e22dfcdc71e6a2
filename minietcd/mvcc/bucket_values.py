"""etcd's bucket names and the encodings of the values etcd keeps in them.

etcd 3.4's backend (a bbolt file, :mod:`.boltdb`) holds one bucket per kind of state; the
values of the small ones are gogo-protobuf or Go JSON (``lease/lessor.go``,
``etcdserver/api/v3alarm``, ``etcdserver/api/membership/store.go``). The member's own backend
keeps the same records (server/apply_state.py), so these codecs live apart from the bbolt file
code, which a member loads only when it writes or reads a snapshot file.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from minietcd.golang import put_uvarint
from minietcd.mvcc.bolt_format import U64_MASK, BoltFormatError

B_ALARM = b"alarm"
B_AUTH = b"auth"
B_AUTH_ROLES = b"authRoles"
B_AUTH_USERS = b"authUsers"
B_CLUSTER = b"cluster"
B_KEY = b"key"
B_LEASE = b"lease"
B_MEMBERS = b"members"
B_MEMBERS_REMOVED = b"members_removed"
B_META = b"meta"
#: Every bucket etcd 3.4 creates, present even when empty (as in etcd's own file).
ETCD_BUCKETS = (
    B_ALARM, B_AUTH, B_AUTH_ROLES, B_AUTH_USERS, B_CLUSTER,
    B_KEY, B_LEASE, B_MEMBERS, B_MEMBERS_REMOVED, B_META,
)  # fmt: skip

K_CONSISTENT_INDEX = b"consistent_index"
K_SCHEDULED_COMPACT = b"scheduledCompactRev"
K_FINISHED_COMPACT = b"finishedCompactRev"
K_CLUSTER_VERSION = b"clusterVersion"
K_AUTH_REVISION = b"authRevision"
#: etcd's NewAuthStore commits auth revision 1 into a fresh backend; we write the same.
AUTH_REVISION = 1
#: The buckets of etcd's auth store (auth/store.go), copied as they are.
AUTH_BUCKETS = (B_AUTH, B_AUTH_USERS, B_AUTH_ROLES)


class LeaseLike(Protocol):
    """What a lease contributes to the ``lease`` bucket (the lessor's ``Lease`` view fits)."""

    @property
    def id(self) -> int: ...
    @property
    def ttl(self) -> int: ...
    @property
    def remaining_ttl(self) -> int: ...


@dataclass(frozen=True, slots=True)
class BoltLease:
    """One ``leasepb.Lease`` record: what etcd persists per lease (no keys: etcd re-attaches
    them from the ``lease`` field of each stored KeyValue)."""

    id: int
    ttl: int
    remaining_ttl: int = 0


# protobuf by hand, as codec.encode_kv does for KeyValue: the mvcc layer stays free of the
# generated modules, and these two messages are a few varints each.


def _int_fields(values: Sequence[int]) -> bytes:
    """Proto3 varint fields 1, 2, ... in order, zero values omitted (gogo's Marshal)."""
    return b"".join(put_uvarint((n << 3) | 0) + put_uvarint(v) for n, v in enumerate(values, start=1) if v)


def _parse_int_fields(data: bytes, count: int, what: str, *, signed: bool) -> list[int]:
    values = [0] * count
    pos = 0

    def varint() -> int:
        nonlocal pos
        result, shift = 0, 0
        while True:
            if pos >= len(data) or shift > 63:
                raise BoltFormatError(f"bad varint in {what}")
            b = data[pos]
            pos += 1
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result & U64_MASK
            shift += 7

    while pos < len(data):
        tag = varint()
        number, wire = tag >> 3, tag & 7
        if wire != 0 or not 1 <= number <= count:
            raise BoltFormatError(f"unexpected field {number} (wire type {wire}) in {what}")
        v = varint()
        values[number - 1] = v - (1 << 64) if signed and v >= 1 << 63 else v
    return values


def encode_lease(lease: LeaseLike) -> bytes:
    """``leasepb.Lease{ID, TTL, RemainingTTL}.Marshal()``."""
    return _int_fields((lease.id, lease.ttl, lease.remaining_ttl))


def decode_lease(data: bytes) -> BoltLease:
    lid, ttl, remaining = _parse_int_fields(data, 3, "leasepb.Lease", signed=True)
    return BoltLease(lid, ttl, remaining)


def encode_alarm(member_id: int, alarm: int) -> bytes:
    """``etcdserverpb.AlarmMember{MemberID, Alarm}.Marshal()``: an ``alarm`` bucket key."""
    return _int_fields((member_id, alarm))


def decode_alarm(data: bytes) -> tuple[int, int]:
    mid, alarm = _parse_int_fields(data, 2, "AlarmMember", signed=False)
    return mid, alarm


def _go_json_string(s: str) -> str:
    """A string as Go's encoding/json writes it (HTML-safe escapes, raw UTF-8)."""
    out = ['"']
    for ch in s:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ch < " " or ch in "<>&\u2028\u2029":
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _go_json_strings(values: Iterable[str]) -> str:
    return "[" + ",".join(_go_json_string(v) for v in values) + "]"


def _str_list(value: object, what: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise ValueError(f"member {what} must be a list, not {type(value).__name__}")
    return [str(v) for v in value]


def encode_member(member: Mapping[str, object]) -> tuple[bytes, bytes]:
    """(bucket key, value) of a member, from minietcd's ``Member.to_json`` dict: the key is the
    id in lower-case hex (``types.ID.String``), the value ``json.Marshal(membership.Member)`` —
    ``id``, then the embedded RaftAttributes (``peerURLs``, ``isLearner`` omitempty), then
    Attributes (``name``, ``clientURLs``, both omitempty), in Go's field order."""
    mid = member["id"]
    if not isinstance(mid, int) or not 0 <= mid <= U64_MASK:
        raise ValueError(f"member id must be a uint64, got {mid!r}")
    peer_urls = _str_list(member.get("peerURLs"), "peerURLs")
    client_urls = _str_list(member.get("clientURLs"), "clientURLs")
    name = str(member.get("name") or "")
    parts = [f'"id":{mid}', f'"peerURLs":{_go_json_strings(peer_urls)}']
    if member.get("isLearner"):
        parts.append('"isLearner":true')
    if name:
        parts.append(f'"name":{_go_json_string(name)}')
    if client_urls:
        parts.append(f'"clientURLs":{_go_json_strings(client_urls)}')
    return f"{mid:x}".encode(), ("{" + ",".join(parts) + "}").encode()


def decode_member(key: bytes, value: bytes) -> dict[str, object]:
    try:
        d = json.loads(value)
        mid = int(d["id"])
    except (ValueError, KeyError, TypeError) as e:
        raise BoltFormatError(f"members: bad member record {key!r}: {e}") from e
    if key != f"{mid:x}".encode():
        raise BoltFormatError(f"members: key {key!r} does not match id {mid:x}")
    return {
        "id": mid,
        "name": str(d.get("name") or ""),
        "peerURLs": [str(u) for u in d.get("peerURLs") or ()],
        "clientURLs": [str(u) for u in d.get("clientURLs") or ()],
        "isLearner": bool(d.get("isLearner", False)),
    }
