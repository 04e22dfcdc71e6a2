"""The real etcdctl's ``watch`` and ``lease`` commands behave against minietcd as against etcd 3.4.

Each test starts a fresh 3-member real etcd cluster and a fresh 3-member minietcd cluster (same
flags), runs one scripted scenario (a function of a :class:`Session`) against each, and compares
the two transcripts: every etcdctl command's exit code, stdout and stderr after ``normalise``.
The same commands on fresh clusters give the same revisions, so revisions are compared exactly.

Long-running commands (``watch``, ``lease keep-alive``) run in the background; the test polls
their output for what it waits for and never sleeps as a means of synchronisation:

- A live watch is proven established by a *sentinel phase* before the compared writes: ``put KEY
  sentinel-N`` (again, with a new N, until the watch prints it), then ``del KEY`` (so the key's
  version starts afresh), then puts of an unwatched key until the phase has used exactly
  ``SENTINEL_BUDGET + 1`` revisions, whatever number of sentinels it took. Only the watch's output
  after the phase is compared.
- A watch is stopped (SIGINT, what Ctrl-C sends) once the last expected event has been printed;
  ``watch -i`` is ended by closing its stdin (etcdctl then exits with an error of its own).

Member roles, not names, are compared: the default endpoint of every command is the member that
led when the scenario started, ``follower`` is the lowest-numbered other member.

    pytest tests/compat/test_etcdctl_watch_lease.py -k keep_alive   # one case

A difference found in minietcd is kept as an ``xfail(strict=True)`` on its own test, with the
etcdctl command and both outputs in the reason.
"""

from __future__ import annotations

import base64
import contextlib
import difflib
import json
import os
import re
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.harness import (
    ETCDCTL,
    ClusterError,
    ProcessCluster,
    clean_env,
    etcd_binary,
    minietcd_binary,
    require_binary,
)

pytestmark = [pytest.mark.compat, pytest.mark.cluster]

# A live watch gets this many sentinel puts to show it is established; the phase always uses
# SENTINEL_BUDGET + 1 revisions (sentinels, one delete, padding puts), so later revisions match.
SENTINEL_BUDGET = 8
# How long one sentinel may take to show before another is written (an established watch shows
# it in milliseconds; a miss only costs one more sentinel).
SENTINEL_WAIT_S = 1.0
# How long an expected event, exit or key expiry may take (a missing one fails, it never hangs).
EVENT_WAIT_S = 15.0
# `lease timetolive` remaining TTLs are compared as "within this many seconds of the granted TTL".
TTL_TOLERANCE_S = 5
# Written by the sentinel phase to reach its fixed revision count; no watch covers it.
PAD_KEY = "zz-pad"
# Keep-alive lines printed before a stop: at least this many (TTL 3 s: one a second).
KEEPALIVE_LINES = 3
# Exec-mode watch command: prints, per event, what etcdctl puts in the environment.
ECHO_ENV = "echo $ETCD_WATCH_REVISION $ETCD_WATCH_EVENT_TYPE $ETCD_WATCH_KEY $ETCD_WATCH_VALUE"


class ScenarioError(RuntimeError):
    """A scenario did not see what it waited for (an event, an exit, an expiry)."""


# ------------------------------------------------------------------------------ normalisation


@dataclass
class Context:
    """What ``normalise`` replaces for one cluster: learnt at the start, lease IDs as they appear."""

    ports: dict[int, str]  # client/peer port -> "<leader>", "<follower>", "<follower2>"
    member_ids: dict[int, str]  # member ID -> "<id:leader>", ...
    cluster_id: int
    leases: dict[int, str] = field(default_factory=dict)  # lease ID -> "L1", "L2", ...

    def lease(self, lease_id: int) -> str | None:
        """The label of a lease ID the server drew (L1, L2... by first appearance); None for a
        small ID the test chose itself (e.g. 1234): both servers draw IDs far above 2**32."""
        if lease_id < 1 << 32:
            return None
        return self.leases.setdefault(lease_id, f"L{len(self.leases) + 1}")


_LEASE_KEYS = ("ID", "id", "lease")  # JSON keys holding a lease ID (grant/keep-alive, timetolive, kv)
_HEX_ID = re.compile(r"(?<![0-9A-Za-z])[0-9a-f]{16}(?![0-9A-Za-z])")
_KEEPALIVE = re.compile(r"lease \S+ keepalived with TTL\(\d+\)")


