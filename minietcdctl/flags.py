"""A small cobra/pflag work-alike: etcdctl's command tree, flag syntax, errors and usage text.

etcdctl is built on Go's cobra and pflag; scripts depend on their exact behaviour, so this
module follows them rather than argparse:

- flags anywhere (``get foo --prefix -w json``), ``--name=value``, ``--name value``,
  ``-w json``, ``-wjson``, ``-w=json``; booleans as ``--prefix`` or ``--prefix=false``;
  ``--`` ends the flags; a repeated string-slice flag appends;
- sub-commands by unique prefix (``etcdctl memb li``);
- global flags also from ``ETCDCTL_<FLAG>`` environment variables (a flag given both ways is
  a fatal conflict, as in etcd's ``pkg/flags``);
- pflag's error texts (``unknown flag: --foo``, ``invalid argument "x" for "--limit" flag:
  ...``) and etcdctl's usage template, rendered through Go's tabwriter.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from minietcd import ETCD_API_VERSION
from minietcd.golang import (
    env_conflict_error,
    env_invalid_value_error,
    env_var_name,
    format_duration,
    parse_bool,
    parse_duration,
    parse_int,
    parse_uint,
    quote,
)
from minietcdctl.gofmt import tabwrite

#: The etcdctl whose output minietcdctl reproduces, and its API version (major.minor).
ETCD_VERSION = ETCD_API_VERSION
API_VERSION = ".".join(ETCD_VERSION.split(".")[:2])


class FlagError(Exception):
    """A command line that pflag/cobra would reject (exit code 1, usage on stdout)."""


class ExitError(Exception):
    """Stop with ``Error: <message>`` on stderr and ``code`` (etcdctl's ExitWithError)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Exit(Exception):
    """Stop with ``code`` and nothing more to print."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


@dataclass
class Flag:
    """One flag: ``kind`` is bool, string, int, uint, duration or strings (a string slice)."""

    name: str
    kind: str
    default: Any
    usage: str
    shorthand: str = ""

    @property
    def def_value(self) -> str:
        if self.kind == "bool":
            return "true" if self.default else "false"
        if self.kind == "duration":
            return format_duration(self.default)
        if self.kind == "strings":
            return "[" + ",".join(self.default) + "]"
        return str(self.default)

    def parse(self, text: str, current: Any, changed: bool) -> Any:
        try:
            if self.kind == "bool":
                return parse_bool(text)
            if self.kind == "int":
                return parse_int(text)
            if self.kind == "uint":
                return parse_uint(text)
            if self.kind == "duration":
                return parse_duration(text)
            if self.kind == "strings":
                values = next(csv.reader(io.StringIO(text))) if text else []
                return (list(current) if changed else []) + values
        except ValueError as e:
            raise FlagError(f'invalid argument {quote(text)} for "{self.display}" flag: {e}') from None
        return text

    @property
    def display(self) -> str:
        return f"-{self.shorthand}, --{self.name}" if self.shorthand else f"--{self.name}"

    def usage_line(self) -> str:
        fmt = f"  -{self.shorthand}, --{self.name}" if self.shorthand else f"      --{self.name}"
        value = quote(self.def_value) if self.kind == "string" else self.def_value
        if self.kind == "bool":
            return f"{fmt}[={value}]\t{self.usage}\n"
        return f"{fmt}={value}\t{self.usage}\n"


Runner = Callable[["Invocation"], Awaitable[None]]


@dataclass
class Command:
    use: str
    short: str
    run: Runner | None = None
    long: str = ""
    flags: list[Flag] = field(default_factory=list)
    persistent: list[Flag] = field(default_factory=list)
    children: list[Command] = field(default_factory=list)
    parent: Command | None = None
    #: Left out of the parents' command lists (cobra's Hidden): commands etcdctl does not have,
    #: so that etcdctl's help texts stay byte for byte.
    hidden: bool = False

    @property
    def name(self) -> str:
        return self.use.split(" ", 1)[0]

    def add(self, *cmds: Command) -> Command:
        for c in cmds:
            c.parent = self
            self.children.append(c)
        self.children.sort(key=lambda c: c.name)
        return self

    @property
    def root(self) -> Command:
        c = self
        while c.parent is not None:
            c = c.parent
        return c

    @property
    def path(self) -> str:
        return self.name if self.parent is None else f"{self.parent.path} {self.name}"

    def help_flag(self) -> Flag:
        return Flag("help", "bool", False, f"help for {self.name}", "h")

    def local_flags(self) -> list[Flag]:
        return sorted([*self.flags, *self.persistent, self.help_flag()], key=lambda f: f.name)

    def inherited_flags(self) -> list[Flag]:
        out: dict[str, Flag] = {}
        c = self.parent
        while c is not None:
            for f in c.persistent:
                out.setdefault(f.name, f)
            c = c.parent
        return sorted(out.values(), key=lambda f: f.name)

    def all_flags(self) -> list[Flag]:
        return [*self.local_flags(), *self.inherited_flags()]

    def find_child(self, word: str) -> Command | None:
        for c in self.children:
            if c.name == word:
                return c
        matches = [c for c in self.children if c.name.startswith(word)]
        return matches[0] if len(matches) == 1 else None

    def usage(self) -> str:
        return usage(self)


@dataclass
class Invocation:
    """A parsed command line: the command, its positional arguments and flag values."""

    command: Command
    args: list[str]
    values: dict[str, Any]
    changed: set[str]
    #: The raw arguments after the root command (etcdctl's watch looks for "--" in os.Args).
    raw_args: list[str]
    #: How many positional arguments came before a "--" (None if there was none).
    args_len_at_dash: int | None = None
    #: Run when the command ends however it ends (closing its clients' channels).
    on_exit: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    def __getitem__(self, name: str) -> Any:
        return self.values[name]


def _strip_flags(args: list[str], flags: Sequence[Flag]) -> list[str]:
    """cobra's stripFlags: the words of ``args`` that are not flags or flag values."""
    bools = {f.name for f in flags if f.kind == "bool"}
    short_bools = {f.shorthand for f in flags if f.kind == "bool" and f.shorthand}
    words: list[str] = []
    rest = list(args)
    while rest:
        s = rest.pop(0)
        if s == "--":
            break
        if (s.startswith("--") and "=" not in s and s[2:] not in bools) or (
            s.startswith("-")
            and not s.startswith("--")
            and "=" not in s
            and len(s) == 2
            and s[1:] not in short_bools
        ):
            if len(rest) <= 1:
                break
            rest.pop(0)
            continue
        if s and not s.startswith("-"):
            words.append(s)
    return words


def find_command(root: Command, args: list[str]) -> tuple[Command, list[str]]:
    """cobra's Find: the deepest command named by the non-flag words of ``args``, and ``args``
    with those words removed."""
    cmd = root
    rest = list(args)
    while True:
        words = _strip_flags(rest, cmd.all_flags())
        if not words:
            return cmd, rest
        child = cmd.find_child(words[0])
        if child is None:
            if cmd.parent is None and cmd.children:
                raise UnknownCommand(words[0], root)
            return cmd, rest
        rest.remove(words[0])
        cmd = child


class UnknownCommand(Exception):
    def __init__(self, word: str, root: Command) -> None:
        msg = f'unknown command "{word}" for "{root.name}"'
        suggestions = [
            c.name for c in root.children if _levenshtein(word, c.name) <= 2 or c.name.startswith(word)
        ]
        if suggestions:
            msg += "\n\nDid you mean this?\n" + "".join(f"\t{s}\n" for s in suggestions)
        super().__init__(msg)
        self.root = root


def _levenshtein(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca.lower() != cb.lower())))
        prev = cur
    return prev[-1]


