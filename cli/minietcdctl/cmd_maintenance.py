"""snapshot save, alarm list / disarm, defrag (etcdctl's snapshot/alarm/defrag_command.go)."""

from __future__ import annotations

import math
import sys

from cli.minietcdctl.cmd_cluster import endpoints_from_cluster
from cli.minietcdctl.common import EXIT_BAD_ARGS, EXIT_ERROR, EXIT_INTERRUPTED, Ctl
from cli.minietcdctl.flags import Command, Exit, ExitError, Flag, Invocation
from cli.minietcdctl.printers import write
from minietcd.client.errors import error_message


async def snapshot_save_command(inv: Invocation) -> None:
    if len(inv.args) != 1:
        raise ExitError(EXIT_BAD_ARGS, "snapshot save expects one argument")
    ctl = Ctl(inv)
    _ = ctl.printer
    eps = ctl.endpoints
    if len(eps) != 1:
        raise ExitError(
            EXIT_INTERRUPTED,
            f"snapshot must be requested to one selected node, not multiple [{' '.join(eps)}]",
        )
    # Without an explicit --command-timeout, etcdctl puts no deadline on a snapshot.
    timeout = ctl.command_timeout if "command-timeout" in inv.changed else math.inf
    c = ctl.client()
    path = inv.args[0]
    await ctl.call(c.snapshot(path, endpoint=eps[0], timeout=timeout), EXIT_INTERRUPTED)
    write(f"Snapshot saved at {path}\n")
    await ctl.close()


async def alarm_disarm_command(inv: Invocation) -> None:
    if inv.args:
        raise ExitError(EXIT_BAD_ARGS, "alarm disarm command accepts no arguments")
    ctl = Ctl(inv)
    c = ctl.client()
    resp = await ctl.call(c.alarm_disarm(timeout=ctl.command_timeout))
    ctl.printer.alarm(resp.raw)
    await ctl.close()


async def alarm_list_command(inv: Invocation) -> None:
    if inv.args:
        raise ExitError(EXIT_BAD_ARGS, "alarm list command accepts no arguments")
    ctl = Ctl(inv)
    c = ctl.client()
    resp = await ctl.call(c.alarm_list(timeout=ctl.command_timeout))
    ctl.printer.alarm(resp.raw)
    await ctl.close()


async def defrag_command(inv: Invocation) -> None:
    if inv["data-dir"]:
        sys.stderr.write(
            f"Failed to defragment etcd data[{inv['data-dir']}] (defragmenting a data directory offline is not "  # noqa: E501
            "supported by minietcdctl)\n"
        )
        raise Exit(EXIT_ERROR)
    ctl = Ctl(inv)
    c = ctl.client()
    failures = 0
    for ep in await endpoints_from_cluster(ctl):
        try:
            await c.defragment(endpoint=ep, timeout=ctl.command_timeout)
        except Exception as e:
            sys.stderr.write(f"Failed to defragment etcd member[{ep}] ({error_message(e)})\n")
            failures += 1
        else:
            write(f"Finished defragmenting etcd member[{ep}]\n")
    await ctl.close()
    if failures:
        raise Exit(EXIT_ERROR)


async def _not_supported(inv: Invocation) -> None:
    raise ExitError(EXIT_ERROR, f"snapshot {inv.command.name} is not supported by minietcdctl")


def commands() -> list[Command]:
    snapshot = Command("snapshot <subcommand>", "Manages etcd node snapshots")
    snapshot.add(
        Command("save <filename>", "Stores an etcd node backend snapshot to a given file", snapshot_save_command),  # noqa: E501
        Command("restore <filename> [options]", "Restores an etcd member snapshot to an etcd directory",
                _not_supported),
        Command("status <filename>", "Gets backend snapshot status of a given file", _not_supported,
                long="When --write-out is set to simple, this command prints out comma-separated status lists for "  # noqa: E501
                "each endpoint.\nThe items in the lists are hash, revision, total keys, total size.\n"),
    )  # fmt: skip
    alarm = Command("alarm <subcommand>", "Alarm related commands")
    alarm.add(
        Command("disarm", "Disarms all alarms", alarm_disarm_command),
        Command("list", "Lists all alarms", alarm_list_command),
    )
    defrag = Command(
        "defrag", "Defragments the storage of the etcd members with given endpoints", defrag_command,
        flags=[Flag("data-dir", "string", "",
                    "Optional. If present, defragments a data directory not in use by etcd.")],
        persistent=[Flag("cluster", "bool", False, "use all endpoints from the cluster member list")],
    )  # fmt: skip
    return [snapshot, alarm, defrag]
