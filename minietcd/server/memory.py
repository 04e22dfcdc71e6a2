"""glibc malloc and the `minietcd` command (not an embedded member: its host owns its heap).

Starting a member compiles and executes a few hundred modules and builds the descriptor pools;
much of what that allocates is freed by the time the member is ready, but glibc keeps freed
pages mapped in its heap. One ``malloc_trim(0)`` once the member is ready gives them back
(about 0.5 MiB of an idle member's RSS, measured with benchmarks/compare.py ``--rows idle3``).
It frees nothing still in use: under load the heap grows again as it would have.

Capping glibc's malloc arenas (``mallopt(M_ARENA_MAX, 2)``) was measured too and left out: it
saved 0.15 MiB and cost about 5% more CPU per put (put3, three runs each way, alternated),
gRPC's threads waiting for the main thread's arena.

On a C library without ``malloc_trim`` (musl, macOS) this is a no-op.
"""

from __future__ import annotations

import ctypes
import logging

log = logging.getLogger("minietcd.server")


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None)  # the C library this process already runs on
    except OSError:
        return None


def trim_heap() -> bool:
    """Give the free pages of every malloc arena back to the system. Whether any were."""
    libc = _libc()
    malloc_trim = getattr(libc, "malloc_trim", None)
    if malloc_trim is None:
        return False
    released = bool(malloc_trim(ctypes.c_size_t(0)))
    log.debug("malloc_trim after start-up: %s", "pages released" if released else "nothing to release")
    return released
