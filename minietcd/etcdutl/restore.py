"""``snapshot status`` and ``snapshot restore`` of etcd's backend snapshots, for minietcd.

A snapshot file is what ``etcdctl snapshot save`` (or ``minietcdctl snapshot save``) writes: an
etcd 3.4 bbolt backend, followed by its SHA-256 (:mod:`minietcd.mvcc.boltdb`). Files taken from
minietcd and from real etcd are the same format, so both work here.

:func:`snapshot_file_status` computes what ``etcdctl snapshot status`` prints (hash, revision,
total keys, total size: see :func:`~minietcd.mvcc.boltdb.snapshot_status`).

:func:`restore` is etcd 3.4's ``snapshotRestoreCommandFunc`` / ``v3Manager.Restore`` writing a
*minietcd* data directory (our WAL and snapshot files) instead of etcd's. The semantics are
etcd's:

- a **new cluster**: member and cluster IDs come from ``--initial-cluster`` and
  ``--initial-cluster-token`` exactly as a fresh bootstrap derives them; the members and removed
  members recorded in the file are dropped;
- the log starts as etcd's restore leaves it: the members' ADD_NODE entries at term 1 are
  committed and covered by a snapshot at index N (N members), the hard state votes for the
  member with the lowest ID, and the state machine's applied (consistent) index is N;
- the **key-value history is kept**: every revision, the compaction, so the revision is
  preserved;
- **leases** are kept with their TTLs and keys, as etcd's lessor recovers them; they start
  counting again when the restored cluster elects a leader (etcd refreshes every lease on
  promotion);
- alarms recorded in the file are kept (etcd keeps its ``alarm`` bucket too);
- **auth** is kept as it is: users, roles, permissions, whether auth is on, the auth revision
  (etcd keeps its auth buckets).

Every member of the new cluster is restored from the same file with its own ``--name`` and
``--initial-advertise-peer-urls``, then started with the same ``--initial-cluster`` and token
(as for etcd).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from google.protobuf.message import DecodeError

from minietcd.errors import ConfigError, MvccSnapshotError, SnapshotFileError
from minietcd.golang import quote
from minietcd.lease import snapshot as lease_snapshot
from minietcd.mvcc.bolt_format import BoltFormatError
from minietcd.mvcc.bolt_reader import read_bolt_meta
from minietcd.mvcc.boltdb import BoltSnapshot, SnapshotStatus, read_bolt_snapshot, snapshot_status
from minietcd.raft.types import ConfState, HardState, Snapshot, SnapshotMetadata
from minietcd.server import apply_state
from minietcd.server.apply import StateMachine
from minietcd.server.bootstrap import _metadata as wal_metadata
from minietcd.server.config import Config
from minietcd.server.membership import Member
from minietcd.server.urls import URL, parse_urls, parse_urls_map
from minietcd.storage.raft_storage import DiskStorage

#: etcd's snapshot files carry a SHA-256 when their size is 32 more than a multiple of 512.
_SHA256_LEN = 32


def _go_path_error(op: str, path: str, e: OSError) -> str:
    """Go's ``*PathError`` text: ``open x: no such file or directory``."""
    reason = e.strerror or str(e)
    return f"{op} {path}: {reason[:1].lower()}{reason[1:]}"


def _read(path: str, op: str = "open") -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise SnapshotFileError(_go_path_error(op, path, e)) from None


def _bolt_error(e: BoltFormatError, data: bytes) -> SnapshotFileError:
    """bbolt's own wording where it has one ("invalid database" for a file it cannot open),
    etcd's integrity-check wording for defects inside a valid file."""
    try:
        read_bolt_meta(data)
    except BoltFormatError:
        return SnapshotFileError("invalid database")
    return SnapshotFileError(f"snapshot file integrity check failed. 1 errors found. {e}")


def snapshot_file_status(path: str) -> SnapshotStatus:
    """``etcdctl snapshot status``: SnapshotFileError with etcdctl's message if the file is
    missing or not a bbolt file."""
    try:
        os.stat(path)
    except OSError as e:
        raise SnapshotFileError(_go_path_error("stat", path, e)) from None
    data = _read(path)
    # bbolt reads the pages only: a trailer (checked by restore, not by status) is ignored.
    db = data[:-_SHA256_LEN] if len(data) % 512 == _SHA256_LEN else data
    try:
        return snapshot_status(db)
    except BoltFormatError as e:
        raise _bolt_error(e, db) from None


@dataclass(frozen=True, slots=True)
class RestoreConfig:
    """etcdctl's ``snapshot restore`` flags (``snapshot.RestoreConfig``)."""

    snapshot_path: str
    name: str = "default"
    data_dir: str = ""  # "" -> "<name>.etcd"
    wal_dir: str = ""  # "" -> "<data-dir>/member/wal"
    peer_urls: str = "http://localhost:2380"
    initial_cluster: str = "default=http://localhost:2380"
    initial_cluster_token: str = "etcd-cluster"
    skip_hash_check: bool = False


@dataclass(frozen=True, slots=True)
class Restored:
    data_dir: str
    member_id: int
    cluster_id: int
    revision: int
    members: int


Logger = Callable[..., None]


def zap_info(caller: str, msg: str, **fields: object) -> None:
    """One line of etcdctl's zap production logger on stderr (etcdctl logs restores so)."""
    line = {"level": "info", "ts": time.time(), "caller": caller, "msg": msg, **fields}
    sys.stderr.write(json.dumps(line, separators=(",", ":")) + "\n")
    sys.stderr.flush()


