"""Watch fan-out and lease keep-alives: minietcd beside real etcd, same load generator.

    python3 benchmarks/watch_lease.py [--watchers 1000] [--streams 10] [--puts 100]
                                      [--keepalive-clients 64] [--seconds 10] [--target both]

Watch fan-out: ``--watchers`` watches on one key, spread over ``--streams`` Watch streams on one
member; ``--puts`` writes to that key on another member; the figure is events delivered per
second, from the first put until every watcher has every event. Lease keep-alives:
``--keepalive-clients`` clients, each with its own lease and keep-alive stream, send requests
back to back for ``--seconds``; the figure is keep-alive responses per second.
Record the output in docs/benchmarks.md; nothing here is a test.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from minietcd.api.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from tests.cluster.harness import ProcessCluster, etcd_binary, minietcd_binary

KEY = b"bench/watched"


async def watch_fanout(eps: list[str], watchers: int, streams: int, puts: int) -> float:
    ch_watch = grpc.aio.insecure_channel(eps[0])
    ch_put = grpc.aio.insecure_channel(eps[1])
    kv = rpc_pb2_grpc.KVStub(ch_put)
    start_rev = (await kv.Put(rpc_pb2.PutRequest(key=b"bench/start", value=b"x"))).header.revision + 1
    per_stream = watchers // streams
    expected = per_stream * streams * puts
    got = 0
    all_created = asyncio.Event()
    created = 0
    done = asyncio.Event()

    async def stream() -> None:
        nonlocal got, created
        queue: asyncio.Queue[rpc_pb2.WatchRequest | None] = asyncio.Queue()
        for _ in range(per_stream):
            queue.put_nowait(
                rpc_pb2.WatchRequest(
                    create_request=rpc_pb2.WatchCreateRequest(key=KEY, start_revision=start_rev)
                )
            )

        async def requests() -> AsyncIterator[rpc_pb2.WatchRequest]:
            while (item := await queue.get()) is not None:
                yield item

        call = rpc_pb2_grpc.WatchStub(ch_watch).Watch(requests())
        async for resp in call:
            if resp.created:
                created += 1
                if created == per_stream * streams:
                    all_created.set()
            got += len(resp.events)
            if got >= expected:
                done.set()
                break
        queue.put_nowait(None)
        call.cancel()

    tasks = [asyncio.create_task(stream()) for _ in range(streams)]
    await asyncio.wait_for(all_created.wait(), 60)
    t0 = time.perf_counter()
    for i in range(puts):
        await kv.Put(rpc_pb2.PutRequest(key=KEY, value=b"v%d" % i))
    await asyncio.wait_for(done.wait(), 300)
    elapsed = time.perf_counter() - t0
    for t in tasks:
        t.cancel()
    await ch_watch.close()
    await ch_put.close()
    return expected / elapsed


async def keepalives(eps: list[str], clients: int, seconds: float) -> float:
    channels = [grpc.aio.insecure_channel(eps[i % len(eps)]) for i in range(clients)]
    count = 0
    stop = time.monotonic() + seconds

    async def client(ch: grpc.aio.Channel) -> None:
        nonlocal count
        lease = await rpc_pb2_grpc.LeaseStub(ch).LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=60))
        queue: asyncio.Queue[bool] = asyncio.Queue()
        queue.put_nowait(True)

        async def requests() -> AsyncIterator[rpc_pb2.LeaseKeepAliveRequest]:
            while await queue.get():
                yield rpc_pb2.LeaseKeepAliveRequest(ID=lease.ID)

        call = rpc_pb2_grpc.LeaseStub(ch).LeaseKeepAlive(requests())
        async for _ in call:
            count += 1
            queue.put_nowait(time.monotonic() < stop)
            if time.monotonic() >= stop:
                break
        call.cancel()

    t0 = time.perf_counter()
    await asyncio.gather(*(client(ch) for ch in channels))
    elapsed = time.perf_counter() - t0
    for ch in channels:
        await ch.close()
    return count / elapsed


def run(name: str, binary: list[str], args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cluster = ProcessCluster(binary, 3, Path(tmp), heartbeat_ms=100, election_ms=1000)
        try:
            cluster.start()
            cluster.wait_healthy(60)
            eps = [cluster.endpoint(i).split("://")[-1] for i in range(3)]
            events = asyncio.run(watch_fanout(eps, args.watchers, args.streams, args.puts))
            kas = asyncio.run(keepalives(eps, args.keepalive_clients, args.seconds))
        finally:
            cluster.close()
    print(
        f"{name:9s} watch fan-out {events:9,.0f} events/s ({args.watchers} watchers on {args.streams} "
        f"streams, {args.puts} puts)   lease keep-alives {kas:8,.0f}/s ({args.keepalive_clients} clients)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--watchers", type=int, default=1000)
    ap.add_argument("--streams", type=int, default=10)
    ap.add_argument("--puts", type=int, default=100)
    ap.add_argument("--keepalive-clients", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--target", choices=["minietcd", "etcd", "both"], default="both")
    args = ap.parse_args()
    if args.target in ("etcd", "both"):
        run("etcd", etcd_binary(), args)
    if args.target in ("minietcd", "both"):
        run("minietcd", minietcd_binary(), args)


if __name__ == "__main__":
    main()
