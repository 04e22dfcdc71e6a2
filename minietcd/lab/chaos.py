"""Chaos runs: a real lab cluster, concurrent clients, a seeded nemesis, then the checkers.

``run_chaos(options)`` (:class:`~minietcd.lab.chaos_options.ChaosOptions`) starts a cluster
(``minietcd.lab.cluster``), runs for ``duration`` seconds:

* **clients** and **watchers** (:mod:`.chaos_workload`): on each member, linearizable reads,
  puts and compare-and-set transactions over a few keys ``chaos/k0..``, and a watch on the
  prefix ``chaos/`` that resumes where its stream broke; every request is recorded with its
  invoke/complete instants and outcome (``ok``, ``fail`` or ``unknown``);
* a **nemesis** (:mod:`.chaos_nemesis`) that draws, from ``random.Random(seed)``, a fault among
  those enabled (partition, kill, pause, slow, leader-transfer, member-replace), holds it a
  while, undoes it.

At the end the nemesis heals everything, killed members are restarted, the cluster must become
healthy, every key is read once more from the leader, and the linearizability, watch and
durability checkers run. The final membership is checked too (``check_membership``: MemberList
holds every member, started, each replacement finished): a run that lost a member fails. The
report (:mod:`.chaos_report`) gives operations, faults, elections seen (``became leader`` in
the member logs), verdicts and checker time, and on failure the reason, the shrunk failing
sub-history and the seed that replays the schedule.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import grpc

from minietcd.api.etcdserverpb import rpc_pb2
from minietcd.api.etcdserverpb import rpc_pb2_grpc as _rpc_grpc_untyped
from minietcd.errors import LabError
from minietcd.lab import probe
from minietcd.lab.chaos_nemesis import Nemesis, sleep_until
from minietcd.lab.chaos_options import NEMESES, UNSAFE_READS_ENV, ChaosCluster, ChaosOptions, parse_nemeses
from minietcd.lab.chaos_report import ChaosResult, chaos_report, check_membership
from minietcd.lab.chaos_workload import PREFIX, Workload
from minietcd.lab.check import (
    FinalValue,
    check_durability,
    check_linearizability,
    check_watches,
    save_history,
    write_html_timeline,
)
from minietcd.lab.check.watch import prefix_range_end
from minietcd.lab.cluster import Cluster, ClusterSpec, Replacement
from minietcd.lab.compose import ComposeCluster
from minietcd.lab.labdir import exclusive
from minietcd.lab.web import chaos_view

# A chaos run in one import (the CLI and the tests import these from here).
__all__ = [
    "NEMESES",
    "UNSAFE_READS_ENV",
    "ChaosOptions",
    "ChaosResult",
    "check_membership",
    "count_elections",
    "parse_nemeses",
    "run_chaos",
]

rpc_pb2_grpc: Any = _rpc_grpc_untyped  # the generated stubs are untyped
_ELECTED = re.compile(r"became leader at term (\d+)")


@contextlib.contextmanager
def _member_env(unsafe: bool) -> Iterator[None]:
    """Members inherit the lab's environment (``Cluster.environment``): set the unsafe flag
    there for the members started inside this block, and take it away again."""
    saved = os.environ.get(UNSAFE_READS_ENV)
    if unsafe:
        os.environ[UNSAFE_READS_ENV] = "1"
    else:
        os.environ.pop(UNSAFE_READS_ENV, None)
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(UNSAFE_READS_ENV, None)
        else:
            os.environ[UNSAFE_READS_ENV] = saved


def count_elections(cluster: ChaosCluster) -> int:
    terms: set[int] = set()
    for m in cluster.members:
        for line in cluster.log_bytes(m.name).decode(errors="replace").splitlines():
            match = _ELECTED.search(line)
            if match:
                terms.add(int(match.group(1)))
    return len(terms)


def _final_read(
    cluster: ChaosCluster, keys: Sequence[str], timeout: float
) -> tuple[dict[str, FinalValue | None], int]:
    """Every key, read linearizably (retrying any member until ``timeout``)."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        for m in cluster.members:
            try:
                with grpc.insecure_channel(f"127.0.0.1:{m.client_port}") as ch:
                    kv = rpc_pb2_grpc.KVStub(ch)
                    resp = kv.Range(
                        rpc_pb2.RangeRequest(
                            key=PREFIX.encode(), range_end=prefix_range_end(PREFIX).encode()
                        ),
                        timeout=2.0,
                    )
            except grpc.RpcError as e:
                last = str(e)
                continue
            final: dict[str, FinalValue | None] = {k: None for k in keys}
            for item in resp.kvs:
                final[item.key.decode()] = FinalValue(item.value.decode(), int(item.mod_revision))
            return final, int(resp.header.revision)
        time.sleep(0.1)  # poll pacing, bounded by the deadline
    raise LabError(f"final read failed for {timeout:.0f}s: {last}")


