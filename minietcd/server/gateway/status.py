"""The gateway's one error table: a typed error of the application API -> the HTTP status and
body etcd 3.4's gateway answers with (DESIGN rule 6, as ``server/v3rpc/errors.py`` is for gRPC).

etcd's gateway is grpc-gateway v1 in front of etcd's own gRPC server, so an error reaches the
HTTP client as grpc-gateway renders a gRPC status: ``HTTPStatusFromCode`` picks the status, and
the body is ``{"error": msg, "message": msg, "code": n}`` (``DefaultHTTPError``), or, inside a
stream that has already answered, a last line ``{"error": {"grpc_code", "http_code", "message",
"http_status"}}`` (``streamChunk``). The code and message are those the gRPC face would send:
an error of :mod:`minietcd.errors` with etcd's message is answered with its ``grpc_code``,
anything else ``UNKNOWN`` with its text.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from minietcd.errors import GrpcCode, MinietcdError, message_of

#: grpc-gateway's runtime.HTTPStatusFromCode, with Go's http.StatusText of each status.
HTTP_STATUS: Final[Mapping[GrpcCode, tuple[int, str]]] = MappingProxyType({
    GrpcCode.OK: (200, "OK"),
    GrpcCode.CANCELLED: (408, "Request Timeout"),
    GrpcCode.UNKNOWN: (500, "Internal Server Error"),
    GrpcCode.INVALID_ARGUMENT: (400, "Bad Request"),
    GrpcCode.DEADLINE_EXCEEDED: (504, "Gateway Timeout"),
    GrpcCode.NOT_FOUND: (404, "Not Found"),
    GrpcCode.ALREADY_EXISTS: (409, "Conflict"),
    GrpcCode.PERMISSION_DENIED: (403, "Forbidden"),
    GrpcCode.UNAUTHENTICATED: (401, "Unauthorized"),
    GrpcCode.RESOURCE_EXHAUSTED: (429, "Too Many Requests"),
    GrpcCode.FAILED_PRECONDITION: (412, "Precondition Failed"),
    GrpcCode.ABORTED: (409, "Conflict"),
    GrpcCode.OUT_OF_RANGE: (400, "Bad Request"),
    GrpcCode.UNIMPLEMENTED: (501, "Not Implemented"),
    GrpcCode.INTERNAL: (500, "Internal Server Error"),
    GrpcCode.UNAVAILABLE: (503, "Service Unavailable"),
    GrpcCode.DATA_LOSS: (500, "Internal Server Error"),
})  # fmt: skip


class GatewayStatus(Exception):
    """A gRPC status the gateway itself answers with (a body it cannot decode, a request larger
    than the gRPC server would take): what grpc-gateway or grpc-go would have said."""

    def __init__(self, code: GrpcCode, message: str, *, from_server: bool = True) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        #: Said by the gRPC server (a message too large), not by the gateway before calling it
        #: (a body it cannot decode): only the server's answers carry gRPC trailers.
        self.from_server = from_server


def status_of(exc: BaseException) -> tuple[GrpcCode, str]:
    """The gRPC code and message etcd answers ``exc`` with."""
    if isinstance(exc, GatewayStatus):
        return exc.code, exc.message
    code = exc.grpc_code if isinstance(exc, MinietcdError) and exc.etcd_message else GrpcCode.UNKNOWN
    return GrpcCode(code), message_of(exc)


def error_body(code: GrpcCode, message: str) -> dict[str, object]:
    """grpc-gateway's errorBody (``details`` is left out when empty, as etcd's always is)."""
    return {"error": message, "message": message, "code": int(code)}


def stream_error(code: GrpcCode, message: str) -> dict[str, object]:
    """grpc-gateway's streamChunk for an error in a stream that has already answered."""
    status, text = HTTP_STATUS[code]
    return {"error": {"grpc_code": int(code), "http_code": status, "message": message, "http_status": text}}
