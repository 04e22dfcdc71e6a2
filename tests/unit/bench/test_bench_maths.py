"""The report maths of minietcd.bench (etcd 3.4's pkg/report) and check perf's verdict, on given
samples; the progress bar's text and the rate limiter's pacing."""

from __future__ import annotations

import asyncio
import math
import statistics
import time

import pytest

from minietcd.bench import checkperf
from minietcd.bench.progress import go_seconds
from minietcd.bench.progress import render as render_bar
from minietcd.bench.ratelimit import Limiter
from minietcd.bench.report import compute, go_g, histogram, percentiles, render
from minietcd.bench.workloads import KeySource, check_key_space, varint, varint_key


def test_summary_numbers() -> None:
    s = compute([0.004, 0.001, 0.003, 0.002], total=2.0, errors={"boom": 1})
    assert s.lats == [0.001, 0.002, 0.003, 0.004]
    assert (s.fastest, s.slowest) == (0.001, 0.004)
    assert s.average == pytest.approx(0.0025)
    # population standard deviation, as etcd computes it (not the sample one)
    assert s.stddev == pytest.approx(statistics.pstdev([1, 2, 3, 4]) / 1000)
    assert s.stddev != pytest.approx(statistics.stdev([1, 2, 3, 4]) / 1000)
    assert s.rps == pytest.approx(2.0)  # successful requests only, over the whole run


def test_percentiles_are_etcd_34s() -> None:
    lats = [i / 1000 for i in range(1, 101)]  # 1..100 ms
    got = percentiles(lats)
    # first sample with rank i*100/n >= p: index ceil(p*n/100)
    assert got == [lats[10], lats[25], lats[50], lats[75], lats[90], lats[95], lats[99], 0.0]
    assert percentiles([0.5]) == [0.0] * 8  # only index 0, rank 0: no percentile reached
    assert percentiles([]) == [0.0] * 8
    lats2 = [i / 1000 for i in range(1, 1001)]
    assert percentiles(lats2)[-1] == lats2[999]  # 99.9% of 1000 samples


def test_histogram_buckets() -> None:
    s = compute([0.0, 0.1, 0.15, 0.5, 1.0], total=1.0)
    bounds, counts = histogram(s)
    assert len(bounds) == 11 and bounds[0] == 0.0 and bounds[-1] == 1.0
    assert bounds[1] == pytest.approx(0.1)
    assert counts == [1, 1, 1, 0, 0, 1, 0, 0, 0, 0, 1]
    same = compute([0.2] * 7, total=1.0)
    assert histogram(same)[1] == [7] + [0] * 10


def test_rendered_report() -> None:
    errors = {"etcdserver: too many requests": 2}
    text = render(compute([0.001, 0.002, 0.002, 0.010], total=0.5, errors=errors))
    assert text.startswith("\nSummary:\n  Total:\t0.5000 secs.\n  Slowest:\t0.0100 secs.\n")
    assert "  Fastest:\t0.0010 secs.\n  Average:\t0.0037 secs.\n" in text
    assert "  Requests/sec:\t8.0000\n" in text
    assert "\nResponse time histogram:\n  0.0010 [1]\t|" + "∎" * 20 + "\n  0.0019 [0]\t|\n" in text
    assert "  0.0100 [1]\t|" + "∎" * 20 + "\n" in text
    assert "  0.0028 [2]\t|" + "∎" * 40 + "\n" in text
    # etcd 3.4 walks the samples once: 10% and 25% take the 2nd and 3rd, 50% the 4th
    dist = "\nLatency distribution:\n  10% in 0.0020 secs.\n  25% in 0.0020 secs.\n  50% in 0.0100 secs.\n"
    assert dist in text
    assert "  99.9%" not in text  # no sample reaches it with 4 samples: etcd leaves it out
    assert text.endswith("\nError distribution:\n  [2]\tetcdserver: too many requests\n")
    assert "Requests/sec:\t8\n" in render(compute([0.25, 0.25, 0.25, 0.25], total=0.5), "g")


def test_precise_numbers_are_gos_percent_g() -> None:
    """--precise prints with Go's %g (shortest digits; exponent form below 1e-4 and from 1e6)."""
    cases = {
        8.0: "8", 0.25: "0.25", 123456.0: "123456", 1234567.0: "1.234567e+06", 0.0001234: "0.0001234",
        0.00001234: "1.234e-05", 2132.16: "2132.16", 0.1 + 0.2: "0.30000000000000004", -3.5: "-3.5",
        0.0: "0", 100.0: "100", 1e21: "1e+21", 1.5e-7: "1.5e-07", 1e6: "1e+06", 999999.0: "999999",
    }  # fmt: skip
    assert {x: go_g(x) for x in cases} == cases
    assert render(compute([], total=1.0)) == ""


