"""member add / remove / update / list / promote, endpoint health / status / hashkv and
move-leader (etcdctl's member_command.go, ep_command.go, move_leader_command.go)."""

from __future__ import annotations

import asyncio
import sys
import time

from minietcd.client.errors import error_message
from minietcd.golang import NumError, format_duration, parse_uint, quote
from minietcdctl.common import EXIT_BAD_ARGS, EXIT_ERROR, Ctl
from minietcdctl.flags import Command, Exit, ExitError, Flag, Invocation, apply_env
from minietcdctl.printers import EpHashKV, EpHealth, EpStatus, write

_PERMISSION_DENIED = "etcdserver: permission denied"


def parse_member_id(arg: str) -> int:
    """Go's ``strconv.ParseUint(arg, 16, 64)``, exiting as etcdctl does."""
    try:
        return parse_uint(arg, 16)
    except NumError as e:
        raise ExitError(EXIT_BAD_ARGS, f"bad member ID arg ({e}), expecting ID in Hex") from None


async def member_add_command(inv: Invocation) -> None:
    args = inv.args
    if not args:
        raise ExitError(EXIT_BAD_ARGS, "member name not provided")
    if len(args) > 1:
        ev = "too many arguments"
        for s in args:
            if s.lower().startswith("http"):
                ev += f", did you mean --peer-urls={s}"
        raise ExitError(EXIT_BAD_ARGS, ev)
    name = args[0]
    peer_urls = inv["peer-urls"]
    if not peer_urls:
        raise ExitError(EXIT_BAD_ARGS, "member peer urls not provided")
    urls = peer_urls.split(",")
    ctl = Ctl(inv)
    c = ctl.client()
    resp = await ctl.call(c.member_add(urls, is_learner=inv["learner"], timeout=ctl.command_timeout))
    r = resp.raw
    ctl.printer.member_add(r)
    if ctl.printer.fmt == "simple":
        conf = []
        for m in r.members:
            for u in m.peerURLs:
                conf.append(f"{name if m.ID == r.member.ID else m.name}={u}")
        write(
            "\n"
            f"ETCD_NAME={quote(name)}\n"
            f"ETCD_INITIAL_CLUSTER={quote(','.join(conf))}\n"
            f"ETCD_INITIAL_ADVERTISE_PEER_URLS={quote(peer_urls)}\n"
            'ETCD_INITIAL_CLUSTER_STATE="existing"\n'
        )


def _one_member_id(inv: Invocation) -> int:
    if len(inv.args) != 1:
        raise ExitError(EXIT_BAD_ARGS, "member ID is not provided")
    return parse_member_id(inv.args[0])


async def member_remove_command(inv: Invocation) -> None:
    member_id = _one_member_id(inv)
    ctl = Ctl(inv)
    c = ctl.client()
    resp = await ctl.call(c.member_remove(member_id, timeout=ctl.command_timeout))
    ctl.printer.member_remove(member_id, resp.raw)


async def member_update_command(inv: Invocation) -> None:
    member_id = _one_member_id(inv)
    if not inv["peer-urls"]:
        raise ExitError(EXIT_BAD_ARGS, "member peer urls not provided")
    ctl = Ctl(inv)
    c = ctl.client()
    resp = await ctl.call(
        c.member_update(member_id, inv["peer-urls"].split(","), timeout=ctl.command_timeout)
    )
    ctl.printer.member_update(member_id, resp.raw)


async def member_list_command(inv: Invocation) -> None:
    ctl = Ctl(inv)
    c = ctl.client()
    resp = await ctl.call(c.member_list(timeout=ctl.command_timeout))
    ctl.printer.member_list(resp.raw)


async def member_promote_command(inv: Invocation) -> None:
    member_id = _one_member_id(inv)
    ctl = Ctl(inv)
    c = ctl.client()
    resp = await ctl.call(c.member_promote(member_id, timeout=ctl.command_timeout))
    ctl.printer.member_promote(member_id, resp.raw)


# ---------------------------------------------------------------------------- endpoints


async def endpoints_from_cluster(ctl: Ctl) -> list[str]:
    """--endpoints as given, or with --cluster every client URL in the member list."""
    if not ctl.inv["cluster"]:
        return list(ctl.inv["endpoints"])
    c = ctl.client(auth=False)
    try:
        resp = await c.member_list(timeout=ctl.command_timeout)
    except Exception as e:
        raise ExitError(
            EXIT_ERROR, f"failed to fetch endpoints from etcd cluster member list: {error_message(e)}"
        ) from None
    return [u for m in resp.members for u in m.client_urls]


async def health_command(inv: Invocation) -> None:
    ctl = Ctl(inv)
    _ = ctl.printer
    eps = await endpoints_from_cluster(ctl)

    async def check(ep: str) -> EpHealth:
        c = ctl.client([ep])
        start = time.monotonic()
        try:
            await c.get("health", timeout=ctl.command_timeout)
            err = ""
        except Exception as e:
            err = error_message(e)
        took = format_duration(time.monotonic() - start)
        ok = err in ("", _PERMISSION_DENIED)
        return EpHealth(ep, ok, took, "" if ok else err)

    results: list[EpHealth] = []
    for fut in asyncio.as_completed([check(ep) for ep in eps]):
        results.append(await fut)
    ctl.printer.endpoint_health(results)
    if any(h.error for h in results):
        raise ExitError(EXIT_ERROR, "unhealthy cluster")


