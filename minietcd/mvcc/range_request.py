"""etcd's server-side RangeRequest extras: sort, revision filters, limit and ``more``.

The store's own range (like etcd's ``mvcc.Range``) knows only limit / revision / count. What a
client's RangeRequest adds on top — sort order and target, min/max mod and create revision
filters, ``keys_only``, and computing ``more`` — etcd does in ``etcdserver/apply.go``
(``applierV3backend.Range``). This module mirrors that step by step as pure functions:

1. :func:`store_options` — what to ask the store for: everything when sorting or filtering
   (the limit can only be applied after), else ``limit + 1`` so ``more`` can be told.
2. :func:`finish_range` — filter, sort, then cut to ``limit`` setting ``more``; blank values
   for ``keys_only`` last (so a sort by VALUE still sees them).

``count`` is the store's count of keys in the range, before filters, exactly as etcd reports.

One etcd 3.4 quirk is kept on purpose, for identical answers: the fetch-everything rule looks at
``sort_order`` only, so a non-KEY ``sort_target`` with order NONE (which still sorts ascending)
sorts just the first ``limit + 1`` keys of the range.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import IntEnum
from typing import Any, Protocol

from minietcd.mvcc.types import KeyValue, RangeOptions, RangeResult


class SortOrder(IntEnum):
    """Values as in ``RangeRequest.SortOrder``."""

    NONE = 0
    ASCEND = 1
    DESCEND = 2


class SortTarget(IntEnum):
    """Values as in ``RangeRequest.SortTarget``."""

    KEY = 0
    VERSION = 1
    CREATE = 2
    MOD = 3
    VALUE = 4


@dataclass(frozen=True, slots=True)
class RangeRequest:
    """The domain form of etcd's RangeRequest (``serializable`` is the server's business)."""

    key: bytes
    #: See :mod:`minietcd.mvcc.index` for the conventions (b"" one key, b"\\0" no upper bound).
    range_end: bytes = b""
    #: <= 0: no limit.
    limit: int = 0
    #: <= 0: the current revision.
    revision: int = 0
    sort_order: SortOrder = SortOrder.NONE
    sort_target: SortTarget = SortTarget.KEY
    keys_only: bool = False
    count_only: bool = False
    #: Each filter is off when 0.
    min_mod_revision: int = 0
    max_mod_revision: int = 0
    min_create_revision: int = 0
    max_create_revision: int = 0


@dataclass(frozen=True, slots=True)
class RangeResponse:
    kvs: list[KeyValue] = field(default_factory=list)
    #: Keys in the range at the read revision (before filters and limit).
    count: int = 0
    #: More kvs matched than ``limit`` let through.
    more: bool = False
    #: The header revision: the store's current revision at the read.
    revision: int = 0


class RangeReader(Protocol):
    """Anything that reads like the store: a KVStore or an open WriteTxn."""

    def range(
        self, key: bytes, range_end: bytes = b"", options: RangeOptions | None = None
    ) -> RangeResult: ...


def store_options(req: RangeRequest) -> RangeOptions:
    """The store-level options that serve ``req`` (apply.go's limit planning)."""
    limit = req.limit
    if (
        req.sort_order != SortOrder.NONE
        or req.min_mod_revision
        or req.max_mod_revision
        or req.min_create_revision
        or req.max_create_revision
    ):
        limit = 0  # fetch everything; sort and truncate afterwards
    if limit > 0:
        limit += 1  # one extra tells whether there is more
    return RangeOptions(limit=limit, revision=req.revision, count_only=req.count_only)


_SORT_KEYS: dict[SortTarget, Callable[[KeyValue], Any]] = {
    SortTarget.KEY: lambda kv: kv.key,
    SortTarget.VERSION: lambda kv: kv.version,
    SortTarget.CREATE: lambda kv: kv.create_revision,
    SortTarget.MOD: lambda kv: kv.mod_revision,
    SortTarget.VALUE: lambda kv: kv.value,
}


def finish_range(req: RangeRequest, result: RangeResult) -> RangeResponse:
    """Apply ``req``'s filters, sort, limit and keys_only to the store's ``result``."""
    kvs = list(result.kvs)
    if req.max_mod_revision:
        kvs = [kv for kv in kvs if not kv.mod_revision > req.max_mod_revision]
    if req.min_mod_revision:
        kvs = [kv for kv in kvs if not kv.mod_revision < req.min_mod_revision]
    if req.max_create_revision:
        kvs = [kv for kv in kvs if not kv.create_revision > req.max_create_revision]
    if req.min_create_revision:
        kvs = [kv for kv in kvs if not kv.create_revision < req.min_create_revision]

    order = req.sort_order
    if req.sort_target != SortTarget.KEY and order == SortOrder.NONE:
        # The store returns key order already; any other target implies ASCEND (etcd).
        order = SortOrder.ASCEND
    if order != SortOrder.NONE:
        # Stable sort: ties keep key order (Go's sort.Sort leaves ties unspecified; ours is
        # deterministic, which is what a replicated state machine wants).
        kvs.sort(key=_SORT_KEYS[req.sort_target], reverse=order == SortOrder.DESCEND)

    more = False
    if req.limit > 0 and len(kvs) > req.limit:
        kvs = kvs[: req.limit]
        more = True
    if req.keys_only:
        kvs = [replace(kv, value=b"") for kv in kvs]
    return RangeResponse(kvs, result.count, more, result.revision)


def execute_range(reader: RangeReader, req: RangeRequest) -> RangeResponse:
    """Serve ``req`` from a store or an open write txn (etcd ``applierV3backend.Range``)."""
    result = reader.range(req.key, req.range_end, store_options(req))
    return finish_range(req, result)
