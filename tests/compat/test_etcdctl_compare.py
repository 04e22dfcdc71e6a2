"""The real etcdctl gives the same output against minietcd as against real etcd 3.4.

One scripted sequence of etcdctl commands (``SCRIPT``) runs against a fresh 3-member cluster.
Each command's exit code, stdout and stderr are normalised (``normalise``: only what
legitimately differs between two runs, such as ports, member IDs, raft terms and db sizes) and
compared, command by command, with ``etcdctl_golden.txt``: real etcd's normalised output,
checked in, which also documents exactly what etcd prints.

    pytest tests/compat/test_etcdctl_compare.py -k etcd_only            # etcd still matches golden
    pytest tests/compat/test_etcdctl_compare.py -k etcd_only --rewrite  # re-record the golden file
    pytest tests/compat/test_etcdctl_compare.py -k minietcd --runxfail  # minietcd matches golden

Revisions are not normalised: the same commands on a fresh cluster give the same revisions.

To extend the script, add ``(command, stdin)`` entries to ``SCRIPT`` and re-record with
``--rewrite``. Commands are etcdctl arguments (split with shlex) with placeholders:

    {ep:n1}    client URL of member n1        {eps}      client URLs of all running members
    {peer:n4}  peer URL of member n4 (a new name reserves ports for a member to add later)
    {id:n2}    member ID of n2, in hex        {port:x}   a free port, the same for one label
    {tmp}      a scratch directory            {big}      a value larger than --max-request-bytes

A command without ``--endpoints`` goes to n1 (the leader at the start). Commands starting with
``@`` drive the harness and are not compared: ``@start n4`` starts the member added by the last
``member add`` and waits until it is shown as started and has applied what the leader had
committed; ``@healthy`` waits until every running member is healthy and has applied what the
leader had committed.
"""

from __future__ import annotations

import difflib
import json
import re
import shlex
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.harness import (
    LEARNER_NOT_READY,
    RECONFIG_NOT_READY,
    ClusterError,
    ProcessCluster,
    etcd_binary,
    free_ports,
    minietcd_binary,
    require_binary,
)

pytestmark = [pytest.mark.compat, pytest.mark.cluster]

GOLDEN = Path(__file__).with_name("etcdctl_golden.txt")
MAX_REQUEST_BYTES = 4096
MAX_TXN_OPS = 8
# Flags every member of both clusters gets: small limits so the error paths are cheap to reach.
SERVER_FLAGS = ("--max-request-bytes", str(MAX_REQUEST_BYTES), "--max-txn-ops", str(MAX_TXN_OPS))
BIG_VALUE = "x" * (MAX_REQUEST_BYTES + 100)
# The whole script takes about 12 s against etcd; past this, a run stops and reports what it has.
SCRIPT_BUDGET_S = 45.0
MAX_DIFFS_SHOWN = 15

TXN_SUCCESS = """\
value("foo") = "bar"
mod("foo1") > "0"

put txn-ok yes
get foo --prefix --limit 2
del foo3

put txn-failed yes

"""
TXN_FAILURE = """\
version("foo") = "100"

put never yes

put txn-else yes
get txn-else

"""
TXN_TOO_MANY_OPS = "\n" + "".join(f"put many{i} v\n" for i in range(MAX_TXN_OPS + 1)) + "\n\n"

