"""Puts per second with auth on beside auth off, on one 3-member cluster, etcd beside minietcd.

    python3 benchmarks/auth_puts.py [--clients 64] [--conns 8] [--seconds 8] [--rounds 2]
                                    [--servers etcd,minietcd]

For each server: a 3-member cluster (tests/cluster/harness.py, heartbeat 100 ms, election
1000 ms), then alternating runs of ``--clients`` writers over ``--conns`` connections: auth off
(no token), then auth on (simple tokens, etcd's default: user ``bench`` with one role granting
READWRITE on the prefix ``bench/``; each connection logs in once and sends its token), repeated
``--rounds`` times so that the machine's other load falls on both alike. Writes are put_load's: 256-byte
values on random keys among 10,000 under ``bench/``. Prints puts/s, the members' CPU per put,
and the ratio on/off. Nothing here is a test: record the output in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import put_load
from benchmarks.put_load import Metadata
from minietcd.api.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from tests.cluster.harness import ETCDCTL, ProcessCluster, etcd_binary, minietcd_binary


async def load(eps: list[str], clients: int, conns: int, seconds: float, auth: bool) -> int:
    """put_load's writers; with ``auth``, each connection's puts carry a token of its own."""
    tokens: list[Metadata] = []
    for i in range(conns if auth else 0):
        async with grpc.aio.insecure_channel(eps[i % len(eps)]) as ch:
            resp = await rpc_pb2_grpc.AuthStub(ch).Authenticate(
                rpc_pb2.AuthenticateRequest(name="bench", password="benchpw"), timeout=10
            )
        tokens.append((("token", resp.token),))
    rate, _ = await put_load.load(eps, clients, conns, seconds, 256, tokens)
    return rate


def cpu_seconds(pids: list[int]) -> float:
    return sum(put_load.cpu_seconds(pid) for pid in pids)


def etcdctl(c: ProcessCluster, *args: str) -> None:
    r = subprocess.run([ETCDCTL, f"--endpoints={c.endpoint(0)}", *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"etcdctl {' '.join(args)}: {r.stdout}{r.stderr}")


def run(name: str, binary: list[str], args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        c = ProcessCluster(binary, 3, Path(tmp), heartbeat_ms=100, election_ms=1000)
        try:
            c.start()
            c.wait_healthy(60)
            eps = [c.endpoint(i).split("://")[-1] for i in range(3)]
            pids = [m.proc.pid for m in c.members if m.proc is not None]
            for a in (("user", "add", "root:rootpw"), ("user", "add", "bench:benchpw"),
                      ("role", "add", "bench"),
                      ("role", "grant-permission", "bench", "readwrite", "bench/", "--prefix"),
                      ("user", "grant-role", "bench", "bench")):  # fmt: skip
                etcdctl(c, *a)
            asyncio.run(load(eps, 8, 2, 2.0, False))  # warm-up
            figures: dict[bool, list[tuple[int, float]]] = {False: [], True: []}
            for _ in range(args.rounds):
                for on in (False, True):
                    etcdctl(c, *(("auth", "enable") if on else ("--user=root:rootpw", "auth", "disable")))
                    before, load_avg = cpu_seconds(pids), os.getloadavg()[0]
                    rate = asyncio.run(load(eps, args.clients, args.conns, args.seconds, on))
                    per_put = (cpu_seconds(pids) - before) / max(1, rate * args.seconds)
                    figures[on].append((rate, per_put))
                    print(f"{name}: auth {'on ' if on else 'off'} {rate:6,d} puts/s, "
                          f"{per_put * 1e6:5.0f} us CPU/put (load {load_avg:.1f})", flush=True)  # fmt: skip
            off = sum(r for r, _ in figures[False]) / args.rounds
            on_ = sum(r for r, _ in figures[True]) / args.rounds
            print(f"{name}: mean auth off {off:,.0f}/s, auth on {on_:,.0f}/s, on/off = {on_ / off:.2f}")
        finally:
            c.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--conns", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--servers", default="etcd,minietcd")
    args = ap.parse_args()
    binaries = {"etcd": etcd_binary, "minietcd": minietcd_binary}
    for name in args.servers.split(","):
        run(name, binaries[name](), args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
