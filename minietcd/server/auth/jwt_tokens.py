"""``--auth-token jwt,...``: etcd's JWT token provider (``auth/jwt.go``, ``auth/options.go``);
see :mod:`minietcd.server.auth.tokens` for what the tokens carry. A module of its own so that
PyJWT and cryptography are loaded only by members that use JWTs."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from minietcd.errors import AuthVerifyOnlyError, ConfigError
from minietcd.golang import parse_duration
from minietcd.server.auth.info import AuthInfo
from minietcd.server.auth.tokens import DEFAULT_TTL, INVALID_AUTH_OPTS, log

#: The sign methods etcd 3.4's jwt provider can key (options.go's Key()).
JWT_METHODS = {
    **{f"HS{n}": "hmac" for n in (256, 384, 512)},
    **{f"RS{n}": "rsa" for n in (256, 384, 512)},
    **{f"PS{n}": "rsa" for n in (256, 384, 512)},
    **{f"ES{n}": "ec" for n in (256, 384, 512)},
}
_KNOWN_JWT_OPTIONS = ("sign-method", "pub-key", "priv-key", "ttl")


class JWTTokens:
    """``--auth-token jwt,...`` (see the module docstring)."""

    kind = "jwt"

    def __init__(self, method: str, signing_key: Any, verify_key: Any, ttl: float) -> None:
        self.method = method
        self._signing_key = signing_key  # None: verify only
        self._verify_key = verify_key
        self.ttl = ttl

    def gen_prefix(self) -> str:
        return ""

    def register(self, token: str, username: str) -> None:
        pass

    def assign(self, username: str, revision: int, simple_token: str) -> str:
        if self._signing_key is None:
            raise AuthVerifyOnlyError()
        # Go's MapClaims marshal with sorted keys; the same order here gives the same bytes.
        claims = {"exp": int(time.time() + self.ttl), "revision": revision, "username": username}
        return jwt.encode(claims, self._signing_key, algorithm=self.method)

    async def info(self, token: str, revision: int) -> AuthInfo | None:
        try:
            claims = jwt.decode(token, self._verify_key, algorithms=[self.method])
        except jwt.PyJWTError as e:
            log.warning("auth: failed to parse jwt token: %s", e)
            return None
        username, rev = claims.get("username"), claims.get("revision")
        if not isinstance(username, str) or not isinstance(rev, int | float) or isinstance(rev, bool):
            log.warning("auth: invalid jwt token: %s", token)
            return None
        return AuthInfo(username, int(rev))

    def invalidate_user(self, username: str) -> None:
        pass  # a JWT outlives nothing: its revision is old once the user changed

    def set_enabled(self, on: bool) -> None:
        pass


def jwt_provider(opts: dict[str, str], read_file: Callable[[str], bytes]) -> JWTTokens:
    try:
        ttl = parse_duration(opts["ttl"]) if opts.get("ttl") else DEFAULT_TTL
        pub = read_file(opts["pub-key"]) if opts.get("pub-key") else b""
        priv = read_file(opts["priv-key"]) if opts.get("priv-key") else b""
    except (ValueError, OSError) as e:
        log.error("auth: problem loading JWT options: %s", e)
        raise ConfigError(INVALID_AUTH_OPTS) from None
    method = opts.get("sign-method", "")
    family = JWT_METHODS.get(method)
    if family is None:
        log.error("auth: problem loading JWT options: auth: invalid auth signature method")
        raise ConfigError(INVALID_AUTH_OPTS)
    unknown = [k for k in opts if k not in _KNOWN_JWT_OPTIONS]
    if unknown:
        log.warning("auth: unknown JWT options: %s", unknown)
    if family == "hmac":
        if not priv:
            raise ConfigError("auth: missing key data")
        return JWTTokens(method, priv, priv, ttl)
    private = _load_private(priv, family) if priv else None
    public = _load_public(pub, family) if pub else None
    if private is None:
        if public is None:
            raise ConfigError("auth: missing key data")
        return JWTTokens(method, None, public, ttl)  # verify only
    # As etcd: with a private key, tokens are verified with its own public half.
    return JWTTokens(method, private, private.public_key(), ttl)


_PRIVATE_TYPES = {"rsa": rsa.RSAPrivateKey, "ec": ec.EllipticCurvePrivateKey}
_PUBLIC_TYPES = {"rsa": rsa.RSAPublicKey, "ec": ec.EllipticCurvePublicKey}
_KIND_NAME = {"rsa": "RSA", "ec": "ECDSA"}


def _load_private(data: bytes, family: str) -> Any:
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise ConfigError("Invalid Key: Key must be PEM encoded PKCS1 or PKCS8 private key") from None
    if not isinstance(key, _PRIVATE_TYPES[family]):
        raise ConfigError(f"Key is not a valid {_KIND_NAME[family]} private key")
    return key


def _load_public(data: bytes, family: str) -> Any:
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError):
        raise ConfigError("Invalid Key: Key must be PEM encoded PKCS1 or PKCS8 private key") from None
    if not isinstance(key, _PUBLIC_TYPES[family]):
        raise ConfigError(f"Key is not a valid {_KIND_NAME[family]} public key")
    return key
