"""The command's malloc settings (minietcd/server/memory.py): harmless calls, on any C library."""

from __future__ import annotations

import sys

from minietcd.server import memory
from minietcd.server.auth import passwords


def test_trim_gives_freed_heap_pages_back() -> None:
    if sys.platform != "linux" or not hasattr(memory._libc(), "malloc_trim"):
        assert memory.trim_heap() is False  # a no-op elsewhere
        return
    # Objects above pymalloc's 512 bytes come from glibc. Keeping every tenth alive leaves runs
    # of freed ones inside the heap, whole pages that glibc keeps mapped until trimmed.
    objects = [bytes(2000) for _ in range(5_000)]
    kept = objects[::10]
    del objects
    assert memory.trim_heap() is True
    assert len(kept) == 500


def test_passwords_hash_and_check_with_bcrypt_imported_on_use() -> None:
    hashed = passwords.hash_password("secret", passwords.MIN_COST)
    assert hashed.startswith(b"$2a$04$")
    assert passwords.password_matches(hashed, "secret")
    assert not passwords.password_matches(hashed, "other")
    assert not passwords.password_matches(b"not a hash", "secret")