# (command, stdin). Order matters: revisions, membership and leadership carry from one to the next.
SCRIPT: list[tuple[str, str | None]] = [
    # --- put / get, every read flag and output format
    ("put foo bar", None),
    ("put foo1 bar1", None),
    ("put foo2 bar2", None),
    ("put foo3 bar3", None),
    ("put zoo animal", None),
    ("put a 1", None),
    ("put foo bar-v2 --prev-kv", None),
    ("put foo bar", None),
    ("put from-stdin", "value from stdin"),
    ("put foo1 bar1 -w json", None),
    ("put foo2 bar2 -w fields", None),
    ("put foo3 bar3 -w simple", None),
    ("get foo", None),
    ("get foo -w json", None),
    ("get foo -w fields", None),
    ("get foo -w table", None),
    ("get nosuchkey", None),
    ("get nosuchkey -w json", None),
    ("get foo --prefix", None),
    ("get foo --prefix -w json", None),
    ("get foo --prefix -w fields", None),
    ("get foo foo3", None),
    ("get foo --from-key", None),
    ("get f --from-key --keys-only", None),
    ("get foo --prefix --limit 2", None),
    ("get foo --prefix --limit 2 -w json", None),
    ("get foo --prefix --keys-only", None),
    # etcdctl 3.4 has no --count-only (3.5 added it): a client-side usage error, kept as a record.
    ("get foo --prefix --count-only", None),
    ("get foo --prefix --print-value-only", None),
    ("get foo --prefix --sort-by=VALUE --order=DESCEND", None),
    ("get foo --prefix --sort-by=MODIFY --order=ASCEND", None),
    ("get foo --prefix --sort-by=CREATE --order=DESCEND --keys-only", None),
    ("get foo --prefix --sort-by=VERSION --order=DESCEND -w json", None),
    ("get foo --prefix --sort-by=KEY --order=DESCEND --limit 2", None),
    ("get foo --prefix --order=DESCEND", None),
    ("get foo --rev 1", None),
    ("get foo --rev 2", None),
    ("get foo --rev 3 --prefix -w json", None),
    ("get foo --consistency=s", None),
    ("get foo --prefix --consistency=s -w json", None),
    ("get foo --consistency=l -w fields", None),
    ("get --prefix ''", None),
    # --- del
    ("del nosuchkey", None),
    ("del foo3", None),
    ("del foo2 --prev-kv", None),
    ("del foo2 --prev-kv -w json", None),
    ("put foo2 again", None),
    ("del foo --prefix --prev-kv", None),
    ("put foo bar", None),
    ("put foo1 bar1", None),
    ("del a foo -w json", None),
    ("del zoo --from-key", None),
    ("get '' --from-key --keys-only", None),
    ("put foo3 bar3", None),
    # --- txn (non-interactive: compares, blank line, success ops, blank line, failure ops)
    ("txn", TXN_SUCCESS),
    ("txn", TXN_SUCCESS),
    ("txn -w json", TXN_FAILURE),
    ("txn -w fields", TXN_FAILURE),
    ("txn", 'create("txn-ok") > "0"\n\ndel txn-ok --prev-kv\n\n\n'),
    ("txn", "\n\nput empty-compare yes\n\n"),
    ("get '' --from-key -w json", None),
    # --- compaction
    ("compaction 5", None),
    ("compaction 5", None),
    ("compaction 3", None),
    ("compaction 100000", None),
    ("get foo --rev 4", None),
    ("get foo --rev 5", None),
    ("get foo --rev 100000", None),
    ("compaction --physical 6", None),
    ("get foo --rev 6 -w json", None),
    # --- errors
    ("put '' value", None),
    ("get ''", None),
    ("del ''", None),
    ("put big {big}", None),
    ("txn", TXN_TOO_MANY_OPS),
    ("txn", 'value("foo") = \n\n\n'),
    ("put", None),
    ("get", None),
    ("get foo --sort-by=BOGUS", None),
    ("get foo --rev -1", None),
    ("put foo bar --lease=1234", None),
    ("put foo bar --ignore-value", None),
    ("get foo -w bogus", None),
    ("nosuchcommand", None),
    # --- members
    ("member list", None),
    ("member list -w table", None),
    ("member list -w json", None),
    ("member list --endpoints={ep:n3}", None),
    ("endpoint status --endpoints={ep:n1}", None),
    ("endpoint status --cluster", None),
    ("endpoint status --cluster -w table", None),
    ("endpoint status --cluster -w json", None),
    ("endpoint health --cluster", None),
    ("endpoint health --cluster -w json", None),
    ("endpoint health --endpoints={eps}", None),
    ("endpoint hashkv --cluster", None),
    ("endpoint hashkv --cluster -w table", None),
    ("endpoint hashkv --endpoints={ep:n2} --rev 7", None),
    ("move-leader {id:n2} --endpoints={eps}", None),
    ("move-leader {id:n2} --endpoints={eps}", None),
    ("move-leader 1234 --endpoints={eps}", None),
    ("move-leader {id:n3} --endpoints={ep:n3}", None),
    ("endpoint status --cluster -w table", None),
    ("member add n4 --learner --peer-urls={peer:n4}", None),
    ("member list", None),
    ("@start n4", None),
    ("member list -w table", None),
    ("endpoint status --endpoints={ep:n4}", None),
    # A learner refuses linearizable reads with Unavailable, which etcdctl retries 100 times.
    ("get foo --endpoints={ep:n4} --command-timeout=60s", None),
    ("get foo --endpoints={ep:n4} --consistency=s", None),
    ("member promote {id:n4}", None),
    ("member promote {id:n4}", None),
    ("member promote {id:n1}", None),
    ("member promote 1234", None),
    ("@healthy", None),
    ("member list -w json", None),
    ("endpoint status --cluster -w table", None),
    ("member add n5 --peer-urls={peer:n5}", None),
    ("member list", None),
    ("member update {id:n5} --peer-urls=http://127.0.0.1:{port:n5b}", None),
    ("member update {id:n5} --peer-urls=http://127.0.0.1:{port:n5b} -w json", None),
    ("member list -w table", None),
    ("member remove {id:n5}", None),
    ("member remove {id:n5}", None),
    ("member update {id:n5} --peer-urls=http://127.0.0.1:{port:n5b}", None),
    ("member remove 1234", None),
    ("member remove zz", None),
    ("member update 1234 --peer-urls=http://127.0.0.1:{port:n5b}", None),
    ("member add n1 --peer-urls={peer:n1}", None),
    ("member add n6", None),
    ("member add n6 --peer-urls=not-a-url", None),
    ("member list", None),
    # --- snapshot, alarms, defrag
    ("snapshot save {tmp}/snap.db", None),
    ("snapshot status {tmp}/snap.db", None),
    ("snapshot status {tmp}/snap.db -w table", None),
    ("snapshot status {tmp}/snap.db -w json", None),
    ("snapshot save {tmp}/snap.db --endpoints={eps}", None),
    ("snapshot status {tmp}/no-such-file.db", None),
    ("alarm list", None),
    ("alarm list -w json", None),
    ("alarm disarm", None),
    ("defrag", None),
    ("defrag --cluster", None),
    ("endpoint status --cluster -w table", None),
    ("get '' --from-key --keys-only", None),
    ("member remove {id:n4}", None),
    ("member list", None),
    ("member list -w table", None),
]

