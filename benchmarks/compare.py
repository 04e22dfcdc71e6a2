"""Every row of issue 15's table, against real etcd 3.4 and minietcd in one go, side by side.

    python3 benchmarks/compare.py            # the full table (about 5 minutes)
    python3 benchmarks/compare.py --quick    # a smaller version of every row (about a minute)
    python3 benchmarks/compare.py --servers minietcd --rows put1,restart --json out.json

Both servers are started the same way (tests/cluster/harness.ProcessCluster: etcd's static
bootstrap flags, heartbeat 100 ms, election 1000 ms, data in a temporary directory) and driven by
the same load generator: this process, Python on raw gRPC stubs (minietcd/bench's closed-loop
runner). The issue's figures came from etcd's Go benchmark tool, which is not available here;
on 2 shared cores the Python generator takes a large share of the CPU itself, so beside every
throughput the table gives the CPU time the servers spent per request (from /proc: user +
system of every member), which moves much less with the machine's other load. The load average
is printed beside each row. Only ratios from the same run mean anything.

Rows (the issue's names):

- ``put3``: puts, 3 members, 64 clients over 8 connections, 256-byte values on random keys among
  10,000, for ``--seconds``;
- ``get3``: linearizable gets of one key, 3 members, 64 clients over 8 connections;
- ``idle3``: RSS of one member of 3 (the median member) after the cluster has idled 5 s, each
  member's ``/health`` asked once on its client URL first, as a health probe does (a member
  only ever asked over gRPC loads no HTTP server: that figure is printed beside it);
- ``failover``: kill -9 the leader, time until the next write succeeds on another member;
- ``put1``: puts, 1 member, 64 clients, 100,000 distinct keys (each written once), 256 B;
- ``rss_loaded``: RSS of that member right after;
- ``restart``: kill -9 it, start it again: time from start to its first linearizable read;
- ``rss_restart``: RSS 2 s after that restart.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from minietcd.api.etcdserverpb import rpc_pb2
from minietcd.api.etcdserverpb import rpc_pb2_grpc as _rpc_grpc_untyped
from minietcd.bench.runner import Budget, Request, run_clients
from tests.cluster.harness import ProcessCluster, etcd_binary, minietcd_binary

# The generated gRPC stubs are untyped; use them through Any.
rpc_pb2_grpc: Any = _rpc_grpc_untyped
#: The checkout this script is in (its minietcd is the one measured).
REPO = Path(__file__).resolve().parents[1]
ROWS = ("put3", "get3", "idle3", "failover", "put1", "rss_loaded", "restart", "rss_restart")
#: (label, goal text, goal test on the ratio minietcd/etcd, unit, higher is better)
SPEC: dict[str, tuple[str, str, Callable[[float], bool], str]] = {
    "put3": ("puts, 3 members, 64 clients / 8 conns, 256 B", ">= 0.5", lambda r: r >= 0.5, "/s"),
    "get3": ("linearizable gets, 3 members, 64 clients", ">= 0.5", lambda r: r >= 0.5, "/s"),
    "idle3": ("idle RSS, one member of 3", "<= 2x", lambda r: r <= 2.0, "MiB"),
    "failover": ("leader failover (kill -9 to next write)", "keep", lambda r: r <= 1.3, "s"),
    "put1": ("puts, 1 member, 64 clients, {keys:,} distinct keys", ">= 0.4", lambda r: r >= 0.4, "/s"),
    "rss_loaded": ("RSS after loading {keys:,} keys", "<= 1.5x", lambda r: r <= 1.5, "MiB"),
    "restart": ("restart to healthy, 1 member holding {keys:,} keys", "<= 3x", lambda r: r <= 3.0, "s"),
    "rss_restart": ("RSS after that restart", "<= 1.5x", lambda r: r <= 1.5, "MiB"),
}
HEARTBEAT_MS, ELECTION_MS = 100, 1000
VALUE = os.urandom(256)


@dataclass(slots=True)
class Cell:
    value: float
    cpu_us: float | None = None  # server CPU per request, microseconds
    load: float = 0.0  # 1-minute load average when the row finished
    note: str = ""


@dataclass(slots=True)
class Results:
    cells: dict[str, dict[str, Cell]] = field(default_factory=dict)  # row -> server -> cell

    def put(self, row: str, server: str, cell: Cell) -> None:
        self.cells.setdefault(row, {})[server] = cell
        cpu = f", {cell.cpu_us:.0f} us CPU/op" if cell.cpu_us is not None else ""
        print(
            f"  {server:9} {row:12} {cell.value:10.2f}{cpu}  (load {cell.load:.1f}) {cell.note}", flush=True
        )


# --- measuring processes ---------------------------------------------------------------------


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def cpu_seconds(pids: list[int]) -> float:
    """user + system CPU seconds of the processes (and their reaped children)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def targets(c: ProcessCluster) -> list[str]:
    """host:port of every member's client URL (what gRPC dials)."""
    return [f"127.0.0.1:{m.client_port}" for m in c.members]


