"""Endpoints, channels, balancing, failover and the retry rule (private).

One gRPC channel per endpoint. Each call starts at the next endpoint in turn (round-robin), and
endpoints that failed in the last second are tried last. Before a request is sent, its endpoint's
channel must be connected; an endpoint that cannot be connected to within ``dial_timeout`` is
skipped, which is always safe: nothing was sent.

What happens when a call fails after it was sent is the one rule that matters for correctness:

- **Reads** (and other idempotent calls) are retried on the next endpoint on ``UNAVAILABLE``
  (member down, no leader, request timed out, connection reset), until the call's deadline.
- **Writes** are retried only when gRPC failed them before they reached any connection
  (``never_sent``). Any other transport failure, ``UNAVAILABLE`` status (even "etcdserver: no
  leader") or deadline after sending raises :class:`OutcomeUnknownError`: the write may have been
  applied, and retrying it blindly could apply it twice (Jepsen's etcd 3.4.3 analysis).
- Every other status is the server's definite answer and is raised at once (``errors.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

import grpc

from minietcd.api.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from minietcd.client.errors import (
    ClientClosedError,
    DeadlineExceededError,
    EndpointsUnavailableError,
    EtcdServerError,
    OutcomeUnknownError,
    error_message,
    from_rpc_error,
    go_code_name,
    is_etcd_message,
    never_sent,
)
from minietcd.errors import (
    AuthNotEnabledError,
    AuthOldRevisionError,
    InvalidAuthTokenError,
    UserEmptyError,
)

T = TypeVar("T")

DEFAULT_PORT = 2379
#: How long an endpoint that failed is tried after the others (seconds).
DOWN_PENALTY = 1.0
#: etcd's metadata asking a member to refuse (watch) requests while it has no leader.
REQUIRE_LEADER = ("hasleader", "true")
#: Refusals that mean "log in again" (etcd's shouldRefreshToken): the token expired or died
#: with a restart, or was minted before the permissions changed. They come before anything is
#: applied, so the call is safe to retry with a new token.
_REFRESH_TOKEN = (InvalidAuthTokenError, AuthOldRevisionError, UserEmptyError)
#: How etcd's auth store words the refusals it sends without a gRPC code of their own.
AUTH_STORE_PREFIX = "auth: "


@dataclass(frozen=True)
class Endpoint:
    """One endpoint as given (``url``) and where it points.

    Accepted forms: ``host:port``, ``http://host:port``, ``https://host:port`` (TLS),
    ``[::1]:2379``; the port defaults to 2379. Unix sockets as etcd's clientv3 reads them
    (``ParseEndpoint``): ``unix://localhost:2379`` is the socket file ``localhost:2379`` in the
    working directory (where an etcd started with ``--listen-client-urls
    unix://localhost:2379`` listens), ``unix:///path/to.sock`` an absolute path, ``unixs://``
    the same over TLS; gRPC's own ``unix:path`` is taken as is.
    """

    url: str
    target: str
    secure: bool

    @classmethod
    def parse(cls, url: str, tls_default: bool = False) -> Endpoint:
        text = url.strip()
        for scheme in ("unix://", "unixs://"):
            if text.lower().startswith(scheme):
                return cls(url, "unix:" + text[len(scheme) :], scheme == "unixs://")
        if text.startswith("unix:"):
            return cls(url, text, False)
        secure = tls_default
        if "://" in text:
            scheme = text.split("://", 1)[0].lower()
            if scheme not in ("http", "https"):
                raise ValueError(f"endpoint {url!r}: unsupported scheme {scheme!r}")
            secure = scheme == "https"
        else:
            text = "//" + text
        parts = urlsplit(text if "://" in text else "http:" + text)
        host = parts.hostname
        if not host:
            raise ValueError(f"endpoint {url!r}: no host")
        try:
            port = parts.port or DEFAULT_PORT
        except ValueError as e:
            raise ValueError(f"endpoint {url!r}: {e}") from None
        host_part = f"[{host}]" if ":" in host else host
        return cls(url, f"{host_part}:{port}", secure)


@dataclass(frozen=True)
class TLSConfig:
    """TLS options: ``ca_file`` verifies servers, ``cert_file`` + ``key_file`` identify the
    client, ``server_name`` overrides the name checked in the server's certificate. Any of them
    (or ``force``) turns TLS on for endpoints given without a scheme."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    server_name: str | None = None
    #: Use TLS (with the system's CAs unless ``ca_file``) even without any of the above.
    force: bool = False

    @property
    def enabled(self) -> bool:
        return self.force or any((self.ca_file, self.cert_file, self.key_file, self.server_name))

    def credentials(self) -> grpc.ChannelCredentials:
        def read(path: str | None) -> bytes | None:
            if path is None:
                return None
            with open(path, "rb") as f:
                return f.read()

        return grpc.ssl_channel_credentials(
            root_certificates=read(self.ca_file),
            private_key=read(self.key_file),
            certificate_chain=read(self.cert_file),
        )


@dataclass
class _Member:
    """Connection state of one endpoint."""

    endpoint: Endpoint
    channel: grpc.aio.Channel | None = None
    down_until: float = 0.0
    stubs: dict[type, Any] = field(default_factory=dict)

    def mark_down(self) -> None:
        self.down_until = time.monotonic() + DOWN_PENALTY

    def mark_up(self) -> None:
        self.down_until = 0.0


class _Unreachable(Exception):
    def __init__(self, endpoint: Endpoint, detail: str) -> None:
        super().__init__(f"{endpoint.url}: {detail}")


class Connection:
    """The endpoints of one :class:`~minietcd.client.Client` and the retry loop (private)."""

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        timeout: float | None,
        dial_timeout: float,
        tls: TLSConfig,
        keepalive_time: float,
        keepalive_timeout: float,
        username: str | None,
        password: str | None,
        max_message_bytes: int,
    ) -> None:
        if isinstance(endpoints, str):
            endpoints = [endpoints]
        if not endpoints:
            raise ValueError("at least one endpoint is required")
        self.timeout = timeout
        self.dial_timeout = dial_timeout
        self.tls = tls
        self._options: list[tuple[str, Any]] = [
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.min_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 1000),
            ("grpc.keepalive_time_ms", int(keepalive_time * 1000)),
            ("grpc.keepalive_timeout_ms", int(keepalive_timeout * 1000)),
            ("grpc.keepalive_permit_without_calls", 0),
            ("grpc.http2.max_pings_without_data", 0),
        ]
        if tls.server_name:
            self._options.append(("grpc.ssl_target_name_override", tls.server_name))
        self.members = [_Member(Endpoint.parse(e, tls.enabled)) for e in endpoints]
        self._by_url = {m.endpoint.url: m for m in self.members}
        self._next = 0
        self._closed = False
        self._username = username
        self._password = password
        self._token: str | None = None
        self._auth_lock = asyncio.Lock()

    # ---------------------------------------------------------------------------- channels

    @property
    def endpoints(self) -> list[str]:
        return [m.endpoint.url for m in self.members]

    def member_for(self, endpoint: str) -> _Member:
        """The member for ``endpoint`` (one of the client's, or a new one for this call)."""
        m = self._by_url.get(endpoint)
        if m is None:
            m = _Member(Endpoint.parse(endpoint, self.tls.enabled))
            self._by_url[endpoint] = m
        return m

    def _channel(self, m: _Member) -> grpc.aio.Channel:
        if self._closed:
            raise ClientClosedError("the client is closed")
        if m.channel is None:
            if m.endpoint.secure:
                m.channel = grpc.aio.secure_channel(m.endpoint.target, self.tls.credentials(), self._options)
            else:
                m.channel = grpc.aio.insecure_channel(m.endpoint.target, self._options)
            m.stubs.clear()
        return m.channel

    def stub(self, m: _Member, cls: type[T]) -> T:
        self._channel(m)
        s = m.stubs.get(cls)
        if s is None:
            s = m.stubs[cls] = cls(m.channel)  # type: ignore[call-arg]  # cls is a generated stub class: it takes the channel
        return cast(T, s)

    async def ready(self, m: _Member, remaining: float | None) -> None:
        """Wait until ``m``'s channel is connected; raise :class:`_Unreachable` after
        ``dial_timeout`` (or ``remaining``, if shorter)."""
        ch = self._channel(m)
        state = ch.get_state(try_to_connect=True)
        if state == grpc.ChannelConnectivity.READY:
            return
        wait = self.dial_timeout if remaining is None else min(self.dial_timeout, remaining)
        until = time.monotonic() + wait
        while True:
            if state == grpc.ChannelConnectivity.READY:
                return
            if state == grpc.ChannelConnectivity.TRANSIENT_FAILURE:
                # The last connection attempt failed (refused, unreachable): move on at once;
                # gRPC keeps retrying in the background with a short back-off.
                raise _Unreachable(m.endpoint, "connection failed")
            if state == grpc.ChannelConnectivity.SHUTDOWN:
                raise ClientClosedError("the client is closed")
            left = until - time.monotonic()
            if left <= 0:
                raise _Unreachable(m.endpoint, f"cannot connect within {wait:.3g}s")
            try:
                await asyncio.wait_for(ch.wait_for_state_change(state), left)
            except TimeoutError:
                raise _Unreachable(m.endpoint, f"cannot connect within {wait:.3g}s") from None
            state = ch.get_state(try_to_connect=True)

    def order(self, avoid: _Member | None = None) -> list[_Member]:
        """Members in round-robin order from the next one; recently failed ones (and ``avoid``)
        last."""
        n = len(self.members)
        start = self._next % n
        self._next += 1
        rotated = self.members[start:] + self.members[:start]
        now = time.monotonic()
        return sorted(rotated, key=lambda m: (m is avoid, m.down_until > now))

    def deadline(self, timeout: float | None) -> float | None:
        t = self.timeout if timeout is None else timeout
        if t is None or math.isinf(t):
            return None
        return time.monotonic() + t

    async def close(self) -> None:
        self._closed = True
        for m in self._by_url.values():
            if m.channel is not None:
                ch, m.channel = m.channel, None
                with contextlib.suppress(Exception):
                    await ch.close()

    @property
    def closed(self) -> bool:
        return self._closed

    # ----------------------------------------------------------------------------- auth

    @property
    def logs_in(self) -> bool:
        """A user and password were given (etcd's client logs in only with both)."""
        return bool(self._username) and bool(self._password)

    async def metadata(self, extra: Sequence[tuple[str, str]] = ()) -> tuple[tuple[str, str], ...]:
        md = list(extra)
        if self.logs_in:
            if self._token is None:
                await self.authenticate()
            if self._token:
                md.append(("token", self._token))
        return tuple(md)

    async def authenticate(self, timeout: float | None = None) -> None:
        """Log in now (if not logged in yet). Auth being off on the server is no error: calls
        then go without a token, as etcd's client sends them."""
        async with self._auth_lock:
            if self._token is not None:
                return
            req = rpc_pb2.AuthenticateRequest(name=self._username or "", password=self._password or "")
            try:
                resp = await self.unary(
                    rpc_pb2_grpc.AuthStub, "Authenticate", req, idempotent=True, authenticate=False,
                    timeout=timeout,
                )  # fmt: skip
            except AuthNotEnabledError:
                self._token = ""
                return
            self._token = resp.token

    # ------------------------------------------------------------------------------ calls

    async def unary(
        self,
        stub_cls: type,
        method: str,
        request: Any,
        *,
        idempotent: bool,
        timeout: float | None = None,
        endpoint: str | None = None,
        metadata: Sequence[tuple[str, str]] = (),
        authenticate: bool = True,
    ) -> Any:
        """Send one unary request with the retry rule of this module; return the response.

        ``endpoint`` pins the call to one endpoint (maintenance calls about a member): it is
        then retried on that endpoint only. ``timeout`` (seconds) defaults to the client's;
        ``math.inf`` means no deadline.
        """

        async def attempt(m: _Member, remaining: float | None) -> Any:
            md = await self.metadata(metadata) if authenticate else tuple(metadata)
            fn: Callable[..., Awaitable[Any]] = getattr(self.stub(m, stub_cls), method)
            return await fn(request, timeout=remaining, metadata=md)

        return await self.run(attempt, idempotent=idempotent, timeout=timeout, endpoint=endpoint)

    async def run(
        self,
        attempt: Callable[[_Member, float | None], Awaitable[T]],
        *,
        idempotent: bool,
        timeout: float | None = None,
        endpoint: str | None = None,
    ) -> T:
        """Call ``attempt(member, remaining_seconds)`` on connected members until one answers,
        following the retry rule of this module."""
        deadline = self.deadline(timeout)
        pinned = [self.member_for(endpoint)] if endpoint is not None else None
        last: BaseException | None = None
        sent = False
        reauthed = False
        rounds = 0
        while True:
            for m in pinned or self.order():
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise _deadline_error(last, sent)
                try:
                    await self.ready(m, remaining)
                except _Unreachable as e:
                    last = e
                    m.mark_down()
                    continue
                remaining = None if deadline is None else max(deadline - time.monotonic(), 0.001)
                try:
                    result = await attempt(m, remaining)
                except grpc.aio.AioRpcError as e:
                    if never_sent(e):
                        last = e
                        m.mark_down()
                        continue
                    if not reauthed and self.logs_in and isinstance(from_rpc_error(e), _REFRESH_TOKEN):
                        # Refused by the auth layer before anything was applied: safe to retry.
                        self._token = None
                        reauthed = True
                        last = e
                        continue
                    sent = True
                    if not idempotent and _outcome_unknown(e):
                        raise _unknown_outcome(e, m) from e
                    if idempotent and _retryable_read(e):
                        last = e
                        m.mark_down()
                        continue
                    raise from_rpc_error(e) from e
                m.mark_up()
                return result
            rounds += 1
            # A whole round failed: back off a little (bounded by the deadline) and go again.
            pause = min(0.05 * (2 ** min(rounds, 5)), 1.0)
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise _deadline_error(last, sent)
                pause = min(pause, left)
            await asyncio.sleep(pause)

    async def open_stream(
        self,
        open_call: Callable[[_Member], T],
        *,
        avoid: _Member | None = None,
        timeout: float | None = None,
        endpoint: str | None = None,
    ) -> tuple[_Member, T]:
        """Connect to a member (``avoid`` last) and open a stream on it with ``open_call``. Only
        connecting is retried here; the caller handles failures of the stream itself."""
        deadline = self.deadline(timeout)
        last: BaseException | None = None
        rounds = 0
        while True:
            members = [self.member_for(endpoint)] if endpoint is not None else self.order(avoid)
            for m in members:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise _deadline_error(last, False)
                try:
                    await self.ready(m, remaining)
                except _Unreachable as e:
                    last = e
                    m.mark_down()
                    continue
                return m, open_call(m)
            rounds += 1
            pause = min(0.05 * (2 ** min(rounds, 5)), 1.0)
            if deadline is not None:
                pause = min(pause, max(deadline - time.monotonic(), 0))
            await asyncio.sleep(pause)


