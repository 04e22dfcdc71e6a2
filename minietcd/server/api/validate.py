"""The request checks etcd makes before anything is proposed to Raft (the API runs them, once).

Mirrors etcd 3.4 ``etcdserver/api/v3rpc/key.go`` (``checkRangeRequest`` / ``checkPutRequest`` /
``checkDeleteRequest`` / ``checkTxnRequest`` / ``checkRequestOp`` / ``checkIntervals``): same
checks, same order, so the same request fails with the same message. Every failure raises the leaf of
:mod:`minietcd.errors` for etcd's error (all of these are INVALID_ARGUMENT on the wire).

Why these run before proposing and not in the applier: a request refused here never costs a Raft
round trip, and the applier can rely on, e.g., a txn never putting the same key twice.

One addition from etcd 3.5: a range whose ``sort_order`` or ``sort_target`` is not a value of
its enum is refused with "etcdserver: invalid sort option" (3.4's applier would panic on an
unknown sort target).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from minietcd.api.etcdserverpb import rpc_pb2
from minietcd.errors import (
    DuplicateKeyError,
    EmptyKeyError,
    InvalidSortOptionError,
    KeyNotFoundError,
    LeaseProvidedError,
    TooManyOpsError,
    ValueProvidedError,
)

#: etcd's default ``--max-txn-ops``.
DEFAULT_MAX_TXN_OPS = 128

_SORT_ORDERS = frozenset(rpc_pb2.RangeRequest.SortOrder.values())
_SORT_TARGETS = frozenset(rpc_pb2.RangeRequest.SortTarget.values())

#: A half-open key interval ``[begin, end)`` of a delete in a txn (etcd's adt string-affine
#: interval; ``end`` is never empty here, so "no upper bound" does not arise).
_Interval = tuple[bytes, bytes]


def check_range(req: rpc_pb2.RangeRequest) -> None:
    """etcd ``checkRangeRequest`` (+ 3.5's sort option check)."""
    if not req.key:
        raise EmptyKeyError()
    if req.sort_order not in _SORT_ORDERS or req.sort_target not in _SORT_TARGETS:
        raise InvalidSortOptionError()


def check_put(req: rpc_pb2.PutRequest) -> None:
    """etcd ``checkPutRequest``."""
    if not req.key:
        raise EmptyKeyError()
    if req.ignore_value and req.value:
        raise ValueProvidedError()
    if req.ignore_lease and req.lease != 0:
        raise LeaseProvidedError()


def check_delete(req: rpc_pb2.DeleteRangeRequest) -> None:
    """etcd ``checkDeleteRequest``."""
    if not req.key:
        raise EmptyKeyError()


def check_txn(req: rpc_pb2.TxnRequest, max_txn_ops: int = DEFAULT_MAX_TXN_OPS) -> None:
    """Everything etcd's ``kvServer.Txn`` checks: the request tree, then duplicate keys in the
    success branch, then in the failure branch."""
    check_txn_request(req, max_txn_ops)
    check_intervals(req.success)
    check_intervals(req.failure)


def check_txn_request(req: rpc_pb2.TxnRequest, max_txn_ops: int) -> None:
    """etcd ``checkTxnRequest``: size limits, empty compare keys, then each op.

    The op count is the longest of compare / success / failure, not their sum; a nested txn is
    checked against what its parent leaves of the budget (``max_txn_ops - count``), as in etcd.
    """
    opc = max(len(req.compare), len(req.success), len(req.failure))
    if opc > max_txn_ops:
        raise TooManyOpsError()
    for c in req.compare:
        if not c.key:
            raise EmptyKeyError()
    for op in req.success:
        check_request_op(op, max_txn_ops - opc)
    for op in req.failure:
        check_request_op(op, max_txn_ops - opc)


def check_request_op(op: rpc_pb2.RequestOp, max_txn_ops: int) -> None:
    """etcd ``checkRequestOp``: an op with no request set is "key not found", as in etcd."""
    kind = op.WhichOneof("request")
    if kind == "request_range":
        check_range(op.request_range)
    elif kind == "request_put":
        check_put(op.request_put)
    elif kind == "request_delete_range":
        check_delete(op.request_delete_range)
    elif kind == "request_txn":
        check_txn_request(op.request_txn, max_txn_ops)
    else:
        raise KeyNotFoundError()


def check_intervals(ops: Sequence[rpc_pb2.RequestOp]) -> tuple[set[bytes], list[_Interval]]:
    """etcd ``checkIntervals``: refuse a txn branch that writes one key twice.

    Returns the keys put and the intervals deleted by ``ops`` and their nested txns. Rules, as
    in etcd: a put may not hit a key put elsewhere in the branch or inside a delete of this
    branch (including deletes of nested txns checked before it); a nested txn's then- and
    else-branches may put the same key (only one runs); deletes may overlap each other.

    etcd 3.4 quirk kept on purpose: a delete's ``range_end`` is used raw, so the "every key >=
    key" end ``b"\\0"`` is the empty interval ``[key, "\\0")`` and conflicts with nothing.
    """
    dels: list[_Interval] = []
    for op in ops:
        if op.WhichOneof("request") == "request_delete_range":
            d = op.request_delete_range
            # A single-key delete is etcd's string-affine point [key, key + "\0").
            dels.append((d.key, d.range_end) if d.range_end else (d.key, d.key + b"\0"))

    puts: set[bytes] = set()
    for op in ops:
        if op.WhichOneof("request") != "request_txn":
            continue
        nested = op.request_txn
        puts_then, dels_then = check_intervals(nested.success)
        puts_else, dels_else = check_intervals(nested.failure)
        for k in puts_then:
            if k in puts or _intersects(dels, k):
                raise DuplicateKeyError()
            puts.add(k)
        for k in puts_else:
            if (k in puts and k not in puts_then) or _intersects(dels, k):
                raise DuplicateKeyError()
            puts.add(k)
        dels.extend(dels_then)
        dels.extend(dels_else)

    for op in ops:
        if op.WhichOneof("request") != "request_put":
            continue
        k = op.request_put.key
        if k in puts or _intersects(dels, k):
            raise DuplicateKeyError()
        puts.add(k)
    return puts, dels


def txn_is_serializable(req: rpc_pb2.TxnRequest) -> bool:
    """etcd ``isTxnSerializable``: every op of both branches is a serializable range, so the
    read needs no ReadIndex round (an empty txn counts, as in etcd)."""
    return all(
        op.WhichOneof("request") == "request_range" and op.request_range.serializable
        for op in (*req.success, *req.failure)
    )


def _intersects(dels: Iterable[_Interval], key: bytes) -> bool:
    # etcd asks its interval tree whether the point [key, key + "\0") overlaps a delete; for
    # a non-empty end that is begin <= key < end (an inverted interval holds no key).
    return any(begin <= key < end for begin, end in dels)
