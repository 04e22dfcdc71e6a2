"""check perf: etcdctl 3.4's ``check perf`` (ctlv3/command/check.go).

Refuses to run when the prefix already holds keys; writes for 60 s at the load level's rate
from its number of clients (one connection each, through ``minietcd.bench``) with a progress
bar on stderr; deletes the prefix (then optionally compacts and defragments); prints the
PASS/FAIL lines and exits 1 on FAIL, as etcdctl does.
"""

from __future__ import annotations

from minietcd.bench import checkperf
from minietcd.bench.progress import Progress
from minietcd.golang import quote
from minietcdctl.cmd_bench import connect
from minietcdctl.common import EXIT_BAD_FEATURE, EXIT_ERROR, EXIT_INVALID_INPUT, Ctl
from minietcdctl.flags import Command, Exit, ExitError, Flag, Invocation
from minietcdctl.printers import write

CLEANUP_TIMEOUT = 30.0


async def perf_command(inv: Invocation) -> None:
    load = checkperf.load_for(inv["load"])
    if load is None:
        raise ExitError(EXIT_BAD_FEATURE, f"unknown load option {inv['load']}")
    prefix: str = inv["prefix"]
    ctl = Ctl(inv)
    c = ctl.client()
    resp = await ctl.call(c.get(prefix, prefix=True, limit=1, timeout=load.duration))
    if resp.kvs:
        hint = f"Delete with etcdctl del --prefix {prefix} first"
        raise ExitError(EXIT_INVALID_INPUT, f"prefix {quote(prefix)} has keys. {hint}")
    pool = await connect(ctl, load.clients)
    progress = Progress(load.duration).start()
    try:
        rec = await checkperf.run(pool, load, prefix.encode(), progress)
    finally:
        await progress.finish()
        await pool.close()
    deleted = await ctl.call(c.delete(prefix, prefix=True, timeout=CLEANUP_TIMEOUT))
    if inv["auto-compact"]:
        rev = deleted.header.revision
        write(f"Compacting with revision {rev}\n")
        await ctl.call(c.compact(rev, physical=True, timeout=CLEANUP_TIMEOUT))
        write(f"Compacted with revision {rev}\n")
    if inv["auto-defrag"]:
        for ep in ctl.endpoints:
            write(f"Defragmenting {quote(ep)}\n")
            await ctl.call(c.defragment(endpoint=ep, timeout=CLEANUP_TIMEOUT))
            write(f"Defragmented {quote(ep)}\n")
    lines, ok = checkperf.verdict(rec.stats(), load.limit)
    write("".join(line + "\n" for line in lines))
    if not ok:
        raise Exit(EXIT_ERROR)


def commands() -> list[Command]:
    """``check perf`` (the ``check`` group itself and ``datascale`` are built in main.py)."""
    return [
        Command("perf [options]", "Check the performance of the etcd cluster", perf_command, flags=[
            Flag("load", "string", "s",
                 "The performance check's workload model. Accepted workloads: s(small), m(medium), l(large), xl(xLarge)"),  # noqa: E501
            Flag("prefix", "string", "/etcdctl-check-perf/",
                 "The prefix for writing the performance check's keys."),
            Flag("auto-compact", "bool", False, "Compact storage with last revision after test is finished."),
            Flag("auto-defrag", "bool", False, "Defragment storage after test is finished."),
        ]),
    ]  # fmt: skip