def parse_flags(cmd: Command, args: list[str]) -> tuple[dict[str, Any], set[str], list[str], int | None]:
    """pflag's interspersed parse of ``args`` against ``cmd``'s flags."""
    flags = {f.name: f for f in cmd.all_flags()}
    shorts = {f.shorthand: f for f in flags.values() if f.shorthand}
    values: dict[str, Any] = {f.name: f.default for f in flags.values()}
    changed: set[str] = set()
    positional: list[str] = []
    at_dash: int | None = None

    def set_value(f: Flag, text: str) -> None:
        values[f.name] = f.parse(text, values[f.name], f.name in changed)
        changed.add(f.name)

    i = 0
    while i < len(args):
        s = args[i]
        i += 1
        if s == "--":
            at_dash = len(positional)
            positional.extend(args[i:])
            break
        if s.startswith("--") and len(s) > 2:
            name, eq, value = s[2:].partition("=")
            f = flags.get(name)
            if f is None:
                raise FlagError(f"unknown flag: --{name}")
            if eq:
                set_value(f, value)
            elif f.kind == "bool":
                set_value(f, "true")
            elif i < len(args):
                set_value(f, args[i])
                i += 1
            else:
                raise FlagError(f"flag needs an argument: {s}")
        elif s.startswith("-") and len(s) > 1 and s != "--":
            shorthands = s[1:]
            while shorthands:
                c = shorthands[0]
                f = shorts.get(c)
                if f is None:
                    raise FlagError(f"unknown shorthand flag: '{c}' in -{shorthands}")
                rest = shorthands[1:]
                if rest.startswith("="):
                    set_value(f, rest[1:])
                    shorthands = ""
                elif f.kind == "bool":
                    set_value(f, "true")
                    shorthands = rest
                elif rest:
                    set_value(f, rest)
                    shorthands = ""
                elif i < len(args):
                    set_value(f, args[i])
                    i += 1
                    shorthands = ""
                else:
                    raise FlagError(f"flag needs an argument: '{c}' in -{c}")
        else:
            positional.append(s)
    return values, changed, positional, at_dash


