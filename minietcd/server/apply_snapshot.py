"""What a Raft snapshot of the applied state holds, and the database file that travels with it.

The applied state lives in the backend (an LMDB file), so a Raft snapshot copies nothing: its
data is a header naming an applied index (``MINIETCDDB1`` + JSON), and the state at that index is
the backend itself, committed and fsynced before the snapshot is recorded (``snapshot()``). That
is what lets the log be compacted every ``--snapshot-count`` entries without serialising the
store, and a restart replay only the entries after the backend's ``consistent_index``.

A member that needs a snapshot is sent the database (etcd's "merged snapshot",
``etcdserver/snapshot_merge.go``): a compacted copy of a read view taken at the leader's applied
index, made in a worker thread and streamed in chunks (:mod:`minietcd.server.snapshot_files`);
the message's index is the one the view holds. The receiver writes the chunks to
``member/snap/<index>.snap.lmdb`` (etcd: ``<index>.snap.db``) and, when it applies the
snapshot, that file replaces its backend (:meth:`StateMachine.restore`).

Data dirs written before the backend existed, and snapshots built in memory, carry the whole state
in the snapshot itself (``MINIETCDSNAP1``: metadata JSON, the MVCC snapshot, the lessor's):
:func:`restore_legacy` still reads them, into the backend.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
from typing import TYPE_CHECKING

from minietcd.errors import StateSnapshotError
from minietcd.mvcc.backend import Backend
from minietcd.server import apply_state

if TYPE_CHECKING:
    from minietcd.server.apply import StateMachine

DB_MAGIC = b"MINIETCDDB1\n"
LEGACY_MAGIC = b"MINIETCDSNAP1\n"
DB_SUFFIX = ".snap.lmdb"
PART_SUFFIX = ".part"  # a database still being received
_LEN = struct.Struct(">Q")


def encode_header(index: int) -> bytes:
    return DB_MAGIC + json.dumps({"applied_index": index}).encode()


def decode_header(data: bytes) -> int | None:
    """The applied index a header names; None if ``data`` is not a header (a legacy snapshot)."""
    if not data.startswith(DB_MAGIC):
        return None
    try:
        index = json.loads(data[len(DB_MAGIC) :])["applied_index"]
    except (ValueError, KeyError, TypeError) as e:
        raise StateSnapshotError(f"etcdserver: bad snapshot header: {e}") from None
    if not isinstance(index, int) or index < 0:
        raise StateSnapshotError(f"etcdserver: bad snapshot header index {index!r}")
    return index


def db_file_name(index: int) -> str:
    return f"{index:016x}{DB_SUFFIX}"


def db_file(backend: Backend, index: int) -> str:
    """Where the database of the snapshot at ``index`` is received: beside the backend."""
    return os.path.join(os.path.dirname(backend.path), db_file_name(index))


def legacy_snapshot(sm: StateMachine) -> bytes:
    """The whole applied state in one self-contained blob (``MINIETCDSNAP1``), for tools and
    tests that move a state between state machines without files."""
    meta = json.dumps(
        {
            "applied_index": sm.applied_index,
            "membership": sm.membership.to_json(),
            "alarms": sorted([m, a] for m, a in sm.alarms),
        },
        sort_keys=True,
    ).encode()
    parts = [meta, sm.kv.snapshot(), sm.lessor.snapshot()]
    return LEGACY_MAGIC + b"".join(_LEN.pack(len(p)) + p for p in parts)


def restore_legacy(sm: StateMachine, data: bytes) -> None:
    """Replace ``sm``'s state with a ``MINIETCDSNAP1`` blob, backend included."""
    if not data.startswith(LEGACY_MAGIC):
        raise StateSnapshotError("etcdserver: snapshot data is not a minietcd state snapshot")
    parts: list[bytes] = []
    off = len(LEGACY_MAGIC)
    for _ in range(3):  # meta, kv, leases; anything after them is padding
        (n,) = _LEN.unpack_from(data, off)
        parts.append(data[off + 8 : off + 8 + n])
        off += 8 + n
    meta = json.loads(parts[0])
    sm.kv.restore(parts[1])
    sm.lessor.restore(parts[2])
    sm.membership.restore(meta["membership"])
    sm.alarms = {(m, a) for m, a in meta["alarms"]}
    sm.applied_index = meta["applied_index"]
    b = sm.backend
    apply_state.save_leases(b, sm.lessor.leases())
    apply_state.save_membership(b, sm.membership)
    apply_state.save_alarms(b, sm.alarms)
    apply_state.save_applied_index(b, sm.applied_index)
    b.commit()


def purge_received(snap_dir: str, applied_index: int, *, partial: bool = False) -> list[str]:
    """Remove received snapshot databases at or below ``applied_index``: they are applied, or
    were overtaken by a newer state. ``partial``: also every half-received one (at start-up,
    when no transfer can be running)."""
    removed: list[str] = []
    try:
        names = os.listdir(snap_dir)
    except FileNotFoundError:
        return removed
    for name in names:
        base = name.removesuffix(PART_SUFFIX)
        if not base.endswith(DB_SUFFIX):
            continue
        try:
            index = int(base.removesuffix(DB_SUFFIX), 16)
        except ValueError:
            continue
        if index <= applied_index or (partial and name.endswith(PART_SUFFIX)):
            path = os.path.join(snap_dir, name)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            removed.append(path)
    return removed
