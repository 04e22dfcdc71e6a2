"""The applied state in the backend: it survives a reopen whole, and a restart replays only the
committed entries after the backend's consistent index (never the whole log)."""

from __future__ import annotations

import json
from pathlib import Path

from minietcd.api.etcdserverpb import etcdserver_pb2, raft_internal_pb2, rpc_pb2
from minietcd.raft.confchange import decode_conf_change, encode_conf_change
from minietcd.raft.types import (
    ConfChange,
    ConfChangeType,
    Entry,
    EntryType,
    HardState,
    Snapshot,
    SnapshotMetadata,
)
from minietcd.server import apply_snapshot
from minietcd.server.apply import StateMachine
from minietcd.server.membership import Member, encode_conf_context
from minietcd.server.recovery import recover
from minietcd.storage.raft_storage import DiskStorage


def _req(index: int, **fields: object) -> Entry:
    req = raft_internal_pb2.InternalRaftRequest(**fields)  # type: ignore[arg-type]  # any request field, by name
    req.header.ID = index
    return Entry(term=1, index=index, type=EntryType.NORMAL, data=req.SerializeToString())


def _conf(index: int, cc_type: ConfChangeType, mid: int, learner: bool = False) -> Entry:
    member = Member(mid, "", [f"http://127.0.0.1:{20000 + mid}"], is_learner=learner)
    cc = ConfChange(cc_type, mid, encode_conf_context(member, 0))
    return Entry(term=1, index=index, type=EntryType.CONF_CHANGE, data=encode_conf_change(cc))


def _log(n_puts: int) -> list[Entry]:
    """Three members, a lease, an alarm, a published name, then puts (one on the lease), and a
    learner added near the end."""
    ents = [_conf(i, ConfChangeType.ADD_NODE, i) for i in (1, 2, 3)]
    ents.append(_req(4, lease_grant=rpc_pb2.LeaseGrantRequest(ID=77, TTL=60)))
    activate, corrupt = rpc_pb2.AlarmRequest.ACTIVATE, rpc_pb2.AlarmType.CORRUPT
    alarm = rpc_pb2.AlarmRequest(action=activate, memberID=2, alarm=corrupt)
    ents.append(_req(5, alarm=alarm))
    attrs = json.dumps({"name": "n1", "clientURLs": ["http://127.0.0.1:1"]})
    ents.append(_req(6, v2=etcdserver_pb2.Request(Method="PUT", Path="/0/members/1/attributes", Val=attrs)))
    for i in range(n_puts):
        key = b"leased" if i == 3 else b"k%04d" % (i % 50)
        put = rpc_pb2.PutRequest(key=key, value=b"v%d" % i, lease=77 if i == 3 else 0)
        ents.append(_req(len(ents) + 1, put=put))
    ents.append(_conf(len(ents) + 1, ConfChangeType.ADD_LEARNER_NODE, 4, learner=True))
    ents.append(_req(len(ents) + 1, put=rpc_pb2.PutRequest(key=b"last", value=b"1")))
    return ents


def _apply(sm: StateMachine, entries: list[Entry]) -> None:
    for e in entries:
        if e.type == EntryType.CONF_CHANGE:
            sm.apply_conf_change(e, decode_conf_change(e.data))
        else:
            sm.apply(e)


def _state(sm: StateMachine) -> tuple[object, ...]:
    return (
        sm.applied_index,
        sm.kv.snapshot(),
        sm.kv.hash_kv(),
        sm.lessor.snapshot(),
        sm.membership.to_json(),
        sorted(sm.alarms),
        sm.conf_state(),
    )


def _sm(data_dir: Path, fresh: bool = False) -> StateMachine:
    return StateMachine.open(str(data_dir), clock=lambda: 0.0, min_lease_ttl=1, member_id=1, fresh=fresh)


def test_reopened_state_machine_holds_everything_applied(tmp_path: Path) -> None:
    ents = _log(120)
    reference = StateMachine(clock=lambda: 0.0, min_lease_ttl=1, member_id=1)
    _apply(reference, ents)
    sm = _sm(tmp_path, fresh=True)
    _apply(sm, ents)
    sm.close()  # commits
    again = _sm(tmp_path)
    assert _state(again) == _state(reference)
    lease = again.lessor.lookup(77)
    assert lease is not None and lease.keys == (b"leased",)
    assert again.membership.members[1].name == "n1"
    assert again.conf_state().learners == (4,)
    again.close()


