"""What a chaos run's checks found, for people: a text report and an HTML timeline.

The text report is what ``minietcd-lab chaos`` prints: counts, verdicts, time taken, and, when
the history is not linearizable, the shrunk failing sub-history drawn as a timeline (one row
per operation, bars from invocation to response) with the longest linearization the search
found before it got stuck. The HTML timeline is one standalone file (no scripts, no network):
one lane per client, one bar per operation, coloured by outcome, the failing operations
outlined; hover a bar for the operation.
"""

from __future__ import annotations

import bisect
import html
import math
import os
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Sequence

from .durability import DurabilityResult
from .history import Operation, Outcome
from .linearizability import KeyResult, LinearizabilityResult
from .search import Verdict
from .watch import WatchResult

_MAX_LISTED = 20  # violations listed per checker; the rest are counted
_MAX_ROWS = 40  # timeline rows of a failing sub-history in the text report


def format_report(
    result: LinearizabilityResult,
    ops: Sequence[Operation],
    *,
    watch: WatchResult | None = None,
    durability: DurabilityResult | None = None,
    title: str = "minietcd-lab history check",
    prefix_tail: int = 8,
) -> str:
    """The text report. ``ops`` is the history ``result`` was computed from."""
    lines = [title, "=" * len(title), ""]
    lines += _summary(ops)
    lines.append("")
    lines.append(
        f"linearizability: {result.verdict.upper()} "
        f"({result.steps:,} search steps, {result.elapsed:.2f} s)"
    )
    for key, kr in result.keys.items():
        lines.append(
            f"  key {key}: {kr.verdict} ({kr.ops} ops, {kr.searched} searched, "
            f"{kr.steps:,} steps, {kr.elapsed:.3f} s)"
        )
    if result.revision_violations:
        lines.append(f"  revision order: {len(result.revision_violations)} violation(s)")
        for rv in result.revision_violations[:_MAX_LISTED]:
            lines.append(f"    {rv.reason}:")
            lines.append(f"      earlier #{rv.earlier.id} c{rv.earlier.client} "
                         f"{rv.earlier.describe()}")
            lines.append(f"      later   #{rv.later.id} c{rv.later.client} {rv.later.describe()}")
    else:
        lines.append("  revision order: ok")
    if watch is not None:
        lines.append("")
        state = "ok" if watch.ok else f"{len(watch.violations)} violation(s)"
        lines.append(f"watch: {state} ({watch.watchers} watchers, {watch.events} events)")
        lines += _listed((str(v) for v in watch.violations), len(watch.violations))
    if durability is not None:
        lines.append("")
        state = "ok" if durability.ok else f"{len(durability.violations)} violation(s)"
        lines.append(f"durability: {state} ({durability.checked} acknowledged writes checked)")
        if durability.unread_keys:
            lines.append(f"  not in the final read, unchecked: {', '.join(durability.unread_keys)}")
        lines += _listed((str(v) for v in durability.violations), len(durability.violations))
    for key in result.illegal_keys:
        lines.append("")
        lines += _explain(result.keys[key], prefix_tail)
    return "\n".join(lines) + "\n"


def _summary(ops: Sequence[Operation]) -> list[str]:
    outcomes = Counter(op.outcome for op in ops)
    kinds = Counter(op.kind for op in ops)
    clients = len({op.client for op in ops})
    keys = len({op.key for op in ops})
    return [
        f"operations: {len(ops)} by {clients} clients over {keys} keys",
        "  outcomes: " + ", ".join(f"{o} {outcomes[o]}" for o in Outcome),
        "  kinds: " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())),
    ]


def _listed(items: Iterable[str], total: int) -> list[str]:
    out = [f"  {item}" for _, item in zip(range(_MAX_LISTED), items, strict=False)]
    if total > _MAX_LISTED:
        out.append(f"  ... and {total - _MAX_LISTED} more")
    return out


def _explain(kr: KeyResult, prefix_tail: int) -> list[str]:
    out: list[str] = []
    if kr.minimal:
        how = "complete" if kr.shrink_complete else "stopped by its budget"
        out.append(
            f"Minimal failing sub-history for key {kr.key} ({len(kr.minimal)} ops, shrink {how}):"
        )
        stuck = {kr.stuck.id} if kr.stuck is not None else set()
        rows = format_timeline(kr.minimal, mark=stuck).splitlines()
        if len(rows) > _MAX_ROWS:  # an unfinished shrink: the rows nearest the failure
            out.append(f"  ... {len(rows) - _MAX_ROWS} earlier operations not shown")
            rows = rows[-_MAX_ROWS:]
        out += ["  " + line for line in rows]
    if kr.longest_prefix or kr.stuck is not None:
        out.append("")
        out.append(
            f"Longest linearization found for key {kr.key}: {len(kr.longest_prefix)} ops"
            + (f"; the last {prefix_tail}, in order:" if kr.longest_prefix else ".")
        )
        for op in kr.longest_prefix[-prefix_tail:]:
            out.append(f"    #{op.id} c{op.client} {op.describe()}")
        if kr.stuck is not None:
            out.append(
                f"  and then no order could place #{kr.stuck.id} c{kr.stuck.client} "
                f"{kr.stuck.describe()}"
            )
    return out


