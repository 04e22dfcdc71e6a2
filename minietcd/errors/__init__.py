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
    │   ├── SnapshotFileError          no valid snapshot file / a bad one
    │   └── BackendError               the applied-state database (minietcd.mvcc.backend)
    │       └── BackendCommitError         a batch could not be committed (a full disk): fatal
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
    │   │   │                          AuthOldRevisionError); codes as etcd's
    │   │   ├── NoPasswordUserError    UNKNOWN: a password given for a --no-password user
    │   │   ├── AuthStoreWordsError    UNKNOWN: a refusal in auth/store.go's words (Maintenance)
    │   │   └── AuthVerifyOnlyError    UNKNOWN: a JWT provider with only a public key cannot sign
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
    ├── InconsistentDataError          the initial corruption check found a peer with another hash
    │                                  at the same revision: the member refuses to start
    ├── ConfigError                    bad flags or environment (clear message, exit code 1)
    │   ├── ListenError                a listener could not be bound, in Go's words ("listen tcp
    │   │                              127.0.0.1:2379: bind: address already in use")
    │   └── DataDirError               the data dir cannot be read or made ("error listing data dir")
    ├── LabError                       minietcd-lab: unknown member, impossible fault, ...
    │   └── LabPortTakenError          a port the lab chose or was given is in use by someone else
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

