"""The watch checker: each guarantee broken on its own is caught; correct streams pass."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from minietcd.lab.check.simulate import simulate
from minietcd.lab.check.watch import (
    Change,
    EventType,
    ViolationKind,
    WatchEvent,
    WatchRecord,
    check_watches,
    committed_changes,
    load_watches,
    prefix_range_end,
    save_watches,
)

from .builders import FAIL, UNKNOWN, delete, put

PUT, DEL = EventType.PUT, EventType.DELETE

COMMITTED = [
    Change(2, "a", PUT, "1"),
    Change(3, "b", PUT, "2"),
    Change(4, "a", PUT, "3"),
    Change(5, "a", DEL),
    Change(6, "a", PUT, "4"),
]


def ev(rev: int, key: str, value: str | None = None) -> WatchEvent:
    return WatchEvent(rev, key, PUT if value is not None else DEL, value)


def on_a(*events: WatchEvent, start: int = 1, progress: int | None = None) -> WatchRecord:
    return WatchRecord(
        watcher=1, key="a", start_revision=start, events=list(events), progress_revision=progress
    )


def kinds(*records: WatchRecord, **kw: object) -> list[ViolationKind]:
    result = check_watches(records, committed=COMMITTED, **kw)  # type: ignore[arg-type]  # check_watches's keywords
    return [v.kind for v in result.violations]


def test_correct_stream_passes() -> None:
    rec = on_a(ev(2, "a", "1"), ev(4, "a", "3"), ev(5, "a"), ev(6, "a", "4"))
    result = check_watches([rec], committed=COMMITTED, committed_complete=True)
    assert result.ok, result.violations
    assert (result.watchers, result.events) == (1, 4)


def test_stream_from_a_start_revision_passes() -> None:
    assert kinds(on_a(ev(5, "a"), ev(6, "a", "4"), start=5)) == []


def test_gap_is_caught() -> None:
    violations = check_watches(
        [on_a(ev(2, "a", "1"), ev(5, "a"), ev(6, "a", "4"))], committed=COMMITTED
    ).violations
    assert [(v.kind, v.revision) for v in violations] == [(ViolationKind.GAP, 4)]
    assert "covers 1..6" in violations[0].detail


def test_gap_before_a_progress_notification_is_caught() -> None:
    # The last events never came, though the watcher was told it had reached revision 6.
    assert kinds(on_a(ev(2, "a", "1"), ev(4, "a", "3"), progress=6)) == [
        ViolationKind.GAP, ViolationKind.GAP
    ]


def test_stream_that_simply_ended_early_has_no_gap() -> None:
    assert kinds(on_a(ev(2, "a", "1"), ev(4, "a", "3"))) == []


def test_duplicate_is_caught() -> None:
    assert kinds(on_a(ev(2, "a", "1"), ev(4, "a", "3"), ev(4, "a", "3"), ev(5, "a"))) == [
        ViolationKind.DUPLICATE
    ]


def test_out_of_order_is_caught() -> None:
    assert kinds(on_a(ev(2, "a", "1"), ev(5, "a"), ev(4, "a", "3"), ev(6, "a", "4"))) == [
        ViolationKind.ORDER
    ]


def test_event_before_the_start_revision_is_out_of_order() -> None:
    assert kinds(on_a(ev(4, "a", "3"), ev(5, "a"), start=5)) == [ViolationKind.ORDER]


def test_several_keys_in_one_revision_are_fine() -> None:
    committed = [Change(7, "a", PUT, "x"), Change(7, "b", PUT, "y")]
    rec = WatchRecord(1, "", range_end="\0", start_revision=7,
                      events=[ev(7, "a", "x"), ev(7, "b", "y")])
    assert check_watches([rec], committed=committed).ok


def test_missing_acknowledged_put_is_caught() -> None:
    ops = [put(1, "a", "1", 0, 1, rev=2), put(1, "a", "3", 2, 3, rev=4), put(1, "a", "4", 4, 5)]
    rec = on_a(ev(2, "a", "1"), ev(6, "a", "4"))
    violations = check_watches([rec], ops=ops).violations
    assert [(v.kind, v.revision) for v in violations] == [(ViolationKind.MISSING, 4)]
    assert f"op #{ops[1].id}" in violations[0].detail


def test_event_with_a_different_value_than_acknowledged_is_caught() -> None:
    ops = [put(1, "a", "1", 0, 1, rev=2)]
    assert [v.kind for v in check_watches([on_a(ev(2, "a", "other"))], ops=ops).violations] == [
        ViolationKind.MISMATCH
    ]


def test_event_for_an_unknown_write_is_fine_and_one_for_a_failed_write_is_not() -> None:
    ops = [put(1, "a", "u", 0, None, outcome=UNKNOWN), put(2, "a", "f", 0, 1, outcome=FAIL)]
    assert check_watches([on_a(ev(9, "a", "u"))], ops=ops).ok
    assert [v.kind for v in check_watches([on_a(ev(9, "a", "f"))], ops=ops).violations] == [
        ViolationKind.PHANTOM
    ]


def test_phantom_event_when_the_committed_history_is_complete() -> None:
    rec = on_a(ev(2, "a", "1"), ev(3, "a", "ghost"), ev(4, "a", "3"))
    assert kinds(rec, committed_complete=True) == [ViolationKind.PHANTOM]
    assert kinds(rec) == []  # without a complete history it may be a write we never saw


def test_event_for_an_unwatched_key_is_caught() -> None:
    assert kinds(on_a(ev(3, "b", "2"))) == [ViolationKind.PHANTOM]


def test_watchers_that_disagree_are_caught() -> None:
    one = WatchRecord(1, "c", events=[ev(9, "c", "x")])
    two = WatchRecord(2, "c", events=[ev(9, "c", "y")])
    assert [v.kind for v in check_watches([one, two]).violations] == [ViolationKind.DIVERGENCE]


def test_final_read_and_acknowledgements_that_disagree_are_caught() -> None:
    ops = [put(1, "a", "other", 0, 1, rev=2)]
    violations = check_watches([], committed=COMMITTED, ops=ops).violations
    assert [(v.kind, v.watcher) for v in violations] == [(ViolationKind.MISMATCH, None)]


def test_committed_changes_from_acknowledged_writes() -> None:
    ops = [
        put(1, "a", "1", 0, 1, rev=3),
        delete(1, "a", 2, 3, deleted=True, rev=4),
        delete(1, "a", 4, 5, deleted=False, rev=4),
        put(2, "b", "2", 0, 1, outcome=UNKNOWN),
    ]
    assert [(c.revision, c.key, c.type) for c in committed_changes(ops)] == [
        (3, "a", PUT), (4, "a", DEL)
    ]


@pytest.mark.parametrize(
    ("prefix", "end"), [("k", "l"), ("a/", "a0"), ("", "\0"), ("a\U0010ffff", "b")]
)
def test_prefix_range_end(prefix: str, end: str) -> None:
    assert prefix_range_end(prefix) == end


def test_watch_records_round_trip_through_json_lines(tmp_path: Path) -> None:
    recs = [
        WatchRecord(3, "a", "b", 5, [WatchEvent(5, "a", PUT, "v", 1.5), ev(6, "a")], 9, 2),
        WatchRecord(4, "", "\0"),
    ]
    save_watches(tmp_path / "w.jsonl", recs)
    assert load_watches(tmp_path / "w.jsonl") == recs


@pytest.mark.parametrize("seed", range(5))
def test_simulated_watchers_pass_and_a_dropped_event_is_caught(seed: int) -> None:
    run = simulate(random.Random(seed), n_ops=300, watchers=3)
    assert check_watches(
        run.watches, committed=run.changes, ops=run.ops, committed_complete=True
    ).ok
    watcher = run.watches[0]
    dropped = watcher.events.pop(len(watcher.events) // 2)
    violations = check_watches(run.watches, ops=run.ops).violations
    assert [(v.revision, v.key) for v in violations] == [(dropped.revision, dropped.key)]
    assert violations[0].kind in (ViolationKind.MISSING, ViolationKind.GAP)
