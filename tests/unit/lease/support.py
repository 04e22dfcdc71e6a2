"""Test helpers: a hand-advanced clock (lease tests never sleep) and a lookup that asserts."""

from __future__ import annotations

from dataclasses import dataclass

from minietcd.lease import Lease, Lessor


@dataclass(slots=True)
class FakeClock:
    """Monotonic seconds that move only when a test says so."""

    now: float = 1000.0  # not 0: catches code that confuses "deadline" with "duration"

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        assert seconds >= 0, "a monotonic clock never goes back"
        self.now += seconds


def view(lessor: Lessor, lease_id: int) -> Lease:
    """lookup() that fails the test instead of returning None."""
    found = lessor.lookup(lease_id)
    assert found is not None, f"lease {lease_id} missing"
    return found