def test_a_legacy_snapshot_is_restored_into_the_backend(tmp_path: Path) -> None:
    reference = StateMachine(clock=lambda: 0.0, min_lease_ttl=1, member_id=1)
    _apply(reference, _log(30))
    blob = apply_snapshot.legacy_snapshot(reference)
    sm = _sm(tmp_path, fresh=True)
    sm.restore(blob)
    sm.close()
    again = _sm(tmp_path)
    assert _state(again) == _state(reference)
    again.close()


def test_restart_replays_only_the_committed_tail_after_the_consistent_index(tmp_path: Path) -> None:
    ents = _log(200)
    commit = len(ents)
    storage = DiskStorage.open(str(tmp_path), metadata=b"{}")
    # The last two entries are in the log but not committed: a restart must not apply them.
    uncommitted = [_req(commit + 1, put=rpc_pb2.PutRequest(key=b"never", value=b"x"))]
    storage.save_ready(HardState(term=1, vote=1, commit=commit), [*ents, *uncommitted])
    storage.sync()
    sm = _sm(tmp_path, fresh=True)
    _apply(sm, ents[:150])
    sm.commit()  # the backend holds 1..150 durably
    _apply(sm, ents[150:180])
    sm.backend.abort()  # a kill -9: the open batch (151..180) is lost
    sm.close()
    storage.close()

    storage = DiskStorage.open(str(tmp_path))
    sm = _sm(tmp_path)
    assert sm.applied_index == 150
    r = recover(storage, sm)
    assert (r.from_index, r.replayed, r.applied) == (150, commit - 150, commit)
    reference = StateMachine(clock=lambda: 0.0, min_lease_ttl=1, member_id=1)
    _apply(reference, ents)
    assert _state(sm) == _state(reference)
    assert sm.kv.get(b"never") is None
    # The core starts from a snapshot at the commit index with the applied configuration
    # (the learner added in the replayed tail included).
    snap = storage.snapshot()
    assert snap.metadata.index == commit and snap.metadata.conf_state == reference.conf_state()
    assert apply_snapshot.decode_header(snap.data) == commit
    sm.close()
    storage.close()

    # Nothing left to replay the next time.
    storage = DiskStorage.open(str(tmp_path))
    sm = _sm(tmp_path)
    r = recover(storage, sm)
    assert (r.from_index, r.replayed, r.applied) == (commit, 0, commit)
    assert _state(sm) == _state(reference)
    sm.close()
    storage.close()


def test_a_database_without_its_log_is_not_continued(tmp_path: Path) -> None:
    sm = _sm(tmp_path, fresh=True)
    _apply(sm, _log(5))
    sm.close()
    fresh = _sm(tmp_path, fresh=True)  # a brand-new log in the same data dir
    assert fresh.applied_index == 0 and fresh.kv.current_revision == 1
    fresh.close()


def test_a_received_snapshot_not_yet_installed_is_installed_at_the_restart(tmp_path: Path) -> None:
    """A follower crashed after recording a snapshot from the leader (file received, WAL
    marker written) but before swapping the database in: the restart does the swap."""
    ents = _log(40)
    leader = tmp_path / "leader"
    sm = _sm(leader, fresh=True)
    _apply(sm, ents)
    index, view = sm.snapshot_view()
    follower = tmp_path / "follower"
    storage = DiskStorage.open(str(follower), metadata=b"{}")
    fsm = _sm(follower, fresh=True)
    view.copy_to(apply_snapshot.db_file(fsm.backend, index))  # what the transport received
    view.close()
    snap = Snapshot(apply_snapshot.encode_header(index), SnapshotMetadata(sm.conf_state(), index, 1))
    storage.save_ready(HardState(term=1, vote=0, commit=index), [], snap)
    storage.sync()
    fsm.close()  # the crash: the state machine never applied the snapshot
    storage.close()

    storage = DiskStorage.open(str(follower))
    fsm = _sm(follower)
    assert fsm.applied_index == 0
    r = recover(storage, fsm)
    assert (r.applied, r.replayed) == (index, 0)
    assert _state(fsm) == _state(sm)
    assert not list(follower.glob("member/snap/*.snap.lmdb"))  # consumed
    for x in (fsm, sm):
        x.close()
    storage.close()