def pids(c: ProcessCluster) -> list[int]:
    return [m.proc.pid for m in c.members if m.proc is not None]


# --- load ------------------------------------------------------------------------------------


async def drive(
    endpoints: list[str],
    clients: int,
    conns: int,
    make: Callable[[rpc_pb2_grpc.KVStub], Request],
    budget: Budget,
) -> tuple[int, float, dict[str, int]]:
    """(successful requests, seconds, errors) of a closed-loop run."""
    options = [("grpc.use_local_subchannel_pool", 1)]
    channels = [
        grpc.aio.insecure_channel(endpoints[i % len(endpoints)], options=options) for i in range(conns)
    ]
    stubs = [rpc_pb2_grpc.KVStub(ch) for ch in channels]
    try:
        rec = await run_clients([make(stubs[i % conns]) for i in range(clients)], budget)
    finally:
        for ch in channels:
            await ch.close()
    return len(rec.lats), rec.ended - rec.started, rec.errors


def measured(
    c: ProcessCluster, endpoints: list[str], make: Callable[[rpc_pb2_grpc.KVStub], Request], budget: Budget
) -> tuple[float, float, str]:
    """(requests/s, server CPU us per request, note) of one closed-loop run of 64 clients / 8 conns."""
    before = cpu_seconds(pids(c))
    done, secs, errors = asyncio.run(drive(endpoints, 64, 8, make, budget))
    cpu = cpu_seconds(pids(c)) - before
    note = f"{sum(errors.values())} errors: {errors}" if errors else ""
    return done / secs, cpu / max(done, 1) * 1e6, note


def random_puts(space: int) -> Callable[[rpc_pb2_grpc.KVStub], Request]:
    import random

    def make(stub: rpc_pb2_grpc.KVStub) -> Request:
        rng = random.Random()
        return lambda: stub.Put(
            rpc_pb2.PutRequest(key=b"bench/%05d" % rng.randrange(space), value=VALUE), timeout=10
        )

    return make


def distinct_puts(n: int) -> Callable[[rpc_pb2_grpc.KVStub], Request]:
    counter = iter(range(n))

    def make(stub: rpc_pb2_grpc.KVStub) -> Request:
        return lambda: stub.Put(rpc_pb2.PutRequest(key=b"key/%08d" % next(counter), value=VALUE), timeout=10)

    return make


def gets(stub: rpc_pb2_grpc.KVStub) -> Request:
    return lambda: stub.Range(rpc_pb2.RangeRequest(key=b"bench/get"), timeout=10)


# --- rows ------------------------------------------------------------------------------------


def cluster(binary: list[str], size: int, tmp: Path, *flags: str) -> ProcessCluster:
    c = ProcessCluster(
        binary, size, tmp, heartbeat_ms=HEARTBEAT_MS, election_ms=ELECTION_MS, extra_flags=list(flags)
    )
    c.start()
    c.wait_healthy(60)
    return c