def _ttl_range(remaining: int, granted: int) -> str | None:
    """``lo..granted`` when ``remaining`` is within TTL_TOLERANCE_S below ``granted``, else None."""
    lo = max(0, granted - TTL_TOLERANCE_S)
    return f"{lo}..{granted}" if lo <= remaining <= granted else None


def normalise(text: str, ctx: Context) -> str:
    """Replace in etcdctl's output what legitimately differs between two fresh clusters.

    Kept exactly: exit codes, keys, values, revisions, versions, event types and order, error
    messages, granted TTLs and line formats. Each rule below says why its value may differ.
    """

    def scalar_text(s: str) -> str:
        # Client ports are drawn at random: name them after the member's role.
        s = re.sub(r"127\.0\.0\.1:(\d+)", lambda m: ctx.ports.get(int(m.group(1)), m.group(0)), s)
        # Each etcdctl process names its gRPC target after a random client UUID.
        s = re.sub(r"client-[0-9a-f-]{36}", "client-<uuid>", s)
        # Lease IDs (printed %016x) are drawn by the server: L1, L2... in order of appearance.
        s = _HEX_ID.sub(lambda m: ctx.lease(int(m.group(0), 16)) or m.group(0), s)
        # A lease's attached keys come from a Go map in etcd (random order, even between two calls):
        # sorted. (The keys in this test have no spaces.)
        s = re.sub(
            r"attached keys\(\[([^\]]*)\]\)",
            lambda m: f"attached keys([{' '.join(sorted(m.group(1).split()))}])",
            s,
        )
        # Remaining TTLs count down with the clock: compared as "within tolerance of the TTL".
        return re.sub(
            r"granted with TTL\((\d+)s\), remaining\((-?\d+)s\)",
            lambda m: (
                f"granted with TTL({m.group(1)}s), remaining("
                f"{_ttl_range(int(m.group(2)), int(m.group(1))) or m.group(2)}s)"
            ),
            s,
        )

    def json_value(v: Any, key: str, parent: dict[str, Any]) -> Any:
        if isinstance(v, dict):
            return {k: json_value(x, k, v) for k, x in v.items()}
        if isinstance(v, list):
            items = [json_value(x, key, parent) for x in v]
            # `lease list`: etcd orders leases by time left on the leader, arbitrarily elsewhere;
            # `timetolive --keys`: attached keys come from a Go map in etcd. Both sorted.
            if key in ("leases", "keys"):
                return sorted(items, key=lambda x: json.dumps(x, sort_keys=True))
            return items
        if isinstance(v, bool) or not isinstance(v, int | str):
            return v
        # Zap log lines (etcdctl's retry warnings on stderr) carry wall-clock timestamps.
        if key == "ts":
            return "<ts>"
        # Cluster and member IDs derive from random peer URLs and the start time; terms from
        # elections.
        if key == "cluster_id":
            return "<cluster-id>"
        if key == "member_id":
            return ctx.member_ids.get(v, v) if isinstance(v, int) else v
        if key == "raft_term":
            return "<term>"
        # Lease IDs in decimal (JSON): the same L1, L2... as in hex.
        if key in _LEASE_KEYS and isinstance(v, int) and v != 0:
            return ctx.lease(v) or v
        # `timetolive -w json`: the remaining "ttl" against the sibling "granted-ttl".
        if key == "ttl" and isinstance(v, int) and isinstance(parent.get("granted-ttl"), int):
            return _ttl_range(v, parent["granted-ttl"]) or v
        return scalar_text(v) if isinstance(v, str) else v

    out: list[str] = []
    listing = False
    for line in text.split("\n"):
        # JSON lines (-w json, zap warnings) are normalised value by value, not as text.
        if line.startswith("{"):
            try:
                parsed = json.loads(line)
            except ValueError:
                parsed = None
            if isinstance(parsed, dict):
                out.append(json.dumps(json_value(parsed, "", {}), separators=(",", ":")))
                continue
        # `-w fields`: the same IDs and terms as in JSON, one `"Name" : value` per line.
        if (m := re.fullmatch(r'"(ClusterID|MemberID|RaftTerm|Lease|ID)" : (\d+)', line)) is not None:
            name, number = m.group(1), int(m.group(2))
            value = {"ClusterID": "<cluster-id>", "RaftTerm": "<term>"}.get(name)
            if name == "MemberID":
                value = ctx.member_ids.get(number)
            elif name in ("Lease", "ID") and number != 0:
                value = ctx.lease(number)
            out.append(f'"{name}" : {value or number}')
            continue
        line = scalar_text(line)
        # Keep-alive prints one line per renewal (every TTL/3 s): how many depends on when it
        # was stopped, so a run of identical lines becomes one line and a marker.
        if _KEEPALIVE.fullmatch(line) and out and out[-1] in (line, "<repeated>"):
            if out[-1] == line:
                out.append("<repeated>")
            continue
        # `lease list`: the ID lines after "found N leases" come in an order that is not part of
        # the API (etcd: by time left on the leader, arbitrary on followers): sorted.
        if listing and re.fullmatch(r"L\d+", line):
            out.append(line)
            k = len(out) - 1
            while k > 0 and re.fullmatch(r"L\d+", out[k - 1]) and out[k - 1] > out[k]:
                out[k - 1], out[k] = out[k], out[k - 1]
                k -= 1
            continue
        listing = bool(re.fullmatch(r"found \d+ leases", line))
        out.append(line)
    return "\n".join(out)


