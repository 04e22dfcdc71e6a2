"""user, role and auth commands (etcdctl 3.4's user_command.go, role_command.go,
auth_command.go) and their printers (printer_simple.go / printer_fields.go; json and protobuf
print the response message; table, and fields where etcd's printer has no such method, say
"<format> not supported as output format", exit code 4)."""

from __future__ import annotations

import getpass
import math
import sys
from typing import Any

from minietcd.client import Client, PermissionType, prefix_range_end
from minietcd.errors import RootRoleNotExistError
from minietcd.golang import quote
from minietcdctl.common import EXIT_BAD_ARGS, Ctl
from minietcdctl.flags import Command, ExitError, Flag, Invocation
from minietcdctl.printers import Printer, write

_PERM_NAMES = {0: "READ", 1: "WRITE", 2: "READWRITE"}


def _text(b: bytes) -> str:
    """Bytes as Go's %s prints them (raw)."""
    return b.decode("utf-8", "surrogateescape")


# ------------------------------------------------------------------------------- printers


def _confirm(p: Printer, r: Any, simple: str) -> None:
    """The printers of the calls that answer only a header."""
    if p.fmt == "simple":
        write(simple)
    elif p.fmt == "fields":
        write(p._fields_hdr(r.header))
    else:
        p._pb(r)


def _names(p: Printer, r: Any, names: list[str], simple: str, fields_label: str | None) -> None:
    if p.fmt == "simple":
        write(simple)
    elif p.fmt == "fields" and fields_label is not None:
        write(p._fields_hdr(r.header) + f'"{fields_label}" :' + "".join(f" {quote(n)}" for n in names) + "\n")
    else:
        p._pb(r)  # fields without a method of etcd's: not supported


def print_role_get(p: Printer, role: str, r: Any) -> None:
    if p.fmt == "simple":
        write(f"Role {role}\n" + _perms_text(r.perm))
    elif p.fmt == "fields":
        out = [p._fields_hdr(r.header)]
        for perm in r.perm:
            out.append(f'"PermType" :  {_PERM_NAMES.get(perm.permType, str(perm.permType))}\n')
            out.append(f'"Key" : {quote(bytes(perm.key))}\n"RangeEnd" : {quote(bytes(perm.range_end))}\n')
        write("".join(out))
    else:
        p._pb(r)


def _perms_text(perms: Any) -> str:
    def one(perm: Any) -> str:
        key, end = bytes(perm.key), bytes(perm.range_end)
        if not end:
            return f"\t{_text(key)}\n"
        line = f"\t[{_text(key)}, {_text(end)})" if end != b"\0" else f"\t[{_text(key)}, <open ended>"
        if prefix_range_end(key) == end:
            line += f" (prefix {_text(key)})"
        return line + "\n"

    read = "".join(one(x) for x in perms if x.permType in (0, 2))
    written = "".join(one(x) for x in perms if x.permType in (1, 2))
    return f"KV Read:\n{read}KV Write:\n{written}"


# --------------------------------------------------------------------------------- helpers


def _client(inv: Invocation) -> tuple[Ctl, Client]:
    ctl = Ctl(inv)
    return ctl, ctl.client()


def _scan_password() -> str:
    """Go's ``fmt.Scanf("%s", &password)`` on stdin: the first word of the first line."""
    line = sys.stdin.readline()
    words = line.split("\n", 1)[0].split()
    return words[0] if words and not line.startswith("\n") else ""


def _ask_password(name: str) -> str:
    """etcdctl's readPasswordInteractive (speakeasy: the terminal, echo off)."""
    try:
        first = getpass.getpass(f"Password of {name}: ")
        if not first:
            raise ExitError(EXIT_BAD_ARGS, "empty password")
        second = getpass.getpass(f"Type password of {name} again for confirmation: ")
    except (EOFError, OSError) as e:
        raise ExitError(EXIT_BAD_ARGS, f"failed to ask password: {e}") from None
    if first != second:
        raise ExitError(EXIT_BAD_ARGS, "given passwords are different")
    return first


