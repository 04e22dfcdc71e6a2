"""``minietcdctl snapshot status`` and ``snapshot restore`` against etcdctl 3.4, on snapshots taken
from minietcd and from real etcd.

- **status**: etcdctl and minietcdctl print the same thing, with the same exit code, for both
  snapshots in every ``-w`` format (hash, revision, total keys and size come from the bbolt file).
- **restore**: the same snapshot is restored twice into 3 data dirs: with etcdctl (then a real
  etcd cluster starts on them) and with minietcdctl (then a minietcd cluster starts on them), on
  the same ports, names and token. Both clusters must serve the same thing: the same new cluster
  and member IDs (not the source's), the same keys at the same revisions, the same compaction,
  the same lease with its key; a new write gets the next revision.
- **errors**: the same messages and exit codes as etcdctl for the usual mistakes.

Needs etcd and etcdctl (skips without them, fails in CI).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.conftest import ClusterFactory
from tests.cluster.harness import (
    ETCDCTL,
    ProcessCluster,
    clean_env,
    etcd_binary,
    minietcd_binary,
    require_binary,
)

pytestmark = [pytest.mark.cluster, pytest.mark.compat]

ROOT = Path(__file__).resolve().parents[2]
MINIETCDCTL = [sys.executable, "-m", "minietcdctl"]
#: Source name -> (snapshot file, the source's member ID and revision).
Snapshots = dict[str, tuple[Path, dict[str, Any]]]
FORMATS = ("simple", "json", "fields", "table", "protobuf")


def run(tool: Sequence[str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*tool, *args], capture_output=True, text=True, timeout=60, check=False, cwd=cwd,
        env=clean_env({"ETCDCTL_API": "3", "PYTHONPATH": str(ROOT)}),
    )  # fmt: skip


def last_error(r: subprocess.CompletedProcess[str]) -> tuple[int, str]:
    """Exit code and the ``Error: ...`` line (etcdctl also logs JSON lines on stderr)."""
    errors = [line for line in r.stderr.splitlines() if line.startswith("Error:")]
    return r.returncode, errors[-1] if errors else ""


def take_snapshot(cluster: ProcessCluster, tool: Sequence[str], path: Path) -> None:
    """Writes with history, a deletion, a compaction and a lease; then ``snapshot save``."""
    for args in (("put", "a", "1"), ("put", "b", "2"), ("put", "a", "3"), ("del", "b"), ("put", "c", "4")):
        cluster.etcdctl_ok(*args)
    cluster.etcdctl_ok("compaction", "3")
    lease = cluster.etcdctl_ok("lease", "grant", "600").split()[1]
    cluster.etcdctl_ok("put", "leased", "v", f"--lease={lease}")
    cluster.etcdctl_ok("put", "a", "5")
    r = run(tool, f"--endpoints={cluster.endpoint(0)}", "snapshot", "save", str(path))
    assert r.returncode == 0 and path.exists(), r.stderr


def restore_into(tool: Sequence[str], snapshot: Path, cluster: ProcessCluster) -> None:
    for m in cluster.members:
        r = run(
            tool, "snapshot", "restore", str(snapshot), "--data-dir", str(m.data_dir), "--name", m.name,
            "--initial-cluster", m.initial_cluster, "--initial-cluster-token", cluster.token,
            "--initial-advertise-peer-urls", m.peer_url,
        )  # fmt: skip
        assert r.returncode == 0, f"{tool} restore for {m.name}: {r.stderr}"
        assert '"msg":"restored snapshot"' in r.stderr


def facts(cluster: ProcessCluster) -> dict[str, Any]:
    """What a client sees of a restored cluster (everything that must not differ)."""
    cluster.wait_converged(60.0)
    got = json.loads(cluster.etcdctl_ok("get", "", "--prefix", "-w", "json"))
    leases = cluster.etcdctl_ok("lease", "list").split("\n", 1)[1].split()
    ttl = json.loads(cluster.etcdctl_ok("lease", "timetolive", leases[0], "--keys", "-w", "json"))
    compacted = cluster.etcdctl("get", "a", "--rev=2")
    hashes = {
        cluster.etcdctl_ok("endpoint", "hashkv", endpoints=ep).split(", ")[1] for ep in cluster.endpoints
    }
    put = json.loads(cluster.etcdctl_ok("put", "new", "x", "-w", "json"))
    return {
        "cluster_id": cluster.cluster_id(),
        "member_ids": sorted(cluster.member_id(i) for i in range(len(cluster.members))),
        "revision": got["header"]["revision"],
        "kvs": got["kvs"],
        "leases": leases,
        "lease_ttl": (ttl["granted-ttl"], ttl["keys"]),
        "compacted": last_error(compacted),
        "hashkv_agree": len(hashes) == 1,
        "next_put": put["header"]["revision"],
    }


@pytest.fixture
def snapshots(process_cluster: ClusterFactory, tmp_path: Path) -> Snapshots:
    """A snapshot taken from minietcd (with minietcdctl) and one from etcd (with etcdctl), each
    with the source cluster's member IDs and revision."""
    etcdctl = require_binary(ETCDCTL)
    out = {}
    for name, binary, tool in (
        ("minietcd", minietcd_binary(), MINIETCDCTL),
        ("etcd", etcd_binary(), [etcdctl]),
    ):
        source = process_cluster(binary, 1).start()
        source.wait_healthy(30.0)
        path = tmp_path / f"{name}.db"
        take_snapshot(source, tool, path)
        header = json.loads(source.etcdctl_ok("get", "a", "-w", "json"))["header"]
        out[name] = (path, {"member_id": source.member_id(0), "revision": header["revision"]})
        source.close()
    return out


