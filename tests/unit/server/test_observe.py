"""observe.py: the bounded event log and etcd's raft.status shape."""

from __future__ import annotations

import asyncio

from minietcd.raft.progress import ProgressState
from minietcd.raft.rawnode import ProgressView, Status
from minietcd.raft.types import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    SoftState,
    StateRole,
)
from minietcd.server.observe import EventLog, MessageTrace, describe_entry, raft_status_json, raft_view_json


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
    """The HTTP server waits for answers in progress when the member stops: the stream and the
    long poll must end at once instead (found in review: shutdown blocked while a client
    followed)."""
    import socket
    from types import SimpleNamespace

    from minietcd.server.http import make_metrics_server

    events = EventLog()
    events.append("became-leader", 2, "n1 became leader at term 2")
    server = SimpleNamespace(
        node=SimpleNamespace(events=events), sm=SimpleNamespace(kv=SimpleNamespace(size_bytes=lambda: 0))
    )
    http = make_metrics_server(server)  # type: ignore[arg-type]  # a stand-in server with what it reads
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    await http.listen(sock)
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
    await asyncio.wait_for(http.close(), 10)
    assert loop.time() - start < 1.5
    assert events.closed
    for _, writer in streams:
        writer.close()


# --- the message trace and the view a picture needs ------------------------------------------------


def _msg(t: MessageType, to: int = 2, **kw: object) -> Message:
    return Message(type=t, to=to, from_=1, term=3, **kw)  # type: ignore[arg-type]  # any Message field, by name


def test_message_trace_keeps_what_travels_numbered_and_bounded() -> None:
    now = [100.0]
    trace = MessageTrace(size=3, rate=100.0, clock=lambda: now[0])
    trace.record([
        _msg(MessageType.MsgVote, index=7, log_term=2),
        _msg(MessageType.MsgHup),  # local: never travels, never traced
        _msg(MessageType.MsgApp, index=7, log_term=2, commit=6, entries=(Entry(3, 8), Entry(3, 9))),
    ])
    got = [m.to_json() for m in trace.after(0)]
    assert [m["type"] for m in got] == ["vote", "append"]
    assert got[1] == {
        "seq": 2, "time": 100.0, "type": "append", "from": "1", "to": "2", "term": 3, "index": 7,
        "log_term": 2, "commit": 6, "entries": 2, "reject": False,
    }  # fmt: skip
    trace.record([_msg(MessageType.MsgAppResp, index=9) for _ in range(3)])
    assert [m.seq for m in trace.after(0)] == [3, 4, 5]  # 1 and 2 fell off: a gap a reader sees
    assert trace.after(5) == [] and trace.last_seq == 5


def test_message_trace_samples_heartbeats_per_peer_and_rate_limits_the_rest() -> None:
    now = [100.0]
    trace = MessageTrace(rate=2.0, heartbeat_every=0.2, clock=lambda: now[0])
    beats = [_msg(MessageType.MsgHeartbeat, to=2), _msg(MessageType.MsgHeartbeat, to=3)]
    trace.record(beats)
    now[0] += 0.1
    trace.record(beats)  # too soon after the last of each: counted, not kept
    now[0] += 0.15
    trace.record(beats)
    assert [(m.kind, m.to) for m in trace.after(0)] == [("heartbeat", 2), ("heartbeat", 3)] * 2
    assert trace.sampled_out == 2
    trace.record([_msg(MessageType.MsgApp) for _ in range(5)])  # a bucket of 2 tokens
    assert trace.last_seq == 6 and trace.sampled_out == 5
    now[0] += 1.0  # refilled at 2 a second
    trace.record([_msg(MessageType.MsgApp) for _ in range(5)])
    assert trace.last_seq == 8


def test_describe_entry_says_what_an_entry_holds() -> None:
    from minietcd.api.etcdserverpb import etcdserver_pb2, raft_internal_pb2, rpc_pb2
    from minietcd.raft.confchange import encode_conf_change

    def req(**kw: object) -> bytes:
        return raft_internal_pb2.InternalRaftRequest(**kw).SerializeToString()  # type: ignore[arg-type]  # any request field, by name

    put = req(header=raft_internal_pb2.RequestHeader(ID=5), put=rpc_pb2.PutRequest(key=b"greeting"))
    assert describe_entry(Entry(2, 7, EntryType.NORMAL, put)) == "put greeting"
    long_key = req(delete_range=rpc_pb2.DeleteRangeRequest(key=b"k" * 40))
    assert describe_entry(Entry(2, 8, EntryType.NORMAL, long_key)) == "delete " + "k" * 23 + "…"
    assert describe_entry(Entry(2, 9, EntryType.NORMAL, b"")) == "no-op"
    grant = req(lease_grant=rpc_pb2.LeaseGrantRequest(TTL=5))
    assert describe_entry(Entry(2, 10, EntryType.NORMAL, grant)) == "lease grant"
    v2 = req(v2=etcdserver_pb2.Request(Method="PUT", Path="/0/version"))
    assert describe_entry(Entry(2, 11, EntryType.NORMAL, v2)) == "v2 PUT /0/version"
    cc = encode_conf_change(ConfChange(ConfChangeType.ADD_LEARNER_NODE, 0xBEEF))
    assert describe_entry(Entry(2, 12, EntryType.CONF_CHANGE, cc)) == "add learner beef"
    assert describe_entry(Entry(2, 13, EntryType.NORMAL, b"\xff\xff\xff")) == "?"


def test_raft_view_has_role_timer_and_log_tail() -> None:
    from tests.raft.helpers import make_leader, rawnode, storage

    node = rawnode(1, storage(terms=(1, 1, 2), hs=HardState(term=2)), election_tick=10)
    make_leader(node.raft)
    v = raft_view_json(node, 0.05, tail=2)
    assert (v["id"], v["role"], v["term"], v["vote"], v["lead"]) == ("1", "leader", 3, "1", "1")
    assert v["voters"] == ["1", "2", "3"] and v["learner"] is False
    assert v["log"] == [[3, 2, "no-op"], [4, 3, "no-op"]]  # the tail (test entries carry no data)
    assert (v["first_index"], v["last_index"], v["tick_ms"], v["election_tick"]) == (1, 4, 50.0, 10)
    follower = rawnode(2, storage(terms=(1,)), election_tick=10)
    for _ in range(3):
        follower.tick()
    fv = raft_view_json(follower, 0.5)
    assert fv["role"] == "follower" and fv["election_elapsed"] == 3
    assert 10 <= fv["election_timeout"] < 20  # randomised per term in [election, 2 * election)
