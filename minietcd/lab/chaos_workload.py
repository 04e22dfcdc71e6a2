"""The chaos workload: concurrent clients and watchers against a live cluster, every request
recorded for the checkers (``minietcd.lab.check``).

* **clients** (asyncio, ``grpc.aio``), ``clients_per_member`` bound to each member, over a few
  keys ``chaos/k0..``: linearizable reads (Range), puts, and compare-and-set transactions
  (compare the value this client last saw, then put, else get: a failed CAS is a read too);
* **watchers**, one per member, on the prefix ``chaos/`` from revision 1, resuming from
  ``last revision + 1`` when their stream breaks.

Every request is recorded with its invoke/complete instants (one monotonic clock) and outcome:
``ok``; ``fail`` only when the request provably did not take effect (a read, whose failure has
no effect, or a write that never left the client: connection refused); ``unknown`` otherwise
(timeouts, server errors after proposal, connection lost mid-call).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from typing import TYPE_CHECKING, Any

import grpc
import grpc.aio

from minietcd.api.etcdserverpb import rpc_pb2
from minietcd.api.etcdserverpb import rpc_pb2_grpc as _rpc_grpc_untyped
from minietcd.lab.check import OpKind, Recorder, WatchEvent, WatchRecord
from minietcd.lab.check.watch import EventType, prefix_range_end

if TYPE_CHECKING:
    from minietcd.lab.chaos_options import ChaosCluster, ChaosOptions

rpc_pb2_grpc: Any = _rpc_grpc_untyped  # the generated stubs are untyped
PREFIX = "chaos/"


def _not_sent(e: grpc.aio.AioRpcError) -> bool:
    """The request provably never reached a server (so a write was not applied)."""
    if e.code() is not grpc.StatusCode.UNAVAILABLE:
        return False
    d = (e.details() or "").lower()
    return "failed to connect" in d or "connection refused" in d


class Workload:
    def __init__(self, opts: ChaosOptions, cluster: ChaosCluster, rng: random.Random) -> None:
        self.opts = opts
        self.cluster = cluster
        self.t0 = time.monotonic()
        self.recorder = Recorder(clock=time.monotonic)
        self.keys = [f"{PREFIX}k{i}" for i in range(opts.keys)]
        self.stop = asyncio.Event()
        self.watches: list[WatchRecord] = []
        self._rng_seeds = [rng.randrange(1 << 30) for _ in range(64)]

    async def client(self, cid: int, port: int) -> None:
        rng = random.Random(self._rng_seeds[cid % len(self._rng_seeds)] + cid)
        known: dict[str, tuple[str | None, int]] = {}  # key -> (value, mod_revision) last seen
        n = 0
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            kv = rpc_pb2_grpc.KVStub(ch)
            while not self.stop.is_set():
                key = rng.choice(self.keys)
                n += 1
                value = f"c{cid}-{n}"
                r = rng.random()
                if r < self.opts.read_ratio:
                    ok = await self._get(kv, cid, key, known)
                elif r < self.opts.read_ratio + (1 - self.opts.read_ratio) / 2:
                    ok = await self._put(kv, cid, key, value, known)
                else:
                    ok = await self._txn(kv, cid, key, value, known)
                if not ok:
                    await asyncio.sleep(rng.uniform(0.02, 0.1))  # pacing after an error

    async def _get(self, kv: Any, cid: int, key: str, known: dict[str, tuple[str | None, int]]) -> bool:
        rec = self.recorder
        op = rec.invoke(cid, OpKind.GET, key)
        try:
            resp = await kv.Range(rpc_pb2.RangeRequest(key=key.encode()), timeout=self.opts.op_timeout)
        except grpc.aio.AioRpcError as e:
            rec.fail(op, _err(e))  # a read has no effect: a failed one is simply dropped
            return False
        val, mod = (resp.kvs[0].value.decode(), int(resp.kvs[0].mod_revision)) if resp.kvs else (None, 0)
        rec.ok(op, read_value=val, read_mod_revision=mod, revision=int(resp.header.revision))
        known[key] = (val, mod)
        return True

    async def _put(
        self, kv: Any, cid: int, key: str, value: str, known: dict[str, tuple[str | None, int]]
    ) -> bool:
        rec = self.recorder
        op = rec.invoke(cid, OpKind.PUT, key, value=value)
        try:
            resp = await kv.Put(
                rpc_pb2.PutRequest(key=key.encode(), value=value.encode()), timeout=self.opts.op_timeout
            )
        except grpc.aio.AioRpcError as e:
            self._write_error(op, e)
            return False
        rev = int(resp.header.revision)
        rec.ok(op, revision=rev)
        known[key] = (value, rev)
        return True

    async def _txn(
        self, kv: Any, cid: int, key: str, value: str, known: dict[str, tuple[str | None, int]]
    ) -> bool:
        rec = self.recorder
        expect, _ = known.get(key, (None, 0))
        k = key.encode()
        if expect is None:  # "create if absent": compare mod_revision == 0
            cmp = rpc_pb2.Compare(
                key=k, target=rpc_pb2.Compare.MOD, result=rpc_pb2.Compare.EQUAL, mod_revision=0
            )
            op = rec.invoke(cid, OpKind.TXN, key, value=value, expect_mod_revision=0)
        else:
            cmp = rpc_pb2.Compare(
                key=k, target=rpc_pb2.Compare.VALUE, result=rpc_pb2.Compare.EQUAL, value=expect.encode()
            )
            op = rec.invoke(cid, OpKind.TXN, key, value=value, expect_value=expect)
        req = rpc_pb2.TxnRequest(
            compare=[cmp],
            success=[rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=k, value=value.encode()))],
            failure=[rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=k))],
        )
        try:
            resp = await kv.Txn(req, timeout=self.opts.op_timeout)
        except grpc.aio.AioRpcError as e:
            self._write_error(op, e)
            return False
        rev = int(resp.header.revision)
        if resp.succeeded:
            rec.ok(op, succeeded=True, revision=rev)
            known[key] = (value, rev)
        else:
            kvs = resp.responses[0].response_range.kvs if resp.responses else []
            val, mod = (kvs[0].value.decode(), int(kvs[0].mod_revision)) if kvs else (None, 0)
            rec.ok(op, succeeded=False, read_value=val, read_mod_revision=mod, revision=rev)
            known[key] = (val, mod)
        return True

    def _write_error(self, op: int, e: grpc.aio.AioRpcError) -> None:
        if _not_sent(e):
            self.recorder.fail(op, _err(e))
        else:
            self.recorder.unknown(op, _err(e))

    async def watcher(self, wid: int, port: int) -> None:
        rec = WatchRecord(
            watcher=wid, key=PREFIX, range_end=prefix_range_end(PREFIX), start_revision=1, client=1000 + wid
        )
        self.watches.append(rec)
        next_rev = 1
        while not self.stop.is_set():
            try:
                async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
                    stub = rpc_pb2_grpc.WatchStub(ch)
                    create = rpc_pb2.WatchRequest(
                        create_request=rpc_pb2.WatchCreateRequest(
                            key=PREFIX.encode(),
                            range_end=prefix_range_end(PREFIX).encode(),
                            start_revision=next_rev,
                        )
                    )
                    call = stub.Watch(iter([create]))
                    async for resp in call:
                        for ev in resp.events:
                            r = int(ev.kv.mod_revision)
                            typ = EventType.DELETE if ev.type == 1 else EventType.PUT
                            rec.events.append(
                                WatchEvent(
                                    revision=r,
                                    key=ev.kv.key.decode(),
                                    type=typ,
                                    value=ev.kv.value.decode() if typ is EventType.PUT else None,
                                    received=time.monotonic(),
                                )
                            )
                            next_rev = max(next_rev, r + 1)
                        if resp.canceled:
                            break
            except grpc.aio.AioRpcError:
                pass
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), 0.2)  # reconnect pacing


def _err(e: grpc.aio.AioRpcError) -> str:
    return f"{e.code().name}: {e.details()}"
