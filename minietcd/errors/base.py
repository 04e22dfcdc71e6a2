"""The root of the tree and gRPC's status codes (no grpc import: only the faces know gRPC).

Part of the one exception tree drawn in ``minietcd/errors/__init__.py``."""

from __future__ import annotations

import enum


class GrpcCode(enum.IntEnum):
    """gRPC's status codes, by the numbers every gRPC library uses (grpc.StatusCode's order)."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


class MinietcdError(Exception):
    """Root of every error minietcd raises on purpose."""

    #: etcd's exact wording for this error, where etcd has one (clients match on the text).
    etcd_message: str | None = None
    #: The code etcd answers this error with; UNKNOWN for the errors etcd sends as plain text.
    grpc_code: GrpcCode = GrpcCode.UNKNOWN
    #: etcd's Go name, for the leaves that are a row of its rpctypes/error.go.
    go_name: str | None = None

    def __init__(self, *args: object) -> None:
        # A leaf raised without words says etcd's.
        super().__init__(*(args or ((self.etcd_message,) if self.etcd_message else ())))
