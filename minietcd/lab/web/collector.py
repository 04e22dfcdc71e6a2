"""Feeding the picture: polls every member's ``/debug/raft/view`` and the lab's facts.

* One asyncio task per member asks ``/debug/raft/view`` every :data:`POLL_SECONDS` for its
  state and the events and messages new since the last answer (a member that is paused or
  killed is not asked: the lab already knows why it is silent). A member whose ``started`` time
  changed has restarted: it is read again from its first event.
* One task reads the lab's facts every :data:`FACTS_SECONDS` in a worker thread: process
  states and every link's Toxiproxy state, as ``minietcd-lab status`` does.
* One task takes a frame of the picture every :data:`FRAME_SECONDS` into the :class:`Stage`'s
  bounded history (what a recording saves).
* Every second the lab's state file is checked: a cluster that appears (``up``, a lesson),
  changes (a member added back has a new id) or goes (``down``) is picked up without a restart.

Everything the picture is fed can also be written as JSON lines (``--record-inputs``):
``picture.feed`` replays such a file, which is how the rules are tested on real streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

import aiohttp

from minietcd.errors import LabError
from minietcd.lab.backend import LabCluster, load_cluster
from minietcd.lab.links import ToxicInfo
from minietcd.lab.state import STATE_FILE, LabState
from minietcd.lab.web.picture import ClusterInfo, LabFacts, LinkFacts, Picture, Toxic

POLL_SECONDS: Final = 0.2
FACTS_SECONDS: Final = 0.5
FRAME_SECONDS: Final = 0.2
STATE_CHECK_SECONDS: Final = 1.0
REQUEST_TIMEOUT: Final = 1.0
HISTORY_SECONDS: Final = 300.0  # events a member held before the view started that are shown
MAX_FRAMES: Final = 6000  # 20 minutes at FRAME_SECONDS
KEEP_EVERY: Final = 2.0  # seconds after which a frame is kept even if nothing changed


def info_of(state: LabState, backend: str) -> ClusterInfo:
    return ClusterInfo(
        names=tuple(m.name for m in state.members),
        ids=tuple(f"{m.member_id:x}" for m in state.members),
        heartbeat_ms=state.heartbeat_ms,
        election_ms=state.election_ms,
        lab_dir=state.lab_dir,
        backend=backend,
    )


def _toxics(toxics: Iterable[ToxicInfo]) -> tuple[Toxic, ...]:
    return tuple(Toxic(x.type, x.toxicity, dict(x.attributes)) for x in toxics)


def read_facts(cluster: LabCluster, now: Callable[[], float] = time.time) -> LabFacts:
    """Process states and link states, as the lab reads them (blocking: run it in a thread)."""
    processes = {n: cluster.process_state(n) for n in cluster.names}
    links: dict[str, LinkFacts] | None = None
    if len(cluster.members) > 1:
        try:
            links = {
                key: LinkFacts(st.enabled, _toxics(st.toxics))
                for key, st in cluster.links.statuses().items()
            }
        except LabError:
            links = None  # Toxiproxy not answering (the cluster is going down): unknown
    return LabFacts(now(), processes, links)


def _same_picture_key(frame: Mapping[str, Any]) -> str:
    """What must differ for a frame to show something new: everything but its time, with each
    election timer as its deadline (``at`` + ``remaining``) to 0.1 s, which moves only when the
    timer is reset."""
    members = []
    for m in frame["members"]:
        timer = m["timer"]
        deadline = None if timer is None else round(timer["at"] * 10 + timer["remaining_ms"] / 100)
        members.append({**m, "timer": deadline})
    return json.dumps([members, frame["links"], frame["cluster"]], sort_keys=True)


class Stage:
    """The picture, its frame history and the optional input log, behind one set of calls (the
    collector, the actions and the lessons all report here)."""

    def __init__(self, inputs_log: IO[str] | None = None) -> None:
        self.picture = Picture()
        self.frames: deque[tuple[int, dict[str, Any]]] = deque(maxlen=MAX_FRAMES)
        self._frame_seq = 0
        self._log = inputs_log
        self._last_key = ""
        self._last_kept = 0.0

    def _record(self, item: Mapping[str, Any]) -> None:
        if self._log is not None:
            self._log.write(json.dumps(item, separators=(",", ":")) + "\n")

    def cluster(self, info: ClusterInfo | None, t: float) -> None:
        if info != self.picture.info:
            self._record({"t": t, "cluster": None if info is None else info.to_json()})
        self.picture.set_cluster(info, t)

    def member(self, name: str, t: float, view: Mapping[str, Any] | None, error: str = "") -> None:
        self._record({"t": t, "member": name, "view": view, "error": error})
        self.picture.member_view(name, t, view, error)

    def facts(self, facts: LabFacts) -> None:
        self._record({"t": facts.time, "facts": facts.to_json()})
        self.picture.lab_facts(facts)

    def action_started(self, text: str, cli: str, source: str) -> int:
        t = time.time()
        ref = self.picture.action_started(t, text, cli, source)
        self._record({"t": t, "action": text, "cli": cli, "ref": ref})
        return ref

    def action_done(self, ref: int, ok: bool, text: str) -> None:
        t = time.time()
        self._record({"t": t, "done": ref, "ok": ok, "text": text})
        self.picture.action_done(t, ref, ok, text)

    def note(self, text: str) -> None:
        self.picture.note(time.time(), text)

    def take_frame(self, t: float) -> dict[str, Any] | None:
        """A frame of the picture into the history, unless it shows nothing new: the same as
        the last one kept (timers running down undisturbed count as the same) and less than
        :data:`KEEP_EVERY` seconds later. Returns the frame kept, or None."""
        frame = self.picture.frame(t)
        key = _same_picture_key(frame)
        if key == self._last_key and t - self._last_kept < KEEP_EVERY:
            return None
        self._record({"t": t, "frame": True})
        self._last_key, self._last_kept = key, t
        self._frame_seq += 1
        frame["seq"] = self._frame_seq
        self.frames.append((self._frame_seq, frame))
        return frame

    @property
    def last_frame(self) -> dict[str, Any] | None:
        return self.frames[-1][1] if self.frames else None

    def frames_after(self, seq: int, limit: int = 50) -> list[dict[str, Any]]:
        out = [f for s, f in self.frames if s > seq]
        return out[-limit:]


@dataclass(slots=True)
class _Cursor:
    member_id: str  # the member these numbers belong to (a re-added member starts afresh)
    events: int = 0
    messages: int = 0
    started: float | None = None
    first: bool = True


class Collector:
    """Polls the lab's cluster in ``lab_dir`` into ``stage`` until cancelled."""

    def __init__(self, lab_dir: Path, stage: Stage) -> None:
        self.lab_dir = Path(lab_dir)
        self.stage = stage
        self.cluster: LabCluster | None = None
        self._state_mtime: int | None = None
        self._cursors: dict[str, _Cursor] = {}
        self._pollers: dict[str, asyncio.Task[None]] = {}

    async def run(self) -> None:
        async with aiohttp.ClientSession() as session:
            tasks = [
                asyncio.create_task(self._watch_state(session)),
                asyncio.create_task(self._facts_loop()),
                asyncio.create_task(self._frame_loop()),
            ]
            try:
                await asyncio.gather(*tasks)
            finally:
                for t in [*tasks, *self._pollers.values()]:
                    t.cancel()
                await asyncio.gather(*tasks, *self._pollers.values(), return_exceptions=True)

    # --- the lab's state file ----------------------------------------------------------------

    def _load(self) -> None:
        path = self.lab_dir / STATE_FILE
        try:
            mtime = path.stat().st_mtime_ns
        except FileNotFoundError:
            mtime = None
        if mtime == self._state_mtime:
            return
        self._state_mtime = mtime
        cluster: LabCluster | None = None
        if mtime is not None:
            with contextlib.suppress(LabError, OSError, ValueError, KeyError):
                cluster = load_cluster(self.lab_dir)
        self.cluster = cluster
        if cluster is None:
            self.stage.cluster(None, time.time())
            return
        from minietcd.lab.compose import is_compose_lab

        backend = "compose" if is_compose_lab(self.lab_dir) else "local"
        self.stage.cluster(info_of(cluster.state, backend), time.time())

    async def _watch_state(self, session: aiohttp.ClientSession) -> None:
        while True:
            self._load()
            wanted = [] if self.cluster is None else self.cluster.names
            for name, task in list(self._pollers.items()):
                if name not in wanted:
                    task.cancel()
                    del self._pollers[name]
            for name in wanted:
                if name not in self._pollers or self._pollers[name].done():
                    self._pollers[name] = asyncio.create_task(self._poll(session, name))
            await asyncio.sleep(STATE_CHECK_SECONDS)

    # --- members -------------------------------------------------------------------------------

    async def _poll(self, session: aiohttp.ClientSession, name: str) -> None:
        while True:
            cluster = self.cluster
            if cluster is None or name not in cluster.names:
                return
            m = cluster.member(name)
            mid = f"{m.member_id:x}"
            cur = self._cursors.get(name)
            if cur is None or cur.member_id != mid:
                cur = self._cursors[name] = _Cursor(mid)
            if self.stage.picture.process(name) == "running":
                await self._poll_once(session, name, m.metrics_url, cur)
            await asyncio.sleep(POLL_SECONDS)

    async def _poll_once(self, session: aiohttp.ClientSession, name: str, url: str, cur: _Cursor) -> None:
        try:
            view = await self._fetch(session, url, cur.events, cur.messages)
            moved_on = cur.started is not None and view.get("started") != cur.started
            if moved_on and (cur.events or cur.messages):
                cur.events = cur.messages = 0  # restarted: its numbers start again
                view = await self._fetch(session, url, 0, 0)
        except (aiohttp.ClientError, TimeoutError, ValueError, KeyError) as e:
            self.stage.member(name, time.time(), None, _why(e))
            return
        now = time.time()
        if cur.first:  # what it held before the view started: recent events only, no old dots
            view["events"] = [e for e in view["events"] if e["time"] >= now - HISTORY_SECONDS]
            view["messages"] = [x for x in view["messages"] if x["time"] >= now - 2 * POLL_SECONDS]
            cur.first = False
        cur.started = view.get("started")
        cur.events = int(view["last_event_seq"])
        cur.messages = int(view["last_message_seq"])
        self.stage.member(name, now, view)

    @staticmethod
    async def _fetch(session: aiohttp.ClientSession, url: str, events: int, messages: int) -> dict[str, Any]:
        params = {"events_after": str(events), "messages_after": str(messages)}
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
        async with session.get(f"{url}/debug/raft/view", params=params, timeout=timeout) as resp:
            if resp.status != 200:
                raise ValueError(f"HTTP {resp.status}")
            body: dict[str, Any] = await resp.json(content_type=None)
        return body

    # --- the lab and frames ------------------------------------------------------------------

    async def _facts_loop(self) -> None:
        while True:
            cluster = self.cluster
            if cluster is not None:
                try:
                    facts = await asyncio.to_thread(read_facts, cluster)
                except (LabError, OSError, KeyError) as e:  # the cluster went away meanwhile
                    self.stage.note(f"lab state not readable: {e}")
                else:
                    if cluster is self.cluster:
                        self.stage.facts(facts)
            await asyncio.sleep(FACTS_SECONDS)

    async def _frame_loop(self) -> None:
        while True:
            now = time.time()
            if not self.stage.picture.warming_up(now):
                self.stage.take_frame(now)
            await asyncio.sleep(FRAME_SECONDS)


def _why(e: BaseException) -> str:
    if isinstance(e, aiohttp.ClientConnectorError):
        return "connection refused" if isinstance(e.os_error, ConnectionRefusedError) else "cannot connect"
    if isinstance(e, TimeoutError):
        return f"no answer within {REQUEST_TIMEOUT:g} s"
    return str(e) or type(e).__name__
