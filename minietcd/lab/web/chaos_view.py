"""A chaos run recorded for the live view: ``minietcd-lab chaos --record FILE``.

While the run goes on, a :class:`BackgroundRecorder` watches its cluster exactly as
``minietcd-lab web`` would (the collector, in a thread with its own event loop). At the end the
recording gets a ``chaos`` section: every client operation (invocation, answer, outcome), the
nemesis' faults with when they were undone, and the verdict. ``minietcd-lab web --replay FILE``
then plays the run (ring, messages, logs, story) above a timeline of the operations with the
faults as bands and a leader lane, on one clock (relative seconds).

The chaos runner stamps operations and faults with ``time.monotonic()``; frames and events carry
Unix times. :func:`chaos_section` converts with one offset measured in the same process.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

from minietcd.lab.check.history import Operation
from minietcd.lab.web import recording
from minietcd.lab.web.collector import Collector, Stage
from minietcd.lab.web.picture import leader_lane


class FaultLike(Protocol):
    at: float  # seconds since the run's start (its monotonic t0)
    kind: str
    undone_at: float | None

    def describe(self) -> str: ...


class BackgroundRecorder:
    """Collects a picture of the lab cluster in ``lab_dir`` until :meth:`stop`."""

    def __init__(self, lab_dir: Path) -> None:
        self.stage = Stage()
        self._lab_dir = Path(lab_dir)
        self._loop = asyncio.new_event_loop()
        self._task: asyncio.Task[None] | None = None
        self._thread = threading.Thread(target=self._run, name="chaos-recorder", daemon=True)
        self._ready = threading.Event()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._task = self._loop.create_task(Collector(self._lab_dir, self.stage).run())
        self._ready.set()
        with contextlib.suppress(asyncio.CancelledError):
            self._loop.run_until_complete(self._task)
        self._loop.close()

    def start(self) -> BackgroundRecorder:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        if self._task is not None:
            self._loop.call_soon_threadsafe(self._task.cancel)
        self._thread.join(30)


def _wall(mono: float | None, offset: float) -> float | None:
    if mono is None or not math.isfinite(mono):
        return None
    return mono + offset


def chaos_section(
    title: str,
    ops: Iterable[Operation],
    faults: Sequence[FaultLike],
    t0_monotonic: float,
    offset: float,
    verdict: str,
) -> dict[str, Any]:
    """The ``chaos`` part of a recording; ``offset`` = Unix time - monotonic time, measured once."""
    return {
        "title": title,
        "t0": t0_monotonic + offset,
        "verdict": verdict,
        "ops": [
            {
                "id": op.id,
                "client": op.client,
                "invoke": op.invoke + offset,
                "complete": _wall(op.complete, offset),
                "outcome": str(op.outcome),
                "text": op.describe(),
            }
            for op in ops
        ],
        "faults": [
            {
                "at": t0_monotonic + f.at + offset,
                "until": None if f.undone_at is None else t0_monotonic + f.undone_at + offset,
                "kind": f.kind,
                "detail": f.describe(),
            }
            for f in faults
        ],
    }


def save(path: Path, recorder: BackgroundRecorder, chaos: dict[str, Any]) -> None:
    """The recorder's run with ``chaos`` and its leader lane (who led when, from the frames)."""
    rec = recording.from_stage(recorder.stage, title=chaos["title"])
    rec["chaos"] = {**chaos, "leaders": leader_lane(rec["frames"])}
    recording.save(path, rec)


def monotonic_offset() -> float:
    return time.time() - time.monotonic()