async def _run_async(opts: ChaosOptions, cluster: ChaosCluster) -> tuple[Workload, Nemesis]:
    rng = random.Random(opts.seed)
    work = Workload(opts, cluster, rng)
    nemesis = Nemesis(opts, cluster, random.Random(rng.randrange(1 << 30)), work.t0)
    for note in nemesis.skipped:
        opts.log(f"note: {note}")
    tasks: list[asyncio.Task[None]] = []
    cid = 0
    for m in cluster.members:
        for _ in range(opts.clients_per_member):
            tasks.append(asyncio.create_task(work.client(cid, m.client_port)))
            cid += 1
    watchers = [asyncio.create_task(work.watcher(i, m.client_port)) for i, m in enumerate(cluster.members)]
    until = time.monotonic() + opts.duration
    try:
        await nemesis.run(work.stop, until)
        await sleep_until(work.stop, until)
        work.stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), opts.op_timeout + 10)
        opts.log("workload stopped; healing")
        await asyncio.to_thread(nemesis.heal_all)
        await asyncio.to_thread(cluster.wait_healthy, 60.0)
        # Let the watchers catch up with the store before they stop (poll, bounded).
        _, final_rev = await asyncio.to_thread(_final_read, cluster, work.keys, 30.0)
        deadline = time.monotonic() + 15.0
        while time.monotonic() < deadline:
            if all(w.end_revision >= final_rev for w in work.watches):
                break
            await asyncio.sleep(0.1)
    finally:
        work.stop.set()
        for t in [*tasks, *watchers]:
            t.cancel()
        await asyncio.gather(*tasks, *watchers, return_exceptions=True)
    return work, nemesis


def run_chaos(opts: ChaosOptions) -> ChaosResult:
    """One chaos run (see the module docstring); the cluster is always brought down."""
    log = opts.log
    spec = ClusterSpec(
        size=opts.size,
        heartbeat_ms=opts.heartbeat_ms,
        election_ms=opts.election_ms,
        extra_flags=("--snapshot-count", str(opts.snapshot_count)),
        ports=opts.ports,
    )
    if opts.backend == "compose" and opts.unsafe_local_reads:
        raise LabError("--unsafe-local-reads (a test of the checker) runs on local clusters only")
    with exclusive(Path(opts.lab_dir), "chaos"), _member_env(opts.unsafe_local_reads):
        if opts.unsafe_local_reads:
            log(f"WARNING: members run with {UNSAFE_READS_ENV}=1 (reads are NOT linearizable)")
        cluster: ChaosCluster
        if opts.backend == "compose":
            cluster = ComposeCluster.up(opts.lab_dir, spec, timeout=180.0)
        else:
            cluster = Cluster.up(opts.lab_dir, spec, timeout=90.0)
        recorder = chaos_view.BackgroundRecorder(opts.lab_dir).start() if opts.record else None
        try:
            log(
                f"{opts.size}-member cluster up in {cluster.state.lab_dir}; seed {opts.seed}; "
                f"nemeses {','.join(opts.nemeses) or 'none'}; {opts.duration:.0f}s"
            )
            work, nemesis = asyncio.run(_run_async(opts, cluster))
            final, final_rev = _final_read(cluster, work.keys, 30.0)
            elections = count_elections(cluster)
            final_members = _final_members(cluster, 30.0)
            expected_ids = {m.name: m.member_id for m in cluster.members}
            not_running = [m.name for m in cluster.members if cluster.process_state(m.name) != "running"]
            caught_up = _caught_up(cluster, nemesis.replacements)
        finally:
            if recorder is not None:
                recorder.stop()
            cluster.down()
    ops = work.recorder.close()
    log(f"checking {len(ops)} operations...")
    lin = check_linearizability(ops, timeout=opts.check_timeout)
    watch = check_watches(work.watches, ops=ops)
    dur = check_durability(ops, final, final_revision=final_rev)
    result = ChaosResult(
        opts,
        ops,
        nemesis.faults,
        nemesis.skipped,
        elections,
        lin,
        watch,
        dur,
        "",
        Path(opts.lab_dir),
        nemesis.replacements,
        final_members,
        expected_ids,
        not_running,
    )
    result.report = chaos_report(result, caught_up)
    if opts.history_json is not None:
        save_history(opts.history_json, ops)
    if opts.html is not None:
        write_html_timeline(opts.html, ops, result=lin, title=f"minietcd chaos, seed {opts.seed}")
    if opts.record is not None and recorder is not None:
        lines = result.report.splitlines()
        verdict = next((x for x in lines if x.startswith("verdict: ")), "")
        offset = chaos_view.monotonic_offset()
        section = chaos_view.chaos_section(lines[0], ops, nemesis.faults, work.t0, offset, verdict)
        chaos_view.save(opts.record, recorder, section)
    return result


def _caught_up(cluster: ChaosCluster, reps: Sequence[Replacement]) -> dict[int, int | None]:
    """``id(rep)`` -> index of the snapshot each fresh member caught up from (None: the log)."""
    out: dict[int, int | None] = {}
    for i, rep in enumerate(reps):
        if not rep.started:
            out[id(rep)] = None
            continue
        later = [r.log_offset for r in reps[i + 1 :] if r.name == rep.name]
        out[id(rep)] = cluster.caught_up_by_snapshot(rep, later[0] if later else None)
    return out


def _final_members(cluster: ChaosCluster, timeout: float) -> list[probe.ListedMember]:
    """MemberList once every member in it has started (published its name), bounded."""
    deadline = time.monotonic() + timeout
    listed: list[probe.ListedMember] = []
    while time.monotonic() < deadline:
        for m in cluster.members:
            with contextlib.suppress(probe.ProbeError):
                listed = probe.member_list(m.client_port)
                if len(listed) == len(cluster.members) and all(x.name for x in listed):
                    return listed
        time.sleep(0.2)  # poll pacing, bounded by the deadline
    return listed  # the report shows what is missing
