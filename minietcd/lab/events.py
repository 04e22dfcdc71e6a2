"""What ``minietcd-lab events`` shows: every member's explained Raft events, merged in time order.

Each member serves its last 1,000 events on ``/debug/raft/events?after=SEQ&wait=S`` (its metrics
URL; ``minietcd/server/observe.py``), numbered from 1 in the order it saw them, with the Unix time
it handled each. The lab asks every member (at once, each request bounded by a timeout), renames
the hex member ids in the text to the lab's names (``n1``, ``n2``, ...), merges by time and prints
one line per event::

    23:01:02.345 n2  election        n2 starts an election at term 5: no heartbeat for 1.1 s

Following (``--follow``) is a loop of rounds: a long poll of every member (``wait`` = :data:`POLL_WAIT`),
then the events older than the round's start are printed, merged; younger ones wait one round, so
that a member that answered late cannot have an older event still to come. A member that does
not answer gets a note (and one when it answers again). A restarted member numbers its events
from 1 again: it holds fewer than the lab saw (``last_seq`` below the lab's cursor), or, after it
was unreachable, its event with the lab's last number is not the one the lab saw (another time).
Either way the lab starts reading it from 1 again.

Works on any ``LabCluster`` whose members have a metrics URL: local processes and compose
containers (their metrics ports are published on 127.0.0.1).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import aiohttp
from rich.console import Console
from rich.text import Text

from minietcd.lab.state import MemberState

POLL_WAIT: Final = 0.5  # seconds a follow round's request waits for a member's next event
HTTP_SLACK: Final = 1.0  # seconds a request may take beyond its wait (then: unreachable)
MIN_ROUND: Final = 0.2  # seconds a follow round lasts at least (no busy loop when all are down)
KIND_WIDTH: Final = 16  # "became-candidate"

# A member id as etcd prints it: up to 16 hex digits (fewer when it starts with zeros). Only ids
# the lab knows are replaced, so terms, indexes and times in the text stay as they are.
_HEX_ID: Final = re.compile(r"\b[0-9a-f]{4,16}\b")


class FetchError(Exception):
    """A member did not answer with its events (the text says why)."""


@dataclass(slots=True, frozen=True)
class LabEvent:
    """One member's explained Raft event, its text with lab names."""

    time: float  # Unix time the member handled it
    member: str
    seq: int  # the member's number for it (from 1 since the member started)
    kind: str  # "election", "became-leader", "step-down", ...
    term: int
    text: str  # hex member ids replaced by lab names
    raw: str  # the text as the member wrote it

    def to_json(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "clock": clock(self.time),
            "member": self.member,
            "seq": self.seq,
            "kind": self.kind,
            "term": self.term,
            "text": self.text,
            "raw": self.raw,
        }


@dataclass(slots=True, frozen=True)
class Note:
    """What the lab noticed about a member (unreachable, reachable again, restarted)."""

    time: float
    member: str
    text: str

    def to_json(self) -> dict[str, Any]:
        return {"time": self.time, "clock": clock(self.time), "member": self.member, "kind": "note",
                "text": self.text}


Line = LabEvent | Note


@dataclass(slots=True, frozen=True)
class Page:
    """One answer of ``/debug/raft/events``: raw events (oldest first) and the member's last number."""

    events: list[dict[str, Any]]
    last_seq: int


@dataclass(slots=True)
class Cursor:
    """Where the lab is in one member's events."""

    name: str
    url: str  # the member's metrics URL
    seq: int = 0  # the last event taken
    time: float = 0.0  # that event's time (tells it apart from a restarted member's event of that number)
    reachable: bool | None = None  # None until first asked
    verify: bool = False  # ask for the last event taken again: did the member restart meanwhile?

    def request_after(self) -> int:
        return self.seq - 1 if self.verify and self.seq > 0 else self.seq


# --- pure parts: parsing, renaming, restart detection, merging, formatting ------------------------


def parse_page(body: Any) -> Page:
    """A ``/debug/raft/events`` answer checked for the fields the lab uses."""
    try:
        events = [
            {"seq": int(e["seq"]), "time": float(e["time"]), "kind": str(e["kind"]), "term": int(e["term"]),
             "text": str(e["text"])}
            for e in body["events"]
        ]
        return Page(events, int(body["last_seq"]))
    except (KeyError, TypeError, ValueError) as e:
        raise FetchError(f"not an events answer: {e!r}") from None