@pytest.mark.parametrize(
    ("rps", "slowest", "stddev", "errors", "expect_ok", "expect"),
    [
        (150.02, 0.0724, 0.0022, {}, True,
         ["PASS: Throughput is 151 writes/s", "PASS: Slowest request took 0.072400s",
          "PASS: Stddev is 0.002200s", "PASS"]),
        # exactly 90% of the rate fails (<= 0.9), just above passes
        (135.0, 0.1, 0.01, {}, False, ["FAIL: Throughput too low: 136 writes/s"]),
        (135.2, 0.1, 0.01, {}, True, ["PASS: Throughput is 136 writes/s"]),
        (150.0, 0.5, 0.1, {}, True, ["PASS: Slowest request took 0.500000s", "PASS: Stddev is 0.100000s"]),
        (150.0, 0.51, 0.2, {}, False,
         ["Slowest request took too long: 0.510000s", "Stddev too high: 0.200000s"]),
        (150.0, 0.1, 0.01, {"etcdserver: request timed out": 3}, False,
         ["FAIL: too many errors", "FAIL: ERROR(etcdserver: request timed out) -> 3"]),
    ],
)  # fmt: skip
def test_check_perf_verdict(
    rps: float, slowest: float, stddev: float, errors: dict[str, int], expect_ok: bool, expect: list[str]
) -> None:
    s = compute([slowest], total=1.0, errors=errors)
    s.rps, s.slowest, s.stddev = rps, slowest, stddev
    lines, ok = checkperf.verdict(s, checkperf.LOADS["s"].limit)
    assert ok is expect_ok
    assert lines[-1] == ("PASS" if expect_ok else "FAIL")
    for line in expect:
        assert line in lines
    assert len(lines) == 4 + (len(errors) + 1 if errors else 0)


def test_check_perf_loads() -> None:
    assert checkperf.load_for("small") == checkperf.Load(150, 50, 60)
    assert checkperf.load_for("m") == checkperf.Load(1000, 200, 60)
    assert checkperf.load_for("large") == checkperf.Load(8000, 500, 60)
    assert checkperf.load_for("xLarge") == checkperf.Load(15000, 1000, 60)
    assert checkperf.load_for("xlarge") is None


def test_keys_are_etcds_varints() -> None:
    assert varint(0) == b"\x00" and varint(1) == b"\x02" and varint(-1) == b"\x01"
    assert varint(64) == b"\x80\x01"
    assert varint_key(300, 8) == b"\xd8\x04" + bytes(6)
    assert len({varint_key(n, 8) for n in range(5000)}) == 5000
    with pytest.raises(ValueError):
        check_key_space(1, 1000)
    with pytest.raises(ValueError):
        check_key_space(8, 0)
    seq = KeySource(3, sequential=True)
    assert [seq() for _ in range(7)] == [0, 1, 2, 0, 1, 2, 0]
    rnd = KeySource(10)
    assert all(0 <= rnd() < 10 for _ in range(100))


def test_progress_bar_text() -> None:
    assert render_bar(0, 60, 0.1, 0.1, 0, False) == " 0 / 60    0.00%"
    assert render_bar(12, 60, 12.0, 0.0, 0, False) == " 12 / 60   20.00% 00m48s"
    assert render_bar(60, 60, 60.2, 0.0, 0, True) == " 60 / 60  100.00% 1m0s"
    line = render_bar(30, 60, 30.0, 0.0, 60, False)
    assert line.startswith(" 30 / 60 B") and "m" in line and line.endswith("!  50.00% 00m30s")
    assert len(line) == 60
    assert render_bar(60, 60, 60.0, 0.0, 40, True).startswith(" 60 / 60 Booooo")
    assert go_seconds(3605) == "1h0m5s" and go_seconds(2) == "2s"


async def test_limiter_paces_to_the_rate() -> None:
    lim = Limiter(200, 1)
    t0 = time.monotonic()
    for _ in range(41):
        assert await lim.wait()
    elapsed = time.monotonic() - t0
    assert 0.18 <= elapsed < 0.6  # 40 intervals of 5 ms after the first (burst) token
    # a wait whose token would come after the deadline fails at once and takes no token
    slow = Limiter(1, 1)
    assert await slow.wait()
    t1 = time.monotonic()
    assert not await slow.wait(deadline=time.monotonic() + 0.2)
    assert time.monotonic() - t1 < 0.1
    assert Limiter(math.inf).unlimited and Limiter(0).unlimited
    await asyncio.sleep(0)
