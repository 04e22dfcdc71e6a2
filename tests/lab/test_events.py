"""``minietcd-lab events``: renaming, merging and restart detection on given JSON; polling members
served by small in-process HTTP servers (the members' own EventLog); and a real 3-member lab
cluster whose leader is killed, watched through the CLI."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from minietcd.lab import events as ev
from minietcd.lab.faults import Faults
from minietcd.lab.state import MemberState
from minietcd.server.observe import EventLog
from tests.lab.conftest import LabFactory
from tests.lab.lab_cli import local_env

N1, N2, N3 = "5a97ef70fed930d7", "fb070cc953680ad7", "b709fda3ed5ca2ef"
NAMES = {N1: "n1", N2: "n2", N3: "n3"}
RESTARTED = "n1 restarted: its events are numbered from 1 again"


def _event(seq: int, t: float, text: str, kind: str = "election", term: int = 2) -> dict[str, Any]:
    return {"seq": seq, "time": t, "kind": kind, "term": term, "text": text}


def _page(*events: dict[str, Any], last_seq: int | None = None) -> ev.Page:
    body = {"events": list(events), "last_seq": last_seq if last_seq is not None else len(events)}
    return ev.parse_page(json.loads(json.dumps(body)))


# --- pure parts ---------------------------------------------------------------------------------------


def test_rename_replaces_known_ids_only() -> None:
    text = f"{N2} became leader at term 12 with votes from {N1},{N2}; {N3} heard 1/3 in 850 ms from abcdef12"
    want = "n2 became leader at term 12 with votes from n1,n2; n3 heard 1/3 in 850 ms from abcdef12"
    assert ev.rename(text, NAMES) == want
    assert ev.rename(f"voters=({N1} {N3})", NAMES) == "voters=(n1 n3)"
    # An id with leading zeros is printed shorter; it is still an id the lab knows.
    assert ev.rename("0123abcd starts an election", {"123abcd": "n4"}) == "0123abcd starts an election"
    assert ev.rename("123abcd starts an election", {"123abcd": "n4"}) == "n4 starts an election"


def test_id_names_from_the_lab_state() -> None:
    m = MemberState("n7", 1, 2, 3, int(N3, 16), "/d", "/l")
    assert ev.id_names([m]) == {N3: "n7"}


def test_parse_page_rejects_what_is_not_an_events_answer() -> None:
    with pytest.raises(ev.FetchError):
        ev.parse_page({"events": [{"seq": 1}], "last_seq": 1})
    with pytest.raises(ev.FetchError):
        ev.parse_page(["not", "a", "page"])


def test_take_moves_the_cursor_and_skips_what_was_taken() -> None:
    cur = ev.Cursor("n2", "http://x")
    page = _page(_event(1, 10.0, f"{N2} starts an election"), _event(2, 10.5, f"{N2} became leader"))
    got = ev.take(cur, page, NAMES)
    assert [(e.seq, e.text, e.raw) for e in got] == [
        (1, "n2 starts an election", f"{N2} starts an election"),
        (2, "n2 became leader", f"{N2} became leader"),
    ]
    assert (cur.seq, cur.time) == (2, 10.5)
    assert ev.take(cur, page, NAMES) == []


def test_restart_detected_when_the_member_holds_fewer_events_than_were_taken() -> None:
    cur = ev.Cursor("n1", "http://x", seq=7, time=100.0)
    assert ev.restarted(cur, _page(last_seq=3))
    assert not ev.restarted(cur, _page(last_seq=7))
    assert not ev.restarted(cur, _page(_event(8, 101.0, "x"), last_seq=8))


def test_restart_detected_when_the_last_event_taken_is_another_one() -> None:
    # After being unreachable the lab asks again for its last event (after=seq-1): the same
    # number at another time is a new process that got as far again.
    cur = ev.Cursor("n1", "http://x", seq=3, time=100.0, verify=True)
    assert cur.request_after() == 2
    assert ev.restarted(cur, _page(_event(3, 250.0, "x"), _event(4, 251.0, "y"), last_seq=4))
    assert not ev.restarted(cur, _page(_event(3, 100.0, "x"), _event(4, 251.0, "y"), last_seq=4))
    # Dropped from the member's bounded buffer: no evidence of a restart.
    assert not ev.restarted(cur, _page(_event(1500, 900.0, "x"), last_seq=1500))
    got = ev.take(cur, _page(_event(3, 100.0, "x"), _event(4, 251.0, "y"), last_seq=4), NAMES)
    assert [e.seq for e in got] == [4] and not cur.verify


def test_merge_orders_by_time_then_member_then_seq() -> None:
    a = ev.LabEvent(2.0, "n2", 5, "election", 3, "b", "b")
    b = ev.LabEvent(1.0, "n3", 9, "vote-granted", 3, "a", "a")
    c = ev.LabEvent(2.0, "n1", 4, "became-leader", 3, "c", "c")
    d = ev.LabEvent(2.0, "n1", 3, "became-candidate", 3, "d", "d")
    note = ev.Note(1.5, "n2", "n2 unreachable")
    assert ev.merge([a, b, c, d, note], {"n1": 0, "n2": 1, "n3": 2}) == [b, note, d, c, a]


def test_format_line() -> None:
    t = time.mktime((2026, 1, 2, 23, 1, 2, 0, 0, -1)) + 0.345
    e = ev.LabEvent(t, "n2", 1, "election", 5, "n2 starts an election at term 5", "")
    assert ev.format_line(e) == "23:01:02.345 n2  election         n2 starts an election at term 5"
    assert ev.format_line(ev.Note(t, "n1", "n1 unreachable")) == "23:01:02.345 n1  -- n1 unreachable"
    assert json.loads(json.dumps(e.to_json()))["clock"] == "23:01:02.345"


# --- polling members served in-process -----------------------------------------------------------------


@dataclass(slots=True)
class FakeMember:
    """A member's /debug/raft/events over a real EventLog; restartable on the same port."""

    log: EventLog
    server: TestServer | None = None
    port: int = 0

    async def start(self) -> None:
        async def handler(request: web.Request) -> web.Response:
            after, wait = int(request.query["after"]), float(request.query.get("wait", "0"))
            got = await self.log.wait_after(after, wait) if wait else self.log.after(after)
            return web.json_response({"events": [e.to_json() for e in got], "last_seq": self.log.last_seq})

        app = web.Application()
        app.router.add_get("/debug/raft/events", handler)
        self.server = TestServer(app, port=self.port)
        await self.server.start_server()
        self.port = self.server.port or 0

    async def stop(self) -> None:
        assert self.server is not None
        await self.server.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
