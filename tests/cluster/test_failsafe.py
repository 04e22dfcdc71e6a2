"""Issue "Fail safe": the events that used to wedge a member for good, on real processes.

1. A valid but deep Txn is served as etcd serves it, applied, and applied again on restart;
   the limits (nesting, request bytes, ops per txn) are walked through propose-apply-restart.
2. A full disk (a small tmpfs data dir) stops the member with etcd's fatal line; after space is
   freed a restart serves every acknowledged write.
3. A taken port (client, peer, metrics) or an unreadable data dir fails the first start with one
   ``C |`` line in etcd's words, writes nothing, and the next start serves.
4. An unexpected exception in the Ready loop (a failpoint) stops the member: one ``C |`` line,
   exit code 1, no traceback.

Forged peer packets are in test_peer_strangers.py, the fuzzer in test_fuzz.py.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from minietcd.api.etcdserverpb import rpc_pb2
from minietcd.server.nesting import MAX_TXN_NESTING
from minietcd.storage.raft_storage import DiskStorage
from tests.cluster.conftest import ClusterFactory
from tests.cluster.grpc_kv import KV, wait_until
from tests.cluster.harness import ProcessCluster, clean_env, etcd_binary, free_ports, minietcd_binary
from tests.cluster.wire import nested_txn

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

# --- raw calls ------------------------------------------------------------------------------


def raw_unary(endpoint: str, method: str, payload: bytes, timeout: float = 10.0) -> bytes:
    """Call ``method`` with ``payload`` as the request bytes; the response bytes."""
    with grpc.insecure_channel(endpoint.split("://")[-1]) as ch:
        call = ch.unary_unary(method)
        return bytes(call(payload, timeout=timeout))


def call_status(endpoint: str, method: str, payload: bytes) -> tuple[str, str]:
    """("OK", "") or (code name, details) of one raw call."""
    try:
        raw_unary(endpoint, method, payload)
    except grpc.RpcError as e:
        return e.code().name, e.details() or ""
    return "OK", ""


# --- 1. what the edge accepts is appliable -----------------------------------------------------

DEPTHS = [1, 49, 50, MAX_TXN_NESTING, MAX_TXN_NESTING + 1]  # 49/50: upb's old edge / apply limits


@pytest.mark.parametrize("server", ["etcd", "minietcd"])
def test_nested_txn_depths_are_answered_as_etcd_answers_them(
    process_cluster: ClusterFactory, server: str
) -> None:
    binary = etcd_binary() if server == "etcd" else minietcd_binary()
    c: ProcessCluster = process_cluster(binary, 1).start()
    c.wait_healthy(30)
    got = {d: call_status(c.endpoint(0), "/etcdserverpb.KV/Txn", nested_txn(d, b"n%d" % d)) for d in DEPTHS}
    too_many = ("INVALID_ARGUMENT", "etcdserver: too many operations in txn request")
    assert got == {1: ("OK", ""), 49: ("OK", ""), 50: ("OK", ""), 128: ("OK", ""), 129: too_many}


def test_limits_walked_through_propose_apply_restart(process_cluster: ClusterFactory) -> None:
    # Every request at (and just past) a limit of the edge: whatever is accepted must apply on
    # every member and apply again when the members restart from their WALs (and snapshots:
    # --snapshot-count 4 makes them take several on the way).
    max_bytes = 64 * 1024
    flags = ["--max-request-bytes", str(max_bytes), "--snapshot-count", "4"]
    c: ProcessCluster = process_cluster(minietcd_binary(), 3, extra_flags=flags).start()
    c.wait_healthy(30)
    ep = c.endpoint(c.leader_index())
    expected: dict[bytes, bytes] = {}

    for depth in (49, 50, 100, MAX_TXN_NESTING):
        assert call_status(ep, "/etcdserverpb.KV/Txn", nested_txn(depth, b"deep/%d" % depth)) == ("OK", "")
        expected[b"deep/%d" % depth] = b"v"
    assert call_status(ep, "/etcdserverpb.KV/Txn", nested_txn(MAX_TXN_NESTING + 1, b"deep/x"))[0] == (
        "INVALID_ARGUMENT"
    )

    kv = KV(ep)
    big = b"b" * (max_bytes - 64)  # the InternalRaftRequest around it stays under the limit
    kv.put(b"size/max", big)
    expected[b"size/max"] = big
    with pytest.raises(grpc.RpcError) as info:
        kv.put(b"size/over", b"b" * (max_bytes + 1))
    assert info.value.details() == "etcdserver: request is too large"

    ops = [
        rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"ops/%03d" % i, value=b"o")) for i in range(128)
    ]
    kv.kv.Txn(rpc_pb2.TxnRequest(success=ops), timeout=10)
    expected.update({b"ops/%03d" % i: b"o" for i in range(128)})
    with pytest.raises(grpc.RpcError) as info:
        kv.kv.Txn(rpc_pb2.TxnRequest(success=[*ops, ops[0]]), timeout=10)
    assert info.value.details() == "etcdserver: too many operations in txn request"
    kv.close()

    def served(i: int) -> bool:
        member = KV(c.endpoint(i))
        try:
            return all(member.get(k, serializable=True) == v for k, v in expected.items())
        finally:
            member.close()

    for i in range(3):
        wait_until(functools.partial(served, i), 30, f"n{i + 1} to apply every accepted request")
    for i in range(3):
        c.kill(i)
    c.start()
    c.wait_healthy(30)
    for i in range(3):
        wait_until(functools.partial(served, i), 30, f"n{i + 1} to apply them again after a restart")
    for i in range(3):
        assert c.members[i].running
        assert "Traceback" not in c.members[i].log_path.read_text()


# --- 2. a full disk -----------------------------------------------------------------------------


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted on ``path`` (root only: skipped without, failed in CI)."""
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    )
    if done.returncode != 0:
        reason = f"cannot mount a tmpfs: {done.stderr.decode().strip()}"
        if os.environ.get("CI"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.mark.parametrize(
    ("flags", "disk", "fatal_words"),
    [
        # The disk fills up with no snapshot due: the WAL's write or the backend's commit
        # fails first, whichever writes when the last page goes (etcd: its WAL or bbolt).
        (["--snapshot-count", "100000"], "3m", ("etcdserver: failed to save state and entries error: write ",
                                                "mvcc/backend: cannot commit tx (write ")),
        # The first snapshot (150 values of 8 KiB) does not fit beside the WAL that holds them.
        # The backend commits nothing before it (no batch is due for an hour or 100,000
        # writes), so the snapshot's commit is the first to find the disk full: without those
        # flags the 100 ms commits race the WAL's writes for the last page.
        (["--snapshot-count", "150", "--backend-batch-interval", "1h", "--backend-batch-limit", "100000"],
         "2m", ("etcdserver: save snapshot error: write ", "mvcc/backend: cannot commit tx (write ")),
    ],
    ids=["wal", "snapshot"],
)
def test_a_full_disk_stops_the_member_and_a_restart_after_freeing_space_serves_every_ack(
    process_cluster: ClusterFactory, flags: list[str], disk: str, fatal_words: tuple[str, ...]
) -> None:
    c: ProcessCluster = process_cluster(minietcd_binary(), 1, extra_flags=flags)
    member = c.members[0]
    with tmpfs(member.data_dir, disk):
        c.start()
        c.wait_healthy(30)
        kv = KV(c.endpoint(0))
        acked: dict[bytes, bytes] = {}
        value = os.urandom(4096).hex().encode()  # 8 KiB, incompressible
        failed_at = None
        for i in range(2000):  # 16 MiB: far more than fits
            key = b"full/%05d" % i
            try:
                kv.put(key, value, timeout=3.0)
                acked[key] = value
            except grpc.RpcError:
                failed_at = time.monotonic()
                break
        kv.close()
        assert failed_at is not None and acked, "the disk never filled up"
        # The member stops by itself (no hanging, no half-alive /health), exit code 1 ...
        wait_until(lambda: not member.running, 20, "the member to stop on the full disk")
        assert member.proc is not None and member.proc.returncode == 1
        log = member.log_path.read_text()
        # ... with etcd's fatal line, the error in it, and no traceback.
        fatal = _fatal_lines(log)
        assert len(fatal) == 1 and fatal[0].startswith(fatal_words), fatal
        assert fatal[0].rstrip(")").endswith(": no space left on device"), fatal
        assert str(member.data_dir) in fatal[0], fatal
        assert "Traceback" not in log
        # Space is freed: the same data dir on a bigger disk.
        subprocess.run(["mount", "-o", "remount,size=64m", str(member.data_dir)], check=True)
        c.start()
        c.wait_healthy(30)
        kv = KV(c.endpoint(0))
        try:
            missing = [k for k, v in acked.items() if kv.get(k) != v]
            assert not missing, f"{len(missing)} of {len(acked)} acknowledged writes lost"
            kv.put(b"after", b"space was freed")
        finally:
            kv.close()
        c.close()


# --- 3. a failed first start ----------------------------------------------------------------------

# gRPC's C core logs its own failures (e.g. "E1207 12:00:00.0 123 add_port.cc:83] Failed to ...").
_C_CORE_LINE = re.compile(r"^[EWI]\d{4} \d\d:\d\d:\d\d")


def _fatal_lines(output: str) -> list[str]:
    return [line.split(" C | ", 1)[1] for line in output.splitlines() if " C | " in line]


def _run_to_exit(cmd: list[str], cwd: Path, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=clean_env(),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
    )


@contextlib.contextmanager
def taken(port: int) -> Iterator[None]:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(1)
    try:
        yield
    finally:
        s.close()


@pytest.mark.parametrize("which", ["client", "peer", "metrics"])
def test_a_taken_port_fails_the_first_start_cleanly_and_the_next_start_serves(
    process_cluster: ClusterFactory, tmp_path: Path, which: str
) -> None:
    (metrics_port,) = free_ports(1)
    flags = ["--listen-metrics-urls", f"http://127.0.0.1:{metrics_port}"]
    c: ProcessCluster = process_cluster(minietcd_binary(), 1, extra_flags=flags)
    m = c.members[0]
    port = {"client": m.client_port, "peer": m.peer_port, "metrics": metrics_port}[which]
    with taken(port):
        done = _run_to_exit(c.command(0), tmp_path)
        etcd_done = None
        if which != "metrics":  # etcd 3.4 binds its metrics listener after writing its data dir
            etcd_dir = tmp_path / "etcd-data"
            etcd_cmd = [*etcd_binary(), *c.flags(0)]
            etcd_cmd[etcd_cmd.index("--data-dir") + 1] = str(etcd_dir)
            etcd_done = _run_to_exit(etcd_cmd, tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert _fatal_lines(output) == [f"etcdmain: listen tcp 127.0.0.1:{port}: bind: address already in use"]
    if etcd_done is not None:
        assert _fatal_lines(etcd_done.stdout + etcd_done.stderr) == _fatal_lines(output)  # etcd's words
    assert "Traceback" not in output
    assert not [line for line in output.splitlines() if _C_CORE_LINE.match(line)], output
    assert not m.data_dir.exists() or not any(m.data_dir.iterdir()), "the failed start left files"
    c.start()
    c.wait_healthy(30)
    kv = KV(c.endpoint(0))
    kv.put(b"k", b"served")
    kv.close()


def test_an_unreadable_data_dir_is_etcds_error_listing_data_dir(tmp_path: Path) -> None:
    c = ProcessCluster(minietcd_binary(), 1, tmp_path / "c")
    with c:
        not_a_dir = tmp_path / "a-file"
        not_a_dir.write_text("not a directory\n")
        cmd = c.command(0)
        cmd[cmd.index("--data-dir") + 1] = str(not_a_dir)
        done = _run_to_exit(cmd, tmp_path)
        assert done.returncode == 1
        expected = [f"etcdmain: error listing data dir: {not_a_dir}"]
        assert _fatal_lines(done.stderr) == expected
        etcd_cmd = [*etcd_binary(), *c.flags(0)]
        etcd_cmd[etcd_cmd.index("--data-dir") + 1] = str(not_a_dir)
        assert _fatal_lines(_run_to_exit(etcd_cmd, tmp_path).stderr) == expected


def test_a_wal_left_blank_by_a_crashed_first_start_starts_as_new(process_cluster: ClusterFactory) -> None:
    # A first start killed between creating its WAL and saving its first entries used to
    # "restart" as a member of no cluster, with no leader, forever.
    c: ProcessCluster = process_cluster(minietcd_binary(), 1)
    DiskStorage.open(str(c.members[0].data_dir), metadata=b'{"member_id": 1, "cluster_id": 2}').close()
    c.start()
    c.wait_healthy(30)
    assert "holds no entry, vote or snapshot" in c.members[0].log_path.read_text()


# --- 4. fail-stop on a real process ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("point", "words"),
    [
        (
            "raftBeforeSave",
            "etcdserver: failed to save state and entries error: failpoint raftBeforeSave triggered",
        ),
        ("raftBeforeApply", "etcdserver: failed to apply entry 1: failpoint raftBeforeApply triggered"),
    ],
)
def test_an_unexpected_exception_stops_the_process_with_one_fatal_line(
    process_cluster: ClusterFactory, point: str, words: str
) -> None:
    c: ProcessCluster = process_cluster(minietcd_binary(), 1, env={"MINIETCD_FAILPOINTS": point}).start()
    m = c.members[0]
    wait_until(lambda: not m.running, 20, f"the member to stop at {point}")
    assert m.proc is not None and m.proc.returncode == 1
    log = m.log_path.read_text()
    assert _fatal_lines(log) == [words]
    assert "Traceback" not in log


def test_the_fatal_line_has_a_traceback_at_debug_level(process_cluster: ClusterFactory) -> None:
    flags = ["--log-level", "debug"]
    env = {"MINIETCD_FAILPOINTS": "raftBeforeSave"}
    c: ProcessCluster = process_cluster(minietcd_binary(), 1, extra_flags=flags, env=env).start()
    m = c.members[0]
    wait_until(lambda: not m.running, 20, "the member to stop")
    log = m.log_path.read_text()
    assert "the error behind the fatal line above" in log and "FailpointError" in log