def _check_hash(data: bytes, skip: bool) -> bytes:
    """The database without its SHA-256 trailer, checked as etcd's ``saveDB`` does."""
    has_hash = len(data) % 512 == _SHA256_LEN
    if not has_hash:
        if not skip:
            raise SnapshotFileError("snapshot missing hash but --skip-hash-check=false")
        return data
    db, stored = data[:-_SHA256_LEN], data[-_SHA256_LEN:]
    computed = hashlib.sha256(db).digest()
    if not skip and stored != computed:
        # Go's %v of two []byte.
        raise SnapshotFileError(
            f"expected sha256 [{' '.join(map(str, stored))}], got [{' '.join(map(str, computed))}]"
        )
    return db


def restore(cfg: RestoreConfig, log: Logger = zap_info) -> Restored:
    """Write a new minietcd member data dir from the snapshot file ``cfg.snapshot_path``.

    Raises ConfigError (bad flags, in etcd's wording) or SnapshotFileError (the file); nothing
    is left behind on error.
    """
    peer_urls = parse_urls(cfg.peer_urls.split(","))
    parse_urls_map(cfg.initial_cluster)  # etcd's NewURLsMap error text, without a prefix
    server_cfg = Config(
        name=cfg.name,
        initial_cluster=cfg.initial_cluster,
        initial_cluster_token=cfg.initial_cluster_token,
        initial_advertise_peer_urls=tuple(peer_urls),
    )
    server_cfg.verify_bootstrap()
    ids = server_cfg.initial_member_ids()
    cluster_id = server_cfg.initial_cluster_id()
    urls = server_cfg.initial_cluster_map()

    data_dir = cfg.data_dir or f"{cfg.name}.etcd"
    if os.path.exists(data_dir):
        raise ConfigError(f"data-dir {quote(data_dir)} exists")
    wdir = cfg.wal_dir or os.path.join(data_dir, "member", "wal")
    if cfg.wal_dir and os.path.exists(cfg.wal_dir):
        raise ConfigError(f"wal-dir {quote(cfg.wal_dir)} exists")
    snap_dir = os.path.join(data_dir, "member", "snap")
    where = {"path": cfg.snapshot_path, "wal-dir": wdir, "data-dir": data_dir, "snap-dir": snap_dir}
    log("snapshot/v3_snapshot.go:296", "restoring snapshot", **where)

    db = _check_hash(_read(cfg.snapshot_path), cfg.skip_hash_check)
    try:
        bolt = read_bolt_snapshot(db)
    except BoltFormatError as e:
        raise _bolt_error(e, db) from None

    member_id = ids[cfg.name]
    by_id = sorted((mid, name) for name, mid in ids.items())
    for mid, name in by_id:
        log(
            "membership/cluster.go:392", "added member", **{
                "cluster-id": f"{cluster_id:x}", "local-member-id": "0",
                "added-peer-id": f"{mid:x}", "added-peer-peer-urls": [str(u) for u in urls[name]],
            },
        )  # fmt: skip
    commit = len(by_id)  # etcd: the members' ADD_NODE entries, committed at term 1
    try:
        snapshot = _write_state(data_dir, bolt, member_id, cluster_id, by_id, urls, commit)
        with DiskStorage.open(
            data_dir, wal_path=cfg.wal_dir, metadata=wal_metadata(member_id, cluster_id)
        ) as storage:
            storage.save_ready(HardState(term=1, vote=by_id[0][0], commit=commit), [], snapshot)
            storage.sync()
    except BaseException:
        shutil.rmtree(data_dir, ignore_errors=True)
        if cfg.wal_dir:
            shutil.rmtree(cfg.wal_dir, ignore_errors=True)
        raise
    log("snapshot/v3_snapshot.go:309", "restored snapshot", **where)
    return Restored(data_dir, member_id, cluster_id, bolt.current_revision, commit)


def _write_state(
    data_dir: str,
    bolt: BoltSnapshot,
    member_id: int,
    cluster_id: int,
    by_id: list[tuple[int, str]],
    urls: dict[str, list[URL]],
    commit: int,
) -> Snapshot:
    """The new member's backend (the file's key space, leases and alarms, the new cluster's
    members, applied index ``commit``), and the Raft snapshot that names it."""
    sm = StateMachine.open(data_dir, clock=time.monotonic, min_lease_ttl=1, member_id=member_id)
    try:
        try:
            bolt.restore_into(sm.kv)
        except MvccSnapshotError as e:
            raise SnapshotFileError(f"snapshot file integrity check failed. 1 errors found. {e}") from None
        keys: dict[int, list[bytes]] = {}
        for key, lease_id in sm.kv.leased_keys():
            keys.setdefault(lease_id, []).append(key)
        sm.lessor.restore(
            lease_snapshot.encode(
                lease_snapshot.LeaseRecord(
                    lease.id, lease.ttl, lease.remaining_ttl, tuple(keys.get(lease.id, ()))
                )
                for lease in bolt.leases
            )
        )
        sm.membership.cluster_id = cluster_id
        for mid, name in by_id:
            sm.membership.add(Member(mid, name, [str(u) for u in urls[name]]))
        sm.alarms = set(bolt.alarms)
        try:
            sm.auth.replace_records(bolt.auth)
        except DecodeError as e:
            raise SnapshotFileError(
                f"snapshot file integrity check failed. 1 errors found. auth: {e}"
            ) from None
        sm.applied_index = commit
        apply_state.save_leases(sm.backend, sm.lessor.leases())
        apply_state.save_membership(sm.backend, sm.membership)
        apply_state.save_alarms(sm.backend, sm.alarms)
        apply_state.save_applied_index(sm.backend, commit)
        data = sm.snapshot()  # commits: the backend holds the state at ``commit``
    finally:
        sm.close()
    voters = tuple(mid for mid, _ in by_id)
    return Snapshot(data, SnapshotMetadata(ConfState(voters=voters), index=commit, term=1))
