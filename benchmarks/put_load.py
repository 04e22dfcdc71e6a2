"""Put throughput of a 3-member cluster: minietcd beside real etcd, same load generator.

    python3 benchmarks/put_load.py [--clients 64] [--conns 8] [--seconds 10] [--size 256]
                                   [--target minietcd|etcd|both]

Starts each cluster on 127.0.0.1 (data on tmpfs-backed /tmp if that is what /tmp is), runs
``--clients`` concurrent writers over ``--conns`` gRPC connections spread over all members for
``--seconds``, and prints puts/s and latency percentiles. Writes go to random keys among 10,000.
Nothing here is a test: record the output in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from minietcd.api.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from tests.cluster.harness import ProcessCluster, etcd_binary, minietcd_binary

Metadata = tuple[tuple[str, str], ...]


async def load(
    endpoints: list[str], clients: int, conns: int, seconds: float, size: int,
    metadata: Sequence[Metadata] = (),
) -> tuple[int, list[float]]:
    """Puts/s and each put's latency; ``metadata[i]`` goes with every put on connection i
    (an auth token, benchmarks/auth_puts.py)."""
    channels = [grpc.aio.insecure_channel(endpoints[i % len(endpoints)]) for i in range(conns)]
    stubs = [rpc_pb2_grpc.KVStub(ch) for ch in channels]
    value = os.urandom(size)
    latencies: list[float] = []
    done = 0
    stop = time.monotonic() + seconds

    async def client(n: int) -> None:
        nonlocal done
        stub, md = stubs[n % conns], metadata[n % conns] if metadata else ()
        rng = random.Random(n)
        while time.monotonic() < stop:
            key = b"bench/%05d" % rng.randrange(10_000)
            t0 = time.perf_counter()
            await stub.Put(rpc_pb2.PutRequest(key=key, value=value), timeout=10, metadata=md)
            latencies.append(time.perf_counter() - t0)
            done += 1

    start = time.monotonic()
    await asyncio.gather(*(client(i) for i in range(clients)))
    elapsed = time.monotonic() - start
    for ch in channels:
        await ch.close()
    return int(done / elapsed), latencies


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), children excluded."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(name: str, binary: list[str], args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cluster = ProcessCluster(binary, 3, Path(tmp), heartbeat_ms=100, election_ms=1000)
        try:
            cluster.start()
            cluster.wait_healthy(60)
            eps = [cluster.endpoint(i).split("://")[-1] for i in range(3)]
            asyncio.run(load(eps, 8, 2, 2.0, args.size))  # warm-up
            pids = [m.proc.pid for m in cluster.members if m.proc is not None]
            cpu_before = sum(cpu_seconds(pid) for pid in pids)
            rate, lat = asyncio.run(load(eps, args.clients, args.conns, args.seconds, args.size))
            # CPU the three members spent per put: less sensitive than puts/s to whatever else
            # the machine is doing (on 2 shared cores, throughput alone is noisy).
            cpu_per_put = (sum(cpu_seconds(pid) for pid in pids) - cpu_before) / max(1, rate * args.seconds)
        finally:
            cluster.close()
    lat.sort()

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(p * len(lat)))] * 1000

    print(
        f"{name:9s} {rate:7d} puts/s  latency ms: p50 {pct(0.5):6.1f}  p90 {pct(0.9):6.1f}  "
        f"p99 {pct(0.99):6.1f}  mean {statistics.mean(lat) * 1000:6.1f}  "
        f"server CPU {cpu_per_put * 1e6:5.0f} us/put  "
        f"({args.clients} clients, {args.conns} conns, {args.size} B values, {args.seconds:.0f} s)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--conns", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--target", choices=["minietcd", "etcd", "both"], default="both")
    args = ap.parse_args()
    if args.target in ("etcd", "both"):
        run("etcd", etcd_binary(), args)
    if args.target in ("minietcd", "both"):
        run("minietcd", minietcd_binary(), args)


if __name__ == "__main__":
    main()
