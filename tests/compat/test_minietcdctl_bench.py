"""minietcdctl's load tools against real servers: ``bench`` against a 1-member minietcd and a
1-member etcd 3.4, ``check perf`` (the real 60 s ``--load s``) against a 1-member minietcd.

Every bench run must print etcd's report with one sample per request (the histogram's counts
add up to the requests made), no errors, sane times, and must have done what it says: the
store revision moves by exactly the number of writes, the written keys are there (a Range
counts them), reads leave the revision alone, keep-alive leases are revoked afterwards.

``check perf`` must print etcdctl's lines (throughput, slowest, stddev, PASS/FAIL, exit code to
match), draw its bar on stderr, have written about ``writes/s x 60`` keys (the revision says so),
and leave its prefix empty. It runs in the background from the start of this module, on its own
member, so the module takes about as long as the check itself (~70 s). Its refusals (keys
under the prefix, unknown load) are compared with etcdctl's on real etcd.

Tests needing etcd skip without it, or fail when ``CI`` is set (``require_binary``).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest

from minietcd.api.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from minietcd.bench.workloads import varint_key
from tests.cluster.harness import (
    ETCDCTL,
    ClientTLS,
    ProcessCluster,
    clean_env,
    etcd_binary,
    make_test_certs,
    minietcd_binary,
    require_binary,
)

pytestmark = [pytest.mark.compat, pytest.mark.cluster]

REPO = Path(__file__).resolve().parents[2]
RPC: Any = rpc_pb2_grpc  # the generated stub constructors are untyped
PERF_PREFIX = "/etcdctl-check-perf/"
PERF_TIMEOUT = 150.0


def minietcdctl(endpoint: str, *args: str, timeout: float = 90.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "minietcdctl", "--endpoints", endpoint, *args],
        cwd=REPO, env=clean_env(), capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def kv(endpoint: str) -> Any:
    return RPC.KVStub(grpc.insecure_channel(endpoint.split("://")[-1]))


def count(endpoint: str, key: bytes = b"\x00", end: bytes = b"\x00") -> tuple[int, int]:
    """(number of keys in [key, end), store revision)."""
    r = kv(endpoint).Range(rpc_pb2.RangeRequest(key=key, range_end=end, count_only=True), timeout=10)
    return r.count, r.header.revision


@dataclass
class Report:
    summary: dict[str, float] = field(default_factory=dict)
    histogram: list[tuple[float, int]] = field(default_factory=list)
    latencies: dict[str, float] = field(default_factory=dict)


def parse_report(out: str) -> Report:
    """etcd's benchmark report, checked for shape on the way."""
    assert out.startswith("\nSummary:\n"), out
    assert "Error distribution" not in out, out
    rep = Report()
    summary = r"^  (Total|Slowest|Fastest|Average|Stddev):\t(\d+\.\d{4}) secs\.$"
    for name, value in re.findall(summary, out, re.M):
        rep.summary[name] = float(value)
    (rps,) = re.findall(r"^  Requests/sec:\t(\d+\.\d{4})$", out, re.M)
    rep.summary["Requests/sec"] = float(rps)
    buckets = re.findall(r"^  (\d+\.\d{4}) \[(\d+)\]\t\|∎*$", out, re.M)
    rep.histogram = [(float(b), int(n)) for b, n in buckets]
    pcts = re.findall(r"^  ([\d.]+%) in (\d+\.\d{4}) secs\.$", out, re.M)
    rep.latencies = {p: float(v) for p, v in pcts}
    assert len(rep.summary) == 6, out
    assert len(rep.histogram) == 11, out
    assert "\nResponse time histogram:\n" in out and "\nLatency distribution:\n" in out
    s = rep.summary
    assert 0 <= s["Fastest"] <= s["Average"] <= s["Slowest"] < 30, out
    assert 0 < s["Total"] < 60 and s["Requests/sec"] > 0, out
    assert [b for b, _ in rep.histogram] == sorted(b for b, _ in rep.histogram)
    lats = list(rep.latencies.values())
    assert "50%" in rep.latencies and lats == sorted(lats), out
    return rep


def bench(endpoint: str, *args: str) -> Report:
    r = minietcdctl(endpoint, "bench", *args)
    assert r.returncode == 0, r.stderr
    assert "100.00%" in r.stderr, r.stderr  # the progress bar, finished
    return parse_report(r.stdout)


def samples(rep: Report) -> int:
    return sum(n for _, n in rep.histogram)


# ------------------------------------------------------------------------------- check perf


@dataclass
class PerfRun:
    endpoint: str
    before: tuple[int, int]
    proc: subprocess.Popen[str]


