"""Errors the client raises, and how gRPC statuses map onto them.

All of them live in minietcd's one exception tree (:mod:`minietcd.errors`). ``str(error)`` is
etcd's wording, so ``print("Error:", err)`` reads like etcdctl. The rules:

- The server answered with one of etcd's errors that has a leaf in the tree: that leaf
  (``CompactedRevisionError``, ``FutureRevisionError``, ``KeyNotFoundError``, ``EmptyKeyError``,
  ``ValueProvidedError``, ``LeaseProvidedError``, ``LeaseNotFoundError``, ``LeaseExistsError``,
  ``LeaseTTLTooLargeError``).
- Any other error status from the server: :class:`EtcdServerError`, with ``code`` (the gRPC
  status name) and ``etcd_message``. Statuses without etcd wording read like Go's gRPC errors:
  ``"rpc error: code = Unavailable desc = ..."``.
- A write whose outcome is unknown: :class:`OutcomeUnknownError` (never retried).
- A read whose deadline passed: :class:`DeadlineExceededError` ("context deadline exceeded").

Example::

    from minietcd.client import Client, CompactedRevisionError, OutcomeUnknownError

    async with Client(["127.0.0.1:2379"]) as c:
        try:
            await c.get("k", revision=1)
        except CompactedRevisionError as e:
            print("Error:", e)  # Error: etcdserver: mvcc: required revision has been compacted
"""

from __future__ import annotations

import re

import grpc

from minietcd.errors import (
    AuthError,
    ClientClosedError,
    ClientError,
    CompactedRevisionError,
    DeadlineExceededError,
    ElectionNoLeaderError,
    ElectionNotLeaderError,
    EmptyKeyError,
    EndpointsUnavailableError,
    EtcdServerError,
    FutureRevisionError,
    KeyNotFoundError,
    LeaseExistsError,
    LeaseNotFoundError,
    LeaseProvidedError,
    LeaseTTLTooLargeError,
    LockLostError,
    MinietcdError,
    OutcomeUnknownError,
    SessionExpiredError,
    ValueProvidedError,
    WatchCanceledError,
    WatchCompactedError,
    etcd_errors,
)

__all__ = [
    "ClientClosedError",
    "ClientError",
    "CompactedRevisionError",
    "DeadlineExceededError",
    "ElectionNoLeaderError",
    "ElectionNotLeaderError",
    "EmptyKeyError",
    "EndpointsUnavailableError",
    "EtcdServerError",
    "FutureRevisionError",
    "KeyNotFoundError",
    "LeaseExistsError",
    "LeaseNotFoundError",
    "LeaseProvidedError",
    "LeaseTTLTooLargeError",
    "LockLostError",
    "MinietcdError",
    "OutcomeUnknownError",
    "SessionExpiredError",
    "ValueProvidedError",
    "WatchCanceledError",
    "WatchCompactedError",
    "error_message",
    "from_rpc_error",
    "go_code_name",
    "never_sent",
]

# Server messages that have their own leaf in the tree.
_LEAVES: dict[str, type[MinietcdError]] = {
    cls.etcd_message or "": cls
    for cls in (
        CompactedRevisionError,
        FutureRevisionError,
        KeyNotFoundError,
        EmptyKeyError,
        ValueProvidedError,
        LeaseProvidedError,
        LeaseNotFoundError,
        LeaseExistsError,
        LeaseTTLTooLargeError,
    )
}
# etcd's auth errors too (PermissionDeniedError, InvalidAuthTokenError, ...).
_LEAVES.update((cls.etcd_message or "", cls) for cls in etcd_errors() if issubclass(cls, AuthError))

# Go's names for gRPC codes (codes.Code.String()), used in "rpc error: code = X desc = Y".
_GO_CODE_NAMES = {
    grpc.StatusCode.OK: "OK",
    grpc.StatusCode.CANCELLED: "Canceled",
    grpc.StatusCode.UNKNOWN: "Unknown",
    grpc.StatusCode.INVALID_ARGUMENT: "InvalidArgument",
    grpc.StatusCode.DEADLINE_EXCEEDED: "DeadlineExceeded",
    grpc.StatusCode.NOT_FOUND: "NotFound",
    grpc.StatusCode.ALREADY_EXISTS: "AlreadyExists",
    grpc.StatusCode.PERMISSION_DENIED: "PermissionDenied",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "ResourceExhausted",
    grpc.StatusCode.FAILED_PRECONDITION: "FailedPrecondition",
    grpc.StatusCode.ABORTED: "Aborted",
    grpc.StatusCode.OUT_OF_RANGE: "OutOfRange",
    grpc.StatusCode.UNIMPLEMENTED: "Unimplemented",
    grpc.StatusCode.INTERNAL: "Internal",
    grpc.StatusCode.UNAVAILABLE: "Unavailable",
    grpc.StatusCode.DATA_LOSS: "DataLoss",
    grpc.StatusCode.UNAUTHENTICATED: "Unauthenticated",
}

# What gRPC says when a call failed before it was given to any connection: the channel could
# not connect (or resolve), so the request provably never reached a server.
_NEVER_SENT = re.compile(
    r"^(failed to connect to all addresses|DNS resolution failed|empty address list|"
    r"no children in|Failed to pick subchannel|connections to all backends failing)",
    re.IGNORECASE,
)


def go_code_name(code: grpc.StatusCode | None) -> str:
    """Go's spelling of a gRPC status code ("Unavailable", "Canceled", ...)."""
    if code is None:
        return "Unknown"
    return _GO_CODE_NAMES.get(code) or str(code.name).title().replace("_", "")


def never_sent(err: grpc.aio.AioRpcError) -> bool:
    """True when gRPC failed the call before handing it to a connection (no address could be
    connected to), so no server can have received it: safe to retry even for a write."""
    return err.code() == grpc.StatusCode.UNAVAILABLE and bool(_NEVER_SENT.match(err.details() or ""))


def is_etcd_message(details: str) -> bool:
    return details.startswith("etcdserver:")


def from_rpc_error(err: grpc.aio.AioRpcError) -> MinietcdError:
    """The tree's error for a gRPC error status (see the module docstring)."""
    code = err.code()
    details = err.details() or ""
    leaf = _LEAVES.get(details)
    if leaf is not None:
        return leaf(details)
    if code == grpc.StatusCode.DEADLINE_EXCEEDED and not is_etcd_message(details):
        return DeadlineExceededError("context deadline exceeded")
    if code == grpc.StatusCode.CANCELLED and not is_etcd_message(details):
        return ClientError("context canceled", etcd_message="context canceled")
    if is_etcd_message(details):
        return EtcdServerError(details, code.name if code is not None else "UNKNOWN")
    text = f"rpc error: code = {go_code_name(code)} desc = {details}"
    return EtcdServerError(text, code.name if code is not None else "UNKNOWN")


def error_message(err: BaseException) -> str:
    """What etcdctl would print after "Error: " for ``err``."""
    msg: object = getattr(err, "etcd_message", None)
    if isinstance(msg, str) and msg:
        return msg
    return str(err)
