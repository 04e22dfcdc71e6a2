"""get, put, del, txn, compaction (etcdctl's get/put/del/txn/compaction_command.go)."""

from __future__ import annotations

import math
import re
import sys
from typing import Any

from minietcd.client import Compare, Op
from minietcd.golang import parse_int, quote, unquote
from minietcdctl.common import (
    EXIT_BAD_ARGS,
    EXIT_BAD_FEATURE,
    EXIT_ERROR,
    EXIT_INVALID_INPUT,
    Ctl,
)
from minietcdctl.flags import (
    Command,
    ExitError,
    Flag,
    FlagError,
    Invocation,
    UnknownCommand,
    find_command,
    parse_flags,
)
from minietcdctl.printers import panic, write

GET_FLAGS = [
    Flag("consistency", "string", "l", "Linearizable(l) or Serializable(s)"),
    Flag("order", "string", "", "Order of results; ASCEND or DESCEND (ASCEND by default)"),
    Flag("sort-by", "string", "", "Sort target; CREATE, KEY, MODIFY, VALUE, or VERSION"),
    Flag("limit", "int", 0, "Maximum number of results"),
    Flag("prefix", "bool", False, "Get keys with matching prefix"),
    Flag(
        "from-key",
        "bool",
        False,
        "Get keys that are greater than or equal to the given key using byte compare",
    ),
    Flag("rev", "int", 0, "Specify the kv revision"),
    Flag("keys-only", "bool", False, "Get only the keys"),
    Flag("print-value-only", "bool", False, 'Only write values when using the "simple" output format'),
]
PUT_FLAGS = [
    Flag("lease", "string", "0", "lease ID (in hexadecimal) to attach to the key"),
    Flag("prev-kv", "bool", False, "return the previous key-value pair before modification"),
    Flag("ignore-value", "bool", False, "updates the key using its current value"),
    Flag("ignore-lease", "bool", False, "updates the key using its current lease"),
]
DEL_FLAGS = [
    Flag("prefix", "bool", False, "delete keys with matching prefix"),
    Flag("prev-kv", "bool", False, "return deleted key-value pairs"),
    Flag(
        "from-key",
        "bool",
        False,
        "delete keys that are greater than or equal to the given key using byte compare",
    ),
]
PUT_LONG = """
Puts the given key into the store.

When <value> begins with '-', <value> is interpreted as a flag.
Insert '--' for workaround:

$ put <key> -- <value>
$ put -- <key> <value>

If <value> isn't given as a command line argument and '--ignore-value' is not specified,
this command tries to read the value from standard input.

If <lease> isn't given as a command line argument and '--ignore-lease' is not specified,
this command tries to read the value from standard input.

For example,
$ cat file | put <key>
will store the content of the file to <key>.
"""

_SORT_TARGETS = {"CREATE": "create", "KEY": "key", "MODIFY": "mod", "VALUE": "value", "VERSION": "version"}


def get_options(inv: Invocation) -> tuple[str, dict[str, Any]]:
    """etcdctl's getGetOp: the key and the options of a get, or exit as etcdctl does."""
    args = inv.args
    if not args:
        raise ExitError(
            EXIT_BAD_ARGS, "get command needs one argument as key and an optional argument as range_end"
        )
    if inv["prefix"] and inv["from-key"]:
        raise ExitError(
            EXIT_BAD_ARGS, "`--prefix` and `--from-key` cannot be set at the same time, choose one"
        )
    opts: dict[str, Any] = {}
    consistency = inv["consistency"]
    if consistency == "s":
        opts["serializable"] = True
    elif consistency != "l":
        raise ExitError(EXIT_BAD_FEATURE, f"unknown consistency flag {quote(consistency)}")
    key = args[0]
    if len(args) > 1:
        if inv["prefix"] or inv["from-key"]:
            raise ExitError(
                EXIT_BAD_ARGS,
                "too many arguments, only accept one argument when `--prefix` or `--from-key` is set",
            )
        opts["range_end"] = args[1]
    opts["limit"] = inv["limit"]
    if inv["rev"] > 0:
        opts["revision"] = inv["rev"]
    order = inv["order"].upper()
    if order not in ("ASCEND", "DESCEND", ""):
        raise ExitError(EXIT_BAD_FEATURE, f"bad sort order {inv['order']}")
    target = inv["sort-by"].upper()
    if target not in (*_SORT_TARGETS, ""):
        raise ExitError(EXIT_BAD_FEATURE, f"bad sort target {inv['sort-by']}")
    opts["sort_order"] = order.lower() or "none"
    opts["sort_target"] = _SORT_TARGETS.get(target, "key")
    if inv["prefix"]:
        opts["prefix"] = True
    if inv["from-key"]:
        opts["from_key"] = True
    if inv["keys-only"]:
        opts["keys_only"] = True
    return key, opts


