"""minietcdctl: etcdctl 3.4's command line on :mod:`minietcd.client`.

Same commands, flags, environment variables (``ETCDCTL_ENDPOINTS``, ``ETCDCTL_WRITE_OUT``,
...), output formats and exit codes as etcdctl 3.4 (API v3), so scripts written for one run
with the other. Errors are one line on stderr (``Error: etcdserver: ...``), never a traceback.

    python -m minietcdctl --endpoints=127.0.0.1:2379 put foo bar
    python -m minietcdctl get foo -w json
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Sequence
from typing import NoReturn

from minietcd.client.errors import error_message
from minietcdctl import (
    cmd_auth,
    cmd_bench,
    cmd_check,
    cmd_cluster,
    cmd_concurrency,
    cmd_kv,
    cmd_lease,
    cmd_maintenance,
    cmd_mirror,
    cmd_watch,
)
from minietcdctl.common import EXIT_ERROR, GLOBAL_FLAGS
from minietcdctl.flags import (
    API_VERSION,
    ETCD_VERSION,
    Command,
    Exit,
    ExitError,
    FlagError,
    Invocation,
    UnknownCommand,
    apply_env,
    find_command,
    parse_flags,
)
from minietcdctl.printers import write


async def version_command(inv: Invocation) -> None:
    write(f"etcdctl version: {ETCD_VERSION}\nAPI version: {API_VERSION}\n")


def _unsupported(name: str) -> Command:
    async def run(inv: Invocation) -> None:
        raise ExitError(EXIT_ERROR, f"{inv.command.path.split(' ', 1)[1]} is not supported by minietcdctl")

    return Command(name, "", run)


# Commands etcdctl has that minietcdctl lists but does not implement (v2 migration, ...).
_STUBS: dict[str, list[tuple[str, str]]] = {
    "check <subcommand>": [
        ("datascale [options]",
         "Check the memory usage of holding data for different workloads on a given server endpoint."),
    ],
    "completion": [
        ("bash", "Generate the autocompletion script for bash"),
        ("fish", "Generate the autocompletion script for fish"),
        ("powershell", "Generate the autocompletion script for powershell"),
        ("zsh", "Generate the autocompletion script for zsh"),
    ],
}  # fmt: skip
_STUB_SHORTS = {
    "check": "commands for checking properties of the etcd cluster",
    "completion": "Generate the autocompletion script for the specified shell",
}


def build_root() -> Command:
    root = Command("etcdctl", "A simple command line client for etcd3.", persistent=list(GLOBAL_FLAGS))
    root.add(*cmd_kv.commands())
    root.add(*cmd_lease.commands(), *cmd_cluster.commands(), *cmd_maintenance.commands())
    root.add(*cmd_watch.commands(), *cmd_concurrency.commands(), *cmd_auth.commands())
    root.add(Command("version", "Prints the version of etcdctl", version_command))
    root.add(Command("help [command]", "Help about any command", _help_command))
    for use, subs in _STUBS.items():
        group = Command(use, _STUB_SHORTS[use.split(" ", 1)[0]])
        for sub_use, short in subs:
            stub = _unsupported(sub_use)
            stub.short = short
            group.add(stub)
        root.add(group)
    check = root.find_child("check")
    assert check is not None  # registered just above
    check.add(*cmd_check.commands())
    root.add(*cmd_bench.commands())
    root.add(*cmd_mirror.commands())
    root.add(_named(_unsupported("migrate"), "Migrates keys in a v2 store to a mvcc store"))
    return root


def _named(cmd: Command, short: str) -> Command:
    cmd.short = short
    return cmd


async def _help_command(inv: Invocation) -> None:
    root = inv.command.root
    target = root
    for word in inv.args:
        child = target.find_child(word)
        if child is None:
            sys.stdout.write(f"Unknown help topic {inv.args!r}\n")
            target = root
            break
        target = child
    sys.stdout.write(target.usage())
    sys.stdout.flush()


def run(argv: Sequence[str] | None = None) -> int:
    """Run one command line; return the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    api = os.environ.pop("ETCDCTL_API", "")
    if api not in ("", "3"):
        sys.stderr.write(f"unsupported API version {api}\n")
        return EXIT_ERROR
    root = build_root()
    try:
        cmd, rest = find_command(root, args)
    except UnknownCommand as e:
        sys.stderr.write(f"Error: {e}\nRun 'etcdctl --help' for usage.\nError: {e}\n")
        return EXIT_ERROR
    try:
        values, changed, positional, at_dash = parse_flags(cmd, rest)
    except FlagError as e:
        sys.stderr.write(f"Error: {e}\n")
        sys.stderr.flush()
        sys.stdout.write(cmd.usage())
        sys.stdout.flush()
        sys.stderr.write(f"\nError: {e}\n")
        return EXIT_ERROR
    if values.get("help") or cmd.run is None:
        sys.stdout.write(cmd.usage())
        sys.stdout.flush()
        return 0
    inv = Invocation(cmd, positional, values, changed, args, at_dash)
    try:
        apply_env(inv, cmd.inherited_flags())
        asyncio.run(_run_command(inv))
    except ExitError as e:
        sys.stdout.flush()
        sys.stderr.write(f"Error: {e.message}\n")
        return e.code
    except Exit as e:
        sys.stdout.flush()
        return e.code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_ERROR
    except Exception as e:  # never a traceback: one line in etcd's wording
        sys.stdout.flush()
        sys.stderr.write(f"Error: {error_message(e)}\n")
        return EXIT_ERROR
    return 0


_HANDLES_SIGNALS = {"lock", "elect"}


async def _run_command(inv: Invocation) -> None:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None and inv.command.run is not None
    # SIGINT/SIGTERM cancel the command; commands that wait for them (watch, lock, elect,
    # keep-alive) turn the cancellation into their own clean exit.
    if inv.command.name in _HANDLES_SIGNALS:
        # lock and elect release what they hold on SIGINT/SIGTERM (etcdctl's signal.Notify).
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
    else:
        # Everything else dies of the signal at once, as etcdctl (Go, no handler) does.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)
    try:
        await inv.command.run(inv)
    except asyncio.CancelledError:
        raise Exit(EXIT_ERROR) from None


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Console entry point (``minietcdctl = "minietcdctl.main:main"``)."""
    code = run(argv)
    with contextlib.suppress(BrokenPipeError):
        sys.stdout.flush()
    sys.exit(code)
