"""etcd's errors as its gRPC API answers them (rpctypes/error.go), and the member's own.

Part of the one exception tree drawn in ``minietcd/errors/__init__.py``."""

from __future__ import annotations

from minietcd.errors.base import GrpcCode, MinietcdError
from minietcd.errors.lookup import message_of

# --- the server: etcd's errors, as its gRPC API answers them ------------------------------------
# Leaves are grouped under a branch that sets their code; the rows of etcd 3.4's rpctypes/error.go
# all appear (the auth ones too, for the auth work to raise), plus 3.5's invalid-sort-option.


class ServerError(MinietcdError):
    """The member process (minietcd.server). Raise a leaf, never this branch with words of its own."""


class BadRequestError(ServerError):
    """A request etcd refuses before proposing it (v3rpc/key.go and friends)."""

    grpc_code = GrpcCode.INVALID_ARGUMENT


class TooManyOpsError(BadRequestError):
    etcd_message = "etcdserver: too many operations in txn request"
    go_name = "ErrGRPCTooManyOps"


class TxnTooDeepError(TooManyOpsError):
    """A Txn nested deeper than ``minietcd.server.nesting.MAX_TXN_NESTING``: refused at the edge
    with etcd's words for a nesting its op budget does not allow."""


class DuplicateKeyError(BadRequestError):
    etcd_message = "etcdserver: duplicate key given in txn request"
    go_name = "ErrGRPCDuplicateKey"


class InvalidSortOptionError(BadRequestError):
    """etcd 3.5's check of a range's sort order / target (3.4 has none and its applier panics)."""

    etcd_message = "etcdserver: invalid sort option"
    go_name = "ErrGRPCInvalidSortOption"


class RequestTooLargeError(BadRequestError):
    etcd_message = "etcdserver: request is too large"
    go_name = "ErrGRPCRequestTooLarge"


class NoSpaceError(ServerError):
    """The NOSPACE alarm is raised: writes that grow the database are refused (etcd's quota)."""

    grpc_code = GrpcCode.RESOURCE_EXHAUSTED
    etcd_message = "etcdserver: mvcc: database space exceeded"
    go_name = "ErrGRPCNoSpace"


class TooManyRequestsError(ServerError):
    grpc_code = GrpcCode.RESOURCE_EXHAUSTED
    etcd_message = "etcdserver: too many requests"
    go_name = "ErrGRPCRequestTooManyRequests"


class ServerWatchCanceledError(ServerError):
    grpc_code = GrpcCode.CANCELLED
    etcd_message = "etcdserver: watch canceled"
    go_name = "ErrGRPCWatchCanceled"


# Membership (etcd's membership.ValidateConfigurationChange and mayAddMember / mayRemoveMember).


class MembershipError(ServerError):
    grpc_code = GrpcCode.FAILED_PRECONDITION


class MemberExistError(MembershipError):
    etcd_message = "etcdserver: member ID already exist"
    go_name = "ErrGRPCMemberExist"


class PeerURLExistError(MembershipError):
    etcd_message = "etcdserver: Peer URLs already exists"
    go_name = "ErrGRPCPeerURLExist"


class MemberNotEnoughStartedError(MembershipError):
    etcd_message = "etcdserver: re-configuration failed due to not enough started members"
    go_name = "ErrGRPCMemberNotEnoughStarted"


class MemberBadURLsError(MembershipError):
    grpc_code = GrpcCode.INVALID_ARGUMENT
    etcd_message = "etcdserver: given member URLs are invalid"
    go_name = "ErrGRPCMemberBadURLs"


class MemberNotFoundError(MembershipError):
    grpc_code = GrpcCode.NOT_FOUND
    etcd_message = "etcdserver: member not found"
    go_name = "ErrGRPCMemberNotFound"


class MemberIDRemovedError(MemberNotFoundError):
    """The ID was removed from the cluster and may never come back (etcd's ErrIDRemoved, which
    its togRPCError answers as "member not found")."""


class MemberNotLearnerError(MembershipError):
    etcd_message = "etcdserver: can only promote a learner member"
    go_name = "ErrGRPCMemberNotLearner"


class LearnerNotReadyError(MembershipError):
    etcd_message = "etcdserver: can only promote a learner member which is in sync with leader"
    go_name = "ErrGRPCLearnerNotReady"


class TooManyLearnersError(MembershipError):
    etcd_message = "etcdserver: too many learner members in cluster"
    go_name = "ErrGRPCTooManyLearners"


