"""ReadIndex bookkeeping: linearizable reads without writing to the log (thesis 6.4).

The leader records its commit index when a read arrives, then confirms it is still the leader
by a heartbeat round acknowledged by a majority. Once confirmed, the read may be served as
soon as the state machine has applied up to the recorded index. Requests queue in arrival
order; an acknowledgement of a later request confirms every earlier one too, which is what
lets one heartbeat round serve a whole batch of reads.

One round at a time: while a round is unconfirmed (``in_flight``), requests that arrive wait
for the next one, which starts when it is confirmed (or with the next periodic heartbeat, which
carries the newest request too, in case an acknowledgement was lost). A request still gets a
round that started after it arrived, which is all linearizability asks; under load the rounds
grow instead of multiplying (each one is a heartbeat to every follower and their answers), at
the price of at most one more round trip for a read that arrives while one is in flight.
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
    __slots__ = ("in_flight", "pending", "queue")

    def __init__(self) -> None:
        self.pending: dict[bytes, ReadIndexStatus] = {}  # request context -> status
        self.queue: list[bytes] = []  # contexts in arrival order
        self.in_flight = b""  # context of the heartbeat round sent and not confirmed yet

    def start_round(self) -> bytes:
        """The context a heartbeat round carries now: the newest request (b"" if none), which
        the round confirms together with every request before it."""
        self.in_flight = self.last_pending_request_ctx()
        return self.in_flight

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
        if self.in_flight not in self.pending:
            self.in_flight = b""  # confirmed: the next round may start
        return done

    def last_pending_request_ctx(self) -> bytes:
        return self.queue[-1] if self.queue else b""
