"""Errors the asyncio client (minietcd.client) raises; str() is etcd's wording.

Part of the one exception tree drawn in ``minietcd/errors/__init__.py``."""

from __future__ import annotations

from minietcd.errors.base import MinietcdError
from minietcd.errors.mvcc import CompactedRevisionError

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
