"""Deep Txns: the edge and apply parse exactly the same depths (server/nesting.py)."""

from __future__ import annotations

import time

import pytest
from google.protobuf.message import DecodeError

from minietcd.api.etcdserverpb import raft_internal_pb2, rpc_pb2
from minietcd.errors import TxnTooDeepError
from minietcd.raft.types import Entry
from minietcd.server.apply import StateMachine
from minietcd.server.nesting import MAX_TXN_NESTING, deep_messages, parse_request, txn_nesting
from tests.cluster.wire import field, nested_txn

TXN = "etcdserverpb.TxnRequest"


def entry_data(txn: bytes, rid: int = 7) -> bytes:
    """An InternalRaftRequest {header {ID: rid}, txn} built on the wire (txn is field 6)."""
    header = raft_internal_pb2.RequestHeader(ID=rid).SerializeToString()
    return field(100, header) + field(6, txn)


@pytest.mark.parametrize("levels", [1, 2, 49, 50, 100, MAX_TXN_NESTING, MAX_TXN_NESTING + 1, 5000])
def test_the_scan_counts_nested_txns(levels: int) -> None:
    assert txn_nesting(nested_txn(levels, b"k"), TXN) == min(levels, MAX_TXN_NESTING + 1)


@pytest.mark.parametrize("levels", [1, 49, 50, 51, 100, MAX_TXN_NESTING])
def test_the_edge_and_apply_parse_every_depth_up_to_the_bound(levels: int) -> None:
    txn = nested_txn(levels, b"k")
    assert parse_request(rpc_pb2.TxnRequest, txn).SerializeToString() == txn
    req = parse_request(raft_internal_pb2.InternalRaftRequest, entry_data(txn))
    assert req.header.ID == 7
    with deep_messages():
        assert req.txn.SerializeToString() == txn


@pytest.mark.parametrize("levels", [MAX_TXN_NESTING + 1, 20_000])
def test_deeper_is_etcds_too_many_operations(levels: int) -> None:
    # 20,000 levels would crash upb's parser with its limit lifted: the scan refuses first.
    with pytest.raises(TxnTooDeepError, match=r"^etcdserver: too many operations in txn request$"):
        parse_request(rpc_pb2.TxnRequest, nested_txn(levels, b"k"))
    with pytest.raises(TxnTooDeepError):
        parse_request(raft_internal_pb2.InternalRaftRequest, entry_data(nested_txn(levels, b"k")))


def test_garbage_is_still_a_decode_error_and_the_limit_comes_back() -> None:
    with pytest.raises(DecodeError):
        parse_request(rpc_pb2.TxnRequest, b"\xff\xff\xff")
    with deep_messages(), deep_messages():
        pass
    # Outside deep_messages() upb's own limit holds again for everyone else.
    with pytest.raises(DecodeError):
        rpc_pb2.TxnRequest.FromString(nested_txn(60, b"k"))


def test_a_deep_txn_applies_and_answers_a_nested_response() -> None:
    sm = StateMachine(clock=time.monotonic, min_lease_ttl=1, member_id=1)
    data = entry_data(nested_txn(MAX_TXN_NESTING, b"deep", b"value"))
    out = sm.apply(Entry(term=1, index=1, data=data))
    assert out.error is None and out.request_id == 7
    resp = out.response
    assert isinstance(resp, rpc_pb2.TxnResponse)
    depth = 1
    with deep_messages():
        while resp.responses[0].WhichOneof("response") == "response_txn":
            resp = resp.responses[0].response_txn
            depth += 1
    assert depth == MAX_TXN_NESTING
    kv = sm.kv.get(b"deep")
    assert kv is not None and kv.value == b"value"
