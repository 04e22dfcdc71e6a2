"""``minietcd.raft.types`` <-> ``minietcd.raftpb`` protobuf messages, and their bytes.

The Raft core speaks plain dataclasses (``minietcd.raft.types``); peers exchange the
protobuf messages of proto/minietcd/api/raftpb/raft.proto, which mirror those dataclasses
field for field with the same enum numbers. This module is the one place that converts::

    message_to_pb(m)  / message_from_pb(pb)       Message   <-> raftpb.Message
    entry_to_pb(e)    / entry_from_pb(pb)         Entry     <-> raftpb.Entry
    hard_state_to_pb  / hard_state_from_pb        HardState <-> raftpb.HardState
    conf_state_to_pb  / conf_state_from_pb        ConfState <-> raftpb.ConfState
    snapshot_to_pb    / snapshot_from_pb          Snapshot  <-> raftpb.Snapshot (+ metadata)
    conf_change_to_pb / conf_change_from_pb       ConfChange <-> raftpb.ConfChange
    to_pb(obj)        / from_pb(pb)               any of the above, by type

    encode_message(m) -> bytes   / decode_message(b) -> Message
    encode_conf_change(cc) -> bytes / decode_conf_change(b) -> ConfChange   (entry data)

Decoding never trusts its input: malformed bytes, enum numbers this version does not know
(proto3 keeps them as plain ints), and terms or indexes above ``MAX_RAFT_NUMBER`` (2^63-1, so
no term can overflow its uint64 field) raise ``google.protobuf.message.DecodeError``.
The exception is ``decode_conf_change``: EntryConfChange entry data is in the Raft core's
own encoding (``minietcd.raft.confchange``, which raises ``RaftError``), not raftpb.

Speed: a leader sends MsgApp batches of ~100 entries per Ready to every follower, so the
entry paths avoid per-entry overhead: protobuf entries are filled in place through
``entries.add()`` and decoded entries are built by setting the frozen dataclass's slots
directly (what its ``__init__`` would do, minus ``object.__setattr__`` per field; the unit
tests check that the result equals normal construction and that every field is covered).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, TypeVar, overload

from google.protobuf.message import DecodeError

from minietcd.api.raftpb import raft_pb2
from minietcd.raft import confchange as _core_confchange
from minietcd.raft.types import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    Snapshot,
    SnapshotMetadata,
)

__all__ = [
    "MAX_RAFT_NUMBER",
    "DecodeError",
    "conf_change_from_pb",
    "conf_change_to_pb",
    "conf_state_from_pb",
    "conf_state_to_pb",
    "decode_conf_change",
    "decode_message",
    "encode_conf_change",
    "encode_message",
    "entry_from_pb",
    "entry_to_pb",
    "from_pb",
    "hard_state_from_pb",
    "hard_state_to_pb",
    "message_from_pb",
    "message_to_pb",
    "snapshot_from_pb",
    "snapshot_metadata_from_pb",
    "snapshot_metadata_to_pb",
    "snapshot_to_pb",
    "to_pb",
]

_E = TypeVar("_E")

#: The largest term or index a peer may send (2^63-1). Protobuf carries them as uint64; a
#: term at 2^64-1 would overflow that field the moment the core adds one (a campaign), so a
#: forged "absurd" term is refused as malformed here, before the core can step or persist it.
MAX_RAFT_NUMBER: Final = (1 << 63) - 1

# The generated constructors, typed loosely: the stubs want raftpb's enum wrapper types
# where we pass our IntEnums (same numbers, checked by the unit tests).
_PbEntry: Final[Callable[..., raft_pb2.Entry]] = raft_pb2.Entry
_PbHardState: Final[Callable[..., raft_pb2.HardState]] = raft_pb2.HardState
_PbConfState: Final[Callable[..., raft_pb2.ConfState]] = raft_pb2.ConfState
_PbSnapshotMetadata: Final[Callable[..., raft_pb2.SnapshotMetadata]] = raft_pb2.SnapshotMetadata
_PbSnapshot: Final[Callable[..., raft_pb2.Snapshot]] = raft_pb2.Snapshot
_PbConfChange: Final[Callable[..., raft_pb2.ConfChange]] = raft_pb2.ConfChange
_PbMessage: Final[Callable[..., raft_pb2.Message]] = raft_pb2.Message

# Wire number -> our enum member (a dict lookup is several times cheaper than EnumType()).
_ENTRY_TYPES: Final[dict[int, EntryType]] = {int(t): t for t in EntryType}
_MESSAGE_TYPES: Final[dict[int, MessageType]] = {int(t): t for t in MessageType}
_CONF_CHANGE_TYPES: Final[dict[int, ConfChangeType]] = {int(t): t for t in ConfChangeType}

# Fast Entry construction: Entry is a frozen slotted dataclass, whose __init__ assigns each
# field with object.__setattr__; the slot descriptors' __set__ does the same work cheaper.
# ENTRY_FIELDS is what entry_from_pb sets; a unit test keeps it equal to Entry's fields.
ENTRY_FIELDS: Final = ("term", "index", "type", "data")
_new_object: Final = object.__new__
_set_entry_term: Final[Callable[[Entry, int], None]] = Entry.__dict__["term"].__set__
_set_entry_index: Final[Callable[[Entry, int], None]] = Entry.__dict__["index"].__set__
_set_entry_type: Final[Callable[[Entry, EntryType], None]] = Entry.__dict__["type"].__set__
_set_entry_data: Final[Callable[[Entry, bytes], None]] = Entry.__dict__["data"].__set__


def _lookup(table: dict[int, _E], value: int, what: str) -> _E:
    try:
        return table[value]
    except KeyError:
        raise DecodeError(f"unknown {what} {value}") from None


# --- Entry ------------------------------------------------------------------------------


def entry_to_pb(e: Entry) -> raft_pb2.Entry:
    return _PbEntry(type=e.type, term=e.term, index=e.index, data=e.data)


def entry_from_pb(pb: raft_pb2.Entry) -> Entry:
    if pb.term > MAX_RAFT_NUMBER or pb.index > MAX_RAFT_NUMBER:
        raise DecodeError(f"entry term {pb.term} or index {pb.index} out of range")
    e: Entry = _new_object(Entry)
    _set_entry_term(e, pb.term)
    _set_entry_index(e, pb.index)
    try:
        _set_entry_type(e, _ENTRY_TYPES[pb.type])
    except KeyError:
        raise DecodeError(f"unknown entry type {pb.type}") from None
    _set_entry_data(e, pb.data)
    return e


# --- HardState, ConfState, Snapshot -----------------------------------------------------


def hard_state_to_pb(hs: HardState) -> raft_pb2.HardState:
    return _PbHardState(term=hs.term, vote=hs.vote, commit=hs.commit)


def hard_state_from_pb(pb: raft_pb2.HardState) -> HardState:
    return HardState(term=pb.term, vote=pb.vote, commit=pb.commit)


def conf_state_to_pb(cs: ConfState) -> raft_pb2.ConfState:
    return _PbConfState(voters=cs.voters, learners=cs.learners)


def conf_state_from_pb(pb: raft_pb2.ConfState) -> ConfState:
    return ConfState(voters=tuple(pb.voters), learners=tuple(pb.learners))


def snapshot_metadata_to_pb(md: SnapshotMetadata) -> raft_pb2.SnapshotMetadata:
    pb = _PbSnapshotMetadata(index=md.index, term=md.term)
    _fill_conf_state(pb.conf_state, md.conf_state)
    return pb


def snapshot_metadata_from_pb(pb: raft_pb2.SnapshotMetadata) -> SnapshotMetadata:
    if pb.term > MAX_RAFT_NUMBER or pb.index > MAX_RAFT_NUMBER:
        raise DecodeError(f"snapshot term {pb.term} or index {pb.index} out of range")
    return SnapshotMetadata(conf_state=conf_state_from_pb(pb.conf_state), index=pb.index, term=pb.term)


def snapshot_to_pb(s: Snapshot) -> raft_pb2.Snapshot:
    pb = _PbSnapshot()
    _fill_snapshot(pb, s)
    return pb


def snapshot_from_pb(pb: raft_pb2.Snapshot) -> Snapshot:
    return Snapshot(data=pb.data, metadata=snapshot_metadata_from_pb(pb.metadata))


def _fill_conf_state(dst: raft_pb2.ConfState, cs: ConfState) -> None:
    dst.SetInParent()
    dst.voters.extend(cs.voters)
    dst.learners.extend(cs.learners)


def _fill_snapshot(dst: raft_pb2.Snapshot, s: Snapshot) -> None:
    # Filled in place so a large snapshot's data is copied once, not again by CopyFrom.
    dst.SetInParent()  # present even when s is empty: None and Snapshot() stay distinct
    dst.data = s.data
    md, pb_md = s.metadata, dst.metadata
    pb_md.SetInParent()
    pb_md.index = md.index
    pb_md.term = md.term
    _fill_conf_state(pb_md.conf_state, md.conf_state)


# --- ConfChange -------------------------------------------------------------------------


def conf_change_to_pb(cc: ConfChange) -> raft_pb2.ConfChange:
    return _PbConfChange(type=cc.type, node_id=cc.node_id, context=cc.context)


def conf_change_from_pb(pb: raft_pb2.ConfChange) -> ConfChange:
    return ConfChange(
        type=_lookup(_CONF_CHANGE_TYPES, pb.type, "conf change type"),
        node_id=pb.node_id,
        context=pb.context,
    )


def encode_conf_change(cc: ConfChange) -> bytes:
    """The ``data`` of an EntryConfChange log entry carrying ``cc``.

    The Raft core writes conf-change entries itself (``RawNode.propose_conf_change``,
    bootstrap), so the format is the core's, ``minietcd.raft.confchange``; this delegates
    to it so that there is exactly one format. It is *not* a serialized raftpb.ConfChange
    (that is ``conf_change_to_pb(cc).SerializeToString()``).
    """
    return _core_confchange.encode_conf_change(cc)


def decode_conf_change(data: bytes) -> ConfChange:
    """The inverse of :func:`encode_conf_change`; raises the core's RaftError on bad input."""
    return _core_confchange.decode_conf_change(data)