# Reconfiguration commands are retried while etcd answers RECONFIG_NOT_READY (it does until its
# peers have been connected for 5 s) or LEARNER_NOT_READY (promoting a learner that lags): only
# the final attempt is compared.
RETRIED = ("member add", "member remove", "member promote", "member update")
RETRY_IF = (RECONFIG_NOT_READY, LEARNER_NOT_READY)


@dataclass
class StepResult:
    command: str
    stdin: str | None
    returncode: int
    stdout: str
    stderr: str

    def render(self) -> str:
        out = [f"=== {self.command}"]
        if self.stdin is not None:
            out += ["--- stdin", self.stdin.rstrip("\n")]
        out += [f"--- exit {self.returncode}", "--- stdout", self.stdout.rstrip("\n")]
        out += ["--- stderr", self.stderr.rstrip("\n")]
        return "\n".join(out).rstrip("\n") + "\n"


@dataclass
class Context:
    """What the runner learned about one cluster: the values ``normalise`` replaces."""

    cluster: ProcessCluster
    tmp: Path
    cluster_id: int = 0
    ports: dict[int, str] = field(default_factory=dict)  # port -> placeholder
    ids: dict[int, str] = field(default_factory=dict)  # member ID -> placeholder
    extra_ports: dict[str, int] = field(default_factory=dict)  # {port:label} -> port

    def learn(self) -> None:
        if not self.cluster_id:
            self.cluster_id = self.cluster.cluster_id()
        for i, m in enumerate(self.cluster.members):
            self.ports[m.client_port] = f"<client:{m.name}>"
            self.ports[m.peer_port] = f"<peer:{m.name}>"
            if m.member_id is None and m.running:
                self.cluster.member_id(i)
            if m.member_id is not None:
                self.ids[m.member_id] = f"<id:{m.name}>"
        for label, port in self.extra_ports.items():
            self.ports[port] = f"<port:{label}>"