def _password(inv: Invocation, name: str) -> str:
    return _ask_password(name) if inv["interactive"] else _scan_password()


# ------------------------------------------------------------------------------------ user


async def user_add_command(inv: Invocation) -> None:
    if len(inv.args) != 1:
        raise ExitError(EXIT_BAD_ARGS, "user add command requires user name as its argument")
    arg, no_password = inv.args[0], inv["no-password"]
    user, password = arg, ""
    if not no_password:
        if inv["new-user-password"]:
            password = inv["new-user-password"]
        elif ":" in arg:
            user, password = arg.split(":", 1)
            if not user:
                raise ExitError(EXIT_BAD_ARGS, "empty user name is not allowed")
        else:
            password = _password(inv, arg)
    ctl, c = _client(inv)
    resp = await ctl.call(c.user_add(user, password, no_password=no_password, timeout=math.inf))
    _confirm(ctl.printer, resp.raw, f"User {user} created\n")


async def user_delete_command(inv: Invocation) -> None:
    if len(inv.args) != 1:
        raise ExitError(EXIT_BAD_ARGS, "user delete command requires user name as its argument")
    ctl, c = _client(inv)
    resp = await ctl.call(c.user_delete(inv.args[0], timeout=math.inf))
    _confirm(ctl.printer, resp.raw, f"User {inv.args[0]} deleted\n")


async def user_get_command(inv: Invocation) -> None:
    if len(inv.args) != 1:
        raise ExitError(EXIT_BAD_ARGS, "user get command requires user name as its argument")
    name = inv.args[0]
    ctl, c = _client(inv)
    resp = await ctl.call(c.user_get(name, timeout=math.inf))
    if inv["detail"]:
        write(f"User: {name}\n")
        for role in resp.names:
            write("\n")
            role_resp = await ctl.call(c.role_get(role, timeout=math.inf))
            print_role_get(ctl.printer, role, role_resp.raw)
    else:
        roles = "".join(f" {r}" for r in resp.names)
        _names(ctl.printer, resp.raw, resp.names, f"User: {name}\nRoles:{roles}\n", None)


async def user_list_command(inv: Invocation) -> None:
    if inv.args:
        raise ExitError(EXIT_BAD_ARGS, "user list command requires no arguments")
    ctl, c = _client(inv)
    resp = await ctl.call(c.user_list(timeout=math.inf))
    _names(ctl.printer, resp.raw, resp.names, "".join(f"{u}\n" for u in resp.names), None)


async def user_passwd_command(inv: Invocation) -> None:
    if len(inv.args) != 1:
        raise ExitError(EXIT_BAD_ARGS, "user passwd command requires user name as its argument")
    password = _password(inv, inv.args[0])
    ctl, c = _client(inv)
    resp = await ctl.call(c.user_change_password(inv.args[0], password, timeout=math.inf))
    _confirm(ctl.printer, resp.raw, "Password updated\n")


async def user_grant_role_command(inv: Invocation) -> None:
    if len(inv.args) != 2:
        raise ExitError(EXIT_BAD_ARGS, "user grant command requires user name and role name as its argument")
    user, role = inv.args
    ctl, c = _client(inv)
    resp = await ctl.call(c.user_grant_role(user, role, timeout=math.inf))
    _confirm(ctl.printer, resp.raw, f"Role {role} is granted to user {user}\n")


async def user_revoke_role_command(inv: Invocation) -> None:
    if len(inv.args) != 2:
        raise ExitError(EXIT_BAD_ARGS, "user revoke-role requires user name and role name as its argument")
    user, role = inv.args
    ctl, c = _client(inv)
    resp = await ctl.call(c.user_revoke_role(user, role, timeout=math.inf))
    _confirm(ctl.printer, resp.raw, f"Role {role} is revoked from user {user}\n")


# ------------------------------------------------------------------------------------ role


