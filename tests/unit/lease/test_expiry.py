"""The volatile, leader-only half: deadlines, renew, promote/demote, expired_leases."""

from __future__ import annotations

import pytest

from minietcd.errors import (
    LeaseExpiredError,
    LeaseNotFoundError,
    LeaseNotPrimaryError,
)
from minietcd.lease import EXPIRED_LEASE_RETRY_INTERVAL, Lessor, TimeToLive

from .support import FakeClock

BIG = 1_000_000  # a limit that never binds


def test_follower_never_expires_anything(lessor: Lessor, clock: FakeClock) -> None:
    lessor.grant(1, 5)
    clock.advance(10_000)
    assert not lessor.is_primary
    assert lessor.expired_leases(BIG) == []


def test_primary_expires_after_ttl_not_before(primary: Lessor, clock: FakeClock) -> None:
    primary.grant(1, 10)
    clock.advance(9.999)
    assert primary.expired_leases(BIG) == []
    clock.advance(0.001)  # deadline reached exactly: expired (etcd: remaining <= 0)
    assert primary.expired_leases(BIG) == [1]


def test_expiry_does_not_revoke(primary: Lessor, clock: FakeClock) -> None:
    primary.grant(1, 10)
    primary.attach(1, [b"k"])
    clock.advance(11)
    assert primary.expired_leases(BIG) == [1]
    # Only the applied revoke (proposed through Raft) removes it.
    assert primary.get_lease(b"k") == 1
    assert primary.revoke(1) == (b"k",)
    assert primary.expired_leases(BIG) == []


def test_expired_leases_earliest_first(primary: Lessor, clock: FakeClock) -> None:
    primary.grant(1, 30)
    primary.grant(2, 10)
    primary.grant(3, 20)
    clock.advance(100)
    assert primary.expired_leases(BIG) == [2, 3, 1]


def test_expired_leases_rate_limit(primary: Lessor, clock: FakeClock) -> None:
    for i in range(1, 8):
        primary.grant(i, 10)
    clock.advance(11)
    first = primary.expired_leases(3)
    second = primary.expired_leases(3)
    third = primary.expired_leases(3)
    assert first == [1, 2, 3] and second == [4, 5, 6] and third == [7]
    assert primary.expired_leases(3) == []
    with pytest.raises(ValueError):
        primary.expired_leases(0)


def test_handed_out_lease_comes_back_after_retry_interval(
    primary: Lessor, clock: FakeClock
) -> None:
    """If the revoke proposal is lost (e.g. leader churn), the leader tries again later."""
    primary.grant(1, 10)
    clock.advance(10)
    assert primary.expired_leases(BIG) == [1]
    clock.advance(EXPIRED_LEASE_RETRY_INTERVAL - 0.5)
    assert primary.expired_leases(BIG) == []
    clock.advance(0.5)
    assert primary.expired_leases(BIG) == [1]


def test_renew_extends(primary: Lessor, clock: FakeClock) -> None:
    primary.grant(1, 10)
    clock.advance(8)
    assert primary.renew(1) == 10
    clock.advance(9)
    assert primary.expired_leases(BIG) == []
    assert primary.time_to_live(1).remaining_ttl == 1
    clock.advance(1)
    assert primary.expired_leases(BIG) == [1]


def test_renew_errors(lessor: Lessor, primary: Lessor, clock: FakeClock) -> None:
    lessor.grant(1, 10)
    with pytest.raises(LeaseNotPrimaryError):
        lessor.renew(1)
    with pytest.raises(LeaseNotFoundError):
        primary.renew(1)
    primary.grant(1, 10)
    clock.advance(10)
    with pytest.raises(LeaseExpiredError) as e:
        primary.renew(1)
    # Maps to etcd's answer if the server does not wait for the pending revoke.
    assert isinstance(e.value, LeaseNotFoundError)
    assert e.value.etcd_message == "etcdserver: requested lease not found"


def test_renew_uses_full_ttl_even_with_checkpoint(primary: Lessor, clock: FakeClock) -> None:
    primary.grant(1, 100)
    primary.checkpoint(1, 30)
    assert primary.renew(1) == 100
    assert primary.time_to_live(1).remaining_ttl == 100


def test_heap_lazy_invalidation_after_renew(primary: Lessor, clock: FakeClock) -> None:
    primary.grant(1, 10)
    primary.grant(2, 10)
    for _ in range(5):
        clock.advance(5)
        primary.renew(1)
    # Lease 2's first deadline passed long ago; lease 1's old deadlines are stale entries that
    # must not make it expire while its current deadline is in the future.
    queue = primary._expiries  # white box: the stale entries are really there
    assert queue.stale_entries() == 5
    assert primary.expired_leases(BIG) == [2]
    primary.revoke(2)  # the server's revoke proposal applied
    clock.advance(9.9)
    assert primary.expired_leases(BIG) == []
    clock.advance(0.1)
    assert primary.expired_leases(BIG) == [1]


