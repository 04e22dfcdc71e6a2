"""Errors of the pure Raft core (minietcd.raft).

Part of the one exception tree drawn in ``minietcd/errors/__init__.py``."""

from __future__ import annotations

from minietcd.errors.base import MinietcdError

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