class MemberContextMissingError(MembershipError):
    """A ConfChange entry that adds a member but does not carry it (a bug of the proposer)."""

    grpc_code = GrpcCode.UNKNOWN
    etcd_message = "etcdserver: member ID missing context"


# Auth (etcd's auth/store.go errors as error.go answers them).


class AuthError(ServerError):
    grpc_code = GrpcCode.FAILED_PRECONDITION


class RootUserNotExistError(AuthError):
    etcd_message = "etcdserver: root user does not exist"
    go_name = "ErrGRPCRootUserNotExist"


class RootRoleNotExistError(AuthError):
    etcd_message = "etcdserver: root user does not have root role"
    go_name = "ErrGRPCRootRoleNotExist"


class UserAlreadyExistError(AuthError):
    etcd_message = "etcdserver: user name already exists"
    go_name = "ErrGRPCUserAlreadyExist"


class UserEmptyError(AuthError):
    grpc_code = GrpcCode.INVALID_ARGUMENT
    etcd_message = "etcdserver: user name is empty"
    go_name = "ErrGRPCUserEmpty"


class UserNotFoundError(AuthError):
    etcd_message = "etcdserver: user name not found"
    go_name = "ErrGRPCUserNotFound"


class RoleAlreadyExistError(AuthError):
    etcd_message = "etcdserver: role name already exists"
    go_name = "ErrGRPCRoleAlreadyExist"


class RoleNotFoundError(AuthError):
    etcd_message = "etcdserver: role name not found"
    go_name = "ErrGRPCRoleNotFound"


class RoleEmptyError(AuthError):
    grpc_code = GrpcCode.INVALID_ARGUMENT
    etcd_message = "etcdserver: role name is empty"
    go_name = "ErrGRPCRoleEmpty"


class AuthFailedError(AuthError):
    grpc_code = GrpcCode.INVALID_ARGUMENT
    etcd_message = "etcdserver: authentication failed, invalid user ID or password"
    go_name = "ErrGRPCAuthFailed"


class PermissionDeniedError(AuthError):
    grpc_code = GrpcCode.PERMISSION_DENIED
    etcd_message = "etcdserver: permission denied"
    go_name = "ErrGRPCPermissionDenied"


class RoleNotGrantedError(AuthError):
    etcd_message = "etcdserver: role is not granted to the user"
    go_name = "ErrGRPCRoleNotGranted"


class PermissionNotGrantedError(AuthError):
    etcd_message = "etcdserver: permission is not granted to the role"
    go_name = "ErrGRPCPermissionNotGranted"


class AuthNotEnabledError(AuthError):
    etcd_message = "etcdserver: authentication is not enabled"
    go_name = "ErrGRPCAuthNotEnabled"


class InvalidAuthTokenError(AuthError):
    grpc_code = GrpcCode.UNAUTHENTICATED
    etcd_message = "etcdserver: invalid auth token"
    go_name = "ErrGRPCInvalidAuthToken"


class InvalidAuthMgmtError(AuthError):
    grpc_code = GrpcCode.INVALID_ARGUMENT
    etcd_message = "etcdserver: invalid auth management"
    go_name = "ErrGRPCInvalidAuthMgmt"


class AuthOldRevisionError(AuthError):
    grpc_code = GrpcCode.INVALID_ARGUMENT
    etcd_message = "etcdserver: revision of auth store is old"
    go_name = "ErrGRPCAuthOldRevision"


# auth/store.go errors that togRPCError has no row for: UNKNOWN with the store's own words.


class NoPasswordUserError(AuthError):
    """Authenticate with a password for a user created with ``--no-password`` (CN auth only)."""

    grpc_code = GrpcCode.UNKNOWN
    etcd_message = "auth: authentication failed, password was given for no password user"


class AuthStoreWordsError(AuthError):
    """An auth refusal sent in the auth store's own words, as etcd's maintenance server sends
    them (it returns the store's error without togRPCError): ``UNKNOWN`` with "auth: permission
    denied" for what is elsewhere PERMISSION_DENIED "etcdserver: permission denied". ``.cause``
    is the refusal."""

    grpc_code = GrpcCode.UNKNOWN
    #: auth/store.go's words for the refusals an admin check can give.
    WORDS: dict[type[AuthError], str] = {}

    def __init__(self, cause: AuthError) -> None:
        text = self.WORDS.get(type(cause), "auth: permission denied")
        super().__init__(text)
        self.etcd_message = text
        self.cause = cause


class AuthVerifyOnlyError(AuthError):
    """Authenticate on a member whose JWT provider has only a public key (it verifies tokens
    signed elsewhere, and signs none)."""

    grpc_code = GrpcCode.UNKNOWN
    etcd_message = "auth: token signing attempted with verify-only key"


