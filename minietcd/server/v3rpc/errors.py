"""etcd 3.4's gRPC errors (``etcdserver/api/v3rpc/rpctypes/error.go``) and the one mapping from
minietcd's exceptions to a gRPC status (DESIGN rule 6).

Clients match on the *text*: etcd's Go client turns a status back into a typed error by looking
its message up (``rpctypes.Error``), and etcdctl prints it verbatim. So every message here is
byte-for-byte etcd's, and code elsewhere imports the ``ERR_*`` constants instead of retyping them.

How an exception becomes a status (:func:`to_grpc_status`):

1. a :class:`~minietcd.errors.MinietcdError` whose ``etcd_message`` (a class attribute on MVCC
   and lease leaves; the constructor's message for :class:`~minietcd.errors.ServerError`) is a
   message of the table -> that row's code and message;
2. the same, after translating one of etcd's *internal* messages that its ``togRPCError`` maps
   to a differently worded gRPC error (``"etcdserver: no space"`` -> ``"etcdserver: mvcc:
   database space exceeded"``, ``"membership: ID not found"`` -> ``"etcdserver: member not
   found"``, ...), so a port of etcd code that raises the inner wording still answers right;
3. anything else -> ``UNKNOWN`` with ``str(exc)``: exactly what etcd's ``togRPCError`` does for
   an error it has no row for (e.g. "etcdserver: request timed out, leader transfer took too
   long"). Only the message travels, never a traceback, and it is capped in length because it
   rides in an HTTP/2 trailer.

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

from minietcd.errors import MinietcdError

_C = grpc.StatusCode

# --- messages (etcd's exact text) ----------------------------------------------------------------

ERR_EMPTY_KEY = "etcdserver: key is not provided"
ERR_KEY_NOT_FOUND = "etcdserver: key not found"
ERR_VALUE_PROVIDED = "etcdserver: value is provided"
ERR_LEASE_PROVIDED = "etcdserver: lease is provided"
ERR_TOO_MANY_OPS = "etcdserver: too many operations in txn request"
ERR_DUPLICATE_KEY = "etcdserver: duplicate key given in txn request"
ERR_COMPACTED = "etcdserver: mvcc: required revision has been compacted"
ERR_FUTURE_REV = "etcdserver: mvcc: required revision is a future revision"
ERR_NO_SPACE = "etcdserver: mvcc: database space exceeded"

ERR_LEASE_NOT_FOUND = "etcdserver: requested lease not found"
ERR_LEASE_EXIST = "etcdserver: lease already exists"
ERR_LEASE_TTL_TOO_LARGE = "etcdserver: too large lease TTL"

ERR_WATCH_CANCELED = "etcdserver: watch canceled"

ERR_MEMBER_EXIST = "etcdserver: member ID already exist"
ERR_PEER_URL_EXIST = "etcdserver: Peer URLs already exists"
ERR_MEMBER_NOT_ENOUGH_STARTED = "etcdserver: re-configuration failed due to not enough started members"
ERR_MEMBER_BAD_URLS = "etcdserver: given member URLs are invalid"
ERR_MEMBER_NOT_FOUND = "etcdserver: member not found"
ERR_MEMBER_NOT_LEARNER = "etcdserver: can only promote a learner member"
ERR_LEARNER_NOT_READY = "etcdserver: can only promote a learner member which is in sync with leader"
ERR_TOO_MANY_LEARNERS = "etcdserver: too many learner members in cluster"

ERR_REQUEST_TOO_LARGE = "etcdserver: request is too large"
ERR_TOO_MANY_REQUESTS = "etcdserver: too many requests"

ERR_ROOT_USER_NOT_EXIST = "etcdserver: root user does not exist"
ERR_ROOT_ROLE_NOT_EXIST = "etcdserver: root user does not have root role"
ERR_USER_ALREADY_EXIST = "etcdserver: user name already exists"
ERR_USER_EMPTY = "etcdserver: user name is empty"
ERR_USER_NOT_FOUND = "etcdserver: user name not found"
ERR_ROLE_ALREADY_EXIST = "etcdserver: role name already exists"
ERR_ROLE_NOT_FOUND = "etcdserver: role name not found"
ERR_ROLE_EMPTY = "etcdserver: role name is empty"
ERR_AUTH_FAILED = "etcdserver: authentication failed, invalid user ID or password"
ERR_PERMISSION_DENIED = "etcdserver: permission denied"
ERR_ROLE_NOT_GRANTED = "etcdserver: role is not granted to the user"
ERR_PERMISSION_NOT_GRANTED = "etcdserver: permission is not granted to the role"
ERR_AUTH_NOT_ENABLED = "etcdserver: authentication is not enabled"
ERR_INVALID_AUTH_TOKEN = "etcdserver: invalid auth token"
ERR_INVALID_AUTH_MGMT = "etcdserver: invalid auth management"
ERR_AUTH_OLD_REVISION = "etcdserver: revision of auth store is old"

ERR_NO_LEADER = "etcdserver: no leader"
ERR_NOT_LEADER = "etcdserver: not leader"
ERR_LEADER_CHANGED = "etcdserver: leader changed"
ERR_NOT_CAPABLE = "etcdserver: not capable"
ERR_STOPPED = "etcdserver: server stopped"
ERR_TIMEOUT = "etcdserver: request timed out"
ERR_TIMEOUT_DUE_TO_LEADER_FAIL = "etcdserver: request timed out, possibly due to previous leader failure"
ERR_TIMEOUT_DUE_TO_CONNECTION_LOST = "etcdserver: request timed out, possibly due to connection lost"
ERR_TIMEOUT_WAIT_APPLIED_INDEX = "etcdserver: request timed out, waiting for the applied index took too long"
ERR_UNHEALTHY = "etcdserver: unhealthy cluster"
ERR_CORRUPT = "etcdserver: corrupt cluster"
ERR_NOT_SUPPORTED_FOR_LEARNER = "etcdserver: rpc not supported for learner"
ERR_BAD_LEADER_TRANSFEREE = "etcdserver: bad leader transferee"

#: Not in etcd 3.4: 3.5's check for a sort order / target outside the enums. 3.4 has no check
#: and its applier panics on an unknown sort target, so we take 3.5's answer.
ERR_INVALID_SORT_OPTION = "etcdserver: invalid sort option"

# etcdserver errors (etcdserver/errors.go) that togRPCError has no row for: etcd sends them as
# UNKNOWN with this text, and so do we (raise ServerError(...) with them; they are not in the
# table on purpose).
ERR_UNKNOWN_METHOD = "etcdserver: unknown method"
ERR_CANCELED = "etcdserver: request cancelled"
ERR_TIMEOUT_LEADER_TRANSFER = "etcdserver: request timed out, leader transfer took too long"

# --- the table ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EtcdGrpcError:
    """One row of rpctypes/error.go."""

    #: etcd's Go variable name (typos included: ``ErrGPRCNotSupportedForLearner``).
    go_name: str
    code: grpc.StatusCode
    message: str


#: Every ``ErrGRPC...`` of etcd 3.4, in error.go's order, plus 3.5's invalid-sort-option.
ERRORS: tuple[EtcdGrpcError, ...] = (
    EtcdGrpcError("ErrGRPCEmptyKey", _C.INVALID_ARGUMENT, ERR_EMPTY_KEY),
    EtcdGrpcError("ErrGRPCKeyNotFound", _C.INVALID_ARGUMENT, ERR_KEY_NOT_FOUND),
    EtcdGrpcError("ErrGRPCValueProvided", _C.INVALID_ARGUMENT, ERR_VALUE_PROVIDED),
    EtcdGrpcError("ErrGRPCLeaseProvided", _C.INVALID_ARGUMENT, ERR_LEASE_PROVIDED),
    EtcdGrpcError("ErrGRPCTooManyOps", _C.INVALID_ARGUMENT, ERR_TOO_MANY_OPS),
    EtcdGrpcError("ErrGRPCDuplicateKey", _C.INVALID_ARGUMENT, ERR_DUPLICATE_KEY),
    EtcdGrpcError("ErrGRPCCompacted", _C.OUT_OF_RANGE, ERR_COMPACTED),
    EtcdGrpcError("ErrGRPCFutureRev", _C.OUT_OF_RANGE, ERR_FUTURE_REV),
    EtcdGrpcError("ErrGRPCNoSpace", _C.RESOURCE_EXHAUSTED, ERR_NO_SPACE),
    EtcdGrpcError("ErrGRPCLeaseNotFound", _C.NOT_FOUND, ERR_LEASE_NOT_FOUND),
    EtcdGrpcError("ErrGRPCLeaseExist", _C.FAILED_PRECONDITION, ERR_LEASE_EXIST),
    EtcdGrpcError("ErrGRPCLeaseTTLTooLarge", _C.OUT_OF_RANGE, ERR_LEASE_TTL_TOO_LARGE),
    EtcdGrpcError("ErrGRPCWatchCanceled", _C.CANCELLED, ERR_WATCH_CANCELED),
    EtcdGrpcError("ErrGRPCMemberExist", _C.FAILED_PRECONDITION, ERR_MEMBER_EXIST),
    EtcdGrpcError("ErrGRPCPeerURLExist", _C.FAILED_PRECONDITION, ERR_PEER_URL_EXIST),
    EtcdGrpcError("ErrGRPCMemberNotEnoughStarted", _C.FAILED_PRECONDITION, ERR_MEMBER_NOT_ENOUGH_STARTED),
    EtcdGrpcError("ErrGRPCMemberBadURLs", _C.INVALID_ARGUMENT, ERR_MEMBER_BAD_URLS),
    EtcdGrpcError("ErrGRPCMemberNotFound", _C.NOT_FOUND, ERR_MEMBER_NOT_FOUND),
    EtcdGrpcError("ErrGRPCMemberNotLearner", _C.FAILED_PRECONDITION, ERR_MEMBER_NOT_LEARNER),
    EtcdGrpcError("ErrGRPCLearnerNotReady", _C.FAILED_PRECONDITION, ERR_LEARNER_NOT_READY),
    EtcdGrpcError("ErrGRPCTooManyLearners", _C.FAILED_PRECONDITION, ERR_TOO_MANY_LEARNERS),
    EtcdGrpcError("ErrGRPCRequestTooLarge", _C.INVALID_ARGUMENT, ERR_REQUEST_TOO_LARGE),
    EtcdGrpcError("ErrGRPCRequestTooManyRequests", _C.RESOURCE_EXHAUSTED, ERR_TOO_MANY_REQUESTS),
    EtcdGrpcError("ErrGRPCRootUserNotExist", _C.FAILED_PRECONDITION, ERR_ROOT_USER_NOT_EXIST),
    EtcdGrpcError("ErrGRPCRootRoleNotExist", _C.FAILED_PRECONDITION, ERR_ROOT_ROLE_NOT_EXIST),
    EtcdGrpcError("ErrGRPCUserAlreadyExist", _C.FAILED_PRECONDITION, ERR_USER_ALREADY_EXIST),
    EtcdGrpcError("ErrGRPCUserEmpty", _C.INVALID_ARGUMENT, ERR_USER_EMPTY),
    EtcdGrpcError("ErrGRPCUserNotFound", _C.FAILED_PRECONDITION, ERR_USER_NOT_FOUND),
    EtcdGrpcError("ErrGRPCRoleAlreadyExist", _C.FAILED_PRECONDITION, ERR_ROLE_ALREADY_EXIST),
    EtcdGrpcError("ErrGRPCRoleNotFound", _C.FAILED_PRECONDITION, ERR_ROLE_NOT_FOUND),
    EtcdGrpcError("ErrGRPCRoleEmpty", _C.INVALID_ARGUMENT, ERR_ROLE_EMPTY),
    EtcdGrpcError("ErrGRPCAuthFailed", _C.INVALID_ARGUMENT, ERR_AUTH_FAILED),
    EtcdGrpcError("ErrGRPCPermissionDenied", _C.PERMISSION_DENIED, ERR_PERMISSION_DENIED),
    EtcdGrpcError("ErrGRPCRoleNotGranted", _C.FAILED_PRECONDITION, ERR_ROLE_NOT_GRANTED),
    EtcdGrpcError("ErrGRPCPermissionNotGranted", _C.FAILED_PRECONDITION, ERR_PERMISSION_NOT_GRANTED),
    EtcdGrpcError("ErrGRPCAuthNotEnabled", _C.FAILED_PRECONDITION, ERR_AUTH_NOT_ENABLED),
    EtcdGrpcError("ErrGRPCInvalidAuthToken", _C.UNAUTHENTICATED, ERR_INVALID_AUTH_TOKEN),
    EtcdGrpcError("ErrGRPCInvalidAuthMgmt", _C.INVALID_ARGUMENT, ERR_INVALID_AUTH_MGMT),
    EtcdGrpcError("ErrGRPCAuthOldRevision", _C.INVALID_ARGUMENT, ERR_AUTH_OLD_REVISION),
    EtcdGrpcError("ErrGRPCNoLeader", _C.UNAVAILABLE, ERR_NO_LEADER),
    EtcdGrpcError("ErrGRPCNotLeader", _C.FAILED_PRECONDITION, ERR_NOT_LEADER),
    EtcdGrpcError("ErrGRPCLeaderChanged", _C.UNAVAILABLE, ERR_LEADER_CHANGED),
    EtcdGrpcError("ErrGRPCNotCapable", _C.UNAVAILABLE, ERR_NOT_CAPABLE),
    EtcdGrpcError("ErrGRPCStopped", _C.UNAVAILABLE, ERR_STOPPED),
    EtcdGrpcError("ErrGRPCTimeout", _C.UNAVAILABLE, ERR_TIMEOUT),
    EtcdGrpcError("ErrGRPCTimeoutDueToLeaderFail", _C.UNAVAILABLE, ERR_TIMEOUT_DUE_TO_LEADER_FAIL),
    EtcdGrpcError("ErrGRPCTimeoutDueToConnectionLost", _C.UNAVAILABLE, ERR_TIMEOUT_DUE_TO_CONNECTION_LOST),
    EtcdGrpcError("ErrGRPCTimeoutWaitAppliedIndex", _C.UNAVAILABLE, ERR_TIMEOUT_WAIT_APPLIED_INDEX),
    EtcdGrpcError("ErrGRPCUnhealthy", _C.UNAVAILABLE, ERR_UNHEALTHY),
    EtcdGrpcError("ErrGRPCCorrupt", _C.DATA_LOSS, ERR_CORRUPT),
    EtcdGrpcError("ErrGPRCNotSupportedForLearner", _C.UNAVAILABLE, ERR_NOT_SUPPORTED_FOR_LEARNER),
    EtcdGrpcError("ErrGRPCBadLeaderTransferee", _C.FAILED_PRECONDITION, ERR_BAD_LEADER_TRANSFEREE),
    # etcd 3.5 (see ERR_INVALID_SORT_OPTION).
    EtcdGrpcError("ErrGRPCInvalidSortOption", _C.INVALID_ARGUMENT, ERR_INVALID_SORT_OPTION),
)

#: The table keyed by message (messages are unique, like etcd's errStringToError keys).
BY_MESSAGE: Mapping[str, EtcdGrpcError] = MappingProxyType({e.message: e for e in ERRORS})

#: etcd's internal error texts that its togRPCError (v3rpc/util.go) maps to a gRPC error worded
#: differently. Only texts that differ are listed; the rest already are table messages.
INTERNAL_MESSAGES: Mapping[str, str] = MappingProxyType(
    {
        # etcdserver/errors.go
        "etcdserver: no space": ERR_NO_SPACE,
        # etcdserver/api/membership/errors.go
        "membership: ID removed": ERR_MEMBER_NOT_FOUND,
        "membership: ID not found": ERR_MEMBER_NOT_FOUND,
        "membership: ID exists": ERR_MEMBER_EXIST,
        "membership: peerURL exists": ERR_PEER_URL_EXIST,
        "membership: can only promote a learner member": ERR_MEMBER_NOT_LEARNER,
        "membership: too many learner members in cluster": ERR_TOO_MANY_LEARNERS,
        # mvcc/kvstore.go
        "mvcc: required revision has been compacted": ERR_COMPACTED,
        "mvcc: required revision is a future revision": ERR_FUTURE_REV,
        # lease/lessor.go
        "lease not found": ERR_LEASE_NOT_FOUND,
        "lease already exists": ERR_LEASE_EXIST,
        "too large lease TTL": ERR_LEASE_TTL_TOO_LARGE,
        # auth/store.go
        "auth: root user does not exist": ERR_ROOT_USER_NOT_EXIST,
        "auth: root user does not have root role": ERR_ROOT_ROLE_NOT_EXIST,
        "auth: user already exists": ERR_USER_ALREADY_EXIST,
        "auth: user name is empty": ERR_USER_EMPTY,
        "auth: user not found": ERR_USER_NOT_FOUND,
        "auth: role already exists": ERR_ROLE_ALREADY_EXIST,
        "auth: role not found": ERR_ROLE_NOT_FOUND,
        "auth: role name is empty": ERR_ROLE_EMPTY,
        "auth: authentication failed, invalid user ID or password": ERR_AUTH_FAILED,
        "auth: permission denied": ERR_PERMISSION_DENIED,
        "auth: role is not granted to the user": ERR_ROLE_NOT_GRANTED,
        "auth: permission is not granted to the role": ERR_PERMISSION_NOT_GRANTED,
        "auth: authentication is not enabled": ERR_AUTH_NOT_ENABLED,
        "auth: invalid auth token": ERR_INVALID_AUTH_TOKEN,
        "auth: invalid auth management": ERR_INVALID_AUTH_MGMT,
        "auth: revision in header is old": ERR_AUTH_OLD_REVISION,
    }
)

#: Longest UNKNOWN message sent. The text rides in the ``grpc-message`` trailer, and an
#: exception's str() is unbounded (it may embed a whole request); clients reject huge trailers.
MAX_UNKNOWN_MESSAGE = 1024


def lookup(message: str) -> EtcdGrpcError | None:
    """The table row for a gRPC message or one of etcd's internal messages, else None."""
    row = BY_MESSAGE.get(message)
    if row is None:
        translated = INTERNAL_MESSAGES.get(message)
        if translated is not None:
            row = BY_MESSAGE[translated]
    return row


def to_grpc_status(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The gRPC status etcd would answer with for ``exc`` (see the module docstring)."""
    if isinstance(exc, MinietcdError):
        message = exc.etcd_message
        if isinstance(message, str):
            row = lookup(message)
            if row is not None:
                return row.code, row.message
    return grpc.StatusCode.UNKNOWN, _describe(exc)


def _describe(exc: BaseException) -> str:
    # etcd sends err.Error(); str(exc) is ours. A broken __str__ must not turn one failed
    # request into a crash of the servicer, and an empty str (KeyError()) says nothing.
    try:
        text = str(exc)
    except Exception:
        text = ""
    if not text:
        text = type(exc).__name__
    if len(text) > MAX_UNKNOWN_MESSAGE:
        text = text[: MAX_UNKNOWN_MESSAGE - 3] + "..."
    return text