def three_member_rows(
    server: str, binary: list[str], tmp: Path, args: argparse.Namespace, res: Results
) -> None:
    c = cluster(binary, 3, tmp / f"{server}-3")
    try:
        eps = targets(c)
        if "idle3" in args.rows:
            time.sleep(5)
            grpc_only = statistics.median(rss_mib(p) for p in pids(c))
            for m in c.members:
                with urllib.request.urlopen(m.client_url + "/health", timeout=10) as r:
                    r.read()
            time.sleep(5)
            rss = statistics.median(rss_mib(p) for p in pids(c))
            res.put("idle3", server, Cell(rss, load=loadavg(), note=f"{grpc_only:.2f} MiB before /health"))
        if "put3" in args.rows:
            measured(c, eps, random_puts(10_000), Budget(float("inf"), time.monotonic() + 2))  # warm-up
            rps, cpu, note = measured(
                c, eps, random_puts(10_000), Budget(float("inf"), time.monotonic() + args.seconds)
            )
            res.put("put3", server, Cell(rps, cpu, loadavg(), note))
        if "get3" in args.rows:
            c.etcdctl_ok("put", "bench/get", "x")
            rps, cpu, note = measured(c, eps, gets, Budget(float("inf"), time.monotonic() + args.seconds))
            res.put("get3", server, Cell(rps, cpu, loadavg(), note))
        if "failover" in args.rows:
            times = [failover(c) for _ in range(args.failovers)]
            res.put("failover", server, Cell(statistics.median(times), load=loadavg(), note=f"runs {times}"))
    finally:
        c.close()


def failover(c: ProcessCluster) -> float:
    """kill -9 the leader; seconds until a write succeeds on one of the others."""
    leader = c.wait_healthy(60)
    others = [i for i in range(len(c.members)) if i != leader]
    channels = [grpc.insecure_channel(targets(c)[i]) for i in others]
    stubs = [rpc_pb2_grpc.KVStub(ch) for ch in channels]
    c.kill(leader)
    killed = time.monotonic()
    took = float("nan")
    while time.monotonic() - killed < 30:
        for stub in stubs:
            try:
                stub.Put(rpc_pb2.PutRequest(key=b"bench/failover", value=b"x"), timeout=0.5)
                took = time.monotonic() - killed
                break
            except grpc.RpcError:
                continue
        if took == took:  # not NaN: done
            break
    for ch in channels:
        ch.close()
    c.start_member(leader)
    c.wait_healthy(60)
    return round(took, 2)


def one_member_rows(
    server: str, binary: list[str], tmp: Path, args: argparse.Namespace, res: Results
) -> None:
    c = cluster(binary, 1, tmp / f"{server}-1")
    try:
        eps = targets(c)
        if "put1" in args.rows:
            rps, cpu, note = measured(c, eps, distinct_puts(args.keys), Budget(args.keys))
            res.put("put1", server, Cell(rps, cpu, loadavg(), note))
        if "rss_loaded" in args.rows:
            res.put("rss_loaded", server, Cell(rss_mib(pids(c)[0]), load=loadavg()))
        if "restart" in args.rows or "rss_restart" in args.rows:
            took = restart(c)
            res.put("restart", server, Cell(took, load=loadavg()))
            time.sleep(2)
            res.put("rss_restart", server, Cell(rss_mib(pids(c)[0]), load=loadavg()))
    finally:
        c.close()


def restart(c: ProcessCluster) -> float:
    """kill -9 member 0 and start it: seconds from the start to a linearizable read."""
    c.kill(0)
    started = time.monotonic()
    c.start_member(0)
    with grpc.insecure_channel(targets(c)[0]) as ch:
        stub = rpc_pb2_grpc.KVStub(ch)
        while time.monotonic() - started < 120:
            try:
                stub.Range(rpc_pb2.RangeRequest(key=b"health"), timeout=0.5)
                return round(time.monotonic() - started, 2)
            except grpc.RpcError:
                time.sleep(0.02)
    raise RuntimeError("the member did not come back within 120 s")


# --- report ----------------------------------------------------------------------------------