def put_options(inv: Invocation, stdin_text: str | None = None) -> tuple[str, str, dict[str, Any]]:
    """etcdctl's getPutOp."""
    args = inv.args
    usage = "put command needs 1 argument and input from stdin or 2 arguments"
    if not args:
        raise ExitError(EXIT_BAD_ARGS, usage)
    key = args[0]
    if inv["ignore-value"] and len(args) > 1:
        raise ExitError(EXIT_BAD_ARGS, "put command needs only 1 argument when 'ignore-value' is set")
    value = ""
    if not inv["ignore-value"]:
        if len(args) > 1:
            value = args[1]
        else:
            data = stdin_text if stdin_text is not None else _read_stdin()
            if data == "":
                raise ExitError(EXIT_BAD_ARGS, usage)
            value = data
    try:
        lease = parse_int(inv["lease"], 16)
    except ValueError as e:
        raise ExitError(EXIT_BAD_ARGS, f"bad lease ID ({e}), expecting ID in Hex") from None
    opts: dict[str, Any] = {}
    if lease:
        opts["lease"] = lease
    if inv["prev-kv"]:
        opts["prev_kv"] = True
    if inv["ignore-value"]:
        opts["ignore_value"] = True
    if inv["ignore-lease"]:
        opts["ignore_lease"] = True
    return key, value, opts


def _read_stdin() -> str:
    try:
        return sys.stdin.buffer.read().decode("utf-8", "surrogateescape")
    except OSError:
        return ""


def del_options(inv: Invocation) -> tuple[str, dict[str, Any]]:
    """etcdctl's getDelOp."""
    args = inv.args
    if not args or len(args) > 2:
        raise ExitError(
            EXIT_BAD_ARGS, "del command needs one argument as key and an optional argument as range_end"
        )
    if inv["prefix"] and inv["from-key"]:
        raise ExitError(
            EXIT_BAD_ARGS, "`--prefix` and `--from-key` cannot be set at the same time, choose one"
        )
    opts: dict[str, Any] = {}
    key = args[0]
    if len(args) > 1:
        if inv["prefix"] or inv["from-key"]:
            raise ExitError(
                EXIT_BAD_ARGS,
                "too many arguments, only accept one argument when `--prefix` or `--from-key` is set",
            )
        opts["range_end"] = args[1]
    if inv["prefix"]:
        opts["prefix"] = True
    if inv["prev-kv"]:
        opts["prev_kv"] = True
    if inv["from-key"]:
        opts["from_key"] = True
    return key, opts


async def get_command(inv: Invocation) -> None:
    key, opts = get_options(inv)
    ctl = Ctl(inv)
    c = ctl.client()
    resp = await ctl.call(c.get(key, timeout=ctl.command_timeout, **opts))
    if inv["print-value-only"]:
        if ctl.printer.fmt != "simple":
            raise ExitError(EXIT_BAD_ARGS, "print-value-only is only for `--write-out=simple`")
        ctl.printer.value_only = True
    ctl.printer.get(resp.raw)


async def put_command(inv: Invocation) -> None:
    key, value, opts = put_options(inv)
    ctl = Ctl(inv)
    c = ctl.client()
    resp = await ctl.call(c.put(key, value, timeout=ctl.command_timeout, **opts))
    ctl.printer.put(resp.raw)


async def del_command(inv: Invocation) -> None:
    key, opts = del_options(inv)
    ctl = Ctl(inv)
    c = ctl.client()
    resp = await ctl.call(c.delete(key, timeout=ctl.command_timeout, **opts))
    ctl.printer.delete(resp.raw)