# ------------------------------------------------------------------------------ processes


def _sigint_default(argv: list[str]) -> list[str]:
    """``argv``, run so that SIGINT stops it: a test run started in the background inherits an
    ignored SIGINT, and so would etcdctl (GNU env resets it; preexec_fn could deadlock with the
    reader threads)."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        return ["env", "--default-signal=INT", *argv]
    return argv


class Background:
    """A long-running etcdctl (own process group), its stdout and stderr collected by threads."""

    def __init__(self, argv: list[str], stdin: bool, command: str) -> None:
        self.argv = argv
        self.command = command  # as recorded
        self.proc = subprocess.Popen(
            _sigint_default(argv),
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=clean_env({"ETCDCTL_API": "3"}),
            start_new_session=True,
        )
        self._lock = threading.Lock()
        self._out = bytearray()
        self._err = bytearray()
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._threads = [
            threading.Thread(target=self._pump, args=(self.proc.stdout.fileno(), self._out), daemon=True),
            threading.Thread(target=self._pump, args=(self.proc.stderr.fileno(), self._err), daemon=True),
        ]
        for t in self._threads:
            t.start()
        self.start = 0  # offset in stdout where the compared output begins

    def _pump(self, fd: int, buf: bytearray) -> None:
        while chunk := os.read(fd, 65536):
            with self._lock:
                buf.extend(chunk)

    @property
    def stdout(self) -> str:
        with self._lock:
            return self._out.decode(errors="replace")

    @property
    def stderr(self) -> str:
        with self._lock:
            return self._err.decode(errors="replace")

    def wait_for(self, pattern: str, timeout: float = EVENT_WAIT_S) -> int | None:
        """Poll stdout (from ``start``) for regex ``pattern``; the end offset of the match, or
        None if it did not appear within ``timeout`` seconds or the process exited without it."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            exited = self.proc.poll() is not None
            m = regex.search(self.stdout, self.start)
            if m is not None:
                return m.end()
            if exited or time.monotonic() >= deadline:
                return None
            time.sleep(0.02)

    def expect(self, pattern: str, what: str) -> int:
        end = self.wait_for(pattern)
        if end is None:
            raise ScenarioError(
                f"{shlex.join(self.argv)}: {what} not seen within {EVENT_WAIT_S} s "
                f"(exit {self.proc.poll()}); stdout {self.stdout!r}, stderr {self.stderr!r}"
            )
        return end

    def finish(self, sig: signal.Signals | None = None, close_stdin: bool = False) -> int:
        """Send ``sig`` to the process group and/or close stdin, wait for the exit; its code."""
        if close_stdin and self.proc.stdin is not None:
            self.proc.stdin.close()
        if sig is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
        try:
            rc = self.proc.wait(timeout=EVENT_WAIT_S)
        except subprocess.TimeoutExpired as e:
            self.kill()
            raise ScenarioError(f"{shlex.join(self.argv)} did not exit after {sig!r}") from e
        for t in self._threads:
            t.join(timeout=5.0)
        return rc

    def kill(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10.0)
        for t in self._threads:
            t.join(timeout=5.0)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


# --------------------------------------------------------------------------- watch formats


def _b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


