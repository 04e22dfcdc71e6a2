"""The command's malloc settings (minietcd/server/memory.py): harmless calls, on any C library."""

from __future__ import annotations

import sys

from minietcd.server import memory
from minietcd.server.auth import passwords


def test_trim_and_cap_run_and_report() -> None:
    # glibc here: both exist and take; elsewhere both are no-ops that say False.
    assert isinstance(memory.trim_heap(), bool)
    assert isinstance(memory.cap_malloc_arenas(memory.ARENA_MAX), bool)
    if sys.platform == "linux" and memory._libc() is not None and hasattr(memory._libc(), "mallopt"):
        assert memory.cap_malloc_arenas(memory.ARENA_MAX)


def test_passwords_hash_and_check_with_bcrypt_imported_on_use() -> None:
    hashed = passwords.hash_password("secret", passwords.MIN_COST)
    assert hashed.startswith(b"$2a$04$")
    assert passwords.password_matches(hashed, "secret")
    assert not passwords.password_matches(hashed, "other")
    assert not passwords.password_matches(b"not a hash", "secret")