# --- Message ----------------------------------------------------------------------------


def message_to_pb(m: Message) -> raft_pb2.Message:
    pb = _PbMessage(
        type=m.type,
        to=m.to,
        from_=m.from_,
        term=m.term,
        log_term=m.log_term,
        index=m.index,
        commit=m.commit,
        reject=m.reject,
        reject_hint=m.reject_hint,
        context=m.context,
    )
    if m.entries:
        add = pb.entries.add
        for e in m.entries:
            # filling a fresh element in place is ~2x faster than add(**kwargs) or
            # building Entry messages and extending (which copies them)
            x: Any = add()
            x.type = e.type
            x.term = e.term
            x.index = e.index
            x.data = e.data
    if m.snapshot is not None:
        _fill_snapshot(pb.snapshot, m.snapshot)
    return pb


def message_from_pb(pb: raft_pb2.Message) -> Message:
    if max(pb.term, pb.log_term, pb.index, pb.commit, pb.reject_hint) > MAX_RAFT_NUMBER:
        raise DecodeError(f"{pb.type} message with a term or index above {MAX_RAFT_NUMBER}")
    return Message(
        type=_lookup(_MESSAGE_TYPES, pb.type, "message type"),
        to=pb.to,
        from_=pb.from_,
        term=pb.term,
        log_term=pb.log_term,
        index=pb.index,
        entries=tuple([entry_from_pb(e) for e in pb.entries]),
        commit=pb.commit,
        snapshot=snapshot_from_pb(pb.snapshot) if pb.HasField("snapshot") else None,
        reject=pb.reject,
        reject_hint=pb.reject_hint,
        context=pb.context,
    )


