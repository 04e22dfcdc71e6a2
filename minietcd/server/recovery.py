"""Restart: bring the applied state up to the durable commit index before Raft starts.

The backend already holds everything applied up to its ``consistent_index`` (it is written in
the same batch as the entries it reflects), so only the committed entries after it are missing:
at most one batch, plus whatever a crash cut off. They are applied here, straight from the
recovered log through the state machine, before the Raft node exists: no Ready loop, no
network, about as fast as the state machine applies. etcd instead replays every entry after its
last snapshot through its Raft loop and skips those its backend already has.

The Raft core then starts with ``applied`` at the commit index. It learns the configuration
from the storage's snapshot, so when entries after that snapshot were applied (and may hold
membership changes), a new snapshot is recorded at the commit index with the applied
membership's configuration: the core starts exactly where the state machine is.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from minietcd.errors import StorageError
from minietcd.raft.confchange import decode_conf_change
from minietcd.raft.types import EntryType
from minietcd.server.apply import StateMachine
from minietcd.server.apply_snapshot import purge_received
from minietcd.storage.raft_storage import DiskStorage

log = logging.getLogger("minietcd.server")

#: Entries read from the log at a time while replaying (bounds the list held at once).
REPLAY_CHUNK = 10_000


@dataclass(frozen=True, slots=True)
class Recovered:
    #: The index the Raft core starts at as applied (the durable commit index).
    applied: int
    #: The backend's consistent index before the replay.
    from_index: int
    #: Committed entries applied by the replay.
    replayed: int


def recover(storage: DiskStorage, sm: StateMachine) -> Recovered:
    """Make ``sm`` hold every committed entry of ``storage``; see the module docstring."""
    snap = storage.snapshot()
    snap_index = snap.metadata.index
    if not snap.is_empty() and sm.applied_index < snap_index:
        # The backend is older than the newest snapshot: a snapshot received from the leader
        # (its database is beside the backend) or a data dir from before the backend.
        sm.restore(snap.data)
    hard_state, _ = storage.initial_state()
    commit = max(hard_state.commit, snap_index)
    start = sm.applied_index + 1
    if start < storage.first_index():
        raise StorageError(
            f"etcdserver: the database holds index {sm.applied_index} but the log starts at "
            f"{storage.first_index()}: entries in between are lost"
        )
    from_index = sm.applied_index
    replayed = 0
    for lo in range(start, commit + 1, REPLAY_CHUNK):
        for e in storage.entries(lo, min(lo + REPLAY_CHUNK, commit + 1)):
            if e.type == EntryType.CONF_CHANGE:
                sm.apply_conf_change(e, decode_conf_change(e.data))
            else:
                sm.apply(e)
            replayed += 1
    if commit > snap_index:
        storage.create_snapshot(commit, sm.conf_state(), sm.snapshot())
    else:
        sm.settle_memory()  # sm.snapshot() does it otherwise
    purge_received(os.path.dirname(sm.backend.path), sm.applied_index, partial=True)
    log.info(
        "etcdserver: recovered the applied state at index %d (database at %d, %d committed "
        "entries replayed)",
        commit,
        from_index,
        replayed,
    )
    return Recovered(commit, from_index, replayed)