# Availability: the request may succeed later or on another member.


class UnavailableError(ServerError):
    grpc_code = GrpcCode.UNAVAILABLE


class NoLeaderError(UnavailableError):
    etcd_message = "etcdserver: no leader"
    go_name = "ErrGRPCNoLeader"


class LeaderChangedError(UnavailableError):
    etcd_message = "etcdserver: leader changed"
    go_name = "ErrGRPCLeaderChanged"


class NotCapableError(UnavailableError):
    etcd_message = "etcdserver: not capable"
    go_name = "ErrGRPCNotCapable"


class StoppedError(UnavailableError):
    etcd_message = "etcdserver: server stopped"
    go_name = "ErrGRPCStopped"


class RequestTimeoutError(UnavailableError):
    etcd_message = "etcdserver: request timed out"
    go_name = "ErrGRPCTimeout"


class TimeoutDueToLeaderFailError(RequestTimeoutError):
    etcd_message = "etcdserver: request timed out, possibly due to previous leader failure"
    go_name = "ErrGRPCTimeoutDueToLeaderFail"


class TimeoutDueToConnectionLostError(RequestTimeoutError):
    etcd_message = "etcdserver: request timed out, possibly due to connection lost"
    go_name = "ErrGRPCTimeoutDueToConnectionLost"


class TimeoutWaitAppliedIndexError(RequestTimeoutError):
    etcd_message = "etcdserver: request timed out, waiting for the applied index took too long"
    go_name = "ErrGRPCTimeoutWaitAppliedIndex"


class UnhealthyError(UnavailableError):
    etcd_message = "etcdserver: unhealthy cluster"
    go_name = "ErrGRPCUnhealthy"


class NotSupportedForLearnerError(UnavailableError):
    etcd_message = "etcdserver: rpc not supported for learner"
    go_name = "ErrGPRCNotSupportedForLearner"  # sic: etcd's typo


class NotLeaderError(ServerError):
    grpc_code = GrpcCode.FAILED_PRECONDITION
    etcd_message = "etcdserver: not leader"
    go_name = "ErrGRPCNotLeader"


class BadLeaderTransfereeError(ServerError):
    grpc_code = GrpcCode.FAILED_PRECONDITION
    etcd_message = "etcdserver: bad leader transferee"
    go_name = "ErrGRPCBadLeaderTransferee"


class CorruptError(ServerError):
    grpc_code = GrpcCode.DATA_LOSS
    etcd_message = "etcdserver: corrupt cluster"
    go_name = "ErrGRPCCorrupt"


# etcdserver/errors.go errors that togRPCError has no row for: UNKNOWN with the text, as etcd.


class UnknownMethodError(ServerError):
    etcd_message = "etcdserver: unknown method"


class RequestCanceledError(ServerError):
    etcd_message = "etcdserver: request cancelled"


class LeaderTransferTimeoutError(ServerError):
    etcd_message = "etcdserver: request timed out, leader transfer took too long"


class UnsupportedRequestError(ServerError):
    """A log entry carrying no request this member knows how to apply (ours, in etcd's style)."""

    etcd_message = "etcdserver: unsupported request in log"


# Lock and election (v3lock, v3election): etcd runs its client-side recipes on an in-process
# client, which turns every error into plain text, so clients see UNKNOWN with the text.


class ConcurrencyError(ServerError):
    pass


class NotElectionLeaderError(ConcurrencyError):
    etcd_message = "election: not leader"


class NoElectionLeaderError(ConcurrencyError):
    etcd_message = "election: no leader"


class MissingLeaderKeyError(ConcurrencyError):
    etcd_message = '"leader" field must be provided'


class RecipeError(ConcurrencyError):
    """Any other error of a lock or election recipe, carried as etcd carries it: its text only
    (``.cause`` is the error itself, for logs)."""

    def __init__(self, cause: BaseException) -> None:
        text = message_of(cause)
        super().__init__(text)
        self.etcd_message = text
        self.cause = cause


class StateSnapshotError(ServerError):
    """StateMachine.restore() got bytes that are not a state snapshot; the state is unchanged."""


class ClusterInfoError(ServerError):
    """No peer URL answered a joining member with the cluster's id and members."""


AuthStoreWordsError.WORDS.update(
    {
        PermissionDeniedError: "auth: permission denied",
        UserEmptyError: "auth: user name is empty",
        UserNotFoundError: "auth: user not found",
        InvalidAuthTokenError: "auth: invalid auth token",
        AuthOldRevisionError: "auth: revision in header is old",
    }
)