Subsystems add leaves under their own branch, in the submodule of that branch (``base``, ``raft``,
``storage``, ``mvcc``, ``lease``, ``server``, ``process``, ``client``), and draw them here, so the
tree stays in one place. Import every error from ``minietcd.errors``.
"""

from __future__ import annotations

from minietcd.errors.base import (
    GrpcCode as GrpcCode,
)
from minietcd.errors.base import (
    MinietcdError as MinietcdError,
)
from minietcd.errors.client import (
    ClientClosedError as ClientClosedError,
)
from minietcd.errors.client import (
    ClientError as ClientError,
)
from minietcd.errors.client import (
    DeadlineExceededError as DeadlineExceededError,
)
from minietcd.errors.client import (
    ElectionNoLeaderError as ElectionNoLeaderError,
)
from minietcd.errors.client import (
    ElectionNotLeaderError as ElectionNotLeaderError,
)
from minietcd.errors.client import (
    EndpointsUnavailableError as EndpointsUnavailableError,
)
from minietcd.errors.client import (
    EtcdServerError as EtcdServerError,
)
from minietcd.errors.client import (
    LockLostError as LockLostError,
)
from minietcd.errors.client import (
    OutcomeUnknownError as OutcomeUnknownError,
)
from minietcd.errors.client import (
    SessionExpiredError as SessionExpiredError,
)
from minietcd.errors.client import (
    WatchCanceledError as WatchCanceledError,
)
from minietcd.errors.client import (
    WatchCompactedError as WatchCompactedError,
)
from minietcd.errors.lease import (
    LeaseError as LeaseError,
)
from minietcd.errors.lease import (
    LeaseExistsError as LeaseExistsError,
)
from minietcd.errors.lease import (
    LeaseExpiredError as LeaseExpiredError,
)
from minietcd.errors.lease import (
    LeaseNotFoundError as LeaseNotFoundError,
)
from minietcd.errors.lease import (
    LeaseNotPrimaryError as LeaseNotPrimaryError,
)
from minietcd.errors.lease import (
    LeaseSnapshotError as LeaseSnapshotError,
)
from minietcd.errors.lease import (
    LeaseTTLTooLargeError as LeaseTTLTooLargeError,
)
from minietcd.errors.lookup import (
    error_for_message as error_for_message,
)
from minietcd.errors.lookup import (
    etcd_errors as etcd_errors,
)
from minietcd.errors.lookup import (
    message_of as message_of,
)
from minietcd.errors.mvcc import (
    CompactedRevisionError as CompactedRevisionError,
)
from minietcd.errors.mvcc import (
    EmptyKeyError as EmptyKeyError,
)
from minietcd.errors.mvcc import (
    FutureRevisionError as FutureRevisionError,
)
from minietcd.errors.mvcc import (
    KeyNotFoundError as KeyNotFoundError,
)
from minietcd.errors.mvcc import (
    LeaseProvidedError as LeaseProvidedError,
)
from minietcd.errors.mvcc import (
    MvccError as MvccError,
)
from minietcd.errors.mvcc import (
    MvccInvariantError as MvccInvariantError,
)
from minietcd.errors.mvcc import (
    MvccSnapshotError as MvccSnapshotError,
)
from minietcd.errors.mvcc import (
    RevisionNotFoundError as RevisionNotFoundError,
)
from minietcd.errors.mvcc import (
    TxnStateError as TxnStateError,
)
from minietcd.errors.mvcc import (
    ValueProvidedError as ValueProvidedError,
)
from minietcd.errors.process import (
    ConfigError as ConfigError,
)
from minietcd.errors.process import (
    DataDirError as DataDirError,
)
from minietcd.errors.process import (
    InconsistentDataError as InconsistentDataError,
)
from minietcd.errors.process import (
    LabError as LabError,
)
from minietcd.errors.process import (
    LabPortTakenError as LabPortTakenError,
)
from minietcd.errors.process import (
    ListenError as ListenError,
)
from minietcd.errors.process import (
    MemberFailedError as MemberFailedError,
)
from minietcd.errors.raft import (
    ConfChangePendingError as ConfChangePendingError,
)
from minietcd.errors.raft import (
    LogCompactedError as LogCompactedError,
)
from minietcd.errors.raft import (
    LogUnavailableError as LogUnavailableError,
)
from minietcd.errors.raft import (
    ProposalDroppedError as ProposalDroppedError,
)
from minietcd.errors.raft import (
    RaftError as RaftError,
)
from minietcd.errors.raft import (
    RaftInvariantError as RaftInvariantError,
)
from minietcd.errors.raft import (
    SnapshotOutOfDateError as SnapshotOutOfDateError,
)
from minietcd.errors.raft import (
    SnapshotTemporarilyUnavailableError as SnapshotTemporarilyUnavailableError,
)
from minietcd.errors.raft import (
    StepError as StepError,
)
from minietcd.errors.server import (
    AuthError as AuthError,
)
from minietcd.errors.server import (
    AuthFailedError as AuthFailedError,
)
from minietcd.errors.server import (
    AuthNotEnabledError as AuthNotEnabledError,
)
from minietcd.errors.server import (
    AuthOldRevisionError as AuthOldRevisionError,
)
from minietcd.errors.server import (
    AuthStoreWordsError as AuthStoreWordsError,
)
from minietcd.errors.server import (
    AuthVerifyOnlyError as AuthVerifyOnlyError,
)
from minietcd.errors.server import (
    BadLeaderTransfereeError as BadLeaderTransfereeError,
)
from minietcd.errors.server import (
    BadRequestError as BadRequestError,
)
from minietcd.errors.server import (
    ClusterInfoError as ClusterInfoError,
)
from minietcd.errors.server import (
    ConcurrencyError as ConcurrencyError,
)
from minietcd.errors.server import (
    CorruptError as CorruptError,
)
from minietcd.errors.server import (
    DuplicateKeyError as DuplicateKeyError,
)
from minietcd.errors.server import (
    InvalidAuthMgmtError as InvalidAuthMgmtError,
)
from minietcd.errors.server import (
    InvalidAuthTokenError as InvalidAuthTokenError,
)
from minietcd.errors.server import (
    InvalidSortOptionError as InvalidSortOptionError,
)
from minietcd.errors.server import (
    LeaderChangedError as LeaderChangedError,
)
from minietcd.errors.server import (
    LeaderTransferTimeoutError as LeaderTransferTimeoutError,
)
from minietcd.errors.server import (
    LearnerNotReadyError as LearnerNotReadyError,
)
from minietcd.errors.server import (
    MemberBadURLsError as MemberBadURLsError,
)
from minietcd.errors.server import (
    MemberContextMissingError as MemberContextMissingError,
)
from minietcd.errors.server import (
    MemberExistError as MemberExistError,
)
from minietcd.errors.server import (
    MemberIDRemovedError as MemberIDRemovedError,
)
from minietcd.errors.server import (
    MemberNotEnoughStartedError as MemberNotEnoughStartedError,
)
from minietcd.errors.server import (
    MemberNotFoundError as MemberNotFoundError,
)
from minietcd.errors.server import (
    MemberNotLearnerError as MemberNotLearnerError,
)
from minietcd.errors.server import (
    MembershipError as MembershipError,
)
from minietcd.errors.server import (
    MissingLeaderKeyError as MissingLeaderKeyError,
)
from minietcd.errors.server import (
    NoElectionLeaderError as NoElectionLeaderError,
)
from minietcd.errors.server import (
    NoLeaderError as NoLeaderError,
)
from minietcd.errors.server import (
    NoPasswordUserError as NoPasswordUserError,
)
from minietcd.errors.server import (
    NoSpaceError as NoSpaceError,
)
from minietcd.errors.server import (
    NotCapableError as NotCapableError,
)
from minietcd.errors.server import (
    NotElectionLeaderError as NotElectionLeaderError,
)
from minietcd.errors.server import (
    NotLeaderError as NotLeaderError,
)
from minietcd.errors.server import (
    NotSupportedForLearnerError as NotSupportedForLearnerError,
)
from minietcd.errors.server import (
    PeerURLExistError as PeerURLExistError,
)
from minietcd.errors.server import (
    PermissionDeniedError as PermissionDeniedError,
)
from minietcd.errors.server import (
    PermissionNotGrantedError as PermissionNotGrantedError,
)
from minietcd.errors.server import (
    RecipeError as RecipeError,
)
from minietcd.errors.server import (
    RequestCanceledError as RequestCanceledError,
)
from minietcd.errors.server import (
    RequestTimeoutError as RequestTimeoutError,
)
from minietcd.errors.server import (
    RequestTooLargeError as RequestTooLargeError,
)
from minietcd.errors.server import (
    RoleAlreadyExistError as RoleAlreadyExistError,
)
from minietcd.errors.server import (
    RoleEmptyError as RoleEmptyError,
)
from minietcd.errors.server import (
    RoleNotFoundError as RoleNotFoundError,
)
from minietcd.errors.server import (
    RoleNotGrantedError as RoleNotGrantedError,
)
from minietcd.errors.server import (
    RootRoleNotExistError as RootRoleNotExistError,
)
from minietcd.errors.server import (
    RootUserNotExistError as RootUserNotExistError,
)
from minietcd.errors.server import (
    ServerError as ServerError,
)
from minietcd.errors.server import (
    ServerWatchCanceledError as ServerWatchCanceledError,
)
from minietcd.errors.server import (
    StateSnapshotError as StateSnapshotError,
)
from minietcd.errors.server import (
    StoppedError as StoppedError,
)
from minietcd.errors.server import (
    TimeoutDueToConnectionLostError as TimeoutDueToConnectionLostError,
)
from minietcd.errors.server import (
    TimeoutDueToLeaderFailError as TimeoutDueToLeaderFailError,
)
from minietcd.errors.server import (
    TimeoutWaitAppliedIndexError as TimeoutWaitAppliedIndexError,
)
from minietcd.errors.server import (
    TooManyLearnersError as TooManyLearnersError,
)
from minietcd.errors.server import (
    TooManyOpsError as TooManyOpsError,
)
from minietcd.errors.server import (
    TooManyRequestsError as TooManyRequestsError,
)
from minietcd.errors.server import (
    TxnTooDeepError as TxnTooDeepError,
)
from minietcd.errors.server import (
    UnavailableError as UnavailableError,
)
from minietcd.errors.server import (
    UnhealthyError as UnhealthyError,
)
from minietcd.errors.server import (
    UnknownMethodError as UnknownMethodError,
)
from minietcd.errors.server import (
    UnsupportedRequestError as UnsupportedRequestError,
)
from minietcd.errors.server import (
    UserAlreadyExistError as UserAlreadyExistError,
)
from minietcd.errors.server import (
    UserEmptyError as UserEmptyError,
)
from minietcd.errors.server import (
    UserNotFoundError as UserNotFoundError,
)
from minietcd.errors.storage import (
    BackendCommitError as BackendCommitError,
)
from minietcd.errors.storage import (
    BackendError as BackendError,
)
from minietcd.errors.storage import (
    SnapshotFileError as SnapshotFileError,
)
from minietcd.errors.storage import (
    StorageError as StorageError,
)
from minietcd.errors.storage import (
    WalBehindSnapshotError as WalBehindSnapshotError,
)
from minietcd.errors.storage import (
    WalClosedError as WalClosedError,
)
from minietcd.errors.storage import (
    WalCorruptError as WalCorruptError,
)
from minietcd.errors.storage import (
    WalLockedError as WalLockedError,
)
from minietcd.errors.storage import (
    WalSnapshotNotFoundError as WalSnapshotNotFoundError,
)
