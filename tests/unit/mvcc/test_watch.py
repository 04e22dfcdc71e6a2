"""The watch hub: synced / unsynced / victim transitions, ordering, limits, compaction, restore,
filters, prev_kv, progress; and a hypothesis state machine checking that every watcher sees
exactly the committed history from its start revision, whatever the consumers' pace.

All hubs here are driven by hand (``schedule=None``) except the one test of self-scheduling,
so every interleaving is deterministic.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from minietcd.errors import MvccInvariantError
from minietcd.mvcc import Event, EventType, KeyValue, KVStore
from minietcd.mvcc.index import in_range
from minietcd.mvcc.watch import (
    ERR_DUPLICATE_ID,
    ERR_EMPTY_RANGE,
    INVALID_WATCH_ID,
    WatcherState,
    WatchHub,
    WatchResponse,
    WatchStream,
)


def make(**limits: Any) -> tuple[KVStore, WatchHub]:
    kv = KVStore()
    return kv, WatchHub(kv, schedule=None, **limits)


def events_of(resps: Sequence[WatchResponse], watch_id: int | None = None) -> list[Event]:
    return [ev for r in resps if watch_id is None or r.watch_id == watch_id for ev in r.events]


def keys_revs(evs: Sequence[Event]) -> list[tuple[bytes, int]]:
    return [(ev.kv.key, ev.kv.mod_revision) for ev in evs]


def created(stream: WatchStream, *args: object, **kwargs: object) -> int:
    """Create a watcher and consume its created response."""
    wid = stream.watch(*args, **kwargs)  # type: ignore[arg-type]  # watch()'s arguments
    resp = stream.pop()
    assert resp is not None and resp.created and not resp.canceled and resp.watch_id == wid
    return wid


# --- synced watchers -------------------------------------------------------------------------


def test_created_response_then_events_at_txn_end() -> None:
    kv, hub = make()
    kv.put(b"x", b"0")
    s = hub.new_stream()
    wid = s.watch(b"a")
    assert wid == 0  # auto ids start at 0, as etcd's
    assert s.drain() == [WatchResponse(0, 2, created=True)]
    assert hub.synced_count == 1
    kv.put(b"a", b"1")
    kv.put(b"b", b"2")  # not watched
    with kv.write() as txn:  # one txn, one revision, one response
        txn.put(b"a", b"3")
        txn.put(b"c", b"4")
    [r1, r2] = s.drain()
    assert r1.revision == 3 and [e.kv for e in r1.events] == [KeyValue(b"a", 3, 3, 1, b"1")]
    assert r2.revision == 5 and [e.kv.value for e in r2.events] == [b"3"]
    assert s.pop() is None


def test_one_response_holds_all_events_of_a_revision() -> None:
    kv, hub = make()
    s = hub.new_stream()
    created(s, b"a", b"z")
    with kv.write() as txn:
        for k in (b"a", b"b", b"c"):
            txn.put(k, b"v")
        txn.delete_range(b"b")
    [r] = s.drain()
    assert [(e.type, e.kv.key) for e in r.events] == [
        (EventType.PUT, b"a"),
        (EventType.PUT, b"b"),
        (EventType.PUT, b"c"),
        (EventType.DELETE, b"b"),
    ]


def test_range_conventions() -> None:
    kv, hub = make()
    s = hub.new_stream()
    one = created(s, b"b")
    half_open = created(s, b"b", b"d")
    from_b = created(s, b"b", b"\0")
    everything = created(s, b"\0", b"\0")
    for k in (b"a", b"b", b"c", b"d", b"e"):
        kv.put(k)
    got = s.drain()
    assert [e.kv.key for e in events_of(got, one)] == [b"b"]
    assert [e.kv.key for e in events_of(got, half_open)] == [b"b", b"c"]
    assert [e.kv.key for e in events_of(got, from_b)] == [b"b", b"c", b"d", b"e"]
    assert [e.kv.key for e in events_of(got, everything)] == [b"a", b"b", b"c", b"d", b"e"]


def test_future_start_revision_waits_synced() -> None:
    kv, hub = make()
    s = hub.new_stream()
    wid = created(s, b"k", start_revision=4)
    assert s.watcher(wid) is not None and s.watcher(wid).state is WatcherState.SYNCED  # type: ignore[union-attr]  # not None, checked first
    for v in (b"2", b"3", b"4", b"5"):
        kv.put(b"k", v)
    assert [e.kv.mod_revision for e in events_of(s.drain())] == [4, 5]


def test_filters_and_prev_kv() -> None:
    kv, hub = make()
    kv.put(b"k", b"old")
    s = hub.new_stream()
    no_put = created(s, b"k", no_put=True)
    no_del = created(s, b"k", no_delete=True, prev_kv=True)
    kv.put(b"k", b"new")
    kv.delete_range(b"k")
    got = s.drain()
    assert [(r.watch_id, [e.type for e in r.events]) for r in got] == [
        (no_del, [EventType.PUT]),
        (no_put, [EventType.DELETE]),
    ]
    put_resp = got[0]
    assert put_resp.prev_kv and not got[1].prev_kv
    assert put_resp.events[0].prev_kv == KeyValue(b"k", 2, 2, 1, b"old")


def test_refused_creates_and_auto_ids() -> None:
    _kv, hub = make()
    s = hub.new_stream()
    assert created(s, b"a", watch_id=1) == 1
    assert s.watch(b"b", b"a") == INVALID_WATCH_ID
    assert s.watch(b"a", b"a") == INVALID_WATCH_ID
    assert s.watch(b"a", watch_id=1) == INVALID_WATCH_ID
    refused = s.drain()
    assert [r.cancel_reason for r in refused] == [ERR_EMPTY_RANGE, ERR_EMPTY_RANGE, ERR_DUPLICATE_ID]
    assert all(r.created and r.canceled and r.watch_id == -1 and r.revision == 1 for r in refused)
    # Auto ids skip the ones clients chose.
    assert [created(s, b"x") for _ in range(3)] == [0, 2, 3]
    assert hub.synced_count == 4


def test_cancel_drops_queued_events_and_answers_once() -> None:
    kv, hub = make()
    s = hub.new_stream()
    a = created(s, b"k")
    b = created(s, b"k")
    kv.put(b"k")
    kv.put(b"k")
    assert s.cancel(a)
    assert not s.cancel(a) and not s.cancel(99)  # unknown ids: no answer, as etcd
    got = s.drain()
    assert [(r.watch_id, r.canceled, len(r.events)) for r in got] == [
        (b, False, 1),
        (b, False, 1),
        (a, True, 0),
    ]
    assert got[-1].revision == 3
    assert hub.buffered_events == 0 and hub.synced_count == 1
    kv.put(b"k")
    assert [r.watch_id for r in s.drain()] == [b]


def test_close_releases_everything() -> None:
    kv, hub = make(stream_buffer=1)
    s = hub.new_stream()
    created(s, b"k")
    created(s, b"k", start_revision=1)
    kv.put(b"k")
    kv.put(b"k")  # the first watcher is a victim now
    assert hub.victim_count == 1 and hub.unsynced_count == 1 and hub.buffered_events == 1
    s.close()
    assert (hub.synced_count, hub.unsynced_count, hub.victim_count, hub.buffered_events) == (0, 0, 0, 0)
    kv.put(b"k")
    assert s.pop() is None


def test_revision_gap_is_an_invariant_error() -> None:
    kv, _hub = make()
    other = KVStore()
    other.put(b"k")
    other.put(b"k")
    kv.restore(other.snapshot())  # without hub.after_restore()
    with pytest.raises(MvccInvariantError):
        kv.put(b"k")


# --- unsynced watchers -----------------------------------------------------------------------


def test_past_start_revision_catches_up_from_history() -> None:
    kv, hub = make()
    for i in range(5):
        kv.put(b"k", str(i).encode())  # revisions 2..6
    s = hub.new_stream()
    wid = created(s, b"k", start_revision=3, prev_kv=True)
    assert hub.unsynced_count == 1 and s.pop() is None
    kv.put(b"k", b"5")  # revision 7 happens while unsynced: read from history too
    hub.run_until_idle()
    [r] = s.drain()
    assert r.watch_id == wid and r.revision == 7 and r.prev_kv
    assert [e.kv.mod_revision for e in r.events] == [3, 4, 5, 6, 7]
    assert r.events[0].prev_kv is not None and r.events[0].prev_kv.mod_revision == 2
    assert hub.synced_count == 1 and hub.unsynced_count == 0
    kv.put(b"k")
    assert [e.kv.mod_revision for e in events_of(s.drain())] == [8]


def test_catch_up_in_batches_never_splits_a_revision() -> None:
    kv, hub = make(batch_max_revs=2, batch_max_events=3)
    for _ in range(3):
        with kv.write() as txn:  # 2 events per revision
            txn.put(b"a")
            txn.put(b"b")
    kv.put(b"a")
    s = hub.new_stream()
    created(s, b"a", b"c", start_revision=2)
    assert hub.step()  # history window [2, 3]
    assert not hub.step()  # window [4, 5]: caught up
    got = s.drain()
    revs = [[e.kv.mod_revision for e in r.events] for r in got]
    assert revs == [[2, 2, 3, 3], [4, 4, 5]]
    # The header says how far the watcher has seen: the end of a cut batch, then current.
    assert [r.revision for r in got] == [3, 5]


def test_nothing_matching_in_history_just_becomes_synced() -> None:
    kv, hub = make()
    kv.put(b"x")
    s = hub.new_stream()
    created(s, b"k", start_revision=1)
    hub.run_until_idle()
    assert s.pop() is None and hub.synced_count == 1


def test_unsynced_watchers_take_turns() -> None:
    kv, hub = make(max_watchers_per_sync=2, batch_max_revs=1)
    for _ in range(3):
        kv.put(b"k")
    s = hub.new_stream()
    ids = [created(s, b"k", start_revision=2) for _ in range(3)]
    hub.step()  # the first two get revision 2, and go to the back of the line
    hub.step()  # the third's turn: the history window starts at its revision 2
    hub.step()  # the first two again
    assert [(r.watch_id, r.revision) for r in s.drain()] == [
        (ids[0], 2),
        (ids[1], 2),
        (ids[2], 2),
        (ids[0], 3),
        (ids[1], 3),
    ]
    hub.run_until_idle()
    assert sorted(keys_revs(events_of(s.drain()))) == [(b"k", 3), (b"k", 4), (b"k", 4), (b"k", 4)]


# --- victims ---------------------------------------------------------------------------------


def test_full_stream_makes_a_victim_without_blocking_writes_or_others() -> None:
    kv, hub = make(stream_buffer=2)
    slow, fast = hub.new_stream(), hub.new_stream()
    created(slow, b"k")
    created(fast, b"k")
    for _ in range(10):
        kv.put(b"k")  # never blocks
        assert len(fast.drain()) == 1  # the fast reader gets every revision at once
    assert slow.pending == 2 and hub.victim_count == 1
    # The victim keeps one parked response; the rest waits in the store's history.
    assert [e.kv.mod_revision for e in events_of([slow.pop(), slow.pop()])] == [2, 3]  # type: ignore[list-item]  # both pops return a response here
    hub.run_until_idle()  # parked revision 4 is queued; 5.. come from history
    assert hub.victim_count == 0
    got = []
    while slow.pending or hub.has_work():
        got += slow.drain()
        hub.run_until_idle()
    assert [e.kv.mod_revision for e in events_of(got)] == list(range(4, 12))
    assert hub.synced_count == 2


def test_victim_from_history_catch_up() -> None:
    kv, hub = make(stream_buffer=1, batch_max_revs=1)
    for _ in range(4):
        kv.put(b"k")
    s = hub.new_stream()
    created(s, b"k", start_revision=2)
    hub.step()  # revision 2 queued
    hub.step()  # revision 3 does not fit
    assert hub.victim_count == 1 and not hub.has_work()
    got = []
    while s.pending or hub.has_work():
        got += s.drain()
        hub.run_until_idle()
    assert [e.kv.mod_revision for e in events_of(got)] == [2, 3, 4, 5]


def test_global_limit_parks_watchers_of_other_streams() -> None:
    kv, hub = make(max_buffered_events=2)
    a, b = hub.new_stream(), hub.new_stream()
    created(a, b"k")
    created(b, b"k")
    kv.put(b"k")
    kv.put(b"k")  # a: 1 event, b: 1 event -> the global limit is reached
    assert hub.buffered_events == 2 and hub.victim_count == 2
    a.drain()  # frees room: victims may retry
    hub.run_until_idle()
    b.drain()
    hub.run_until_idle()
    a_got, b_got = a.drain(), b.drain()
    hub.run_until_idle()
    a_got += a.drain()
    b_got += b.drain()
    assert hub.victim_count == 0 and hub.synced_count == 2
    assert [e.kv.mod_revision for e in events_of(a_got)] == [3]
    assert [e.kv.mod_revision for e in events_of(b_got)] == [3]


def test_a_single_response_larger_than_the_global_limit_gets_through() -> None:
    kv, hub = make(max_buffered_events=1)
    s = hub.new_stream()
    created(s, b"a", b"z")
    with kv.write() as txn:
        for k in (b"a", b"b", b"c"):
            txn.put(k)
    assert len(events_of(s.drain())) == 3


# --- compaction ------------------------------------------------------------------------------


def test_start_below_compaction_is_cancelled_with_compact_revision() -> None:
    kv, hub = make()
    for _ in range(5):
        kv.put(b"k")
    kv.compact(4)
    s = hub.new_stream()
    wid = created(s, b"k", start_revision=3, watch_id=7)
    hub.run_until_idle()
    assert s.drain() == [WatchResponse(wid, 0, compact_revision=4, canceled=True)]
    w = s.watcher(wid)
    assert w is not None and w.state is WatcherState.DONE
    # As in etcd the id stays taken until the client cancels the watcher.
    assert s.watch(b"k", watch_id=wid) == INVALID_WATCH_ID
    assert s.drain()[0].cancel_reason == ERR_DUPLICATE_ID
    assert s.cancel(wid) and s.drain()[0].canceled
    # Exactly at the compaction point is still fine.
    ok = created(s, b"k", start_revision=4)
    hub.run_until_idle()
    assert [(r.watch_id, [e.kv.mod_revision for e in r.events]) for r in s.drain()] == [(ok, [4, 5, 6])]


def test_negative_start_revision_follows_etcd() -> None:
    kv, hub = make()
    kv.put(b"k")
    s = hub.new_stream()
    from_all = created(s, b"k", start_revision=-1)  # -1 is not below compact revision -1
    below = created(s, b"k", start_revision=-2)
    hub.run_until_idle()
    got = s.drain()
    assert [e.kv.mod_revision for e in events_of(got, from_all)] == [2]
    assert WatchResponse(below, 0, compact_revision=-1, canceled=True) in got


def test_victim_that_falls_below_compaction_is_cancelled() -> None:
    kv, hub = make(stream_buffer=1)
    s = hub.new_stream()
    wid = created(s, b"k")
    for _ in range(4):
        kv.put(b"k")  # revision 2 queued, 3 parked, 4 and 5 missed
    kv.compact(5)
    s.drain()
    hub.run_until_idle()  # parked 3 goes out; 4.. would come from history, now compacted
    got = s.drain()
    assert [e.kv.mod_revision for e in events_of(got)] == [3]
    assert got[-1] == WatchResponse(wid, 0, compact_revision=5, canceled=True)


def test_progress_all_not_held_back_by_a_compacted_watcher() -> None:
    kv, hub = make()
    kv.put(b"k")
    kv.put(b"k")
    kv.compact(3)
    s = hub.new_stream()
    created(s, b"k", start_revision=2)
    s.request_progress_all()
    assert s.pop() is None
    hub.run_until_idle()
    assert [r.watch_id for r in s.drain()] == [0, INVALID_WATCH_ID]


# --- restore ---------------------------------------------------------------------------------


def test_restore_turns_synced_watchers_unsynced_from_their_next_revision() -> None:
    kv, hub = make()
    kv.put(b"k", b"1")  # 2
    s = hub.new_stream()
    w_now = created(s, b"k")
    w_future = created(s, b"k", start_revision=5)
    kv.put(b"k", b"2")  # 3
    assert keys_revs(events_of(s.drain())) == [(b"k", 3)]
    leader = KVStore()
    leader.restore(kv.snapshot())
    for v in (b"3", b"4", b"5"):
        leader.put(b"k", v)  # 4, 5, 6
    kv.restore(leader.snapshot())
    hub.after_restore()
    assert hub.unsynced_count == 2 and hub.synced_count == 0
    kv.put(b"k", b"6")  # 7: notify finds nobody synced; history has it
    hub.run_until_idle()
    got = s.drain()
    assert [e.kv.mod_revision for e in events_of(got, w_now)] == [4, 5, 6, 7]
    assert [e.kv.mod_revision for e in events_of(got, w_future)] == [5, 6, 7]
    assert hub.synced_count == 2


def test_restore_with_compacted_history_cancels() -> None:
    kv, hub = make()
    s = hub.new_stream()
    wid = created(s, b"k")
    leader = KVStore()
    for _ in range(4):
        leader.put(b"k")
    leader.compact(4)
    kv.restore(leader.snapshot())
    hub.after_restore()
    hub.run_until_idle()
    assert s.drain() == [WatchResponse(wid, 0, compact_revision=4, canceled=True)]


def test_restore_to_an_older_store_does_not_repeat_events() -> None:
    kv, hub = make()
    old = kv.snapshot()
    s = hub.new_stream()
    created(s, b"k")
    kv.put(b"k")
    kv.put(b"k")
    s.drain()
    kv.restore(old)
    hub.after_restore()
    hub.run_until_idle()
    assert hub.synced_count == 1 and s.pop() is None
    kv.put(b"k")  # revision 2 again: the watcher already saw a revision 2
    kv.put(b"k")
    kv.put(b"k")
    assert [e.kv.mod_revision for e in events_of(s.drain())] == [4]


# --- progress --------------------------------------------------------------------------------


def test_progress_all_waits_for_every_watcher_to_be_synced() -> None:
    kv, hub = make()
    for _ in range(3):
        kv.put(b"k")
    s = hub.new_stream()
    s.request_progress_all()  # no watchers: answered at once (etcd 3.4 does too)
    assert s.drain() == [WatchResponse(INVALID_WATCH_ID, 4)]
    created(s, b"k")
    behind = created(s, b"k", start_revision=2)
    s.request_progress_all()
    assert s.pop() is None  # deferred: the unsynced watcher's events must go first
    kv.put(b"k")
    hub.run_until_idle()
    got = s.drain()
    assert got[-1] == WatchResponse(INVALID_WATCH_ID, 5)
    assert [e.kv.mod_revision for e in events_of(got, behind)] == [2, 3, 4, 5]


def test_progress_tick_notifies_idle_synced_watchers_only() -> None:
    kv, hub = make()
    kv.put(b"k")
    s = hub.new_stream()
    quiet = created(s, b"a", progress_notify=True)
    busy = created(s, b"k", progress_notify=True)
    created(s, b"k")  # did not ask
    lagging = created(s, b"k", start_revision=1, progress_notify=True)
    kv.put(b"k")  # busy got an event: its next notification is elided
    s.drain()
    s.progress_tick()
    assert s.drain() == [WatchResponse(quiet, 3)]
    s.progress_tick()
    assert s.drain() == [WatchResponse(quiet, 3), WatchResponse(busy, 3)]
    hub.run_until_idle()
    s.drain()
    s.progress_tick()
    s.progress_tick()
    assert [r.watch_id for r in s.drain()] == [quiet, busy, quiet, busy, lagging]


def test_progress_is_dropped_when_the_stream_is_full() -> None:
    kv, hub = make(stream_buffer=1)
    s = hub.new_stream()
    created(s, b"k", progress_notify=True)
    kv.put(b"k")
    s.request_progress(0)
    assert len(s.drain()) == 1


# --- self-scheduling -------------------------------------------------------------------------


async def test_hub_schedules_its_own_steps_on_the_running_loop() -> None:
    kv = KVStore()
    hub = WatchHub(kv, batch_max_revs=2, stream_buffer=1)
    for _ in range(6):
        kv.put(b"k")
    s = hub.new_stream()
    ready = asyncio.Event()
    s.on_ready = ready.set
    created(s, b"k", start_revision=2)
    got: list[WatchResponse] = []
    while len(events_of(got)) < 6:
        ready.clear()
        got += s.drain()  # each pop lets a parked victim retry
        if len(events_of(got)) < 6:
            await asyncio.wait_for(ready.wait(), 5)
    assert [e.kv.mod_revision for e in events_of(got)] == list(range(2, 8))
    assert hub.synced_count == 1


@pytest.mark.parametrize(
    "limit",
    ["stream_buffer", "max_buffered_events", "max_watchers_per_sync", "batch_max_revs", "batch_max_events"],
)
def test_zero_limits_are_refused(limit: str) -> None:
    with pytest.raises(ValueError):
        make(**{limit: 0})


# --- the property ----------------------------------------------------------------------------

KEYS = [b"a", b"b", b"c", b"d"]
RANGES = [(b"a", b""), (b"b", b""), (b"a", b"c"), (b"b", b"\0"), (b"\0", b"\0")]


@dataclass
class Spec:
    """What one watcher asked for, and what it got."""

    stream: int
    watch_id: int
    key: bytes
    range_end: bytes
    start: int
    no_put: bool
    no_delete: bool
    cancel_requested: bool = False
    responses: list[WatchResponse] = field(default_factory=list)

    def wants(self, ev: Event) -> bool:
        if ev.kv.mod_revision < self.start or not in_range(self.key, self.range_end, ev.kv.key):
            return False
        return not (self.no_put if ev.type is EventType.PUT else self.no_delete)


class WatchMachine(RuleBasedStateMachine):
    """Random writes, watchers, slow readers, compactions and restores against tiny limits."""

    def __init__(self) -> None:
        super().__init__()
        self.kv = KVStore()
        self.hub = WatchHub(
            self.kv,
            schedule=None,
            stream_buffer=2,
            max_buffered_events=4,
            max_watchers_per_sync=2,
            batch_max_revs=2,
            batch_max_events=3,
            install=False,
        )
        #: Every committed event, in order: the truth watchers are checked against.
        self.history: list[Event] = []
        #: Every revision a compaction happened at (here or on a leader we restored from).
        self.compactions: set[int] = set()
        self.kv.set_observer(self._observe)
        self.streams = [self.hub.new_stream() for _ in range(3)]
        #: Per stream: every response it produced, in order.
        self.out: list[list[WatchResponse]] = [[] for _ in self.streams]
        self.specs: list[Spec] = []
        #: Per stream: specs whose created response has not been read yet, in order.
        self.creating: list[list[Spec]] = [[] for _ in self.streams]
        #: Per stream: watch id -> the spec it belongs to now.
        self.by_id: list[dict[int, Spec]] = [{} for _ in self.streams]

    def _observe(self, rev: int, events: Sequence[Event]) -> None:
        # The server's way of chaining: record, then tell the hub.
        self.history.extend(events)
        self.hub.notify(rev, events)

    def _read(self, i: int, n: int) -> None:
        for _ in range(n):
            resp = self.streams[i].pop()
            if resp is None:
                return
            self.out[i].append(resp)
            if resp.watch_id == INVALID_WATCH_ID:
                continue
            if resp.created:
                # Creates are answered in order; ids can be reused after a cancel.
                self.by_id[i][resp.watch_id] = self.creating[i].pop(0)
            spec = self.by_id[i][resp.watch_id]
            spec.responses.append(resp)
            if resp.canceled and not resp.compact_revision:
                del self.by_id[i][resp.watch_id]  # a compacted watcher's id stays taken

    @rule(key=st.sampled_from(KEYS), value=st.binary(max_size=2))
    def put(self, key: bytes, value: bytes) -> None:
        self.kv.put(key, value)

    @rule(ops=st.lists(st.tuples(st.booleans(), st.sampled_from(KEYS)), min_size=1, max_size=4))
    def txn(self, ops: list[tuple[bool, bytes]]) -> None:
        with self.kv.write() as txn:
            for is_put, key in ops:
                if is_put:
                    txn.put(key, b"t")
                else:
                    txn.delete_range(key)

    @rule(rng=st.sampled_from(RANGES))
    def delete(self, rng: tuple[bytes, bytes]) -> None:
        self.kv.delete_range(*rng)

    @rule(
        stream=st.integers(0, 2),
        rng=st.sampled_from(RANGES),
        back=st.integers(-1, 8),
        no_put=st.booleans(),
        no_delete=st.booleans(),
        progress=st.booleans(),
    )
    def watch(
        self, stream: int, rng: tuple[bytes, bytes], back: int, no_put: bool, no_delete: bool, progress: bool
    ) -> None:
        cur = self.kv.current_revision
        # back -1: from now (start 0); else that many revisions back, or into the future.
        start = 0 if back == -1 else max(1, cur - back + 3)
        s = self.streams[stream]
        wid = s.watch(rng[0], rng[1], start, no_put=no_put, no_delete=no_delete, progress_notify=progress)
        assert wid != INVALID_WATCH_ID
        spec = Spec(stream, wid, rng[0], rng[1], start or cur + 1, no_put, no_delete)
        self.specs.append(spec)
        self.creating[stream].append(spec)

    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        live = [sp for sp in self.specs if not sp.cancel_requested]
        if live:
            spec = data.draw(st.sampled_from(live))
            spec.cancel_requested = True
            # Compacted (done) watchers are still cancellable, as in etcd.
            assert self.streams[spec.stream].cancel(spec.watch_id)

    @rule(stream=st.integers(0, 2), n=st.integers(1, 4))
    def read(self, stream: int, n: int) -> None:
        self._read(stream, n)

    @rule()
    def step(self) -> None:
        self.hub.step()

    @rule(stream=st.integers(0, 2))
    def progress_all(self, stream: int) -> None:
        self.streams[stream].request_progress_all()

    @rule(stream=st.integers(0, 2))
    def progress_tick(self, stream: int) -> None:
        self.streams[stream].progress_tick()

    @precondition(lambda self: self.kv.current_revision > 1)
    @rule(back=st.integers(0, 6))
    def compact(self, back: int) -> None:
        rev = max(self.kv.compact_revision + 1, self.kv.current_revision - back)
        if rev <= self.kv.current_revision:
            self.kv.compact(rev)
            self.compactions.add(rev)

    @rule(writes=st.lists(st.sampled_from(KEYS), max_size=3), compact=st.booleans())
    def restore(self, writes: list[bytes], compact: bool) -> None:
        # A leader that applied more than we did sends us its snapshot.
        leader = KVStore()
        leader.restore(self.kv.snapshot())
        leader.set_observer(lambda rev, evs: self.history.extend(evs))
        for k in writes:
            leader.put(k, b"r")
        if compact and leader.current_revision > max(leader.compact_revision, 1):
            leader.compact(leader.current_revision)
            self.compactions.add(leader.current_revision)
        self.kv.restore(leader.snapshot())
        self.hub.after_restore()

    @invariant()
    def buffers_bounded(self) -> None:
        for s in self.streams:
            assert s.pending - s.control_pending <= self.hub.stream_buffer
        # One response may pass the global limit when nothing else is queued (at most 2
        # revisions of at most 4 events each here).
        assert self.hub.buffered_events <= max(self.hub.max_buffered_events, 8)

    def teardown(self) -> None:
        # Let every slow reader finish, then check what each watcher saw.
        for _ in range(10_000):
            for i, s in enumerate(self.streams):
                self._read(i, s.pending)
            self.hub.run_until_idle()
            if not any(s.pending for s in self.streams) and not self.hub.has_work():
                break
        assert self.hub.victim_count == 0 and self.hub.unsynced_count == 0
        for spec in self.specs:
            self._check_watcher(spec)
        for i in range(len(self.streams)):
            self._check_progress(i)

    def _check_watcher(self, spec: Spec) -> None:
        resps = spec.responses
        assert resps[0].created and not resps[0].canceled
        got = [ev for r in resps for ev in r.events]
        expected = [ev for ev in self.history if spec.wants(ev)]
        seen: set[int] = set()
        for r in resps:
            revs = {e.kv.mod_revision for e in r.events}
            assert not revs & seen, "a revision split over two responses"
            seen |= revs
            if r.events:
                assert r.revision >= r.events[-1].kv.mod_revision

        # etcd's compaction at R drops the deletes at R (and puts deleted again in R) though a
        # watch may start at R: read from history, a compaction revision can be incomplete.
        # Everything else must match exactly.
        def split(
            evs: list[Event],
        ) -> tuple[list[tuple[EventType, KeyValue]], set[tuple[EventType, KeyValue]]]:
            whole = [(e.type, e.kv) for e in evs if e.kv.mod_revision not in self.compactions]
            partial = {(e.type, e.kv) for e in evs if e.kv.mod_revision in self.compactions}
            return whole, partial

        got_whole, got_partial = split(got)
        exp_whole, exp_partial = split(expected)
        # No duplicates, no gaps, revision order: a prefix of the truth...
        assert got_whole == exp_whole[: len(got_whole)]
        assert got_partial <= exp_partial
        assert [e.kv.mod_revision for e in got] == sorted(e.kv.mod_revision for e in got)
        ended = [r for r in resps[1:] if r.canceled]
        assert all(r.canceled for r in resps[len(resps) - len(ended) :]), "events after a cancel"
        compacted = [r for r in ended if r.compact_revision]
        if compacted:
            # ...cut short only because the history it still needed was compacted.
            last = got[-1].kv.mod_revision if got else spec.start - 1
            assert last + 1 < compacted[0].compact_revision
        elif not ended:
            assert len(got_whole) == len(exp_whole)  # ...and all of it

    def _check_progress(self, i: int) -> None:
        """After a progress response at revision R, no later event response of that watcher
        (of every watcher then on the stream, for a stream-wide one) has an event <= R."""
        floor: dict[int, int] = {}
        live: set[int] = set()
        for r in self.out[i]:
            if r.events:
                assert r.events[0].kv.mod_revision > floor.get(r.watch_id, 0)
            elif r.created or r.canceled:
                if r.watch_id != INVALID_WATCH_ID:
                    (live.add if r.created and not r.canceled else live.discard)(r.watch_id)
                    floor.pop(r.watch_id, None)  # ids are reused after a cancel
            elif r.watch_id == INVALID_WATCH_ID:
                for wid in live:
                    floor[wid] = max(floor.get(wid, 0), r.revision)
            else:
                floor[r.watch_id] = max(floor.get(r.watch_id, 0), r.revision)


TestWatchMachine = WatchMachine.TestCase
TestWatchMachine.settings = settings(
    max_examples=300, stateful_step_count=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
