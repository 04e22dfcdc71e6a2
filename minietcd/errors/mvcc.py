"""Errors of the multi-version key-value store (minietcd.mvcc), with etcd's words where a client sees them.

Part of the one exception tree drawn in ``minietcd/errors/__init__.py``."""

from __future__ import annotations

from minietcd.errors.base import GrpcCode, MinietcdError

# --- MVCC --------------------------------------------------------------------------------------


class MvccError(MinietcdError):
    pass


class CompactedRevisionError(MvccError):
    etcd_message = "etcdserver: mvcc: required revision has been compacted"
    grpc_code = GrpcCode.OUT_OF_RANGE
    go_name = "ErrGRPCCompacted"


class FutureRevisionError(MvccError):
    etcd_message = "etcdserver: mvcc: required revision is a future revision"
    grpc_code = GrpcCode.OUT_OF_RANGE
    go_name = "ErrGRPCFutureRev"


class KeyNotFoundError(MvccError):
    """A put with ignore_value / ignore_lease on a key that does not exist."""

    etcd_message = "etcdserver: key not found"
    grpc_code = GrpcCode.INVALID_ARGUMENT
    go_name = "ErrGRPCKeyNotFound"


class EmptyKeyError(MvccError):
    """A write (put / delete_range) named the empty key, which etcd never stores."""

    etcd_message = "etcdserver: key is not provided"
    grpc_code = GrpcCode.INVALID_ARGUMENT
    go_name = "ErrGRPCEmptyKey"


class ValueProvidedError(MvccError):
    """A put with ignore_value also carried a value."""

    etcd_message = "etcdserver: value is provided"
    grpc_code = GrpcCode.INVALID_ARGUMENT
    go_name = "ErrGRPCValueProvided"


class LeaseProvidedError(MvccError):
    """A put with ignore_lease also carried a lease."""

    etcd_message = "etcdserver: lease is provided"
    grpc_code = GrpcCode.INVALID_ARGUMENT
    go_name = "ErrGRPCLeaseProvided"


class RevisionNotFoundError(MvccError):
    """etcd's internal "mvcc: revision not found": a key has no revision at the asked point."""


class TxnStateError(MvccError):
    """A write transaction misused: used after end, nested, or a compact/snapshot/restore while
    one is open. A caller bug; the store's state is untouched."""


class MvccSnapshotError(MvccError):
    """restore() got bytes that are not a valid store snapshot; the store is left unchanged."""


class MvccInvariantError(MvccError):
    """An invariant of the key index or store does not hold. This is a bug: stop, never limp on."""
