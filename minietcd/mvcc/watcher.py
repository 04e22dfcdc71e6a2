"""One watch and the groups the hub keeps watchers in (etcd ``mvcc/watcher.go``,
``watcher_group.go``): what a watcher asked for, which state it is in, the responses it gets.
The hub that moves watchers between states is :mod:`.watch`; the client stream that owns them,
:mod:`.watch_stream`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from minietcd.errors import MvccInvariantError
from minietcd.mvcc.index import in_range
from minietcd.mvcc.types import Event, EventType

if TYPE_CHECKING:
    from minietcd.mvcc.watch_stream import WatchStream


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


class WatcherGroup:
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


def collect(group: WatcherGroup, events: Iterable[Event]) -> dict[Watcher, list[Event]]:
    """The events each watcher of ``group`` should get: matching key, at or after its
    ``min_rev`` (never send twice), not filtered out. Keeps the events' order."""
    out: dict[Watcher, list[Event]] = {}
    for ev in events:
        rev = ev.kv.mod_revision
        for w in group.matching(ev.kv.key):
            if rev >= w.min_rev and w.wants(ev):
                out.setdefault(w, []).append(ev)
    return out