def table(res: Results, args: argparse.Namespace) -> str:
    lines = [
        "| workload | etcd 3.4 | minietcd | ratio | goal | met | etcd CPU/op | minietcd CPU/op | load |",
        "| --- | ---: | ---: | ---: | ---: | :---: | ---: | ---: | ---: |",
    ]
    for row in ROWS:
        if row not in res.cells:
            continue
        label, goal, ok, unit = SPEC[row]
        e, m = res.cells[row].get("etcd"), res.cells[row].get("minietcd")

        def fmt(cell: Cell | None, unit: str = unit) -> str:
            if cell is None:
                return "-"
            return f"{cell.value:,.0f}{unit}" if unit == "/s" else f"{cell.value:.2f} {unit}"

        ratio = met = "-"
        if e is not None and m is not None and e.value > 0:
            r = m.value / e.value
            ratio = f"{r:.2f}" if unit == "/s" else f"{r:.2f}x"
            met = "yes" if ok(r) else "no"

        def cpu(cell: Cell | None) -> str:
            return f"{cell.cpu_us:.0f} us" if cell is not None and cell.cpu_us is not None else ""

        loads = "/".join(f"{cell.load:.1f}" for cell in (e, m) if cell is not None)
        lines.append(
            f"| {label.format(keys=args.keys)} | {fmt(e)} | {fmt(m)} | {ratio} | {goal} | {met} "
            f"| {cpu(e)} | {cpu(m)} | {loads} |"
        )
    return "\n".join(lines)


def settle(seconds: float = 3.0) -> None:
    """Write back what the previous rows left dirty, then pause: each group of rows starts on
    a machine that is not still flushing the last one's fsynced files (measured: a server's
    put1 took 30-50 us more CPU per put right after the other server's rows)."""
    os.sync()
    time.sleep(seconds)


def use_this_checkout() -> Path:
    """Make the members run this checkout's minietcd, compiled as ``pip install`` compiles it,
    and return where it is. Members start with ``python -m minietcd.server``, which would
    otherwise import whatever minietcd the environment has installed (an editable install of
    another clone is easy to leave behind), so this checkout goes first on their PYTHONPATH.
    Compiled, because a shell with PYTHONDONTWRITEBYTECODE, as some containers set, would
    otherwise measure each member compiling every module at its start: about 0.9 MiB more idle
    memory, slower restarts."""
    import compileall

    import minietcd

    package = Path(minietcd.__file__).parent
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    compileall.compile_dir(package, quiet=1)
    return package


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes: about a minute for both servers")
    ap.add_argument("--servers", default="etcd,minietcd")
    ap.add_argument("--rows", default=",".join(ROWS))
    ap.add_argument("--seconds", type=float, default=None, help="length of the put3/get3 runs")
    ap.add_argument("--keys", type=int, default=None, help="distinct keys of put1 (and the restart rows)")
    ap.add_argument("--failovers", type=int, default=None)
    ap.add_argument("--json", default="", help="also write the figures to this file")
    args = ap.parse_args()
    args.rows = set(args.rows.split(","))
    args.seconds = args.seconds or (3.0 if args.quick else 10.0)
    args.keys = args.keys or (10_000 if args.quick else 100_000)
    args.failovers = args.failovers or (1 if args.quick else 3)
    binaries = {"etcd": etcd_binary(), "minietcd": minietcd_binary()}
    package = use_this_checkout()
    res = Results()
    print(f"load average at start: {Path('/proc/loadavg').read_text().strip()}")
    print(f"minietcd measured: {package}")
    git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    print(f"commit: {git.stdout.strip()}")
    with tempfile.TemporaryDirectory(prefix="minietcd-compare-") as d:
        for server in args.servers.split(","):
            print(f"{server}:", flush=True)
            if args.rows & {"idle3", "put3", "get3", "failover"}:
                settle()
                three_member_rows(server, binaries[server], Path(d), args, res)
            if args.rows & {"put1", "rss_loaded", "restart", "rss_restart"}:
                settle()
                one_member_rows(server, binaries[server], Path(d), args, res)
    print(f"load average at end: {Path('/proc/loadavg').read_text().strip()}")
    print()
    print(table(res, args))
    if args.json:
        out = {row: {s: dataclasses.asdict(c) for s, c in cells.items()} for row, cells in res.cells.items()}
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    raise SystemExit(main())