def encode_message(m: Message) -> bytes:
    """``m`` as a serialized raftpb.Message."""
    return message_to_pb(m).SerializeToString()


def decode_message(data: bytes) -> Message:
    """The inverse of :func:`encode_message`; raises DecodeError on bad input."""
    return message_from_pb(raft_pb2.Message.FromString(data))


# --- by type ----------------------------------------------------------------------------

_TO_PB: Final[dict[type, Callable[[Any], Any]]] = {
    Entry: entry_to_pb,
    HardState: hard_state_to_pb,
    ConfState: conf_state_to_pb,
    SnapshotMetadata: snapshot_metadata_to_pb,
    Snapshot: snapshot_to_pb,
    ConfChange: conf_change_to_pb,
    Message: message_to_pb,
}

_FROM_PB: Final[dict[type, Callable[[Any], Any]]] = {
    raft_pb2.Entry: entry_from_pb,
    raft_pb2.HardState: hard_state_from_pb,
    raft_pb2.ConfState: conf_state_from_pb,
    raft_pb2.SnapshotMetadata: snapshot_metadata_from_pb,
    raft_pb2.Snapshot: snapshot_from_pb,
    raft_pb2.ConfChange: conf_change_from_pb,
    raft_pb2.Message: message_from_pb,
}


@overload
def to_pb(obj: Entry) -> raft_pb2.Entry: ...
@overload
def to_pb(obj: HardState) -> raft_pb2.HardState: ...
@overload
def to_pb(obj: ConfState) -> raft_pb2.ConfState: ...
@overload
def to_pb(obj: SnapshotMetadata) -> raft_pb2.SnapshotMetadata: ...
@overload
def to_pb(obj: Snapshot) -> raft_pb2.Snapshot: ...
@overload
def to_pb(obj: ConfChange) -> raft_pb2.ConfChange: ...
@overload
def to_pb(obj: Message) -> raft_pb2.Message: ...
def to_pb(obj: object) -> object:
    """The raftpb message for any ``minietcd.raft.types`` value this module converts."""
    try:
        convert = _TO_PB[type(obj)]
    except KeyError:
        raise TypeError(f"no raftpb form for {type(obj).__name__}") from None
    return convert(obj)


@overload
def from_pb(pb: raft_pb2.Entry) -> Entry: ...
@overload
def from_pb(pb: raft_pb2.HardState) -> HardState: ...
@overload
def from_pb(pb: raft_pb2.ConfState) -> ConfState: ...
@overload
def from_pb(pb: raft_pb2.SnapshotMetadata) -> SnapshotMetadata: ...
@overload
def from_pb(pb: raft_pb2.Snapshot) -> Snapshot: ...
@overload
def from_pb(pb: raft_pb2.ConfChange) -> ConfChange: ...
@overload
def from_pb(pb: raft_pb2.Message) -> Message: ...
def from_pb(pb: object) -> object:
    """The ``minietcd.raft.types`` value for any raftpb message this module converts."""
    try:
        convert = _FROM_PB[type(pb)]
    except KeyError:
        raise TypeError(f"no raft type for {type(pb).__name__}") from None
    return convert(pb)
