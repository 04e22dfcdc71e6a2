"""Watch guarantees, checked per watcher against the committed history.

etcd documents what a watch promises (etcd.io/docs "API guarantees", "Watch APIs") and its
robustness tests check it the same way, separately from linearizability:

* **Ordered**: events arrive in revision order. One revision may hold several events (a
  transaction touching several keys); they come together.
* **Unique**: no event (revision, key) is delivered twice.
* **Reliable**: no gaps: from its start revision up to the last revision it is known to have
  reached (its last event, or a later progress notification), a watcher receives every
  committed change to the keys it watches.
* **Consistent with the KV history**: an event carries what was committed at its revision;
  every acknowledged write at revision r reaches every watcher that covered r, with the same
  value; and no event shows a value that no (not-failed) operation wrote.

"Committed changes" come from the acknowledged writes of the KV history
(:func:`committed_changes`) and/or from a final full read of the keys' history after the run
(passed as ``committed``; then ``committed_complete=True`` also flags events that match no
committed change).
"""

from __future__ import annotations

import bisect
import enum
import os
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .history import WRITE_KINDS, Operation, OpKind, Outcome, parse_jsonl, write_jsonl


class EventType(enum.StrEnum):
    PUT = "put"
    DELETE = "delete"


@dataclass(slots=True, frozen=True)
class Change:
    """A committed change to one key: what a watcher covering it must be told."""

    revision: int
    key: str
    type: EventType
    value: str | None = None  # PUT: the value written
    op_id: int | None = None  # the acknowledged operation that made it, when known


@dataclass(slots=True, frozen=True)
class WatchEvent:
    revision: int  # the event's mod_revision: the revision of the txn that made it
    key: str
    type: EventType
    value: str | None = None  # PUT: the value; DELETE: None
    received: float | None = None  # when the client got it (same clock as the ops), if known

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"revision": self.revision, "key": self.key, "type": self.type.value}
        if self.value is not None:
            d["value"] = self.value
        if self.received is not None:
            d["received"] = self.received
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> WatchEvent:
        return cls(
            revision=d["revision"],
            key=d["key"],
            type=EventType(d["type"]),
            value=d.get("value"),
            received=d.get("received"),
        )


