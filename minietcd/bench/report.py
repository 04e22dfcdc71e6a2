"""etcd's ``pkg/report`` (as in etcd 3.4): statistics over request latencies and their text.

Numbers follow etcd exactly: the standard deviation is the population one, ``Requests/sec`` is
successful requests over the whole run, the histogram has 11 buckets from the fastest to the
slowest request, and the percentiles are etcd 3.4's (the first sorted sample whose rank
``i * 100 / n`` reaches the percentile). Failed requests count only in the error distribution.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

PERCENTILES: tuple[float, ...] = (10, 25, 50, 75, 90, 95, 99, 99.9)
BAR_CHAR = "∎"
HISTOGRAM_BUCKETS = 10
#: Go's ``%4.4f``, etcd's default; ``--precise`` switches to the shortest exact form (``%g``).
DEFAULT_PRECISION = "4.4f"


@dataclass(slots=True)
class Stats:
    """What etcd's ``report.Stats`` holds: latencies in seconds, sorted ascending."""

    total: float
    lats: list[float]
    errors: dict[str, int] = field(default_factory=dict)
    fastest: float = 0.0
    slowest: float = 0.0
    average: float = 0.0
    stddev: float = 0.0
    rps: float = 0.0


def compute(latencies: Iterable[float], total: float, errors: dict[str, int] | None = None) -> Stats:
    """Stats of ``latencies`` (seconds) for a run that took ``total`` seconds."""
    lats = sorted(latencies)
    s = Stats(total=total, lats=lats, errors=dict(errors or {}))
    n = len(lats)
    if n == 0:
        return s
    s.average = math.fsum(lats) / n
    s.stddev = math.sqrt(math.fsum((x - s.average) ** 2 for x in lats) / n)
    s.fastest, s.slowest = lats[0], lats[-1]
    s.rps = n / total if total > 0 else 0.0
    return s


def percentiles(lats: Sequence[float], pcts: Sequence[float] = PERCENTILES) -> list[float]:
    """etcd 3.4's percentiles of sorted ``lats``: for each p, the first ``lats[i]`` with
    ``i * 100 / n >= p`` (0 where there is none, which the report then leaves out)."""
    out = [0.0] * len(pcts)
    n = len(lats)
    j = 0
    for i in range(n):
        if j >= len(pcts):
            break
        if i * 100.0 / n >= pcts[j]:
            out[j] = lats[i]
            j += 1
    return out


def histogram(s: Stats, buckets: int = HISTOGRAM_BUCKETS) -> tuple[list[float], list[int]]:
    """Upper bounds and counts of etcd's histogram: ``buckets + 1`` bounds from fastest to slowest,
    each sample counted in the first bucket whose bound is at least the sample."""
    width = (s.slowest - s.fastest) / buckets
    bounds = [s.fastest + width * i for i in range(buckets)] + [s.slowest]
    counts = [0] * len(bounds)
    b = 0
    for x in s.lats:
        while x > bounds[b] and b < len(bounds) - 1:
            b += 1
        counts[b] += 1
    return bounds, counts


def go_g(x: float) -> str:
    """Go's ``%g`` for a float64 (strconv.FormatFloat(x, 'g', -1, 64)): the shortest digits that
    read back as ``x``, in exponent form when the decimal exponent is below -4 or at least 6
    ("if precision was the shortest possible, use precision 6 for this decision"): ``8``,
    ``0.25``, ``123456``, ``1.234567e+06``, ``1.234e-05``."""
    if x == 0 or not math.isfinite(x):
        return "0" if x == 0 else ("NaN" if math.isnan(x) else ("+Inf" if x > 0 else "-Inf"))
    digits = repr(abs(x)).lower()
    mantissa, _, exp_text = digits.partition("e")
    int_part, _, frac_part = mantissa.partition(".")
    frac_part = frac_part.rstrip("0")
    exp = int(exp_text) if exp_text else 0
    # Normalise to digits d1.d2d3... x 10**e10
    all_digits = (int_part + frac_part).lstrip("0")
    e10 = (
        exp + len(int_part.lstrip("0")) - 1
        if int_part.strip("0")
        else exp - (len(frac_part) - len(frac_part.lstrip("0")) + 1)
    )
    all_digits = all_digits.rstrip("0") or "0"
    sign = "-" if x < 0 else ""
    if e10 < -4 or e10 >= 6:
        head, tail = all_digits[0], all_digits[1:]
        return f"{sign}{head}{'.' + tail if tail else ''}e{'-' if e10 < 0 else '+'}{abs(e10):02d}"
    if e10 < 0:
        return f"{sign}0.{'0' * (-e10 - 1)}{all_digits}"
    whole, frac = all_digits[: e10 + 1].ljust(e10 + 1, "0"), all_digits[e10 + 1 :]
    return f"{sign}{whole}{'.' + frac if frac else ''}"


def _num(x: float, precision: str) -> str:
    return go_g(x) if precision == "g" else format(x, precision)


def render(s: Stats, precision: str = DEFAULT_PRECISION) -> str:
    """The report etcd's benchmark prints (``report.String()``), starting with a blank line."""
    out: list[str] = []
    if s.lats:

        def secs(x: float) -> str:
            return f"{_num(x, precision)} secs"

        out.append("\nSummary:\n")
        out.append(f"  Total:\t{secs(s.total)}.\n")
        out.append(f"  Slowest:\t{secs(s.slowest)}.\n")
        out.append(f"  Fastest:\t{secs(s.fastest)}.\n")
        out.append(f"  Average:\t{secs(s.average)}.\n")
        out.append(f"  Stddev:\t{secs(s.stddev)}.\n")
        out.append(f"  Requests/sec:\t{_num(s.rps, precision)}\n")
        bounds, counts = histogram(s)
        peak = max(counts)
        out.append("\nResponse time histogram:\n")
        for bound, count in zip(bounds, counts, strict=True):
            bar = BAR_CHAR * (count * 40 // peak if peak else 0)
            out.append(f"  {_num(bound, precision)} [{count}]\t|{bar}\n")
        out.append("\nLatency distribution:\n")
        for p, v in zip(PERCENTILES, percentiles(s.lats), strict=True):
            if v > 0:
                out.append(f"  {p:g}% in {secs(v)}.\n")
    if s.errors:
        out.append("\nError distribution:\n")
        out.extend(f"  [{n}]\t{msg}\n" for msg, n in s.errors.items())
    return "".join(out)
