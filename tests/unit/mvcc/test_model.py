"""Property test: KVStore against a trivial model that keeps the whole key space per revision.

A hypothesis state machine runs random write txns (puts and range deletes), aborted txns,
compactions and snapshot/restore round trips, and after every step checks ranges at every
readable revision, the events of each txn, the replayable history, and that a twin store fed
the same operations (but never restored) has the same HashKV.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from minietcd.errors import CompactedRevisionError, FutureRevisionError
from minietcd.mvcc import Event, EventType, KeyValue, KVStore, RangeOptions
from minietcd.mvcc.index import in_range

KEYS = [b"a", b"b", b"c", b"d", b"e"]
keys = st.sampled_from(KEYS)
range_ends = st.sampled_from([b"", b"\0", b"a", b"c", b"e", b"f"])
puts = st.tuples(st.just("put"), keys, st.binary(max_size=3), st.integers(0, 2))
dels = st.tuples(st.just("del"), keys, range_ends)
ops_lists = st.lists(st.one_of(puts, dels), max_size=4)


class Model:
    """The key space at every revision, as plain dicts."""

    def __init__(self) -> None:
        self.states: dict[int, dict[bytes, KeyValue]] = {1: {}}
        self.current = 1
        self.compacted = -1
        self.log: list[Event] = []

    def txn(self, ops: list[tuple[Any, ...]]) -> tuple[list[object], list[Event]]:
        before = self.states[self.current]
        state = dict(before)
        rev = self.current + 1
        results: list[object] = []
        events: list[Event] = []
        for op in ops:
            if op[0] == "put":
                _, k, v, lease = op
                old = state.get(k)
                kv = KeyValue(k, old.create_revision if old else rev, rev,
                              old.version + 1 if old else 1, v, lease)  # fmt: skip
                state[k] = kv
                events.append(Event(EventType.PUT, kv, before.get(k)))
                results.append(rev)
            else:
                _, k, end = op
                doomed = sorted(x for x in state if in_range(k, end, x))
                results.append((len(doomed), [state[x] for x in doomed]))
                for x in doomed:
                    events.append(Event(EventType.DELETE, KeyValue(x, mod_revision=rev), before.get(x)))
                    del state[x]
        if events:
            self.current = rev
            self.states[rev] = state
            self.log.extend(events)
        return results, events

    def range(self, key: bytes, end: bytes, rev: int) -> list[KeyValue]:
        state = self.states[rev]
        return [state[k] for k in sorted(state) if in_range(key, end, k)]


def run_ops(store: KVStore, ops: list[tuple[Any, ...]]) -> list[object]:
    out: list[object] = []
    with store.write() as txn:
        for op in ops:
            if op[0] == "put":
                out.append(txn.put(op[1], op[2], op[3]).revision)
            else:
                r = txn.delete_range(op[1], op[2])
                out.append((r.deleted, r.prev_kvs))
    return out


class StoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.model = Model()
        self.seen: list[tuple[int, list[Event]]] = []
        self.store = KVStore(self._observe)
        self.twin = KVStore()

    def _observe(self, rev: int, events: Sequence[Event]) -> None:
        self.seen.append((rev, list(events)))

    @rule(ops=ops_lists)
    def write_txn(self, ops: list[tuple[Any, ...]]) -> None:
        want, events = self.model.txn(ops)
        n_seen = len(self.seen)
        assert run_ops(self.store, ops) == want
        run_ops(self.twin, ops)
        if events:
            assert self.seen[n_seen:] == [(self.model.current, events)]
        else:
            assert len(self.seen) == n_seen

    @rule(ops=ops_lists)
    def aborted_txn(self, ops: list[tuple[Any, ...]]) -> None:
        before = self.store.snapshot()
        with pytest.raises(ZeroDivisionError), self.store.write() as txn:
            for op in ops:
                if op[0] == "put":
                    txn.put(op[1], op[2], op[3])
                else:
                    txn.delete_range(op[1], op[2])
            raise ZeroDivisionError
        assert self.store.snapshot() == before

    @rule(data=st.data())
    def compact(self, data: st.DataObject) -> None:
        rev = data.draw(st.integers(self.model.compacted - 1, self.model.current + 1))
        if rev <= self.model.compacted:
            with pytest.raises(CompactedRevisionError):
                self.store.compact(rev)
        elif rev > self.model.current:
            with pytest.raises(FutureRevisionError):
                self.store.compact(rev)
        else:
            self.store.compact(rev)
            self.twin.compact(rev)
            self.model.compacted = rev

    @rule()
    def snapshot_restore(self) -> None:
        fresh = KVStore(self._observe)
        fresh.restore(self.store.snapshot())
        assert fresh.snapshot() == self.store.snapshot()
        self.store = fresh

    @rule(key=keys, end=range_ends, data=st.data(), limit=st.integers(0, 3))
    def check_range(self, key: bytes, end: bytes, data: st.DataObject, limit: int) -> None:
        rev = data.draw(st.integers(-1, self.model.current + 1))
        opts = RangeOptions(limit=limit, revision=rev)
        if rev > self.model.current:
            with pytest.raises(FutureRevisionError):
                self.store.range(key, end, opts)
            return
        at = self.model.current if rev <= 0 else rev
        if at < self.model.compacted:
            with pytest.raises(CompactedRevisionError):
                self.store.range(key, end, opts)
            return
        want = self.model.range(key, end, at)
        got = self.store.range(key, end, opts)
        cut = want[:limit] if limit > 0 else want
        assert got.kvs == cut
        assert got.count == len(want)
        assert got.more == (len(cut) < len(want))
        assert got.revision == self.model.current

    @invariant()
    def revisions_agree(self) -> None:
        assert self.store.current_revision == self.model.current
        assert self.store.compact_revision == self.model.compacted

    @invariant()
    def every_readable_revision_agrees(self) -> None:
        for rev in range(max(self.model.compacted, 1), self.model.current + 1):
            got = self.store.range(b"\0", b"\0", RangeOptions(revision=rev)).kvs
            assert got == self.model.range(b"\0", b"\0", rev), rev

    @invariant()
    def history_replays(self) -> None:
        start = self.model.compacted + 1
        want = [e for e in self.model.log if e.kv.mod_revision >= start]
        assert self.store.events_since(start) == want

    @invariant()
    def twin_hash_agrees(self) -> None:
        assert self.store.hash_kv() == self.twin.hash_kv()
        assert self.store.size_bytes() == self.twin.size_bytes()


StoreMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=30, deadline=None)
TestStoreMatchesModel = StoreMachine.TestCase
