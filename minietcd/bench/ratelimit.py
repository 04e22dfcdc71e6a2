"""A token bucket with the semantics of Go's ``golang.org/x/time/rate.Limiter``.

``rate`` tokens a second, at most ``burst`` saved up; :meth:`Limiter.wait` reserves the next
token and sleeps until it is due. Reservations are made in call order, so any number of tasks
sharing one limiter are together held to the rate (as etcd's benchmark and check perf share one).
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field


@dataclass(slots=True)
class Limiter:
    rate: float
    burst: int = 1
    _tokens: float = field(init=False)
    _last: float = field(init=False)

    def __post_init__(self) -> None:
        self._tokens = float(self.burst)
        self._last = time.monotonic()

    @property
    def unlimited(self) -> bool:
        return math.isinf(self.rate) or self.rate <= 0

    def reserve(self, now: float) -> float:
        """Take the next token; how long to wait (seconds) until it is due."""
        if self.unlimited:
            return 0.0
        self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.rate) - 1.0
        self._last = now
        return -self._tokens / self.rate if self._tokens < 0 else 0.0

    async def wait(self, deadline: float = math.inf) -> bool:
        """Wait for a token; False (and no token taken) if it would come after ``deadline``
        (a ``time.monotonic()`` value), as ``Limiter.Wait`` fails past its context's deadline."""
        now = time.monotonic()
        delay = self.reserve(now)
        if now + delay > deadline:
            self._tokens += 1.0
            return False
        if delay > 0:
            await asyncio.sleep(delay)
        return True