def _outcome_unknown(e: grpc.aio.AioRpcError) -> bool:
    """After a write was sent, which failures leave its outcome unknown."""
    return e.code() in (
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.ABORTED,
    ) and not (e.code() == grpc.StatusCode.UNKNOWN and is_etcd_message(e.details() or ""))


def _retryable_read(e: grpc.aio.AioRpcError) -> bool:
    """Failures of an idempotent call worth trying on another member (not the auth store's own
    refusals, which etcd sends as UNKNOWN "auth: ...": another member answers the same)."""
    code = e.code()
    if code == grpc.StatusCode.UNAVAILABLE:
        return True
    details = e.details() or ""
    if details.startswith(AUTH_STORE_PREFIX):
        return False
    return code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN) and not is_etcd_message(details)


def _unknown_outcome(e: grpc.aio.AioRpcError, m: _Member) -> OutcomeUnknownError:
    details = e.details() or ""
    if e.code() == grpc.StatusCode.DEADLINE_EXCEEDED and not is_etcd_message(details):
        etcd = "context deadline exceeded"
    elif is_etcd_message(details):
        etcd = details
    else:
        etcd = f"rpc error: code = {go_code_name(e.code())} desc = {details}"
    return OutcomeUnknownError(
        f"{etcd} (outcome unknown: the write reached {m.endpoint.url} and may or may not have been applied)",
        etcd_message=etcd,
        cause=e,
    )


def _deadline_error(last: BaseException | None, sent: bool) -> Exception:
    if not sent and (last is None or isinstance(last, _Unreachable) or _is_never_sent(last)):
        detail = f": {last}" if last is not None else ""
        return EndpointsUnavailableError(
            f"context deadline exceeded (no endpoint reachable{detail})",
            etcd_message="context deadline exceeded",
        )
    if isinstance(last, grpc.aio.AioRpcError):
        return DeadlineExceededError(
            f"context deadline exceeded (last error: {error_message(from_rpc_error(last))})"
        )
    if isinstance(last, EtcdServerError):
        return DeadlineExceededError(f"context deadline exceeded (last error: {last})")
    return DeadlineExceededError("context deadline exceeded")


def _is_never_sent(e: BaseException) -> bool:
    return isinstance(e, grpc.aio.AioRpcError) and never_sent(e)
