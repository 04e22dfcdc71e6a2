"""Txn compares (etcd ``etcdserver/apply.go``: ``applyCompares`` / ``applyCompare`` /
``compareKV``), evaluated against a read view of the store.

Semantics, exactly etcd 3.4's:

* A compare reads ``[key, range_end)`` (same ``range_end`` conventions as a range) at the
  view's revision. With a range it must hold for **every** key in it.
* No key found: a VALUE compare is false (gRPC cannot tell a missing value from an empty one);
  any other target compares the zero KeyValue — version, create, mod and lease all 0. So
  ``create_revision == 0`` is the idiom for "key does not exist".
* VALUE compares bytes lexicographically; the others compare int64s.
* A read error (there is none at the current revision) makes the compare false.

The operand mirrors the proto ``target_union``: an int for VERSION / CREATE / MOD / LEASE,
bytes for VALUE. An operand of the wrong kind counts as that target's zero value, which is what
etcd does when the union holds a different field or none.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum

from minietcd.errors import MvccError
from minietcd.mvcc.range_request import RangeReader
from minietcd.mvcc.types import KeyValue


class CompareTarget(IntEnum):
    """Values as in ``Compare.CompareTarget``."""

    VERSION = 0
    CREATE = 1
    MOD = 2
    VALUE = 3
    LEASE = 4


class CompareResult(IntEnum):
    """Values as in ``Compare.CompareResult``."""

    EQUAL = 0
    GREATER = 1
    LESS = 2
    NOT_EQUAL = 3


@dataclass(frozen=True, slots=True)
class Compare:
    """One guard of a txn: ``<target of key(s)> <result> <operand>``."""

    key: bytes
    target: CompareTarget
    result: CompareResult
    #: What the target is compared with: int (VERSION/CREATE/MOD/LEASE) or bytes (VALUE).
    operand: int | bytes = 0
    #: b"": just ``key``; b"\\0": every key >= key; else ``[key, range_end)``.
    range_end: bytes = b""


def _operand_int(c: Compare) -> int:
    # bool is an int in Python but never a meaningful operand; treat it like a wrong kind.
    if isinstance(c.operand, int) and not isinstance(c.operand, bool):
        return c.operand
    return 0


def compare_kv(c: Compare, kv: KeyValue) -> bool:
    """Whether ``kv`` satisfies ``c`` (etcd ``compareKV``)."""
    if c.target == CompareTarget.VALUE:
        want = c.operand if isinstance(c.operand, bytes) else b""
        have: bytes = kv.value
        cmp = (have > want) - (have < want)
    else:
        if c.target == CompareTarget.CREATE:
            n = kv.create_revision
        elif c.target == CompareTarget.MOD:
            n = kv.mod_revision
        elif c.target == CompareTarget.VERSION:
            n = kv.version
        else:
            n = kv.lease
        m = _operand_int(c)
        cmp = (n > m) - (n < m)
    if c.result == CompareResult.EQUAL:
        return cmp == 0
    if c.result == CompareResult.NOT_EQUAL:
        return cmp != 0
    if c.result == CompareResult.GREATER:
        return cmp > 0
    if c.result == CompareResult.LESS:
        return cmp < 0
    return True  # etcd: an unknown result passes


def evaluate_compare(view: RangeReader, c: Compare) -> bool:
    """Evaluate one compare at ``view``'s revision (etcd ``applyCompare``)."""
    try:
        kvs = view.range(c.key, c.range_end).kvs
    except MvccError:
        return False
    if not kvs:
        if c.target == CompareTarget.VALUE:
            return False
        return compare_kv(c, KeyValue(c.key))
    return all(compare_kv(c, kv) for kv in kvs)


def evaluate_compares(view: RangeReader, compares: Iterable[Compare]) -> bool:
    """True when every compare holds (an empty list holds): picks success vs failure ops."""
    return all(evaluate_compare(view, c) for c in compares)
