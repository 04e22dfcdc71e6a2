"""Does feeding a new member a large snapshot stall the cluster? (issue 15 / issue 11)

    python3 benchmarks/snapshot_stall.py                       # 1,000,000 keys, minietcd
    python3 benchmarks/snapshot_stall.py --keys 100000 --servers minietcd,etcd

Starts a 3-member cluster (heartbeat 100 ms, election 1000 ms), loads ``--keys`` keys
(``--value-size`` bytes each) with transactions of 128 puts, then, while probe clients keep
writing and reading (linearizable) through the three members, adds a fourth member with
``etcdctl member add`` and starts it. The leader's log has been compacted long before
(``--snapshot-count``, small here so that a transaction-loaded log is compacted too), so the new
member can only catch up by a snapshot of the whole key space. Printed: how long the snapshot
took to reach the new member and be applied, the slowest probe request, how many took over 1 s,
errors, and whether the leader changed. The goal (issue 15): no leader change and no request
over 1 s. Nothing here is a test: record the output in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from minietcd.api.etcdserverpb import rpc_pb2
from minietcd.api.etcdserverpb import rpc_pb2_grpc as _rpc_grpc_untyped
from tests.cluster.harness import ProcessCluster, etcd_binary, minietcd_binary

# The generated gRPC stubs are untyped; use them through Any.
rpc_pb2_grpc: Any = _rpc_grpc_untyped
TXN_OPS = 128  # etcd's default --max-txn-ops


@dataclass(slots=True)
class Probe:
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    leaders: list[tuple[float, int, int]] = field(default_factory=list)  # (time, leader, term)


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def targets(c: ProcessCluster) -> list[str]:
    return [f"127.0.0.1:{m.client_port}" for m in c.members]


async def load(eps: list[str], keys: int, value_size: int, txn_ops: int, clients: int = 8) -> float:
    value = os.urandom(value_size)
    channels = [grpc.aio.insecure_channel(eps[i % len(eps)]) for i in range(clients)]
    txns = iter(range(0, keys, txn_ops))
    started = time.monotonic()

    async def client(i: int) -> None:
        kv = rpc_pb2_grpc.KVStub(channels[i])
        for first in txns:
            ops = [
                rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"k/%08d" % n, value=value))
                for n in range(first, min(first + txn_ops, keys))
            ]
            for attempt in range(10):
                try:
                    await kv.Txn(rpc_pb2.TxnRequest(success=ops), timeout=30)
                    break
                except grpc.aio.AioRpcError:
                    if attempt == 9:
                        raise
                    await asyncio.sleep(0.5)

    await asyncio.gather(*(client(i) for i in range(clients)))
    took = time.monotonic() - started
    for ch in channels:
        await ch.close()
    return took


async def probe(eps: list[str], probe_state: Probe, stop: asyncio.Event, clients: int = 8) -> None:
    """Half the clients write, half read linearizably; one poller watches the leader."""
    channels = [grpc.aio.insecure_channel(ep) for ep in eps]

    async def worker(i: int) -> None:
        kv = rpc_pb2_grpc.KVStub(channels[i % len(channels)])
        rng = random.Random(i)
        while not stop.is_set():
            t0 = time.perf_counter()
            try:
                if i % 2:
                    await kv.Put(
                        rpc_pb2.PutRequest(key=b"probe/%d" % rng.randrange(1000), value=b"x"), timeout=10
                    )
                else:
                    await kv.Range(rpc_pb2.RangeRequest(key=b"probe/1"), timeout=10)
                probe_state.latencies.append(time.perf_counter() - t0)
            except grpc.aio.AioRpcError as e:
                text = f"{e.code().name}: {e.details()}"
                probe_state.errors[text] = probe_state.errors.get(text, 0) + 1
                probe_state.latencies.append(time.perf_counter() - t0)
            await asyncio.sleep(0.01)

    async def leader_poll() -> None:
        while not stop.is_set():
            for ch in channels:
                try:
                    st = await rpc_pb2_grpc.MaintenanceStub(ch).Status(rpc_pb2.StatusRequest(), timeout=0.5)
                except grpc.aio.AioRpcError:
                    continue
                seen = (st.leader, st.raftTerm)
                if not probe_state.leaders or probe_state.leaders[-1][1:] != seen:
                    probe_state.leaders.append((time.monotonic(), *seen))
            await asyncio.sleep(0.1)

    await asyncio.gather(*(worker(i) for i in range(clients)), leader_poll())
    for ch in channels:
        await ch.close()


def add_member(c: ProcessCluster, learner: bool) -> tuple[int, float]:
    """member add + start the new member; seconds until it has applied the leader's index."""
    started = time.monotonic()
    i = c.member_add_and_start("n4", learner=learner, timeout=600)
    return i, time.monotonic() - started


