"""ReadIndex bookkeeping: linearizable reads without writing to the log (thesis 6.4).

The leader records its commit index when a read arrives, then confirms it is still the leader
by a heartbeat round acknowledged by a majority. Once confirmed, the read may be served as
soon as the state machine has applied up to the recorded index. Requests queue in arrival
order; an acknowledgement of a later request confirms every earlier one too, which is what
lets one heartbeat round serve a whole batch of reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from minietcd.raft.types import Message


@dataclass(slots=True)
class ReadIndexStatus:
    req: Message  # the MsgReadIndex (from a local caller or a follower)
    index: int  # the leader's commit index when the read arrived
    acks: set[int] = field(default_factory=set)  # voters that confirmed leadership for it


class ReadOnly:
    __slots__ = ("pending", "queue")

    def __init__(self) -> None:
        self.pending: dict[bytes, ReadIndexStatus] = {}  # request context -> status
        self.queue: list[bytes] = []  # contexts in arrival order

    def add_request(self, index: int, m: Message) -> None:
        ctx = m.entries[0].data
        if ctx in self.pending:
            return
        self.pending[ctx] = ReadIndexStatus(req=m, index=index)
        self.queue.append(ctx)

    def recv_ack(self, node: int, ctx: bytes) -> set[int] | None:
        rs = self.pending.get(ctx)
        if rs is None:
            return None
        rs.acks.add(node)
        return rs.acks

    def advance(self, ctx: bytes) -> list[ReadIndexStatus]:
        """Pop every request up to and including ``ctx`` (all confirmed by the same round)."""
        try:
            n = self.queue.index(ctx) + 1
        except ValueError:
            return []
        done = [self.pending.pop(c) for c in self.queue[:n]]
        del self.queue[:n]
        return done

    def last_pending_request_ctx(self) -> bytes:
        return self.queue[-1] if self.queue else b""
