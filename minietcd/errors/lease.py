"""Errors of the lessor (minietcd.lease), with etcd's words where a client sees them.

Part of the one exception tree drawn in ``minietcd/errors/__init__.py``."""

from __future__ import annotations

from minietcd.errors.base import GrpcCode, MinietcdError

# --- leases ------------------------------------------------------------------------------------


class LeaseError(MinietcdError):
    pass


class LeaseNotFoundError(LeaseError):
    etcd_message = "etcdserver: requested lease not found"
    grpc_code = GrpcCode.NOT_FOUND
    go_name = "ErrGRPCLeaseNotFound"


class LeaseExistsError(LeaseError):
    etcd_message = "etcdserver: lease already exists"
    grpc_code = GrpcCode.FAILED_PRECONDITION
    go_name = "ErrGRPCLeaseExist"


class LeaseTTLTooLargeError(LeaseError):
    etcd_message = "etcdserver: too large lease TTL"
    grpc_code = GrpcCode.OUT_OF_RANGE
    go_name = "ErrGRPCLeaseTTLTooLarge"


class LeaseExpiredError(LeaseNotFoundError):
    """Renew of a lease past its expiry whose revoke proposal has not been applied yet. etcd's
    Renew blocks until the revoke lands and then answers "requested lease not found"; being a
    LeaseNotFoundError, this maps to that same message if the server does not wait."""


class LeaseNotPrimaryError(LeaseError):
    """Renew / time-to-live asked of a lessor that is not the primary (the Raft leader): the
    server forwards the request to the leader (etcd's ErrNotPrimary; never shown to clients)."""


class LeaseSnapshotError(LeaseError):
    """Lessor.restore() got bytes that are not a valid lessor snapshot; the lessor is unchanged."""
