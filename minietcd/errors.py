"""minietcd's one exception tree.

Every error minietcd raises on purpose derives from :class:`MinietcdError`. A leaf that is one of
etcd's errors carries, as class attributes, etcd's exact message (``etcd_message``), the gRPC
code etcd answers it with (``grpc_code``, a :class:`GrpcCode`) and, for the rows of etcd's
``rpctypes/error.go``, its Go name (``go_name``). Raised without arguments, a leaf's text is
etcd's message; an argument adds detail for logs and never reaches the wire. The faces (the gRPC
servicers, a gateway) read those attributes in one table each (``server/v3rpc/errors.py``);
everything without an ``etcd_message`` is answered ``UNKNOWN`` with its text. Nothing branches on
an error's text: catch the class. This module imports nothing (the layer test keeps it a leaf),
so it names gRPC codes by number, not through grpc.

::

    MinietcdError
    ├── RaftError                      the pure core (minietcd.raft)
    │   ├── ProposalDroppedError       no leader / transfer in progress / too much uncommitted
    │   ├── ConfChangePendingError     another membership change is not yet applied
    │   ├── StepError                  a message the core refuses (e.g. local msg from a peer)
    │   ├── LogCompactedError          asked for entries below the first index
    │   ├── LogUnavailableError        asked for entries beyond the last index
    │   ├── SnapshotOutOfDateError     a snapshot older than what storage already has
    │   ├── SnapshotTemporarilyUnavailableError
    │   └── RaftInvariantError         a broken invariant: a bug, never limp on
    ├── StorageError                   WAL and snapshot files (minietcd.storage)
    │   ├── WalCorruptError            a bad record not at the tail: names file and offset
    │   ├── WalClosedError
    │   ├── WalLockedError             the WAL directory is locked by another opener
    │   ├── WalSnapshotNotFoundError   no WAL marker for the snapshot to open at
    │   ├── WalBehindSnapshotError     the WAL ends before a snapshot file only it could have
    │   │                              produced: fsynced records were lost, refuse to start
    │   └── SnapshotFileError          no valid snapshot file / a bad one
    ├── MvccError                      the multi-version store (minietcd.mvcc)
    │   ├── CompactedRevisionError     "etcdserver: mvcc: required revision has been compacted"
    │   ├── FutureRevisionError        "etcdserver: mvcc: required revision is a future revision"
    │   ├── KeyNotFoundError           "etcdserver: key not found"
    │   ├── EmptyKeyError              "etcdserver: key is not provided"
    │   ├── ValueProvidedError         "etcdserver: value is provided"
    │   ├── LeaseProvidedError         "etcdserver: lease is provided"
    │   ├── RevisionNotFoundError      internal: no revision of a key at the asked point
    │   ├── TxnStateError              a write txn used after end / nested
    │   ├── MvccSnapshotError          restore() given bytes that are not a store snapshot
    │   └── MvccInvariantError         a broken invariant: a bug, never limp on
    ├── LeaseError                     (minietcd.lease)
    │   ├── LeaseNotFoundError         "etcdserver: requested lease not found"
    │   │   └── LeaseExpiredError      renew of an expired lease whose revoke is still in Raft
    │   ├── LeaseExistsError           "etcdserver: lease already exists"
    │   ├── LeaseTTLTooLargeError      "etcdserver: too large lease TTL"
    │   ├── LeaseNotPrimaryError       renew / time-to-live on a non-leader: forward to the leader
    │   └── LeaseSnapshotError         restore() given bytes that are not a lessor snapshot
    ├── ServerError                    the member (minietcd.server); leaves in etcd's words, by code:
    │   ├── BadRequestError            INVALID_ARGUMENT: v3rpc/key.go's checks
    │   │   ├── TooManyOpsError        "etcdserver: too many operations in txn request"
    │   │   │   └── TxnTooDeepError    a Txn nested deeper than minietcd parses (server/nesting.py)
    │   │   ├── DuplicateKeyError      "etcdserver: duplicate key given in txn request"
    │   │   ├── InvalidSortOptionError "etcdserver: invalid sort option" (etcd 3.5)
    │   │   └── RequestTooLargeError   "etcdserver: request is too large"
    │   ├── NoSpaceError               RESOURCE_EXHAUSTED "etcdserver: mvcc: database space exceeded"
    │   ├── TooManyRequestsError       RESOURCE_EXHAUSTED "etcdserver: too many requests"
    │   ├── ServerWatchCanceledError   CANCELLED "etcdserver: watch canceled"
    │   ├── MembershipError            FAILED_PRECONDITION unless said: MemberExistError,
    │   │   │                          PeerURLExistError, MemberNotEnoughStartedError,
    │   │   │                          MemberBadURLsError (INVALID_ARGUMENT), MemberNotLearnerError,
    │   │   │                          LearnerNotReadyError, TooManyLearnersError
    │   │   ├── MemberNotFoundError    NOT_FOUND "etcdserver: member not found"
    │   │   │   └── MemberIDRemovedError  etcd's membership.ErrIDRemoved, answered as not found
    │   │   └── MemberContextMissingError  UNKNOWN: a ConfChange entry without its member
    │   ├── AuthError                  the 16 auth errors of error.go (RootUserNotExistError ...
    │   │                              AuthOldRevisionError); codes as etcd's
    │   ├── UnavailableError           UNAVAILABLE: this member cannot serve it now (retry)
    │   │   ├── NoLeaderError, LeaderChangedError, NotCapableError, StoppedError,
    │   │   │   UnhealthyError, NotSupportedForLearnerError
    │   │   └── RequestTimeoutError    "etcdserver: request timed out"
    │   │       └── TimeoutDueToLeaderFailError, TimeoutDueToConnectionLostError,
    │   │           TimeoutWaitAppliedIndexError
    │   ├── NotLeaderError, BadLeaderTransfereeError  FAILED_PRECONDITION
    │   ├── CorruptError               DATA_LOSS "etcdserver: corrupt cluster"
    │   ├── UnknownMethodError, RequestCanceledError, LeaderTransferTimeoutError, UnsupportedRequestError
    │   │                              etcdserver errors with no gRPC row: UNKNOWN with the text
    │   ├── ConcurrencyError           lock / election: UNKNOWN with the text, as etcd's in-process
    │   │   │                          client sends every error of its recipes
    │   │   ├── NotElectionLeaderError "election: not leader"
    │   │   ├── NoElectionLeaderError  "election: no leader"
    │   │   ├── MissingLeaderKeyError  '"leader" field must be provided'
    │   │   └── RecipeError            any other error of a recipe, carried as its text
    │   ├── StateSnapshotError         internal: restore() given bytes that are not a state snapshot
    │   └── ClusterInfoError           internal: no peer told a joining member the cluster's members
    ├── MemberFailedError              the member stopped itself (fail-stop, DESIGN rule 8): it can
    │                                  no longer persist, apply or step; names the stage and cause
    ├── ConfigError                    bad flags or environment (clear message, exit code 1)
    │   ├── ListenError                a listener could not be bound, in Go's words ("listen tcp
    │   │                              127.0.0.1:2379: bind: address already in use")
    │   └── DataDirError               the data dir cannot be read or made ("error listing data dir")
    ├── LabError                       minietcd-lab: unknown member, impossible fault, ...
    └── ClientError                    the asyncio client (minietcd.client); str() is etcd's wording
        ├── EtcdServerError            the server answered with an error status: .code, .etcd_message
        │                              (errors with a leaf above, e.g. CompactedRevisionError or
        │                              LeaseNotFoundError, are raised as that leaf instead)
        ├── EndpointsUnavailableError  no endpoint could be reached before the deadline (never sent)
        ├── OutcomeUnknownError        a write was sent but its outcome is unknown: never retried
        ├── DeadlineExceededError      a read's per-call timeout passed ("context deadline exceeded")
        ├── ClientClosedError          the client was closed
        ├── WatchCanceledError         the server canceled a watch (reason in etcd's wording)
        ├── WatchCompactedError        a watch's start revision was compacted (also a
        │                              CompactedRevisionError): .compact_revision
        ├── SessionExpiredError        a concurrency session's lease expired or was revoked
        ├── LockLostError              a lock key vanished before the lock was acquired
        ├── ElectionNotLeaderError     "election: not leader"
        └── ElectionNoLeaderError      "election: no leader"

Subsystems add leaves under their own branch, in this module, so the tree stays in one place.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator


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


# --- the Raft core -----------------------------------------------------------------------------


class RaftError(MinietcdError):
    pass


class ProposalDroppedError(RaftError):
    """A proposal was not appended: no known leader, a leadership transfer in progress, this
    node is being removed, or the leader holds too many uncommitted bytes (quorum lost)."""


class ConfChangePendingError(ProposalDroppedError):
    """Only one membership change may be in flight (committed-but-unapplied counts)."""


class StepError(RaftError):
    pass


class LogCompactedError(RaftError):
    """Requested index is below the first available index (compacted into a snapshot)."""


class LogUnavailableError(RaftError):
    """Requested index is beyond the last index."""


class SnapshotOutOfDateError(RaftError):
    pass


class SnapshotTemporarilyUnavailableError(RaftError):
    pass


class RaftInvariantError(RaftError):
    """An invariant of the core does not hold. This is a bug: the node must stop."""


# --- storage -----------------------------------------------------------------------------------


class StorageError(MinietcdError):
    pass


class WalCorruptError(StorageError):
    """A WAL record failed its check somewhere other than the torn tail."""

    def __init__(self, path: str, offset: int, reason: str) -> None:
        super().__init__(f"wal: corrupt record in {path} at offset {offset}: {reason}")
        self.path = path
        self.offset = offset
        self.reason = reason


class WalClosedError(StorageError):
    pass


class WalLockedError(StorageError):
    """Another process (or another open WAL in this one) holds the directory lock."""


class WalSnapshotNotFoundError(StorageError):
    """The WAL has no marker for the snapshot it was asked to open at (or its term differs)."""


class WalBehindSnapshotError(StorageError):
    """The WAL ends before the index of a snapshot file that only this member's own fsynced log
    could have produced: the WAL was cut back (restored from an old copy, truncated), and
    starting from an older snapshot would forget votes and entries this member acknowledged."""


class SnapshotFileError(StorageError):
    pass


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


def message_of(exc: BaseException) -> str:
    """The words etcd would send for ``exc``: its etcd message, else its text (its type's name
    when the text is empty or its ``__str__`` fails). Never a traceback."""
    message = getattr(exc, "etcd_message", None) if isinstance(exc, MinietcdError) else None
    if isinstance(message, str) and message:
        return message
    try:
        text = str(exc)
    except Exception:
        text = ""
    return text or type(exc).__name__


def etcd_errors() -> Iterator[type[MinietcdError]]:
    """Every leaf that is a row of etcd's rpctypes/error.go (defines its own ``go_name``), server
    side: the client branch re-raises some of them but adds none."""
    pending: list[type[MinietcdError]] = [MinietcdError]
    seen: set[type[MinietcdError]] = set()
    while pending:
        cls = pending.pop(0)
        if cls in seen or issubclass(cls, ClientError):
            continue
        seen.add(cls)
        if vars(cls).get("go_name") is not None:
            yield cls
        pending.extend(cls.__subclasses__())


def error_for_message(message: str) -> type[MinietcdError] | None:
    """The leaf whose etcd message is ``message`` (an etcd reply read back), if any."""
    return _BY_MESSAGE.get(message)


# --- member, config, lab -----------------------------------------------------------------------


class MemberFailedError(MinietcdError):
    """The member stopped itself because it can no longer persist, apply or step (an unexpected
    exception, a disk error, an entry it cannot parse): DESIGN rule 8, etcd's panic/Fatal. The
    message is the one log line that names the stage and the cause."""


class ConfigError(MinietcdError):
    pass


class ListenError(ConfigError):
    """A client, peer or metrics listener could not be bound. The message is Go's, as etcd
    prints it: ``listen tcp 127.0.0.1:2379: bind: address already in use``."""


class DataDirError(ConfigError):
    """The data dir (or WAL dir) cannot be listed or created: ``error listing data dir: PATH``."""


class LabError(MinietcdError):
    pass


# --- client ------------------------------------------------------------------------------------


class ClientError(MinietcdError):
    """Raised by :mod:`minietcd.client`. ``str(error)`` is etcd's wording where etcd has one."""

    def __init__(self, message: str, *, etcd_message: str | None = None) -> None:
        super().__init__(message)
        if etcd_message is not None:
            self.etcd_message = etcd_message