async def compaction_command(inv: Invocation) -> None:
    if len(inv.args) != 1:
        raise ExitError(EXIT_BAD_ARGS, "compaction command needs 1 argument")
    try:
        rev = parse_int(inv.args[0], 10)
    except ValueError as e:
        raise ExitError(EXIT_ERROR, str(e)) from None
    ctl = Ctl(inv)
    c = ctl.client()
    await ctl.call(c.compact(rev, physical=inv["physical"], timeout=ctl.command_timeout))
    write(f"compacted revision {rev}\n")


# -------------------------------------------------------------------------------- txn

_ARGIFY = re.compile(r"""\"(?:[^"\\]|\\.)*\"|'[^']*'|[^'"\s]\S*[^'"\s]?""")


def argify(s: str) -> list[str]:
    """etcdctl's argify (including its single-quote slicing quirk)."""
    args = _ARGIFY.findall(s)
    for i, a in enumerate(args):
        if not a:
            continue
        if a[0] == "'":
            end = len(args) - 1
            if end < 1 or end > len(a):
                panic(f"runtime error: slice bounds out of range [1:{end}]")
            args[i] = a[1:end]
        elif a[0] == '"':
            try:
                args[i] = unquote(a)
            except ValueError:
                raise ExitError(EXIT_INVALID_INPUT, "unexpected EOF") from None
    return args


def _scan_quoted(s: str, pos: int) -> tuple[str, int]:
    """Go's fmt scan of a %q operand at ``pos`` (after skipping spaces)."""
    while pos < len(s) and s[pos] in " \t\r":
        pos += 1
    if pos >= len(s):
        raise ValueError("unexpected EOF")
    q = s[pos]
    if q == "`":
        end = s.find("`", pos + 1)
        if end < 0:
            raise ValueError("unexpected EOF")
        return s[pos + 1 : end], end + 1
    if q != '"':
        raise ValueError("expected quoted string")
    i = pos + 1
    while i < len(s):
        if s[i] == "\\":
            i += 2
            continue
        if s[i] == '"':
            return unquote(s[pos : i + 1]), i + 1
        i += 1
    raise ValueError("unexpected EOF")


def _sscanf_compare(text: str) -> tuple[int, str, str, str, str | None]:
    """``fmt.Sscanf(text, "%q) %s %q", &key, &op, &val)``: (n, key, op, val, error)."""
    key = op = val = ""
    try:
        key, pos = _scan_quoted(text, 0)
    except ValueError as e:
        return 0, key, op, val, str(e)
    if pos >= len(text) or text[pos] != ")":
        return 1, key, op, val, "input does not match format"
    pos += 1
    while pos < len(text) and text[pos] in " \t\r":
        pos += 1
    m = re.match(r"\S+", text[pos:])
    if m is None:
        return 1, key, op, val, "unexpected EOF"
    op = m.group(0)
    pos += m.end()
    try:
        val, pos = _scan_quoted(text, pos)
    except ValueError as e:
        return 2, key, op, val, str(e)
    return 3, key, op, val, None


_RESULT_OPS = {"=", "!=", ">", "<"}


def parse_compare(line: str) -> Compare:
    """etcdctl's parseCompare: ``<target>("<key>") <op> "<value>"``."""
    if "(" not in line:
        raise ExitError(EXIT_INVALID_INPUT, f"malformed comparison: {line}")
    target, rest = line.split("(", 1)
    n, key, op, val, err = _sscanf_compare(rest)
    if n != 3:
        raise ExitError(
            EXIT_INVALID_INPUT, f"malformed comparison: {line}; got {target}({quote(key)}) {op} {quote(val)}"
        )
    if err is not None:
        raise ExitError(EXIT_INVALID_INPUT, f"malformed comparison: {line} ({err})")
    if target not in ("ver", "version", "c", "create", "m", "mod", "val", "value", "lease"):
        raise ExitError(EXIT_INVALID_INPUT, f"malformed comparison: {line} (unknown target {target})")
    if target == "lease":
        panic("bad value")
    number = 0
    if target not in ("val", "value"):
        try:
            number = parse_int(val, 10)
        except ValueError:
            raise ExitError(EXIT_INVALID_INPUT, f"invalid txn compare request: {line}") from None
    if op not in _RESULT_OPS:
        panic("Unknown result op")
    if target in ("ver", "version"):
        return Compare.version(key, op, number)
    if target in ("c", "create"):
        return Compare.create(key, op, number)
    if target in ("m", "mod"):
        return Compare.mod(key, op, number)
    return Compare.value(key, op, val)


