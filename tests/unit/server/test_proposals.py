"""When queued proposals enter the Raft core (minietcd/server/proposals.py): a batch at once,
sparse proposals at once, a small batch among frequent proposals only after a short hold."""

from __future__ import annotations

import asyncio

from minietcd.server import proposals
from minietcd.server.proposals import ProposalQueue


def queue() -> tuple[ProposalQueue, list[int]]:
    wakes: list[int] = []
    return ProposalQueue(lambda: wakes.append(1)), wakes


def busy(q: ProposalQueue) -> None:
    """Many proposals back to back (64 writers): the queue learns that more keep coming."""
    for i in range(200):
        q.add(b"x", i)
        if len(q) == proposals.BATCH:
            assert q.due()  # a full batch never waits
            q.take()
    q.take()


async def test_a_lone_proposal_goes_in_at_once() -> None:
    q, wakes = queue()
    q.add(b"a", 1)
    assert wakes and q.due()
    assert q.take() == [(b"a", 1)] and len(q) == 0 and not q.due()


async def test_a_small_batch_among_many_waits_for_company_then_goes_in() -> None:
    q, wakes = queue()
    busy(q)
    q.add(b"a", 1)
    q.add(b"b", 2)
    assert not q.due()  # proposals keep coming: wait for the next ones
    wakes.clear()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 1.0
    while not wakes:  # the hold's timer wakes the Ready loop
        assert loop.time() < deadline, "never woken"
        await asyncio.sleep(proposals.HOLD)
    assert q.due()
    assert [rid for _, rid in q.take()] == [1, 2]


async def test_taking_cancels_the_hold() -> None:
    q, wakes = queue()
    busy(q)
    q.add(b"a", 1)
    assert not q.due()
    q.take()
    wakes.clear()
    await asyncio.sleep(proposals.HOLD * 5)
    assert not wakes  # nothing is held any more: no wake-up
    q.close()


def test_the_policy_holds_only_small_batches_among_frequent_shared_arrivals() -> None:
    p = proposals.GroupCommit()
    p.arrived()
    assert not p.hold(1)  # one arrival, nothing shared yet: serve it now
    for _ in range(100):  # a busy stretch: arrivals back to back, batches of 4
        p.arrived()
        p.taken(4)
    assert p.hold(1) and p.hold(proposals.BATCH - 1)
    assert not p.hold(proposals.BATCH)  # a full batch never waits
    for _ in range(100):  # one writer: every batch holds exactly one
        p.taken(1)
    assert not p.hold(1)
