"""A client writing through a leader kill continues on the new leader; no write is reported
successful that was not committed, none is applied twice (issue 5).

A writer puts unique values (``w0000``, ``w0001``, ...) to a few keys, one after the other, with
:mod:`minietcd.client` over all three endpoints, while the test SIGKILLs the leader mid-stream.
A write that raises :class:`OutcomeUnknownError` is recorded as *unknown* and the writer goes
on; one that raises :class:`EndpointsUnavailableError` was never sent. The writer must get
``AFTER_KILL`` writes acknowledged within ``PROGRESS_BOUND`` seconds of the kill. Afterwards the
whole history (a watch from revision 1) must hold every acknowledged write exactly once, at the
revision its response named; no value twice; an unknown write at most once; a never-sent write
not at all; nothing that was not attempted. The killed member is restarted and must converge
(the same HashKV at the final revision as the others).

Runs against a 3-member minietcd cluster, and against real etcd 3.4 (the ``etcd3`` fixture:
etcd, or minietcd again under ``MINIETCD_CLIENT_TEST_SERVER=minietcd``).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from minietcd.client import Client, EndpointsUnavailableError, EventType, OutcomeUnknownError
from tests.cluster.harness import ProcessCluster, minietcd_binary

pytestmark = pytest.mark.cluster

KEYS = 4
#: Acknowledged writes before the kill, and required on the new leader after it.
BEFORE_KILL = 40
AFTER_KILL = 40
#: How long the AFTER_KILL writes may take after the kill (election, reconnect, a loaded machine).
PROGRESS_BOUND = 45.0


@dataclass(slots=True)
class WriterLog:
    acked: dict[bytes, int] = field(default_factory=dict)  # value -> revision of its response
    unknown: set[bytes] = field(default_factory=set)
    never_sent: set[bytes] = field(default_factory=set)
    attempted: set[bytes] = field(default_factory=set)
    ack_times: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


async def _writer(c: Client, prefix: str, log: WriterLog, stop: asyncio.Event) -> None:
    i = 0
    while not stop.is_set():
        value = f"w{i:04d}".encode()
        key = f"{prefix}{i % KEYS}"
        i += 1
        log.attempted.add(value)
        try:
            resp = await c.put(key, value)
        except OutcomeUnknownError as e:
            log.unknown.add(value)
            log.errors.append(f"{value.decode()}: unknown ({e.etcd_message})")
            await asyncio.sleep(0.05)
            continue
        except EndpointsUnavailableError as e:
            log.never_sent.add(value)
            log.errors.append(f"{value.decode()}: not sent ({e.etcd_message})")
            await asyncio.sleep(0.05)
            continue
        log.acked[value] = resp.header.revision
        log.ack_times.append(time.monotonic())


async def _wait_for(cond: Callable[[], object], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


async def _history(c: Client, prefix: str, until: int) -> list[tuple[bytes, int]]:
    """(value, mod revision) of every put under ``prefix`` from revision 1 to ``until``."""
    out: list[tuple[bytes, int]] = []
    async with asyncio.timeout(60), c.watch(prefix, prefix=True, start_revision=1) as w:
        async for batch in w:
            for ev in batch.events:
                assert ev.type == EventType.PUT, ev
                out.append((ev.kv.value, ev.kv.mod_revision))
            if out and out[-1][1] >= until:  # a batch without events (e.g. "created") is no end
                break
    return out


async def _converged_hash(c: Client, endpoints: list[str], revision: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            hashes = [(await c.hash_kv(endpoint=ep, revision=revision, timeout=2)).hash for ep in endpoints]
        except Exception as e:
            last = e
        else:
            if len(set(hashes)) == 1:
                return
            last = hashes
        if time.monotonic() > deadline:
            raise AssertionError(f"members did not converge on HashKV at revision {revision}: {last}")
        await asyncio.sleep(0.2)


async def _write_through_leader_kill(cluster: ProcessCluster) -> None:
    prefix = "failover/"
    leader = await asyncio.to_thread(cluster.wait_healthy, 60.0)
    log = WriterLog()
    stop = asyncio.Event()
    async with Client(cluster.endpoints, timeout=2.0, dial_timeout=1.0) as c:
        task = asyncio.create_task(_writer(c, prefix, log, stop))
        try:
            await _wait_for(lambda: len(log.acked) >= BEFORE_KILL or task.done(), "writes", 60)
            await asyncio.to_thread(cluster.kill, leader)  # returns once the process is reaped
            killed_at = time.monotonic()
            acked_before = len(log.acked)
            await _wait_for(
                lambda: len(log.acked) >= acked_before + AFTER_KILL or task.done(),
                f"{AFTER_KILL} acknowledged writes on the new leader (errors: {log.errors})",
                PROGRESS_BOUND,
            )
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)  # re-raises anything unexpected from the writer
        after = [t for t in log.ack_times if t > killed_at]
        assert len(after) >= AFTER_KILL, f"the writer stopped making progress: {log.errors}"
        stall = max(b - a for a, b in zip([killed_at, *after], after, strict=False))
        final = (await c.get(prefix, prefix=True, count_only=True)).header.revision
        history = await _history(c, prefix, final)

        seen = Counter(v for v, _ in history)
        twice = sorted(v for v, n in seen.items() if n > 1)
        assert not twice, f"values applied more than once: {twice}"
        missing = sorted(v for v in log.acked if v not in seen)
        assert not missing, f"acknowledged writes missing from the history: {missing}"
        at = dict(history)
        moved = {v: (rev, at[v]) for v, rev in log.acked.items() if at[v] != rev}
        assert not moved, f"acknowledged at one revision, in the history at another: {moved}"
        assert not log.never_sent & set(seen), "a write reported as never sent was applied"
        stray = sorted(set(seen) - log.attempted)
        assert not stray, f"values in the history that were never written: {stray}"
        revisions = [r for _, r in history]
        assert revisions == list(range(revisions[0], revisions[0] + len(revisions))), "gaps in history"

        # The killed member comes back and converges on the same history.
        cluster.start_member(leader)
        await asyncio.to_thread(cluster.wait_healthy, 60.0)
        await _converged_hash(c, cluster.endpoints, final, timeout=60)
    print(
        f"acked {len(log.acked)}, unknown {len(log.unknown)} "
        f"({len(log.unknown & set(seen))} applied), never sent {len(log.never_sent)}; "
        f"longest wait for an ack after the kill {stall:.2f}s"
    )


@pytest.fixture
def minietcd3(tmp_path: Path) -> Iterator[ProcessCluster]:
    with ProcessCluster(minietcd_binary(), 3, tmp_path / "minietcd") as cluster:
        cluster.start()
        yield cluster


async def test_minietcd_writes_through_a_leader_kill(minietcd3: ProcessCluster) -> None:
    await _write_through_leader_kill(minietcd3)


@pytest.mark.compat
async def test_etcd_writes_through_a_leader_kill(etcd3: ProcessCluster) -> None:
    await _write_through_leader_kill(etcd3)