def expand(command: str, ctx: Context) -> list[str]:
    """The etcdctl argument list for one SCRIPT command (placeholders filled in)."""
    c = ctx.cluster

    def member(name: str) -> int:
        try:
            return c.index_of(name)
        except KeyError:
            return c.add_member_slot(name)  # a member the script will add

    def sub(m: re.Match[str]) -> str:
        kind, _, arg = m.group(1).partition(":")
        if kind == "ep":
            return c.endpoint(c.index_of(arg))
        if kind == "eps":
            return ",".join(c.endpoint(i) for i in c.running_indexes())
        if kind == "peer":
            return c.members[member(arg)].peer_url
        if kind == "id":
            return f"{c.member_id(c.index_of(arg)):x}"
        if kind == "port":
            if arg not in ctx.extra_ports:
                ctx.extra_ports[arg] = free_ports(1)[0]
            return str(ctx.extra_ports[arg])
        if kind == "tmp":
            return str(ctx.tmp)
        if kind == "big":
            return BIG_VALUE
        raise ValueError(f"unknown placeholder {m.group(0)} in {command!r}")

    args = [re.sub(r"\{([a-z]+(?::[\w-]+)?)\}", sub, a) for a in shlex.split(command)]
    if not any(a.startswith("--endpoints") for a in args):
        args.append(f"--endpoints={c.endpoint(0)}")
    ctx.learn()
    return args


def run_action(command: str, ctx: Context, last_add_stdout: str) -> None:
    c = ctx.cluster
    verb, _, arg = command.partition(" ")
    if verb == "@start":
        i = c.index_of(arg)
        c.start_added_member(i, last_add_stdout)
        c.wait_published(i)
        c.wait_caught_up(i)
    elif verb == "@healthy":
        c.wait_converged()
    else:
        raise ValueError(f"unknown action {command!r}")


@dataclass
class Run:
    results: list[StepResult]
    aborted: str | None = None  # why the script stopped before its end, if it did


def run_script(cluster: ProcessCluster, tmp: Path, raw: bool = False) -> Run:
    """Start ``cluster``, make n1 the leader, run SCRIPT; return the normalised results
    (``raw=True``: as printed, for debugging). A harness action that fails, an etcdctl that hangs
    or a script that overruns SCRIPT_BUDGET_S stops the run; the results so far are returned."""
    cluster.start()
    cluster.wait_healthy(30.0)
    cluster.transfer_leadership(0)
    deadline = time.monotonic() + SCRIPT_BUDGET_S
    ctx = Context(cluster, tmp)
    ctx.learn()
    run = Run([])
    last_add = ""
    for n, (command, stdin) in enumerate(SCRIPT, 1):
        if time.monotonic() > deadline:
            run.aborted = f"the script overran its {SCRIPT_BUDGET_S} s budget before line {n}: {command}"
            break
        try:
            if command.startswith("@"):
                run_action(command, ctx, last_add)
                ctx.learn()
                continue
            args = expand(command, ctx)
            if command.startswith(RETRIED):
                r = cluster.etcdctl_retry(*args, input=stdin, retry_if=RETRY_IF)
            else:
                r = cluster.etcdctl(*args, input=stdin)
        except (ClusterError, subprocess.TimeoutExpired) as e:
            logs = "" if isinstance(e, ClusterError) else "\n" + cluster.log_tails()
            run.aborted = f"script line {n} ({command}) failed: {e}{logs}"
            break
        if command.startswith("member add") and r.returncode == 0:
            last_add = r.stdout
            added = re.search(r"^Member +([0-9a-f]+) added", r.stdout, re.M)
            if added is not None:
                cluster.members[cluster.index_of(args[2])].member_id = int(added.group(1), 16)
        ctx.learn()
        result = StepResult(command, stdin, r.returncode, r.stdout, r.stderr)
        run.results.append(result if raw else normalise(result, ctx))
    return run


# ------------------------------------------------------------------------------- normalisation