async def fakes() -> AsyncIterator[Callable[[], Any]]:
    made: list[FakeMember] = []

    async def make() -> FakeMember:
        m = FakeMember(EventLog())
        await m.start()
        made.append(m)
        return m

    yield make
    for m in made:
        if m.server is not None:
            await m.server.close()


async def test_poll_notes_unreachable_reachable_and_restart(fakes: Callable[[], Any]) -> None:
    m: FakeMember = await fakes()
    for i in range(3):
        m.log.append("election", 2, f"{N1} starts an election at term {i + 2}")
    cur = ev.Cursor("n1", m.url)
    async with aiohttp.ClientSession() as session:
        got, notes = await ev.poll(session, cur, NAMES, 0.0)
        assert [e.text for e in got] == [f"n1 starts an election at term {i}" for i in (2, 3, 4)]
        assert notes == []

        await m.stop()
        got, notes = await ev.poll(session, cur, NAMES, 0.0)
        assert got == [] and [n.text.split(" (")[0] for n in notes] == ["n1 unreachable"]
        got, notes = await ev.poll(session, cur, NAMES, 0.0)
        assert got == [] and notes == []  # said once

        # It comes back as a new process that got as far as event 3 again (other times).
        m.log = EventLog()
        for i in range(4):
            m.log.append("became-follower", 9, f"{N1} became follower (run 2, #{i + 1})")
        await m.start()
        got, notes = await ev.poll(session, cur, NAMES, 0.0)
        assert [n.text for n in notes] == [RESTARTED, "n1 reachable again"]
        assert [e.seq for e in got] == [1, 2, 3, 4]

        # Restarted unseen (still fewer events than taken): caught by last_seq.
        m.log = EventLog()
        m.log.append("election", 10, "x")
        got, notes = await ev.poll(session, cur, NAMES, 0.0)
        assert [n.text for n in notes] == [RESTARTED]
        assert [e.seq for e in got] == [1]