async def run(server: str, binary: list[str], tmp: Path, args: argparse.Namespace) -> dict[str, object]:
    flags = ["--snapshot-count", str(args.snapshot_count)]
    c = ProcessCluster(binary, 3, tmp / server, heartbeat_ms=100, election_ms=1000, extra_flags=flags)
    c.start()
    try:
        c.wait_healthy(60)
        eps = targets(c)
        load_s = await load(eps, args.keys, args.value_size, args.txn_ops)
        print(f"  {server}: loaded {args.keys:,} keys in {load_s:.1f} s (load {loadavg()})", flush=True)
        await asyncio.to_thread(c.wait_converged, 300)
        await asyncio.sleep(args.settle)
        probes = Probe()
        stop = asyncio.Event()
        task = asyncio.create_task(probe(eps, probes, stop))
        await asyncio.sleep(3)  # a baseline before the new member
        before = len(probes.latencies)
        new, catch_up = await asyncio.to_thread(add_member, c, args.learner)
        await asyncio.sleep(5)  # and after it caught up
        stop.set()
        await task
        log = c.members[new].log_path.read_text(errors="replace")
        leader_logs = "".join(m.log_path.read_text(errors="replace") for m in c.members[:3])
        sent = re.findall(r"sent snapshot \(index \d+\) to peer \S+, (\d+) bytes", leader_logs)
        lats = probes.latencies[before:]
        terms = {t for _, _, t in probes.leaders}
        return {
            "server": server,
            "keys": args.keys,
            "load_s": round(load_s, 1),
            "catch_up_s": round(catch_up, 1),
            "snapshot_bytes": int(sent[-1]) if sent else None,
            # minietcd logs "raft: applied snapshot", etcd "applied incoming snapshot".
            "applied_snapshot": "applied snapshot" in log or "applied incoming snapshot" in log,
            "requests": len(lats),
            "max_ms": round(max(lats) * 1000, 1) if lats else None,
            "p99_ms": round(statistics.quantiles(lats, n=100)[98] * 1000, 1) if len(lats) > 100 else None,
            "over_1s": sum(1 for x in lats if x > 1.0),
            "errors": probes.errors,
            "leader_changes": max(0, len(terms) - 1),
            "rss_new_member_mib": _rss(c, new),
            "load": loadavg(),
        }
    finally:
        c.close()


def _rss(c: ProcessCluster, i: int) -> float | None:
    proc = c.members[i].proc
    if proc is None:
        return None
    for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--value-size", type=int, default=128)
    ap.add_argument("--servers", default="minietcd")
    ap.add_argument("--snapshot-count", type=int, default=2000)
    ap.add_argument("--txn-ops", type=int, default=TXN_OPS, help="puts per loading transaction")
    ap.add_argument("--learner", action="store_true", help="add the new member as a learner")
    ap.add_argument("--settle", type=float, default=5.0, help="idle seconds after loading")
    args = ap.parse_args()
    binaries = {"etcd": etcd_binary(), "minietcd": minietcd_binary()}
    print(f"load average at start: {loadavg()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="minietcd-snapstall-") as d:
        for server in args.servers.split(","):
            result = asyncio.run(run(server, binaries[server], Path(d), args))
            print(result, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
