"""watch, including interactive mode (``-i``) and a command run per event after ``--``
(etcdctl's watch_command.go, argument rules included)."""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass
from typing import Any

from minietcd.client import Client, Watch, WatchCanceledError, WatchCompactedError
from minietcd.client.errors import error_message
from minietcd.golang import quote
from minietcdctl.cmd_kv import argify
from minietcdctl.common import EXIT_BAD_ARGS, EXIT_ERROR, EXIT_INTERRUPTED, EXIT_INVALID_INPUT, Ctl
from minietcdctl.flags import Command, Exit, ExitError, Flag, FlagError, Invocation, parse_flags
from minietcdctl.printers import write

WATCH_FLAGS = [
    Flag("interactive", "bool", False, "Interactive mode", "i"),
    Flag("prefix", "bool", False, "Watch on a prefix if prefix is set"),
    Flag("rev", "int", 0, "Revision to start watching"),
    Flag("prev-kv", "bool", False, "get the previous key-value pair before the event happens"),
]

ERR_BAD_ARGS_NUM = "bad number of arguments"
ERR_CONFLICT_ENV = "bad number of arguments (found conflicting environment key)"
ERR_SEPARATOR = "bad number of arguments (found separator --, but no commands)"
ERR_INTERACTIVE = "args[0] must be 'watch' for interactive calls"


@dataclass
class WatchOptions:
    """etcdctl's package-level watch flags (interactive lines overwrite them)."""

    prefix: bool = False
    rev: int = 0
    prev_kv: bool = False

    def reset(self) -> None:
        self.prefix, self.rev, self.prev_kv = False, 0, False


class _ArgsError(Exception):
    pass


def _flagset() -> Command:
    return Command("watch", "", flags=list(WATCH_FLAGS))


def _parse(args: list[str]) -> tuple[dict[str, Any], list[str]]:
    try:
        values, _, positional, _ = parse_flags(_flagset(), args)
    except FlagError as e:
        raise _ArgsError(str(e)) from None
    return values, positional


def parse_watch_args(
    os_args: list[str],
    command_args: list[str],
    env_key: str,
    env_range: str,
    interactive: bool,
    opts: WatchOptions,
) -> tuple[list[str], list[str]]:
    """etcdctl's parseWatchArgs: the key (and range end) to watch, and the command to run."""
    raw = list(os_args)
    watch_args = list(command_args)
    if "watch" in raw:
        raw = raw[raw.index("watch") + 1 :]
    if interactive:
        if watch_args[0] != "watch":
            opts.reset()
            raise _ArgsError(ERR_INTERACTIVE)
        watch_args = watch_args[1:]
    if not interactive:
        exec_exist = "--" in raw
        exec_idx = raw.index("--") if exec_exist else len(raw) - 1
        if exec_exist and exec_idx == len(raw) - 1:
            raise _ArgsError(ERR_SEPARATOR)
        if not exec_exist and len(raw) < 1 and env_key == "":
            raise _ArgsError(ERR_BAD_ARGS_NUM)
        if exec_exist and env_key != "":
            ridx = len(raw) - 1
            for widx in range(len(watch_args) - 1, -1, -1):
                if watch_args[widx] == raw[ridx]:
                    ridx -= 1
                    continue
                if ridx == exec_idx:
                    raise _ArgsError(ERR_CONFLICT_ENV)
        if not exec_exist and watch_args and env_key != "":
            raise _ArgsError(ERR_CONFLICT_ENV)
    else:
        exec_exist = "--" in watch_args
        exec_idx = watch_args.index("--") if exec_exist else len(watch_args) - 1
        if exec_exist and exec_idx == len(watch_args) - 1:
            opts.reset()
            raise _ArgsError(ERR_SEPARATOR)
        try:
            _, p_args = _parse(watch_args)
        except _ArgsError:
            opts.reset()
            raise
        if not exec_exist and env_key == "" and len(p_args) < 1:
            opts.reset()
            raise _ArgsError(ERR_BAD_ARGS_NUM)
        if not exec_exist and p_args and env_key != "":
            opts.reset()
            raise _ArgsError(ERR_CONFLICT_ENV)
    with_sep = watch_args if interactive else raw
    found_sep = "--" in with_sep
    idx = with_sep.index("--") if found_sep else 0
    exec_args = with_sep[idx + 1 :] if found_sep else []
    if interactive:
        values, watch_args = _parse(with_sep)
        opts.prefix, opts.rev, opts.prev_kv = values["prefix"], values["rev"], values["prev-kv"]
    if env_key:
        watch_args = [env_key, *([env_range] if env_range else []), *watch_args]
    if not found_sep:
        return watch_args, []
    end = len(watch_args) - 1
    while end >= 0 and watch_args[end] != with_sep[idx + 1]:
        end -= 1
    return watch_args[: max(end, 0)], exec_args


def make_watch(c: Client, args: list[str], opts: WatchOptions) -> Watch:
    """etcdctl's getWatchChan."""
    if not args:
        raise _ArgsError(ERR_BAD_ARGS_NUM)
    range_end = None
    if len(args) == 2:
        if opts.prefix:
            raise _ArgsError("`range_end` and `--prefix` are mutually exclusive")
        range_end = args[1]
    return c.watch(args[0], range_end, prefix=opts.prefix, start_revision=opts.rev, prev_kv=opts.prev_kv)


