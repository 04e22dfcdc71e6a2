"""Closed-loop workers: each of ``clients`` tasks sends one request, waits for the answer, and
sends the next, until the request budget or the deadline is spent.

Every request is timed with ``time.perf_counter`` from building the request message (a few
microseconds) to its answer, into one :class:`Recorder`. A failed request counts in
the error distribution under etcd's wording of the error, as etcd's ``report`` keys it by
``err.Error()``.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import grpc

from minietcd.bench.progress import Progress
from minietcd.bench.ratelimit import Limiter
from minietcd.bench.report import Stats, compute
from minietcd.client.errors import error_message, from_rpc_error

#: One client's next request: builds it, sends it and returns the call to await.
Request = Callable[[], Awaitable[object]]


def error_text(err: BaseException) -> str:
    """etcd's wording of a failed request (``etcdserver: ...`` or ``rpc error: code = ...``)."""
    if isinstance(err, grpc.aio.AioRpcError):
        return error_message(from_rpc_error(err))
    return error_message(err)


@dataclass(slots=True)
class Recorder:
    """Latencies (seconds) and error counts of one run, and when it started and ended."""

    lats: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)
    ended: float = 0.0

    def error(self, err: BaseException) -> None:
        text = error_text(err)
        self.errors[text] = self.errors.get(text, 0) + 1

    def stop(self) -> None:
        self.ended = time.perf_counter()

    def stats(self) -> Stats:
        end = self.ended or time.perf_counter()
        return compute(self.lats, end - self.started, self.errors)


@dataclass(slots=True)
class Budget:
    """How many requests are left to hand out (``math.inf``: until the deadline)."""

    left: float
    deadline: float = math.inf


async def run_clients(
    requests: list[Request],
    budget: Budget,
    limiter: Limiter | None = None,
    progress: Progress | None = None,
) -> Recorder:
    """Run one closed-loop worker per entry of ``requests`` (one client's request sender)."""
    rec = Recorder()
    lats = rec.lats
    perf = time.perf_counter

    async def worker(send: Request) -> None:
        while budget.left > 0:
            budget.left -= 1
            if limiter is not None and not await limiter.wait(budget.deadline):
                budget.left = 0
                return
            if budget.deadline != math.inf and time.monotonic() >= budget.deadline:
                budget.left = 0
                return
            t0 = perf()
            try:
                await send()
            except Exception as e:  # any failed request is a sample of the error distribution
                rec.error(e)
            else:
                lats.append(perf() - t0)
            if progress is not None:
                progress.current += 1

    await asyncio.gather(*(worker(send) for send in requests))
    rec.stop()
    return rec
