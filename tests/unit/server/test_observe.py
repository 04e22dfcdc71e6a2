"""observe.py: the bounded event log and etcd's raft.status shape."""

from __future__ import annotations

import asyncio

from minietcd.raft.progress import ProgressState
from minietcd.raft.rawnode import ProgressView, Status
from minietcd.raft.types import ConfState, HardState, SoftState, StateRole
from minietcd.server.observe import EventLog, raft_status_json


def test_event_log_keeps_the_newest_and_numbers_them() -> None:
    log = EventLog(size=3)
    for i in range(5):
        log.append("election", i, f"event {i}")
    assert log.last_seq == 5
    assert [e.seq for e in log.after(0)] == [3, 4, 5]  # 1 and 2 were dropped: a visible gap
    assert [e.text for e in log.after(4)] == ["event 4"]
    assert log.after(5) == []


async def test_wait_after_wakes_on_append_and_times_out_otherwise() -> None:
    log = EventLog()
    assert await log.wait_after(0, 0.01) == []
    waiter = asyncio.create_task(log.wait_after(0, 5.0))
    await asyncio.sleep(0)  # let it start waiting
    log.append("became-leader", 2, "n1 became leader at term 2")
    events = await asyncio.wait_for(waiter, 1.0)
    assert [(e.seq, e.kind, e.term) for e in events] == [(1, "became-leader", 2)]


def test_raft_status_in_etcds_shape() -> None:
    st = Status(
        id=0xABC,
        hard_state=HardState(term=5, vote=0xABC, commit=9),
        soft_state=SoftState(lead=0xABC, role=StateRole.LEADER),
        applied=8,
        last_index=9,
        lead_transferee=0,
        conf_state=ConfState(voters=(0xABC, 0x12)),
        progress={
            0xABC: ProgressView(9, 10, ProgressState.REPLICATE, False, True),
            0x12: ProgressView(0, 3, ProgressState.PROBE, False, False),
        },
    )
    assert raft_status_json(st) == {
        "id": "abc",
        "term": 5,
        "vote": "abc",
        "commit": 9,
        "lead": "abc",
        "raftState": "StateLeader",
        "applied": 8,
        "progress": {
            "12": {"match": 0, "next": 3, "state": "StateProbe"},
            "abc": {"match": 9, "next": 10, "state": "StateReplicate"},
        },
        "leadtransferee": "0",
    }


async def test_an_open_event_stream_does_not_hold_up_shutdown() -> None:
    """aiohttp waits for running handlers when the member stops: the stream and the long poll
    must end at once instead (found in review: shutdown blocked while a client followed)."""
    from types import SimpleNamespace

    from aiohttp import web

    from minietcd.server.http import make_app

    events = EventLog()
    events.append("became-leader", 2, "n1 became leader at term 2")
    server = SimpleNamespace(
        node=SimpleNamespace(events=events), sm=SimpleNamespace(kv=SimpleNamespace(size_bytes=lambda: 0))
    )
    runner = web.AppRunner(make_app(server), access_log=None)  # type: ignore[arg-type]  # a stand-in server with what make_app reads
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    streams = []
    for path in ("/debug/raft/events/stream?after=0", "/debug/raft/events?after=1&wait=30"):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        await writer.drain()
        streams.append((reader, writer))
    first = await asyncio.wait_for(streams[0][0].readuntil(b"\r\n\r\n"), 5)
    assert b"text/event-stream" in first
    await asyncio.sleep(0.1)  # both handlers are now waiting for events
    loop = asyncio.get_running_loop()
    start = loop.time()
    await asyncio.wait_for(runner.cleanup(), 10)
    assert loop.time() - start < 1.5
    assert events.closed
    for _, writer in streams:
        writer.close()