def test_heap_compacts_under_many_renews(primary: Lessor, clock: FakeClock) -> None:
    primary.grant(1, 10)
    for _ in range(10_000):
        primary.renew(1)
    assert primary._expiries.stale_entries() < 200


def test_revoked_lease_entry_is_skipped(primary: Lessor, clock: FakeClock) -> None:
    primary.grant(1, 10)
    primary.grant(2, 20)
    primary.revoke(1)
    clock.advance(30)
    assert primary.expired_leases(BIG) == [2]


def test_demote_stops_expiries(primary: Lessor, clock: FakeClock) -> None:
    primary.grant(1, 10)
    clock.advance(5)
    primary.demote()
    assert not primary.is_primary
    clock.advance(10_000)
    assert primary.expired_leases(BIG) == []
    with pytest.raises(LeaseNotPrimaryError):
        primary.time_to_live(1)
    # Grants applied while a follower do not start a countdown either.
    primary.grant(2, 5)
    assert primary.expired_leases(BIG) == []


def test_promote_refreshes_across_failover(clock: FakeClock) -> None:
    """A lease with 1 s left on the old leader gets its full TTL + extend on the new one."""
    old, new = Lessor(clock, min_ttl=2), Lessor(clock, min_ttl=2)
    old.promote(0.0)
    for le in (old, new):  # both apply the same log
        le.grant(1, 10)
    clock.advance(9)
    assert old.time_to_live(1).remaining_ttl == 1
    old.demote()
    new.promote(2.0)
    assert new.time_to_live(1) == TimeToLive(granted_ttl=10, remaining_ttl=12, keys=())
    clock.advance(11.9)
    assert new.expired_leases(BIG) == []
    clock.advance(0.1)
    assert new.expired_leases(BIG) == [1]


def test_promote_after_demote_on_same_member(primary: Lessor, clock: FakeClock) -> None:
    primary.grant(1, 10)
    clock.advance(9)
    primary.demote()
    clock.advance(100)
    primary.promote(1.5)
    assert primary.expired_leases(BIG) == []
    clock.advance(11.5)
    assert primary.expired_leases(BIG) == [1]


def test_promote_resumes_from_checkpoint(clock: FakeClock) -> None:
    le = Lessor(clock, min_ttl=2)
    le.grant(1, 300)
    le.checkpoint(1, 40)
    le.promote(1.0)
    assert le.time_to_live(1).remaining_ttl == 41
    le.checkpoint(1, 0)  # cleared (as the leader proposes after a renew)
    le.promote(1.0)
    assert le.time_to_live(1).remaining_ttl == 301


def test_time_to_live_values(primary: Lessor, clock: FakeClock) -> None:
    primary.grant(1, 10)
    primary.attach(1, [b"z", b"a"])
    assert primary.time_to_live(1) == TimeToLive(10, 10, (b"a", b"z"))
    clock.advance(2.5)
    assert primary.time_to_live(1).remaining_ttl == 7  # 7.5 truncated, as etcd's int64()
    clock.advance(7.5)
    assert primary.time_to_live(1).remaining_ttl == 0
    clock.advance(1.5)
    assert primary.time_to_live(1).remaining_ttl == -1  # expired, revoke still pending
    with pytest.raises(LeaseNotFoundError):
        primary.time_to_live(2)


def test_time_to_live_min_ttl_raise(primary: Lessor) -> None:
    primary.grant(1, 1)
    assert primary.time_to_live(1).granted_ttl == 2
    assert primary.time_to_live(1).remaining_ttl == 2


def test_promote_spreads_pileup(clock: FakeClock) -> None:
    """etcd's rule: with >= revoke_rate leases, at most 3/4 of the rate expire per second."""
    le = Lessor(clock, min_ttl=2, revoke_rate=4)  # target: 3 expiries per second
    for i in range(1, 9):
        le.grant(i, 10)
    le.promote(0.0)
    remaining = [le.time_to_live(i).remaining_ttl for i in range(1, 9)]
    # 1-3 keep 10 s; 4.. are pushed back by rank/3 seconds: 11.33, 11.67, 12, 12.33, 12.67.
    assert remaining == [10, 10, 10, 11, 11, 12, 12, 12]
    clock.advance(10)
    assert le.expired_leases(BIG) == [1, 2, 3]
    clock.advance(1.5)
    assert le.expired_leases(BIG) == [4]
    clock.advance(1.4)  # t=12.9: before 1-3 come back for a retry at t=13
    assert le.expired_leases(BIG) == [5, 6, 7, 8]


def test_promote_no_spread_below_revoke_rate(clock: FakeClock) -> None:
    le = Lessor(clock, min_ttl=2, revoke_rate=100)
    for i in range(1, 9):
        le.grant(i, 10)
    le.promote(0.0)
    assert {le.time_to_live(i).remaining_ttl for i in range(1, 9)} == {10}
