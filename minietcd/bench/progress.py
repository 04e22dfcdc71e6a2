"""A progress bar on stderr drawn like etcd's tools (``gopkg.in/cheggaaa/pb.v1``, format ``Bom !``).

    " 120 / 1000 Booooooom                    !  12.00% 00m07s"

Counters, a bar as wide as the terminal (left out when stderr is not a terminal, as pb does when
it cannot find a width), the percentage, and the estimated time left; once finished, the time
taken in Go's duration format. Redrawn with a carriage return every 200 ms by a background task;
the owner only bumps :attr:`Progress.current`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import sys
import time
from dataclasses import dataclass, field
from typing import TextIO

REFRESH = 0.2


def go_seconds(seconds: float) -> str:
    """Go's ``time.Duration.String()`` for a whole number of seconds (``1m0s``, ``2h0m5s``)."""
    s = int(seconds)
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    if h:
        return f"{h}h{m}m{sec}s"
    if m:
        return f"{m}m{sec}s"
    return f"{sec}s"


def time_left(seconds: float) -> str:
    s = int(seconds)
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h{m:02d}m{sec:02d}s" if h else f"{m:02d}m{sec:02d}s"


def render(current: int, total: int, elapsed: float, since_change: float, width: int, done: bool) -> str:
    """One line of the bar (without the carriage return)."""
    counters = f" {current} / {total} "
    pct = current / total * 100 if total > 0 else 0.0
    percent = f" {pct:6.2f}%"
    left = ""
    if done:
        left = " " + go_seconds(round(elapsed))
    elif current > 0 and total > 0:
        remaining = (total - current) * (elapsed / current) - since_change
        if int(remaining) > 0:
            left = " " + time_left(remaining)
    bar = ""
    size = width - len(counters) - 2 - len(percent) - len(left)
    if width > 0 and size > 0:
        filled = min(size, math.ceil(current / total * size)) if total > 0 else 0
        empty = max(0, size - filled)
        if empty == 0:
            body = "o" * filled
        elif filled > 0:
            body = "o" * (filled - 1) + "m"
        else:
            body = ""
        bar = "B" + body + " " * empty + "!"
    return counters + bar + percent + left


@dataclass(slots=True)
class Progress:
    """``current`` out of ``total``, redrawn on ``out`` until :meth:`finish`."""

    total: int
    out: TextIO = field(default_factory=lambda: sys.stderr)
    current: int = 0
    _start: float = 0.0
    _last_value: int = -1
    _last_change: float = 0.0
    _task: asyncio.Task[None] | None = None

    def _width(self) -> int:
        try:
            if self.out.isatty():
                return os.get_terminal_size(self.out.fileno()).columns
        except (OSError, ValueError):
            pass
        return 0

    def _draw(self, done: bool = False) -> None:
        now = time.monotonic()
        if self.current != self._last_value:
            self._last_value, self._last_change = self.current, now
        line = render(
            self.current, self.total, now - self._start, now - self._last_change, self._width(), done
        )
        with contextlib.suppress(OSError, ValueError):
            self.out.write("\r" + line + ("\n" if done else ""))
            self.out.flush()

    async def _loop(self) -> None:
        while True:
            self._draw()
            await asyncio.sleep(REFRESH)

    def start(self) -> Progress:
        self._start = self._last_change = time.monotonic()
        self._task = asyncio.get_running_loop().create_task(self._loop())
        return self

    async def finish(self) -> None:
        """Stop redrawing and draw the final line with the time taken."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._draw(done=True)