def format_timeline(
    ops: Sequence[Operation], *, width: int = 48, mark: Collection[int] = ()
) -> str:
    """Operations as text bars on one time axis, one row each, in invocation order.

    The axis is by rank of the distinct instants, not to scale, so that short operations
    stay visible next to long ones. ``[===]`` is an acknowledged operation, ``[xxx]`` a failed
    one, ``[~~~>`` one of unknown outcome (it may take effect any time after its invocation);
    ops whose id is in ``mark`` get a ``<<`` after their description.
    """
    if not ops:
        return ""
    ordered = sorted(ops, key=lambda op: (op.invoke, op.id))
    instants = sorted({t for op in ordered for t in (op.invoke, op.complete)
                       if t is not None and math.isfinite(t)})
    scale = (width - 1) / max(1, len(instants) - 1)

    def col(t: float) -> int:
        return round(bisect.bisect_left(instants, t) * scale)

    rows = []
    for op in ordered:
        cells = [" "] * width
        start = col(op.invoke)
        if op.outcome is Outcome.UNKNOWN or op.complete is None or math.isinf(op.complete):
            for c in range(start, width):
                cells[c] = "~"
            cells[-1] = ">"
        else:
            end = max(col(op.complete), start + 1)
            fill = "=" if op.outcome is Outcome.OK else "x"
            for c in range(start, min(end + 1, width)):
                cells[c] = fill
            cells[min(end, width - 1)] = "]"
        cells[start] = "["
        note = "  <<" if op.id in mark else ""
        rows.append(f"c{op.client:<3}|{''.join(cells)}| #{op.id} {op.describe()}{note}")
    return "\n".join(rows)


# --- HTML ----------------------------------------------------------------------------------

_COLOURS = {Outcome.OK: "#5cb85c", Outcome.FAIL: "#9e9e9e", Outcome.UNKNOWN: "#f0ad4e"}
_LANE_ROW = 22  # px per row within a client's lane
_LABEL = 90  # px for the lane labels