async def print_watch(ctl: Ctl, w: Watch, exec_args: list[str]) -> None:
    """etcdctl's printWatchCh: print each response, run the command for each event."""
    printer = ctl.printer
    try:
        async for wr in w:
            if wr.is_progress_notify:
                write(f"progress notify: {wr.header.revision}\n")
            printer.watch(wr.raw)
            for ev in wr.raw.events if exec_args else ():
                env = dict(os.environ)
                env["ETCD_WATCH_REVISION"] = str(wr.header.revision)
                env["ETCD_WATCH_EVENT_TYPE"] = quote("DELETE" if ev.type == 1 else "PUT")
                env["ETCD_WATCH_KEY"] = quote(bytes(ev.kv.key))
                env["ETCD_WATCH_VALUE"] = quote(bytes(ev.kv.value))
                await _run(exec_args, env)
    except (WatchCompactedError, WatchCanceledError) as e:
        sys.stderr.write(f"watch was canceled ({error_message(e)})\n")
        if e.response is not None:
            printer.watch(e.response.raw)  # type: ignore[attr-defined]  # minietcd.errors types it object; it is a WatchResponse


async def _run(argv: list[str], env: dict[str, str]) -> None:
    sys.stdout.flush()
    shown = "[" + " ".join(quote(a) for a in argv) + "]"
    try:
        proc = await asyncio.create_subprocess_exec(*argv, env=env)
        code = await proc.wait()
    except OSError as e:
        sys.stderr.write(f"command {shown} error (exec: {quote(argv[0])}: {e.strerror})\n")
        raise Exit(EXIT_ERROR) from None
    if code != 0:
        detail = f"exit status {code}" if code > 0 else f"signal: {-code}"
        sys.stderr.write(f"command {shown} error ({detail})\n")
        raise Exit(EXIT_ERROR)


async def watch_command(inv: Invocation) -> None:
    env_key = os.environ.get("ETCDCTL_WATCH_KEY", "")
    env_range = os.environ.get("ETCDCTL_WATCH_RANGE_END", "")
    if env_key == "" and env_range != "":
        raise ExitError(
            EXIT_BAD_ARGS, f"ETCDCTL_WATCH_KEY is empty but got ETCDCTL_WATCH_RANGE_END={quote(env_range)}"
        )
    opts = WatchOptions(inv["prefix"], inv["rev"], inv["prev-kv"])
    os_args = ["etcdctl", *inv.raw_args]
    if inv["interactive"]:
        await _interactive(inv, os_args, env_key, env_range, opts)
        return
    try:
        watch_args, exec_args = parse_watch_args(os_args, inv.args, env_key, env_range, False, opts)
    except _ArgsError as e:
        raise ExitError(EXIT_BAD_ARGS, str(e)) from None
    ctl = Ctl(inv)
    c = ctl.client()
    try:
        w = make_watch(c, watch_args, opts)
    except _ArgsError as e:
        raise ExitError(EXIT_BAD_ARGS, str(e)) from None
    await print_watch(ctl, w, exec_args)
    raise ExitError(EXIT_INTERRUPTED, "watch is canceled by the server")


async def _interactive(
    inv: Invocation, os_args: list[str], env_key: str, env_range: str, opts: WatchOptions
) -> None:
    ctl = Ctl(inv)
    c = ctl.client()
    loop = asyncio.get_running_loop()
    watches: list[Watch] = []
    tasks: list[asyncio.Task[None]] = []
    while True:
        raw = await loop.run_in_executor(None, sys.stdin.buffer.readline)
        if not raw.endswith(b"\n"):
            raise ExitError(EXIT_INVALID_INPUT, "Error reading watch request line: EOF")
        line = raw[:-1].decode("utf-8", "surrogateescape")
        args = argify(line)
        if not args:
            sys.stderr.write(f"Invalid command: {line} (watch and progress supported)\n")
            continue
        if args[0] == "watch":
            if len(args) < 2 and env_key == "":
                sys.stderr.write(f"Invalid command {line} (command type or key is not provided)\n")
                continue
            try:
                watch_args, exec_args = parse_watch_args(os_args, args, env_key, env_range, True, opts)
            except _ArgsError as e:
                raise ExitError(EXIT_BAD_ARGS, str(e)) from None
            try:
                w = make_watch(c, watch_args, opts)
            except _ArgsError as e:
                sys.stderr.write(f"Invalid command {line} ({e})\n")
                continue
            await w.start()
            watches.append(w)
            tasks.append(asyncio.create_task(print_watch(ctl, w, exec_args)))
        elif args[0] == "progress":
            for w in watches:
                await w.request_progress()
        else:
            sys.stderr.write(f"Invalid command {line} (only support watch)\n")


def commands() -> list[Command]:
    return [
        Command(
            "watch [options] [key or prefix] [range_end] [--] [exec-command arg1 arg2 ...]",
            "Watches events stream on keys or prefixes",
            watch_command,
            flags=list(WATCH_FLAGS),
        )
    ]
