"""snapshot()/restore(): canonical bytes of applied state; restore discards everything."""

from __future__ import annotations

import struct

import pytest

from minietcd.errors import LeaseSnapshotError
from minietcd.lease import NO_LEASE, Lessor
from minietcd.lease.snapshot import MAGIC, LeaseRecord, decode, encode

from .support import FakeClock, view

BIG = 1_000_000


def feed(le: Lessor) -> None:
    """One fixed sequence of applied operations."""
    le.grant(10, 60)
    le.grant(-4, 1)  # raised to min TTL
    le.grant(3, 30)
    le.attach(10, [b"b", b"a"])
    le.attach(3, [b"c"])
    le.attach(3, [b"a"])  # moved from 10
    le.checkpoint(10, 25)
    le.grant(99, 5)
    le.attach(99, [b"gone"])
    assert le.revoke(99) == (b"gone",)
    le.detach(10, [b"b"])
    le.attach(-4, [b"\x00binary\xff"])


def test_round_trip(lessor: Lessor, clock: FakeClock) -> None:
    feed(lessor)
    data = lessor.snapshot()
    other = Lessor(FakeClock(5.0), min_ttl=2)
    other.restore(data)
    assert other.snapshot() == data
    assert other.leases() == lessor.leases()
    for key in (b"a", b"b", b"c", b"gone", b"\x00binary\xff"):
        assert other.get_lease(key) == lessor.get_lease(key)
    assert view(other, 10).remaining_ttl == 25


def test_same_log_same_bytes_regardless_of_role_and_clock() -> None:
    """Rule 5: deadlines and roles are volatile; only the applied log shapes the snapshot."""
    leader_clock, follower_clock = FakeClock(1.0), FakeClock(777_777.5)
    leader, follower = Lessor(leader_clock, min_ttl=2), Lessor(follower_clock, min_ttl=2)
    leader.promote(3.0)
    feed(leader)
    leader_clock.advance(20)
    leader.renew(10)
    leader.expired_leases(BIG)
    leader.demote()
    leader.promote(1.0)
    feed(follower)
    assert leader.snapshot() == follower.snapshot()


def test_attach_order_does_not_change_bytes(clock: FakeClock) -> None:
    a, b = Lessor(clock, min_ttl=2), Lessor(clock, min_ttl=2)
    for le in (a, b):
        le.grant(1, 10)
    a.attach(1, [b"x", b"y", b"z"])
    b.attach(1, [b"z", b"x", b"y"])
    assert a.snapshot() == b.snapshot()


def test_restore_discards_previous_state(lessor: Lessor) -> None:
    lessor.grant(1, 10)
    lessor.attach(1, [b"old"])
    src = Lessor(FakeClock(), min_ttl=2)
    src.grant(2, 20)
    src.attach(2, [b"new"])
    lessor.restore(src.snapshot())
    assert [le.id for le in lessor.leases()] == [2]
    assert lessor.get_lease(b"old") == NO_LEASE
    assert lessor.get_lease(b"new") == 2


def test_restore_empty(lessor: Lessor) -> None:
    lessor.grant(1, 10)
    lessor.restore(Lessor(FakeClock(), min_ttl=2).snapshot())
    assert len(lessor) == 0 and lessor.leases() == []


def test_restore_raises_ttl_to_local_min(clock: FakeClock) -> None:
    src = Lessor(clock, min_ttl=1)
    src.grant(1, 1)
    dst = Lessor(clock, min_ttl=5)
    dst.restore(src.snapshot())
    assert view(dst, 1).ttl == 5


def test_restore_on_primary_restarts_deadlines(primary: Lessor, clock: FakeClock) -> None:
    src = Lessor(FakeClock(), min_ttl=2)
    src.grant(1, 100)
    src.checkpoint(1, 7)
    src.grant(2, 10)
    primary.grant(3, 2)
    primary.restore(src.snapshot())
    assert primary.is_primary
    assert primary.time_to_live(1).remaining_ttl == 7
    assert primary.time_to_live(2).remaining_ttl == 10
    clock.advance(50)
    assert primary.expired_leases(BIG) == [1, 2]  # lease 3's old deadline is gone


def test_restore_on_follower_expires_nothing(lessor: Lessor, clock: FakeClock) -> None:
    src = Lessor(FakeClock(), min_ttl=2)
    src.grant(1, 2)
    lessor.restore(src.snapshot())
    clock.advance(1000)
    assert lessor.expired_leases(BIG) == []


def _header(count: int) -> bytes:
    return struct.pack(">4sBI", MAGIC, 1, count)


def _lease(lease_id: int, *keys: bytes) -> bytes:
    out = struct.pack(">qqqI", lease_id, 10, 0, len(keys))
    for k in keys:
        out += struct.pack(">I", len(k)) + k
    return out


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"MNL",
        b"XXXX" + _header(0)[4:],
        struct.pack(">4sBI", MAGIC, 2, 0),
        _header(1),  # promises a lease, has none
        _header(0) + b"\x00",  # trailing byte
        _header(1) + _lease(0),  # NO_LEASE
        _header(2) + _lease(5) + _lease(3),  # ids not ascending
        _header(2) + _lease(3) + _lease(3),  # duplicate id
        _header(1) + _lease(1, b"b", b"a"),  # keys not ascending
        _header(2) + _lease(1, b"k") + _lease(2, b"k"),  # key in two leases
        _header(1) + _lease(1, b"abc")[:-1],  # truncated key
    ],
)
def test_restore_rejects_bad_bytes_and_keeps_state(lessor: Lessor, data: bytes) -> None:
    lessor.grant(1, 10)
    lessor.attach(1, [b"mine"])
    before = lessor.snapshot()
    with pytest.raises(LeaseSnapshotError):
        lessor.restore(data)
    assert lessor.snapshot() == before
    assert lessor.get_lease(b"mine") == 1


def test_codec_canonical() -> None:
    records = [LeaseRecord(2, 10, 0, (b"b", b"a")), LeaseRecord(1, 5, 3, ())]
    data = encode(records)
    assert decode(data) == [LeaseRecord(1, 5, 3, ()), LeaseRecord(2, 10, 0, (b"a", b"b"))]
    assert encode(decode(data)) == data
