"""The watch hub: etcd's watchable store (``mvcc/watchable_store.go``, ``watcher_group.go``,
``watcher.go``, ``watch.go``) as a plain object driven by calls instead of goroutines.

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
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import Enum
from itertools import islice

from minietcd.errors import MvccInvariantError
from minietcd.mvcc.index import GTE_RANGE_END, in_range
from minietcd.mvcc.kvstore import KVStore
from minietcd.mvcc.types import Event, EventType

#: A create request with this id asks the stream to pick one (etcd ``clientv3.AutoWatchID``).
AUTO_WATCH_ID = 0
#: The id of responses that belong to no watcher: failed creates, stream progress.
INVALID_WATCH_ID = -1
#: etcd's cancel reasons for a refused create (``mvcc/watcher.go``), sent verbatim.
ERR_EMPTY_RANGE = "mvcc: watcher range is empty"
ERR_DUPLICATE_ID = "mvcc: duplicate watch ID provided on the WatchStream"

#: Schedules a callback to run soon (``loop.call_soon``); raises RuntimeError if it cannot.
Scheduler = Callable[[Callable[[], None]], object]


def _call_soon(fn: Callable[[], None]) -> object:
    # Raises RuntimeError outside a running loop: the work then waits for an explicit step().
    return asyncio.get_running_loop().call_soon(fn)


@dataclass(frozen=True, slots=True)
class WatchResponse:
    """One response on a watch stream, field for field what etcd sends (the edge adds the
    header from ``revision`` and converts events)."""

    watch_id: int
    #: The header revision: for events, the revision the watcher has now seen everything up
    #: to; for created / canceled / progress, the store's revision; 0 for a compaction cancel.
    revision: int
    events: tuple[Event, ...] = ()
    #: Set (with ``canceled``) when the watcher needs history that was compacted.
    compact_revision: int = 0
    created: bool = False
    canceled: bool = False
    cancel_reason: str = ""
    #: The watcher asked for prev_kv: the edge includes each event's ``prev_kv``.
    prev_kv: bool = False
    #: The watcher allows the edge to split this response into fragments.
    fragment: bool = False


class WatcherState(Enum):
    SYNCED = "synced"
    UNSYNCED = "unsynced"
    VICTIM = "victim"
    DONE = "done"


@dataclass(slots=True, eq=False)
class Watcher:
    """One watch. Compared and hashed by identity, so groups can be dicts of watchers."""

    id: int
    key: bytes
    #: ``b""`` one key, ``b"\\0"`` every key >= ``key``, else ``[key, range_end)`` (see .index).
    range_end: bytes
    #: The lowest revision an unsynced or victim watcher still needs: everything below it is
    #: queued (or parked) already and never sent again. A synced watcher has everything up to
    #: the last notified revision; its min_rev only matters while it is in the future (a start
    #: revision not reached yet), and after_restore() brings it up to date.
    min_rev: int
    stream: WatchStream
    no_put: bool = False
    no_delete: bool = False
    prev_kv: bool = False
    progress_notify: bool = False
    fragment: bool = False
    state: WatcherState = WatcherState.UNSYNCED
    #: No events were queued since the last progress tick (etcd elides the next notification
    #: after real events, which carry the same information).
    progress_due: bool = True

    def wants(self, ev: Event) -> bool:
        return not (self.no_put if ev.type is EventType.PUT else self.no_delete)

    def response(self, revision: int, events: Sequence[Event]) -> WatchResponse:
        return WatchResponse(self.id, revision, tuple(events), prev_kv=self.prev_kv, fragment=self.fragment)


class _Group:
    """A set of watchers findable by key (etcd ``watcherGroup``). Single keys are a dict lookup;
    ranges are grouped by interval and scanned, which is fine for the hundreds of distinct
    ranges a server sees (etcd uses an interval tree). Dicts keep insertion order, so which
    watcher goes first is deterministic."""

    __slots__ = ("_keys", "_ranges", "members")

    def __init__(self, watchers: Iterable[Watcher] = ()) -> None:
        #: Every watcher of the group, in insertion order.
        self.members: dict[Watcher, None] = {}
        #: Key -> watchers of that single key.
        self._keys: dict[bytes, dict[Watcher, None]] = {}
        #: (key, range_end) -> watchers of that range.
        self._ranges: dict[tuple[bytes, bytes], dict[Watcher, None]] = {}
        for w in watchers:
            self.add(w)

    def __len__(self) -> int:
        return len(self.members)

    def __contains__(self, w: Watcher) -> bool:
        return w in self.members

    def add(self, w: Watcher) -> None:
        if w in self.members:
            raise MvccInvariantError(f"watcher {w.id} added to a group twice")
        self.members[w] = None
        if w.range_end:
            self._ranges.setdefault((w.key, w.range_end), {})[w] = None
        else:
            self._keys.setdefault(w.key, {})[w] = None

    def discard(self, w: Watcher) -> bool:
        if w not in self.members:
            return False
        del self.members[w]
        if w.range_end:
            ranges = self._ranges[(w.key, w.range_end)]
            del ranges[w]
            if not ranges:
                del self._ranges[(w.key, w.range_end)]
        else:
            keys = self._keys[w.key]
            del keys[w]
            if not keys:
                del self._keys[w.key]
        return True

    def matching(self, key: bytes) -> Iterator[Watcher]:
        yield from self._keys.get(key, ())
        for (start, end), ws in self._ranges.items():
            if in_range(start, end, key):
                yield from ws


def _collect(group: _Group, events: Iterable[Event]) -> dict[Watcher, list[Event]]:
    """The events each watcher of ``group`` should get: matching key, at or after its
    ``min_rev`` (never send twice), not filtered out. Keeps the events' order."""
    out: dict[Watcher, list[Event]] = {}
    for ev in events:
        rev = ev.kv.mod_revision
        for w in group.matching(ev.kv.key):
            if rev >= w.min_rev and w.wants(ev):
                out.setdefault(w, []).append(ev)
    return out


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
        self._synced = _Group()
        self._unsynced = _Group()
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
        for w, evs in _collect(self._synced, events).items():
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
        batches = _collect(_Group(live), self.kv.events_since(lo, hi))
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


