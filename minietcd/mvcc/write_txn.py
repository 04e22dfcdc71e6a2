"""The store's one open write transaction (etcd ``mvcc/kvstore_txn.go``): every change of it
shares one main revision, its reads see its own changes, and :meth:`WriteTxn.end` is the one
place a revision becomes current and events are produced (DESIGN rule 5). The store it writes
to is :class:`~minietcd.mvcc.kvstore.KVStore`, which opens it with ``store.write()``.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING

from minietcd.errors import (
    EmptyKeyError,
    KeyNotFoundError,
    LeaseProvidedError,
    MvccInvariantError,
    TxnStateError,
    ValueProvidedError,
)
from minietcd.mvcc.checks import as_bytes, check_int64
from minietcd.mvcc.revision import ZERO_REV, Revision
from minietcd.mvcc.types import DeleteResult, Event, EventType, KeyValue, PutResult, RangeOptions, RangeResult

if TYPE_CHECKING:
    from minietcd.mvcc.kvstore import KVStore

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
        key = as_bytes(key, "key")
        value = as_bytes(value, "value")
        lease = check_int64(lease, "lease")
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
        key = as_bytes(key, "key")
        range_end = as_bytes(range_end, "range_end")
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
