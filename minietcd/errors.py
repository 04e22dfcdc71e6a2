"""minietcd's one exception tree.

Every error minietcd raises on purpose derives from :class:`MinietcdError`. The gRPC edge maps
the leaves that have an etcd equivalent to etcd's status code and exact message (``etcd_message``);
everything else is an internal error.

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
    ├── ServerError                    request-edge errors carrying etcd's wording (minietcd.server)
    │   └── TxnTooDeepError            a Txn nested deeper than minietcd parses (server/nesting.py):
    │                                  "etcdserver: too many operations in txn request"
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


class MinietcdError(Exception):
    """Root of every error minietcd raises on purpose."""

    #: etcd's exact wording for this error, where etcd has one (clients match on the text).
    etcd_message: str | None = None


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


class BackendError(StorageError):
    """The applied-state database failed (cannot open, write, commit, copy): fail-stop."""


class BackendCommitError(BackendError):
    """A batch of applied writes could not be committed (etcd's ``mvcc/backend: cannot commit
    tx``): the member stops; the WAL still holds the entries, a restart applies them again."""


# --- MVCC --------------------------------------------------------------------------------------


class MvccError(MinietcdError):
    pass


class CompactedRevisionError(MvccError):
    etcd_message = "etcdserver: mvcc: required revision has been compacted"


class FutureRevisionError(MvccError):
    etcd_message = "etcdserver: mvcc: required revision is a future revision"


class KeyNotFoundError(MvccError):
    """A put with ignore_value / ignore_lease on a key that does not exist."""

    etcd_message = "etcdserver: key not found"


class EmptyKeyError(MvccError):
    """A write (put / delete_range) named the empty key, which etcd never stores."""

    etcd_message = "etcdserver: key is not provided"


class ValueProvidedError(MvccError):
    """A put with ignore_value also carried a value."""

    etcd_message = "etcdserver: value is provided"


class LeaseProvidedError(MvccError):
    """A put with ignore_lease also carried a lease."""

    etcd_message = "etcdserver: lease is provided"


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


class LeaseExistsError(LeaseError):
    etcd_message = "etcdserver: lease already exists"


class LeaseTTLTooLargeError(LeaseError):
    etcd_message = "etcdserver: too large lease TTL"


class LeaseExpiredError(LeaseNotFoundError):
    """Renew of a lease past its expiry whose revoke proposal has not been applied yet. etcd's
    Renew blocks until the revoke lands and then answers "requested lease not found"; being a
    LeaseNotFoundError, this maps to that same message if the server does not wait."""


class LeaseNotPrimaryError(LeaseError):
    """Renew / time-to-live asked of a lessor that is not the primary (the Raft leader): the
    server forwards the request to the leader (etcd's ErrNotPrimary; never shown to clients)."""


class LeaseSnapshotError(LeaseError):
    """Lessor.restore() got bytes that are not a valid lessor snapshot; the lessor is unchanged."""


# --- server, config, lab -----------------------------------------------------------------------


class ServerError(MinietcdError):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.etcd_message = message


class TxnTooDeepError(ServerError):
    """A Txn nested deeper than ``minietcd.server.nesting.MAX_TXN_NESTING``: refused at the edge
    with etcd's words for a nesting its op budget does not allow."""


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
