"""Fail-stop (DESIGN rule 8): the words a member dies with, and failpoints to make it die.

A member that can no longer persist, apply or step stops with one ``C |`` log line naming the
stage and the cause, as etcd's ``plog.Fatalf`` does (``C | etcdserver: failed to save state and
entries error: write /data/member/wal/0.wal: no space left on device``). This module has the two
helpers that take:

- :func:`error_text`: an exception as etcd would print the Go error behind it. An ``OSError``
  reads like Go's ``*PathError`` (``open /x: no such file or directory``): lower-case, no
  ``[Errno 28]``, the path when there is one (the WAL and the snapshotter name theirs).
- :func:`failpoint`: etcd's gofail failpoints (``raftBeforeSave``, ``raftBeforeAdvance``, ...),
  which etcd's own robustness tests use to kill a member at a chosen stage. Set
  ``MINIETCD_FAILPOINTS=raftBeforeSave,raftBeforeApply`` and the named points raise an
  unexpected ``RuntimeError`` when reached; unset (always, outside tests), a failpoint is one
  truth test of an empty set. The names are listed in :data:`FAILPOINTS`.
"""

from __future__ import annotations

import os
from typing import Final

from minietcd.errors import MinietcdError
from minietcd.storage.fileutil import go_error_text

FAILPOINTS_ENV: Final = "MINIETCD_FAILPOINTS"

#: Every failpoint, in the order the Ready loop reaches them (raft_node.RaftNode).
FAILPOINTS: Final = (
    "raftBeforeTick",  # the ticker, before rawnode.tick()
    "raftBeforeLeaderSend",  # a leader's messages, sent before its own fsync (thesis 10.2.1)
    "raftBeforeSave",  # entries, hard state and snapshot file written to the WAL / snap dir
    "raftBeforeSync",  # the WAL fsync
    "raftBeforeFollowerSend",  # messages of everyone else, after the fsync
    "raftBeforeApplySnap",  # a received snapshot replaces the state machine
    "raftBeforeApply",  # one committed entry applied
    "raftBeforeAdvance",  # rawnode.advance()
    "raftBeforeSnapshot",  # a local snapshot of the applied state, and the log compaction
    "raftBeforeStep",  # a message from a peer stepped into the core
)

# Read once: a member's failpoints are fixed for its life, as gofail's GOFAIL_FAILPOINTS is.
_enabled: frozenset[str] = frozenset(
    name.strip() for name in os.environ.get(FAILPOINTS_ENV, "").split(",") if name.strip()
)


class FailpointError(RuntimeError):
    """What an enabled failpoint raises: deliberately *not* a MinietcdError, so it is handled
    exactly as an unexpected bug would be."""


def failpoint(name: str) -> None:
    """Raise :class:`FailpointError` if ``name`` is enabled (see the module docstring)."""
    if _enabled and name in _enabled:
        raise FailpointError(f"failpoint {name} triggered")


def enable_failpoints(names: frozenset[str]) -> frozenset[str]:
    """Replace the enabled failpoints (for in-process tests); returns the previous set."""
    global _enabled
    previous, _enabled = _enabled, frozenset(names)
    return previous


def error_text(e: BaseException) -> str:
    """``e`` in one line, as etcd would print the Go error behind it: our own errors by their
    message, an ``OSError`` as Go's ``*PathError``, anything else (a bug) with its type."""
    if isinstance(e, MinietcdError | FailpointError):
        return str(e) or type(e).__name__
    if isinstance(e, OSError) and e.errno is not None:
        text = go_error_text(e, "open")
        return text if e.filename is not None else text.removeprefix("open: ")
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
