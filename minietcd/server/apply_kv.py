"""Applies committed KV requests: etcd protobuf in, MVCC + lessor calls, etcd protobuf out.

This is etcd 3.4's ``applierV3backend`` (``etcdserver/apply.go``: Range, Put, DeleteRange, Txn,
Compaction) for the key space. It runs on every member for every committed entry, so it is
deterministic (DESIGN rule 5): no clock, no randomness, no I/O, no state of its own; the same
requests against the same store and lessor give the same responses and the same ``hash_kv``.

What it takes from etcd, step for step:

* **Range** — every RangeRequest field via :func:`minietcd.mvcc.execute_range` (sort, revision
  filters, limit / ``more``, count_only, keys_only, revision). ``serializable`` is the server's
  business (where to read), not the applier's.
* **Put** — a non-zero lease must exist ("requested lease not found") before anything is
  written; ``ignore_value`` / ``ignore_lease`` keep the key's current value / lease and need the
  key to exist ("key not found"); as in etcd a value or lease sent along with its ignore flag
  is simply ignored here (the API, :mod:`minietcd.server.api.validate`, refuses such requests).
  The key moves from its old lease to the new one in the lessor.
* **DeleteRange** — deleted keys are detached from their leases; ``prev_kv`` returns them.
* **Txn** — every compare, nested ones included, is evaluated first against the store as it
  is before the txn (etcd's ``compareToPath``); then, before anything is written, the ops on
  the chosen path are checked (puts: ignore flags need an existing key, leases must exist;
  then ranges: revision not future / compacted), so a failing txn changes nothing. The ops
  then run in order in ONE MVCC write txn — one revision for the whole txn, reads see the
  txn's earlier writes — and a txn whose branches hold only ranges reads the store directly.
  Nested txn responses carry an empty header and their own ``succeeded``, as etcd's do.
* **Compaction** — ``physical`` does not matter (the store compacts at once); errors for a
  compacted or future revision come from the store.

``header.revision`` is set on every response (the store's revision after the op; inside a txn
the txn's revision so far); cluster_id, member_id and raft_term are the server's to fill.

Leases: the MVCC store records a key's lease, the lessor records which keys a lease holds. The
lessor is updated only once every op of a request has succeeded, with the net effect per key,
just before the MVCC txn commits, so a request that fails leaves both untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import cast

from minietcd.api.etcdserverpb import rpc_pb2
from minietcd.api.mvccpb import kv_pb2
from minietcd.errors import (
    CompactedRevisionError,
    FutureRevisionError,
    InvalidSortOptionError,
    KeyNotFoundError,
    LeaseNotFoundError,
)
from minietcd.lease.lessor import NO_LEASE, Lessor
from minietcd.mvcc import (
    Compare,
    CompareResult,
    CompareTarget,
    KeyValue,
    KVStore,
    RangeReader,
    RangeRequest,
    SortOrder,
    SortTarget,
    WriteTxn,
    compare_kv,
    evaluate_compares,
    execute_range,
)

#: The ``Compare.target_union`` field etcd reads for each target; another field (or none)
#: counts as that target's zero value (etcd ``compareKV``).
_UNION_FIELD = {
    CompareTarget.VERSION: "version",
    CompareTarget.CREATE: "create_revision",
    CompareTarget.MOD: "mod_revision",
    CompareTarget.VALUE: "value",
    CompareTarget.LEASE: "lease",
}
_SORT_ORDERS = frozenset(int(v) for v in SortOrder)
_SORT_TARGETS = frozenset(int(v) for v in SortTarget)
_COMPARE_TARGETS = frozenset(int(v) for v in CompareTarget)
_COMPARE_RESULTS = frozenset(int(v) for v in CompareResult)


def kv_to_pb(kv: KeyValue) -> kv_pb2.KeyValue:
    """The wire form of an MVCC key-value."""
    return kv_pb2.KeyValue(
        key=kv.key,
        create_revision=kv.create_revision,
        mod_revision=kv.mod_revision,
        version=kv.version,
        value=kv.value,
        lease=kv.lease,
    )


def compare_from_pb(c: rpc_pb2.Compare) -> Compare:
    """The MVCC form of a known-target compare (see :func:`evaluate_compare_pb` for others)."""
    target = CompareTarget(c.target)
    field = _UNION_FIELD[target]
    held = c.WhichOneof("target_union") == field
    operand: int | bytes
    if target == CompareTarget.VALUE:
        operand = c.value if held else b""
    else:
        operand = getattr(c, field) if held else 0
    return Compare(c.key, target, _result(c), operand, c.range_end)


def _result(c: rpc_pb2.Compare) -> CompareResult:
    if c.result in _COMPARE_RESULTS:
        return CompareResult(c.result)
    # An unknown result stays a plain int: mvcc's compare_kv lets it pass, as etcd does.
    return cast(CompareResult, c.result)


def evaluate_compare_pb(view: RangeReader, c: rpc_pb2.Compare) -> bool:
    """etcd ``applyCompare`` for a protobuf compare, at ``view``'s revision."""
    if c.target not in _COMPARE_TARGETS:
        # etcd's compareKV leaves its comparison at 0 for an unknown target, for every key and
        # for the missing-key case alike, so the answer is that of "0 <result> 0".
        zero = Compare(c.key, CompareTarget.VERSION, _result(c), 0)
        return compare_kv(zero, KeyValue(c.key))
    return evaluate_compares(view, [compare_from_pb(c)])


