"""What the client URL's multiplexer costs gRPC: puts/s with and without it, in one run.

    python3 benchmarks/client_mux.py [--rounds 5] [--seconds 8] [--clients 64] [--conns 8]
                                     [--size 256] [--members 1]

Starts two minietcd clusters side by side: ``muxed`` serves gRPC and HTTP on its client URL
(the default: gRPC connections are spliced to grpcio through minietcd/server/clientmux.py), and
``direct`` is started with ``--listen-client-http-urls`` (etcd 3.5's flag), so grpcio listens on
its client URL itself, exactly as before the multiplexer. The same put load (benchmarks/
put_load.py's: ``--clients`` writers over ``--conns`` connections, random keys among 10,000)
runs against each in turn, alternating, ``--rounds`` times; the machine's other load hits both
alike. Prints every round, then the medians: puts/s and the server CPU per put.
Nothing here is a test: record the output in docs/benchmarks.md.
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


def measure(cluster: ProcessCluster, args: argparse.Namespace) -> tuple[int, float]:
    """(puts/s, server CPU seconds per put) of one load run."""
    eps = [cluster.endpoint(i).split("://")[-1] for i in range(cluster.size)]
    pids = [m.proc.pid for m in cluster.members if m.proc is not None]
    before = sum(cpu_seconds(pid) for pid in pids)
    rate, _lat = asyncio.run(load(eps, args.clients, args.conns, args.seconds, args.size))
    cpu = sum(cpu_seconds(pid) for pid in pids) - before
    return rate, cpu / max(1, rate * args.seconds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--conns", type=int, default=8)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--members", type=int, default=1)
    ap.add_argument(
        "--variants",
        default="direct,mux-loop,mux-thread",
        help="direct (--listen-client-http-urls), mux-loop, mux-thread (the splice strategy)",
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        clusters: dict[str, ProcessCluster] = {}
        for name in args.variants.split(","):
            env = {"MINIETCD_SPLICE": name.removeprefix("mux-")} if name.startswith("mux-") else None
            clusters[name] = ProcessCluster(
                minietcd_binary(), args.members, Path(tmp) / name, heartbeat_ms=100, election_ms=1000, env=env
            )
            if name == "direct":  # HTTP on URLs of its own: grpcio listens on the client URLs
                direct = clusters[name]
                http = {i: ["--listen-client-http-urls", f"http://127.0.0.1:{p}"]
                        for i, p in enumerate(free_ports(args.members))}  # fmt: skip
                original = direct.flags
                direct.flags = lambda i, o=original, h=http: [*o(i), *h[i]]  # type: ignore[method-assign,misc]
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in clusters}
        try:
            for c in clusters.values():
                c.start()
            for c in clusters.values():
                c.wait_healthy(60)
                measure(c, argparse.Namespace(**{**vars(args), "seconds": 2.0}))  # warm-up
            for r in range(args.rounds):
                order = list(clusters) if r % 2 == 0 else list(reversed(clusters))
                for name in order:
                    rate, cpu = measure(clusters[name], args)
                    results[name].append((rate, cpu))
                    print(f"round {r + 1} {name:10s} {rate:6d} puts/s  server CPU {cpu * 1e6:5.0f} us/put  "
                          f"load {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
        finally:
            for c in clusters.values():
                c.close()
    med: dict[str, tuple[float, float]] = {
        n: (statistics.median(r for r, _ in v), statistics.median(c for _, c in v))
        for n, v in results.items()
    }
    base = med.get("direct")
    for name, (med_rate, med_cpu) in med.items():
        vs = (
            f"  ({med_rate / base[0]:.3f} of direct's puts/s, {med_cpu / base[1]:.3f} of its CPU per put)"
            if base
            else ""
        )
        print(f"median {name:10s} {med_rate:8.0f} puts/s  server CPU {med_cpu * 1e6:5.0f} us/put{vs}")
    print(f"({args.members} member(s), {args.clients} clients, {args.conns} conns, {args.size} B values, "
          f"{args.rounds} rounds of {args.seconds:.0f} s)")  # fmt: skip


if __name__ == "__main__":
    main()
