"""The gRPC face's one error table: minietcd's exception tree -> a gRPC status (DESIGN rule 6).

Every etcd error is a class in :mod:`minietcd.errors` carrying etcd's exact message and the code
etcd answers it with; this module only turns that code into grpc's type. So the table below,
``ERRORS`` (etcd 3.4's ``rpctypes/error.go`` plus 3.5's invalid-sort-option), is *derived* from
the classes, and a test compares it with etcd's Go source.

How an exception becomes a status (:func:`to_grpc_status`):

1. a :class:`~minietcd.errors.MinietcdError` with an ``etcd_message`` -> its ``grpc_code`` and that
   message (the leaves etcd sends as plain text have code ``UNKNOWN``);
2. anything else -> ``UNKNOWN`` with its text: exactly what etcd's ``togRPCError`` does for an
   error it has no row for. Only the text travels, never a traceback, and an ``UNKNOWN`` text is
   capped in length because it rides in an HTTP/2 trailer.

Clients match on the *text*: etcd's Go client turns a status back into a typed error by looking
its message up (``rpctypes.Error``), and etcdctl prints it verbatim.

Deliberate difference from etcd 3.4 on the wire: for "too many requests" and "not enough started
members" etcd's ``togRPCError`` returns the *client-side* error value, which grpc-go sends as
``UNKNOWN``; we send the table's code (RESOURCE_EXHAUSTED / FAILED_PRECONDITION). The message is
the same, and etcd's clients map by message, so they see the same typed error either way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import grpc

from minietcd import errors as E
from minietcd.errors import GrpcCode, MinietcdError, etcd_errors, message_of

#: grpc's StatusCode for each of the tree's codes (the same numbers).
STATUS: Mapping[GrpcCode, grpc.StatusCode] = MappingProxyType(
    {GrpcCode(code.value[0]): code for code in grpc.StatusCode}
)


@dataclass(frozen=True, slots=True)
class EtcdGrpcError:
    """One row of rpctypes/error.go, as the tree holds it."""

    #: etcd's Go variable name (typos included: ``ErrGPRCNotSupportedForLearner``).
    go_name: str
    code: grpc.StatusCode
    message: str
    #: The class that raises it.
    error: type[MinietcdError]


def _row(cls: type[MinietcdError]) -> EtcdGrpcError:
    assert cls.go_name is not None and cls.etcd_message is not None, cls
    return EtcdGrpcError(cls.go_name, STATUS[cls.grpc_code], cls.etcd_message, cls)


#: Every ``ErrGRPC...`` of etcd 3.4 plus 3.5's invalid-sort-option, from the tree's classes.
ERRORS: tuple[EtcdGrpcError, ...] = tuple(_row(cls) for cls in etcd_errors())

#: The table keyed by message (messages are unique, like etcd's errStringToError keys).
BY_MESSAGE: Mapping[str, EtcdGrpcError] = MappingProxyType({e.message: e for e in ERRORS})

#: etcd's inner error texts that its togRPCError (v3rpc/util.go) maps to a gRPC error worded
#: differently, and the class that stands for each here (code raises the class; the tests check
#: this record against util.go). Inner texts already worded as their gRPC error are left out.
INTERNAL_MESSAGES: Mapping[str, type[MinietcdError]] = MappingProxyType(
    {
        # etcdserver/errors.go
        "etcdserver: no space": E.NoSpaceError,
        # etcdserver/api/membership/errors.go
        "membership: ID removed": E.MemberIDRemovedError,
        "membership: ID not found": E.MemberNotFoundError,
        "membership: ID exists": E.MemberExistError,
        "membership: peerURL exists": E.PeerURLExistError,
        "membership: can only promote a learner member": E.MemberNotLearnerError,
        "membership: too many learner members in cluster": E.TooManyLearnersError,
        # mvcc/kvstore.go
        "mvcc: required revision has been compacted": E.CompactedRevisionError,
        "mvcc: required revision is a future revision": E.FutureRevisionError,
        # lease/lessor.go
        "lease not found": E.LeaseNotFoundError,
        "lease already exists": E.LeaseExistsError,
        "too large lease TTL": E.LeaseTTLTooLargeError,
        # auth/store.go
        "auth: root user does not exist": E.RootUserNotExistError,
        "auth: root user does not have root role": E.RootRoleNotExistError,
        "auth: user already exists": E.UserAlreadyExistError,
        "auth: user name is empty": E.UserEmptyError,
        "auth: user not found": E.UserNotFoundError,
        "auth: role already exists": E.RoleAlreadyExistError,
        "auth: role not found": E.RoleNotFoundError,
        "auth: role name is empty": E.RoleEmptyError,
        "auth: authentication failed, invalid user ID or password": E.AuthFailedError,
        "auth: permission denied": E.PermissionDeniedError,
        "auth: role is not granted to the user": E.RoleNotGrantedError,
        "auth: permission is not granted to the role": E.PermissionNotGrantedError,
        "auth: authentication is not enabled": E.AuthNotEnabledError,
        "auth: invalid auth token": E.InvalidAuthTokenError,
        "auth: invalid auth management": E.InvalidAuthMgmtError,
        "auth: revision in header is old": E.AuthOldRevisionError,
    }
)

#: Longest UNKNOWN message sent. The text rides in the ``grpc-message`` trailer, and an
#: exception's str() is unbounded (it may embed a whole request); clients reject huge trailers.
MAX_UNKNOWN_MESSAGE = 1024


def lookup(message: str) -> EtcdGrpcError | None:
    """The table row for a gRPC message or one of etcd's internal messages, else None."""
    row = BY_MESSAGE.get(message)
    if row is None:
        cls = INTERNAL_MESSAGES.get(message)
        if cls is not None and cls.etcd_message is not None:
            row = BY_MESSAGE[cls.etcd_message]
    return row


def to_grpc_status(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The gRPC status etcd would answer with for ``exc`` (see the module docstring)."""
    text = message_of(exc)
    code = exc.grpc_code if isinstance(exc, MinietcdError) and exc.etcd_message else GrpcCode.UNKNOWN
    if code == GrpcCode.UNKNOWN and len(text) > MAX_UNKNOWN_MESSAGE:
        text = text[: MAX_UNKNOWN_MESSAGE - 3] + "..."
    return STATUS[code], text