class EtcdServerError(ClientError):
    """The server answered with an error status. ``code`` is the gRPC status name (e.g.
    ``"INVALID_ARGUMENT"``), ``etcd_message`` the server's text ("etcdserver: too many operations
    in txn request"). Server errors that have a leaf elsewhere in this tree are raised as that
    leaf instead (see ``minietcd.client.errors``)."""

    def __init__(self, message: str, code: str = "UNKNOWN") -> None:
        super().__init__(message, etcd_message=message)
        self.code = code


class EndpointsUnavailableError(ClientError):
    """No endpoint could be reached before the deadline; the request was never sent."""


class OutcomeUnknownError(ClientError):
    """A write reached (or may have reached) a server, but no answer came back: the connection
    broke, the deadline passed, or the server gave up waiting for its proposal ("etcdserver:
    request timed out"). It may or may not have been applied, so the client never retries it.
    ``cause`` is the underlying error; ``etcd_message`` what etcdctl would print."""

    def __init__(self, message: str, *, etcd_message: str | None = None, cause: BaseException | None = None):
        super().__init__(message, etcd_message=etcd_message)
        self.cause = cause


class DeadlineExceededError(ClientError):
    """A call's timeout passed before it could be answered (etcd: "context deadline exceeded")."""

    etcd_message = "context deadline exceeded"


