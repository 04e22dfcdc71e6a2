"""The lessor: leases, their attached keys, and (on the leader only) their expiry.

Modelled on etcd 3.4 ``lease/lessor.go``. The state splits in two halves that must not mix:

* **Applied state** (replicated, deterministic, in snapshots): which leases exist, their granted
  TTL, their last checkpointed remaining TTL and the keys attached to them. It changes only through
  ``grant`` / ``revoke`` / ``attach`` / ``detach`` / ``checkpoint`` / ``restore``, which the apply
  layer calls for committed entries. None of them read the clock's value into this state
  (DESIGN rule 5), so every member that applies the same log holds the same leases and produces
  byte-identical ``snapshot()`` output.
* **Volatile leader state** (local, never replicated): each lease's expiry deadline on the
  injected monotonic clock and the expiry heap. Only the *primary* lessor (the Raft leader)
  has finite deadlines; followers keep every lease at "forever". The leader does not delete
  anything when a lease expires: ``expired_leases`` hands ids to the server, which *proposes*
  revokes through Raft, and the applied ``revoke`` returns the keys for the MVCC write txn to
  delete so watchers see the deletes.

Time enters only through ``clock`` (seconds, monotonic). Tests pass a fake clock they advance
by hand.

Lease ids are etcd's signed int64; 0 is ``NO_LEASE`` and never a real lease (the server picks a
non-zero id before proposing a grant). Keys are raw ``bytes``, as in the MVCC store.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from minietcd.errors import (
    LeaseExistsError,
    LeaseExpiredError,
    LeaseNotFoundError,
    LeaseNotPrimaryError,
    LeaseTTLTooLargeError,
)
from minietcd.lease import snapshot as _snapshot
from minietcd.lease.expiry_queue import ExpiryQueue

#: The id that means "no lease" (etcd's NoLease).
NO_LEASE = 0

#: etcd's MaxLeaseTTL in seconds; larger grants fail with "etcdserver: too large lease TTL".
MAX_LEASE_TTL = 9_000_000_000

#: etcd's leaseRevokeRate: revokes per second the leader aims for. etcd's loop runs every 500 ms
#: and asks for rate/2 expired leases per pass; the server passes that as ``expired_leases(limit)``.
LEASE_REVOKE_RATE = 1000

#: etcd's defaultExpiredleaseRetryInterval: once an expired lease has been handed out for
#: revoking, it is handed out again only after this long, in case the revoke proposal was lost.
EXPIRED_LEASE_RETRY_INTERVAL = 3.0

#: Expiry of every lease on a follower: it never expires locally (etcd's ``forever``).
FOREVER = math.inf

_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1


def min_lease_ttl(election_ticks: int, heartbeat_ms: int) -> int:
    """The minimum lease TTL in whole seconds, computed exactly as etcd's server does.

    etcd: ``minTTL = time.Duration((3*ElectionTicks)/2) * heartbeat`` then
    ``MinLeaseTTL = ceil(minTTL.Seconds())``, i.e. ceil(1.5 * election timeout) with the 1.5
    applied to the *tick count* using integer division. A lease shorter than this could expire
    during a single leader election, before any keep-alive can reach the new leader.
    Defaults (--election-timeout=1000 ms, --heartbeat-interval=100 ms: 10 ticks) give 2 seconds.
    """
    if election_ticks < 1 or heartbeat_ms < 1:
        raise ValueError("election_ticks and heartbeat_ms must be positive")
    min_ms = (3 * election_ticks) // 2 * heartbeat_ms
    return max(1, -(-min_ms // 1000))  # ceil division on integers: no float rounding surprises


@dataclass(frozen=True, slots=True)
class Lease:
    """A read-only view of one lease's applied state (the same on every member)."""

    id: int
    #: granted TTL in seconds, after the min-TTL raise.
    ttl: int
    #: last checkpointed remaining TTL in seconds; 0 means "unset, use ttl".
    remaining_ttl: int
    #: attached keys, ascending.
    keys: tuple[bytes, ...]


class TimeToLive(NamedTuple):
    """Answer to LeaseTimeToLive: what etcd puts in GrantedTTL, TTL and Keys."""

    granted_ttl: int
    remaining_ttl: int
    keys: tuple[bytes, ...]


