"""The KeyValue bytes must be etcd's (mvccpb.KeyValue.Marshal) since HashKV hashes them."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
from hypothesis import given
from hypothesis import strategies as st

from minietcd.errors import MvccSnapshotError
from minietcd.mvcc.codec import crc32c, decode_kv, encode_kv
from minietcd.mvcc.revision import MAX_INT64, MIN_INT64
from minietcd.mvcc.types import KeyValue

if TYPE_CHECKING:
    from google.protobuf.message import Message

int64s = st.integers(MIN_INT64, MAX_INT64)
kvs = st.builds(KeyValue, st.binary(max_size=20), int64s, int64s, int64s, st.binary(max_size=20),
                int64s)  # fmt: skip


def _protobuf_keyvalue_class() -> Callable[..., Message]:
    """mvccpb.KeyValue built from a descriptor, so the test needs no generated code."""
    pytest.importorskip("google.protobuf")
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    fdp = descriptor_pb2.FileDescriptorProto(
        name="minietcd_test_kv.proto", package="minietcdtest", syntax="proto3"
    )
    msg = fdp.message_type.add(name="KeyValue")
    t = descriptor_pb2.FieldDescriptorProto
    for number, name, typ in [
        (1, "key", t.TYPE_BYTES),
        (2, "create_revision", t.TYPE_INT64),
        (3, "mod_revision", t.TYPE_INT64),
        (4, "version", t.TYPE_INT64),
        (5, "value", t.TYPE_BYTES),
        (6, "lease", t.TYPE_INT64),
    ]:
        msg.field.add(name=name, number=number, type=typ, label=t.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("minietcdtest.KeyValue"))


PB_KV = _protobuf_keyvalue_class()


@given(kvs)
def test_encode_matches_protobuf(kv: KeyValue) -> None:
    pb = PB_KV(
        key=kv.key,
        create_revision=kv.create_revision,
        mod_revision=kv.mod_revision,
        version=kv.version,
        value=kv.value,
        lease=kv.lease,
    )
    assert encode_kv(kv) == pb.SerializeToString(deterministic=True)


@given(kvs)
def test_decode_inverts_encode(kv: KeyValue) -> None:
    assert decode_kv(encode_kv(kv)) == kv


def test_tombstone_value_is_just_the_key() -> None:
    assert encode_kv(KeyValue(b"foo")) == b"\x0a\x03foo"


@pytest.mark.parametrize("bad", [b"\x0a\x05ab", b"\x38\x01", b"\x10", b"\x0a"])
def test_decode_rejects_garbage(bad: bytes) -> None:
    with pytest.raises(MvccSnapshotError):
        decode_kv(bad)


def test_crc32c_known_vectors() -> None:
    assert crc32c(b"") == 0
    assert crc32c(b"123456789") == 0xE3069283  # the standard check value
    assert crc32c(b"456789", crc32c(b"123")) == 0xE3069283  # streaming, like Go's hash.Write
