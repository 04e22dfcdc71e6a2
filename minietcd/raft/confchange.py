"""Membership changes, one at a time (thesis 4.1 "single-server changes").

A change takes effect on a node when the node *applies* the committed ConfChange entry and
calls ``RawNode.apply_conf_change`` (etcd-io/raft's rule, a conservative variant of thesis 4.1,
where a server uses a configuration as soon as it is in its log). Waiting for commit is safe
because the leader allows only one change in the log that is not yet applied: any two
configurations in use at once differ by one member, so their majorities overlap.

Promoting a learner is ``ADD_NODE`` for an id that is a learner. Removing the leader is
allowed: it steps down when it applies its own removal, and the rest elect a new leader.

The encoding here is the one entries carry (``EntryType.CONF_CHANGE``): compact and
deterministic, so every member decodes the same change from the same bytes.
"""

from __future__ import annotations

import struct

from minietcd.errors import RaftError
from minietcd.raft.types import ConfChange, ConfChangeType

_HEADER = struct.Struct(">BQ")  # type, node id; the context follows


def encode_conf_change(cc: ConfChange) -> bytes:
    return _HEADER.pack(int(cc.type), cc.node_id) + cc.context


def decode_conf_change(data: bytes) -> ConfChange:
    if len(data) < _HEADER.size:
        raise RaftError(f"conf change entry too short ({len(data)} bytes)")
    t, node = _HEADER.unpack_from(data)
    try:
        kind = ConfChangeType(t)
    except ValueError:
        raise RaftError(f"unknown conf change type {t}") from None
    return ConfChange(type=kind, node_id=node, context=bytes(data[_HEADER.size :]))