@pytest.fixture(scope="module")
def perf_run(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PerfRun | None]:
    """``check perf`` started in the background on a member of its own, if the module's check
    perf test is selected at all."""
    if not any(item.name == "test_check_perf_against_minietcd" for item in request.session.items):
        yield None
        return
    with ProcessCluster(minietcd_binary(), 1, tmp_path_factory.mktemp("perf")) as cluster:
        cluster.start()
        cluster.wait_healthy(60)
        ep = cluster.endpoint(0)
        before = count(ep)
        cmd = [sys.executable, "-m", "minietcdctl", "--endpoints", ep, "check", "perf",
               "--auto-compact", "--auto-defrag"]  # fmt: skip
        proc = subprocess.Popen(
            cmd, cwd=REPO, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            yield PerfRun(ep, before, proc)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()


@pytest.fixture(scope="module", autouse=True)
def _start_perf_early(perf_run: PerfRun | None) -> None:
    """Requested by every test here, so the 60 s check runs while the bench tests do."""


# ------------------------------------------------------------------------------------ bench


@pytest.fixture(scope="module", params=["minietcd", "etcd"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = minietcd_binary() if request.param == "minietcd" else etcd_binary()
    with ProcessCluster(binary, 1, tmp_path_factory.mktemp(request.param)) as cluster:
        cluster.start()
        cluster.wait_healthy(60)
        yield cluster.endpoint(0)


def test_bench_put_writes_every_key(server: str) -> None:
    keys, rev = count(server)
    rep = bench(server, "put", "--clients", "8", "--conns", "4", "--total", "300", "--val-size", "64",
                "--key-space-size", "100000", "--sequential-keys")  # fmt: skip
    assert samples(rep) == 300
    keys2, rev2 = count(server)
    assert rev2 - rev == 300  # one revision per put
    assert keys2 - keys == 300  # sequential keys 0..299: all distinct, all new
    got = kv(server).Range(rpc_pb2.RangeRequest(key=varint_key(299, 8)), timeout=10)
    assert len(got.kvs) == 1 and len(got.kvs[0].value) == 64


def test_bench_range_reads_only(server: str) -> None:
    _, rev = count(server)
    for consistency in ("l", "s"):
        rep = bench(server, "range", "foo", "foo9", "--clients", "4", "--conns", "2", "--total", "200",
                    "--consistency", consistency)  # fmt: skip
        assert samples(rep) == 200
    assert count(server)[1] == rev


def test_bench_txn_put(server: str) -> None:
    _, rev = count(server)
    rep = bench(server, "txn-put", "--clients", "4", "--conns", "2", "--total", "100", "--txn-ops", "3",
                "--key-size", "16", "--key-space-size", "300")  # fmt: skip
    assert samples(rep) == 100
    assert count(server)[1] - rev == 100  # one revision per transaction
    stub = kv(server)
    got = [stub.Range(rpc_pb2.RangeRequest(key=varint_key(n, 16)), timeout=10) for n in range(300)]
    missing = [n for n, r in enumerate(got) if len(r.kvs) != 1]
    assert missing == []  # txn i put keys 3i..3i+2 (16 bytes each): all 300 of them


def test_bench_watch_latency(server: str) -> None:
    _, rev = count(server)
    rep = bench(server, "watch-latency", "--clients", "4", "--conns", "2", "--put-total", "20",
                "--put-rate", "200")  # fmt: skip
    assert samples(rep) == 4 * 20  # every watcher saw every put
    assert count(server)[1] - rev == 20


def test_bench_lease_keepalive(server: str) -> None:
    rep = bench(server, "lease-keepalive", "--clients", "4", "--conns", "2", "--total", "300")
    assert samples(rep) == 300
    leases = RPC.LeaseStub(grpc.insecure_channel(server.split("://")[-1]))
    assert list(leases.LeaseLeases(rpc_pb2.LeaseLeasesRequest(), timeout=10).leases) == []  # revoked


def test_bench_refuses_bad_flags(server: str) -> None:
    for args, message in [
        (["range"], "Error: bench range needs a key and an optional end-range\n"),
        (["range", "a", "--consistency", "x"], 'Error: unknown consistency flag "x"\n'),
        (["put", "--key-space-size", "0"], "Error: expected positive --key-space-size, got (0)\n"),
        (["put", "--clients", "0"], "Error: --clients and --conns must be at least 1\n"),
    ]:
        r = minietcdctl(server, "bench", *args)
        assert (r.returncode, r.stderr, r.stdout) == (1, message, "")


def test_bench_over_tls_with_auth(tmp_path: Path) -> None:
    """The global TLS and user flags reach the raw connections: etcd with client certificates
    required and authentication on."""
    certs = make_test_certs(tmp_path)
    flags = ["--cert-file", certs["server.pem"], "--key-file", certs["server.key"],
             "--trusted-ca-file", certs["ca.pem"], "--client-cert-auth"]  # fmt: skip
    tls = [f"--cacert={certs['ca.pem']}", f"--cert={certs['client.pem']}", f"--key={certs['client.key']}"]
    probe = ClientTLS(certs["ca.pem"], certs["client.pem"], certs["client.key"])
    with ProcessCluster(
        etcd_binary(), 1, tmp_path / "etcd", client_scheme="https", extra_flags=flags, client_tls=probe,
        etcdctl_flags=tls,
    ) as cluster:  # fmt: skip
        cluster.start()
        cluster.wait_healthy(60)
        ep = cluster.endpoint(0)
        assert ep.startswith("https://")
        cluster.etcdctl_ok("user", "add", "root:secret")
        cluster.etcdctl_ok("auth", "enable")
        args = ["put", "--clients", "4", "--conns", "2", "--total", "50", "--key-space-size", "1000",
                "--sequential-keys"]  # fmt: skip
        rep = bench(ep, *tls, "--user", "root:secret", *args)
        assert samples(rep) == 50
        listed = cluster.etcdctl_ok("--user=root:secret", "get", "", "--from-key", "--keys-only", "-w=json")
        assert '"count":50' in listed.replace(" ", "")
        # without the client certificate the connections never come up (before the one-line error,
        # gRPC's C core may log the refused handshakes, as etcdctl's gRPC logs its retries)
        r = minietcdctl(ep, f"--cacert={certs['ca.pem']}", "--dial-timeout", "1s", "bench", *args)
        assert (r.returncode, r.stdout) == (1, "")
        assert r.stderr.endswith("\nError: dial error: context deadline exceeded\n") or (
            r.stderr == "Error: dial error: context deadline exceeded\n"
        ), r.stderr
        # without --user, etcd takes the certificate's CN ("client", a user with no role): every
        # request is refused, and the report has nothing but the error distribution
        r = minietcdctl(ep, *tls, "bench", *args)
        assert r.returncode == 0 and "Summary" not in r.stdout
        assert r.stdout == "\nError distribution:\n  [50]\tetcdserver: permission denied\n\n", r.stdout


# ------------------------------------------------------------------------------- check perf


def test_check_perf_refusals_match_etcdctl(tmp_path: Path) -> None:
    """Keys under the prefix (exit 3) and an unknown load (exit 4): the same as etcdctl's."""
    etcdctl = require_binary(ETCDCTL)
    with ProcessCluster(etcd_binary(), 1, tmp_path) as cluster:
        cluster.start()
        cluster.wait_healthy(60)
        ep = cluster.endpoint(0)
        kv(ep).Put(rpc_pb2.PutRequest(key=b"/perf-taken/x", value=b"1"), timeout=10)
        for args in (["--prefix", "/perf-taken/"], ["--load", "huge"]):
            want = subprocess.run([etcdctl, "--endpoints", ep, "check", "perf", *args],
                                  env=clean_env(), capture_output=True, text=True, timeout=60)  # fmt: skip
            got = minietcdctl(ep, "check", "perf", *args)
            assert want.returncode in (3, 4)
            assert (got.returncode, got.stderr, got.stdout) == (want.returncode, want.stderr, want.stdout)
    # help texts: etcdctl's byte for byte; bench (not an etcdctl command) is left out of the root's
    for args in (["--help"], ["check", "--help"], ["check", "perf", "--help"]):
        want = subprocess.run([etcdctl, *args], env=clean_env(), capture_output=True, text=True, timeout=60)
        got = minietcdctl(ep, *args)
        assert (got.returncode, got.stdout) == (want.returncode, want.stdout), args
    assert "watch-latency" in minietcdctl(ep, "bench", "--help").stdout


@pytest.mark.slow
def test_check_perf_against_minietcd(perf_run: PerfRun | None) -> None:
    assert perf_run is not None
    t0 = time.monotonic()
    out, err = perf_run.proc.communicate(timeout=PERF_TIMEOUT)
    keys_after, rev_after = count(perf_run.endpoint)
    lines = out.splitlines()
    assert len(lines) == 8, out + err
    # prefix deleted, then compacted at the delete's revision and every endpoint defragmented
    assert lines[0] == f"Compacting with revision {rev_after}"
    assert lines[1] == f"Compacted with revision {rev_after}"
    assert lines[2:4] == [f'Defragmenting "{perf_run.endpoint}"', f'Defragmented "{perf_run.endpoint}"']
    m = re.fullmatch(r"(PASS: Throughput is|FAIL: Throughput too low:) (\d+) writes/s", lines[4])
    assert m, out
    assert re.fullmatch(r"(PASS: Slowest request took|Slowest request took too long:) \d+\.\d{6}s", lines[5])
    assert re.fullmatch(r"(PASS: Stddev is|Stddev too high:) \d+\.\d{6}s", lines[6])
    verdict_ok = all(line.startswith("PASS") for line in lines[4:7])
    assert lines[7] == ("PASS" if verdict_ok else "FAIL")
    assert perf_run.proc.returncode == (0 if verdict_ok else 1), err
    assert " 60 / 60 " in err and "100.00%" in err  # etcdctl's bar on stderr, counting seconds
    # what it wrote: one revision per put plus the delete; the prefix is empty again
    puts = rev_after - perf_run.before[1] - 1
    writes = int(m.group(2))
    assert 0.8 * (writes - 1) * 60 <= puts <= 1.1 * writes * 62, (puts, writes)
    assert puts > 1000  # at 150/s for 60 s on a sound member: thousands, not a handful
    assert count(perf_run.endpoint, PERF_PREFIX.encode(), b"/etcdctl-check-perf0")[0] == 0
    assert keys_after == perf_run.before[0]
    assert time.monotonic() - t0 < PERF_TIMEOUT