class _LeaseChanges:
    """Which lease each key touched by a request ends up with, applied to the lessor at once.

    etcd detaches and attaches as each put / delete runs; deferring to the end of the request
    gives the same final state (a key ends with the lease of its last put, or none after a
    delete) and keeps the lessor untouched when an op fails and the MVCC txn rolls back.
    """

    __slots__ = ("_final",)

    def __init__(self) -> None:
        #: key -> lease after the request (NO_LEASE after a delete); first-touch order.
        self._final: dict[bytes, int] = {}

    def put(self, key: bytes, lease: int) -> None:
        self._final[key] = lease

    def delete(self, key: bytes) -> None:
        self._final[key] = NO_LEASE

    def apply(self, lessor: Lessor) -> None:
        for key, new in self._final.items():
            old = lessor.get_lease(key)
            if old == new:
                continue
            if old != NO_LEASE:
                lessor.detach(old, [key])
            if new != NO_LEASE:
                # Exists: checked before the request's writes (or kept from the key itself).
                lessor.attach(new, [key])


def _header(revision: int) -> rpc_pb2.ResponseHeader:
    return rpc_pb2.ResponseHeader(revision=revision)


class KVApplier:
    """etcd's applierV3backend for Range / Put / DeleteRange / Txn / Compaction."""

    __slots__ = ("_kv", "_lessor")

    def __init__(self, kv: KVStore, lessor: Lessor) -> None:
        self._kv = kv
        self._lessor = lessor

    # --- requests ---------------------------------------------------------------------------

    def range(self, req: rpc_pb2.RangeRequest) -> rpc_pb2.RangeResponse:
        """Serve a RangeRequest from the store's current state."""
        return self._range(self._kv, req)

    def put(self, req: rpc_pb2.PutRequest) -> rpc_pb2.PutResponse:
        # etcd checks the lease before it opens the write txn.
        self._check_lease(req.lease)
        changes = _LeaseChanges()
        with self._kv.write() as txn:
            resp = self._put(txn, req, changes)
            # Before the commit: if the lessor refused, the MVCC txn rolls back too.
            changes.apply(self._lessor)
        return resp

    def delete_range(self, req: rpc_pb2.DeleteRangeRequest) -> rpc_pb2.DeleteRangeResponse:
        changes = _LeaseChanges()
        with self._kv.write() as txn:
            resp = self._delete(txn, req, changes)
            changes.apply(self._lessor)
        return resp

    def txn(self, req: rpc_pb2.TxnRequest) -> rpc_pb2.TxnResponse:
        path = self._compare_path(req)
        is_write = not txn_is_read_only(req)
        # All checks see the store before the txn, as etcd's checkRequests does, and all put
        # checks come before all range checks (that order decides which error a client sees).
        if is_write:
            self._check_ops(req, iter(path), self._check_put)
        self._check_ops(req, iter(path), self._check_range)
        if not is_write:
            resp = self._apply_txn(None, req, iter(path), _LeaseChanges())
            resp.header.revision = self._kv.current_revision
            return resp
        changes = _LeaseChanges()
        with self._kv.write() as txn:
            resp = self._apply_txn(txn, req, iter(path), changes)
            changes.apply(self._lessor)
            # begin + 1 if anything changed, else begin (etcd: txn.Rev(), +1 with changes).
            resp.header.revision = txn.revision
        return resp

    def compaction(self, req: rpc_pb2.CompactionRequest) -> rpc_pb2.CompactionResponse:
        self._kv.compact(req.revision)
        return rpc_pb2.CompactionResponse(header=_header(self._kv.current_revision))

    # --- single operations (alone or inside a txn) --------------------------------------------

    def _range(self, reader: RangeReader, req: rpc_pb2.RangeRequest) -> rpc_pb2.RangeResponse:
        _check_sort(req)
        result = execute_range(
            reader,
            RangeRequest(
                key=req.key,
                range_end=req.range_end,
                limit=req.limit,
                revision=req.revision,
                sort_order=SortOrder(req.sort_order),
                sort_target=SortTarget(req.sort_target),
                keys_only=req.keys_only,
                count_only=req.count_only,
                min_mod_revision=req.min_mod_revision,
                max_mod_revision=req.max_mod_revision,
                min_create_revision=req.min_create_revision,
                max_create_revision=req.max_create_revision,
            ),
        )
        return rpc_pb2.RangeResponse(
            header=_header(result.revision),
            kvs=[kv_to_pb(kv) for kv in result.kvs],
            more=result.more,
            count=result.count,
        )

    def _put(self, txn: WriteTxn, req: rpc_pb2.PutRequest, changes: _LeaseChanges) -> rpc_pb2.PutResponse:
        # etcd's applier ignores a value / lease sent with its ignore flag (the edge refuses
        # them); the store would refuse them, so leave them out.
        result = txn.put(
            req.key,
            b"" if req.ignore_value else req.value,
            NO_LEASE if req.ignore_lease else req.lease,
            ignore_value=req.ignore_value,
            ignore_lease=req.ignore_lease,
            prev_kv=True,  # always: the lease an ignore_lease put keeps is the previous one
        )
        prev = result.prev_kv
        # With ignore_lease the store has just insisted that the key existed (prev is set).
        changes.put(req.key, prev.lease if req.ignore_lease and prev is not None else req.lease)
        resp = rpc_pb2.PutResponse(header=_header(result.revision))
        if req.prev_kv and prev is not None:
            resp.prev_kv.CopyFrom(kv_to_pb(prev))
        return resp

    def _delete(
        self, txn: WriteTxn, req: rpc_pb2.DeleteRangeRequest, changes: _LeaseChanges
    ) -> rpc_pb2.DeleteRangeResponse:
        result = txn.delete_range(req.key, req.range_end)
        for kv in result.prev_kvs:
            changes.delete(kv.key)
        resp = rpc_pb2.DeleteRangeResponse(header=_header(result.revision), deleted=result.deleted)
        if req.prev_kv:
            resp.prev_kvs.extend(kv_to_pb(kv) for kv in result.prev_kvs)
        return resp

    # --- txn ----------------------------------------------------------------------------------

    def _compare_path(self, req: rpc_pb2.TxnRequest) -> list[bool]:
        """Each txn's compare outcome in pre-order: the txn, then the nested txns of the branch
        it takes, recursively (etcd ``compareToPath``). All read the pre-txn store."""
        ok = all(evaluate_compare_pb(self._kv, c) for c in req.compare)
        path = [ok]
        for op in req.success if ok else req.failure:
            if op.WhichOneof("request") == "request_txn":
                path.extend(self._compare_path(op.request_txn))
        return path

    def _check_ops(
        self,
        req: rpc_pb2.TxnRequest,
        path: Iterator[bool],
        check: Callable[[rpc_pb2.RequestOp], None],
    ) -> None:
        """Run ``check`` on every non-txn op of the path (etcd ``checkRequests``)."""
        for op in req.success if next(path) else req.failure:
            if op.WhichOneof("request") == "request_txn":
                self._check_ops(op.request_txn, path, check)
            else:
                check(op)

    def _check_put(self, op: rpc_pb2.RequestOp) -> None:
        """etcd ``checkRequestPut``, against the store before the txn."""
        if op.WhichOneof("request") != "request_put":
            return
        p = op.request_put
        if (p.ignore_value or p.ignore_lease) and self._kv.get(p.key) is None:
            raise KeyNotFoundError(f"put {p.key!r} with an ignore flag: key not found")
        self._check_lease(p.lease)

    def _check_range(self, op: rpc_pb2.RequestOp) -> None:
        """etcd ``checkRequestRange``, against the store before the txn (+ the sort check, so
        no range can fail once writes have started)."""
        if op.WhichOneof("request") != "request_range":
            return
        r = op.request_range
        _check_sort(r)
        if r.revision == 0:
            return
        if r.revision > self._kv.current_revision:
            raise FutureRevisionError(f"revision {r.revision} > current {self._kv.current_revision}")
        # etcd compares with the compact revision (-1 before any) without first mapping a
        # negative revision to "current", so in a txn a negative revision reads as compacted.
        if r.revision < self._kv.compact_revision:
            raise CompactedRevisionError(f"revision {r.revision} < compacted {self._kv.compact_revision}")

    def _apply_txn(
        self,
        txn: WriteTxn | None,
        req: rpc_pb2.TxnRequest,
        path: Iterator[bool],
        changes: _LeaseChanges,
    ) -> rpc_pb2.TxnResponse:
        """Run the chosen branch's ops in order (etcd ``applyTxn``); ``txn`` is None for a
        read-only txn, which reads the store itself."""
        succeeded = next(path)
        resp = rpc_pb2.TxnResponse(succeeded=succeeded)
        reader: RangeReader = self._kv if txn is None else txn
        for op in req.success if succeeded else req.failure:
            out = resp.responses.add()
            kind = op.WhichOneof("request")
            if kind == "request_range":
                out.response_range.CopyFrom(self._range(reader, op.request_range))
            elif kind == "request_put":
                out.response_put.CopyFrom(self._put(_writer(txn), op.request_put, changes))
            elif kind == "request_delete_range":
                out.response_delete_range.CopyFrom(
                    self._delete(_writer(txn), op.request_delete_range, changes)
                )
            elif kind == "request_txn":
                nested = self._apply_txn(txn, op.request_txn, path, changes)
                # etcd gives a nested txn an empty (but present) header.
                nested.header.SetInParent()
                out.response_txn.CopyFrom(nested)
            # else: an op with nothing set. The edge refuses it ("key not found"); etcd would
            # leave a nil response, we leave an empty one.
        return resp

    # --- helpers ------------------------------------------------------------------------------

    def _check_lease(self, lease_id: int) -> None:
        if lease_id != NO_LEASE and lease_id not in self._lessor:
            raise LeaseNotFoundError(f"lease {lease_id:x} not found")


def _check_sort(req: rpc_pb2.RangeRequest) -> None:
    # The edge refuses these already; etcd 3.4's applier would panic on an unknown target.
    if req.sort_order not in _SORT_ORDERS or req.sort_target not in _SORT_TARGETS:
        raise InvalidSortOptionError()


def txn_is_read_only(req: rpc_pb2.TxnRequest) -> bool:
    """etcd ``isTxnReadonly``: every op of both branches is a range (nested txns are not
    looked into: a txn holding one counts as a write). Such a txn is served as a read."""
    return all(op.WhichOneof("request") == "request_range" for op in (*req.success, *req.failure))


def _writer(txn: WriteTxn | None) -> WriteTxn:
    if txn is None:
        # txn_is_read_only sent a txn with a write op down the read path: a bug, not bad input.
        raise RuntimeError("write op in a txn applied as read-only")
    return txn
