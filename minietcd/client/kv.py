"""Keys and values: get, put, delete, transactions, compaction.

Keys and values may be given as ``str`` (encoded as UTF-8) or ``bytes``; results always carry
``bytes``. Ranges follow etcd: ``range_end`` is exclusive, ``prefix=True`` means every key
starting with ``key``, ``from_key=True`` every key ``>= key``; an empty key with ``prefix`` or
``from_key`` means all keys.

Example::

    async with Client(["127.0.0.1:2379"]) as c:
        await c.put("app/a", "1")
        await c.put("app/b", "2")
        resp = await c.get("app/", prefix=True, sort_order="descend", limit=1)
        assert resp.kvs[0].key == b"app/b" and resp.count == 2 and resp.more

        # Compare-and-set in one transaction:
        txn = await (
            c.txn()
            .if_(Compare.value("app/a", "=", "1"))
            .then(Op.put("app/a", "2"), Op.get("app/a"))
            .else_(Op.get("app/a"))
            .commit()
        )
        print(txn.succeeded, txn.responses)

Reads (``get``, and transactions without writes) are retried on another member when one is
unavailable; writes are never retried once sent (see :class:`OutcomeUnknownError`).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from minietcd.api.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from minietcd.client.results import (
    CompactResponse,
    DeleteResponse,
    GetResponse,
    PutResponse,
    ResponseHeader,
    TxnResponse,
)

if TYPE_CHECKING:
    from minietcd.client._connection import Connection

__all__ = ["Compare", "KVMixin", "Op", "SortOrder", "SortTarget", "Txn", "prefix_range_end", "to_bytes"]

KeyLike = str | bytes


def to_bytes(v: KeyLike) -> bytes:
    return v.encode("utf-8") if isinstance(v, str) else bytes(v)


def prefix_range_end(prefix: bytes) -> bytes:
    """The end of the range of keys starting with ``prefix`` (etcd's GetPrefixRangeEnd): the
    prefix with its last byte below 0xff incremented; ``b"\\x00"`` (no end) if there is none."""
    end = bytearray(prefix)
    for i in range(len(end) - 1, -1, -1):
        if end[i] < 0xFF:
            end[i] += 1
            return bytes(end[: i + 1])
    return b"\x00"


def _range(key: KeyLike, range_end: KeyLike | None, prefix: bool, from_key: bool) -> tuple[bytes, bytes]:
    k = to_bytes(key)
    if sum((range_end is not None, prefix, from_key)) > 1:
        raise ValueError("range_end, prefix and from_key are mutually exclusive")
    if prefix:
        if not k:
            return b"\x00", b"\x00"
        return k, prefix_range_end(k)
    if from_key:
        return (k or b"\x00"), b"\x00"
    return k, (to_bytes(range_end) if range_end is not None else b"")


class SortOrder(enum.Enum):
    NONE = 0
    ASCEND = 1
    DESCEND = 2


class SortTarget(enum.Enum):
    KEY = 0
    VERSION = 1
    CREATE = 2
    MOD = 3
    VALUE = 4


SortOrderLike = SortOrder | Literal["none", "ascend", "descend"]
SortTargetLike = SortTarget | Literal["key", "version", "create", "mod", "value"]


def _sort_order(v: SortOrderLike) -> SortOrder:
    return v if isinstance(v, SortOrder) else SortOrder[v.upper()]


def _sort_target(v: SortTargetLike) -> SortTarget:
    return v if isinstance(v, SortTarget) else SortTarget[v.upper()]


@dataclass(frozen=True)
class Op:
    """One operation of a transaction, built with :meth:`get`, :meth:`put`, :meth:`delete` or
    :meth:`txn` (same options as the client methods of the same name)."""

    request: rpc_pb2.RequestOp

    @property
    def is_write(self) -> bool:
        kind = self.request.WhichOneof("request")
        if kind == "request_txn":
            t = self.request.request_txn
            return any(Op(o).is_write for o in (*t.success, *t.failure))
        return kind in ("request_put", "request_delete_range")

    @staticmethod
    def range_request(
        key: KeyLike,
        *,
        range_end: KeyLike | None = None,
        prefix: bool = False,
        from_key: bool = False,
        limit: int = 0,
        revision: int = 0,
        sort_order: SortOrderLike = SortOrder.NONE,
        sort_target: SortTargetLike = SortTarget.KEY,
        serializable: bool = False,
        keys_only: bool = False,
        count_only: bool = False,
        min_mod_revision: int = 0,
        max_mod_revision: int = 0,
        min_create_revision: int = 0,
        max_create_revision: int = 0,
    ) -> rpc_pb2.RangeRequest:
        k, end = _range(key, range_end, prefix, from_key)
        order, target = _sort_order(sort_order), _sort_target(sort_target)
        if target == SortTarget.KEY and order == SortOrder.ASCEND:
            # Keys come sorted ascending anyway; asking for it makes the server sort everything.
            order = SortOrder.NONE
        return rpc_pb2.RangeRequest(
            key=k,
            range_end=end,
            limit=limit,
            revision=revision,
            sort_order=order.value,  # type: ignore[arg-type]  # protoc .pyi: enum fields want the enum type, not its int
            sort_target=target.value,  # type: ignore[arg-type]  # protoc .pyi: enum fields want the enum type, not its int
            serializable=serializable,
            keys_only=keys_only,
            count_only=count_only,
            min_mod_revision=min_mod_revision,
            max_mod_revision=max_mod_revision,
            min_create_revision=min_create_revision,
            max_create_revision=max_create_revision,
        )

    @classmethod
    def get(cls, key: KeyLike, **options: object) -> Op:
        """A range read; options as :meth:`KVMixin.get`."""
        return cls(rpc_pb2.RequestOp(request_range=cls.range_request(key, **options)))  # type: ignore[arg-type]  # options are checked by range_request

    @staticmethod
    def put_request(
        key: KeyLike,
        value: KeyLike = b"",
        *,
        lease: int = 0,
        prev_kv: bool = False,
        ignore_value: bool = False,
        ignore_lease: bool = False,
    ) -> rpc_pb2.PutRequest:
        return rpc_pb2.PutRequest(
            key=to_bytes(key),
            value=to_bytes(value),
            lease=lease,
            prev_kv=prev_kv,
            ignore_value=ignore_value,
            ignore_lease=ignore_lease,
        )

    @classmethod
    def put(cls, key: KeyLike, value: KeyLike = b"", **options: object) -> Op:
        """A put; options as :meth:`KVMixin.put`."""
        return cls(rpc_pb2.RequestOp(request_put=cls.put_request(key, value, **options)))  # type: ignore[arg-type]  # options are checked by put_request

    @staticmethod
    def delete_request(
        key: KeyLike,
        *,
        range_end: KeyLike | None = None,
        prefix: bool = False,
        from_key: bool = False,
        prev_kv: bool = False,
    ) -> rpc_pb2.DeleteRangeRequest:
        k, end = _range(key, range_end, prefix, from_key)
        return rpc_pb2.DeleteRangeRequest(key=k, range_end=end, prev_kv=prev_kv)

    @classmethod
    def delete(cls, key: KeyLike, **options: object) -> Op:
        """A delete; options as :meth:`KVMixin.delete`."""
        return cls(rpc_pb2.RequestOp(request_delete_range=cls.delete_request(key, **options)))  # type: ignore[arg-type]  # options are checked by delete_request

    @classmethod
    def txn(
        cls, compare: Iterable[Compare] = (), success: Iterable[Op] = (), failure: Iterable[Op] = ()
    ) -> Op:
        """A nested transaction."""
        return cls(rpc_pb2.RequestOp(request_txn=_txn_request(compare, success, failure)))


_RESULTS = {
    "=": rpc_pb2.Compare.EQUAL,
    "==": rpc_pb2.Compare.EQUAL,
    "!=": rpc_pb2.Compare.NOT_EQUAL,
    "<": rpc_pb2.Compare.LESS,
    ">": rpc_pb2.Compare.GREATER,
}


@dataclass(frozen=True)
class Compare:
    """One condition of a transaction: ``Compare.<target>(key, op, operand)`` where ``op`` is one
    of ``=``, ``!=``, ``<``, ``>``. A compare over a range (``range_end=`` or ``prefix=True``)
    holds when it holds for every key in the range. A missing key has version, create and mod
    revision 0 (so ``Compare.create(k, "=", 0)`` means "k does not exist").

    Example::

        Compare.value("k", "=", "v")       Compare.version("k", ">", 0)
        Compare.create("k", "=", 0)        Compare.mod("k", "<", 42)
        Compare.lease("k", "=", lease_id)  Compare.mod("dir/", ">", 7, prefix=True)
    """

    compare: rpc_pb2.Compare

    @staticmethod
    def _make(
        target: int,
        key: KeyLike,
        op: str,
        field: str,
        operand: object,
        range_end: KeyLike | None,
        prefix: bool,
    ) -> Compare:
        if op not in _RESULTS:
            raise ValueError(f"unknown comparison operator {op!r} (use =, !=, < or >)")
        k, end = _range(key, range_end, prefix, False)
        c = rpc_pb2.Compare(result=_RESULTS[op], target=target, key=k, range_end=end)  # type: ignore[arg-type]  # protoc .pyi: enum fields want the enum type
        setattr(c, field, operand)
        return Compare(c)

    @classmethod
    def value(cls, key: KeyLike, op: str, value: KeyLike, *, range_end: KeyLike | None = None,
              prefix: bool = False) -> Compare:  # fmt: skip
        return cls._make(rpc_pb2.Compare.VALUE, key, op, "value", to_bytes(value), range_end, prefix)

    @classmethod
    def version(cls, key: KeyLike, op: str, version: int, *, range_end: KeyLike | None = None,
                prefix: bool = False) -> Compare:  # fmt: skip
        return cls._make(rpc_pb2.Compare.VERSION, key, op, "version", int(version), range_end, prefix)

    @classmethod
    def create(cls, key: KeyLike, op: str, revision: int, *, range_end: KeyLike | None = None,
               prefix: bool = False) -> Compare:  # fmt: skip
        return cls._make(rpc_pb2.Compare.CREATE, key, op, "create_revision", int(revision), range_end, prefix)

    @classmethod
    def mod(cls, key: KeyLike, op: str, revision: int, *, range_end: KeyLike | None = None,
            prefix: bool = False) -> Compare:  # fmt: skip
        return cls._make(rpc_pb2.Compare.MOD, key, op, "mod_revision", int(revision), range_end, prefix)

    @classmethod
    def lease(cls, key: KeyLike, op: str, lease_id: int, *, range_end: KeyLike | None = None,
              prefix: bool = False) -> Compare:  # fmt: skip
        return cls._make(rpc_pb2.Compare.LEASE, key, op, "lease", int(lease_id), range_end, prefix)


def _txn_request(
    compare: Iterable[Compare], success: Iterable[Op], failure: Iterable[Op]
) -> rpc_pb2.TxnRequest:
    return rpc_pb2.TxnRequest(
        compare=[c.compare for c in compare],
        success=[o.request for o in success],
        failure=[o.request for o in failure],
    )


class Txn:
    """A transaction under construction: ``if_`` compares, ``then`` ops (run when every compare
    holds), ``else_`` ops (run otherwise), then ``await commit()``. Each part may be given once.

    Example::

        resp = await (
            client.txn()
            .if_(Compare.create("lock", "=", 0))
            .then(Op.put("lock", "me"))
            .else_(Op.get("lock"))
            .commit()
        )
    """

    def __init__(self, kv: KVMixin, timeout: float | None = None) -> None:
        self._kv = kv
        self._timeout = timeout
        self._compare: list[Compare] = []
        self._success: list[Op] = []
        self._failure: list[Op] = []
        self._stage = 0

    def _advance(self, stage: int, name: str) -> None:
        if self._stage >= stage:
            raise ValueError(f"txn: {name}() called out of order or twice")
        self._stage = stage

    def if_(self, *compares: Compare) -> Txn:
        self._advance(1, "if_")
        self._compare.extend(compares)
        return self

    def then(self, *ops: Op) -> Txn:
        self._advance(2, "then")
        self._success.extend(ops)
        return self

    def else_(self, *ops: Op) -> Txn:
        self._advance(3, "else_")
        self._failure.extend(ops)
        return self

    @property
    def request(self) -> rpc_pb2.TxnRequest:
        return _txn_request(self._compare, self._success, self._failure)

    @property
    def is_write(self) -> bool:
        return any(o.is_write for o in (*self._success, *self._failure))

    async def commit(self) -> TxnResponse:
        return await self._kv._txn(self.request, self.is_write, self._timeout)


class KVMixin:
    """Key-value calls of :class:`~minietcd.client.Client`."""

    _conn: Connection

    async def get(
        self,
        key: KeyLike,
        range_end: KeyLike | None = None,
        *,
        prefix: bool = False,
        from_key: bool = False,
        limit: int = 0,
        revision: int = 0,
        sort_order: SortOrderLike = SortOrder.NONE,
        sort_target: SortTargetLike = SortTarget.KEY,
        serializable: bool = False,
        keys_only: bool = False,
        count_only: bool = False,
        min_mod_revision: int = 0,
        max_mod_revision: int = 0,
        min_create_revision: int = 0,
        max_create_revision: int = 0,
        timeout: float | None = None,
    ) -> GetResponse:
        """Read a key or a range of keys.

        ``revision`` reads the store as of that revision (``CompactedRevisionError`` below the
        compaction point, ``FutureRevisionError`` past the head); ``serializable=True`` lets the
        member answer from its own state without asking the leader (may be stale);
        ``limit`` caps the number of keys returned (``more`` tells there were more);
        ``sort_order``/``sort_target`` sort the result; ``keys_only`` omits values,
        ``count_only`` returns only ``count``; the ``min_/max_`` bounds filter by revision.

        Example::

            resp = await c.get("a", "c")                  # keys in [a, c)
            resp = await c.get("", prefix=True, keys_only=True)  # every key
            value = resp.kvs[0].value if resp.kvs else None
        """
        req = Op.range_request(
            key,
            range_end=range_end,
            prefix=prefix,
            from_key=from_key,
            limit=limit,
            revision=revision,
            sort_order=sort_order,
            sort_target=sort_target,
            serializable=serializable,
            keys_only=keys_only,
            count_only=count_only,
            min_mod_revision=min_mod_revision,
            max_mod_revision=max_mod_revision,
            min_create_revision=min_create_revision,
            max_create_revision=max_create_revision,
        )
        resp = await self._conn.unary(rpc_pb2_grpc.KVStub, "Range", req, idempotent=True, timeout=timeout)
        return GetResponse.from_pb(resp)

    async def put(
        self,
        key: KeyLike,
        value: KeyLike = b"",
        *,
        lease: int = 0,
        prev_kv: bool = False,
        ignore_value: bool = False,
        ignore_lease: bool = False,
        timeout: float | None = None,
    ) -> PutResponse:
        """Set ``key`` to ``value``; with ``lease`` the key is deleted when the lease ends.
        ``prev_kv`` returns the previous key-value; ``ignore_value`` / ``ignore_lease`` keep the
        key's current value / lease (the key must exist: ``KeyNotFoundError`` otherwise).

        Example::

            resp = await c.put("k", "v", prev_kv=True)
            print(resp.header.revision, resp.prev_kv)
        """
        req = Op.put_request(
            key, value, lease=lease, prev_kv=prev_kv, ignore_value=ignore_value, ignore_lease=ignore_lease
        )
        resp = await self._conn.unary(rpc_pb2_grpc.KVStub, "Put", req, idempotent=False, timeout=timeout)
        return PutResponse.from_pb(resp)

    async def delete(
        self,
        key: KeyLike,
        range_end: KeyLike | None = None,
        *,
        prefix: bool = False,
        from_key: bool = False,
        prev_kv: bool = False,
        timeout: float | None = None,
    ) -> DeleteResponse:
        """Delete a key or a range of keys; ``deleted`` counts them.

        Example::

            resp = await c.delete("app/", prefix=True, prev_kv=True)
            print(resp.deleted, [kv.key for kv in resp.prev_kvs])
        """
        req = Op.delete_request(key, range_end=range_end, prefix=prefix, from_key=from_key, prev_kv=prev_kv)
        resp = await self._conn.unary(
            rpc_pb2_grpc.KVStub, "DeleteRange", req, idempotent=False, timeout=timeout
        )
        return DeleteResponse.from_pb(resp)

    def txn(self, *, timeout: float | None = None) -> Txn:
        """Start a transaction (see :class:`Txn`)."""
        return Txn(self, timeout)

    async def _txn(self, req: rpc_pb2.TxnRequest, is_write: bool, timeout: float | None) -> TxnResponse:
        resp = await self._conn.unary(
            rpc_pb2_grpc.KVStub, "Txn", req, idempotent=not is_write, timeout=timeout
        )
        return TxnResponse.from_pb(resp)

    async def compact(
        self, revision: int, *, physical: bool = False, timeout: float | None = None
    ) -> CompactResponse:
        """Discard the history before ``revision`` (keys' latest values are kept). With
        ``physical=True`` the call returns once the space is reclaimed."""
        req = rpc_pb2.CompactionRequest(revision=revision, physical=physical)
        resp = await self._conn.unary(rpc_pb2_grpc.KVStub, "Compact", req, idempotent=False, timeout=timeout)
        return CompactResponse(ResponseHeader.from_pb(resp.header), resp)