def _txn_op_tree() -> Command:
    root = Command("", "")
    root.add(
        Command(
            "put [options] <key> <value> (<value> can also be given from stdin)", "", flags=list(PUT_FLAGS)
        ),
        Command("get [options] <key> [range_end]", "", flags=list(GET_FLAGS)),
        Command("del [options] <key> [range_end]", "", flags=list(DEL_FLAGS)),
    )
    return root


def parse_request_union(line: str) -> Op:
    """etcdctl's parseRequestUnion: one ``get``/``put``/``del`` line of a transaction."""
    args = argify(line)
    if len(args) < 2:
        raise ExitError(EXIT_INVALID_INPUT, f"invalid txn compare request: {line}")
    root = _txn_op_tree()
    try:
        cmd, rest = find_command(root, args)
        if cmd is root:
            raise FlagError("unknown command")
        values, changed, positional, at_dash = parse_flags(cmd, rest)
    except (FlagError, UnknownCommand):
        raise ExitError(EXIT_INVALID_INPUT, f"invalid txn request: {line}") from None
    inv = Invocation(cmd, positional, values, changed, args, at_dash)
    if cmd.name == "put":
        key, value, opts = put_options(inv, stdin_text="")
        return Op.put(key, value, **opts)
    if cmd.name == "get":
        key, gopts = get_options(inv)
        return Op.get(key, **gopts)
    key, dopts = del_options(inv)
    return Op.delete(key, **dopts)


class _Lines:
    """bufio.Reader.ReadString('\\n') over stdin: a line without its newline at EOF is an error."""

    def __init__(self) -> None:
        self._data = (
            sys.stdin.buffer.read().decode("utf-8", "surrogateescape") if not sys.stdin.closed else ""
        )
        self._pos = 0

    def read_line(self) -> str:
        end = self._data.find("\n", self._pos)
        if end < 0:
            self._pos = len(self._data)
            raise ExitError(EXIT_INVALID_INPUT, "EOF")
        line = self._data[self._pos : end + 1]
        self._pos = end + 1
        return line


async def txn_command(inv: Invocation) -> None:
    if inv.args:
        raise ExitError(EXIT_BAD_ARGS, "txn command does not accept argument")
    ctl = Ctl(inv)
    c = ctl.client()
    interactive = inv["interactive"]
    reader = _Lines()

    def prompt(s: str) -> None:
        if interactive:
            write(s + "\n")

    prompt("compares:")
    compares = []
    while line := reader.read_line().strip():
        compares.append(parse_compare(line))
    prompt("success requests (get, put, del):")
    success = []
    while line := reader.read_line().strip():
        success.append(parse_request_union(line))
    prompt("failure requests (get, put, del):")
    failure = []
    while line := reader.read_line().strip():
        failure.append(parse_request_union(line))
    txn = c.txn(timeout=math.inf).if_(*compares).then(*success).else_(*failure)
    resp = await ctl.call(txn.commit())
    ctl.printer.txn(resp.raw)


def commands() -> list[Command]:
    return [
        Command("get [options] <key> [range_end]", "Gets the key or a range of keys", get_command,
                flags=list(GET_FLAGS)),
        Command("put [options] <key> <value> (<value> can also be given from stdin)",
                "Puts the given key into the store", put_command, long=PUT_LONG, flags=list(PUT_FLAGS)),
        Command("del [options] <key> [range_end]", "Removes the specified key or range of keys [key, range_end)",  # noqa: E501
                del_command, flags=list(DEL_FLAGS)),
        Command("txn [options]", "Txn processes all the requests in one transaction", txn_command,
                flags=[Flag("interactive", "bool", False, "Input transaction in interactive mode", "i")]),
        Command("compaction [options] <revision>", "Compacts the event history in etcd", compaction_command,
                flags=[Flag("physical", "bool", False,
                            "'true' to wait for compaction to physically remove all old revisions")]),
    ]  # fmt: skip
