"""A/B: minietcd variants on issue 15's ``put1`` row, in alternated rounds, member pinned.

    python3 benchmarks/ab.py [--keys 20000] [--rounds 4] [--no-pin] VARIANT VARIANT...

A variant is a name, then optionally ``KEY=VALUE`` environment settings, a checkout to run
(``@PATH``) and extra server flags, in one argument:

    python3 benchmarks/ab.py main "other @/work/wt/other"
    python3 benchmarks/ab.py h2grpc "grpcio MINIETCD_GRPC_ENGINE=grpcio"
    python3 benchmarks/ab.py "loop MINIETCD_GRPC_ENGINE=grpcio" \
        "direct MINIETCD_GRPC_ENGINE=grpcio --listen-client-http-urls http://127.0.0.1:23790"

Each round starts one fresh single member per variant, in turn, and writes ``--keys`` distinct
keys with compare.py's load (64 clients over 8 connections); it prints puts/s and the member's
CPU per put, then the medians. By default the member runs on CPU 1 and the load generator on
CPU 0 (``taskset``): the member then has one core to itself and its puts/s is its CPU per put
inverted, so the load generator's share of the machine no longer moves the figures; the
machine's own variations still do (3-8% between rounds in one run, 13-30% in others:
docs/benchmarks.md, phase 6), so an effect of a few percent needs several runs. That suits
comparing minietcd with itself, not with etcd, whose Go runtime would use both cores:
compare.py stays the table beside etcd. Nothing here is a test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import compare
from minietcd.bench.runner import Budget
from tests.cluster.harness import minietcd_binary


@dataclass(slots=True)
class Variant:
    name: str
    env: dict[str, str] = field(default_factory=dict)
    checkout: str = ""
    flags: list[str] = field(default_factory=list)
    figures: list[tuple[float, float]] = field(default_factory=list)

    @classmethod
    def parse(cls, spec: str) -> Variant:
        name, *rest = spec.split()
        v = cls(name)
        for token in rest:
            if token.startswith("@"):
                v.checkout = token[1:]
            elif "=" in token and not token.startswith("-") and not v.flags:
                key, _, value = token.partition("=")
                v.env[key] = value
            else:
                v.flags.append(token)
        return v

    def binary(self, pin: bool) -> list[str]:
        env = dict(self.env)
        if self.checkout:  # its minietcd first on the path, as compare.py does for its own
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [self.checkout, os.environ.get("PYTHONPATH")]))
        prefix = ["taskset", "-c", "1"] if pin else []
        return [*prefix, "env", *(f"{k}={v}" for k, v in env.items()), *minietcd_binary()]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("variants", nargs="+")
    ap.add_argument("--keys", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--no-pin", action="store_true", help="leave the member and the load unpinned")
    args = ap.parse_args()
    pin = not args.no_pin and (os.cpu_count() or 1) >= 2
    if pin:
        os.sched_setaffinity(0, {0})  # the load generator (this process) on CPU 0
    variants = [Variant.parse(s) for s in args.variants]
    compare.use_this_checkout()
    for v in variants:  # compiled, as compare.py compiles its own
        if v.checkout:
            import compileall

            compileall.compile_dir(Path(v.checkout) / "minietcd", quiet=1)
    with tempfile.TemporaryDirectory(prefix="minietcd-ab-") as d:
        for r in range(args.rounds):
            order = variants if r % 2 == 0 else variants[::-1]
            for v in order:
                compare.settle(2)
                c = compare.cluster(v.binary(pin), 1, Path(d) / f"{v.name}-{r}", *v.flags)
                try:
                    rate, cpu, note = compare.measured(
                        c, compare.targets(c), compare.distinct_puts(args.keys), Budget(args.keys)
                    )
                finally:
                    c.close()
                v.figures.append((rate, cpu))
                line = f"round {r + 1}  {v.name:12s} {rate:8,.0f} puts/s  {cpu:6.0f} us CPU/put  {note}"
                print(line, flush=True)
    print()
    for v in variants:
        rates, cpus = [f[0] for f in v.figures], [f[1] for f in v.figures]
        print(
            f"{v.name:12s} median {statistics.median(rates):8,.0f} puts/s"
            f" ({min(rates):,.0f}-{max(rates):,.0f})"
            f"  {statistics.median(cpus):6.0f} us CPU/put ({min(cpus):.0f}-{max(cpus):.0f})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
