"""When queued proposals enter the Raft core (minietcd/server/proposals.py): a batch at once,
sparse proposals at once, a small batch among frequent proposals only after a short hold, or
at once when every writer that usually waits is waiting."""

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


def closed_loop(q: ProposalQueue, writers: int, rounds: int = 50) -> None:
    """``writers`` clients in a closed loop: each batch holds all of them (the queue's own
    length stands in for the server's count of unanswered proposals)."""
    for r in range(rounds):
        for w in range(writers):
            q.add(b"x", r * writers + w)
        assert q.due()
        q.take()


async def test_a_batch_goes_in_at_once_when_every_writer_waits() -> None:
    q, _ = queue()
    closed_loop(q, 5)
    for w in range(4):
        q.add(b"x", w)
        assert not q.due()  # one writer is still to come: wait for it
    q.add(b"x", 4)
    assert q.due()  # all five are in: nobody else to wait for, whatever the batch's size
    assert len(q.take()) == 5
    q.close()


async def test_the_writers_count_includes_proposals_already_in_raft() -> None:
    q, _ = queue()
    closed_loop(q, 6)
    in_raft = 4  # proposals taken, not yet applied: their writers are waiting too
    q.waiting = lambda: len(q) + in_raft
    q.add(b"x", 1)
    assert not q.due()
    q.add(b"x", 2)
    assert q.due()
    q.close()


async def test_fewer_writers_are_recognised_after_a_busy_stretch() -> None:
    q, _ = queue()
    closed_loop(q, 40)
    held = 0
    for _ in range(100):  # now 4 writers: the first batches wait out their hold
        for w in range(4):
            q.add(b"x", w)
        if not q.due():
            held += 1
        q.take()
    assert 0 < held < 60
    for w in range(4):
        q.add(b"x", w)
    assert q.due()  # the 4 are recognised as everyone
    q.close()


def test_the_writers_peak_decays_towards_the_count_at_each_batch() -> None:
    w = proposals.Writers()
    for n in range(1, 11):
        w.arrived(n)
    assert w.all_in(10) and not w.all_in(9)
    for _ in range(100):
        w.taken(3)
    assert w.all_in(3) and not w.all_in(2)
