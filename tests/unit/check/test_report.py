"""The text report and the HTML timeline."""

from __future__ import annotations

import math
from html.parser import HTMLParser
from pathlib import Path

from minietcd.lab.check.durability import check_durability
from minietcd.lab.check.linearizability import check_linearizability
from minietcd.lab.check.report import format_report, format_timeline, write_html_timeline
from minietcd.lab.check.watch import WatchRecord, check_watches

from .builders import FAIL, UNKNOWN, get, put

STALE = [
    put(1, "x", "1", 0, 1),
    put(2, "x", "2", 2, 3),
    put(3, "y", "a", 0, 9, outcome=UNKNOWN),
    put(3, "y", "c", 3, math.inf, outcome=UNKNOWN),
    put(3, "y", "b", 1, 2, outcome=FAIL),
    get(1, "x", "1", 4, 5),
]


def test_text_report_of_an_illegal_history() -> None:
    result = check_linearizability(STALE)
    text = format_report(
        result, STALE,
        watch=check_watches([WatchRecord(1, "x")], ops=STALE),
        durability=check_durability(STALE, {}),
    )
    assert "linearizability: ILLEGAL" in text
    assert "operations: 6 by 3 clients over 2 keys" in text
    assert "ok 3, fail 1, unknown 2" in text
    assert "key x: illegal" in text and "key y: ok" in text
    assert "Minimal failing sub-history for key x (3 ops, shrink complete)" in text
    assert f"and then no order could place #{STALE[-1].id}" in text
    assert "watch: ok (1 watchers, 0 events)" in text
    assert "not in the final read, unchecked: x" in text


def test_text_report_of_a_good_history_has_no_witness() -> None:
    ops = STALE[:5]
    text = format_report(check_linearizability(ops), ops)
    assert "linearizability: OK" in text and "Minimal" not in text


def test_timeline_rows_follow_invocation_order_and_mark_ops() -> None:
    rows = format_timeline(STALE, width=20, mark={STALE[-1].id}).splitlines()
    assert len(rows) == 6
    assert rows[-1].endswith("<<") and rows[-1].startswith("c1  |")
    bars = [row.split("|")[1] for row in rows]
    assert all(len(bar) == 20 for bar in bars)
    unknown = [b for r, b in zip(rows, bars, strict=True) if "-> unknown" in r]
    failed = next(b for r, b in zip(rows, bars, strict=True) if "-> fail" in r)
    assert all(b.rstrip().endswith(">") for b in unknown) and "x" in failed


class _Bars(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.bars: list[dict[str, str | None]] = []
        self.lanes = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if "op" in classes:
            self.bars.append(a)
        if "lane" in classes:
            self.lanes += 1


def test_html_timeline_has_a_lane_per_client_and_marks_the_failing_ops(tmp_path: Path) -> None:
    result = check_linearizability(STALE)
    path = tmp_path / "timeline.html"
    write_html_timeline(path, STALE, result=result, title="stale <read>")
    page = path.read_text()
    assert page.startswith("<!DOCTYPE html>") and "stale &lt;read&gt;" in page
    parser = _Bars()
    parser.feed(page)
    assert parser.lanes == 3
    assert len(parser.bars) == len(STALE)
    marked = [b for b in parser.bars if "fail-mark" in (b.get("class") or "")]
    minimal = result.keys["x"].minimal
    assert len(marked) == len(minimal) == 3
    assert all(f"#{op.id} " in page for op in minimal)
    assert "<script" not in page and "http" not in page and "inf" not in page


def test_an_unshrunk_witness_is_cut_to_the_rows_nearest_the_failure() -> None:
    ops = [put(1, "x", str(i), 2 * i, 2 * i + 1) for i in range(60)]
    ops.append(get(2, "x", "ghost", 200, 201))
    result = check_linearizability(ops, shrink_max_steps=0)
    assert not result.keys["x"].shrink_complete
    text = format_report(result, ops)
    assert "earlier operations not shown" in text
    assert "read=ghost" in text