def apply_env(inv: Invocation, flags: Sequence[Flag], prefix: str = "ETCDCTL") -> None:
    """etcd's ``flags.SetPflagsFromEnv`` for ``flags`` (the inherited ones)."""
    for f in flags:
        key = env_var_name(prefix, f.name)
        if key not in os.environ:
            continue
        if f.name in inv.changed:
            raise ExitError(1, env_conflict_error(key))
        text = os.environ[key]
        if text == "":
            continue
        try:
            inv.values[f.name] = f.parse(text, f.default, False)
        except FlagError as e:
            raise ExitError(1, env_invalid_value_error(text, key, e)) from None


def usage(cmd: Command) -> str:
    """etcdctl's usage template (ctlv3/help.go) for ``cmd``."""
    root = cmd.root
    out = ["NAME:\n"]
    name = cmd.name if cmd.parent is None else cmd.path.split(" ", 1)[1]
    out.append(f"\t{name} - {cmd.short}\n")
    useline = cmd.use if cmd.parent is None else f"{cmd.parent.path} {cmd.use}"
    if "[flags]" not in useline:
        useline += " [flags]"
    out.append(f"\nUSAGE:\n\t{useline}\n")
    if cmd.parent is None:
        out.append(f"\nVERSION:\n\t{ETCD_VERSION}\n")
    if cmd.children:
        out.append(f"\nAPI VERSION:\n\t{API_VERSION}\n")
        out.append("\n\nCOMMANDS:\n")
        for sub in _descendants(cmd):
            if sub.run is not None:
                sub_name = sub.path.split(" ", len(cmd.path.split(" ")))[-1]
                out.append(f"\t{sub_name}\t{sub.short}\n")
    if cmd.long:
        out.append("\nDESCRIPTION:\n")
        for line in cmd.long.strip("\n\t ").split("\n"):
            out.append(f"\t{line}\n")
    out.append("\nOPTIONS:\n" + "".join(f.usage_line() for f in cmd.local_flags()))
    if cmd is not root:
        out.append("\nGLOBAL OPTIONS:\n" + "".join(f.usage_line() for f in cmd.inherited_flags()))
    out.append("\n")
    return tabwrite("".join(out))


def _descendants(cmd: Command) -> list[Command]:
    out: list[Command] = []
    for c in cmd.children:
        if c.hidden:
            continue
        out.append(c)
        out.extend(_descendants(c))
    return out