@dataclass(frozen=True)
class Fmt:
    """How a watch prints an event: regexes matching the *end* of one event's output."""

    name: str  # "simple" (also --prev-kv and watch -i), "json", "exec" (command ending in ECHO_ENV)

    def put(self, key: str, value: str) -> str:
        k, v = re.escape(key), re.escape(value)
        if self.name == "json":
            return rf'[^\n]*"value":"{re.escape(_b64(value))}"[^\n]*\n'
        if self.name == "exec":
            return rf'"{k}" "{v}"\n'
        return rf"(?:^|\n){k}\n{v}\n"

    def delete(self, key: str) -> str:
        k = re.escape(key)
        if self.name == "json":
            return rf'[^\n]*"type":1,"kv":\{{"key":"{re.escape(_b64(key))}"[^\n]*\n'
        if self.name == "exec":
            return rf'"{k}" ""\n'
        return rf"DELETE\n(?:{k}\n[^\n]*\n)?{k}\n\n"


SIMPLE, JSON, EXEC = Fmt("simple"), Fmt("json"), Fmt("exec")


# ------------------------------------------------------------------------------- sessions


@dataclass
class Record:
    command: str
    returncode: int
    stdout: str
    stderr: str

    def render(self) -> str:
        return (
            f"$ {self.command}\n--- exit {self.returncode}\n--- stdout\n{self.stdout.rstrip(chr(10))}\n"
            f"--- stderr\n{self.stderr.rstrip(chr(10))}\n"
        )


@dataclass
class Session:
    """One scenario run against one cluster: etcdctl helpers and the normalised transcript."""

    cluster: ProcessCluster
    roles: dict[str, int]  # "leader", "follower", "follower2" -> member index
    ctx: Context
    records: list[Record] = field(default_factory=list)
    procs: list[Background] = field(default_factory=list)

    @classmethod
    def open(cls, cluster: ProcessCluster) -> Session:
        leader = cluster.wait_healthy(30.0)
        followers = [i for i in range(len(cluster.members)) if i != leader]
        roles = {"leader": leader, "follower": followers[0], "follower2": followers[1]}
        ports: dict[int, str] = {}
        ids: dict[int, str] = {}
        for role, i in roles.items():
            m = cluster.members[i]
            ports[m.client_port] = ports[m.peer_port] = f"<{role}>"
            ids[cluster.member_id(i)] = f"<id:{role}>"
        return cls(cluster, roles, Context(ports, ids, cluster.cluster_id()))

    def close(self) -> None:
        for p in self.procs:
            p.kill()

    def url(self, role: str) -> str:
        return self.cluster.endpoint(self.roles[role])

    def record(self, command: str, returncode: int, stdout: str, stderr: str) -> None:
        n = normalise
        self.records.append(
            Record(n(command, self.ctx), returncode, n(stdout, self.ctx), n(stderr, self.ctx))
        )

    def ctl(self, *args: str, on: str = "leader", input: str | None = None, record: bool = True) -> str:
        """Run etcdctl against the member in role ``on``; record it (unless ``record=False``);
        return its stdout."""
        command = f"[{on}] etcdctl {shlex.join(args)}"
        try:
            r = self.cluster.etcdctl(*args, endpoints=self.url(on), input=input, timeout=EVENT_WAIT_S)
        except subprocess.TimeoutExpired as e:
            out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else e.stdout or ""
            if not record:
                raise ScenarioError(f"{command} timed out") from e
            self.record(command, -9, out, f"<killed: no exit within {EVENT_WAIT_S} s>")
            return out
        if record:
            self.record(command, r.returncode, r.stdout, r.stderr)
        elif r.returncode != 0:
            raise ScenarioError(f"{command} exited {r.returncode}: {r.stdout}{r.stderr}")
        return r.stdout

    def grant(self, *args: str) -> str:
        """``lease grant ARGS`` (recorded); the lease ID in hex, as etcdctl takes it."""
        out = self.ctl("lease", "grant", *args)
        if (m := re.search(r"lease ([0-9a-f]{16}) granted", out)) is not None:
            return m.group(1)
        if (m := re.search(r'"ID":(\d+)', out)) is not None:  # -w json: in decimal
            return f"{int(m.group(1)):016x}"
        raise ScenarioError(f"lease grant {shlex.join(args)} printed no lease ID: {out!r}")

    def background(self, *args: str, on: str = "leader", stdin: str | None = None) -> Background:
        """Start etcdctl ARGS in the background (stdin kept open if given)."""
        argv = [ETCDCTL, f"--endpoints={self.url(on)}", *args]
        p = Background(argv, stdin=stdin is not None, command=f"[{on}] etcdctl {shlex.join(args)}")
        self.procs.append(p)
        if stdin is not None and p.proc.stdin is not None:
            p.proc.stdin.write(stdin.encode())
            p.proc.stdin.flush()
        return p

    def sync(self, key: str, fmt: Fmt, *watches: Background, writer: str = "leader") -> None:
        """The sentinel phase (see the module docstring) on ``key``, which every watch in
        ``watches`` covers: returns once all are known to be established; the compared output of
        each starts after it. Watches that see each other's sentinel keys are synced together
        (or the narrower one first), so no watch's compared output holds a sentinel."""
        for attempt in range(1, SENTINEL_BUDGET + 1):
            value = f"sentinel-{attempt}"
            self.ctl("put", key, value, on=writer, record=False)
            if all(w.wait_for(fmt.put(key, value), SENTINEL_WAIT_S) is not None for w in watches):
                break
        else:
            raise ScenarioError(
                "no sentinel seen by: "
                + "; ".join(f"{w.command}: {w.stdout!r} {w.stderr!r}" for w in watches)
            )
        self.ctl("del", key, on=writer, record=False)
        ends = [w.expect(fmt.delete(key), f"the sentinel delete of {key}") for w in watches]
        for _ in range(SENTINEL_BUDGET - attempt):
            self.ctl("put", PAD_KEY, "pad", on=writer, record=False)
        for w, end in zip(watches, ends, strict=True):
            w.start = end

    def stop(
        self, w: Background, sig: signal.Signals | None = signal.SIGINT, close_stdin: bool = False
    ) -> None:
        """Stop ``w`` (or wait for it to exit if ``sig`` is None) and record its output."""
        rc = w.finish(sig, close_stdin)
        self.record(w.command, rc, w.stdout[w.start :], w.stderr)

    def revision(self) -> int:
        """The cluster's current revision (a read: it does not change it)."""
        out = self.ctl("get", PAD_KEY, "-w", "json", record=False)
        return int(json.loads(out)["header"]["revision"])

    def write(self, *args: str, seen: tuple[Background, str] | None = None) -> None:
        """A recorded write to the leader; with ``seen=(watch, regex)``, wait until the watch has
        printed the event before going on, so the events of several watches print in order."""
        self.ctl(*args)
        if seen is not None:
            seen[0].expect(seen[1], f"the event of {shlex.join(args)}")