def id_names(members: Iterable[MemberState]) -> dict[str, str]:
    """Hex member id (as members print it) -> lab name."""
    return {f"{m.member_id:x}": m.name for m in members}


def rename(text: str, names: Mapping[str, str]) -> str:
    """``text`` with every member id the lab knows replaced by the member's lab name."""
    return _HEX_ID.sub(lambda m: names.get(m.group(0), m.group(0)), text)


def restarted(cursor: Cursor, page: Page) -> bool:
    """Did the member start again since the cursor's event? It holds fewer events than the lab
    took, or (when verifying) its event of the cursor's number happened at another time."""
    if page.last_seq < cursor.seq:
        return True
    if cursor.verify and cursor.seq > 0:
        same = next((e for e in page.events if e["seq"] == cursor.seq), None)
        return same is not None and same["time"] != cursor.time
    return False


def take(cursor: Cursor, page: Page, names: Mapping[str, str]) -> list[LabEvent]:
    """The page's events after the cursor's, renamed; the cursor moves to the last one."""
    out = [
        LabEvent(e["time"], cursor.name, e["seq"], e["kind"], e["term"], rename(e["text"], names), e["text"])
        for e in page.events
        if e["seq"] > cursor.seq
    ]
    if out:
        cursor.seq, cursor.time = out[-1].seq, out[-1].time
    cursor.verify = False
    return out


def merge(lines: Iterable[Line], order: Mapping[str, int]) -> list[Line]:
    """In time order; ties by member (the lab's order), then the member's own order."""
    return sorted(lines, key=lambda x: (x.time, order.get(x.member, len(order)), getattr(x, "seq", 0)))


def clock(t: float) -> str:
    """``23:01:02.345`` (local time)."""
    return datetime.fromtimestamp(t).strftime("%H:%M:%S.%f")[:-3]


def format_line(line: Line) -> str:
    if isinstance(line, Note):
        return f"{clock(line.time)} {line.member:<3} -- {line.text}"
    return f"{clock(line.time)} {line.member:<3} {line.kind:<{KIND_WIDTH}} {line.text}"


# --- fetching --------------------------------------------------------------------------------------


async def fetch_page(session: aiohttp.ClientSession, url: str, after: int, wait: float) -> Page:
    """One request, bounded by ``wait`` + :data:`HTTP_SLACK` seconds."""
    timeout = aiohttp.ClientTimeout(total=wait + HTTP_SLACK)
    params = {"after": str(after), "wait": f"{wait:g}"}
    try:
        async with session.get(f"{url}/debug/raft/events", params=params, timeout=timeout) as resp:
            if resp.status == 404:
                raise FetchError("no /debug/raft/events here (a member built before it? rebuild the image)")
            if resp.status != 200:
                raise FetchError(f"HTTP {resp.status}")
            body = await resp.json(content_type=None)
    except aiohttp.ClientConnectorError as e:
        refused = isinstance(e.os_error, ConnectionRefusedError)
        raise FetchError("connection refused" if refused else f"cannot connect: {e.os_error}") from None
    except TimeoutError:
        raise FetchError(f"no answer within {timeout.total:g} s") from None
    except (aiohttp.ClientError, ValueError) as e:
        raise FetchError(str(e) or type(e).__name__) from None
    return parse_page(body)


async def poll(
    session: aiohttp.ClientSession, cursor: Cursor, names: Mapping[str, str], wait: float
) -> tuple[list[LabEvent], list[Note]]:
    """One look at one member: its events new to the cursor, and what the lab noticed."""
    notes: list[Note] = []
    try:
        page = await fetch_page(session, cursor.url, cursor.request_after(), wait)
        if restarted(cursor, page):
            text = f"{cursor.name} restarted: its events are numbered from 1 again"
            notes.append(Note(time.time(), cursor.name, text))
            cursor.seq, cursor.time, cursor.verify = 0, 0.0, False
            page = await fetch_page(session, cursor.url, 0, 0.0)
    except FetchError as e:
        if cursor.reachable is not False:
            notes.append(Note(time.time(), cursor.name, f"{cursor.name} unreachable ({e})"))
        cursor.reachable, cursor.verify = False, True
        return [], notes
    if cursor.reachable is False:
        notes.append(Note(time.time(), cursor.name, f"{cursor.name} reachable again"))
    cursor.reachable = True
    return take(cursor, page, names), notes