async def role_add_command(inv: Invocation) -> None:
    if len(inv.args) != 1:
        raise ExitError(EXIT_BAD_ARGS, "role add command requires role name as its argument")
    ctl, c = _client(inv)
    resp = await ctl.call(c.role_add(inv.args[0], timeout=math.inf))
    _confirm(ctl.printer, resp.raw, f"Role {inv.args[0]} created\n")


async def role_delete_command(inv: Invocation) -> None:
    if len(inv.args) != 1:
        raise ExitError(EXIT_BAD_ARGS, "role delete command requires role name as its argument")
    ctl, c = _client(inv)
    resp = await ctl.call(c.role_delete(inv.args[0], timeout=math.inf))
    _confirm(ctl.printer, resp.raw, f"Role {inv.args[0]} deleted\n")


async def role_get_command(inv: Invocation) -> None:
    if len(inv.args) != 1:
        raise ExitError(EXIT_BAD_ARGS, "role get command requires role name as its argument")
    ctl, c = _client(inv)
    resp = await ctl.call(c.role_get(inv.args[0], timeout=math.inf))
    print_role_get(ctl.printer, inv.args[0], resp.raw)


async def role_list_command(inv: Invocation) -> None:
    if inv.args:
        raise ExitError(EXIT_BAD_ARGS, "role list command requires no arguments")
    ctl, c = _client(inv)
    resp = await ctl.call(c.role_list(timeout=math.inf))
    _names(ctl.printer, resp.raw, resp.names, "".join(f"{r}\n" for r in resp.names), "Roles")


def _perm_range(inv: Invocation, args: list[str]) -> tuple[bytes, bytes]:
    """etcdctl's permRange: an empty key is "\\0" (and with --prefix / --from-key every key)."""
    prefix, from_key = inv["prefix"], inv["from-key"]
    key = args[0].encode("utf-8", "surrogateescape")
    if not key:
        if prefix and from_key:
            raise ExitError(EXIT_BAD_ARGS, "--from-key and --prefix flags are mutually exclusive")
        return b"\0", b"\0" if prefix or from_key else b""
    if len(args) == 1:
        if prefix:
            if from_key:
                raise ExitError(EXIT_BAD_ARGS, "--from-key and --prefix flags are mutually exclusive")
            return key, prefix_range_end(key)
        return key, b"\0" if from_key else b""
    if prefix:
        raise ExitError(EXIT_BAD_ARGS, "unexpected endkey argument with --prefix flag")
    if from_key:
        raise ExitError(EXIT_BAD_ARGS, "unexpected endkey argument with --from-key flag")
    return key, args[1].encode("utf-8", "surrogateescape")


async def role_grant_permission_command(inv: Invocation) -> None:
    args = inv.args
    if len(args) < 3:
        raise ExitError(
            EXIT_BAD_ARGS,
            "role grant command requires role name, permission type, and key [endkey] as its argument",
        )
    try:
        perm = PermissionType[args[1].upper()]
    except KeyError:
        raise ExitError(EXIT_BAD_ARGS, f"invalid permission type: {args[1]}") from None
    key, end = _perm_range(inv, args[2:])
    ctl, c = _client(inv)
    resp = await ctl.call(c.role_grant_permission(args[0], key, end, perm, timeout=math.inf))
    _confirm(ctl.printer, resp.raw, f"Role {args[0]} updated\n")


async def role_revoke_permission_command(inv: Invocation) -> None:
    args = inv.args
    if len(args) < 2:
        why = "role revoke-permission command requires role name and key [endkey] as its argument"
        raise ExitError(EXIT_BAD_ARGS, why)
    key, end = _perm_range(inv, args[1:])
    ctl, c = _client(inv)
    resp = await ctl.call(c.role_revoke_permission(args[0], key, end, timeout=math.inf))
    if not end:
        simple = f"Permission of key {args[1]} is revoked from role {args[0]}\n"
    elif end != b"\0":
        simple = f"Permission of range [{args[1]}, {_text(end)}) is revoked from role {args[0]}\n"
    else:
        simple = f"Permission of range [{args[1]}, <open ended> is revoked from role {args[0]}\n"
    _confirm(ctl.printer, resp.raw, simple)


