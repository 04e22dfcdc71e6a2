"""The lessor against a plain-dict model, over random operation sequences (hypothesis).

The model is deliberately naive: no heap, no lazy invalidation, deadlines recomputed by brute
force. A shadow follower lessor receives only the applied operations and must produce the same
snapshot bytes as the lessor under test at every step (DESIGN rule 5).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from minietcd.errors import (
    LeaseExistsError,
    LeaseExpiredError,
    LeaseNotFoundError,
    LeaseNotPrimaryError,
)
from minietcd.lease import EXPIRED_LEASE_RETRY_INTERVAL, NO_LEASE, Lease, Lessor

from .support import FakeClock

MIN_TTL = 2
IDS = st.integers(min_value=-1, max_value=4)  # includes 0 (invalid) and many collisions
KEYS = st.lists(st.sampled_from([b"a", b"b", b"c", b"d", b"e"]), max_size=3)
TTLS = st.integers(min_value=-1, max_value=6)  # short: expiries happen often
# Dyadic steps keep float arithmetic exact, so model and lessor deadlines compare equal.
STEPS = st.sampled_from([0.0, 0.25, 0.5, 1.0, 2.0, 3.0, 4.0, 7.5])
EXTENDS = st.sampled_from([0.0, 0.5, 1.0, 2.0])


@dataclass
class ModelLease:
    ttl: int
    remaining: int = 0
    keys: set[bytes] = field(default_factory=set)
    expiry: float = math.inf
    due: float = math.inf  # when expired_leases may next hand it out (expiry, then retries)


class LessorMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.sut = Lessor(self.clock, MIN_TTL)
        self.shadow = Lessor(FakeClock(123.0), MIN_TTL)
        self.model: dict[int, ModelLease] = {}
        self.primary = False

    def _effective(self, m: ModelLease) -> int:
        return m.remaining if m.remaining > 0 else m.ttl

    def _set_expiry(self, m: ModelLease, expiry: float) -> None:
        m.expiry = m.due = expiry

    # --- applied operations (also fed to the shadow) ----------------------------------------

    # Grants come in small batches so that, against one-at-a-time revokes, leases accumulate.
    @rule(grants=st.lists(st.tuples(IDS, TTLS), min_size=1, max_size=3))
    def grant(self, grants: list[tuple[int, int]]) -> None:
        for lease_id, ttl in grants:
            self._grant(lease_id, ttl)

    def _grant(self, lease_id: int, ttl: int) -> None:
        if lease_id == NO_LEASE:
            expected: type[Exception] | None = LeaseNotFoundError
        elif lease_id in self.model:
            expected = LeaseExistsError
        else:
            expected = None
        for le in (self.sut, self.shadow):
            try:
                le.grant(lease_id, ttl)
            except Exception as e:  # compared with the model's verdict below
                assert expected is not None and isinstance(e, expected), e
            else:
                assert expected is None
        if expected is None:
            m = ModelLease(max(ttl, MIN_TTL))
            if self.primary:
                self._set_expiry(m, self.clock.now + 0.0 + m.ttl)
            self.model[lease_id] = m

    @rule(lease_id=IDS)
    def revoke(self, lease_id: int) -> None:
        if lease_id not in self.model:
            for le in (self.sut, self.shadow):
                try:
                    le.revoke(lease_id)
                except LeaseNotFoundError:
                    pass
                else:
                    raise AssertionError("revoke of unknown lease succeeded")
            return
        m = self.model.pop(lease_id)
        assert self.sut.revoke(lease_id) == tuple(sorted(m.keys))
        assert self.shadow.revoke(lease_id) == tuple(sorted(m.keys))

    @rule(lease_id=IDS, keys=KEYS)
    def attach(self, lease_id: int, keys: list[bytes]) -> None:
        if lease_id not in self.model:
            for le in (self.sut, self.shadow):
                try:
                    le.attach(lease_id, keys)
                except LeaseNotFoundError:
                    pass
                else:
                    raise AssertionError("attach to unknown lease succeeded")
            return
        self.sut.attach(lease_id, keys)
        self.shadow.attach(lease_id, keys)
        for key in keys:
            for m in self.model.values():
                m.keys.discard(key)
            self.model[lease_id].keys.add(key)

    @rule(lease_id=IDS, keys=KEYS)
    def detach(self, lease_id: int, keys: list[bytes]) -> None:
        if lease_id not in self.model:
            for le in (self.sut, self.shadow):
                try:
                    le.detach(lease_id, keys)
                except LeaseNotFoundError:
                    pass
                else:
                    raise AssertionError("detach from unknown lease succeeded")
            return
        self.sut.detach(lease_id, keys)
        self.shadow.detach(lease_id, keys)
        self.model[lease_id].keys.difference_update(keys)

    @rule(lease_id=IDS, remaining=st.integers(min_value=0, max_value=6))
    def checkpoint(self, lease_id: int, remaining: int) -> None:
        self.sut.checkpoint(lease_id, remaining)
        self.shadow.checkpoint(lease_id, remaining)
        if lease_id in self.model:
            self.model[lease_id].remaining = remaining

    # --- volatile operations (lessor under test only) ---------------------------------------

    @rule(step=STEPS)
    def advance(self, step: float) -> None:
        self.clock.advance(step)

    @initialize(start_primary=st.booleans())
    def start(self, start_primary: bool) -> None:
        if start_primary:
            self.promote(0.0)

    # One rule for both role changes, biased towards leading: expiry is where the bugs hide.
    @rule(become_primary=st.sampled_from([True, True, False]), extend=EXTENDS)
    def change_role(self, become_primary: bool, extend: float) -> None:
        if become_primary:
            self.promote(extend)
        else:
            self.demote()

    def promote(self, extend: float) -> None:
        self.sut.promote(extend)
        self.primary = True
        for m in self.model.values():
            self._set_expiry(m, self.clock.now + extend + self._effective(m))

    def demote(self) -> None:
        self.sut.demote()
        self.primary = False
        for m in self.model.values():
            self._set_expiry(m, math.inf)

    @rule(lease_id=IDS)
    def renew(self, lease_id: int) -> None:
        now = self.clock.now
        try:
            ttl = self.sut.renew(lease_id)
        except LeaseNotPrimaryError:
            assert not self.primary
        except LeaseExpiredError:
            assert self.primary and self.model[lease_id].expiry <= now
        except LeaseNotFoundError:
            assert self.primary and lease_id not in self.model
        else:
            m = self.model[lease_id]
            assert self.primary and m.expiry > now and ttl == m.ttl
            self._set_expiry(m, now + m.ttl)

    @rule(lease_id=IDS, step=STEPS)
    def time_to_live(self, lease_id: int, step: float) -> None:
        self.clock.advance(step)  # time moves in most volatile rules, so leases do expire
        try:
            got = self.sut.time_to_live(lease_id)
        except LeaseNotPrimaryError:
            assert not self.primary
        except LeaseNotFoundError:
            assert self.primary and lease_id not in self.model
        else:
            m = self.model[lease_id]
            assert got.granted_ttl == m.ttl
            assert got.remaining_ttl == int(m.expiry - self.clock.now)
            assert got.keys == tuple(sorted(m.keys))

    @rule(limit=st.integers(min_value=1, max_value=4), step=STEPS)
    def expired_leases(self, limit: int, step: float) -> None:
        self.clock.advance(step)
        now = self.clock.now
        got = self.sut.expired_leases(limit)
        if not self.primary:
            assert got == []
            return
        eligible = {i for i, m in self.model.items() if m.expiry <= now and m.due <= now}
        assert len(got) == len(set(got)) == min(limit, len(eligible))
        assert set(got) <= eligible
        # Earliest-due first, and nothing left behind was due earlier than what was returned.
        dues = [self.model[i].due for i in got]
        assert dues == sorted(dues)
        if got:
            assert all(self.model[i].due >= dues[-1] for i in eligible - set(got))
        for i in got:
            self.model[i].due = now + EXPIRED_LEASE_RETRY_INTERVAL

    @rule()
    def snapshot_restore(self) -> None:
        data = self.sut.snapshot()
        self.sut.restore(data)
        assert self.sut.snapshot() == data
        # Restore restarts deadlines on a primary (no extend), like a fresh grant would.
        for m in self.model.values():
            if self.primary:
                self._set_expiry(m, self.clock.now + 0.0 + self._effective(m))

    # --- invariants ---------------------------------------------------------------------------

    @invariant()
    def applied_state_matches_model(self) -> None:
        want = [
            Lease(i, m.ttl, m.remaining, tuple(sorted(m.keys)))
            for i, m in sorted(self.model.items())
        ]
        assert self.sut.leases() == want
        for key in (b"a", b"b", b"c", b"d", b"e"):
            owner = [i for i, m in self.model.items() if key in m.keys]
            assert self.sut.get_lease(key) == (owner[0] if owner else NO_LEASE)
        assert self.sut.is_primary == self.primary

    @invariant()
    def same_log_same_snapshot(self) -> None:
        assert self.sut.snapshot() == self.shadow.snapshot()


TestLessorModel = LessorMachine.TestCase
TestLessorModel.settings = settings(
    max_examples=300,
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
