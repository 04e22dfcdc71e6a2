"""``minietcdctl make-mirror`` mirrors a prefix as etcdctl 3.4's make-mirror does.

One scenario (``SCENARIO``), run by a make-mirror subprocess between two 1-member clusters:
three keys exist before it starts (the initial copy at one revision), then come a put, an
overwrite, a delete, a transaction with three operations at one revision, a put outside the
prefix, a two-key transaction and a range delete of both keys (two events at one revision).
The test polls with a deadline until the destination holds the source's keys with the prefix
rewritten, in the three modes (default: same prefix; ``--dest-prefix``; ``--no-dest-prefix``).
It also checks that the destination's revision moved once per copied key plus once per source
revision (etcdctl replays each revision's events in one transaction), that the running total
printed on stdout reaches the number of keys and events processed, and that SIGINT/SIGTERM end
the process by the signal, as they end etcdctl.

- minietcd -> minietcd with minietcdctl, in every mode;
- etcd 3.4 -> minietcd with etcdctl and with minietcdctl on the same scenario, in every mode:
  the same destination contents (run tags aside) and revision moves, the same end on SIGINT;
  this is also the interop run (Go client writing into minietcd, ours reading from etcd);
- argument and flag errors: the same stderr and exit code as etcdctl.

etcdctl prints its total every 30 s only; minietcdctl reads the interval from
``MINIETCDCTL_MIRROR_REPORT_INTERVAL`` (a test hook), so its line is checked at 0.3 s and
etcdctl's is not checked here (it is a bare number, as minietcdctl's).

Tests needing etcd skip without it, or fail when ``CI`` is set (``require_binary``).
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from minietcd.api.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from tests.cluster.harness import ProcessCluster, clean_env, etcd_binary, minietcd_binary, require_binary

pytestmark = [pytest.mark.compat, pytest.mark.cluster]

REPO = Path(__file__).resolve().parents[2]
RPC: Any = rpc_pb2_grpc  # the generated stub constructors are untyped
MINIETCDCTL = [sys.executable, "-m", "minietcdctl"]
MODES = ("default", "dest-prefix", "no-dest-prefix")
DEADLINE = 20.0
BASE_KEYS = 3
EVENTS = 10  # put, put, delete, 3 in one txn, 2 in one txn, a range delete of 2
SOURCE_REVISIONS = 6  # the revisions of those events (the put outside the prefix makes none)


@dataclass(slots=True)
class Servers:
    src_mini: str
    src_etcd: str | None
    dest: str


@dataclass(slots=True)
class Outcome:
    contents: dict[str, str]  # destination keys and values, the run's tag replaced by "T"
    revisions: int  # how far the destination's revision moved
    totals: list[str]  # the running-total lines on stdout
    returncode: int


def kv(endpoint: str) -> Any:
    return RPC.KVStub(grpc.insecure_channel(endpoint))


def prefix_end(prefix: bytes) -> bytes:
    return prefix[:-1] + bytes([prefix[-1] + 1])


def read(endpoint: str, prefix: str) -> tuple[dict[str, str], int]:
    p = prefix.encode()
    r = kv(endpoint).Range(rpc_pb2.RangeRequest(key=p, range_end=prefix_end(p)), timeout=10)
    return {x.key.decode(): x.value.decode() for x in r.kvs}, r.header.revision


def put(endpoint: str, key: str, value: str) -> None:
    kv(endpoint).Put(rpc_pb2.PutRequest(key=key.encode(), value=value.encode()), timeout=10)


def txn(endpoint: str, *ops: Any) -> None:
    kv(endpoint).Txn(rpc_pb2.TxnRequest(success=list(ops)), timeout=10)


def op_put(key: str, value: str) -> Any:
    return rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=key.encode(), value=value.encode()))


def op_delete(key: str, end: str = "") -> Any:
    return rpc_pb2.RequestOp(
        request_delete_range=rpc_pb2.DeleteRangeRequest(key=key.encode(), range_end=end.encode())
    )


def wait_for(what: str, check: Any, timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def start_cluster(binary: list[str], tmp: Path) -> ProcessCluster:
    return ProcessCluster(binary, 1, tmp).start()


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    etcd = None
    with contextlib.suppress(pytest.skip.Exception):  # the etcd tests skip (or fail in CI) alone
        etcd = etcd_binary()
    clusters: list[ProcessCluster] = []
    try:
        mini = minietcd_binary()
        for name, binary in (("src-mini", mini), ("dest", mini), ("src-etcd", etcd)):
            if binary is not None:
                clusters.append(start_cluster(binary, tmp_path_factory.mktemp(name)))
        for c in clusters:
            c.wait_healthy(60)
        eps = [c.endpoint(0).split("://")[-1] for c in clusters]
        yield Servers(eps[0], eps[2] if len(eps) > 2 else None, eps[1])
    finally:
        for c in clusters:
            c.close()


def mode_flags(mode: str, tag: str) -> tuple[list[str], str]:
    """The make-mirror flags for ``mode`` and the prefix the keys get on the destination."""
    prefix = f"src-{tag}/"
    if mode == "dest-prefix":
        return ["--prefix", prefix, "--dest-prefix", f"copy-{tag}/"], f"copy-{tag}/"
    if mode == "no-dest-prefix":
        return ["--prefix", prefix, "--no-dest-prefix"], ""
    return ["--prefix", prefix], prefix


def scenario(
    tool: list[str], src: str, dest: str, tag: str, mode: str, tmp: Path, sig: signal.Signals = signal.SIGINT
) -> Outcome:
    """Run the scenario with make-mirror ``tool``; keys are ``<prefix><tag>.<name>``."""
    p = f"src-{tag}/{tag}."
    flags, dest_prefix = mode_flags(mode, tag)
    watched = f"{dest_prefix}{tag}."
    for name, value in (("a", "1"), ("b", "2"), ("c.d", "3")):
        put(src, p + name, value)
    _, rev0 = read(dest, watched)
    out = tmp / f"{tag}.out"
    env = clean_env({"MINIETCDCTL_MIRROR_REPORT_INTERVAL": "0.3"})
    with open(out, "wb") as stdout:
        proc = subprocess.Popen(
            [*tool, "--endpoints", src, "make-mirror", *flags, dest],
            cwd=REPO, env=env, stdout=stdout, stderr=subprocess.PIPE,
        )  # fmt: skip
    try:
        wait_for("the initial copy", lambda: len(read(dest, watched)[0]) == BASE_KEYS)
        put(src, p + "e", "5")
        put(src, p + "a", "11")
        txn(src, op_delete(p + "b"))
        txn(src, op_put(p + "f", "6"), op_put(p + "g", "7"), op_delete(p + "c.d"))
        put(src, f"out-{tag}/{tag}.z", "outside")
        txn(src, op_put(p + "h", "8"), op_put(p + "i", "9"))
        txn(src, op_delete(p + "h", p + "j"))
        expected = {watched + k[len(p) :]: v for k, v in read(src, p)[0].items()}
        wait_for("the mirror", lambda: read(dest, watched)[0] == expected)
        if tool == MINIETCDCTL:
            total = str(BASE_KEYS + EVENTS)
            wait_for("the total line", lambda: out.read_text().splitlines()[-1:] == [total])
        time.sleep(0.3)  # nothing more may arrive
        contents, rev1 = read(dest, watched)
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        proc.send_signal(sig)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()
    return Outcome(
        {k.replace(tag, "T"): v for k, v in contents.items()}, rev1 - rev0, out.read_text().splitlines(),
        proc.returncode,
    )  # fmt: skip


def expected_contents(mode: str) -> dict[str, str]:
    _, dest_prefix = mode_flags(mode, "T")
    return {f"{dest_prefix}T.{k}": v for k, v in (("a", "11"), ("e", "5"), ("f", "6"), ("g", "7"))}


@pytest.mark.parametrize("mode", MODES)
def test_make_mirror_minietcd_to_minietcd(servers: Servers, mode: str, tmp_path: Path) -> None:
    sig = signal.SIGTERM if mode == "no-dest-prefix" else signal.SIGINT
    o = scenario(MINIETCDCTL, servers.src_mini, servers.dest, f"m{MODES.index(mode)}", mode, tmp_path, sig)
    assert o.contents == expected_contents(mode)
    assert o.revisions == BASE_KEYS + SOURCE_REVISIONS  # one txn per source revision
    assert o.totals and all(t.isdigit() for t in o.totals), o.totals
    assert [int(t) for t in o.totals] == sorted(int(t) for t in o.totals)
    assert o.totals[-1] == str(BASE_KEYS + EVENTS)
    assert o.returncode == -sig


@pytest.mark.parametrize("mode", MODES)
def test_make_mirror_same_as_etcdctl(servers: Servers, mode: str, tmp_path: Path) -> None:
    if servers.src_etcd is None:
        etcd_binary()  # skips, or fails in CI
    assert servers.src_etcd is not None
    etcdctl = [require_binary("etcdctl")]
    i = MODES.index(mode)
    theirs = scenario(etcdctl, servers.src_etcd, servers.dest, f"e{i}", mode, tmp_path)
    ours = scenario(MINIETCDCTL, servers.src_etcd, servers.dest, f"o{i}", mode, tmp_path)
    assert theirs.contents == expected_contents(mode)
    assert ours.contents == theirs.contents
    assert ours.revisions == theirs.revisions == BASE_KEYS + SOURCE_REVISIONS
    assert ours.returncode == theirs.returncode == -signal.SIGINT
    assert theirs.totals == []  # etcdctl's first total comes after 30 s


ERROR_CASES = [
    [],
    ["{dest}", "{dest}"],
    ["--dest-prefix", "x/", "--no-dest-prefix", "{dest}"],
    ["--dest-cert", "/nonexistent/cert.pem", "{dest}"],
    ["--dest-key", "/nonexistent/key.pem", "{dest}"],
    ["--dest-cert", "/nonexistent/cert.pem", "--dest-key", "/nonexistent/key.pem", "{dest}"],
    ["--dest-cacert", "/nonexistent/ca.pem", "{dest}"],
    ["-w", "bogus", "{dest}"],
    ["--prefix", "exact-key", "--no-dest-prefix", "{dest}"],  # mirrors "exact-key" to ""
    ["--bogus", "{dest}"],
]


def test_make_mirror_errors_same_as_etcdctl(servers: Servers) -> None:
    if servers.src_etcd is None:
        etcd_binary()
    assert servers.src_etcd is not None
    etcdctl = require_binary("etcdctl")
    put(servers.src_etcd, "exact-key", "v")
    for case in ERROR_CASES:
        args = [a.format(dest=servers.dest) for a in case]
        got = []
        for tool in ([etcdctl], MINIETCDCTL):
            r = subprocess.run(
                [*tool, "--endpoints", servers.src_etcd, "make-mirror", *args],
                cwd=REPO, env=clean_env(), capture_output=True, text=True, timeout=30,
            )  # fmt: skip
            # etcdctl's Go client also logs its retries as JSON lines ("retrying of unary
            # invoker failed"); minietcdctl does not log them.
            stderr = [line for line in r.stderr.splitlines() if not line.startswith('{"level":')]
            got.append((r.returncode, stderr, r.stdout))
        assert got[1] == got[0], args