# ------------------------------------------------------------------------------------ auth


async def auth_enable_command(inv: Invocation) -> None:
    if inv.args:
        raise ExitError(EXIT_BAD_ARGS, "auth enable command does not accept any arguments")
    ctl, c = _client(inv)
    while True:
        try:
            await ctl.call(c.auth_enable(timeout=ctl.command_timeout), reraise=RootRoleNotExistError)
            break
        except RootRoleNotExistError:
            # As etcdctl: a root user without the root role gets it, then enable again.
            await ctl.call(c.role_add("root", timeout=ctl.command_timeout))
            await ctl.call(c.user_grant_role("root", "root", timeout=ctl.command_timeout))
    write("Authentication Enabled\n")


async def auth_disable_command(inv: Invocation) -> None:
    if inv.args:
        raise ExitError(EXIT_BAD_ARGS, "auth disable command does not accept any arguments")
    ctl, c = _client(inv)
    await ctl.call(c.auth_disable(timeout=ctl.command_timeout))
    write("Authentication Disabled\n")


# -------------------------------------------------------------------------------- commands

_PERM_FLAGS = (
    ("prefix", "grant a prefix permission", "revoke a prefix permission"),
    (
        "from-key",
        "grant a permission of keys that are greater than or equal to the given key using byte compare",
        "revoke a permission of keys that are greater than or equal to the given key using byte compare",
    ),
)


def commands() -> list[Command]:
    interactive = Flag(
        "interactive", "bool", True, "Read password from stdin instead of interactive terminal"
    )
    user = Command("user <subcommand>", "User related commands")
    user.add(
        Command("add <user name or user:password> [options]", "Adds a new user", user_add_command, flags=[
            interactive,
            Flag("new-user-password", "string", "", "Supply password from the command line flag"),
            Flag("no-password", "bool", False, "Create a user without password (CN based auth only)"),
        ]),
        Command("delete <user name>", "Deletes a user", user_delete_command),
        Command("get <user name> [options]", "Gets detailed information of a user", user_get_command,
                flags=[Flag("detail", "bool", False, "Show permissions of roles granted to the user")]),
        Command("list", "Lists all users", user_list_command),
        Command("passwd <user name> [options]", "Changes password of user", user_passwd_command, flags=[
            Flag("interactive", "bool", True,
                 "If true, read password from stdin instead of interactive terminal"),
        ]),
        Command("grant-role <user name> <role name>", "Grants a role to a user", user_grant_role_command),
        Command("revoke-role <user name> <role name>", "Revokes a role from a user",
                user_revoke_role_command),
    )  # fmt: skip
    role = Command("role <subcommand>", "Role related commands")
    role.add(
        Command("add <role name>", "Adds a new role", role_add_command),
        Command("delete <role name>", "Deletes a role", role_delete_command),
        Command("get <role name>", "Gets detailed information of a role", role_get_command),
        Command("list", "Lists all roles", role_list_command),
        Command("grant-permission [options] <role name> <permission type> <key> [endkey]",
                "Grants a key to a role", role_grant_permission_command,
                flags=[Flag(name, "bool", False, grant) for name, grant, _ in _PERM_FLAGS]),
        Command("revoke-permission <role name> <key> [endkey]", "Revokes a key from a role",
                role_revoke_permission_command,
                flags=[Flag(name, "bool", False, revoke) for name, _, revoke in _PERM_FLAGS]),
    )  # fmt: skip
    auth = Command("auth <enable or disable>", "Enable or disable authentication")
    auth.add(
        Command("enable", "Enables authentication", auth_enable_command),
        Command("disable", "Disables authentication", auth_disable_command),
    )
    return [user, role, auth]
