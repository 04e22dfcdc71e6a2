"""Auth tokens (server/auth/tokens.py): simple tokens and JWTs as etcd issues and checks them,
and ``--auth-token`` parsing with etcd's errors."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from minietcd.errors import AuthVerifyOnlyError, ConfigError
from minietcd.server.auth.info import AuthInfo
from minietcd.server.auth.jwt_tokens import JWTTokens
from minietcd.server.auth.tokens import INVALID_AUTH_OPTS, SimpleTokens, parse_auth_token


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_simple_tokens_expire_unless_used() -> None:
    clock = Clock()
    t = SimpleTokens(ttl=10, clock=clock)
    t.set_enabled(True)
    prefix = t.gen_prefix()
    assert len(prefix) == 16 and prefix.isalpha()
    t.register(f"{prefix}.7", "alice")
    clock.now += 9
    assert await t.info(f"{prefix}.7", 3) == AuthInfo("alice", 3)  # using it extends it
    clock.now += 9
    assert await t.info(f"{prefix}.7", 3) == AuthInfo("alice", 3)
    clock.now += 11
    assert await t.info(f"{prefix}.7", 3) is None
    assert len(t) == 0


async def test_simple_tokens_die_with_their_user_and_with_auth() -> None:
    t = SimpleTokens()
    t.register("a.1", "alice")  # auth off: no token is kept
    assert await t.info("a.1", 1) is None
    t.set_enabled(True)
    t.register("a.1", "alice")
    t.register("b.2", "bob")
    t.invalidate_user("alice")
    assert await t.info("a.1", 1) is None
    assert await t.info("b.2", 1) == AuthInfo("bob", 1)
    t.set_enabled(False)
    assert await t.info("b.2", 1) is None


@pytest.mark.parametrize("token", ["", "nodot", "a.b.c", "abc.notanumber", "abc.5"])
async def test_bad_simple_tokens_are_invalid(token: str) -> None:
    t = SimpleTokens(applied_index=lambda: 10)
    t.set_enabled(True)
    assert await t.info(token, 1) is None


async def test_a_token_from_ahead_waits_for_its_index() -> None:
    """A token another member issued at an index this one has not applied yet is checked once
    it has (etcd's indexWaiter)."""
    t = SimpleTokens(applied_index=lambda: 5, wait_timeout=1.0)
    t.set_enabled(True)
    applied = asyncio.Event()

    async def wait_applied(index: int) -> None:
        if index == 9:
            await applied.wait()
        else:
            await asyncio.Event().wait()  # an index never applied

    t.wait_applied = wait_applied
    task = asyncio.create_task(t.info("abc.9", 2))
    await asyncio.sleep(0)
    t.register("abc.9", "alice")  # the member applies the Authenticate entry
    applied.set()
    assert await task == AuthInfo("alice", 2)
    t.wait_timeout = 0.01
    assert await t.info("abc.10", 2) is None  # never applied in time: invalid


def _rsa() -> tuple[bytes, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    priv = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    pub = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return priv, pub


def _ec() -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    priv = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    pub = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return priv, pub


def _provider(tmp_path: Path, method: str, priv: bytes, pub: bytes, extra: str = "") -> JWTTokens:
    (tmp_path / "k").write_bytes(priv)
    (tmp_path / "k.pub").write_bytes(pub)
    spec = f"jwt,priv-key={tmp_path / 'k'},pub-key={tmp_path / 'k.pub'},sign-method={method}{extra}"
    t = parse_auth_token(spec)
    assert isinstance(t, JWTTokens)
    return t


@pytest.mark.parametrize("method", ["RS256", "PS384", "ES256", "HS512"])
async def test_jwt_round_trip(tmp_path: Path, method: str) -> None:
    hmac_key = b"s" * 64  # at least the hash's size, as RFC 7518 asks of HMAC keys
    priv, pub = _ec() if method.startswith("ES") else _rsa() if method[0] in "RP" else (hmac_key, b"")
    t = _provider(tmp_path, method, priv, pub, ",ttl=2m")
    token = t.assign("alice", 7, "")
    assert await t.info(token, 99) == AuthInfo("alice", 7)  # the revision is the token's
    claims = jwt.decode(token, options={"verify_signature": False})
    assert list(claims) == ["exp", "revision", "username"]  # Go's sorted map keys
    assert 110 <= claims["exp"] - time.time() <= 120


async def test_bad_jwts_are_invalid(tmp_path: Path) -> None:
    priv, pub = _rsa()
    t = _provider(tmp_path, "RS256", priv, pub)
    other_priv, _ = _rsa()
    wrong_key = jwt.encode({"username": "root", "revision": 1, "exp": time.time() + 60}, other_priv, "RS256")
    expired = jwt.encode({"username": "root", "revision": 1, "exp": time.time() - 5}, priv, "RS256")
    other_alg = jwt.encode({"username": "root", "revision": 1}, priv, "RS512")
    no_user = jwt.encode({"revision": 1, "exp": time.time() + 60}, priv, "RS256")
    none_alg = jwt.encode({"username": "root", "revision": 1}, "", "none")
    for token in (wrong_key, expired, other_alg, no_user, none_alg, "garbage", "a.b.c", ""):
        assert await t.info(token, 1) is None, token


async def test_a_public_key_alone_verifies_and_never_signs(tmp_path: Path) -> None:
    priv, pub = _rsa()
    signer = _provider(tmp_path, "RS256", priv, pub)
    (tmp_path / "only.pub").write_bytes(pub)
    t = parse_auth_token(f"jwt,pub-key={tmp_path / 'only.pub'},sign-method=RS256")
    assert await t.info(signer.assign("bob", 3, ""), 1) == AuthInfo("bob", 3)
    with pytest.raises(AuthVerifyOnlyError):
        t.assign("bob", 3, "")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("bogus", INVALID_AUTH_OPTS),
        ("simple,x", INVALID_AUTH_OPTS),
        ("jwt,sign-method=RS256,sign-method=RS256", INVALID_AUTH_OPTS),
        ("jwt,sign-method=XX256", INVALID_AUTH_OPTS),
        ("jwt,sign-method=EdDSA", INVALID_AUTH_OPTS),
        ("jwt,sign-method=RS256,priv-key=/no/such/file", INVALID_AUTH_OPTS),
        ("jwt,sign-method=RS256,ttl=ten", INVALID_AUTH_OPTS),
        ("jwt,sign-method=RS256", "auth: missing key data"),
        ("jwt,sign-method=HS256", "auth: missing key data"),
    ],
)
def test_bad_auth_token_specs_fail_with_etcds_words(spec: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_auth_token(spec)
    assert str(info.value) == message


def test_keys_of_the_wrong_kind(tmp_path: Path) -> None:
    _, ec_pub = _ec()
    (tmp_path / "ec.pub").write_bytes(ec_pub)
    (tmp_path / "junk").write_bytes(b"not a key")
    with pytest.raises(ConfigError, match="Key is not a valid RSA public key"):
        parse_auth_token(f"jwt,pub-key={tmp_path / 'ec.pub'},sign-method=RS256")
    with pytest.raises(ConfigError, match="Key must be PEM encoded"):
        parse_auth_token(f"jwt,priv-key={tmp_path / 'junk'},sign-method=ES256")


def test_simple_and_nop() -> None:
    assert isinstance(parse_auth_token("simple", 60), SimpleTokens)
    assert parse_auth_token("").kind == ""
