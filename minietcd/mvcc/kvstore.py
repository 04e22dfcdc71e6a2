"""The multi-version key-value store (etcd ``mvcc/kvstore.go`` + ``kvstore_txn.go``).

State is two structures, as in etcd: the :class:`TreeIndex` (key -> the revisions it changed
at) and the *records* (revision -> the key-value written then, what etcd keeps in bolt's
``key`` bucket). Everything here is deterministic — no clock, randomness or I/O — so every
member applying the same log reaches the same state, which :meth:`KVStore.hash_kv` checks.

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from types import TracebackType

from sortedcontainers import SortedDict

from minietcd.errors import (
    CompactedRevisionError,
    EmptyKeyError,
    FutureRevisionError,
    KeyNotFoundError,
    LeaseProvidedError,
    MvccInvariantError,
    MvccSnapshotError,
    RevisionNotFoundError,
    TxnStateError,
    ValueProvidedError,
)
from minietcd.mvcc.codec import crc32c, decode_kv, decode_snapshot, encode_kv, encode_snapshot
from minietcd.mvcc.index import TreeIndex
from minietcd.mvcc.key_index import KeyIndex
from minietcd.mvcc.revision import (
    MAX_INT64,
    MIN_INT64,
    REV_BYTES_LEN,
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

#: Estimated bytes a record costs beyond its key and value (revision key, protobuf tags and
#: varints, index entry). Only feeds :meth:`KVStore.size_bytes`, the quota's estimate.
RECORD_OVERHEAD_BYTES = REV_BYTES_LEN + 1 + 32

_DEFAULT_RANGE = RangeOptions()


@dataclass(slots=True)
class _Record:
    """What the store keeps per revision (etcd's bolt value)."""

    #: The key-value written; for a delete just ``KeyValue(key)``, as etcd stores it.
    kv: KeyValue
    #: Whether this revision is a delete.
    tombstone: bool


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


def _record_cost(kv: KeyValue) -> int:
    return len(kv.key) + len(kv.value) + RECORD_OVERHEAD_BYTES


class KVStore:
    """etcd's MVCC store, in memory. See the module docstring."""

    def __init__(self, observer: Observer | None = None) -> None:
        #: Key -> its revisions. Holds only keys with some revision not compacted away.
        self._index = TreeIndex()
        #: Revision -> record, ordered by revision (the order HashKV and snapshots use).
        self._records: SortedDict = SortedDict()
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

    # --- state -----------------------------------------------------------------------------

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
        records = self._records
        kvs: list[KeyValue] = [records[r].kv for r in revs[:limit]]
        if options.keys_only:
            kvs = [replace(kv, value=b"") for kv in kvs]
        return RangeResult(kvs, count, limit < count, cur_rev)

    def _kv_at(self, key: bytes, rev: int) -> KeyValue | None:
        got = self._index.get(key, rev)
        if got is None:
            return None
        kv: KeyValue = self._records[got[0]].kv
        return kv

    def leased_keys(self) -> list[tuple[bytes, int]]:
        """``(key, lease)`` of every live key with a lease: what the lessor re-attaches after a
        restore (etcd's ``keyToLease``)."""
        out: list[tuple[bytes, int]] = []
        for ki in self._index.key_indexes():
            got = ki.get(self._current_rev)
            if got is not None:
                kv = self._records[got[0]].kv
                if kv.lease:
                    out.append((kv.key, kv.lease))
        return out

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
        for r in self._records.irange(lower, upper):
            rec: _Record = self._records[r]
            prev = self._kv_at(rec.kv.key, r.main - 1) if r.main - 1 >= self._compact_rev else None
            if rec.tombstone:
                out.append(Event(EventType.DELETE, KeyValue(rec.kv.key, mod_revision=r.main), prev))
            else:
                out.append(Event(EventType.PUT, rec.kv, prev))
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
        doomed = [r for r in self._records.irange(maximum=Revision(rev, MAX_INT64))
                  if r not in available]
        for r in doomed:
            self._drop_record(r)
        self._compact_rev = rev

    def hash_kv(self, rev: int = 0) -> HashKVResult:
        """etcd's ``HashByRev``: crc32c over ``b"key"`` then each stored (revision key, KeyValue
        bytes) with main <= ``rev`` (0 = current), skipping values at or below the compact
        revision that a compaction at ``rev`` would drop. Equal on members with equal history.

        Raises CompactedRevisionError for 0 < ``rev`` <= compact revision, FutureRevisionError
        for ``rev`` > current. (A negative ``rev`` counts as 0; etcd would hash nothing.)
        """
        rev = _check_int64(rev, "revision")
        compact_rev, current_rev = self._compact_rev, self._current_rev
        if 0 < rev <= compact_rev:
            raise CompactedRevisionError(f"revision {rev} <= compacted {compact_rev}")
        if rev > current_rev:
            raise FutureRevisionError(f"revision {rev} > current {current_rev}")
        if rev <= 0:
            rev = current_rev
        keep = self._index.keep(rev)
        lower = Revision(compact_rev + 1, 0)
        crc = crc32c(b"key")
        for r in self._records.irange(maximum=Revision(rev + 1, 0), inclusive=(True, False)):
            if r < lower and keep and r not in keep:
                continue
            rec: _Record = self._records[r]
            crc = crc32c(r.to_bytes(rec.tombstone) + encode_kv(rec.kv), crc)
        return HashKVResult(crc, current_rev, compact_rev)

    # --- snapshot and restore ---------------------------------------------------------------

    def snapshot(self) -> bytes:
        """The whole store as bytes; equal histories give equal bytes."""
        self._no_open_txn("snapshot")
        records = (
            (r.to_bytes(rec.tombstone), encode_kv(rec.kv)) for r, rec in self._records.items()
        )
        return encode_snapshot(self._current_rev, self._compact_rev, records, len(self._records))

    def restore(self, data: bytes) -> None:
        """Replace all state with a :meth:`snapshot`'s. Everything is parsed and checked
        first: on bad bytes MvccSnapshotError is raised and the store is unchanged. The index
        is rebuilt from the records the way etcd rebuilds it from bolt."""
        self._no_open_txn("restore")
        current_rev, compact_rev, records = decode_snapshot(_as_bytes(data, "snapshot"))
        index = TreeIndex()
        recs: SortedDict = SortedDict()
        size = 0
        last: Revision | None = None
        try:
            for rev_key, kv_bytes in records:
                rev = Revision.from_bytes(rev_key)
                tomb = is_tombstone_bytes(rev_key)
                if last is not None and rev <= last:
                    raise MvccSnapshotError(f"record {rev} not after {last}")
                kv = decode_kv(kv_bytes)
                _check_record(rev, tomb, kv)
                _restore_into_index(index, rev, tomb, kv)
                recs[rev] = _Record(kv, tomb)
                size += _record_cost(kv)
                last = rev
        except MvccInvariantError as e:
            raise MvccSnapshotError(f"inconsistent snapshot: {e}") from e
        # etcd derives the current revision this way; a mismatch means a damaged snapshot.
        derived = max(last.main if last is not None else 1, compact_rev)
        if current_rev != derived:
            raise MvccSnapshotError(f"current revision {current_rev}, records say {derived}")
        self._index, self._records, self._size = index, recs, size
        self._current_rev, self._compact_rev = current_rev, compact_rev

    # --- internals --------------------------------------------------------------------------

    def _no_open_txn(self, what: str) -> None:
        if self._txn is not None:
            raise TxnStateError(f"cannot {what} while a write txn is open")

    def _add_record(self, rev: Revision, rec: _Record) -> None:
        self._records[rev] = rec
        self._size += _record_cost(rec.kv)

    def _drop_record(self, rev: Revision) -> None:
        rec = self._records.pop(rev)
        self._size -= _record_cost(rec.kv)


def _check_record(rev: Revision, tombstone: bool, kv: KeyValue) -> None:
    if not kv.key:
        raise MvccSnapshotError(f"record {rev} has an empty key")
    if not tombstone and kv.mod_revision != rev.main:
        raise MvccSnapshotError(f"record {rev} has mod_revision {kv.mod_revision}")


def _restore_into_index(index: TreeIndex, rev: Revision, tombstone: bool, kv: KeyValue) -> None:
    """One step of etcd's ``restoreIntoIndex``."""
    ki = index.key_index(kv.key)
    if ki is not None:
        if tombstone:
            # etcd ignores a tombstone of an already deleted key here.
            with contextlib.suppress(RevisionNotFoundError):
                ki.tombstone(rev)
        else:
            ki.put(rev)
    elif not tombstone:
        # The oldest surviving value of the key: mid-generation after a compaction.
        ki = KeyIndex(kv.key)
        ki.restore(Revision(kv.create_revision, 0), rev, kv.version)
        index.insert(ki)


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
        prev_kvs: list[KeyValue] = [store._records[r].kv for r in revs]
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
        store._add_record(rev, _Record(stored, tombstone))
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
            store._drop_record(c.rev)
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
