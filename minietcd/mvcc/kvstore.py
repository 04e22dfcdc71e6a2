"""The multi-version key-value store (etcd ``mvcc/kvstore.go``; its write txn, etcd's
``kvstore_txn.go``, is :mod:`.write_txn`).

State is two structures, as in etcd: the :class:`TreeIndex` in memory (key -> the revisions it
changed at) and the *records* on disk (revision -> the key-value written then) in the
:class:`~minietcd.mvcc.backend.Backend`'s ``key`` bucket, exactly as etcd keeps them in bbolt.
Memory holds the index, not the values. Everything here is deterministic — no clock or
randomness, and the only I/O is the backend — so every member applying the same log reaches the
same state, which :meth:`KVStore.hash_kv` checks. Opening a store on a backend that already
holds records rebuilds the index from them, the way etcd does at start-up.

Writes happen only inside a :class:`WriteTxn`: all its changes share one main revision
(current + 1) with sub revisions 0, 1, 2, ... The revision becomes current, and the txn's
:class:`Event` list is produced and handed to the observer, in exactly one place:
:meth:`WriteTxn.end`. A txn that raises inside ``with store.write()`` is rolled back whole.

Limits and input rules (checked before anything changes, so bad input never corrupts state):

* keys are non-empty ``bytes`` for writes (EmptyKeyError, etcd's "key is not provided");
  values are ``bytes``; bytearray / memoryview are copied, anything else is a TypeError;
* leases and revisions are int64 (ValueError outside it); lease 0 means none, and the store
  does not check that a lease exists — the lessor (``minietcd.lease``) owns that;
* one write txn at a time (TxnStateError); compact / snapshot / restore refuse to run while
  one is open;
* request-size limits (etcd's ``--max-request-bytes``) and the space quota are the server's:
  :meth:`KVStore.size_bytes` gives it the estimate to check against.

For the watch hub: the observer gets ``(revision, events)`` at each changing txn end;
:meth:`KVStore.events_since` replays history for watchers that fall behind; after
:meth:`KVStore.restore` (no events) the hub must treat every watcher as unsynced, as etcd does.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace

from minietcd.errors import (
    CompactedRevisionError,
    FutureRevisionError,
    MvccInvariantError,
    MvccSnapshotError,
    TxnStateError,
)
from minietcd.mvcc.backend import B_KEY, B_META, Backend
from minietcd.mvcc.checks import as_bytes, check_int64
from minietcd.mvcc.codec import (
    crc32c,
    decode_kv,
    decode_kv_fast,
    decode_snapshot,
    encode_kv,
    encode_snapshot,
)
from minietcd.mvcc.index import TreeIndex
from minietcd.mvcc.rebuild import (
    RECORD_OVERHEAD_BYTES,
    index_own_records,
    index_records,
    record_cost,
)
from minietcd.mvcc.revision import (
    MAX_INT64,
    Revision,
    is_tombstone_bytes,
)
from minietcd.mvcc.types import (
    DeleteResult,
    Event,
    EventType,
    HashKVResult,
    KeyValue,
    PutResult,
    RangeOptions,
    RangeResult,
)
from minietcd.mvcc.write_txn import WriteTxn

#: Called once per committed write txn that changed something: (its revision, its events).
Observer = Callable[[int, Sequence[Event]], None]

#: etcd's meta keys for compactions (the value is a revision key): scheduled when accepted,
#: finished when done. Ours are done at once, so both are written together.
K_SCHEDULED_COMPACT = b"scheduledCompactRev"
K_FINISHED_COMPACT = b"finishedCompactRev"

_DEFAULT_RANGE = RangeOptions()


class KVStore:
    """etcd's MVCC store: the index in memory, the records in a backend. See the module
    docstring. Without a ``backend`` the store gets a private temporary one."""

    def __init__(self, observer: Observer | None = None, backend: Backend | None = None) -> None:
        #: Where the records live (bucket ``key``) and the compaction is recorded (``meta``).
        self._b = backend if backend is not None else Backend.temporary()
        #: Key -> its revisions. Holds only keys with some revision not compacted away.
        self._index = TreeIndex()
        #: The revision of the last committed write txn; 1 for an empty store, as in etcd.
        self._current_rev = 1
        #: The revision of the last compaction; -1 before any, as in etcd.
        self._compact_rev = -1
        #: Told about every committed txn's events (the watch hub's seam).
        self._observer = observer
        #: The one open write txn, if any: writes are serialised by the apply loop.
        self._txn: WriteTxn | None = None
        #: Running total of _record_cost over all records.
        self._size = 0
        #: (key, lease) of the live leased keys found by the last index rebuild.
        self._rebuilt_leases: list[tuple[bytes, int]] = []
        self._rebuild()

    # --- state -----------------------------------------------------------------------------

    @property
    def backend(self) -> Backend:
        return self._b

    @property
    def current_revision(self) -> int:
        return self._current_rev

    @property
    def compact_revision(self) -> int:
        return self._compact_rev

    def set_observer(self, observer: Observer | None) -> None:
        """Install (or clear) the callback run at the end of each changing write txn."""
        self._observer = observer

    def size_bytes(self) -> int:
        """Estimated bytes held (records plus overhead), for the space quota."""
        return self._size

    def __len__(self) -> int:
        """Number of keys that exist at the current revision."""
        return len(self._index.revisions(b"\0", b"\0", self._current_rev))

    def close(self) -> None:
        """Commit and close the backend (the store is unusable afterwards)."""
        self._b.close()

    # --- writes ----------------------------------------------------------------------------

    def write(self) -> WriteTxn:
        """Open the write txn: ``with store.write() as txn: txn.put(...)``."""
        if self._txn is not None:
            raise TxnStateError("a write txn is already open")
        self._txn = WriteTxn(self)
        return self._txn

    def put(
        self,
        key: bytes,
        value: bytes = b"",
        lease: int = 0,
        *,
        ignore_value: bool = False,
        ignore_lease: bool = False,
        prev_kv: bool = False,
    ) -> PutResult:
        """A put in a txn of its own (etcd's Put request). See :meth:`WriteTxn.put`."""
        with self.write() as txn:
            return txn.put(
                key,
                value,
                lease,
                ignore_value=ignore_value,
                ignore_lease=ignore_lease,
                prev_kv=prev_kv,
            )

    def delete_range(self, key: bytes, range_end: bytes = b"") -> DeleteResult:
        """A delete in a txn of its own (etcd's DeleteRange request)."""
        with self.write() as txn:
            return txn.delete_range(key, range_end)

    # --- reads -----------------------------------------------------------------------------

    def range(
        self, key: bytes, range_end: bytes = b"", options: RangeOptions | None = None
    ) -> RangeResult:
        """Keys in the range at ``options.revision`` (0 = current). Uncommitted changes of an
        open write txn are invisible here. ``range_end`` conventions: see :mod:`.index`."""
        return self._range_at(key, range_end, options or _DEFAULT_RANGE, self._current_rev)

    def get(self, key: bytes, revision: int = 0) -> KeyValue | None:
        """The key's value at ``revision`` (0 = current), or None."""
        kvs = self.range(key, b"", RangeOptions(revision=revision)).kvs
        return kvs[0] if kvs else None

    def _range_at(
        self, key: bytes, range_end: bytes, options: RangeOptions, cur_rev: int
    ) -> RangeResult:
        key = as_bytes(key, "key")
        range_end = as_bytes(range_end, "range_end")
        rev = check_int64(options.revision, "revision")
        # Same order of checks as etcd's rangeKeys.
        if rev > cur_rev:
            raise FutureRevisionError(f"revision {rev} > current {cur_rev}")
        if rev <= 0:
            rev = cur_rev
        if rev < self._compact_rev:
            raise CompactedRevisionError(f"revision {rev} < compacted {self._compact_rev}")
        revs = self._index.revisions(key, range_end, rev)
        count = len(revs)
        if count == 0 or options.count_only:
            return RangeResult([], count, False, cur_rev)
        limit = options.limit
        if limit <= 0 or limit > count:
            limit = count
        kvs: list[KeyValue] = [self._value(r) for r in revs[:limit]]
        if options.keys_only:
            kvs = [replace(kv, value=b"") for kv in kvs]
        return RangeResult(kvs, count, limit < count, cur_rev)

    def _value(self, rev: Revision) -> KeyValue:
        """The key-value stored at a live (not tombstone) revision the index points to."""
        raw = self._b.get(B_KEY, rev.to_bytes())
        if raw is None:
            raise MvccInvariantError(f"revision {rev} is in the index but not in the backend")
        return decode_kv_fast(raw)

    def _kv_at(self, key: bytes, rev: int) -> KeyValue | None:
        got = self._index.get(key, rev)
        if got is None:
            return None
        return self._value(got[0])

    def leased_keys(self) -> list[tuple[bytes, int]]:
        """``(key, lease)`` of every live key with a lease: what the lessor re-attaches after a
        restore (etcd's ``keyToLease``)."""
        out: list[tuple[bytes, int]] = []
        for ki in self._index.key_indexes():
            got = ki.get(self._current_rev)
            if got is not None:
                kv = self._value(got[0])
                if kv.lease:
                    out.append((kv.key, kv.lease))
        return out

    def rebuilt_leased_keys(self) -> list[tuple[bytes, int]]:
        """:meth:`leased_keys` as found while the index was last rebuilt (at open or restore),
        without reading the values again."""
        return list(self._rebuilt_leases)

    def events_since(self, start_rev: int, end_rev: int | None = None) -> list[Event]:
        """Every committed change with main revision >= ``start_rev`` (and <= ``end_rev`` if
        given), in revision order — what a lagging (unsynced) watcher catches up from; the
        bound lets the watch hub read history in windows instead of all of it each time.
        Raises CompactedRevisionError when ``start_rev`` < the compact revision (etcd's
        ``minRev < compactRev`` rule)."""
        if start_rev < self._compact_rev:
            raise CompactedRevisionError(f"revision {start_rev} < compacted {self._compact_rev}")
        out: list[Event] = []
        last = self._current_rev if end_rev is None else min(end_rev, self._current_rev)
        upper = Revision(last, MAX_INT64)
        lower = Revision(max(start_rev, 0), 0)
        if lower > upper:
            return out
        records = list(self._b.items(B_KEY, lower.to_bytes(), upper.to_bytes()))
        for rev_key, kv_bytes in records:
            r = Revision.from_bytes(rev_key)
            kv = decode_kv_fast(kv_bytes)
            prev = self._kv_at(kv.key, r.main - 1) if r.main - 1 >= self._compact_rev else None
            if is_tombstone_bytes(rev_key):
                out.append(Event(EventType.DELETE, KeyValue(kv.key, mod_revision=r.main), prev))
            else:
                out.append(Event(EventType.PUT, kv, prev))
        return out

    # --- compaction and hashing -------------------------------------------------------------

    def compact(self, rev: int) -> None:
        """Drop every value not visible at or after ``rev`` (etcd ``Compact``, done at once).

        Raises CompactedRevisionError when ``rev`` <= the compact revision and
        FutureRevisionError when ``rev`` > the current revision; the store is unchanged then.
        """
        self._no_open_txn("compact")
        rev = check_int64(rev, "revision")
        if rev <= self._compact_rev:
            raise CompactedRevisionError(f"revision {rev} <= compacted {self._compact_rev}")
        if rev > self._current_rev:
            raise FutureRevisionError(f"revision {rev} > current {self._current_rev}")
        available = self._index.compact(rev)
        doomed = [
            (rev_key, len(kv_bytes))
            for rev_key, kv_bytes in self._b.items(B_KEY, b"", Revision(rev, MAX_INT64).to_bytes())
            if Revision.from_bytes(rev_key) not in available
        ]
        for rev_key, n in doomed:
            self._b.delete(B_KEY, rev_key)
            self._size -= len(rev_key) + n + RECORD_OVERHEAD_BYTES
        self._compact_rev = rev
        self._b.put(B_META, K_SCHEDULED_COMPACT, Revision(rev, 0).to_bytes())
        self._b.put(B_META, K_FINISHED_COMPACT, Revision(rev, 0).to_bytes())

    def hash_kv(self, rev: int = 0) -> HashKVResult:
        """etcd's ``HashByRev``: crc32c over ``b"key"`` then each stored (revision key, KeyValue
        bytes) with main <= ``rev`` (0 = current), skipping values at or below the compact
        revision that a compaction at ``rev`` would drop. Equal on members with equal history.

        Raises CompactedRevisionError for 0 < ``rev`` <= compact revision, FutureRevisionError
        for ``rev`` > current. (A negative ``rev`` counts as 0; etcd would hash nothing.)
        """
        return self.hash_kv_job(rev)()

    def hash_kv_job(self, rev: int = 0) -> Callable[[], HashKVResult]:
        """:meth:`hash_kv` in two parts, for a large store: the checks and the index's part run
        now (on the loop), the scan of every record runs when the returned function is called,
        in a worker thread if the caller likes, over a read view frozen now."""
        rev = check_int64(rev, "revision")
        compact_rev, current_rev = self._compact_rev, self._current_rev
        if 0 < rev <= compact_rev:
            raise CompactedRevisionError(f"revision {rev} <= compacted {compact_rev}")
        if rev > current_rev:
            raise FutureRevisionError(f"revision {rev} > current {current_rev}")
        if rev <= 0:
            rev = current_rev
        # Only values at or below the compact revision can be skipped: none before a compaction.
        keep = self._index.keep(rev) if compact_rev >= 0 else set()
        lower = Revision(compact_rev + 1, 0).to_bytes()
        upper = Revision(rev, MAX_INT64).to_bytes()
        view = self._b.read_view()

        def scan() -> HashKVResult:
            crc = crc32c(b"key")
            try:
                with view.in_use():
                    for rev_key, kv_bytes in view.items(B_KEY, b"", upper):
                        if keep and rev_key < lower and Revision.from_bytes(rev_key) not in keep:
                            continue
                        crc = crc32c(kv_bytes, crc32c(rev_key, crc))
            finally:
                view.close()
            return HashKVResult(crc, current_rev, compact_rev)

        return scan

    # --- snapshot and restore ---------------------------------------------------------------

    def snapshot(self) -> bytes:
        """The whole store as bytes; equal histories give equal bytes."""
        self._no_open_txn("snapshot")
        return encode_snapshot(
            self._current_rev, self._compact_rev, self._b.items(B_KEY), self._b.count(B_KEY)
        )

    def restore(self, data: bytes) -> None:
        """Replace all state with a :meth:`snapshot`'s. Everything is parsed and checked
        first: on bad bytes MvccSnapshotError is raised and the store is unchanged. The index
        is rebuilt from the records the way etcd rebuilds it from bolt."""
        self._no_open_txn("restore")
        current_rev, compact_rev, records = decode_snapshot(as_bytes(data, "snapshot"))
        checked = list(records)
        _, derived, _, _ = index_records(checked, decode_kv, check=True)
        # etcd derives the current revision this way; a mismatch means a damaged snapshot.
        derived = max(derived, compact_rev)
        if current_rev != derived:
            raise MvccSnapshotError(f"current revision {current_rev}, records say {derived}")
        b = self._b
        b.clear(B_KEY)
        for rev_key, kv_bytes in checked:
            b.put(B_KEY, rev_key, kv_bytes)
        for k in (K_SCHEDULED_COMPACT, K_FINISHED_COMPACT):
            if compact_rev >= 0:
                b.put(B_META, k, Revision(compact_rev, 0).to_bytes())
            else:
                b.delete(B_META, k)
        self._rebuild()

    def reload(self) -> None:
        """Forget what memory holds and rebuild it from the backend (after the backend's file
        was replaced by a snapshot's)."""
        self._no_open_txn("reload")
        self._rebuild()

    def _rebuild(self) -> None:
        """Rebuild the index, revisions and size from the backend (etcd's ``restore``)."""
        raw = self._b.get(B_META, K_FINISHED_COMPACT)
        compact_rev = Revision.from_bytes(raw).main if raw is not None else -1
        try:
            with _gc_paused():
                index, last_main, size, leased = index_own_records(self._b.items(B_KEY))
        except MvccSnapshotError as e:
            raise MvccInvariantError(f"backend records: {e}") from e
        self._index, self._size, self._rebuilt_leases = index, size, leased
        self._current_rev, self._compact_rev = max(last_main, compact_rev), compact_rev

    # --- internals --------------------------------------------------------------------------

    def _no_open_txn(self, what: str) -> None:
        if self._txn is not None:
            raise TxnStateError(f"cannot {what} while a write txn is open")

    def _add_record(self, rev: Revision, kv: KeyValue, tombstone: bool) -> None:
        rev_key, kv_bytes = rev.to_bytes(tombstone), encode_kv(kv)
        self._b.put(B_KEY, rev_key, kv_bytes)
        self._size += record_cost(rev_key, kv_bytes)

    def _drop_record(self, rev: Revision, tombstone: bool) -> None:
        rev_key = rev.to_bytes(tombstone)
        kv_bytes = self._b.get(B_KEY, rev_key)
        if kv_bytes is None:
            raise MvccInvariantError(f"rollback: revision {rev} is not in the backend")
        self._b.delete(B_KEY, rev_key)
        self._size -= record_cost(rev_key, kv_bytes)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while a large index is built: every collection would walk
    all the key indexes made so far (it halves the rebuild time at 10^5 keys). The objects
    made are acyclic; reference counting frees them."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