Scenario = Callable[[Session], None]


@contextlib.contextmanager
def _start_clusters(tmp_path: Path, **kwargs: Any) -> Iterator[tuple[ProcessCluster, ProcessCluster]]:
    """Both clusters, started together (each waits for health when its scenario begins)."""
    require_binary(ETCDCTL)
    with (
        ProcessCluster(etcd_binary(), 3, tmp_path / "etcd", **kwargs) as etcd,
        ProcessCluster(minietcd_binary(), 3, tmp_path / "minietcd", **kwargs) as mini,
    ):
        etcd.start()
        mini.start()
        yield etcd, mini


def _run(cluster: ProcessCluster, scenario: Scenario, who: str) -> list[Record]:
    session = Session.open(cluster)
    try:
        scenario(session)
    except (ScenarioError, ClusterError) as e:
        if who == "etcd":  # real etcd is the reference: a failure there is the test's own
            raise
        session.record("<scenario aborted>", -1, "", str(e))
    finally:
        session.close()
    return session.records


def compare(tmp_path: Path, scenario: Scenario, **cluster_kwargs: Any) -> None:
    """Run ``scenario`` against fresh etcd and minietcd clusters; fail on any difference."""
    with _start_clusters(tmp_path, **cluster_kwargs) as (etcd, mini):
        want = _run(etcd, scenario, "etcd")
        got = _run(mini, scenario, "minietcd")
        w = "".join(r.render() for r in want)
        g = "".join(r.render() for r in got)
        if w != g:
            diff = difflib.unified_diff(
                w.splitlines(keepends=True), g.splitlines(keepends=True), "etcd", "minietcd"
            )
            pytest.fail(f"etcdctl output differs (normalised):\n{''.join(diff)}", pytrace=False)


# ---------------------------------------------------------------------------------- watch


def test_watch_key(tmp_path: Path) -> None:
    """``watch KEY``: puts and deletes of that key only, in order."""

    def scenario(s: Session) -> None:
        s.ctl("put", "k1", "before-watch")
        w = s.background("watch", "k1")
        s.sync("k1", SIMPLE, w)
        s.write("put", "k1", "v1", seen=(w, SIMPLE.put("k1", "v1")))
        s.write("put", "k10", "other")
        s.write("put", "k1", "v2", seen=(w, SIMPLE.put("k1", "v2")))
        s.write("del", "k1", seen=(w, SIMPLE.delete("k1")))
        s.write("put", "k1", "v3", seen=(w, SIMPLE.put("k1", "v3")))
        s.stop(w)

    compare(tmp_path, scenario)


