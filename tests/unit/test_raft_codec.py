"""minietcd.wire.raft_codec: raft.types dataclasses <-> raftpb protobuf, losslessly."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from minietcd.api.raftpb import raft_pb2
from minietcd.errors import RaftError
from minietcd.raft import confchange
from minietcd.raft.types import (
    EMPTY_SNAPSHOT,
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
from minietcd.wire import raft_codec as codec
from minietcd.wire.raft_codec import DecodeError

U64 = st.integers(min_value=0, max_value=2**64 - 1)
IDS = st.integers(min_value=0, max_value=2**64 - 1)
SMALL = st.integers(min_value=0, max_value=1000)  # the common case: small varints
# Terms and indexes a peer may send: up to 2^63-1 (codec.MAX_RAFT_NUMBER), so none overflows.
NUM = st.one_of(SMALL, st.integers(min_value=0, max_value=codec.MAX_RAFT_NUMBER))
BLOB = st.binary(max_size=64)

entries = st.builds(Entry, term=NUM, index=NUM, type=st.sampled_from(EntryType), data=BLOB)
hard_states = st.builds(HardState, term=U64, vote=IDS, commit=U64)  # never sent: no bound
id_tuples = st.lists(IDS, max_size=5, unique=True).map(lambda xs: tuple(sorted(xs)))
conf_states = st.builds(ConfState, voters=id_tuples, learners=id_tuples)
metadatas = st.builds(SnapshotMetadata, conf_state=conf_states, index=NUM, term=NUM)
snapshots = st.builds(Snapshot, data=st.binary(max_size=256), metadata=metadatas)
conf_changes = st.builds(ConfChange, type=st.sampled_from(ConfChangeType), node_id=IDS, context=BLOB)
messages = st.builds(
    Message,
    type=st.sampled_from(MessageType),
    to=IDS,
    from_=IDS,
    term=NUM,
    log_term=NUM,
    index=NUM,
    entries=st.lists(entries, max_size=8).map(tuple),
    commit=NUM,
    snapshot=st.one_of(st.none(), snapshots),
    reject=st.booleans(),
    reject_hint=NUM,
    context=BLOB,
)
any_value = st.one_of(entries, hard_states, conf_states, metadatas, snapshots, conf_changes, messages)


# --- round trips ------------------------------------------------------------------------


@given(any_value)
def test_round_trip_through_pb(value: Any) -> None:
    pb = codec.to_pb(value)
    assert codec.from_pb(pb) == value


@given(any_value)
def test_round_trip_through_bytes(value: Any) -> None:
    pb = codec.to_pb(value)
    parsed = type(pb).FromString(pb.SerializeToString())
    assert parsed == pb
    assert codec.from_pb(parsed) == value


@given(messages)
def test_encode_decode_message(m: Message) -> None:
    assert codec.decode_message(codec.encode_message(m)) == m


@given(conf_changes)
def test_encode_decode_conf_change(cc: ConfChange) -> None:
    data = codec.encode_conf_change(cc)
    assert isinstance(data, bytes)
    assert codec.decode_conf_change(data) == cc


@given(conf_changes)
def test_conf_change_entry_data_is_the_cores_format(cc: ConfChange) -> None:
    # One format for EntryConfChange data: the one RawNode writes into the log.
    assert codec.encode_conf_change(cc) == confchange.encode_conf_change(cc)
    assert confchange.decode_conf_change(codec.encode_conf_change(cc)) == cc


@given(entries)
def test_decoded_entries_are_ordinary_frozen_entries(e: Entry) -> None:
    got = codec.entry_from_pb(codec.entry_to_pb(e))
    assert got == e and hash(got) == hash(e)
    assert type(got) is Entry and type(got.type) is EntryType and type(got.data) is bytes
    with pytest.raises(dataclasses.FrozenInstanceError):
        got.term = 1  # type: ignore[misc]  # frozen: the assignment must fail


@given(messages)
def test_decoded_enums_are_ours(m: Message) -> None:
    got = codec.decode_message(codec.encode_message(m))
    assert type(got.type) is MessageType
    assert all(type(e.type) is EntryType for e in got.entries)
    assert isinstance(got.entries, tuple)


def test_a_batch_of_100_entries() -> None:
    ents = tuple(Entry(7, i, EntryType.NORMAL, b"v" * 100) for i in range(1, 101))
    m = Message(MessageType.MsgApp, to=2, from_=1, term=7, log_term=7, index=0, entries=ents)
    pb = codec.message_to_pb(m)
    assert len(pb.entries) == 100 and pb.entries[99].index == 100
    assert codec.decode_message(pb.SerializeToString()) == m


# --- edge cases -------------------------------------------------------------------------


def test_no_snapshot_and_empty_snapshot_stay_distinct() -> None:
    none = Message(MessageType.MsgApp)
    empty = Message(MessageType.MsgSnap, snapshot=EMPTY_SNAPSHOT)
    assert not codec.message_to_pb(none).HasField("snapshot")
    assert codec.message_to_pb(empty).HasField("snapshot")
    assert codec.decode_message(codec.encode_message(none)).snapshot is None
    assert codec.decode_message(codec.encode_message(empty)).snapshot == EMPTY_SNAPSHOT


def test_zero_values_encode_to_nothing() -> None:
    assert codec.encode_message(Message(MessageType.MsgHup)) == b""
    assert codec.to_pb(HardState()).SerializeToString() == b""


def test_field_numbers_follow_etcd_raftpb() -> None:
    # etcd-io/raft: Entry{Type=1,Term=2,Index=3,Data=4}; Message.from=3, logTerm=5, ...
    assert codec.encode_message(Message(MessageType.MsgApp, from_=1)) == b"\x08\x03\x18\x01"
    assert codec.to_pb(Entry(1, 2, EntryType.CONF_CHANGE)).SerializeToString() == (
        b"\x08\x01\x10\x01\x18\x02"
    )
    cc = ConfChange(ConfChangeType.REMOVE_NODE, 5, b"x")
    assert codec.to_pb(cc).SerializeToString() == b"\x10\x01\x18\x05\x22\x01x"


def test_unknown_enum_numbers_are_decode_errors() -> None:
    bad_entry = raft_pb2.Entry()
    bad_entry.ParseFromString(b"\x08\x09")  # type = 9
    with pytest.raises(DecodeError, match="entry type 9"):
        codec.entry_from_pb(bad_entry)
    with pytest.raises(DecodeError, match="message type 99"):
        codec.decode_message(b"\x08\x63")
    with pytest.raises(DecodeError, match="conf change type 4"):
        codec.conf_change_from_pb(raft_pb2.ConfChange.FromString(b"\x10\x04\x18\x01"))
    with pytest.raises(RaftError, match="conf change type 4"):
        codec.decode_conf_change(b"\x04" + bytes(8))
    msg_with_bad_entry = b"\x08\x03\x3a\x02\x08\x09"  # MsgApp, entries=[Entry{type=9}]
    with pytest.raises(DecodeError, match="entry type 9"):
        codec.decode_message(msg_with_bad_entry)


@pytest.mark.parametrize("garbage", [b"\xff", b"\x0a", b"\x3a\x05\x08"])
def test_malformed_bytes_are_decode_errors(garbage: bytes) -> None:
    with pytest.raises(DecodeError):
        codec.decode_message(garbage)
    with pytest.raises(DecodeError):
        raft_pb2.ConfChange.FromString(garbage)
    with pytest.raises(RaftError):
        codec.decode_conf_change(garbage)  # too short for the core's header


def test_unsupported_types_are_type_errors() -> None:
    with pytest.raises(TypeError, match="str"):
        codec.to_pb("nope")  # type: ignore[call-overload]  # a wrong type on purpose
    with pytest.raises(TypeError, match="MessageBatch"):
        codec.from_pb(raft_pb2.MessageBatch())  # type: ignore[call-overload]  # a wrong type on purpose


# --- the proto mirrors raft.types ---------------------------------------------------------

PAIRS = [
    (Entry, raft_pb2.Entry),
    (HardState, raft_pb2.HardState),
    (ConfState, raft_pb2.ConfState),
    (SnapshotMetadata, raft_pb2.SnapshotMetadata),
    (Snapshot, raft_pb2.Snapshot),
    (ConfChange, raft_pb2.ConfChange),
    (Message, raft_pb2.Message),
]


@pytest.mark.parametrize(("cls", "pb_cls"), PAIRS, ids=lambda x: getattr(x, "__name__", ""))
def test_proto_has_every_dataclass_field(cls: type, pb_cls: Any) -> None:
    ours = {f.name for f in dataclasses.fields(cls)}
    assert ours == set(pb_cls.DESCRIPTOR.fields_by_name)


def test_fast_entry_path_sets_every_field() -> None:
    assert set(codec.ENTRY_FIELDS) == {f.name for f in dataclasses.fields(Entry)}
    assert not hasattr(Entry, "__post_init__")  # the fast path would skip it


@pytest.mark.parametrize(
    ("ours", "pb_enum", "prefix"),
    [
        (EntryType, raft_pb2.EntryType, "Entry"),
        (ConfChangeType, raft_pb2.ConfChangeType, "ConfChange"),
        (MessageType, raft_pb2.MessageType, ""),
    ],
    ids=["EntryType", "ConfChangeType", "MessageType"],
)
def test_enum_numbers_match(ours: Any, pb_enum: Any, prefix: str) -> None:
    def squash(name: str) -> str:
        return name.removeprefix(prefix).replace("_", "").lower()

    pb_values = {squash(name): number for name, number in pb_enum.items()}
    assert pb_values == {squash(m.name): m.value for m in ours}


# --- absurd numbers from a peer --------------------------------------------------------------


@pytest.mark.parametrize("field", ["term", "log_term", "index", "commit", "reject_hint"])
def test_a_term_or_index_that_could_overflow_is_refused(field: str) -> None:
    # A forged MsgApp at term 2^64-1 used to be stepped and persisted; one campaign later the
    # term no longer fitted its uint64 field and every Status failed, restarts included.
    pb = codec.message_to_pb(Message(type=MessageType.MsgApp, to=2, from_=1, term=1))
    setattr(pb, field, codec.MAX_RAFT_NUMBER + 1)
    with pytest.raises(DecodeError, match="above"):
        codec.message_from_pb(pb)
    setattr(pb, field, codec.MAX_RAFT_NUMBER)
    assert getattr(codec.message_from_pb(pb), field) == codec.MAX_RAFT_NUMBER


@pytest.mark.parametrize("field", ["term", "index"])
def test_an_entry_or_snapshot_that_could_overflow_is_refused(field: str) -> None:
    pb = codec.message_to_pb(
        Message(
            type=MessageType.MsgApp, to=2, from_=1, term=1, entries=(Entry(term=1, index=1),),
            snapshot=Snapshot(metadata=SnapshotMetadata(index=1, term=1)),
        )
    )  # fmt: skip
    setattr(pb.entries[0], field, 2**64 - 1)
    with pytest.raises(DecodeError, match="out of range"):
        codec.message_from_pb(pb)
    setattr(pb.entries[0], field, 1)
    setattr(pb.snapshot.metadata, field, 2**64 - 1)
    with pytest.raises(DecodeError, match="out of range"):
        codec.message_from_pb(pb)
