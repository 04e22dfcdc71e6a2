"""An idle member's memory: start-up's freed heap pages given back (minietcd/server/memory.py),
bcrypt loaded only when a password is hashed or checked."""

from __future__ import annotations

import subprocess
import sys

from minietcd.server import memory


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


def test_bcrypt_is_loaded_by_the_first_password_not_by_the_server() -> None:
    # In a fresh interpreter: this one may have loaded bcrypt for another test already.
    script = (
        "import sys; import minietcd.server.main; from minietcd.server.auth import passwords\n"
        "assert 'bcrypt' not in sys.modules, 'bcrypt loaded at start'\n"
        "assert passwords.password_matches(passwords.hash_password('pw', passwords.MIN_COST), 'pw')\n"
        "assert 'bcrypt' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
