"""lock and elect (etcdctl's lock_command.go and elect_command.go) on the client's recipes.

Both hold on until SIGINT/SIGTERM: ``lock`` then releases the lock and exits 0; ``elect``
resigns (or, observing with ``-l``, just stops) and exits 0.
"""

from __future__ import annotations

import asyncio
import os
import sys

from minietcd.client import Election, Lock, Session
from minietcd.client.errors import error_message
from minietcd.golang import quote
from minietcdctl.common import EXIT_BAD_ARGS, EXIT_ERROR, Ctl
from minietcdctl.flags import Command, Exit, ExitError, Flag, Invocation


async def _wait_cancel_or(done: asyncio.Future[None] | asyncio.Task[None]) -> bool:
    """Wait until this task is cancelled (a signal: True) or ``done`` finishes (False)."""
    try:
        await asyncio.shield(done)
    except asyncio.CancelledError:
        return not done.done()
    except Exception:
        return False
    return False


async def lock_command(inv: Invocation) -> None:
    if not inv.args:
        raise ExitError(EXIT_BAD_ARGS, "lock takes a lock name argument and an optional command to execute")
    ctl = Ctl(inv)
    c = ctl.client()
    name, cmd_args = inv.args[0], inv.args[1:]
    session = await ctl.call(Session(c, ttl=inv["ttl"]).start())
    lock = Lock(session, name)
    try:
        await lock.acquire()
    except asyncio.CancelledError:
        raise ExitError(EXIT_ERROR, "context canceled") from None
    except Exception as e:
        raise ExitError(EXIT_ERROR, error_message(e)) from None
    if cmd_args:
        env = {**os.environ, "ETCD_LOCK_KEY": lock.key.decode("utf-8", "surrogateescape"),
               "ETCD_LOCK_REV": str(lock.header.revision if lock.header else 0)}  # fmt: skip
        sys.stdout.flush()
        try:
            proc = await asyncio.create_subprocess_exec(*cmd_args, env=env)
            code = await proc.wait()
        except OSError as e:
            await lock.release()
            raise ExitError(EXIT_ERROR, f"exec: {quote(cmd_args[0])}: {e.strerror}") from None
        await ctl.call(lock.release())
        if code != 0:
            raise ExitError(EXIT_ERROR, f"exit status {code}")
        return
    resp = await ctl.call(c.get(lock.key))
    if not resp.kvs:
        raise ExitError(EXIT_ERROR, "lock lost on init")
    ctl.printer.get(resp.raw)
    ka = session._keep_alive
    assert ka is not None
    signalled = await _wait_cancel_or(asyncio.ensure_future(ka.wait()))
    if signalled:
        await ctl.call(lock.release())
        raise Exit(0)
    raise ExitError(EXIT_ERROR, "session expired")


async def elect_command(inv: Invocation) -> None:
    args = inv.args
    if len(args) not in (1, 2):
        raise ExitError(
            EXIT_BAD_ARGS, "elect takes one election name argument and an optional proposal argument"
        )
    ctl = Ctl(inv)
    c = ctl.client()
    if len(args) == 1:
        if not inv["listen"]:
            raise ExitError(EXIT_BAD_ARGS, "no proposal argument but -l not set")
        await _observe(ctl, args[0])
    else:
        if inv["listen"]:
            raise ExitError(EXIT_BAD_ARGS, "proposal given but -l is set")
        await _campaign(ctl, args[0], args[1])
    del c


async def _observe(ctl: Ctl, name: str) -> None:
    c = ctl.client()
    session = await ctl.call(Session(c).start())
    election = Election(session, name)

    async def follow() -> None:
        async for resp in election.observe():
            ctl.printer.get(resp.raw)

    task = asyncio.ensure_future(follow())
    if await _wait_cancel_or(task):
        task.cancel()
        raise Exit(0)
    raise ExitError(EXIT_ERROR, "elect: observer lost")


async def _campaign(ctl: Ctl, name: str, proposal: str) -> None:
    c = ctl.client()
    session = await ctl.call(Session(c).start())
    election = Election(session, name)
    try:
        await election.campaign(proposal)
    except asyncio.CancelledError:
        raise ExitError(EXIT_ERROR, "context canceled") from None
    except Exception as e:
        raise ExitError(EXIT_ERROR, error_message(e)) from None
    resp = await ctl.call(c.get(election.key))
    ctl.printer.get(resp.raw)
    ka = session._keep_alive
    assert ka is not None
    if await _wait_cancel_or(asyncio.ensure_future(ka.wait())):
        await ctl.call(election.resign())
        raise Exit(0)
    raise ExitError(EXIT_ERROR, "elect: session expired")


def commands() -> list[Command]:
    return [
        Command("lock <lockname> [exec-command arg1 arg2 ...]", "Acquires a named lock", lock_command,
                flags=[Flag("ttl", "int", 10, "timeout for session")]),
        Command("elect <election-name> [proposal]", "Observes and participates in leader election", elect_command,  # noqa: E501
                flags=[Flag("listen", "bool", False, "observation mode", "l")]),
    ]  # fmt: skip
