"""Guided lessons: scenarios that run themselves step by step on the real cluster.

A :class:`Lesson` is a list of :class:`Step` s. A step shows its text, does its actions (the
same lab calls as the page's buttons, marked in the story as the lesson's), waits until the
picture shows what the step is about (a new leader, a committed entry, nobody leading for a
while), then shows its ``after`` text and lets the person press "next". Texts are templates:
``{leader}``, ``{term}``, ``{old_leader}``... are filled from the picture and from what earlier
steps noted. The lessons themselves are in ``lesson_book.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Final

from minietcd.errors import LabError
from minietcd.lab.web.actions import Actions, Outcome, Planned
from minietcd.lab.web.collector import Stage
from minietcd.lab.web.controller import Controllers
from minietcd.lab.web.picture import NORMAL_PACE, TEACH_PACE

WAIT_POLL: Final = 0.2

log = logging.getLogger(__name__)


@dataclass(slots=True, frozen=True)
class Call:
    """A lesson action that is not a lab command (a controller replica started or killed):
    ``fn(ctx)`` runs in a worker thread and is marked in the story like any action."""

    text: str
    cli: str
    fn: Callable[[Ctx], str]


@dataclass(slots=True, frozen=True)
class Wait:
    """Between two actions of a step: wait until ``until(ctx)`` (e.g. a new cluster has a leader
    in the picture before the next action picks that leader)."""

    until: Callable[[Ctx], bool]
    what: str


Item = Mapping[str, Any] | Call | Wait  # an action spec (actions.plan), a Call or a Wait


@dataclass(slots=True, frozen=True)
class Step:
    title: str
    text: str  # shown from the start of the step (a template)
    # What the step does, in order. A generator is resumed only after the previous item is
    # done, so an item can depend on what the earlier ones changed.
    do: Callable[[Ctx], Iterable[Item]] | None = None
    until: Callable[[Ctx], bool] | None = None  # what it waits for, then ...
    waiting: str = ""  # ... shown while waiting ("waiting for a new leader")
    after: str = ""  # shown once it holds (a template)
    note: Callable[[Ctx], Mapping[str, Any]] | None = None  # variables noted at the start
    then: Callable[[Ctx], Mapping[str, Any]] | None = None  # variables noted at the end
    timeout: float | None = None  # seconds to wait (default: from the cluster's election timeout)


@dataclass(slots=True, frozen=True)
class Lesson:
    id: str
    title: str
    summary: str
    steps: tuple[Step, ...]
    table: tuple[str, ...] = ()  # column names if the lesson fills a table (ctx.table)


class _Missing(dict[str, Any]):
    """Template values; a name nobody noted is shown as "?" and remembered (a lesson bug)."""

    def __init__(self, unfilled: set[str], **values: Any) -> None:
        super().__init__(**values)
        self.unfilled = unfilled

    def __missing__(self, key: str) -> str:
        self.unfilled.add(key)
        return "?"


@dataclass(slots=True)
class Ctx:
    """What a lesson's functions see: the picture's newest frame, the variables noted so far,
    the outcomes of this step's actions, the lesson's pace and table."""

    runner: LessonRunner
    vars: dict[str, Any] = field(default_factory=dict)
    outcomes: list[Outcome] = field(default_factory=list)
    table: list[list[str]] = field(default_factory=list)
    since: dict[str, float] = field(default_factory=dict)  # condition name -> since when it held
    unfilled: set[str] = field(default_factory=set)  # template names no step noted (a lesson bug)

    @property
    def pace(self) -> str:
        return self.runner.pace

    @property
    def frame(self) -> Mapping[str, Any]:
        return self.runner.stage.last_frame or {"members": [], "cluster": None, "leader": None, "term": 0}

    def members(self) -> list[Mapping[str, Any]]:
        return list(self.frame["members"])

    def member(self, name: str) -> Mapping[str, Any] | None:
        return next((m for m in self.members() if m["name"] == name), None)

    def up(self) -> list[str]:
        """Members that run, answer and are in the configuration."""
        return [m["name"] for m in self.members()
                if m["role"] not in ("down", "paused") and not m["removed"]]

    def leader(self, among: Sequence[str] | None = None) -> str | None:
        """The leader every member of ``among`` (default: all up) follows and that leads, if any."""
        names = list(among) if among is not None else self.up()
        ms = [m for m in self.members() if m["name"] in names and m["role"] not in ("down", "paused")]
        leaders = [m["name"] for m in ms if m["role"] == "leader"]
        if len(leaders) != 1 or not ms:
            return None
        return leaders[0] if all(m["leader"] == leaders[0] for m in ms) else None

    def followers(self) -> list[str]:
        lead = self.leader()
        return [n for n in self.up() if n != lead]

    def election_s(self) -> float:
        c = self.frame.get("cluster")
        return (c["election_ms"] if c else TEACH_PACE[1]) / 1000

    def held_for(self, name: str, holds: bool, seconds: float) -> bool:
        """``holds`` has been true for ``seconds`` (tracked under ``name``)."""
        now = time.monotonic()
        if not holds:
            self.since.pop(name, None)
            return False
        return now - self.since.setdefault(name, now) >= seconds

    def committed_everywhere(self, key: str, among: Sequence[str] | None = None) -> bool:
        """Every member of ``among`` (default: all up) holds ``put key``, committed and applied."""
        names = list(among) if among is not None else self.up()
        for name in names:
            m = self.member(name)
            if m is None or m["commit"] is None:
                return False
            mine = [e for e in m["log"] if _is_put(e[2], key) and e[3] != "divergent"]
            entry = mine[-1] if mine else None
            if entry is None or m["commit"] < entry[0] or m["applied"] < entry[0]:
                return False
        return bool(names)

    def fill(self, template: str, final: bool = True) -> str:
        """``template`` with the picture's values and the noted variables; names nobody noted are
        remembered (``unfilled``) only in a ``final`` fill (a step's text is filled again as the
        picture changes until the step ends)."""
        c = self.frame.get("cluster")
        size = len(c["names"]) if c else 0
        values = _Missing(
            self.unfilled if final else set(),
            leader=self.leader() or self.frame.get("leader") or "nobody",
            term=self.frame.get("term", 0),
            size=size,
            majority=size // 2 + 1,
            tolerance=(size - 1) // 2,
            heartbeat=f"{c['heartbeat_ms']} ms" if c else "?",
            election=f"{c['election_ms'] / 1000:g} s" if c else "?",
            followers=", ".join(self.followers()) or "none",
        )
        values.update(self.vars)
        return template.format_map(values)


def _is_put(what: str, key: str) -> bool:
    """``what`` (a log entry's few words, long keys cut with "…") says ``put key``."""
    text = f"put {key}"
    return what == text or (what.endswith("…") and text.startswith(what[:-1]))


def ensure(ctx: Ctx, size: int, pace: str | None = None) -> list[Item]:
    """Start a ``size``-member cluster at ``pace`` (the lesson's) unless the one drawn is one,
    whole and led already."""
    pace = pace or ctx.pace
    c = ctx.frame.get("cluster")
    want = {"teach": TEACH_PACE, "normal": NORMAL_PACE}[pace]
    whole = c is not None and len(c["names"]) == size and (c["heartbeat_ms"], c["election_ms"]) == want
    if whole and len(ctx.up()) == size and ctx.leader() is not None and c and c.get("backend") == "local":
        return []
    return [{"action": "up", "size": size, "pace": pace}, led(size)]


def led(size: int) -> Wait:
    """Wait until the picture shows ``size`` members up, all following one leader."""
    return Wait(lambda ctx: len(ctx.up()) == size and ctx.leader() is not None, "a leader in the picture")


class LessonRunner:
    """Runs one lesson at a time for the page (see the module docstring)."""

    def __init__(self, actions: Actions, stage: Stage, pace: str = "teach",
                 book: Sequence[Lesson] | None = None) -> None:
        from minietcd.lab.web.lesson_book import LESSONS

        self.actions = actions
        self.stage = stage
        self.pace = pace
        self.book = {x.id: x for x in (book if book is not None else LESSONS)}
        self.controllers = Controllers(Path(actions.lab.lab_dir) / "controllers")
        self.lesson: Lesson | None = None
        self.index = -1
        self.status = "idle"  # running, waiting, done, timeout, failed, finished
        self.text = ""
        self.after = ""
        self.ctx = Ctx(self)
        self._task: asyncio.Task[None] | None = None
        self.controller_state: dict[str, Any] | None = None

    def catalogue(self) -> list[dict[str, Any]]:
        return [{"id": x.id, "title": x.title, "summary": x.summary, "steps": len(x.steps)}
                for x in self.book.values()]

    def state(self) -> dict[str, Any] | None:
        if self.lesson is None:
            return None
        steps, table = self.lesson.steps, self.lesson.table
        step = steps[self.index] if 0 <= self.index < len(steps) else None
        if step is not None and self.status in ("running", "waiting"):
            self.text = self.ctx.fill(step.text, final=False)  # the cluster may have just appeared
        return {
            "id": self.lesson.id,
            "title": self.lesson.title,
            "step": self.index,
            "steps": len(self.lesson.steps),
            "step_title": step.title if step else "",
            "text": self.text,
            "after": self.after,
            "status": self.status,
            "waiting": step.waiting if step and self.status == "waiting" else "",
            "can_next": self.status in ("done", "timeout", "failed") and self.index + 1 < len(steps),
            "table": {"columns": list(table), "rows": self.ctx.table} if table else None,
            "controllers": self.controller_state,
            "unfilled": sorted(self.ctx.unfilled),
        }

    def start(self, lesson_id: str) -> None:
        lesson = self.book.get(lesson_id)
        if lesson is None:
            raise LabError(f"no lesson {lesson_id!r}: choose among {', '.join(self.book)}")
        if self.actions.lab.compose:
            raise LabError("lessons start their own local clusters: run `minietcd-lab web` without --compose")
        self._cancel()
        self.controllers.stop_all()
        self.controller_state = None
        self.lesson, self.index, self.ctx = lesson, -1, Ctx(self)
        self.stage.note(f"lesson: {lesson.title}")
        self._go()

    def next(self) -> None:
        if self.lesson is None:
            raise LabError("no lesson is running")
        if self.status in ("running", "waiting"):
            raise LabError("this step is not finished yet")
        if self.index + 1 >= len(self.lesson.steps):
            raise LabError("this was the last step")
        self._go()

    async def stop(self) -> None:
        self._cancel()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await asyncio.to_thread(self.controllers.stop_all)
        self.lesson, self.index, self.status = None, -1, "idle"

    def _cancel(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()

    def _go(self) -> None:
        assert self.lesson is not None
        self.index += 1
        self.status, self.text, self.after = "running", "", ""
        self._task = asyncio.create_task(self._run(self.lesson.steps[self.index]))

    async def _run(self, step: Step) -> None:
        """Run ``step``; whatever happens, it ends with a status the page shows (a step that broke
        is "failed" with one line saying why, never left "running" for ever)."""
        try:
            await self._run_step(step)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a lesson bug or a picture it did not expect: say so, go on
            log.exception("lesson step %r broke", step.title)
            first = f"{type(e).__name__}: {e}".splitlines()[0]
            self.status, self.after = "failed", f"The step broke ({first}). Next goes on anyway."

    async def _run_step(self, step: Step) -> None:
        ctx = self.ctx
        ctx.outcomes = []
        if step.note is not None:
            ctx.vars.update(step.note(ctx))
        self.text = ctx.fill(step.text, final=False)
        for item in step.do(ctx) if step.do is not None else []:
            if isinstance(item, Wait):
                if not await self._wait(item.until, max(30.0, 8 * ctx.election_s() + 20)):
                    self.status, self.after = "failed", f"Waited in vain for {item.what}."
                    return
                continue
            if isinstance(item, Call):
                planned = Planned(item.text, item.cli, partial(item.fn, ctx))
                out = await self.actions.run_planned(planned, "lesson")  # bounded: ACTION_BOUND
            else:
                try:
                    out = await self.actions.run(item, source="lesson")
                except LabError as e:
                    out = Outcome(False, str(e), "", 0.0)
            ctx.outcomes.append(out)
            if not out.ok and not (isinstance(item, Mapping) and item.get("may_fail")):
                self.status, self.after = "failed", f"The lab could not do this: {out.text}"
                return
        if step.until is not None:
            self.status = "waiting"
            timeout = step.timeout or max(30.0, 8 * ctx.election_s() + 20)
            if not await self._wait(step.until, timeout):
                self.status = "timeout"
                self.after = f"Not within {timeout:.0f} s ({step.waiting}). Next goes on anyway."
                return
        if step.then is not None:
            ctx.vars.update(step.then(ctx))
        self.text = ctx.fill(step.text)
        self.after = ctx.fill(step.after)
        last = self.lesson is not None and self.index + 1 >= len(self.lesson.steps)
        self.status = "finished" if last else "done"

    async def _wait(self, until: Callable[[Ctx], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not until(self.ctx):
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(WAIT_POLL)
        return True

    async def watch_controllers(self) -> None:
        """Keep ``controller_state`` fresh while a lesson has replicas (run by the app)."""
        while True:
            if self.controllers.replicas:
                ports = self._client_ports()
                self.controller_state = await asyncio.to_thread(self.controllers.state, ports)
            await asyncio.sleep(0.5)

    def _client_ports(self) -> list[int]:
        with contextlib.suppress(LabError):
            cluster = self.actions.lab.cluster()
            return [m.client_port for m in cluster.members if cluster.process_state(m.name) == "running"]
        return []

    def endpoints(self) -> list[str]:
        cluster = self.actions.lab.cluster()
        return [f"127.0.0.1:{m.client_port}" for m in cluster.members]