@dataclass(slots=True)
class _LeaseState:
    id: int
    #: granted TTL in seconds (applied state).
    ttl: int
    #: checkpointed remaining TTL, 0 = unset (applied state; etcd's remainingTTL).
    remaining_ttl: int = 0
    #: attached keys (applied state). Invariant: key in keys <=> Lessor._key_lease[key] == id.
    keys: set[bytes] = field(default_factory=set)
    #: deadline on the lessor's clock; FOREVER unless the lessor is primary (volatile state).
    expiry: float = FOREVER

    def effective_remaining(self) -> int:
        """Seconds a fresh leader grants before expiry: the checkpoint if set, else the TTL
        (etcd's Lease.RemainingTTL)."""
        return self.remaining_ttl if self.remaining_ttl > 0 else self.ttl

    def view(self) -> Lease:
        return Lease(self.id, self.ttl, self.remaining_ttl, tuple(sorted(self.keys)))


class Lessor:
    """Owns leases: grant/revoke/attach/detach (applied) and expiry/renew (leader only).

    Not thread-safe and not async: it is driven from the server's single apply/ready loop.
    """

    __slots__ = (
        "_clock",
        "_expiries",
        "_key_lease",
        "_leases",
        "_min_ttl",
        "_primary",
        "_retry_interval",
        "_revoke_rate",
    )

    def __init__(
        self,
        clock: Callable[[], float],
        min_ttl: int,
        *,
        retry_interval: float = EXPIRED_LEASE_RETRY_INTERVAL,
        revoke_rate: int = LEASE_REVOKE_RATE,
    ) -> None:
        """``clock`` returns monotonic seconds; ``min_ttl`` usually comes from ``min_lease_ttl``.

        ``revoke_rate`` only decides when ``promote`` spreads out piled-up expiries.
        """
        if min_ttl < 1:
            raise ValueError(f"min_ttl must be at least 1 second, got {min_ttl}")
        if retry_interval <= 0:
            # 0 would hand the same expired lease out again within one expired_leases() call.
            raise ValueError(f"retry_interval must be positive, got {retry_interval}")
        if revoke_rate < 1:
            raise ValueError(f"revoke_rate must be positive, got {revoke_rate}")
        self._clock = clock
        self._min_ttl = min_ttl
        self._retry_interval = retry_interval
        self._revoke_rate = revoke_rate
        #: lease id -> state; dict order is grant order, which is log order on every member.
        self._leases: dict[int, _LeaseState] = {}
        #: key -> id of the one lease it is attached to (etcd's itemMap).
        self._key_lease: dict[bytes, int] = {}
        #: deadlines of leases on the primary; empty on followers.
        self._expiries = ExpiryQueue()
        #: True between promote() and demote(): this member is the Raft leader.
        self._primary = False

    # --- applied state ------------------------------------------------------------------------

    @property
    def min_ttl(self) -> int:
        return self._min_ttl

    def grant(self, lease_id: int, ttl: int) -> Lease:
        """Create a lease of ``ttl`` seconds (raised to ``min_ttl``, like etcd) and return it.

        Checks run in etcd's order: id 0 -> LeaseNotFoundError (etcd's Grant says so for NoLease),
        ttl > MAX_LEASE_TTL -> LeaseTTLTooLargeError, duplicate id -> LeaseExistsError.
        """
        if lease_id == NO_LEASE:
            raise LeaseNotFoundError("lease id 0 is not a lease (the server picks ids)")
        if not _INT64_MIN <= lease_id <= _INT64_MAX:
            raise ValueError(f"lease id {lease_id} does not fit in int64")
        if ttl > MAX_LEASE_TTL:
            raise LeaseTTLTooLargeError(f"lease TTL {ttl} exceeds {MAX_LEASE_TTL}")
        if lease_id in self._leases:
            raise LeaseExistsError(f"lease {lease_id:x} already exists")
        lease = _LeaseState(lease_id, max(ttl, self._min_ttl))
        self._leases[lease_id] = lease
        if self._primary:
            # The leader starts the countdown now; followers leave it at FOREVER.
            self._refresh(lease, self._clock(), 0.0)
        return lease.view()

    def revoke(self, lease_id: int) -> tuple[bytes, ...]:
        """Remove a lease and return its keys, ascending, for the caller to delete.

        The caller deletes them in the same MVCC write txn that applies the revoke, in this
        order on every member (etcd sorts for the same reason: identical backend hashes). The
        keys are already unmapped here, so the store's ``get_lease(key)`` answers NO_LEASE and
        its delete path has nothing to detach.
        """
        lease = self._leases.pop(lease_id, None)
        if lease is None:
            raise LeaseNotFoundError(f"lease {lease_id:x} not found")
        for key in lease.keys:
            del self._key_lease[key]
        self._expiries.discard(lease_id)
        return tuple(sorted(lease.keys))

    def attach(self, lease_id: int, keys: Iterable[bytes]) -> None:
        """Attach keys to a lease, moving any key that was attached to another lease.

        etcd's store detaches a key's old lease before attaching the new one on put; doing the
        move here keeps the one-lease-per-key invariant even if a caller forgets.
        """
        lease = self._get(lease_id)
        for key in keys:
            old = self._key_lease.get(key)
            if old is not None and old != lease_id:
                self._leases[old].keys.discard(key)
            self._key_lease[key] = lease_id
            lease.keys.add(key)

    def detach(self, lease_id: int, keys: Iterable[bytes]) -> None:
        """Detach keys from a lease; keys not attached to it are ignored."""
        lease = self._get(lease_id)
        for key in keys:
            lease.keys.discard(key)
            # Unlike etcd, leave another lease's mapping of the key alone.
            if self._key_lease.get(key) == lease_id:
                del self._key_lease[key]

    def checkpoint(self, lease_id: int, remaining_ttl: int) -> None:
        """Record a lease's remaining TTL (etcd's lease checkpointing, proposed by the leader).

        It does not move the current expiry: only a later ``promote`` uses it, so a new leader
        resumes the countdown rather than restarting it. An unknown id is ignored, as in etcd:
        the checkpoint may have raced a revoke. ``remaining_ttl <= 0`` clears it.
        """
        lease = self._leases.get(lease_id)
        if lease is not None:
            lease.remaining_ttl = remaining_ttl

    def get_lease(self, key: bytes) -> int:
        """Id of the lease ``key`` is attached to, or NO_LEASE (etcd's GetLease)."""
        return self._key_lease.get(key, NO_LEASE)

    def lookup(self, lease_id: int) -> Lease | None:
        """The lease's applied state, or None."""
        lease = self._leases.get(lease_id)
        return None if lease is None else lease.view()

    def leases(self) -> list[Lease]:
        """All leases, ascending by id (etcd sorts by time left, which only the leader knows;
        id order is the same on every member)."""
        return [self._leases[i].view() for i in sorted(self._leases)]

    def __contains__(self, lease_id: object) -> bool:
        """Cheap existence check for the apply path (no key copy, unlike lookup)."""
        return lease_id in self._leases

    def __len__(self) -> int:
        return len(self._leases)

    # --- volatile, leader-only state ----------------------------------------------------------

    @property
    def is_primary(self) -> bool:
        """True while this member is the leader and so manages expiry and renewals."""
        return self._primary

    def promote(self, extend: float) -> None:
        """This member became leader: give every lease a fresh deadline.

        Each expiry becomes now + extend + (checkpointed remaining TTL, else the full TTL), as
        etcd's Promote does: the old leader's clock is lost, and a client may not have reached
        anyone during the election, so a healthy lease must not expire across a failover.
        etcd calls this with extend = election timeout once the leader has applied its first
        empty entry of the term. When there are at least ``revoke_rate`` leases, deadlines that
        pile up in the same second are spread out (etcd's rule) so a flood of revokes cannot
        eat the whole revoke budget.
        """
        now = self._clock()
        self._primary = True
        self._expiries.clear()
        for lease in self._leases.values():
            self._refresh(lease, now, extend)
        if len(self._leases) >= self._revoke_rate:
            self._spread_expiries(now, extend)

    def demote(self) -> None:
        """This member is no longer leader: nothing expires here until the next promote."""
        self._primary = False
        self._expiries.clear()
        for lease in self._leases.values():
            lease.expiry = FOREVER

    def renew(self, lease_id: int) -> int:
        """Keep-alive: restart the lease's countdown at its full TTL and return that TTL.

        Raises LeaseNotPrimaryError off the leader (the server forwards), LeaseNotFoundError for
        an unknown id, and LeaseExpiredError when the lease is already past its deadline (its
        revoke is on its way; etcd's Renew waits for it, then answers "lease not found").
        If ``lookup(id).remaining_ttl > 0`` the server should also propose ``checkpoint(id, 0)``
        (as etcd does), or a later failover would resume from the stale checkpoint.
        """
        if not self._primary:
            raise LeaseNotPrimaryError("not a primary lessor")
        lease = self._get(lease_id)
        now = self._clock()
        if lease.expiry <= now:
            raise LeaseExpiredError(f"lease {lease_id:x} expired; revoke pending")
        lease.expiry = now + lease.ttl
        self._expiries.schedule(lease_id, lease.expiry)
        return lease.ttl

    def time_to_live(self, lease_id: int) -> TimeToLive:
        """(granted TTL, whole seconds left, keys) as etcd's leader answers LeaseTimeToLive.

        Seconds left are truncated toward zero like etcd's ``int64(Remaining().Seconds())``, so
        an expired lease whose revoke is pending shows 0 or a negative number. Off the leader
        this raises LeaseNotPrimaryError: only the leader knows the deadline, and etcd forwards.
        """
        if not self._primary:
            raise LeaseNotPrimaryError("not a primary lessor")
        lease = self._get(lease_id)
        remaining = int(lease.expiry - self._clock())
        return TimeToLive(lease.ttl, remaining, tuple(sorted(lease.keys)))

    def expired_leases(self, limit: int) -> list[int]:
        """Up to ``limit`` ids of leases past their deadline, earliest first, for the leader to
        propose revokes for. Empty off the leader.

        ``limit`` is the rate limit (etcd: leaseRevokeRate/2 per 500 ms pass). A lease handed
        out is not handed out again for ``retry_interval`` seconds, long enough for its revoke
        to commit; if the proposal was lost it comes back then (etcd's expiredLeaseRetryInterval).
        """
        if limit < 1:
            raise ValueError(f"limit must be positive, got {limit}")
        if not self._primary:
            return []
        now = self._clock()
        out: list[int] = []
        while len(out) < limit:
            top = self._expiries.peek()
            if top is None or top[0] > now:
                break
            lease_id = top[1]
            lease = self._leases[lease_id]  # revoke discards the deadline, so the lease exists
            if lease.expiry > now:
                # Cannot happen while deadlines track expiries; resync rather than expire early.
                self._expiries.schedule(lease_id, lease.expiry)
                continue
            self._expiries.schedule(lease_id, now + self._retry_interval)
            out.append(lease_id)
        return out

    # --- snapshots ----------------------------------------------------------------------------

    def snapshot(self) -> bytes:
        """Canonical bytes of the applied state (no deadlines): equal logs give equal bytes."""
        return _snapshot.encode(
            _snapshot.LeaseRecord(s.id, s.ttl, s.remaining_ttl, tuple(s.keys))
            for s in self._leases.values()
        )

    def restore(self, data: bytes) -> None:
        """Replace all applied state with a snapshot's; raises LeaseSnapshotError and leaves
        the lessor untouched if ``data`` is invalid.

        TTLs are raised to this member's min_ttl, as etcd's recovery does. The primary flag is
        kept (it follows the Raft role, not the log): on a primary every restored lease gets a
        fresh deadline of now + its checkpointed remaining TTL (or full TTL); elsewhere FOREVER.
        """
        records = _snapshot.decode(data)  # validates fully before anything changes
        leases: dict[int, _LeaseState] = {}
        key_lease: dict[bytes, int] = {}
        for r in records:
            leases[r.id] = _LeaseState(
                r.id, max(r.ttl, self._min_ttl), r.remaining_ttl, set(r.keys)
            )
            key_lease.update(dict.fromkeys(r.keys, r.id))
        self._leases = leases
        self._key_lease = key_lease
        self._expiries.clear()
        if self._primary:
            now = self._clock()
            for lease in leases.values():
                self._refresh(lease, now, 0.0)

    # --- internals ----------------------------------------------------------------------------

    def _get(self, lease_id: int) -> _LeaseState:
        lease = self._leases.get(lease_id)
        if lease is None:
            raise LeaseNotFoundError(f"lease {lease_id:x} not found")
        return lease

    def _refresh(self, lease: _LeaseState, now: float, extend: float) -> None:
        # etcd's Lease.refresh: deadline from the checkpointed remaining TTL, else the full TTL.
        lease.expiry = now + extend + lease.effective_remaining()
        self._expiries.schedule(lease.id, lease.expiry)

    def _spread_expiries(self, now: float, extend: float) -> None:
        """etcd's Promote pile-up rule: at most 3/4 of the revoke rate expire per second.

        Walk leases by deadline in one-second windows; once a window holds more than the target,
        push each further lease back by (its rank / target) seconds minus how far it already sits
        past the window start, so the overflow drains at the target rate.
        """
        ordered = sorted(self._leases.values(), key=lambda s: (s.expiry, s.id))
        target = max(1, 3 * self._revoke_rate // 4)
        base = ordered[0].expiry - now
        next_window = base + 1.0
        expires = 0
        for lease in ordered:
            remaining = lease.expiry - now
            if remaining > next_window:
                base = remaining
                next_window = base + 1.0
                expires = 1
                continue
            expires += 1
            if expires <= target:
                continue
            delay = expires / target - (remaining - base)
            next_window = base + delay
            self._refresh(lease, now, extend + delay)
