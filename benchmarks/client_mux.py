"""What the client URL's multiplexer costs gRPC: puts/s with and without it, in one run.

    python3 benchmarks/client_mux.py [--members 3] [--rounds 12] [--seconds 5] [--clients 64]
                                     [--conns 8] [--size 256] [--variants direct,mux-loop,h2grpc]

Starts one minietcd cluster per variant, side by side:

* ``direct``: started with ``--listen-client-http-urls`` (etcd 3.5's flag), so grpcio listens on
  the client URLs itself, exactly as before the multiplexer;
* ``mux-loop``: gRPC and HTTP on one client URL, gRPC connections forwarded to grpcio by
  asyncio protocols on the member's event loop (minietcd/server/clientmux.py), as an https URL's
  are (``MINIETCD_GRPC_ENGINE=grpcio`` for a plain one);
* ``mux-thread``: the same, but spliced with ``splice(2)`` in a thread of their own
  (``MINIETCD_SPLICE=thread``, minietcd/server/splicer.py, kept for this comparison);
* ``h2grpc``: the default, gRPC and HTTP on one client URL, gRPC connections served by the
  member's own engine (minietcd/server/h2grpc/), no grpcio on the way.

The same put load (benchmarks/put_load.py's: ``--clients`` writers over ``--conns`` connections
spread over the members, 256-byte values on random keys among 10,000) runs against each in turn,
``--rounds`` times, the order alternating. For each round it prints puts/s, the CPU the members
spent per put (every thread) and the CPU their *main threads* spent per put (the event loop: what
limits a member's throughput; the splicing thread is not in it); then, per variant, the median of
each and the median of its per-round ratios to ``direct`` (a round's variants run back to back,
so the machine's other load mostly cancels in the ratio). Nothing here is a test: record the
output in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.put_load import cpu_seconds, load
from tests.cluster.harness import ProcessCluster, free_ports, minietcd_binary


def main_thread_cpu(pid: int) -> float:
    """User + system CPU time of a process's main thread (its event loop)."""
    fields = Path(f"/proc/{pid}/task/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(cluster: ProcessCluster, args: argparse.Namespace) -> tuple[float, float, float]:
    """(puts/s, members' CPU seconds per put, their main threads' CPU seconds per put)."""
    eps = [cluster.endpoint(i).split("://")[-1] for i in range(cluster.size)]
    pids = [m.proc.pid for m in cluster.members if m.proc is not None]
    before = sum(cpu_seconds(pid) for pid in pids), sum(main_thread_cpu(pid) for pid in pids)
    rate, _lat = asyncio.run(load(eps, args.clients, args.conns, args.seconds, args.size))
    puts = max(1, rate * args.seconds)
    cpu = sum(cpu_seconds(pid) for pid in pids) - before[0]
    main = sum(main_thread_cpu(pid) for pid in pids) - before[1]
    return rate, cpu / puts, main / puts


def make_cluster(name: str, args: argparse.Namespace, tmp: Path) -> ProcessCluster:
    env: dict[str, str] | None = None if name == "h2grpc" else {"MINIETCD_GRPC_ENGINE": "grpcio"}
    if name == "mux-thread":
        env = {"MINIETCD_GRPC_ENGINE": "grpcio", "MINIETCD_SPLICE": "thread"}
    cluster = ProcessCluster(
        minietcd_binary(), args.members, tmp / name, heartbeat_ms=100, election_ms=1000, env=env
    )
    if name == "direct":  # HTTP on URLs of its own: grpcio listens on the client URLs
        http = {
            i: ["--listen-client-http-urls", f"http://127.0.0.1:{p}"]
            for i, p in enumerate(free_ports(args.members))
        }
        flags = cluster.flags
        cluster.flags = lambda i: [*flags(i), *http[i]]  # type: ignore[method-assign]  # the harness has no hook for per-member flags
    return cluster


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--members", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--conns", type=int, default=8)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--variants", default="direct,mux-loop,mux-thread,h2grpc")
    args = ap.parse_args()
    names = args.variants.split(",")
    results: dict[str, list[tuple[float, float, float]]] = {n: [] for n in names}
    with tempfile.TemporaryDirectory() as tmp:
        clusters = {n: make_cluster(n, args, Path(tmp)) for n in names}
        try:
            for c in clusters.values():
                c.start()
            for c in clusters.values():
                c.wait_healthy(60)
                measure(c, argparse.Namespace(**{**vars(args), "seconds": 2.0}))  # warm-up
            for r in range(args.rounds):
                for n in names if r % 2 == 0 else reversed(names):
                    rate, cpu, main = measure(clusters[n], args)
                    results[n].append((rate, cpu, main))
                    print(
                        f"round {r + 1:2d} {n:10s} {rate:6.0f} puts/s  CPU {cpu * 1e6:4.0f} us/put  "
                        f"main thread {main * 1e6:4.0f} us/put  load {os.getloadavg()[0]:.1f}",
                        flush=True,
                    )
        finally:
            for c in clusters.values():
                c.close()
    print(
        f"({args.members} member(s), {args.clients} clients, {args.conns} conns, {args.size} B values, "
        f"{args.rounds} rounds of {args.seconds:.0f} s)"
    )
    base = results.get("direct")
    for n, rows in results.items():
        med = [statistics.median(row[k] for row in rows) for k in range(3)]
        line = (
            f"median {n:10s} {med[0]:6.0f} puts/s  CPU {med[1] * 1e6:4.0f} us/put  "
            f"main thread {med[2] * 1e6:4.0f} us/put"
        )
        if base is not None and n != "direct":
            ratios = [
                statistics.median(row[k] / b[k] for row, b in zip(rows, base, strict=True)) for k in range(3)
            ]
            line += f"  | ratio to direct: puts/s {ratios[0]:.3f}, CPU {ratios[1]:.3f}, main {ratios[2]:.3f}"
        print(line)


if __name__ == "__main__":
    main()