# Values that differ between two runs of the same script, by the name etcdctl gives them: JSON key
# (-w json), field name (-w fields), column header (-w table; the positional fields of -w simple
# are given the same names, see SIMPLE_COLUMNS). Each is replaced by its placeholder.
VOLATILE: dict[str, str] = {
    # Raft terms count elections, whose timing is not the server's to choose.
    **dict.fromkeys(("raft_term", "raftTerm", "RaftTerm", "RAFT TERM"), "<raft-term>"),
    # Raft log indexes also count internal entries (publishing names, cluster version, ...).
    **dict.fromkeys(("raftIndex", "RaftIndex", "RAFT INDEX"), "<raft-index>"),
    **dict.fromkeys(("raftAppliedIndex", "RaftAppliedIndex", "RAFT APPLIED INDEX"), "<raft-applied>"),
    # Database sizes depend on the storage engine's page layout.
    **dict.fromkeys(("dbSize", "DBSize", "DB SIZE", "totalSize", "TOTAL SIZE"), "<db-size>"),
    **dict.fromkeys(("dbSizeInUse", "DBSizeInUse"), "<db-size-in-use>"),
    # The number of records in a snapshot file counts the storage engine's own bookkeeping.
    **dict.fromkeys(("totalKey", "TOTAL KEYS"), "<total-keys>"),
    # Server version strings ("3.4.23") differ; a string "version" (never a key's int version).
    **dict.fromkeys(("version", "Version", "VERSION"), "<version>"),
    # Latencies.
    **dict.fromkeys(("took",), "<took>"),
}
# Hashes (of the KV store, of a snapshot file) depend on the storage encoding. They are numbered by
# first appearance within one command's output, so "all members have the same hash" still shows.
HASH_NAMES = ("hash", "Hash", "HASH")
# Names for the comma-separated fields of `-w simple` outputs that carry volatile values.
SIMPLE_COLUMNS: dict[str, list[str]] = {
    "endpoint status": ["ENDPOINT", "ID", "VERSION", "DB SIZE", "IS LEADER", "IS LEARNER", "RAFT TERM",
                        "RAFT INDEX", "RAFT APPLIED INDEX", "ERRORS"],
    "endpoint hashkv": ["ENDPOINT", "HASH"],
    "snapshot status": ["HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE"],
}  # fmt: skip


def _is_unordered(command: str) -> bool:
    """Outputs whose line order carries no meaning: member lists come sorted by (random) member
    ID, --cluster commands follow that order, and endpoint health answers in completion order."""
    return command.startswith(("member list", "endpoint health")) or "--cluster" in command


def _alternation(words: dict[str, str]) -> str:
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


