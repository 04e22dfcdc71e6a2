"""The watch hub: etcd's watchable store (``mvcc/watchable_store.go``, ``watcher_group.go``,
``watcher.go``, ``watch.go``) as a plain object driven by calls instead of goroutines. The
watchers and their groups are in :mod:`.watcher`, a client's stream of them in
:mod:`.watch_stream`; this module moves watchers between the states below.

Every watcher is in exactly one state:

* **synced** — it has seen everything up to the store's revision; :meth:`WatchHub.notify`, run by
  the store at the end of each changing write txn (DESIGN rule 5), queues the txn's events for it;
* **unsynced** — its start revision is in the past, or it fell behind: :meth:`WatchHub.step`
  reads history (``KVStore.events_since``, at most ``batch_max_revs`` revisions at a time), queues
  it in batches and then promotes it to synced;
* **victim** — its stream's buffer was full: the response that did not fit is parked and retried
  once that stream (or any, for the global limit) drains; then the watcher is synced, or unsynced
  if revisions went by meanwhile;
* **done** — cancelled with ``compact_revision`` because the history it needs was compacted. As in
  etcd its id stays taken on the stream until the client cancels it.

What a watcher sees: events in revision order, all (matching) events of one revision in one
response, no duplicates, no gaps, from any start revision not yet compacted. A start revision
below the compaction point gets a cancel with ``compact_revision`` instead.

Nothing blocks: a full stream never stalls a write or another stream. Memory is bounded by the
per-stream buffer (``stream_buffer`` event/progress responses), the hub-wide ``max_buffered_events``
and one parked response per victim; a lagging watcher costs nothing until it is read from history.

There is no asyncio in the core. Background work (catching up unsynced watchers, retrying victims)
is :meth:`WatchHub.step`. By default the hub schedules it itself with ``call_soon`` on the running
event loop whenever there is work, one bounded step per callback so writers interleave; pass
``schedule=None`` to drive it by hand (deterministic tests do). Not thread-safe: use it from the
thread that applies writes.

Wiring::

    hub = WatchHub(kv)                 # installs hub.notify as kv's observer
    kv.restore(data); hub.after_restore()
    stream = hub.new_stream()          # one per gRPC Watch stream
    stream.on_ready = event.set        # told when a response is queued
    wid = stream.watch(b"a", b"b", start_revision=5, prev_kv=True)
    resp = stream.pop()                # WatchResponse or None; stream.close() at the end
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from itertools import islice

from minietcd.errors import MvccInvariantError
from minietcd.mvcc.kvstore import KVStore
from minietcd.mvcc.types import Event
from minietcd.mvcc.watch_stream import (
    AUTO_WATCH_ID,
    ERR_DUPLICATE_ID,
    ERR_EMPTY_RANGE,
    INVALID_WATCH_ID,
    WatchStream,
)
from minietcd.mvcc.watcher import Watcher, WatcherGroup, WatcherState, WatchResponse, collect

# The watch API in one import (the server, the package and the tests import it from here).
__all__ = [
    "AUTO_WATCH_ID",
    "ERR_DUPLICATE_ID",
    "ERR_EMPTY_RANGE",
    "INVALID_WATCH_ID",
    "Scheduler",
    "WatchHub",
    "WatchResponse",
    "WatchStream",
    "Watcher",
    "WatcherState",
]

#: Schedules a callback to run soon (``loop.call_soon``); raises RuntimeError if it cannot.
Scheduler = Callable[[Callable[[], None]], object]


def _call_soon(fn: Callable[[], None]) -> object:
    # Raises RuntimeError outside a running loop: the work then waits for an explicit step().
    return asyncio.get_running_loop().call_soon(fn)


def _cut(evs: list[Event], max_revs: int, max_events: int) -> tuple[list[Event], int]:
    """Cut a revision-ordered list to at most ``max_revs`` revisions, starting no new revision
    once ``max_events`` events are in; returns (the batch, first revision left out or 0). Cuts
    fall only between revisions, so one revision never spans two responses."""
    revs, last = 0, None
    for i, ev in enumerate(evs):
        rev = ev.kv.mod_revision
        if rev != last:
            if revs >= max_revs or i >= max_events:
                return evs[:i], rev
            revs, last = revs + 1, rev
    return evs, 0


class WatchHub:
    """All watchers of one store, in the synced / unsynced / victim groups. See the module
    docstring."""

    def __init__(
        self,
        kv: KVStore,
        *,
        stream_buffer: int = 1024,
        max_buffered_events: int = 1 << 18,
        max_watchers_per_sync: int = 512,
        batch_max_revs: int = 1000,
        batch_max_events: int = 10_000,
        schedule: Scheduler | None = _call_soon,
        install: bool = True,
    ) -> None:
        limits = (stream_buffer, max_buffered_events, max_watchers_per_sync, batch_max_revs, batch_max_events)
        if min(limits) < 1:  # a zero limit would stall catch-up forever
            raise ValueError("watch hub limits must be >= 1")
        self.kv = kv
        #: Event / progress responses one stream may hold (etcd's chanBufLen is 128).
        self.stream_buffer = stream_buffer
        #: Events all streams together may hold; a single response may exceed it when nothing
        #: else is queued, so a huge revision can always get through eventually.
        self.max_buffered_events = max_buffered_events
        #: Unsynced watchers looked at per step (etcd maxWatchersPerSync).
        self.max_watchers_per_sync = max_watchers_per_sync
        #: Revisions per history window and per catch-up response (etcd watchBatchMaxRevs).
        self.batch_max_revs = batch_max_revs
        #: A catch-up response starts no new revision after this many events.
        self.batch_max_events = batch_max_events
        self._schedule = schedule
        #: The last revision notify() saw: the next must be exactly one more.
        self._rev = kv.current_revision
        self._synced = WatcherGroup()
        self._unsynced = WatcherGroup()
        #: Victim -> the response that did not fit, in the order they became victims.
        self._victims: dict[Watcher, WatchResponse] = {}
        #: A stream drained since victims were last retried: retrying could succeed.
        self._victims_retry = False
        #: Events held in all streams' buffers (the global limit's count).
        self._buffered_events = 0
        #: A step is scheduled and has not run yet.
        self._scheduled = False
        if install:
            kv.set_observer(self.notify)

    # --- the store's side --------------------------------------------------------------------

    def notify(self, revision: int, events: Sequence[Event]) -> None:
        """The observer: the write txn at ``revision`` committed ``events``. Queues them for
        every synced watcher that wants them; one whose stream is full becomes a victim."""
        if revision != self._rev + 1:
            # A revision was skipped (a restore without after_restore()?): watchers would miss
            # events silently, so stop here (DESIGN rule 3).
            raise MvccInvariantError(f"watch hub saw revision {revision} after {self._rev}")
        self._rev = revision
        if not self._synced:
            return
        for w, evs in collect(self._synced, events).items():
            resp = w.response(revision, evs)
            if not w.stream._offer(resp):
                self._synced.discard(w)
                w.min_rev = revision + 1
                self._park(w, resp)

    def after_restore(self) -> None:
        """Call right after ``kv.restore()``: the store jumped without events, so every synced
        watcher must catch up from history from the revision after the last one it saw (etcd
        ``watchableStore.Restore``)."""
        for w in list(self._synced.members):
            self._synced.discard(w)
            # max: a watcher created for a future revision keeps waiting for that revision.
            w.min_rev = max(w.min_rev, self._rev + 1)
            w.state = WatcherState.UNSYNCED
            self._unsynced.add(w)
        self._rev = self.kv.current_revision
        self._kick()

    # --- background work ---------------------------------------------------------------------

    def step(self) -> bool:
        """One bounded round of background work: retry victims if a stream drained, then one
        catch-up batch for unsynced watchers. Returns whether more work is ready now."""
        if self._victims and self._victims_retry:
            self._victims_retry = False
            self.retry_victims()
        if self._unsynced:
            self.sync_unsynced()
        return self.has_work()

    def run_until_idle(self) -> None:
        """step() until nothing is ready (victims wait for their streams to drain)."""
        while self.step():
            pass

    def has_work(self) -> bool:
        return bool(self._unsynced) or (bool(self._victims) and self._victims_retry)

    def sync_unsynced(self) -> None:
        """etcd ``syncWatchers``: take up to ``max_watchers_per_sync`` unsynced watchers, cancel
        those whose history is compacted, read one window of history from the lowest revision
        any of the rest needs, queue each its batch; the caught-up ones become synced."""
        cur, compact = self.kv.current_revision, self.kv.compact_revision
        live: list[Watcher] = []
        for w in list(islice(self._unsynced.members, self.max_watchers_per_sync)):
            if w.min_rev < compact:
                self._unsynced.discard(w)
                self._compacted(w, compact)
            elif w.min_rev > cur:
                # Only after a restore to an older store: nothing to read yet.
                self._unsynced.discard(w)
                self._make_synced(w)
            else:
                live.append(w)
        if not live:
            return
        lo = min(w.min_rev for w in live)
        hi = min(cur, lo + self.batch_max_revs - 1)
        batches = collect(WatcherGroup(live), self.kv.events_since(lo, hi))
        for w in live:
            if w.min_rev > hi:
                continue  # the window ended before this watcher's revisions: next time
            evs, more = _cut(batches.get(w, []), self.batch_max_revs, self.batch_max_events)
            w.min_rev = more or hi + 1
            self._unsynced.discard(w)
            if evs:
                resp = w.response(w.min_rev - 1, evs)
                if not w.stream._offer(resp):
                    self._park(w, resp)
                    continue
            if w.min_rev > cur:
                self._make_synced(w)
            else:
                self._unsynced.add(w)  # at the back: the other unsynced get their turn

    def retry_victims(self) -> None:
        """etcd ``moveVictims``: queue each parked response whose stream has room now."""
        cur = self.kv.current_revision
        for w, resp in list(self._victims.items()):
            if not w.stream._offer(resp):
                continue
            del self._victims[w]
            if w.min_rev <= cur:
                w.state = WatcherState.UNSYNCED
                self._unsynced.add(w)
                self._kick()
            else:
                self._make_synced(w)

    # --- introspection (tests, metrics) -------------------------------------------------------

    @property
    def synced_count(self) -> int:
        return len(self._synced)

    @property
    def unsynced_count(self) -> int:
        return len(self._unsynced)

    @property
    def victim_count(self) -> int:
        return len(self._victims)

    @property
    def buffered_events(self) -> int:
        return self._buffered_events

    def new_stream(self) -> WatchStream:
        return WatchStream(self)

    # --- internals ---------------------------------------------------------------------------

    def _add(self, w: Watcher, start_revision: int) -> None:
        """Place a new watcher (etcd ``watchableStore.watch``): start 0 means "after now"; a
        start in the future waits synced for it; a start in the past catches up unsynced."""
        cur = self.kv.current_revision
        if start_revision == 0 or start_revision > cur:
            w.min_rev = max(cur + 1, start_revision)
            self._make_synced(w)
        else:
            w.min_rev = start_revision
            self._unsynced.add(w)
            self._kick()

    def _remove(self, w: Watcher) -> None:
        if w.state is WatcherState.SYNCED:
            self._synced.discard(w)
        elif w.state is WatcherState.UNSYNCED:
            self._unsynced.discard(w)
        elif w.state is WatcherState.VICTIM:
            del self._victims[w]
        w.state = WatcherState.DONE

    def _make_synced(self, w: Watcher) -> None:
        w.state = WatcherState.SYNCED
        self._synced.add(w)
        w.stream._maybe_progress_all()

    def _park(self, w: Watcher, resp: WatchResponse) -> None:
        w.state = WatcherState.VICTIM
        self._victims[w] = resp

    def _compacted(self, w: Watcher, compact: int) -> None:
        w.state = WatcherState.DONE
        # Header revision 0, as etcd sends it. Queued past the buffer limit: it is tiny and
        # the watcher's last, so a full stream cannot hold a dead watcher in the group.
        w.stream._push(WatchResponse(w.id, 0, compact_revision=compact, canceled=True))
        w.stream._maybe_progress_all()

    def _drained(self) -> None:
        if self._victims:
            self._victims_retry = True
            self._kick()

    def _kick(self) -> None:
        """Make sure a step() runs soon if there is work (no-op when driven by hand)."""
        if self._scheduled or self._schedule is None or not self.has_work():
            return
        try:
            self._schedule(self._scheduled_step)
        except RuntimeError:
            return  # no running loop: whoever drives the hub calls step()
        self._scheduled = True

    def _scheduled_step(self) -> None:
        self._scheduled = False
        if self.step():
            self._kick()