def test_watch_prefix(tmp_path: Path) -> None:
    """``watch --prefix p/``, and ``watch p/b p/d`` (a range): keys inside only."""

    def scenario(s: Session) -> None:
        w = s.background("watch", "--prefix", "p/")
        r = s.background("watch", "p/b", "p/d")
        s.sync("p/c", SIMPLE, r)  # the narrower watch first: w's sentinels are outside r
        s.sync("p/sentinel", SIMPLE, w)
        s.write("put", "p/a", "1", seen=(w, SIMPLE.put("p/a", "1")))
        s.write("put", "q", "2")
        s.write("put", "p/c", "3", seen=(r, SIMPLE.put("p/c", "3")))
        s.write("del", "p/", "--prefix", seen=(w, SIMPLE.delete("p/c")))
        s.write("put", "p/", "4", seen=(w, SIMPLE.put("p/", "4")))
        r.expect(SIMPLE.delete("p/c"), "the delete of p/c")
        s.stop(w)
        s.stop(r)

    compare(tmp_path, scenario)


def test_watch_rev_replays_history(tmp_path: Path) -> None:
    """``watch --rev N``: history from revision N, then live events; also ``--prefix --rev 1``
    and a replay running a command per event (ETCD_WATCH_REVISION is the response's)."""

    def scenario(s: Session) -> None:
        s.ctl("put", "k1", "a")
        s.ctl("put", "p/x", "b")
        s.ctl("put", "k1", "c")
        s.ctl("del", "p/x")
        s.ctl("put", "p/y", "d")
        w = s.background("watch", "k1", "--rev", "2")
        w.expect(SIMPLE.put("k1", "c"), "the replayed put of k1=c")
        s.write("put", "k1", "live", seen=(w, SIMPLE.put("k1", "live")))
        s.stop(w)
        p = s.background("watch", "--prefix", "p/", "--rev", "1")
        p.expect(SIMPLE.put("p/y", "d"), "the replayed put of p/y")
        s.stop(p)
        e = s.background("watch", "--prefix", "", "--rev", "3", "--", "sh", "-c", ECHO_ENV)
        e.expect(EXEC.put("k1", "live"), "the replayed events")
        s.stop(e)

    compare(tmp_path, scenario)


def test_watch_prev_kv(tmp_path: Path) -> None:
    """``watch --prev-kv``: each event with the key-value before it."""

    def scenario(s: Session) -> None:
        s.ctl("put", "k1", "old")
        w = s.background("watch", "k1", "--prev-kv")
        s.sync("k1", SIMPLE, w)
        s.write("put", "k1", "v1", seen=(w, SIMPLE.put("k1", "v1")))
        s.write("put", "k1", "v2", seen=(w, SIMPLE.put("k1", "v2")))
        s.write("del", "k1", seen=(w, SIMPLE.delete("k1")))
        s.write("put", "k1", "v3", seen=(w, SIMPLE.put("k1", "v3")))
        s.stop(w)

    compare(tmp_path, scenario)


def test_watch_json(tmp_path: Path) -> None:
    """``watch -w json`` (with and without ``--prev-kv``, live and replayed): headers, events,
    flags."""

    def scenario(s: Session) -> None:
        w = s.background("watch", "--prefix", "p/", "-w", "json")
        v = s.background("watch", "--prefix", "p/", "-w", "json", "--prev-kv")
        s.sync("p/s", JSON, w, v)
        first = s.revision() + 1  # history from here on: the sentinel phase is left out
        s.write("put", "p/a", "1", seen=(w, JSON.put("p/a", "1")))
        s.write("put", "p/a", "2", seen=(w, JSON.put("p/a", "2")))
        s.write("del", "p/a", seen=(w, JSON.delete("p/a")))
        s.write("put", "p/b", "3", seen=(w, JSON.put("p/b", "3")))
        v.expect(JSON.put("p/b", "3"), "the last put")
        s.stop(w)
        s.stop(v)
        h = s.background("watch", "--prefix", "p/", "--rev", str(first), "-w", "json", "--prev-kv")
        h.expect(JSON.put("p/b", "3"), "the replayed history")
        s.stop(h)

    compare(tmp_path, scenario)


