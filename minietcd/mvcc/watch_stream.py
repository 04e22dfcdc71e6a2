"""A client's watch stream (:class:`WatchStream`): its watchers by id and their shared, bounded
response queue. Requests (watch, cancel, progress) come from the edge; responses are queued by
the stream itself and by the hub (:mod:`.watch`), the two working as a pair.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from minietcd.mvcc.index import GTE_RANGE_END
from minietcd.mvcc.watcher import Watcher, WatcherState, WatchResponse

if TYPE_CHECKING:
    from minietcd.mvcc.watch import WatchHub

#: A create request with this id asks the stream to pick one (etcd ``clientv3.AutoWatchID``).
AUTO_WATCH_ID = 0
#: The id of responses that belong to no watcher: failed creates, stream progress.
INVALID_WATCH_ID = -1
#: etcd's cancel reasons for a refused create (``mvcc/watcher.go``), sent verbatim.
ERR_EMPTY_RANGE = "mvcc: watcher range is empty"
ERR_DUPLICATE_ID = "mvcc: duplicate watch ID provided on the WatchStream"


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

    def refuse(self, reason: str) -> None:
        """Answer a create request that may not be served (e.g. etcd's auth refusals) with a
        created+canceled response carrying ``reason``, as :meth:`watch` answers a bad one."""
        rev = self.revision
        self._push(WatchResponse(INVALID_WATCH_ID, rev, created=True, canceled=True, cancel_reason=reason))

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
