"""One-line text for messages, entries, Ready and events.

Used by logs, the golden interaction scripts and (later) the teaching views, so it is stable:
changing a format means rewriting the golden files (``pytest tests/raft --rewrite``).

    n1->n2 MsgApp term=3 log=3/17 commit=16 entries=[3/18..3/20]
    n2->n1 MsgAppResp term=3 index=17 rejected hint=15/2
"""

from __future__ import annotations

from collections.abc import Sequence

from minietcd.raft.confchange import decode_conf_change
from minietcd.raft.events import RaftEvent
from minietcd.raft.types import NONE, Entry, EntryType, HardState, Message, MessageType, Snapshot

MT = MessageType


def node(n: int) -> str:
    """``n3`` for the small ids of tests and teaching; a real member id (64 random bits) in hex,
    the way etcd prints it (``2e1259d415f2a040``)."""
    if n == NONE:
        return "none"
    return f"n{n}" if n < 1 << 16 else f"{n:x}"


def entry(e: Entry, data: bool = False) -> str:
    text = f"{e.term}/{e.index}"
    if e.type == EntryType.CONF_CHANGE:
        cc = decode_conf_change(e.data)
        return f"{text} {cc.type.name} {node(cc.node_id)}"
    if data:
        return f"{text} {e.data.decode('utf-8', 'backslashreplace')!r}" if e.data else f"{text} noop"
    return text


def entries(ents: Sequence[Entry], data: bool = False) -> str:
    """``[3/18..3/20]`` for a run of plain entries of one term; each listed otherwise."""
    if not ents:
        return "[]"
    plain = not data and all(e.type == EntryType.NORMAL for e in ents)
    if plain and len(ents) > 2 and ents[0].term == ents[-1].term:
        return f"[{entry(ents[0])}..{entry(ents[-1])}]"
    return "[" + ", ".join(entry(e, data) for e in ents) + "]"


def snapshot(s: Snapshot) -> str:
    m = s.metadata
    text = f"{m.term}/{m.index} voters=({' '.join(node(v) for v in m.conf_state.voters)})"
    if m.conf_state.learners:
        text += f" learners=({' '.join(node(v) for v in m.conf_state.learners)})"
    return text


def hard_state(hs: HardState) -> str:
    return f"term={hs.term} vote={node(hs.vote)} commit={hs.commit}"


def message(m: Message, data: bool = False) -> str:
    """``n1->n2 MsgApp term=3 log=3/17 commit=16 entries=[3/18..3/20]``"""
    parts = [f"{node(m.from_)}->{node(m.to)} {m.type.name}"]
    if m.term:
        parts.append(f"term={m.term}")
    t = m.type
    if t == MT.MsgApp:
        parts.append(f"log={m.log_term}/{m.index} commit={m.commit}")
        if m.entries:
            parts.append(f"entries={entries(m.entries, data)}")
    elif t == MT.MsgAppResp:
        parts.append(f"index={m.index}")
        if m.reject:
            parts.append(f"rejected hint={m.reject_hint}/{m.log_term}")
    elif t in (MT.MsgVote, MT.MsgPreVote):
        parts.append(f"log={m.log_term}/{m.index}")
        if m.context:
            parts.append(m.context.decode())
    elif t in (MT.MsgVoteResp, MT.MsgPreVoteResp):
        parts.append("rejected" if m.reject else "granted")
    elif t == MT.MsgHeartbeat:
        parts.append(f"commit={m.commit}")
        if m.context:
            parts.append(f"read={m.context.decode('utf-8', 'backslashreplace')}")
    elif t == MT.MsgHeartbeatResp:
        if m.context:
            parts.append(f"read={m.context.decode('utf-8', 'backslashreplace')}")
    elif t == MT.MsgSnap and m.snapshot is not None:
        parts.append(f"snapshot={snapshot(m.snapshot)}")
    elif t == MT.MsgProp:
        parts.append(f"entries={entries(m.entries, data)}")
    elif t in (MT.MsgReadIndex, MT.MsgReadIndexResp):
        if m.entries:
            parts.append(f"read={m.entries[0].data.decode('utf-8', 'backslashreplace')}")
        if t == MT.MsgReadIndexResp:
            parts.append(f"index={m.index}")
    elif t == MT.MsgSnapStatus:
        parts.append("failed" if m.reject else "ok")
    return " ".join(parts)


def seconds(ticks: int, tick_seconds: float) -> str:
    s = ticks * tick_seconds
    return f"{s:.1f} s" if s >= 1 or s == 0 else f"{s * 1000:.0f} ms"


def event_line(ev: RaftEvent, tick_seconds: float | None = None) -> str:
    """``n2 starts an election at term 5: no heartbeat for 1.1 s``"""
    if ev.elapsed_ticks is None or "{elapsed}" not in ev.text:
        return ev.text
    if tick_seconds is None:
        elapsed = f"{ev.elapsed_ticks} ticks"
    else:
        elapsed = seconds(ev.elapsed_ticks, tick_seconds)
    return ev.text.replace("{elapsed}", elapsed)


def ready(node_id: int, rd: object) -> str:
    """One line summarising a Ready (see rawnode.Ready)."""
    from minietcd.raft.rawnode import Ready  # local: rawnode imports describe indirectly

    assert isinstance(rd, Ready)
    parts = [f"{node(node_id)} Ready"]
    if rd.soft_state is not None:
        parts.append(f"role={rd.soft_state.role} lead={node(rd.soft_state.lead)}")
    if rd.hard_state is not None:
        parts.append(f"hard=({hard_state(rd.hard_state)})")
    if rd.snapshot is not None:
        parts.append(f"snapshot={snapshot(rd.snapshot)}")
    if rd.entries:
        parts.append(f"entries={entries(rd.entries)}")
    if rd.committed_entries:
        parts.append(f"committed={entries(rd.committed_entries)}")
    if rd.messages:
        parts.append(f"msgs={len(rd.messages)}")
    if rd.read_states:
        reads = (f"{r.request_ctx.decode(errors='replace')}@{r.index}" for r in rd.read_states)
        parts.append("reads=" + ",".join(reads))
    if rd.must_sync:
        parts.append("sync")
    return " ".join(parts)