@dataclass(slots=True)
class WatchRecord:
    """Everything one watcher received, in arrival order.

    A client library that resumes a broken watch stream from ``last revision + 1`` is one
    watcher here; the resume is exactly what these checks test.
    """

    watcher: int
    key: str  # the watched key, or the start of the watched range
    range_end: str | None = None  # None: just ``key``; "\0": every key >= ``key``; else [key, end)
    # The first revision the watcher must see. A watch created "from now" (revision 0) must be
    # recorded with the creating response's header revision + 1.
    start_revision: int = 1
    events: list[WatchEvent] = field(default_factory=list)
    # The revision the watcher is known to be complete up to (a progress notification, or the
    # header of its last response); None: its last event's revision.
    progress_revision: int | None = None
    client: int | None = None

    def covers(self, key: str) -> bool:
        if self.range_end is None:
            return key == self.key
        if self.range_end == "\0":
            return key >= self.key
        return self.key <= key < self.range_end

    @property
    def end_revision(self) -> int:
        """The last revision this watcher is accountable for."""
        covered = (e.revision for e in self.events if self.covers(e.key))
        last = max(covered, default=self.start_revision - 1)
        return max(last, self.progress_revision or 0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "watcher": self.watcher,
            "key": self.key,
            "range_end": self.range_end,
            "start_revision": self.start_revision,
            "progress_revision": self.progress_revision,
            "client": self.client,
            "events": [e.to_dict() for e in self.events],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> WatchRecord:
        return cls(
            watcher=d["watcher"],
            key=d["key"],
            range_end=d.get("range_end"),
            start_revision=d.get("start_revision", 1),
            events=[WatchEvent.from_dict(e) for e in d.get("events", [])],
            progress_revision=d.get("progress_revision"),
            client=d.get("client"),
        )


def save_watches(path: str | os.PathLike[str], records: Iterable[WatchRecord]) -> None:
    """One watcher per JSON line."""
    with open(path, "w", encoding="utf-8") as fp:
        write_jsonl(fp, (rec.to_dict() for rec in records))


def load_watches(path: str | os.PathLike[str]) -> list[WatchRecord]:
    with open(path, encoding="utf-8") as fp:
        return parse_jsonl(fp, WatchRecord.from_dict, name=os.fspath(path))


def prefix_range_end(prefix: str) -> str:
    """etcd's range end for "every key starting with ``prefix``" (clientv3.GetPrefixRangeEnd)."""
    for i in range(len(prefix) - 1, -1, -1):
        if ord(prefix[i]) < 0x10FFFF:
            return prefix[:i] + chr(ord(prefix[i]) + 1)
    return "\0"


class ViolationKind(enum.StrEnum):
    ORDER = "order"  # an event at a lower revision than one before it (or before the start)
    DUPLICATE = "duplicate"  # the same (revision, key) delivered twice
    GAP = "gap"  # a committed change the watcher covered but never delivered
    MISSING = "missing"  # an acknowledged write the watcher covered but never delivered
    MISMATCH = "mismatch"  # an event that differs from what was committed at its revision
    PHANTOM = "phantom"  # an event nothing explains (unwatched key, value nobody wrote, ...)
    DIVERGENCE = "divergence"  # two watchers disagree about the same (revision, key)


@dataclass(slots=True, frozen=True)
class WatchViolation:
    kind: ViolationKind
    watcher: int | None  # None: between the sources of committed changes
    revision: int
    key: str
    detail: str

    def __str__(self) -> str:
        who = "committed history" if self.watcher is None else f"watcher {self.watcher}"
        return f"{self.kind}: {who}, rev {self.revision} key {self.key}: {self.detail}"


@dataclass(slots=True)
class WatchResult:
    violations: list[WatchViolation]
    watchers: int
    events: int

    @property
    def ok(self) -> bool:
        return not self.violations

    def by_kind(self) -> dict[ViolationKind, int]:
        counts: dict[ViolationKind, int] = defaultdict(int)
        for v in self.violations:
            counts[v.kind] += 1
        return dict(counts)


def committed_changes(ops: Iterable[Operation]) -> list[Change]:
    """The changes the acknowledged writes of a KV history certainly committed, by revision."""
    out: list[Change] = []
    for op in ops:
        if not op.changed_key() or op.revision is None:
            continue
        if op.kind is OpKind.DELETE:
            out.append(Change(op.revision, op.key, EventType.DELETE, None, op.id))
        else:
            out.append(Change(op.revision, op.key, EventType.PUT, op.value, op.id))
    out.sort(key=lambda c: (c.revision, c.key))
    return out


def check_watches(
    watches: Iterable[WatchRecord],
    *,
    committed: Iterable[Change] = (),
    ops: Iterable[Operation] = (),
    committed_complete: bool = False,
) -> WatchResult:
    """Check every watcher's stream; see the module docstring for what is checked."""
    history = list(ops)
    violations: list[WatchViolation] = []
    expected = _merge_committed(committed, committed_changes(history), violations)
    order = sorted(expected)
    order_revs = [rev for rev, _ in order]
    written: dict[str, set[str | None]] = defaultdict(set)  # key -> values not-failed ops wrote
    for op in history:
        if op.outcome is not Outcome.FAIL and op.kind in WRITE_KINDS:
            written[op.key].add(op.value)
    first_seen: dict[tuple[int, str], tuple[WatchEvent, int]] = {}
    records = list(watches)
    for rec in records:
        delivered = _check_stream(rec, violations)
        for (rev, key), ev in delivered.items():
            c = expected.get((rev, key))
            if c is not None:
                if (c.type, c.value) != (ev.type, ev.value):
                    violations.append(_v(ViolationKind.MISMATCH, rec, ev, f"{_show(ev)}, "
                                         f"but {_show(c)} was committed"))
            elif committed_complete:
                violations.append(_v(ViolationKind.PHANTOM, rec, ev, "no such committed change"))
            elif history and ev.type is EventType.PUT and ev.value not in written[key]:
                violations.append(_v(ViolationKind.PHANTOM, rec, ev,
                                     f"value {ev.value!r} was never written (or only by failed ops)"))
            if c is None:
                other = first_seen.setdefault((rev, key), (ev, rec.watcher))
                if (other[0].type, other[0].value) != (ev.type, ev.value):
                    violations.append(_v(ViolationKind.DIVERGENCE, rec, ev,
                                         f"{_show(ev)}, but watcher {other[1]} got {_show(other[0])}"))
        lo = bisect.bisect_left(order_revs, rec.start_revision)
        hi = bisect.bisect_right(order_revs, rec.end_revision)
        for rev, key in order[lo:hi]:
            if rec.covers(key) and (rev, key) not in delivered:
                c = expected[(rev, key)]
                if c.op_id is not None:
                    kind, what = ViolationKind.MISSING, f"acknowledged op #{c.op_id} ({_show(c)})"
                else:
                    kind, what = ViolationKind.GAP, f"committed {_show(c)}"
                violations.append(WatchViolation(
                    kind, rec.watcher, rev, key,
                    f"{what} not delivered (watcher covers {rec.start_revision}..{rec.end_revision})",
                ))
    return WatchResult(violations, len(records), sum(len(r.events) for r in records))


def _check_stream(
    rec: WatchRecord, violations: list[WatchViolation]
) -> dict[tuple[int, str], WatchEvent]:
    """Ordered and unique, within one stream. Returns the events by (revision, key)."""
    delivered: dict[tuple[int, str], WatchEvent] = {}
    last = rec.start_revision
    for ev in rec.events:
        if not rec.covers(ev.key):
            violations.append(_v(ViolationKind.PHANTOM, rec, ev, "key not watched"))
            continue
        if (ev.revision, ev.key) in delivered:
            violations.append(_v(ViolationKind.DUPLICATE, rec, ev, "delivered twice"))
            continue
        if ev.revision < last:
            what = "start revision" if last == rec.start_revision else "an earlier event's"
            violations.append(_v(ViolationKind.ORDER, rec, ev, f"after {what} {last}"))
        last = max(last, ev.revision)
        delivered[(ev.revision, ev.key)] = ev
    return delivered


def _merge_committed(
    given: Iterable[Change], from_ops: Iterable[Change], violations: list[WatchViolation]
) -> dict[tuple[int, str], Change]:
    """Union of the two sources; where they disagree, the given (final-read) one wins and the
    disagreement is a violation in itself."""
    merged: dict[tuple[int, str], Change] = {}
    for c in given:
        merged[(c.revision, c.key)] = c
    for c in from_ops:
        prior = merged.setdefault((c.revision, c.key), c)
        if prior is c:
            continue
        if (prior.type, prior.value) != (c.type, c.value):
            violations.append(WatchViolation(
                ViolationKind.MISMATCH, None, c.revision, c.key,
                f"acknowledged op #{c.op_id} wrote {_show(c)}, the final read says {_show(prior)}",
            ))
        elif prior.op_id is None:
            merged[(c.revision, c.key)] = c  # same change: keep the op that acknowledged it
    return merged


def _v(kind: ViolationKind, rec: WatchRecord, ev: WatchEvent, detail: str) -> WatchViolation:
    return WatchViolation(kind, rec.watcher, ev.revision, ev.key, detail)


def _show(c: Change | WatchEvent) -> str:
    return f"{c.type} {c.key}={c.value}" if c.type is EventType.PUT else f"{c.type} {c.key}"
