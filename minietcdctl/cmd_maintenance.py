"""snapshot save / status / restore, alarm list / disarm, defrag (etcdctl's
snapshot/alarm/defrag_command.go). ``snapshot status`` and ``restore`` work offline on a file;
``restore`` writes a minietcd data dir (see :mod:`minietcd.etcdutl.restore`)."""

from __future__ import annotations

import math
import sys

from minietcd.client.errors import error_message
from minietcd.errors import ConfigError, SnapshotFileError
from minietcd.etcdutl import RestoreConfig, SnapshotStatus, restore, snapshot_file_status
from minietcd.golang import humanize_bytes
from minietcdctl.cmd_cluster import endpoints_from_cluster
from minietcdctl.common import EXIT_BAD_ARGS, EXIT_BAD_FEATURE, EXIT_ERROR, EXIT_INTERRUPTED, Ctl
from minietcdctl.flags import Command, Exit, ExitError, Flag, Invocation
from minietcdctl.gofmt import json_dumps, render_table
from minietcdctl.printers import write


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


def _print_db_status(fmt: str, st: SnapshotStatus) -> None:
    """etcdctl's DBStatus printers (simple, fields, json, table; protobuf is refused)."""
    row = [f"{st.hash:x}", str(st.revision), str(st.total_key), humanize_bytes(st.total_size)]
    if fmt == "simple":
        write(", ".join(row) + "\n")
    elif fmt == "fields":
        write(f'"Hash" : {st.hash}\n"Revision" : {st.revision}\n')
        write(f'"Keys" : {st.total_key}\n"Size" : {st.total_size}\n')
    elif fmt == "json":
        doc = {"hash": st.hash, "revision": st.revision, "totalKey": st.total_key, "totalSize": st.total_size}
        write(json_dumps(doc) + "\n")
    elif fmt == "table":
        write(render_table(["hash", "revision", "total keys", "total size"], [row]))
    else:
        raise ExitError(EXIT_BAD_FEATURE, f"{fmt} not supported as output format")


async def snapshot_status_command(inv: Invocation) -> None:
    if len(inv.args) != 1:
        raise ExitError(EXIT_BAD_ARGS, "snapshot status requires exactly one argument")
    printer = Ctl(inv).printer  # etcdctl's initDisplayFromCmd: exit 4 for an unknown -w
    try:
        st = snapshot_file_status(inv.args[0])
    except SnapshotFileError as e:
        raise ExitError(EXIT_ERROR, str(e)) from None
    _print_db_status(printer.fmt, st)


async def snapshot_restore_command(inv: Invocation) -> None:
    if len(inv.args) != 1:
        raise ExitError(EXIT_BAD_ARGS, "snapshot restore requires exactly one argument")
    cfg = RestoreConfig(
        snapshot_path=inv.args[0],
        name=inv["name"],
        data_dir=inv["data-dir"],
        wal_dir=inv["wal-dir"],
        peer_urls=inv["initial-advertise-peer-urls"],
        initial_cluster=inv["initial-cluster"],
        initial_cluster_token=inv["initial-cluster-token"],
        skip_hash_check=inv["skip-hash-check"],
    )
    try:
        restore(cfg)
    except (ConfigError, SnapshotFileError) as e:
        raise ExitError(EXIT_ERROR, str(e)) from None


async def alarm_disarm_command(inv: Invocation) -> None:
    if inv.args:
        raise ExitError(EXIT_BAD_ARGS, "alarm disarm command accepts no arguments")
    ctl = Ctl(inv)
    c = ctl.client()
    resp = await ctl.call(c.alarm_disarm(timeout=ctl.command_timeout))
    ctl.printer.alarm(resp.raw)


async def alarm_list_command(inv: Invocation) -> None:
    if inv.args:
        raise ExitError(EXIT_BAD_ARGS, "alarm list command accepts no arguments")
    ctl = Ctl(inv)
    c = ctl.client()
    resp = await ctl.call(c.alarm_list(timeout=ctl.command_timeout))
    ctl.printer.alarm(resp.raw)


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
    if failures:
        raise Exit(EXIT_ERROR)


_RESTORE_FLAGS = [
    Flag("data-dir", "string", "", "Path to the data directory"),
    Flag("wal-dir", "string", "", "Path to the WAL directory (use --data-dir if none given)"),
    Flag("initial-cluster", "string", "default=http://localhost:2380",
         "Initial cluster configuration for restore bootstrap"),
    Flag("initial-cluster-token", "string", "etcd-cluster",
         "Initial cluster token for the etcd cluster during restore bootstrap"),
    Flag("initial-advertise-peer-urls", "string", "http://localhost:2380",
         "List of this member's peer URLs to advertise to the rest of the cluster"),
    Flag("name", "string", "default", "Human-readable name for this member"),
    Flag("skip-hash-check", "bool", False,
         "Ignore snapshot integrity hash value (required if copied from data directory)"),
]  # fmt: skip


def commands() -> list[Command]:
    snapshot = Command("snapshot <subcommand>", "Manages etcd node snapshots")
    snapshot.add(
        Command("save <filename>", "Stores an etcd node backend snapshot to a given file", snapshot_save_command),  # noqa: E501
        Command("restore <filename> [options]", "Restores an etcd member snapshot to an etcd directory",
                snapshot_restore_command, flags=_RESTORE_FLAGS),
        Command("status <filename>", "Gets backend snapshot status of a given file", snapshot_status_command,
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