def test_watch_on_follower(tmp_path: Path) -> None:
    """Watches served by followers see writes made through the leader (JSON: the follower's
    header)."""

    def scenario(s: Session) -> None:
        w = s.background("watch", "--prefix", "f/", "-w", "json", on="follower")
        t = s.background("watch", "f/1", on="follower2")
        s.sync("f/1", SIMPLE, t)  # the narrower watch first: w's sentinels are outside t
        s.sync("f/s", JSON, w)
        s.write("put", "f/1", "a", seen=(w, JSON.put("f/1", "a")))
        s.write("put", "f/2", "b", seen=(w, JSON.put("f/2", "b")))
        s.write("del", "f/1", seen=(w, JSON.delete("f/1")))
        t.expect(SIMPLE.delete("f/1"), "the delete on the other follower")
        s.stop(w)
        s.stop(t)
        s.ctl("get", "f/2", "-w", "json", "--consistency=s", on="follower")

    compare(tmp_path, scenario)


def test_watch_interactive(tmp_path: Path) -> None:
    """``watch -i``: watch requests read from stdin, events of both, EOF ends it with an error."""

    def scenario(s: Session) -> None:
        w = s.background("watch", "-i", stdin="watch k1\nwatch --prefix p/\n")
        s.sync("k1", SIMPLE, w)
        s.sync("p/s", SIMPLE, w)
        s.write("put", "k1", "a", seen=(w, SIMPLE.put("k1", "a")))
        s.write("put", "p/x", "b", seen=(w, SIMPLE.put("p/x", "b")))
        s.write("put", "q", "c")
        s.write("del", "p/x", seen=(w, SIMPLE.delete("p/x")))
        s.write("put", "k1", "d", seen=(w, SIMPLE.put("k1", "d")))
        s.stop(w, sig=None, close_stdin=True)

    compare(tmp_path, scenario)


def test_watch_exec_command(tmp_path: Path) -> None:
    """``watch KEY -- CMD``: the command runs per event with ETCD_WATCH_* in its environment."""

    def scenario(s: Session) -> None:
        w = s.background("watch", "k1", "--", "sh", "-c", "echo $ETCD_WATCH_KEY $ETCD_WATCH_VALUE")
        e = s.background("watch", "--prefix", "k", "--", "sh", "-c", ECHO_ENV)
        s.sync("k1", EXEC, w, e)
        s.write("put", "k1", "hello world", seen=(w, EXEC.put("k1", "hello world")))
        s.write("put", "k2", "x", seen=(e, EXEC.put("k2", "x")))
        s.write("del", "k1", seen=(w, EXEC.delete("k1")))
        s.write("put", "k1", "bye", seen=(w, EXEC.put("k1", "bye")))
        e.expect(EXEC.put("k1", "bye"), "the last event")
        s.stop(w)
        s.stop(e)

    compare(tmp_path, scenario)


def test_watch_compacted_revision(tmp_path: Path) -> None:
    """A watch from a compacted revision is cancelled by the server (etcdctl exits by itself);
    from the compaction revision itself it replays."""

    def scenario(s: Session) -> None:
        for value in ("v1", "v2", "v3", "v4"):
            s.ctl("put", "k1", value)
        s.ctl("compaction", "4")
        s.ctl("watch", "k1", "--rev", "2")
        s.ctl("watch", "k1", "--rev", "2", "-w", "json")
        s.ctl("watch", "--prefix", "k", "--rev", "1", "--prev-kv")
        w = s.background("watch", "k1", "--rev", "4")
        w.expect(SIMPLE.put("k1", "v4"), "the replay from the compaction revision")
        s.stop(w)

    compare(tmp_path, scenario)


# ---------------------------------------------------------------------------------- lease


def test_lease_grant_put_timetolive_list(tmp_path: Path) -> None:
    """``lease grant``, ``put --lease``, ``lease timetolive`` (``--keys``, JSON, via a
    follower), ``lease list``."""

    def scenario(s: Session) -> None:
        l1 = s.grant("60")
        l2 = s.grant("30", "-w", "json")
        s.ctl("put", f"--lease={l1}", "k1", "v1")
        s.ctl("put", "k2", "v2", f"--lease={l1}")
        s.ctl("put", f"--lease={l2}", "k3", "v3")
        s.ctl("get", "k1", "-w", "json")
        s.ctl("get", "k", "--prefix", "-w", "fields")
        s.ctl("lease", "timetolive", l1)
        s.ctl("lease", "timetolive", l1, "--keys")
        s.ctl("lease", "timetolive", l2, "--keys", "-w", "json")
        s.ctl("lease", "timetolive", l1, "--keys", on="follower")
        s.ctl("lease", "timetolive", l1, "-w", "json", on="follower")
        s.ctl("lease", "list")
        s.ctl("lease", "list", "-w", "json")
        s.ctl("lease", "list", on="follower")
        s.ctl("put", "k4", "v4", "--lease=1234")

    compare(tmp_path, scenario)


