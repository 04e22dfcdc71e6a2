"""Which keys a request touches, checked against the store: etcd's ``apply_auth.go``
(authApplierV3) and the checks of ``v3_server.go`` / ``v3rpc/watch.go``.

The same functions run twice for a write: at the API before it is proposed (a refused write
never reaches the log) and in the applier with the user and auth revision the entry carries
(authoritative: every member decides the same, and a write proposed just before a permission
was revoked is refused, "revision of auth store is old", as etcd refuses it).

Each raises etcd's error, in etcd's order: user name empty, old revision, permission denied.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from minietcd.api.etcdserverpb import rpc_pb2
from minietcd.errors import UserEmptyError
from minietcd.server.auth.info import AuthInfo
from minietcd.server.auth.store import AuthStore

#: The keys attached to a lease (none if the lease does not exist).
LeaseKeys = Callable[[int], Iterable[bytes]]


def check_range(st: AuthStore, info: AuthInfo, req: rpc_pb2.RangeRequest) -> None:
    st.check_key(info, req.key, req.range_end, write=False)


def check_put(st: AuthStore, info: AuthInfo, req: rpc_pb2.PutRequest, lease_keys: LeaseKeys) -> None:
    st.check_key(info, req.key, b"", write=True)
    if req.lease:
        # A key that cannot be written by this user already holds the lease: attaching the
        # lease to a new key would let the user revoke it (etcd's checkLeasePuts).
        check_lease_puts(st, info, req.lease, lease_keys)
    if req.prev_kv:
        st.check_key(info, req.key, b"", write=False)


def check_delete(st: AuthStore, info: AuthInfo, req: rpc_pb2.DeleteRangeRequest) -> None:
    st.check_key(info, req.key, req.range_end, write=True)
    if req.prev_kv:
        st.check_key(info, req.key, req.range_end, write=False)


def check_txn(st: AuthStore, info: AuthInfo, req: rpc_pb2.TxnRequest) -> None:
    """Every key the txn compares or touches, on both branches, nested txns included (etcd 3.4
    checks no nested txn; minietcd does, so a txn inside a txn cannot reach around a grant)."""
    for c in req.compare:
        st.check_key(info, c.key, c.range_end, write=False)
    _check_ops(st, info, req.success)
    _check_ops(st, info, req.failure)


def _check_ops(st: AuthStore, info: AuthInfo, ops: Iterable[rpc_pb2.RequestOp]) -> None:
    for op in ops:
        kind = op.WhichOneof("request")
        if kind == "request_range":
            r = op.request_range
            st.check_key(info, r.key, r.range_end, write=False)
        elif kind == "request_put":
            st.check_key(info, op.request_put.key, b"", write=True)
        elif kind == "request_delete_range":
            d = op.request_delete_range
            if d.prev_kv:
                st.check_key(info, d.key, d.range_end, write=False)
            st.check_key(info, d.key, d.range_end, write=True)
        elif kind == "request_txn":
            check_txn(st, info, op.request_txn)


def check_lease_puts(st: AuthStore, info: AuthInfo, lease_id: int, lease_keys: LeaseKeys) -> None:
    """Every key attached to the lease must be writable (revoking deletes them)."""
    for key in lease_keys(lease_id):
        st.check_key(info, key, b"", write=True)


def check_lease_time_to_live(
    st: AuthStore, info: AuthInfo | None, req: rpc_pb2.LeaseTimeToLiveRequest, lease_keys: LeaseKeys
) -> None:
    """Asking for a lease's keys needs read permission on each (etcd 3.4.26 / 3.5's
    checkLeaseTimeToLive: key names are data too; etcd 3.4.23 did not check)."""
    if not req.keys or not st.enabled:
        return
    if info is None:
        raise UserEmptyError()
    for key in lease_keys(req.ID):
        st.check_key(info, key, b"", write=False)


def check_watch(st: AuthStore, info: AuthInfo, creq: rpc_pb2.WatchCreateRequest) -> None:
    """A watch is checked when it is created, over its key range (v3rpc/watch.go)."""
    st.check_key(info, creq.key or b"\0", creq.range_end, write=False)