async def test_follow_merges_members_and_skips_held_events(fakes: Callable[[], Any]) -> None:
    a: FakeMember = await fakes()
    b: FakeMember = await fakes()
    a.log.append("conf-change", 1, "old, held before following")
    members = [MemberState(n, 0, 0, m.port, int(i, 16), "", "") for n, m, i in (("n1", a, N1), ("n2", b, N2))]
    out: list[ev.Line] = []

    async def act() -> None:
        b.log.append("election", 3, f"{N2} starts an election at term 3")
        a.log.append("vote-granted", 3, f"{N1} grants MsgVote to {N2}")
        b.log.append("became-leader", 3, f"{N2} became leader at term 3 with votes from {N1},{N2}")

    task = asyncio.create_task(ev.follow(members, out.append, rounds=4))
    await asyncio.sleep(0.3)
    await act()
    await task
    assert [ev.format_line(x)[13:] for x in out] == [
        "n2  election         n2 starts an election at term 3",
        "n1  vote-granted     n1 grants MsgVote to n2",
        "n2  became-leader    n2 became leader at term 3 with votes from n1,n2",
    ]


# --- a real cluster ---------------------------------------------------------------------------------------


def _lab(lab_dir: Path, *args: str) -> list[str]:
    r = subprocess.run(
        [sys.executable, "-m", "minietcd.lab", "--lab-dir", str(lab_dir), *args],
        capture_output=True, text=True, env=local_env(lab_dir), timeout=60, check=False,
    )
    assert r.returncode == 0 and "Traceback" not in r.stderr, f"exit {r.returncode}\n{r.stdout}{r.stderr}"
    return r.stdout.splitlines()


@pytest.mark.cluster
@pytest.mark.slow
def test_events_show_the_new_election_with_lab_names(lab_cluster: LabFactory) -> None:
    cluster = lab_cluster(3)
    old = cluster.wait_healthy()
    survivors = [n for n in cluster.names if n != old]
    Faults(cluster).kill([old])
    new = cluster.wait_healthy(names=survivors)
    lab_dir = Path(cluster.state.lab_dir)

    lines = _lab(lab_dir, "events")
    print("\n".join(lines))
    won = [ln for ln in lines if re.search(rf" {new}  became-leader +{new} became leader at term \d+", ln)]
    assert won, f"no line says {new} became leader"
    term = int(re.search(r"at term (\d+)", won[-1]).group(1))  # type: ignore[union-attr]  # won[-1] matched this pattern
    assert any(f"starts an election at term {term}" in ln and " election " in ln for ln in lines)
    assert any(f"{old}  -- {old} unreachable" in ln for ln in lines)
    assert all(re.match(r"\d\d:\d\d:\d\d\.\d{3} n\d ", ln) for ln in lines)
    hex_ids = {f"{m.member_id:x}" for m in cluster.members}
    assert not any(i in ln for ln in lines for i in hex_ids), "a member id was not renamed"

    rows = [json.loads(ln) for ln in _lab(lab_dir, "events", "--json")]
    assert {r["member"] for r in rows} == set(cluster.names)
    assert any(r["kind"] == "became-leader" and r["member"] == new and r["term"] == term for r in rows)
    times = [r["time"] for r in rows]
    assert times == sorted(times)

    # --follow from the start while the new leader is restarted (its events are numbered from 1
    # again: the lab must notice), then Ctrl-C ends it cleanly.
    argv = ["--lab-dir", str(lab_dir), "events", "--follow", "--since-start", "--json"]
    follow = subprocess.Popen(
        [sys.executable, "-m", "minietcd.lab", *argv],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=local_env(lab_dir),
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # even if we run in the background
    )
    try:
        time.sleep(2.0)
        Faults(cluster).restart([new])
        cluster.wait_healthy()
        time.sleep(1.5)
        follow.send_signal(signal.SIGINT)
        out, err = follow.communicate(timeout=15)
    finally:
        if follow.poll() is None:
            follow.kill()
    assert follow.returncode == 0 and "Traceback" not in err, err
    rows = [json.loads(ln) for ln in out.splitlines()]
    texts = [r["text"] for r in rows if r["kind"] == "note"]
    assert f"{new} restarted: its events are numbered from 1 again" in texts, texts
    assert any(r["kind"] == "became-leader" and r["member"] == new and r["term"] == term for r in rows)
