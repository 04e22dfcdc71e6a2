"""The multi-version key-value store (etcd ``mvcc/kvstore.go`` + ``kvstore_txn.go``).

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
from dataclasses import dataclass, replace
from types import TracebackType

from minietcd.errors import (
    CompactedRevisionError,
    EmptyKeyError,
    FutureRevisionError,
    KeyNotFoundError,
    LeaseProvidedError,
    MvccInvariantError,
    MvccSnapshotError,
    TxnStateError,
    ValueProvidedError,
)
from minietcd.mvcc.backend import B_KEY, B_META, Backend
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
    MIN_INT64,
    ZERO_REV,
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

#: Called once per committed write txn that changed something: (its revision, its events).
Observer = Callable[[int, Sequence[Event]], None]

#: etcd's meta keys for compactions (the value is a revision key): scheduled when accepted,
#: finished when done. Ours are done at once, so both are written together.
K_SCHEDULED_COMPACT = b"scheduledCompactRev"
K_FINISHED_COMPACT = b"finishedCompactRev"

_DEFAULT_RANGE = RangeOptions()


@dataclass(slots=True)
class _Change:
    """One change of an open write txn: its event, plus what a rollback needs."""

    rev: Revision
    #: The event's kv: the new key-value, or ``KeyValue(key, mod_revision=main)`` for a delete.
    kv: KeyValue
    tombstone: bool
    #: The key's value before the txn began (what etcd's watch reads at mod_revision - 1).
    prev_kv: KeyValue | None
    #: The key index's ``modified`` before this change, restored by a rollback.
    prev_modified: Revision
    #: This change created the key index (a rollback removes it again).
    new_key: bool


def _as_bytes(value: object, what: str) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    raise TypeError(f"{what} must be bytes, not {type(value).__name__}")


def _check_int64(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if not MIN_INT64 <= value <= MAX_INT64:
        raise ValueError(f"{what} {value} does not fit in int64")
    return value


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
        key = _as_bytes(key, "key")
        range_end = _as_bytes(range_end, "range_end")
        rev = _check_int64(options.revision, "revision")
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
        rev = _check_int64(rev, "revision")
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
        rev = _check_int64(rev, "revision")
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
        current_rev, compact_rev, records = decode_snapshot(_as_bytes(data, "snapshot"))
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


class WriteTxn:
    """The one open write transaction of a :class:`KVStore` (etcd ``storeTxnWrite``).

    Its changes get main revision ``begin_revision + 1``; its reads see its own changes.
    Commit with :meth:`end` (or leaving ``with`` normally); :meth:`abort` (or an exception
    leaving ``with``) undoes every change as if the txn never ran.
    """

    __slots__ = ("_begin_rev", "_changes", "_done", "_store")

    def __init__(self, store: KVStore) -> None:
        self._store = store
        #: The current revision when the txn began; its changes are at begin + 1.
        self._begin_rev = store._current_rev
        #: Changes so far, in sub-revision order.
        self._changes: list[_Change] = []
        #: Set by end/abort; the txn refuses use afterwards.
        self._done = False

    def __enter__(self) -> WriteTxn:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._done:
            return
        if exc_type is None:
            self.end()
        else:
            self.abort()

    @property
    def begin_revision(self) -> int:
        return self._begin_rev

    @property
    def revision(self) -> int:
        """The response-header revision: begin + 1 once something changed, else begin."""
        return self._begin_rev + 1 if self._changes else self._begin_rev

    def range(
        self, key: bytes, range_end: bytes = b"", options: RangeOptions | None = None
    ) -> RangeResult:
        """A read inside the txn, which sees the txn's own earlier changes (etcd semantics)."""
        self._check_open()
        return self._store._range_at(key, range_end, options or _DEFAULT_RANGE, self.revision)

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
        """Write ``key`` (etcd's applier Put). ``ignore_value`` / ``ignore_lease`` keep the
        current value / lease and need the key to exist (else KeyNotFoundError). All checks
        happen before anything changes."""
        self._check_open()
        key = _as_bytes(key, "key")
        value = _as_bytes(value, "value")
        lease = _check_int64(lease, "lease")
        if not key:
            raise EmptyKeyError("put with an empty key")
        if ignore_value and value:
            raise ValueProvidedError("put with ignore_value and a value")
        if ignore_lease and lease:
            raise LeaseProvidedError("put with ignore_lease and a lease")
        store = self._store
        cur = store._kv_at(key, self.revision)
        if (ignore_value or ignore_lease) and cur is None:
            raise KeyNotFoundError(f"key {key!r} not found")
        if cur is not None:
            value = cur.value if ignore_value else value
            lease = cur.lease if ignore_lease else lease
        rev = Revision(self._begin_rev + 1, len(self._changes))
        if cur is None:
            kv = KeyValue(key, rev.main, rev.main, 1, value, lease)
        else:
            kv = KeyValue(key, cur.create_revision, rev.main, cur.version + 1, value, lease)
        self._record(rev, key, kv, kv, tombstone=False, cur=cur)
        return PutResult(rev.main, cur if prev_kv else None)

    def delete_range(self, key: bytes, range_end: bytes = b"") -> DeleteResult:
        """Delete the keys in the range (see :mod:`.index` for ``range_end``); returns how many
        and their values before the delete."""
        self._check_open()
        key = _as_bytes(key, "key")
        range_end = _as_bytes(range_end, "range_end")
        if not key:
            raise EmptyKeyError("delete with an empty key")
        store = self._store
        keys, revs = store._index.range(key, range_end, self.revision)
        prev_kvs: list[KeyValue] = [store._value(r) for r in revs]
        for k, cur in zip(keys, prev_kvs, strict=True):
            rev = Revision(self._begin_rev + 1, len(self._changes))
            # etcd stores KeyValue{Key} under the tombstone revision; the event carries mod.
            self._record(rev, k, KeyValue(k), KeyValue(k, mod_revision=rev.main), True, cur)
        return DeleteResult(len(keys), prev_kvs, self.revision)

    def _record(
        self,
        rev: Revision,
        key: bytes,
        stored: KeyValue,
        event_kv: KeyValue,
        tombstone: bool,
        cur: KeyValue | None,
    ) -> None:
        store = self._store
        ki = store._index.key_index(key)
        prev_modified = ki.modified if ki is not None else ZERO_REV
        # The event's prev_kv is the value before the whole txn; before our first change
        # that is simply the current value.
        before = cur if not self._changes else store._kv_at(key, self._begin_rev)
        if tombstone:
            store._index.tombstone(key, rev)
        else:
            store._index.put(key, rev)
        store._add_record(rev, stored, tombstone)
        self._changes.append(_Change(rev, event_kv, tombstone, before, prev_modified, ki is None))

    def end(self) -> list[Event]:
        """Commit: make the txn's revision current and return its events, after handing them
        to the store's observer. The only place events are produced (DESIGN rule 5)."""
        self._check_open()
        self._done = True
        store = self._store
        store._txn = None
        if not self._changes:
            return []
        rev = self._begin_rev + 1
        store._current_rev = rev
        events = [
            Event(EventType.DELETE if c.tombstone else EventType.PUT, c.kv, c.prev_kv)
            for c in self._changes
        ]
        if store._observer is not None:
            store._observer(rev, tuple(events))
        return events

    def abort(self) -> None:
        """Undo every change of the txn, newest first; the store is as before the txn."""
        self._check_open()
        self._done = True
        store = self._store
        store._txn = None
        for c in reversed(self._changes):
            key = c.kv.key
            store._drop_record(c.rev, c.tombstone)
            ki = store._index.key_index(key)
            if ki is None:
                raise MvccInvariantError(f"rollback: key {key!r} vanished from the index")
            if c.tombstone:
                ki.undo_tombstone(c.prev_modified)
            else:
                ki.undo_put(c.prev_modified)
            if c.new_key:
                store._index.remove(key)
        self._changes.clear()

    def _check_open(self) -> None:
        if self._done:
            raise TxnStateError("write txn already ended")
