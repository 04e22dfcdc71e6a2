"""The state machine's non-KV state in the backend, under etcd 3.4's buckets and encodings.

The key space persists itself (``mvcc.kvstore``). What else the state machine applies is kept
beside it in the same LMDB batch, as etcd keeps it in bbolt, so one file holds everything a
restart or a new member needs:

* ``meta/consistent_index``: the index of the last entry applied, written with that entry's
  changes (etcd's consistent index): a restart replays only the log after it;
* ``lease``: one ``leasepb.Lease{ID, TTL, RemainingTTL}`` per lease; the keys attached to it
  are not stored (as in etcd): each stored KeyValue names its lease;
* ``members`` / ``members_removed`` / ``cluster``: the membership, and the cluster version;
* ``alarm``: the active alarms.

The Raft configuration (voters and learners) is not stored: it is the membership's
(``conf_state``), since a membership change is applied to both or to neither.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from minietcd.lease import snapshot as lease_snapshot
from minietcd.lease.lessor import Lease
from minietcd.mvcc.backend import (
    B_ALARM,
    B_CLUSTER,
    B_LEASE,
    B_MEMBERS,
    B_MEMBERS_REMOVED,
    B_META,
    K_CONSISTENT_INDEX,
    Backend,
)
from minietcd.mvcc.bucket_values import (
    K_CLUSTER_VERSION,
    decode_alarm,
    decode_lease,
    decode_member,
    encode_alarm,
    encode_lease,
    encode_member,
)
from minietcd.raft.types import ConfState
from minietcd.server.membership import Member, Membership

_REMOVED = b"removed"
#: Not etcd's (etcd keeps the cluster id in its WAL metadata only); kept for Membership.
K_CLUSTER_ID = b"minietcd_cluster_id"


def lease_key(lease_id: int) -> bytes:
    return (lease_id & ((1 << 64) - 1)).to_bytes(8, "big")


def save_applied_index(b: Backend, index: int) -> None:
    b.put_u64(B_META, K_CONSISTENT_INDEX, index)


def save_lease(b: Backend, lease_id: int, lease: Lease | None) -> None:
    """Write (or, for None, delete) one lease record."""
    if lease is None:
        b.delete(B_LEASE, lease_key(lease_id))
    else:
        b.put(B_LEASE, lease_key(lease_id), encode_lease(lease))


def save_leases(b: Backend, leases: list[Lease]) -> None:
    """Replace every lease record."""
    b.clear(B_LEASE)
    for lease in leases:
        save_lease(b, lease.id, lease)


def save_membership(b: Backend, ms: Membership) -> None:
    """Rewrite the membership buckets (a handful of records; changes are rare)."""
    b.clear(B_MEMBERS)
    for m in ms.sorted_members():
        k, v = encode_member(m.to_json())
        b.put(B_MEMBERS, k, v)
    b.clear(B_MEMBERS_REMOVED)
    for mid in sorted(ms.removed):
        b.put(B_MEMBERS_REMOVED, f"{mid:x}".encode(), _REMOVED)
    b.put_u64(B_META, K_CLUSTER_ID, ms.cluster_id)
    if ms.cluster_version:
        b.put(B_CLUSTER, K_CLUSTER_VERSION, ms.cluster_version.encode())
    else:
        b.delete(B_CLUSTER, K_CLUSTER_VERSION)


def save_alarms(b: Backend, alarms: set[tuple[int, int]]) -> None:
    b.clear(B_ALARM)
    for member_id, alarm in sorted(alarms):
        b.put(B_ALARM, encode_alarm(member_id, alarm), b"")


@dataclass(slots=True)
class Stored:
    """What :func:`load` finds in a backend."""

    applied_index: int = 0
    membership: Membership = field(default_factory=Membership)
    alarms: set[tuple[int, int]] = field(default_factory=set)
    #: The lessor's snapshot bytes (leases with their keys), for ``Lessor.restore``.
    leases: bytes = b""


def load(b: Backend, leased_keys: list[tuple[bytes, int]]) -> Stored:
    """Read the non-KV state back; ``leased_keys`` are the live (key, lease) pairs the key
    space holds (the store finds them while rebuilding its index)."""
    ms = Membership(b.get_u64(B_META, K_CLUSTER_ID) or 0)
    for k, v in b.items(B_MEMBERS):
        ms.members[int(k, 16)] = Member.from_json(decode_member(k, v))
    ms.removed = {int(k, 16) for k in b.keys(B_MEMBERS_REMOVED)}
    ms.cluster_version = (b.get(B_CLUSTER, K_CLUSTER_VERSION) or b"").decode()
    alarms = {decode_alarm(k) for k in b.keys(B_ALARM)}
    keys: dict[int, list[bytes]] = {}
    for key, lease_id in leased_keys:
        keys.setdefault(lease_id, []).append(key)
    records = []
    for _k, v in b.items(B_LEASE):
        lease = decode_lease(v)
        records.append(
            lease_snapshot.LeaseRecord(
                lease.id, lease.ttl, lease.remaining_ttl, tuple(sorted(keys.get(lease.id, ())))
            )
        )
    return Stored(
        applied_index=b.get_u64(B_META, K_CONSISTENT_INDEX) or 0,
        membership=ms,
        alarms=alarms,
        leases=lease_snapshot.encode(records),
    )


def conf_state(ms: Membership) -> ConfState:
    """The Raft configuration the membership stands for."""
    members = ms.sorted_members()
    return ConfState(
        voters=tuple(m.id for m in members if not m.is_learner),
        learners=tuple(m.id for m in members if m.is_learner),
    )
