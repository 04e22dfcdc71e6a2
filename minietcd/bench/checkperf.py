"""``etcdctl check perf`` (etcd 3.4's ``ctlv3/command/check.go``): load levels, load, verdict.

A load level is a write rate, a number of clients (each on its own connection) and a duration.
For ``duration`` seconds, puts of 256-byte random keys under the prefix with 1024-byte values
are issued at the rate; the check passes when the throughput was above 90% of the rate, no
request failed, the slowest took at most 0.5 s and the standard deviation was at most 0.1 s.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Awaitable
from dataclasses import dataclass

from minietcd.api.etcdserverpb import rpc_pb2
from minietcd.bench.pool import Pool
from minietcd.bench.progress import Progress
from minietcd.bench.ratelimit import Limiter
from minietcd.bench.report import Stats
from minietcd.bench.runner import Budget, Recorder, Request, run_clients
from minietcd.bench.workloads import varint_key

KEY_SIZE = 256
VALUE_SIZE = 1024
#: Pass rules (check.go): throughput above this share of the rate, slowest and stddev at most.
MIN_THROUGHPUT_SHARE = 0.9
MAX_SLOWEST = 0.5
MAX_STDDEV = 0.1
_MAX_INT64 = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Load:
    limit: int
    clients: int
    duration: int


LOADS = {
    "s": Load(limit=150, clients=50, duration=60),
    "m": Load(limit=1000, clients=200, duration=60),
    "l": Load(limit=8000, clients=500, duration=60),
    "xl": Load(limit=15000, clients=1000, duration=60),
}
ALIASES = {
    "s": "s", "small": "s", "m": "m", "medium": "m", "l": "l", "large": "l", "xl": "xl", "xLarge": "xl",
}  # fmt: skip


def load_for(name: str) -> Load | None:
    """The load level named ``name`` (``s``, ``small``, ... ``xLarge``), or None."""
    model = ALIASES.get(name)
    return LOADS[model] if model is not None else None


def verdict(s: Stats, limit: int) -> tuple[list[str], bool]:
    """check.go's output lines for ``s`` at rate ``limit``, and whether the check passed."""
    lines: list[str] = []
    ok = True
    if s.errors:
        lines.append("FAIL: too many errors")
        lines.extend(f"FAIL: ERROR({err}) -> {n}" for err, n in s.errors.items())
        ok = False
    writes = int(s.rps) + 1
    if s.rps / limit <= MIN_THROUGHPUT_SHARE:
        lines.append(f"FAIL: Throughput too low: {writes} writes/s")
        ok = False
    else:
        lines.append(f"PASS: Throughput is {writes} writes/s")
    if s.slowest > MAX_SLOWEST:
        lines.append(f"Slowest request took too long: {s.slowest:f}s")
        ok = False
    else:
        lines.append(f"PASS: Slowest request took {s.slowest:f}s")
    if s.stddev > MAX_STDDEV:
        lines.append(f"Stddev too high: {s.stddev:f}s")
        ok = False
    else:
        lines.append(f"PASS: Stddev is {s.stddev:f}s")
    lines.append("PASS" if ok else "FAIL")
    return lines, ok


def put_requests(pool: Pool, clients: int, prefix: bytes) -> list[Request]:
    value = bytes(VALUE_SIZE)
    md = pool.metadata
    rng = random.Random()

    def sender(c: int) -> Request:
        put = pool.conn(c).kv.Put

        def send() -> Awaitable[object]:
            key = prefix + varint_key(rng.randrange(_MAX_INT64), KEY_SIZE)
            call: Awaitable[object] = put(rpc_pb2.PutRequest(key=key, value=value), metadata=md)
            return call

        return send

    return [sender(c) for c in range(clients)]


async def run(pool: Pool, load: Load, prefix: bytes, progress: Progress | None = None) -> Recorder:
    """The load: puts at ``load.limit``/s from ``load.clients`` clients for ``load.duration`` s.
    ``progress`` counts seconds, as etcdctl's bar does."""
    deadline = time.monotonic() + load.duration

    async def tick() -> None:
        assert progress is not None
        for i in range(load.duration):
            await asyncio.sleep(max(0.0, deadline - load.duration + i + 1 - time.monotonic()))
            progress.current = i + 1

    ticker = asyncio.create_task(tick()) if progress is not None else None
    rec = await run_clients(
        put_requests(pool, load.clients, prefix), Budget(math.inf, deadline), Limiter(load.limit, 1)
    )
    if ticker is not None:
        await ticker
    return rec