class WatchStream:
    """The watchers of one client stream and their shared, bounded response queue (etcd
    ``watchStream`` plus the ordering the v3rpc ``serverWatchStream`` adds: a watcher's
    created response always precedes its events, and nothing follows its canceled one)."""

    def __init__(self, hub: WatchHub) -> None:
        self._hub = hub
        #: Told (no arguments) whenever a response is queued; the edge wakes its sender.
        self.on_ready: Callable[[], None] | None = None
        #: Watch id -> watcher, including done ones until the client cancels them (etcd).
        self._watchers: dict[int, Watcher] = {}
        #: Next id to try for an auto-assigned watcher (etcd starts at 0).
        self._next_id = 0
        #: Queued responses and whether each counts against the buffer limits (control
        #: responses — created, canceled, stream progress — do not; the edge bounds them by
        #: not reading more requests while too many wait).
        self._out: deque[tuple[WatchResponse, bool]] = deque()
        #: Queued responses that count against ``stream_buffer``.
        self._counted = 0
        #: A progress request waits for every watcher to be synced.
        self._progress_deferred = False
        self._closed = False

    @property
    def revision(self) -> int:
        return self._hub.kv.current_revision

    @property
    def pending(self) -> int:
        """Responses queued."""
        return len(self._out)

    @property
    def control_pending(self) -> int:
        """Queued responses that the buffer limit does not count."""
        return len(self._out) - self._counted

    def watcher(self, watch_id: int) -> Watcher | None:
        return self._watchers.get(watch_id)

    # --- requests ----------------------------------------------------------------------------

    def watch(
        self,
        key: bytes,
        range_end: bytes = b"",
        start_revision: int = 0,
        *,
        watch_id: int = AUTO_WATCH_ID,
        no_put: bool = False,
        no_delete: bool = False,
        prev_kv: bool = False,
        progress_notify: bool = False,
        fragment: bool = False,
    ) -> int:
        """Create a watcher and queue its created response (or a created+canceled one with
        etcd's reason). Returns its id, or INVALID_WATCH_ID if refused. Keys use the store's
        range conventions; the edge maps etcd's empty key to ``b"\\0"``."""
        rev = self.revision
        reason = ""
        if range_end not in (b"", GTE_RANGE_END) and key >= range_end:
            reason = ERR_EMPTY_RANGE
        elif self._closed:
            reason = ERR_EMPTY_RANGE  # what etcd answers on a closed stream
        elif watch_id == AUTO_WATCH_ID:
            while self._next_id in self._watchers:
                self._next_id += 1
            watch_id = self._next_id
            self._next_id += 1
        elif watch_id in self._watchers:
            reason = ERR_DUPLICATE_ID
        if reason:
            self._push(
                WatchResponse(INVALID_WATCH_ID, rev, created=True, canceled=True, cancel_reason=reason)
            )
            return INVALID_WATCH_ID
        w = Watcher(watch_id, key, range_end, 0, self, no_put, no_delete, prev_kv, progress_notify, fragment)
        self._watchers[watch_id] = w
        # Created first: nothing the watcher gets can be queued before it.
        self._push(WatchResponse(watch_id, rev, created=True))
        self._hub._add(w, start_revision)
        return watch_id

    def cancel(self, watch_id: int) -> bool:
        """Remove a watcher, drop its queued events and queue its canceled response. An unknown
        id is ignored and answered with nothing, as etcd does."""
        w = self._watchers.pop(watch_id, None)
        if w is None:
            return False
        self._hub._remove(w)
        self._drop_queued(watch_id)
        self._push(WatchResponse(watch_id, self.revision, canceled=True))
        self._maybe_progress_all()
        return True

    def request_progress_all(self) -> None:
        """A client's WatchProgressRequest: one response with no events, watch id -1 and the
        store's revision, sent once every watcher of the stream is synced — so its revision
        never runs ahead of events still to come on this stream."""
        self._progress_deferred = True
        self._maybe_progress_all()

    def request_progress(self, watch_id: int) -> None:
        """A progress notification for one watcher, only if it is synced and there is room
        (etcd ``RequestProgress``: a watcher receiving events needs none)."""
        w = self._watchers.get(watch_id)
        if w is not None and w.state is WatcherState.SYNCED:
            self._offer(WatchResponse(w.id, self.revision))

    def progress_tick(self) -> None:
        """The progress_notify timer fired: notify each such watcher that got no events since
        the previous tick (etcd's sendLoop ticker)."""
        for w in list(self._watchers.values()):
            if w.progress_notify:
                if w.progress_due:
                    self.request_progress(w.id)
                w.progress_due = True

    def close(self) -> None:
        """The client went away: drop every watcher and everything queued."""
        for w in self._watchers.values():
            self._hub._remove(w)
        self._watchers.clear()
        self._drop_queued(None)
        self._out.clear()
        self._closed = True

    # --- the sender's side -------------------------------------------------------------------

    def pop(self) -> WatchResponse | None:
        """The next response to send, or None."""
        if not self._out:
            return None
        resp, counted = self._out.popleft()
        if counted:
            self._counted -= 1
            self._hub._buffered_events -= len(resp.events)
            self._hub._drained()
        return resp

    def drain(self) -> list[WatchResponse]:
        """Every queued response (tests)."""
        out: list[WatchResponse] = []
        while (resp := self.pop()) is not None:
            out.append(resp)
        return out

    # --- internals ---------------------------------------------------------------------------

    def _offer(self, resp: WatchResponse) -> bool:
        """Queue an event or progress response if the limits allow; False means "full"."""
        if self._closed:
            return True  # nobody will read it; the watcher is gone
        hub = self._hub
        n = len(resp.events)
        if self._counted >= hub.stream_buffer:
            return False
        if n and hub._buffered_events and hub._buffered_events + n > hub.max_buffered_events:
            return False
        self._out.append((resp, True))
        self._counted += 1
        hub._buffered_events += n
        if n:
            w = self._watchers.get(resp.watch_id)
            if w is not None:
                w.progress_due = False
        self._ready()
        return True

    def _push(self, resp: WatchResponse) -> None:
        if not self._closed:
            self._out.append((resp, False))
            self._ready()

    def _ready(self) -> None:
        if self.on_ready is not None:
            self.on_ready()

    def _drop_queued(self, watch_id: int | None) -> None:
        """Drop queued event / progress responses of one watcher (None: all of them)."""
        keep: deque[tuple[WatchResponse, bool]] = deque()
        dropped = False
        for resp, counted in self._out:
            if counted and (watch_id is None or resp.watch_id == watch_id):
                self._counted -= 1
                self._hub._buffered_events -= len(resp.events)
                dropped = True
            else:
                keep.append((resp, counted))
        self._out = keep
        if dropped:
            self._hub._drained()

    def _maybe_progress_all(self) -> None:
        if not self._progress_deferred or self._closed:
            return
        # Done watchers will get nothing more, so they do not hold the notification back.
        if all(w.state in (WatcherState.SYNCED, WatcherState.DONE) for w in self._watchers.values()):
            self._progress_deferred = False
            self._push(WatchResponse(INVALID_WATCH_ID, self.revision))