def test_lease_keep_alive(tmp_path: Path) -> None:
    """``lease keep-alive`` (stopped by SIGINT, or ending by itself once the lease is revoked),
    ``--once``, and of an unknown lease."""

    def scenario(s: Session) -> None:
        lease = s.grant("3")
        k = s.background("lease", "keep-alive", lease)
        if k.wait_for(rf"(?:.*keepalived.*\n){{{KEEPALIVE_LINES}}}") is None:
            raise ScenarioError(f"fewer than {KEEPALIVE_LINES} keep-alive lines: {k.stdout!r} {k.stderr!r}")
        s.stop(k)
        s.ctl("lease", "keep-alive", "--once", lease)
        s.ctl("lease", "keep-alive", "--once", lease, "-w", "json")
        s.ctl("lease", "timetolive", lease)
        f = s.background("lease", "keep-alive", lease, on="follower")
        if f.wait_for(r"(?:.*keepalived.*\n){2}") is None:
            raise ScenarioError(f"fewer than 2 keep-alive lines via a follower: {f.stdout!r} {f.stderr!r}")
        s.ctl("lease", "revoke", lease)
        f.expect(r"expired or revoked\.\n", "the end of the keep-alive")
        s.stop(f, sig=None)
        s.ctl("lease", "keep-alive", "--once", lease)
        s.ctl("lease", "keep-alive", "0000000000001234")

    compare(tmp_path, scenario)


def test_lease_revoke(tmp_path: Path) -> None:
    """``lease revoke`` deletes the lease's keys (one revision); a revoked or unknown lease is
    "already expired" to timetolive and "not found" to revoke."""

    def scenario(s: Session) -> None:
        lease = s.grant("60")
        s.ctl("put", "--lease=" + lease, "k1", "v1")
        s.ctl("put", "--lease=" + lease, "k2", "v2")
        s.ctl("lease", "revoke", lease)
        s.ctl("get", "k", "--prefix", "-w", "json")
        s.ctl("lease", "timetolive", lease)
        s.ctl("lease", "timetolive", lease, "--keys", "-w", "json")
        s.ctl("lease", "timetolive", "1234")
        s.ctl("lease", "revoke", lease)
        s.ctl("lease", "list")
        s.ctl("put", "--lease=" + lease, "k1", "v1")
        w = s.background("watch", "--prefix", "k", "--rev", "1")
        w.expect(SIMPLE.delete("k2"), "the deletes of the revoke")
        s.stop(w)

    compare(tmp_path, scenario)


def test_lease_grant_below_minimum_ttl(tmp_path: Path) -> None:
    """``lease grant 1`` where the minimum TTL is 3 s (etcd: ceil(1.5 x election timeout) =
    ceil(1.5 x 2 s); heartbeat 100 ms): what grant, timetolive and keep-alive report."""

    def scenario(s: Session) -> None:
        lease = s.grant("1")
        s.ctl("lease", "timetolive", lease)
        s.ctl("lease", "timetolive", lease, "-w", "json")
        s.ctl("lease", "keep-alive", "--once", lease)
        s.ctl("lease", "grant", "1", "-w", "json")

    compare(tmp_path, scenario, heartbeat_ms=100, election_ms=2000)


def test_lease_expires_and_deletes_its_key(tmp_path: Path) -> None:
    """A lease nobody keeps alive expires by itself: its key is deleted (one revision)."""

    def scenario(s: Session) -> None:
        s.ctl("put", "k2", "stays")  # first: nothing may come between the grant and the expiry
        lease = s.grant("2")
        s.ctl("put", "--lease=" + lease, "k1", "v1")
        deadline = time.monotonic() + EVENT_WAIT_S
        while s.ctl("get", "k1", "--print-value-only", record=False).strip():
            if time.monotonic() >= deadline:
                raise ScenarioError(f"k1 still there {EVENT_WAIT_S} s after its lease's TTL (2 s)")
            time.sleep(0.1)
        s.ctl("get", "k", "--prefix", "-w", "json")
        s.ctl("lease", "timetolive", lease, "--keys")
        s.ctl("lease", "list")
        w = s.background("watch", "k1", "--rev", "1")
        w.expect(SIMPLE.delete("k1"), "the delete of the expiry")
        s.stop(w)

    compare(tmp_path, scenario)
