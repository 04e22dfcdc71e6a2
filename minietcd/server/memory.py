"""glibc malloc settings of the `minietcd` command (not of an embedded member: its host owns them).

Two things, each measured on a 3-member cluster idling (benchmarks/compare.py ``--rows idle3``):

- **Start-up garbage back to the system.** Starting a member compiles and executes a few hundred
  modules and builds the descriptor pools; much of what that allocates is freed by the time the
  member is ready, but glibc keeps freed pages mapped in its heap. One ``malloc_trim(0)`` once
  the member is ready gives the free pages back (about 0.5 MiB of an idle member's RSS). It
  frees nothing still in use: under load the heap grows again as it would have.
- **Fewer malloc arenas.** glibc gives threads that allocate concurrently arenas of their own
  (up to 8 per core): gRPC's poller and event-engine threads, the WAL syncer, worker threads.
  Each arena keeps its own free pages. Two arenas keep the main thread's allocations apart
  from the others' without one arena per thread.

On a C library without these functions (musl, macOS) both are no-ops.
"""

from __future__ import annotations

import ctypes
import logging

log = logging.getLogger("minietcd.server")

#: mallopt's parameter number for the arena limit (glibc's malloc.h).
_M_ARENA_MAX = -8
#: Arenas the command allows: see the module docstring.
ARENA_MAX = 2


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None)  # the C library this process already runs on
    except OSError:
        return None


def cap_malloc_arenas(arenas: int = ARENA_MAX) -> bool:
    """Limit glibc to ``arenas`` malloc arenas; call it before threads start. Whether it took."""
    libc = _libc()
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        return False
    return bool(mallopt(ctypes.c_int(_M_ARENA_MAX), ctypes.c_int(arenas)))


def trim_heap() -> bool:
    """Give the free pages of every malloc arena back to the system. Whether any were."""
    libc = _libc()
    malloc_trim = getattr(libc, "malloc_trim", None)
    if malloc_trim is None:
        return False
    released = bool(malloc_trim(ctypes.c_size_t(0)))
    log.debug("malloc_trim after start-up: %s", "pages released" if released else "nothing to release")
    return released
