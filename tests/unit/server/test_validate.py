"""Edge checks (etcd v3rpc/key.go): every message, in etcd's order."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from minietcd import errors as E
from minietcd.api.etcdserverpb import rpc_pb2 as pb
from minietcd.errors import MinietcdError
from minietcd.server.api import validate as V
from minietcd.server.apply_kv import txn_is_read_only
from minietcd.server.v3rpc.errors import to_grpc_status

# etcd's words for the errors below (the classes of minietcd.errors hold them).
ERR_DUPLICATE_KEY = E.DuplicateKeyError.etcd_message
ERR_EMPTY_KEY = E.EmptyKeyError.etcd_message
ERR_INVALID_SORT_OPTION = E.InvalidSortOptionError.etcd_message
ERR_KEY_NOT_FOUND = E.KeyNotFoundError.etcd_message
ERR_LEASE_PROVIDED = E.LeaseProvidedError.etcd_message
ERR_TOO_MANY_OPS = E.TooManyOpsError.etcd_message
ERR_VALUE_PROVIDED = E.ValueProvidedError.etcd_message

EMPTY = ERR_EMPTY_KEY
DUP = ERR_DUPLICATE_KEY
TOO_MANY = ERR_TOO_MANY_OPS


def rr(**kw: Any) -> pb.RangeRequest:
    """A RangeRequest that may carry enum values outside the enums (proto3 enums are open)."""
    return pb.RangeRequest(**kw)


def rng(key: bytes = b"k", **kw: Any) -> pb.RequestOp:
    return pb.RequestOp(request_range=pb.RangeRequest(key=key, **kw))


def put(key: bytes = b"k", **kw: Any) -> pb.RequestOp:
    return pb.RequestOp(request_put=pb.PutRequest(key=key, **kw))


def dele(key: bytes = b"k", end: bytes = b"") -> pb.RequestOp:
    return pb.RequestOp(request_delete_range=pb.DeleteRangeRequest(key=key, range_end=end))


def txn(
    success: list[pb.RequestOp] | None = None,
    failure: list[pb.RequestOp] | None = None,
    compare: list[pb.Compare] | None = None,
) -> pb.TxnRequest:
    return pb.TxnRequest(compare=compare or [], success=success or [], failure=failure or [])


def nested(
    success: list[pb.RequestOp] | None = None, failure: list[pb.RequestOp] | None = None
) -> pb.RequestOp:
    return pb.RequestOp(request_txn=txn(success, failure))


def cmp(key: bytes = b"k") -> pb.Compare:
    return pb.Compare(key=key, target=pb.Compare.VERSION, version=0)


def expect(message: str | None, fn: Any, *args: Any) -> None:
    if message is None:
        fn(*args)
        return
    with pytest.raises(MinietcdError) as info:
        fn(*args)
    assert str(info.value) == message
    assert info.value.etcd_message == message
    # Every edge refusal is INVALID_ARGUMENT with the same words on the wire.
    assert to_grpc_status(info.value) == (grpc.StatusCode.INVALID_ARGUMENT, message)


# --- single requests ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("req", "message"),
    [
        (pb.RangeRequest(key=b"a"), None),
        (rr(key=b"a", range_end=b"\0", sort_order=2, sort_target=4), None),
        (pb.RangeRequest(), EMPTY),
        (pb.RangeRequest(range_end=b"z"), EMPTY),
        (rr(key=b"a", sort_order=3), ERR_INVALID_SORT_OPTION),
        (rr(key=b"a", sort_order=-1), ERR_INVALID_SORT_OPTION),
        (rr(key=b"a", sort_target=5), ERR_INVALID_SORT_OPTION),
        (rr(sort_target=5), EMPTY),  # the key is checked first
    ],
)
def test_check_range(req: pb.RangeRequest, message: str | None) -> None:
    expect(message, V.check_range, req)


@pytest.mark.parametrize(
    ("req", "message"),
    [
        (pb.PutRequest(key=b"a", value=b"v", lease=7), None),
        (pb.PutRequest(key=b"a", ignore_value=True), None),
        (pb.PutRequest(key=b"a", ignore_lease=True), None),
        (pb.PutRequest(key=b"a", ignore_value=True, ignore_lease=True), None),
        (pb.PutRequest(value=b"v"), EMPTY),
        (pb.PutRequest(key=b"a", value=b"v", ignore_value=True), ERR_VALUE_PROVIDED),
        (pb.PutRequest(key=b"a", lease=7, ignore_lease=True), ERR_LEASE_PROVIDED),
        (pb.PutRequest(key=b"a", lease=-1, ignore_lease=True), ERR_LEASE_PROVIDED),
        # etcd's order: key, then value, then lease.
        (pb.PutRequest(value=b"v", ignore_value=True), EMPTY),
        (
            pb.PutRequest(key=b"a", value=b"v", lease=7, ignore_value=True, ignore_lease=True),
            ERR_VALUE_PROVIDED,
        ),
    ],
)
def test_check_put(req: pb.PutRequest, message: str | None) -> None:
    expect(message, V.check_put, req)


@pytest.mark.parametrize(
    ("req", "message"),
    [
        (pb.DeleteRangeRequest(key=b"a"), None),
        (pb.DeleteRangeRequest(key=b"a", range_end=b"\0", prev_kv=True), None),
        (pb.DeleteRangeRequest(), EMPTY),
        (pb.DeleteRangeRequest(range_end=b"\0"), EMPTY),
    ],
)
def test_check_delete(req: pb.DeleteRangeRequest, message: str | None) -> None:
    expect(message, V.check_delete, req)


# --- txn: structure and limits --------------------------------------------------------------


@pytest.mark.parametrize(
    ("req", "max_ops", "message"),
    [
        (txn(), 128, None),
        (txn([rng()], [put()], [cmp()]), 128, None),
        # The count is the longest list, not the sum.
        (txn([put(b"a"), put(b"b")], [put(b"c"), put(b"d")], [cmp(), cmp()]), 2, None),
        (txn([put(b"a"), put(b"b"), put(b"c")]), 2, TOO_MANY),
        (txn(failure=[put(b"a"), put(b"b"), put(b"c")]), 2, TOO_MANY),
        (txn(compare=[cmp(), cmp(), cmp()]), 2, TOO_MANY),
        (txn(compare=[cmp(b"")]), 128, EMPTY),
        (txn([rng(b"")]), 128, EMPTY),
        (txn([put(b"")]), 128, EMPTY),
        (txn([dele(b"")]), 128, EMPTY),
        (txn(failure=[put(b"a", value=b"v", ignore_value=True)]), 128, ERR_VALUE_PROVIDED),
        (txn([put(b"a", lease=3, ignore_lease=True)]), 128, ERR_LEASE_PROVIDED),
        (txn([rng(b"a", sort_target=9)]), 128, ERR_INVALID_SORT_OPTION),
        # An op with nothing set: etcd says "key not found".
        (txn([pb.RequestOp()]), 128, ERR_KEY_NOT_FOUND),
        (txn(failure=[pb.RequestOp()]), 128, ERR_KEY_NOT_FOUND),
        # Nested txns are checked with what the parent leaves: max - longest list.
        (txn([nested([put(b"a")])]), 2, None),
        (txn([nested([put(b"a"), put(b"b")])]), 3, None),
        (txn([nested([put(b"a"), put(b"b")])]), 2, TOO_MANY),
        (txn([nested([nested([put(b"x")])])]), 3, None),
        (txn([nested([nested([put(b"x")])])]), 2, TOO_MANY),
        (txn([nested([put(b"")])]), 128, EMPTY),
        (txn([nested(failure=[pb.RequestOp()])]), 128, ERR_KEY_NOT_FOUND),
        (pb.TxnRequest(success=[nested()], compare=[cmp()]), 128, None),
        # Order: too many ops before empty compare key before the ops.
        (txn([put(b""), put(b"")], compare=[cmp(b"")]), 1, TOO_MANY),
        (txn([put(b"")], compare=[cmp(b"")]), 128, EMPTY),
        (txn([put(b"a", value=b"v", ignore_value=True), pb.RequestOp()]), 128, ERR_VALUE_PROVIDED),
        (txn([pb.RequestOp(), put(b"a", value=b"v", ignore_value=True)]), 128, ERR_KEY_NOT_FOUND),
        # Structure errors come before duplicate keys.
        (txn([put(b"a"), put(b"a"), put(b"")]), 128, EMPTY),
    ],
)
def test_check_txn_structure(req: pb.TxnRequest, max_ops: int, message: str | None) -> None:
    expect(message, V.check_txn, req, max_ops)


def test_default_max_txn_ops_is_etcds() -> None:
    assert V.DEFAULT_MAX_TXN_OPS == 128
    ops = [put(bytes([i])) for i in range(1, 129)]
    V.check_txn(txn(ops))
    expect(TOO_MANY, V.check_txn, txn([*ops, put(b"\xff\xff")]))


# --- txn: duplicate keys (checkIntervals) ---------------------------------------------------


@pytest.mark.parametrize(
    ("success", "message"),
    [
        ([put(b"a"), put(b"b")], None),
        ([put(b"a"), put(b"a")], DUP),
        ([put(b"a"), rng(b"a"), rng(b"a")], None),  # reads never conflict
        ([put(b"a"), dele(b"a")], DUP),
        ([dele(b"a"), put(b"a")], DUP),  # order does not matter
        ([dele(b"a"), put(b"ab")], None),  # a point delete holds only its key
        ([dele(b"a", b"c"), put(b"b")], DUP),
        ([dele(b"a", b"c"), put(b"a")], DUP),  # begin is inside
        ([dele(b"a", b"c"), put(b"c")], None),  # end is not
        ([dele(b"c", b"a"), put(b"b")], None),  # an inverted range holds nothing
        ([dele(b"a"), dele(b"a", b"z")], None),  # deletes may overlap
        # etcd 3.4 uses range_end raw: "\0" (every key >= key) is the empty [key, "\0").
        ([dele(b"a", b"\0"), put(b"b")], None),
        ([dele(b"\0", b"\0"), put(b"b")], None),
        # nested txns
        ([nested([put(b"a")], [put(b"a")])], None),  # then / else: only one runs
        ([nested([put(b"a")]), put(b"a")], DUP),
        ([put(b"a"), nested([put(b"a")])], DUP),
        ([put(b"a"), nested(failure=[put(b"a")])], DUP),
        ([nested([put(b"a")]), nested([put(b"a")])], DUP),
        ([nested([put(b"a")]), nested(failure=[put(b"a")])], DUP),
        # an else-key also put by *this* nested txn's then-branch is fine...
        ([nested([put(b"a"), put(b"b")], [put(b"a")])], None),
        # ...but not one put by an earlier nested txn
        ([nested([put(b"a")]), nested([put(b"b")], [put(b"a")])], DUP),
        ([dele(b"a"), nested([put(b"a")])], DUP),
        ([dele(b"a", b"c"), nested(failure=[put(b"b")])], DUP),
        ([nested([dele(b"a")]), put(b"a")], DUP),
        ([nested(failure=[dele(b"a", b"c")]), put(b"b")], DUP),
        ([nested([dele(b"a")], [put(b"a")])], None),  # different branches
        ([nested([dele(b"a"), put(b"a")])], DUP),  # caught inside the nested txn
        ([nested([nested([put(b"a")])]), put(b"a")], DUP),  # deeper
        ([nested([nested([dele(b"a", b"c")])]), put(b"b")], DUP),
        # a nested txn's deletes only reach keys checked after it
        ([nested([put(b"b")]), nested([dele(b"a", b"c")])], None),
        ([nested([dele(b"a", b"c")]), nested([put(b"b")])], DUP),
    ],
)
def test_check_intervals(success: list[pb.RequestOp], message: str | None) -> None:
    expect(message, V.check_txn, txn(success))
    # The failure branch is checked the same way, on its own.
    expect(message, V.check_txn, txn(failure=success))


def test_success_and_failure_are_checked_apart() -> None:
    V.check_txn(txn([put(b"a")], [put(b"a")]))
    V.check_txn(txn([dele(b"a", b"z")], [put(b"b")]))
    expect(DUP, V.check_txn, txn([put(b"a")], [put(b"b"), put(b"b")]))


def test_check_intervals_returns_puts_and_deletes() -> None:
    puts, dels = V.check_intervals([put(b"x"), dele(b"a"), dele(b"b", b"d"), nested([put(b"y")])])
    assert puts == {b"x", b"y"}
    assert dels == [(b"a", b"a\0"), (b"b", b"d")]


# --- read-only / serializable ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("req", "read_only", "serializable"),
    [
        (txn(), True, True),
        (txn([rng()], [rng()]), True, False),
        (txn([rng(serializable=True)], [rng(serializable=True)]), True, True),
        (txn([rng(serializable=True)], [rng()]), True, False),
        (txn([rng(), put()]), False, False),
        (txn([rng(serializable=True)], [dele()]), False, False),
        (txn([nested([rng(serializable=True)])]), False, False),  # a nested txn is a write
        (txn([pb.RequestOp()]), False, False),
    ],
)
def test_read_only_and_serializable(req: pb.TxnRequest, read_only: bool, serializable: bool) -> None:
    assert txn_is_read_only(req) is read_only
    assert V.txn_is_serializable(req) is serializable