class ClientClosedError(ClientError):
    """The client was closed while a call was waiting or was made after close."""


class WatchCanceledError(ClientError):
    """The server canceled a watch for a reason other than compaction."""

    #: The server's canceled response (a ``minietcd.client.WatchResponse``), if there was one.
    response: object = None


class WatchCompactedError(CompactedRevisionError, ClientError):
    """A watch could not start (or resume) because its revision was compacted. Restart from
    ``compact_revision`` (the oldest revision still available) if missing events is acceptable."""

    #: The server's canceled response (a ``minietcd.client.WatchResponse``), if there was one.
    response: object = None

    def __init__(self, compact_revision: int) -> None:
        ClientError.__init__(self, CompactedRevisionError.etcd_message or "compacted")
        self.compact_revision = compact_revision


class SessionExpiredError(ClientError):
    """The lease behind a concurrency session expired or was revoked."""


class LockLostError(ClientError):
    """A lock's key vanished before the lock was acquired (its session ended)."""


class ElectionNotLeaderError(ClientError):
    etcd_message = "election: not leader"


class ElectionNoLeaderError(ClientError):
    etcd_message = "election: no leader"


_BY_MESSAGE: dict[str, type[MinietcdError]] = {
    cls.etcd_message: cls for cls in etcd_errors() if cls.etcd_message is not None
}
