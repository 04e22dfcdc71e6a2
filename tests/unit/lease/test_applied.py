"""The applied (replicated) half: grant, revoke, attach, detach, checkpoint, lookups."""

from __future__ import annotations

import pytest

from minietcd.errors import (
    LeaseError,
    LeaseExistsError,
    LeaseNotFoundError,
    LeaseTTLTooLargeError,
)
from minietcd.lease import MAX_LEASE_TTL, NO_LEASE, Lease, Lessor, min_lease_ttl

from .support import FakeClock, view


def test_grant_returns_view_and_lookup_finds_it(lessor: Lessor) -> None:
    granted = lessor.grant(7, 60)
    assert granted == Lease(id=7, ttl=60, remaining_ttl=0, keys=())
    assert lessor.lookup(7) == granted
    assert 7 in lessor and len(lessor) == 1
    assert lessor.lookup(8) is None


def test_grant_raises_ttl_below_min_to_min(lessor: Lessor) -> None:
    assert lessor.grant(1, 1).ttl == 2
    assert lessor.grant(2, 0).ttl == 2
    assert lessor.grant(3, -5).ttl == 2
    assert lessor.grant(4, 2).ttl == 2
    assert lessor.grant(5, 3).ttl == 3


def test_grant_errors_carry_etcd_messages(lessor: Lessor) -> None:
    with pytest.raises(LeaseNotFoundError):
        lessor.grant(NO_LEASE, 10)
    with pytest.raises(LeaseTTLTooLargeError) as too_large:
        lessor.grant(1, MAX_LEASE_TTL + 1)
    assert too_large.value.etcd_message == "etcdserver: too large lease TTL"
    assert lessor.grant(1, MAX_LEASE_TTL).ttl == MAX_LEASE_TTL
    with pytest.raises(LeaseExistsError) as exists:
        lessor.grant(1, 10)
    assert exists.value.etcd_message == "etcdserver: lease already exists"
    assert view(lessor, 1).ttl == MAX_LEASE_TTL


def test_grant_rejects_ids_outside_int64(lessor: Lessor) -> None:
    with pytest.raises(ValueError):
        lessor.grant(1 << 63, 10)
    assert lessor.grant(-(1 << 63), 10).id == -(1 << 63)  # etcd ids are signed int64


def test_revoke_returns_sorted_keys_and_forgets_lease(lessor: Lessor) -> None:
    lessor.grant(1, 10)
    lessor.attach(1, [b"b", b"a", b"c"])
    assert lessor.revoke(1) == (b"a", b"b", b"c")
    assert lessor.lookup(1) is None
    assert lessor.get_lease(b"a") == NO_LEASE  # so the store's delete has nothing to detach
    with pytest.raises(LeaseNotFoundError) as e:
        lessor.revoke(1)
    assert e.value.etcd_message == "etcdserver: requested lease not found"


def test_attach_and_detach(lessor: Lessor) -> None:
    lessor.grant(1, 10)
    lessor.attach(1, [b"k1", b"k2"])
    assert lessor.get_lease(b"k1") == 1
    assert view(lessor, 1).keys == (b"k1", b"k2")
    lessor.detach(1, [b"k1", b"never-attached"])
    assert lessor.get_lease(b"k1") == NO_LEASE
    assert view(lessor, 1).keys == (b"k2",)


def test_attach_detach_unknown_lease(lessor: Lessor) -> None:
    with pytest.raises(LeaseNotFoundError):
        lessor.attach(9, [b"k"])
    with pytest.raises(LeaseNotFoundError):
        lessor.detach(9, [b"k"])
    assert lessor.get_lease(b"k") == NO_LEASE


def test_attach_moves_key_between_leases(lessor: Lessor) -> None:
    lessor.grant(1, 10)
    lessor.grant(2, 10)
    lessor.attach(1, [b"k"])
    lessor.attach(2, [b"k"])
    assert lessor.get_lease(b"k") == 2
    assert view(lessor, 1).keys == ()
    # Detaching from the lease that no longer holds it must not unmap it from the new one.
    lessor.detach(1, [b"k"])
    assert lessor.get_lease(b"k") == 2
    assert lessor.revoke(1) == ()
    assert lessor.revoke(2) == (b"k",)


def test_checkpoint_records_remaining_and_ignores_unknown(lessor: Lessor) -> None:
    lessor.grant(1, 100)
    lessor.checkpoint(1, 40)
    assert view(lessor, 1).remaining_ttl == 40
    lessor.checkpoint(99, 5)  # raced a revoke: ignored like etcd
    assert lessor.lookup(99) is None


def test_leases_listing_sorted_by_id(lessor: Lessor) -> None:
    for i in (5, -3, 2):
        lessor.grant(i, 10)
    assert [le.id for le in lessor.leases()] == [-3, 2, 5]


def test_all_lease_errors_share_the_branch() -> None:
    for cls in (LeaseExistsError, LeaseNotFoundError, LeaseTTLTooLargeError):
        assert issubclass(cls, LeaseError)


@pytest.mark.parametrize(
    ("election_ticks", "heartbeat_ms", "expected"),
    [
        (10, 100, 2),  # etcd defaults: 1 s election timeout -> ceil(1.5 s)
        (10, 1000, 15),
        (5, 100, 1),  # (3*5)//2 = 7 ticks = 0.7 s -> 1
        (3, 1000, 4),  # (3*3)//2 = 4 ticks (integer division, as etcd): 4 s, not ceil(4.5) = 5
        (20, 50, 2),
    ],
)
def test_min_lease_ttl_matches_etcd(election_ticks: int, heartbeat_ms: int, expected: int) -> None:
    assert min_lease_ttl(election_ticks, heartbeat_ms) == expected


def test_constructor_validates(clock: FakeClock) -> None:
    with pytest.raises(ValueError):
        Lessor(clock, min_ttl=0)
    with pytest.raises(ValueError):
        Lessor(clock, min_ttl=1, retry_interval=0)
    with pytest.raises(ValueError):
        Lessor(clock, min_ttl=1, revoke_rate=0)
    with pytest.raises(ValueError):
        min_lease_ttl(0, 100)
