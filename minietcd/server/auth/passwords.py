"""Password hashes: bcrypt, as etcd's ``auth/store.go`` uses Go's ``x/crypto/bcrypt``.

Hashing and checking cost tens of milliseconds by design (``--bcrypt-cost``, 10 by default:
2^10 rounds), so they run in a worker thread, never on the event loop and never in the applier:
the API hashes a new password before proposing it (as etcd 3.5's ``v3_server.go`` does) and
checks an Authenticate's password before proposing the Authenticate entry.

Hashes are ``$2a$`` (what Go writes); Go and the ``bcrypt`` package read each other's. Go's
bcrypt uses the first 72 bytes of a password and ignores the rest; the ``bcrypt`` package
refuses longer ones, so they are cut to 72 bytes here, which gives Go's hash.

bcrypt is imported by the first hash or check, not with this module: only a member whose
users have passwords ever makes one, and a member without (auth off, the default) never
loads it (0.4 MiB of an idle member's RSS, measured).
"""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger("minietcd.auth")

#: Go's bcrypt.MinCost, MaxCost and DefaultCost.
MIN_COST, MAX_COST, DEFAULT_COST = 4, 31, 10
#: Bytes of a password bcrypt uses.
MAX_PASSWORD_BYTES = 72


def effective_cost(cost: int) -> int:
    """``--bcrypt-cost`` as etcd's NewAuthStore takes it: out of range means the default."""
    if MIN_COST <= cost <= MAX_COST:
        return cost
    log.warning("auth: Use default bcrypt-cost %d instead of the invalid value %d", DEFAULT_COST, cost)
    return DEFAULT_COST


def _bytes(password: str) -> bytes:
    return password.encode(errors="surrogateescape")[:MAX_PASSWORD_BYTES]


def hash_password(password: str, cost: int) -> bytes:
    """A new bcrypt hash of ``password`` (blocking: see :func:`hash_off_loop`)."""
    import bcrypt  # here, not at the top: see the module docstring

    return bcrypt.hashpw(_bytes(password), bcrypt.gensalt(cost, prefix=b"2a"))


def password_matches(hashed: bytes, password: str) -> bool:
    """Whether ``password`` is the one ``hashed`` was made from (a malformed hash matches
    nothing)."""
    import bcrypt  # here, not at the top: see the module docstring

    try:
        return bcrypt.checkpw(_bytes(password), hashed)
    except ValueError:
        return False


async def hash_off_loop(password: str, cost: int) -> bytes:
    return await asyncio.to_thread(hash_password, password, cost)


async def matches_off_loop(hashed: bytes, password: str) -> bool:
    return await asyncio.to_thread(password_matches, hashed, password)
