"""minietcd.etcdutl.restore without processes: the data dir a restore writes is what a restarted
member loads (snapshot at index N covering the ADD_NODE entries, the hard state, the state
machine with the file's history, compaction and leases, the new membership), and the errors are
etcdctl's. The end-to-end comparison with etcdctl is tests/cluster/test_snapshot_restore.py."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from minietcd.errors import ConfigError, SnapshotFileError
from minietcd.etcdutl.restore import RestoreConfig, restore, snapshot_file_status
from minietcd.mvcc import KVStore
from minietcd.mvcc.boltdb import append_sha256, write_bolt_snapshot
from minietcd.mvcc.bucket_values import BoltLease
from minietcd.server.apply import StateMachine
from minietcd.server.apply_snapshot import decode_header
from minietcd.storage.raft_storage import DiskStorage

CLUSTER = "n1=http://127.0.0.1:2380,n2=http://127.0.0.1:2381,n3=http://127.0.0.1:2382"
OLD_MEMBER = {"id": 0x8E9E05C52164694D, "name": "old", "peerURLs": ["http://old:2380"], "clientURLs": []}


def _snapshot_file(tmp_path: Path, *, trailer: bool = True) -> Path:
    kv = KVStore()
    kv.put(b"a", b"1")
    kv.put(b"b", b"2")
    kv.put(b"a", b"3")
    kv.compact(3)
    kv.put(b"leased", b"v", lease=0x1234)
    db = write_bolt_snapshot(
        kv, consistent_index=77, leases=[BoltLease(0x1234, 600, 0)], members=[OLD_MEMBER]
    )
    path = tmp_path / "snap.db"
    path.write_bytes(append_sha256(db) if trailer else db)
    return path


def _cfg(snap: Path, data_dir: Path, name: str = "n2", **kw: object) -> RestoreConfig:
    port = {"n1": 2380, "n2": 2381, "n3": 2382}.get(name, 2380)
    return RestoreConfig(
        str(snap), name=name, data_dir=str(data_dir), peer_urls=f"http://127.0.0.1:{port}",
        initial_cluster=CLUSTER, initial_cluster_token="tok", **kw,  # type: ignore[arg-type]  # RestoreConfig's fields
    )  # fmt: skip


def _quiet(*_args: object, **_fields: object) -> None:
    pass


def test_restored_data_dir_is_what_a_member_restarts_from(tmp_path: Path) -> None:
    snap = _snapshot_file(tmp_path)
    out = restore(_cfg(snap, tmp_path / "n2"), log=_quiet)
    assert (out.revision, out.members) == (5, 3)

    with DiskStorage.open(str(tmp_path / "n2")) as storage:
        md = json.loads(storage.metadata)
        assert (md["member_id"], md["cluster_id"]) == (out.member_id, out.cluster_id)
        hs, cs = storage.initial_state()
        ids = sorted(cs.voters)
        assert len(ids) == 3 and out.member_id in ids and OLD_MEMBER["id"] not in ids
        assert (hs.term, hs.vote, hs.commit) == (1, ids[0], 3)
        raft_snap = storage.snapshot()
        assert (raft_snap.metadata.index, raft_snap.metadata.term) == (3, 1)

    # The member's own backend holds the state the Raft snapshot names.
    assert decode_header(raft_snap.data) == 3
    sm = StateMachine.open(str(tmp_path / "n2"), clock=lambda: 0.0, min_lease_ttl=1, member_id=out.member_id)
    assert sm.applied_index == 3
    assert (sm.kv.current_revision, sm.kv.compact_revision) == (5, 3)
    assert sm.kv.get(b"a") is not None and sm.kv.get(b"a").value == b"3"  # type: ignore[union-attr]  # not None, checked first
    lease = sm.lessor.lookup(0x1234)
    assert lease is not None and lease.ttl == 600 and sm.lessor.snapshot()
    assert sm.kv.leased_keys() == [(b"leased", 0x1234)]
    assert [m.id for m in sm.membership.sorted_members()] == ids
    assert sorted(m.name for m in sm.membership.sorted_members()) == ["n1", "n2", "n3"]
    assert sm.membership.cluster_id == out.cluster_id
    sm.close()

    # Every member restored from the same file agrees on the IDs.
    other = restore(_cfg(snap, tmp_path / "n1", name="n1"), log=_quiet)
    assert other.cluster_id == out.cluster_id and other.member_id in ids and other.member_id != out.member_id


def test_restore_errors_are_etcdctls_and_leave_nothing_behind(tmp_path: Path) -> None:
    snap = _snapshot_file(tmp_path)
    (tmp_path / "exists").mkdir()
    with pytest.raises(ConfigError, match=r'^data-dir ".*exists" exists$'):
        restore(_cfg(snap, tmp_path / "exists"), log=_quiet)
    with pytest.raises(ConfigError, match=r'^couldn\'t find local name "zz" in the initial cluster'):
        restore(_cfg(snap, tmp_path / "d", name="zz"), log=_quiet)
    with pytest.raises(SnapshotFileError, match=r"^open .*missing.db: no such file or directory$"):
        restore(_cfg(tmp_path / "missing.db", tmp_path / "d"), log=_quiet)

    raw = _snapshot_file(tmp_path / "exists", trailer=False)
    with pytest.raises(SnapshotFileError, match=r"^snapshot missing hash but --skip-hash-check=false$"):
        restore(_cfg(raw, tmp_path / "d"), log=_quiet)
    assert not (tmp_path / "d").exists()
    restore(_cfg(raw, tmp_path / "d", skip_hash_check=True), log=_quiet)

    data = bytearray(snap.read_bytes())
    data[-1] ^= 1
    snap.write_bytes(bytes(data))
    with pytest.raises(SnapshotFileError, match=r"^expected sha256 \[[0-9 ]+\], got \[[0-9 ]+\]$"):
        restore(_cfg(snap, tmp_path / "e"), log=_quiet)
    assert not os.path.exists(tmp_path / "e")


def test_status_of_files_that_are_not_snapshots(tmp_path: Path) -> None:
    with pytest.raises(SnapshotFileError, match=r"^stat .*nope.db: no such file or directory$"):
        snapshot_file_status(str(tmp_path / "nope.db"))
    (tmp_path / "junk.db").write_bytes(b"junk\n")
    with pytest.raises(SnapshotFileError, match=r"^invalid database$"):
        snapshot_file_status(str(tmp_path / "junk.db"))
    st = snapshot_file_status(str(_snapshot_file(tmp_path)))
    assert st.revision == 5 and st.total_size % 4096 == 0