def render_html_timeline(
    ops: Sequence[Operation],
    *,
    result: LinearizabilityResult | None = None,
    highlight: Collection[int] = (),
    title: str = "minietcd-lab history",
) -> str:
    """A standalone HTML page: one lane per client, one bar per operation from invocation to
    response, coloured by outcome. The ops of every shrunk failing sub-history in ``result``,
    and those whose id is in ``highlight``, are outlined and listed below the timeline."""
    failing: set[int] = set(highlight)
    witnesses: list[KeyResult] = []
    if result is not None:
        for key in result.illegal_keys:
            kr = result.keys[key]
            witnesses.append(kr)
            failing |= {op.id for op in kr.minimal}
    t0, t1 = _time_span(ops)
    durations = sorted(_end(op, t1) - op.invoke for op in ops) or [1.0]
    # Scale so that a typical operation is ~14 px wide, within sane page widths.
    typical = max(durations[len(durations) // 2], (t1 - t0) / 20000, 1e-9)
    px = min(max(1000 / max(t1 - t0, 1e-9), 14 / typical), 200_000 / max(t1 - t0, 1e-9))
    width = math.ceil((t1 - t0) * px) + 40

    lanes: dict[int, list[Operation]] = defaultdict(list)
    for op in sorted(ops, key=lambda o: (o.invoke, o.id)):
        lanes[op.client].append(op)
    body: list[str] = []
    y = 0
    for client in sorted(lanes):
        rows = _pack(lanes[client], t1)
        height = max(1, len(rows)) * _LANE_ROW
        body.append(f'<div class="lane" style="top:{y}px;height:{height}px">'
                    f'<span class="who">client {client}</span></div>')
        for r, row in enumerate(rows):
            for op in row:
                body.append(_bar(op, t0, t1, px, y + r * _LANE_ROW, op.id in failing))
        y += height + 6
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        _legend(ops, result),
        f'<div class="scroll"><div class="chart" style="width:{width + _LABEL}px;height:{y}px">',
        *body,
        "</div></div>",
    ]
    for kr in witnesses:
        parts.append(f"<h2>Minimal failing sub-history, key {html.escape(kr.key)}</h2><ol>")
        parts += [f"<li>{_op_text(op)}</li>" for op in kr.minimal]
        parts.append("</ol>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_html_timeline(
    path: str | os.PathLike[str],
    ops: Sequence[Operation],
    *,
    result: LinearizabilityResult | None = None,
    highlight: Collection[int] = (),
    title: str = "minietcd-lab history",
) -> None:
    page = render_html_timeline(ops, result=result, highlight=highlight, title=title)
    with open(path, "w", encoding="utf-8") as fp:
        fp.write(page)


def _end(op: Operation, t_end: float) -> float:
    """Where an op's bar ends: its answer, or for an op never answered the end of the run."""
    if op.complete is None or not math.isfinite(op.complete):
        return t_end
    return op.complete


def _time_span(ops: Sequence[Operation]) -> tuple[float, float]:
    times = [t for op in ops for t in (op.invoke, op.complete)
             if t is not None and math.isfinite(t)]
    if not times:
        return 0.0, 1.0
    lo, hi = min(times), max(times)
    return lo, hi if hi > lo else lo + 1.0


def _pack(ops: list[Operation], t_end: float) -> list[list[Operation]]:
    """Rows for one client's ops so that bars never overlap (a client that gave up on an
    operation carries on while it may still be in flight)."""
    rows: list[list[Operation]] = []
    ends: list[float] = []
    for op in ops:
        end = _end(op, t_end)
        for r, last in enumerate(ends):
            if last <= op.invoke:
                rows[r].append(op)
                ends[r] = end
                break
        else:
            rows.append([op])
            ends.append(end)
    return rows


def _bar(op: Operation, t0: float, t1: float, px: float, top: int, failing: bool) -> str:
    left = _LABEL + (op.invoke - t0) * px
    end = _end(op, t1)
    width = max(3.0, (end - op.invoke) * px)
    classes = "op fail-mark" if failing else "op"
    style = (f"left:{left:.1f}px;top:{top + 2}px;width:{width:.1f}px;"
             f"background:{_COLOURS[op.outcome]}")
    tail = ""
    if op.outcome is Outcome.UNKNOWN:
        # May take effect any time after its invocation: a faint tail to the end of the run.
        tail_w = max(0.0, (t1 - end) * px)
        tail = (f'<div class="tail" style="left:{left + width:.1f}px;top:{top + 2}px;'
                f'width:{tail_w:.1f}px"></div>')
    label = html.escape(f"{op.kind} {op.value if op.value is not None else ''}".strip())
    tip = html.escape(_tooltip(op), quote=True)
    return f'<div class="{classes}" style="{style}" title="{tip}">{label}</div>{tail}'


def _done(op: Operation) -> str:
    return "-" if op.complete is None or math.isinf(op.complete) else f"{op.complete:.6f}"


def _tooltip(op: Operation) -> str:
    return f"#{op.id} client {op.client}: {op.describe()}\ninvoke {op.invoke:.6f}, complete {_done(op)}"


def _op_text(op: Operation) -> str:
    done = _done(op)
    return html.escape(
        f"#{op.id} client {op.client} [{op.invoke:.6f} .. {done}] {op.describe()}"
    )


def _legend(ops: Sequence[Operation], result: LinearizabilityResult | None) -> str:
    counts = Counter(op.outcome for op in ops)
    items = "".join(
        f'<span class="key"><i style="background:{_COLOURS[o]}"></i>{o} ({counts[o]})</span>'
        for o in Outcome
    )
    verdict = ""
    if result is not None:
        cls = "bad" if result.verdict is Verdict.ILLEGAL else "good"
        verdict = (f'<p class="{cls}">linearizability: {result.verdict} '
                   f"({len(ops)} ops, {result.elapsed:.2f} s)</p>")
    return (f'{verdict}<p class="legend">{items}<span class="key"><i class="fail-mark"></i>'
            "in a failing sub-history</span></p>")


_CSS = """
body { font: 13px/1.4 system-ui, sans-serif; margin: 1em; color: #222; }
h1 { font-size: 18px; } h2 { font-size: 15px; margin-top: 1.5em; }
.scroll { overflow-x: auto; border: 1px solid #ddd; }
.chart { position: relative; }
.lane { position: absolute; left: 0; right: 0; border-bottom: 1px solid #eee; }
.who { position: sticky; left: 0; display: inline-block; width: 84px; padding-left: 4px;
       background: #fff; color: #555; z-index: 3; }
.op { position: absolute; height: 16px; border-radius: 3px; overflow: hidden;
      white-space: nowrap; font-size: 10px; color: #fff; padding-left: 2px;
      box-sizing: border-box; }
.tail { position: absolute; height: 16px; border-top: 1px dotted #f0ad4e; opacity: .7; }
.fail-mark { outline: 3px solid #d9230f; z-index: 2; }
.legend .key { margin-right: 1.2em; }
.legend i { display: inline-block; width: 14px; height: 10px; margin-right: 4px;
            vertical-align: middle; }
.bad { color: #d9230f; font-weight: bold; } .good { color: #3c763d; font-weight: bold; }
"""