async def poll_all(
    session: aiohttp.ClientSession, cursors: Sequence[Cursor], names: Mapping[str, str], wait: float
) -> list[Line]:
    """Every member at once; what they said and what the lab noticed, unsorted."""
    results = await asyncio.gather(*(poll(session, c, names, wait) for c in cursors))
    lines: list[Line] = []
    for events, notes in results:
        lines.extend(notes)
        lines.extend(events)
    return lines


# --- the command's two modes -----------------------------------------------------------------------


def cursors_for(members: Iterable[MemberState]) -> list[Cursor]:
    return [Cursor(m.name, m.metrics_url) for m in members]


async def held(members: Sequence[MemberState]) -> list[Line]:
    """Every event the members hold now, merged, and a note for each member that did not answer."""
    cursors = cursors_for(members)
    names = id_names(members)
    async with aiohttp.ClientSession() as session:
        lines = await poll_all(session, cursors, names, 0.0)
    return merge(lines, {m.name: i for i, m in enumerate(members)})


async def follow(
    members: Sequence[MemberState],
    emit: Callable[[Line], None],
    since_start: bool = False,
    rounds: int | None = None,
) -> None:
    """Emit the members' events as they happen, merged, until cancelled (or after ``rounds``
    rounds: for tests). Without ``since_start``, the events held already are skipped."""
    cursors = cursors_for(members)
    names = id_names(members)
    order = {m.name: i for i, m in enumerate(members)}
    pending: list[Line] = []
    async with aiohttp.ClientSession() as session:
        first = await poll_all(session, cursors, names, 0.0)
        pending.extend(first if since_start else [x for x in first if isinstance(x, Note)])
        n = 0
        while rounds is None or n < rounds:
            n += 1
            started = time.time()
            pending.extend(await poll_all(session, cursors, names, POLL_WAIT))
            # Every reachable member has now answered a request sent after `started`: nothing
            # older than that is still to come.
            ready = [x for x in pending if x.time < started]
            pending = [x for x in pending if x.time >= started]
            for line in merge(ready, order):
                emit(line)
            await asyncio.sleep(max(0.0, MIN_ROUND - (time.time() - started)))
        for line in merge(pending, order):
            emit(line)


# --- printing ---------------------------------------------------------------------------------------

# Leadership is what a learner watches for: who wins (green), who asks (yellow), who gives up (red).
_KIND_STYLES: Final = {
    "became-leader": "bold green",
    "election": "yellow",
    "became-candidate": "yellow",
    "became-pre-candidate": "yellow",
    "pre-election": "yellow",
    "election-lost": "yellow",
    "transfer": "cyan",
    "step-down": "bold red",
    "transfer-aborted": "red",
    "removed": "red",
}
_MEMBER_STYLES: Final = ("cyan", "magenta", "blue", "green", "yellow", "bright_cyan", "bright_magenta",
                         "bright_blue", "bright_green")


def styled(line: Line, order: Mapping[str, int]) -> Text:
    """The line as :func:`format_line` writes it, coloured: notes dim, leadership events bright."""
    if isinstance(line, Note):
        return Text(format_line(line), style="dim")
    member_style = _MEMBER_STYLES[order.get(line.member, 0) % len(_MEMBER_STYLES)]
    kind_style = _KIND_STYLES.get(line.kind, "")
    return Text.assemble(
        (clock(line.time), "dim"),
        " ",
        (f"{line.member:<3}", member_style),
        " ",
        (f"{line.kind:<{KIND_WIDTH}}", kind_style),
        " ",
        (line.text, "bold" if kind_style.startswith("bold") else ""),
    )


class Printer:
    """Prints lines as JSON (one object a line) or text, coloured when stdout is a terminal."""

    def __init__(self, members: Sequence[MemberState], as_json: bool) -> None:
        self.as_json = as_json
        self.order = {m.name: i for i, m in enumerate(members)}
        self.console = Console(soft_wrap=True, highlight=False)

    def __call__(self, line: Line) -> None:
        if self.as_json:
            print(json.dumps(line.to_json()), flush=True)
        elif self.console.is_terminal:
            self.console.print(styled(line, self.order))
        else:
            print(format_line(line), flush=True)
