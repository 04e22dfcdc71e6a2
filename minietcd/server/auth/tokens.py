"""Auth tokens: etcd's ``--auth-token`` providers (``auth/simple_token.go``, ``auth/jwt.go``,
``auth/options.go``).

``--auth-token simple`` (etcd's default): a token is ``<16 random letters>.<index>``, where the
index is the Raft index of the Authenticate entry. Every member registers the token when it
applies that entry (the letters travel in the entry), so the token works on every member; a
member that has not applied the entry yet waits until it has (etcd's ``indexWaiter``). Tokens
expire ``--auth-token-ttl`` seconds after their last use, and die with their user's password
or the user itself, and all at once when auth is turned off. They are memory only: a restarted
member knows none (clients authenticate again on "invalid auth token", as etcd's do).

``--auth-token jwt,pub-key=<file>,priv-key=<file>,sign-method=<alg>[,ttl=<duration>]``: the
token is a JWT signed with ``alg`` (HS*, RS*, PS*, ES256/384/512) carrying ``username``,
``revision`` (the auth revision) and ``exp``. Any member holding the key verifies it, and no
member keeps state for it; a token minted before an auth change carries an older revision, so
it is refused ("revision of auth store is old") once users, roles or permissions change. With
only ``pub-key``, a member verifies tokens and signs none.

The provider is member-local and never part of the replicated state; the store tells it when a
user's credentials die (``AuthStore.on_invalidate_user``) and when auth turns on or off.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from minietcd.errors import AuthFailedError, ConfigError
from minietcd.server.auth.info import AuthInfo

log = logging.getLogger("minietcd.auth")

#: etcd's simpleTokenTTLDefault, and jwt's DefaultTTL.
DEFAULT_TTL = 300.0
SIMPLE_TOKEN_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
SIMPLE_TOKEN_LENGTH = 16
#: etcd's error for a malformed --auth-token (auth.ErrInvalidAuthOpts).
INVALID_AUTH_OPTS = "auth: invalid auth options"

WaitApplied = Callable[[int], Awaitable[None]]


class TokenProvider(Protocol):
    """What the store, the applier and the API need of a provider."""

    kind: str

    def gen_prefix(self) -> str:
        """The random part of a simple token, chosen by the API before proposing ("" for JWT)."""
        ...

    def register(self, token: str, username: str) -> None:
        """Apply of an Authenticate: a simple token becomes valid on this member."""
        ...

    def assign(self, username: str, revision: int, simple_token: str) -> str:
        """The token the client gets once its Authenticate entry is applied here."""
        ...

    async def info(self, token: str, revision: int) -> AuthInfo | None:
        """Who ``token`` stands for (``revision``: the store's now), or None if it is invalid."""
        ...

    def invalidate_user(self, username: str) -> None: ...

    def set_enabled(self, on: bool) -> None: ...


@dataclass(slots=True)
class _Entry:
    username: str
    deadline: float


class SimpleTokens:
    """``--auth-token simple`` (see the module docstring)."""

    kind = "simple"

    def __init__(
        self,
        ttl: float = DEFAULT_TTL,
        *,
        applied_index: Callable[[], int] = lambda: 0,
        wait_applied: WaitApplied | None = None,
        wait_timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl if ttl > 0 else DEFAULT_TTL
        self.applied_index = applied_index
        self.wait_applied = wait_applied
        self.wait_timeout = wait_timeout
        self._clock = clock
        self._tokens: dict[str, _Entry] = {}
        self._enabled = False
        self._next_sweep = 0.0

    def gen_prefix(self) -> str:
        return "".join(secrets.choice(SIMPLE_TOKEN_LETTERS) for _ in range(SIMPLE_TOKEN_LENGTH))

    def register(self, token: str, username: str) -> None:
        if not self._enabled:
            return  # etcd's assignSimpleTokenToUser without a TTL keeper: dropped
        now = self._clock()
        self._tokens[token] = _Entry(username, now + self.ttl)
        self._sweep(now)

    def assign(self, username: str, revision: int, simple_token: str) -> str:
        return simple_token

    async def info(self, token: str, revision: int) -> AuthInfo | None:
        entry = self._lookup(token)
        if entry is None:
            index = _token_index(token)
            if index is None or index <= self.applied_index() or self.wait_applied is None:
                return None
            # Issued by another member at an index this one has not applied yet.
            try:
                await asyncio.wait_for(self.wait_applied(index), self.wait_timeout)
            except TimeoutError:
                return None
            entry = self._lookup(token)
            if entry is None:
                return None
        return AuthInfo(entry.username, revision)

    def _lookup(self, token: str) -> _Entry | None:
        entry = self._tokens.get(token)
        if entry is None:
            return None
        now = self._clock()
        if now > entry.deadline:
            del self._tokens[token]
            log.info("auth: deleting token %s for user %s", token, entry.username)
            return None
        entry.deadline = now + self.ttl  # etcd's resetSimpleToken: every use extends it
        return entry

    def _sweep(self, now: float) -> None:
        """Forget expired tokens now and then (etcd's TTL keeper ticks every second)."""
        if now < self._next_sweep:
            return
        self._next_sweep = now + 1.0
        for token in [t for t, e in self._tokens.items() if now > e.deadline]:
            del self._tokens[token]

    def invalidate_user(self, username: str) -> None:
        for token in [t for t, e in self._tokens.items() if e.username == username]:
            del self._tokens[token]

    def set_enabled(self, on: bool) -> None:
        self._enabled = on
        if not on:
            self._tokens.clear()  # etcd's disable(): every token dies

    def __len__(self) -> int:
        return len(self._tokens)


def _token_index(token: str) -> int | None:
    parts = token.split(".")
    if len(parts) != 2:
        return None
    try:
        return int(parts[1])
    except ValueError:
        return None


class NoTokens:
    """``--auth-token ''``: etcd's nop provider (no token is ever valid or issued)."""

    kind = ""

    def gen_prefix(self) -> str:
        return ""

    def register(self, token: str, username: str) -> None:
        pass

    def assign(self, username: str, revision: int, simple_token: str) -> str:
        raise AuthFailedError()

    async def info(self, token: str, revision: int) -> AuthInfo | None:
        return None

    def invalidate_user(self, username: str) -> None:
        pass

    def set_enabled(self, on: bool) -> None:
        pass


# -- --auth-token -----------------------------------------------------------------------------


def parse_auth_token(
    spec: str, ttl: float = DEFAULT_TTL, *, read_file: Callable[[str], bytes] | None = None
) -> TokenProvider:
    """The provider ``--auth-token`` names (``--auth-token-ttl`` for simple tokens); ConfigError
    with etcd's words if the spec is malformed or a key cannot be loaded."""
    kind, opts = _decompose(spec)
    if kind == "simple":
        log.warning("auth: simple token is not cryptographically signed")
        return SimpleTokens(ttl)
    if kind == "jwt":
        # Imported only here: PyJWT and cryptography's key types cost every member about
        # 10 MiB of memory, and most members never use JWTs.
        from minietcd.server.auth.jwt_tokens import jwt_provider

        return jwt_provider(opts, read_file or _read_file)
    if kind == "":
        return NoTokens()
    log.error("auth: unknown token type: %s", kind)
    raise ConfigError(INVALID_AUTH_OPTS)


def _decompose(spec: str) -> tuple[str, dict[str, str]]:
    """etcd's decomposeOpts: ``type,key=value,...`` with no duplicate keys."""
    parts = spec.split(",")
    opts: dict[str, str] = {}
    for item in parts[1:]:
        pair = item.split("=")
        if len(pair) != 2 or pair[0] in opts:
            log.error("auth: invalid token specific option: %s", spec)
            raise ConfigError(INVALID_AUTH_OPTS)
        opts[pair[0]] = pair[1]
    return parts[0], opts


def _read_file(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()