async def status_command(inv: Invocation) -> None:
    ctl = Ctl(inv)
    c = ctl.client()
    failed = False
    out = []
    for ep in await endpoints_from_cluster(ctl):
        try:
            resp = await c.status(endpoint=ep, timeout=ctl.command_timeout)
        except Exception as e:
            failed = True
            sys.stderr.write(f"Failed to get the status of endpoint {ep} ({error_message(e)})\n")
            continue
        out.append(EpStatus(ep, resp.raw))
    ctl.printer.endpoint_status(out)
    if failed:
        raise Exit(EXIT_ERROR)


async def hashkv_command(inv: Invocation) -> None:
    ctl = Ctl(inv)
    c = ctl.client()
    last: str | None = None
    out = []
    for ep in await endpoints_from_cluster(ctl):
        try:
            resp = await c.hash_kv(endpoint=ep, revision=inv["rev"], timeout=ctl.command_timeout)
        except Exception as e:
            last = error_message(e)
            sys.stderr.write(f"Failed to get the hash of endpoint {ep} ({last})\n")
            continue
        out.append(EpHashKV(ep, resp.raw))
    ctl.printer.endpoint_hashkv(out)
    if last is not None:
        raise ExitError(EXIT_ERROR, last)


async def move_leader_command(inv: Invocation) -> None:
    if len(inv.args) != 1:
        raise ExitError(EXIT_BAD_ARGS, "move-leader command needs 1 argument")
    try:
        target = parse_uint(inv.args[0], 16)
    except NumError as e:
        raise ExitError(EXIT_BAD_ARGS, str(e)) from None
    ctl = Ctl(inv)
    eps = ctl.endpoints
    leader_ep = None
    leader_id = 0
    for ep in eps:
        c = ctl.client([ep])
        st = await ctl.call(c.status(endpoint=ep, timeout=ctl.command_timeout))
        if st.header.member_id == st.leader:
            leader_ep, leader_id = ep, st.leader
            break
    if leader_ep is None:
        raise ExitError(EXIT_BAD_ARGS, f"no leader endpoint given at [{' '.join(eps)}]")
    c = ctl.client([leader_ep])
    resp = await ctl.call(c.move_leader(target, endpoint=leader_ep, timeout=ctl.command_timeout))
    ctl.printer.move_leader(leader_id, target, resp.raw)


def commands() -> list[Command]:
    member = Command("member <subcommand>", "Membership related commands")
    member.add(
        Command("add <memberName> [options]", "Adds a member into the cluster", member_add_command, flags=[
            Flag("peer-urls", "string", "", "comma separated peer URLs for the new member."),
            Flag("learner", "bool", False, "indicates if the new member is raft learner"),
        ]),
        Command("remove <memberID>", "Removes a member from the cluster", member_remove_command),
        Command("update <memberID> [options]", "Updates a member in the cluster", member_update_command, flags=[  # noqa: E501
            Flag("peer-urls", "string", "", "comma separated peer URLs for the updated member."),
        ]),
        Command("list", "Lists all members in the cluster", member_list_command,
                long="When --write-out is set to simple, this command prints out comma-separated member lists for "  # noqa: E501
                "each endpoint.\nThe items in the lists are ID, Status, Name, Peer Addrs, Client Addrs, Is Learner.\n"),  # noqa: E501
        Command("promote <memberID>", "Promotes a non-voting member in the cluster", member_promote_command,
                long="Promotes a non-voting learner member to a voting one in the cluster.\n"),
    )  # fmt: skip
    endpoint = Command(
        "endpoint <subcommand>", "Endpoint related commands",
        persistent=[Flag("cluster", "bool", False, "use all endpoints from the cluster member list")],
    )  # fmt: skip
    endpoint.add(
        Command("health", "Checks the healthiness of endpoints specified in `--endpoints` flag", health_command),  # noqa: E501
        Command("status", "Prints out the status of endpoints specified in `--endpoints` flag", status_command,  # noqa: E501
                long="When --write-out is set to simple, this command prints out comma-separated status lists for "  # noqa: E501
                "each endpoint.\nThe items in the lists are endpoint, ID, version, db size, is leader, is learner, "  # noqa: E501
                "raft term, raft index, raft applied index, errors.\n"),
        Command("hashkv", "Prints the KV history hash for each endpoint in --endpoints", hashkv_command,
                persistent=[Flag("rev", "int", 0, "maximum revision to hash (default: all revisions)")]),
    )  # fmt: skip
    move = Command(
        "move-leader <transferee-member-id>", "Transfers leadership to another etcd cluster member.",
        move_leader_command,
    )  # fmt: skip
    return [member, endpoint, move]


__all__ = ["apply_env", "commands", "endpoints_from_cluster"]