class _Normaliser:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.hashes: dict[str, str] = {}
        ids = {**ctx.ids, ctx.cluster_id: "<cluster-id>"}
        ids.pop(0, None)
        self.ids_by_int = ids
        # Member and cluster IDs: in hex as etcdctl prints them, %x or %16x (space-padded, so the
        # padding depends on the ID), and in decimal (JSON, fields).
        padded = {f"{i:16x}": p for i, p in ids.items() if i < 1 << 60}
        plain = {f"{i:x}": p for i, p in ids.items()} | {str(i): p for i, p in ids.items()}
        self.id_res = [
            (re.compile(rf"(?<=[ ])({_alternation(padded)})\b"), padded),
            (re.compile(rf"(?<![0-9A-Za-z])({_alternation(plain)})(?![0-9A-Za-z])"), plain),
        ]

    def hash(self, value: object) -> str:
        return self.hashes.setdefault(str(value), f"<hash-{len(self.hashes) + 1}>")

    def named(self, name: str, value: str) -> str:
        """The placeholder for a value etcdctl printed under ``name``, or the value itself."""
        if name in HASH_NAMES:
            return self.hash(value)
        if name in VOLATILE and value not in ("", "0"):  # empty and 0 mean "not set": kept
            return VOLATILE[name]
        return value

    def text(self, s: str) -> str:
        # URLs: every port is random; name it after the member (or label) it belongs to.
        s = re.sub(
            r"127\.0\.0\.1:(\d+)",
            lambda m: self.ctx.ports.get(int(m.group(1)), f"<unknown-port:{m.group(1)}>"),
            s,
        )
        # Member and cluster IDs are derived from the (random) peer URLs and the time.
        for regex, table in self.id_res:
            if table:
                s = regex.sub(lambda m, t=table: t[m.group(1)], s)  # type: ignore[misc]  # binds this table now
        # Scratch paths.
        s = s.replace(str(self.ctx.tmp), "<tmp>")
        # etcdctl health latencies.
        s = re.sub(r"took = [0-9.]+[µnm]?s", "took = <took>", s)
        # Each etcdctl process names its gRPC target after a random client UUID.
        s = re.sub(r"client-[0-9a-f-]{36}", "client-<uuid>", s)
        return s

    def json_value(self, v: Any, key: str = "") -> Any:
        if isinstance(v, dict):
            return {k: self.json_value(x, k) for k, x in v.items()}
        if isinstance(v, list):
            items = [self.json_value(x, key) for x in v]
            # Member lists and --cluster arrays (top level) come in member-ID order: random.
            if key in ("members", "") and all(isinstance(x, dict) for x in items):
                items.sort(key=lambda x: json.dumps(x, sort_keys=True))
            return items
        if isinstance(v, bool):
            return v
        if isinstance(v, int):
            if key in HASH_NAMES:
                return self.hash(v)
            if key in VOLATILE and key != "version" and v != 0:  # an int "version" is a key's version
                return VOLATILE[key]
            return self.ids_by_int.get(v, v)
        if isinstance(v, float):  # zap's epoch timestamps, "took" in seconds
            return f"<{key or 'float'}>"
        if isinstance(v, str):
            if key == "ts":  # log timestamps
                return "<ts>"
            if key in ("took", "size"):  # latencies and sizes in etcdctl's own log lines
                return f"<{key}>"
            if key in VOLATILE:
                return VOLATILE[key]
            return self.text(v)
        return v

    def json_line(self, line: str) -> str:
        """A line of JSON (etcdctl -w json, or one of its zap log lines) with values normalised;
        other lines go through ``text``."""
        try:
            v = json.loads(line, object_pairs_hook=dict)
        except ValueError:
            return self.text(line)
        return json.dumps(self.json_value(v), separators=(",", ":"), ensure_ascii=False)

    def fields_line(self, line: str) -> str:
        m = re.fullmatch(r'"(\w+)" : (.*)', line)
        if m is None:
            return self.text(line)
        name, value = m.groups()
        if name == "Version" and not value.startswith('"'):  # an int "Version" is a key's version
            return self.text(line)
        return f'"{name}" : {self.text(self.named(name, value))}'

    def table(self, lines: list[str], unordered: bool) -> list[str]:
        """An etcdctl table, with cells normalised and columns re-padded as etcdctl pads them
        (headers centred, cells right-aligned): normalised cells have other widths."""
        rows = [[c.strip() for c in ln.strip().strip("|").split("|")] for ln in lines if ln.startswith("|")]
        header, body = rows[0], rows[1:]
        body = [[self.text(self.named(h, c)) for h, c in zip(header, row, strict=True)] for row in body]
        if unordered:
            body.sort()
        widths = [max(len(r[k]) for r in [header, *body]) for k in range(len(header))]
        rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"

        def centre(s: str, w: int) -> str:
            left = (w - len(s)) // 2
            return " " * left + s + " " * (w - len(s) - left)

        out = [
            rule,
            "| " + " | ".join(centre(h, w) for h, w in zip(header, widths, strict=True)) + " |",
            rule,
        ]
        out += ["| " + " | ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in body]
        return [*out, rule]

    def simple_line(self, line: str, columns: list[str]) -> str:
        parts = line.split(", ")
        if len(parts) != len(columns):
            return self.text(line)
        return self.text(", ".join(self.named(c, p) for c, p in zip(columns, parts, strict=True)))

    def output(self, command: str, s: str) -> str:
        lines = s.splitlines()
        unordered = _is_unordered(command)
        simple = next((cols for cmd, cols in SIMPLE_COLUMNS.items() if command.startswith(cmd)), None)
        out: list[str] = []
        k = 0
        while k < len(lines):
            line = lines[k]
            if line.startswith("+-") and k + 1 < len(lines) and lines[k + 1].startswith("|"):
                end = k + 1
                while end < len(lines) and lines[end].startswith(("|", "+-")):
                    end += 1
                out += self.table(lines[k:end], unordered)
                k = end
                continue
            if line.startswith(("{", "[")):
                out.append(self.json_line(line))
            elif line.startswith('"') and " : " in line:
                out.append(self.fields_line(line))
            elif simple is not None:
                out.append(self.simple_line(line, simple))
            else:
                out.append(self.text(line))
            k += 1
        # `member add` prints ETCD_INITIAL_CLUSTER in member-ID order, i.e. random: sort it.
        out = [
            re.sub(
                r'^(ETCD_INITIAL_CLUSTER=")([^"]*)"',
                lambda m: m.group(1) + ",".join(sorted(m.group(2).split(","))) + '"',
                ln,
            )
            for ln in out
        ]
        if unordered and not any(ln.startswith("+-") for ln in out):
            out.sort()
        return "\n".join(_collapse_retries(out)) + ("\n" if s.endswith("\n") else "")


def _collapse_retries(lines: list[str]) -> list[str]:
    """etcdctl logs one warning per retry of a failed call; a run of them that differ only in the
    attempt number becomes one line with the attempt range ("attempt":"0..99")."""
    out: list[str] = []
    first = last = -1
    for line in lines:
        m = re.search(r'"attempt":(\d+)', line)
        if m is not None and out:
            prev = re.sub(r'"attempt":"?[\d.]+"?', '"attempt":N', out[-1])
            if prev == re.sub(r'"attempt":\d+', '"attempt":N', line) and int(m.group(1)) == last + 1:
                last += 1
                out[-1] = re.sub(r'"attempt":"?[\d.]+"?', f'"attempt":"{first}..{last}"', out[-1])
                continue
        if m is not None:
            first = last = int(m.group(1))
        out.append(line)
    return out


def normalise(r: StepResult, ctx: Context) -> StepResult:
    """Replace in one command's output what legitimately differs between two fresh clusters.

    Kept as is: exit codes, error messages, keys, values, revisions (a fresh cluster given the same
    commands has the same revisions), counts, leader/learner flags, member names and statuses.
    Replaced (rules in VOLATILE, HASH_NAMES, _is_unordered and _Normaliser.text): ports, member and
    cluster IDs, raft terms and indexes, db sizes, versions, hashes, latencies, timestamps, paths.
    """
    n = _Normaliser(ctx)
    return StepResult(
        command=r.command,
        stdin=r.stdin,
        returncode=r.returncode,
        stdout=n.output(r.command, r.stdout),
        stderr=n.output(r.command, r.stderr),
    )


# ------------------------------------------------------------------------------------- golden


def parse_golden(text: str) -> list[str]:
    """The golden file's blocks, one per compared command, each as StepResult.render() gives it."""
    blocks = re.split(r"(?m)^(?==== )", text)
    return [b.rstrip("\n") + "\n" for b in blocks if b.startswith("=== ")]


def render_golden(results: list[StepResult]) -> str:
    header = (
        "# etcdctl 3.4 against a fresh 3-member etcd 3.4 cluster (flags: "
        + " ".join(SERVER_FLAGS)
        + "), normalised.\n"
        + "# <placeholders> replace values that differ from run to run: see normalise() in the test.\n"
        + "# Written by: pytest tests/compat/test_etcdctl_compare.py -k etcd_only --rewrite\n\n"
    )
    return header + "\n".join(r.render() for r in results)


def compare(run: Run, golden_text: str, who: str) -> list[str]:
    """One readable diff per command whose normalised output differs from the golden file."""
    golden = parse_golden(golden_text)
    problems = []
    if run.aborted is not None:
        problems.append(f"{who}: {run.aborted}")
    elif len(golden) != len(run.results):
        problems.append(f"golden file has {len(golden)} commands, the script ran {len(run.results)}")
    for i, r in enumerate(run.results):
        got = r.render()
        want = golden[i] if i < len(golden) else ""
        if got != want:
            diff = difflib.unified_diff(
                want.splitlines(keepends=True),
                got.splitlines(keepends=True),
                fromfile=f"etcd (golden) #{i + 1}",
                tofile=f"{who} #{i + 1}",
            )
            problems.append(f"[{i + 1}] etcdctl {r.command}\n{''.join(diff)}")
    return problems


def _check(run: Run, who: str) -> None:
    problems = compare(run, GOLDEN.read_text(), who)
    if problems:
        shown = "\n".join(problems[:MAX_DIFFS_SHOWN])
        more = f"\n... and {len(problems) - MAX_DIFFS_SHOWN} more" if len(problems) > MAX_DIFFS_SHOWN else ""
        pytest.fail(
            f"{len(problems)} problem(s) in {len(run.results)} etcdctl commands compared with real etcd:\n"
            f"{shown}{more}",
            pytrace=False,
        )


def test_etcd_only_matches_golden(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """Real etcd gives the recorded output (``--rewrite`` records it again)."""
    require_binary("etcdctl")
    with ProcessCluster(etcd_binary(), 3, tmp_path, extra_flags=SERVER_FLAGS) as cluster:
        run = run_script(cluster, tmp_path)
    if run.aborted is None and (request.config.getoption("--rewrite") or not GOLDEN.exists()):
        GOLDEN.write_text(render_golden(run.results))
    _check(run, "etcd")


def test_minietcd_matches_golden(tmp_path: Path) -> None:
    """minietcd gives real etcd's (recorded) output for every command of the script."""
    require_binary("etcdctl")
    with ProcessCluster(minietcd_binary(), 3, tmp_path, extra_flags=SERVER_FLAGS) as cluster:
        run = run_script(cluster, tmp_path)
    _check(run, "minietcd")