@pytest.mark.parametrize("source", ["minietcd", "etcd"])
def test_snapshot_status_matches_etcdctl(snapshots: Snapshots, source: str) -> None:
    path, _ = snapshots[source]
    for fmt in FORMATS:
        theirs = run([require_binary(ETCDCTL)], "snapshot", "status", str(path), "-w", fmt)
        ours = run(MINIETCDCTL, "snapshot", "status", str(path), "-w", fmt)
        assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout), fmt
        assert last_error(ours) == last_error(theirs), fmt


@pytest.mark.parametrize("source", ["minietcd", "etcd"])
def test_restore_serves_what_etcd_serves(
    snapshots: Snapshots,
    process_cluster: ClusterFactory,
    source: str,
) -> None:
    path, origin = snapshots[source]
    reference = process_cluster(etcd_binary(), 3, token="restored")
    restore_into([require_binary(ETCDCTL)], path, reference)
    reference.start()
    expected = facts(reference)
    reference.close()

    ports = [p for m in reference.members for p in (m.client_port, m.peer_port)]
    ours = process_cluster(minietcd_binary(), 3, token="restored", ports=ports)
    restore_into(MINIETCDCTL, path, ours)
    ours.start()
    actual = facts(ours)

    assert actual == expected
    assert actual["revision"] == origin["revision"]  # the revision is preserved
    assert origin["member_id"] not in actual["member_ids"]  # a new cluster, new member IDs
    assert actual["next_put"] == origin["revision"] + 1
    assert [kv["key"] for kv in actual["kvs"]] == ["YQ==", "Yw==", "bGVhc2Vk"]  # a, c, leased
    assert actual["compacted"][0] != 0 and "compacted" in actual["compacted"][1]


def test_restore_errors_match_etcdctl(snapshots: Snapshots, tmp_path: Path) -> None:
    path, _ = snapshots["etcd"]
    raw = tmp_path / "raw.db"  # no SHA-256 trailer, as when copied out of a data dir
    raw.write_bytes(path.read_bytes()[:-32])
    flipped = bytearray(path.read_bytes())
    flipped[100] ^= 0xFF
    bad = tmp_path / "bad.db"
    bad.write_bytes(bytes(flipped))
    (tmp_path / "exists").mkdir()
    cases = [
        [],
        [str(path), "--data-dir", "exists"],
        ["missing.db", "--data-dir", "d1"],
        [str(path), "--data-dir", "d2", "--name", "zz"],
        [str(path), "--data-dir", "d3", "--initial-cluster", "bad"],
        [str(path), "--data-dir", "d4", "--initial-advertise-peer-urls", "http://127.0.0.1:9"],
        [str(raw), "--data-dir", "d5"],
        [str(bad), "--data-dir", "d6"],
    ]
    etcdctl = [require_binary(ETCDCTL)]
    for args in cases:
        results = []
        for tool in (etcdctl, MINIETCDCTL):
            for d in ("d1", "d2", "d3", "d4", "d5", "d6"):  # etcdctl leaves some behind
                shutil.rmtree(tmp_path / d, ignore_errors=True)
            results.append(last_error(run(tool, "snapshot", "restore", *args, cwd=tmp_path)))
        assert results[1] == results[0], args
        assert results[1][0] != 0, args
    # --skip-hash-check restores a file without its trailer.
    r = run(
        MINIETCDCTL, "snapshot", "restore", str(raw), "--data-dir", "d7", "--skip-hash-check", cwd=tmp_path
    )
    assert r.returncode == 0 and (tmp_path / "d7" / "member" / "wal").is_dir(), r.stderr
