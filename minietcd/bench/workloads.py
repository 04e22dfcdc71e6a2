"""The requests of etcd's benchmark (``tools/benchmark/cmd``), one sender per client.

Keys are etcd's: ``binary.PutVarint`` of the key number (zig-zag varint) at the start of a
zeroed ``key_size``-byte key, so ``--key-space-size 1000`` writes 1000 distinct binary keys.
Values are ``val_size`` random bytes drawn once, as etcd draws them.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc

from minietcd.api.etcdserverpb import rpc_pb2
from minietcd.bench.pool import Pool
from minietcd.bench.progress import Progress
from minietcd.bench.ratelimit import Limiter
from minietcd.bench.runner import Recorder, Request
from minietcd.golang import put_varint

#: The TTL of the leases etcd's lease-keepalive benchmark grants.
KEEPALIVE_LEASE_TTL = 100
#: How long watch-latency waits for every watcher to see one put before giving up.
WATCH_EVENT_TIMEOUT = 30.0


class WorkloadError(Exception):
    """The benchmark cannot go on (a put of watch-latency failed, a stream closed)."""


def varint(n: int) -> bytes:
    """Go's ``binary.PutVarint`` encoding of ``n``."""
    return put_varint(n)


def varint_key(n: int, size: int) -> bytes:
    """Key number ``n`` as etcd's benchmark writes it into a ``size``-byte buffer."""
    v = varint(n)
    if len(v) > size:
        raise ValueError(f"key-size {size} is too small for key number {n}")
    return v + bytes(size - len(v))


@dataclass(slots=True)
class KeySource:
    """Key numbers: sequential (``i % space``) or uniformly random in ``[0, space)``."""

    space: int
    sequential: bool = False
    rng: random.Random = field(default_factory=random.Random)
    _next: itertools.count[int] = field(default_factory=itertools.count)

    def __call__(self) -> int:
        if self.sequential:
            return next(self._next) % self.space
        return self.rng.randrange(self.space)


def check_key_space(key_size: int, key_space: int) -> None:
    """Raise ValueError unless every key number of ``key_space`` fits in ``key_size`` bytes."""
    if key_space <= 0:
        raise ValueError(f"expected positive --key-space-size, got ({key_space})")
    varint_key(key_space - 1, key_size)


def put_requests(pool: Pool, clients: int, key_size: int, val_size: int, keys: KeySource) -> list[Request]:
    value = os.urandom(val_size)
    md = pool.metadata

    def sender(c: int) -> Request:
        put = pool.conn(c).kv.Put
        return lambda: put(rpc_pb2.PutRequest(key=varint_key(keys(), key_size), value=value), metadata=md)

    return [sender(c) for c in range(clients)]


def range_requests(pool: Pool, clients: int, request: rpc_pb2.RangeRequest) -> list[Request]:
    md = pool.metadata

    def sender(c: int) -> Request:
        get = pool.conn(c).kv.Range
        return lambda: get(request, metadata=md)

    return [sender(c) for c in range(clients)]


def txn_put_requests(
    pool: Pool, clients: int, key_size: int, val_size: int, key_space: int, ops: int
) -> list[Request]:
    """Transactions of ``ops`` puts each, on keys ``(txn * ops + j) % key_space`` (etcd's)."""
    value = os.urandom(val_size)
    md = pool.metadata
    txns = itertools.count()

    def request() -> rpc_pb2.TxnRequest:
        i = next(txns)
        puts = (
            rpc_pb2.PutRequest(key=varint_key((i * ops + j) % key_space, key_size), value=value)
            for j in range(ops)
        )
        return rpc_pb2.TxnRequest(success=[rpc_pb2.RequestOp(request_put=p) for p in puts])

    def sender(c: int) -> Request:
        txn = pool.conn(c).kv.Txn
        return lambda: txn(request(), metadata=md)

    return [sender(c) for c in range(clients)]


