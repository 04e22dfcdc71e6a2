"""Fixtures for lessor tests: a fake clock and lessors in each role."""

from __future__ import annotations

import pytest

from minietcd.lease import Lessor

from .support import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def lessor(clock: FakeClock) -> Lessor:
    """A follower lessor with min TTL 2 s (etcd's default for a 1 s election timeout)."""
    return Lessor(clock, min_ttl=2)


@pytest.fixture
def primary(clock: FakeClock) -> Lessor:
    """A lessor already promoted (extend 0), as on the leader."""
    le = Lessor(clock, min_ttl=2)
    le.promote(0.0)
    return le
