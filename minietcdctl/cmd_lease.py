"""lease grant / revoke / timetolive / list / keep-alive (etcdctl's lease_command.go)."""

from __future__ import annotations

import math

from minietcd.golang import parse_int
from minietcdctl.common import EXIT_BAD_ARGS, EXIT_BAD_CONNECTION, EXIT_ERROR, Ctl
from minietcdctl.flags import Command, ExitError, Flag, Invocation
from minietcdctl.printers import write


def lease_from_arg(arg: str) -> int:
    try:
        return parse_int(arg, 16)
    except ValueError as e:
        raise ExitError(EXIT_BAD_ARGS, f"bad lease ID arg ({e}), expecting ID in Hex") from None


async def grant_command(inv: Invocation) -> None:
    if len(inv.args) != 1:
        raise ExitError(EXIT_BAD_ARGS, "lease grant command needs TTL argument")
    try:
        ttl = parse_int(inv.args[0], 10)
    except ValueError as e:
        raise ExitError(EXIT_BAD_ARGS, f"bad TTL ({e})") from None
    ctl = Ctl(inv)
    c = ctl.client()
    resp = await ctl.call(c.grant(ttl, timeout=ctl.command_timeout), wrap="failed to grant lease ({})")
    ctl.printer.grant(resp.raw)


async def revoke_command(inv: Invocation) -> None:
    if len(inv.args) != 1:
        raise ExitError(EXIT_BAD_ARGS, "lease revoke command needs 1 argument")
    lease_id = lease_from_arg(inv.args[0])
    ctl = Ctl(inv)
    c = ctl.client()
    resp = await ctl.call(c.revoke(lease_id, timeout=ctl.command_timeout), wrap="failed to revoke lease ({})")
    ctl.printer.revoke(lease_id, resp.raw)


async def timetolive_command(inv: Invocation) -> None:
    if len(inv.args) != 1:
        raise ExitError(EXIT_BAD_ARGS, "lease timetolive command needs lease ID as argument")
    ctl = Ctl(inv)
    c = ctl.client()
    lease_id = lease_from_arg(inv.args[0])
    resp = await ctl.call(c.time_to_live(lease_id, keys=inv["keys"], timeout=math.inf), EXIT_BAD_CONNECTION)
    ctl.printer.time_to_live(resp.raw, inv["keys"])


async def list_command(inv: Invocation) -> None:
    ctl = Ctl(inv)
    c = ctl.client()
    resp = await ctl.call(c.leases(timeout=math.inf), EXIT_BAD_CONNECTION)
    ctl.printer.leases(resp.raw)


async def keep_alive_command(inv: Invocation) -> None:
    if len(inv.args) != 1:
        raise ExitError(EXIT_BAD_ARGS, "lease keep-alive command needs lease ID as argument")
    lease_id = lease_from_arg(inv.args[0])
    ctl = Ctl(inv)
    c = ctl.client()
    if inv["once"]:
        resp = await ctl.call(c.keep_alive_once(lease_id, timeout=math.inf), EXIT_BAD_CONNECTION)
        ctl.printer.keep_alive(resp.raw)
        return
    ka = c.keep_alive(lease_id)
    async for r in ka:
        ctl.printer.keep_alive(r.raw)
    try:
        await ka.wait()
    except Exception as e:
        if not ka.last:
            raise ExitError(EXIT_BAD_CONNECTION, str(getattr(e, "etcd_message", None) or e)) from None
    if ctl.printer.fmt == "simple":
        write(f"lease {lease_id & (2**64 - 1):016x} expired or revoked.\n")


def commands() -> list[Command]:
    group = Command("lease <subcommand>", "Lease related commands")
    group.add(
        Command("grant <ttl>", "Creates leases", grant_command),
        Command("revoke <leaseID>", "Revokes leases", revoke_command),
        Command("timetolive <leaseID> [options]", "Get lease information", timetolive_command,
                flags=[Flag("keys", "bool", False, "Get keys attached to this lease")]),
        Command("list", "List all active leases", list_command),
        Command("keep-alive [options] <leaseID>", "Keeps leases alive (renew)", keep_alive_command,
                flags=[Flag("once", "bool", False,
                            "Resets the keep-alive time to its original value and exits immediately")]),
    )  # fmt: skip
    return [group]


__all__ = ["EXIT_ERROR", "commands"]