@dataclass(slots=True)
class KeepAlives:
    """One lease and one LeaseKeepAlive stream per client; a request is one keep-alive sent and
    its answer read on that stream (etcd's benchmark opens a stream per ``KeepAliveOnce``)."""

    pool: Pool
    leases: list[tuple[int, int]] = field(default_factory=list)
    calls: list[grpc.aio.StreamStreamCall] = field(default_factory=list)

    async def open(self, clients: int) -> list[Request]:
        md = self.pool.metadata
        grant = rpc_pb2.LeaseGrantRequest(TTL=KEEPALIVE_LEASE_TTL)
        grants = await asyncio.gather(
            *(self.pool.conn(c).lease.LeaseGrant(grant, metadata=md) for c in range(clients))
        )
        senders: list[Request] = []
        for c, grant in enumerate(grants):
            self.leases.append((c, grant.ID))
            call = self.pool.conn(c).lease.LeaseKeepAlive(metadata=md)
            self.calls.append(call)
            senders.append(self._sender(call, rpc_pb2.LeaseKeepAliveRequest(ID=grant.ID)))
        return senders

    @staticmethod
    def _sender(call: grpc.aio.StreamStreamCall, req: rpc_pb2.LeaseKeepAliveRequest) -> Request:
        async def send() -> object:
            await call.write(req)
            resp = await call.read()
            if resp is grpc.aio.EOF:
                raise WorkloadError("lease keep-alive stream closed by the server")
            if resp.TTL <= 0:
                raise WorkloadError("etcdserver: requested lease not found")
            return resp

        return send

    async def close(self) -> None:
        """Close the streams and revoke the leases (etcd's leave theirs to expire)."""
        for call in self.calls:
            call.cancel()
        md = self.pool.metadata
        revokes = [(self.pool.conn(c).lease, rpc_pb2.LeaseRevokeRequest(ID=lid)) for c, lid in self.leases]
        await asyncio.gather(
            *(lease.LeaseRevoke(req, metadata=md, timeout=10) for lease, req in revokes),
            return_exceptions=True,
        )


@dataclass(slots=True)
class _Round:
    """The put in flight: when it was sent and how many watchers have yet to see it."""

    start: float = 0.0
    pending: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)


async def watch_latency(
    pool: Pool,
    clients: int,
    put_total: int,
    limiter: Limiter,
    key_size: int,
    val_size: int,
    progress: Progress | None = None,
) -> Recorder:
    """etcd's watch-latency: every client watches one random key on its own Watch stream; puts to
    that key, one at a time at the put rate, through the first connection. One sample per
    watcher per put: the time from sending the put to the watcher receiving its event."""
    key, value = os.urandom(key_size), os.urandom(val_size)
    md = pool.metadata
    rnd = _Round()
    rec = Recorder()
    queues: list[asyncio.Queue[rpc_pb2.WatchRequest | None]] = []
    calls: list[grpc.aio.StreamStreamCall] = []
    readers: list[asyncio.Task[None]] = []

    async def requests(q: asyncio.Queue[rpc_pb2.WatchRequest | None]) -> AsyncIterator[rpc_pb2.WatchRequest]:
        while (item := await q.get()) is not None:
            yield item

    async def read(call: grpc.aio.StreamStreamCall) -> None:
        perf = time.perf_counter
        while (resp := await call.read()) is not grpc.aio.EOF:
            n = len(resp.events)
            if n:
                lat = perf() - rnd.start
                rec.lats.extend([lat] * n)
                rnd.pending -= n
                if rnd.pending <= 0:
                    rnd.done.set()

    try:
        for c in range(clients):
            q: asyncio.Queue[rpc_pb2.WatchRequest | None] = asyncio.Queue()
            q.put_nowait(rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(key=key)))
            call = pool.conn(c).watch.Watch(requests(q), metadata=md)
            first = await asyncio.wait_for(call.read(), WATCH_EVENT_TIMEOUT)
            if first is grpc.aio.EOF or not first.created or first.canceled:
                raise WorkloadError("watch stream closed before the watch was created")
            queues.append(q)
            calls.append(call)
        readers = [asyncio.create_task(read(call)) for call in calls]
        kv = pool.conns[0].kv
        rec.started = time.perf_counter()
        for _ in range(put_total):
            await limiter.wait()
            rnd.done.clear()
            rnd.pending = clients
            rnd.start = time.perf_counter()
            try:
                await kv.Put(rpc_pb2.PutRequest(key=key, value=value), metadata=md)
            except grpc.aio.AioRpcError as e:
                rec.error(e)
                raise WorkloadError(f"Failed to Put for watch latency benchmark: {e.details()}") from None
            try:
                await asyncio.wait_for(rnd.done.wait(), WATCH_EVENT_TIMEOUT)
            except TimeoutError:
                raise WorkloadError(
                    f"watchers did not see a put within {WATCH_EVENT_TIMEOUT:.0f}s ({rnd.pending} missing)"
                ) from None
            if progress is not None:
                progress.current += 1
        rec.stop()
    finally:
        for q in queues:
            q.put_nowait(None)
        for call in calls:
            call.cancel()
        for t in readers:
            t.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
    return rec
