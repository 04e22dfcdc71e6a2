"""Bootstrapping a new cluster through an existing one: etcd 3.6's v3 discovery protocol.

Instead of a static ``--initial-cluster``, every member of the new cluster is started with
``--discovery-endpoints`` (client URLs of an existing etcd or minietcd cluster, "the discovery
service") and the same ``--discovery-token``. The operator first writes the expected size::

    etcdctl --endpoints=$DISCOVERY put /_etcd/registry/$TOKEN/_config/size 3

Each member then (server/etcdserver/api/v3discovery/discovery.go in etcd 3.6):

1. reads the size and the registered members, and gives up at once ("discovery: cluster is
   full") if ``size`` other members registered before it;
2. registers itself: key ``/_etcd/registry/<token>/members/<member id in hex>``, value its
   ``--initial-cluster`` entry (``name=peerURL[,name=peerURL2]``), no lease. The put is guarded
   by a txn (only if the key does not exist yet), so registering again after a crash keeps the
   first registration's create revision, and a different member with the same ID is refused;
3. waits (a watch on the members prefix from the revision after its last read) until ``size``
   members are registered. Members are ordered by the create revision of their key; the first
   ``size`` form the cluster. A member that is not among them fails with "cluster is full";
4. bootstraps exactly as with ``--initial-cluster <those entries>`` and
   ``--initial-cluster-token <discovery token>``: member IDs are derived from each member's
   peer URLs and the discovery token, the same ID this member registered under.

It logs etcd 3.4's discovery lines ("discovery: found self <id> in the cluster", "discovery:
found N peer(s), waiting for M more", "discovery: found N needed peer(s)").

Differences from etcd 3.6: no TLS client certificates or user/password for the discovery
service (https endpoints are verified against the system CAs), no keepalive flags; the watch is
re-armed every :data:`RECHECK_SECONDS` and the registry re-read, which also covers a watch that
a dead connection never ends. Retries (unreachable discovery service) back off exponentially up
to :data:`MAX_BACKOFF_SECONDS` and go on until the member is stopped, as etcd's do.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import posixpath
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

import grpc

from minietcd.api.etcdserverpb import rpc_pb2
from minietcd.api.etcdserverpb import rpc_pb2_grpc as _rpc_grpc_untyped
from minietcd.errors import ConfigError, MinietcdError
from minietcd.server import ids
from minietcd.server.config import Config
from minietcd.server.urls import URL, parse_urls_map, urls_map_string

__all__ = [
    "DISCOVERY_PREFIX",
    "ERR_BAD_SIZE_KEY",
    "ERR_FULL_CLUSTER",
    "ERR_INVALID_URL",
    "ERR_SIZE_NOT_FOUND",
    "DiscoveryError",
    "Registration",
    "Registry",
    "discover",
    "member_key",
    "members_prefix",
    "parse_endpoint",
    "parse_size",
    "prefix_range_end",
    "size_key",
]

# The generated gRPC stubs are untyped; use them through Any.
rpc_pb2_grpc: Any = _rpc_grpc_untyped

log = logging.getLogger("minietcd.server.discovery")

DISCOVERY_PREFIX: Final = "/_etcd/registry"
# etcd's error texts (v3discovery.Err*).
ERR_INVALID_URL: Final = "discovery: invalid peer URL"
ERR_BAD_SIZE_KEY: Final = "discovery: size key is bad"
ERR_SIZE_NOT_FOUND: Final = "discovery: size key not found"
ERR_FULL_CLUSTER: Final = "discovery: cluster is full"
#: How long one watch waits before the registry is read again (a lost event or a silently dead
#: connection then costs at most this long).
RECHECK_SECONDS: Final = 10.0
#: Backoff between attempts to reach the discovery service: 1 s, 2 s, 4 s, ... up to this.
MAX_BACKOFF_SECONDS: Final = 32.0

_T = TypeVar("_T")


class DiscoveryError(MinietcdError):
    """Discovery failed for good (etcdserver.DiscoveryError): the member exits non-zero.

    ``reason`` is etcd's error text (e.g. :data:`ERR_FULL_CLUSTER`), possibly with details.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(f"failed to join discovery cluster ({reason})")
        self.reason = reason


class _Unavailable(Exception):
    """The discovery service could not be reached or answered with a transient error."""


# --- the registry layout -------------------------------------------------------------------------


def _join(*parts: str) -> str:
    """Go's ``path.Join``: join with "/" and clean (the token may not smuggle in ".." safely)."""
    return posixpath.normpath("/".join(p for p in parts if p))


def cluster_prefix(token: str) -> str:
    """``/_etcd/registry/<token>``."""
    return _join(DISCOVERY_PREFIX, token)


def size_key(token: str) -> str:
    """``/_etcd/registry/<token>/_config/size``: the expected cluster size, put by the operator."""
    return _join(cluster_prefix(token), "_config/size")


def members_prefix(token: str) -> str:
    """``/_etcd/registry/<token>/members``: one key per registered member below it."""
    return _join(cluster_prefix(token), "members")


def member_key(token: str, member_id: int) -> str:
    """``/_etcd/registry/<token>/members/<member id>`` (the ID as etcd prints it: hex)."""
    return _join(members_prefix(token), ids.format_id(member_id))


def prefix_range_end(prefix: bytes) -> bytes:
    """etcd's ``GetPrefixRangeEnd``: the smallest key after every key starting with ``prefix``."""
    end = bytearray(prefix)
    for i in range(len(end) - 1, -1, -1):
        if end[i] < 0xFF:
            end[i] += 1
            return bytes(end[: i + 1])
    return b"\0"  # all 0xff: to the end of the keyspace


def parse_size(value: bytes) -> int:
    """The size key's value: a positive decimal integer (Go ``strconv.ParseInt(s, 10, 0)``)."""
    text = value.decode("utf-8", "replace")
    digits = text[1:] if text[:1] in ("+", "-") else text
    if not digits or not digits.isascii() or not digits.isdigit():
        raise DiscoveryError(f"{ERR_BAD_SIZE_KEY}: {text!r} is not a positive integer")
    size = int(text)
    if size <= 0 or size > 2**63 - 1:
        raise DiscoveryError(f"{ERR_BAD_SIZE_KEY}: {text!r} is not a positive integer")
    return size


@dataclass(frozen=True, slots=True)
class Registration:
    """One registered member: its key, its ``name=peerURL,...`` value, its key's create revision."""

    key: str
    value: str
    create_revision: int

    @property
    def member_id(self) -> str:
        """The member ID part of the key (hex), as etcd's logs show it."""
        return posixpath.basename(self.key)


@dataclass(slots=True)
class Registry:
    """The members registered under one token, ordered by create revision (registration order).

    :meth:`add` applies etcd's checks (``clusterInfo.add``) and says why it skipped an entry.
    """

    token: str
    members: list[Registration] = field(default_factory=list)

    @classmethod
    def from_kvs(cls, token: str, kvs: Iterable[tuple[bytes, bytes, int]]) -> tuple[Registry, list[str]]:
        """A registry from ``(key, value, create_revision)`` triples (a Range response); also
        the warnings for the entries that were skipped."""
        reg = cls(token)
        warnings = []
        for key, value, rev in kvs:
            k = key.decode("utf-8", "replace").strip()
            v = value.decode("utf-8", "replace").strip()
            err = reg.add(k, v, rev)
            if err is not None:
                warnings.append(f"discovery: {err} (key {k!r}, value {v!r})")
        return reg, warnings

    def __len__(self) -> int:
        return len(self.members)

    def add(self, key: str, value: str, create_revision: int) -> str | None:
        """Record a registration; returns why it was not recorded, or None."""
        if not key.startswith(members_prefix(self.token) + "/"):
            return "invalid peer registry key"
        if "=" not in value:
            # It must be in the --initial-cluster format "member1=http://127.0.0.1:2380".
            return "invalid peer info returned from discovery service"
        if any(m.key == key for m in self.members):
            return "found duplicate peer from discovery service"
        self.members.append(Registration(key, value, create_revision))
        # Registrations racing past the size are ordered by their create revision: the first
        # `size` win, on every member alike.
        self.members.sort(key=lambda m: m.create_revision)
        return None

    def position(self, key: str) -> int | None:
        """The 0-based registration order of ``key``, or None if it is not registered."""
        for i, m in enumerate(self.members):
            if m.key == key:
                return i
        return None

    def is_full_for(self, key: str, size: int) -> bool:
        """True if ``size`` members registered before ``key`` (registered or not): the member
        with that key cannot be part of the cluster (etcd's checkCluster)."""
        for idx, m in enumerate(self.members):
            if m.key == key:
                return False
            if idx >= size - 1:
                return True
        return False

    def winners(self, size: int) -> list[Registration]:
        """The first ``size`` registrations: the members of the new cluster."""
        return self.members[:size]

    def initial_cluster(self, size: int) -> str:
        """The ``--initial-cluster`` string of the first ``size`` registrations (getInitClusterStr)."""
        return ",".join(m.value for m in self.winners(size))

    def urls_map(self, size: int) -> dict[str, list[URL]]:
        """:meth:`initial_cluster` parsed; :class:`DiscoveryError` if it is not a valid member
        list (bad URL, a name registered twice, a peer URL used twice)."""
        text = self.initial_cluster(size)
        try:
            urls_map = parse_urls_map(text)
        except ConfigError as e:
            raise DiscoveryError(f"{ERR_INVALID_URL}: {text!r}: {e}") from None
        names: dict[str, str] = {}
        for m in self.winners(size):
            entry_names = {item.partition("=")[0] for item in m.value.split(",") if item}
            if len(entry_names) != 1:
                raise DiscoveryError(
                    f"discovery: registration {m.member_id} is not one member's entry: {m.value!r}"
                )
            (name,) = entry_names
            if name in names:
                raise DiscoveryError(
                    f"discovery: member name {name!r} is registered by two members "
                    f"({names[name]} and {m.member_id}); every member needs its own --name"
                )
            names[name] = m.member_id
        seen: set[str] = set()
        for urls in urls_map.values():
            for u in urls:
                if str(u) in seen:
                    raise DiscoveryError(f"discovery cluster {urls_map_string(urls_map)} has duplicate url")
                seen.add(str(u))
        return urls_map


def parse_endpoint(endpoint: str) -> tuple[str, bool]:
    """A ``--discovery-endpoints`` item as ``(gRPC target host:port, use TLS)``.

    Accepts ``http://host:port``, ``https://host:port`` and a bare ``host:port`` (as etcd's
    client does); raises :class:`ConfigError` for anything else.
    """
    ep = endpoint.strip()
    scheme, sep, rest = ep.partition("://")
    if not sep:
        scheme, rest = "http", ep
    rest = rest.rstrip("/")
    if scheme not in ("http", "https") or not rest or "/" in rest or ":" not in rest:
        raise ConfigError(
            f"--discovery-endpoints: {endpoint!r} is not a client URL "
            "(http://host:port, https://host:port or host:port)"
        )
    return rest, scheme == "https"


# --- talking to the discovery service -----------------------------------------------------------


class _Client:
    """A gRPC connection to one of the discovery endpoints at a time; fails over in turn."""

    def __init__(self, endpoints: Iterable[str], dial_timeout: float, request_timeout: float) -> None:
        self.targets = [parse_endpoint(e) for e in endpoints]
        if not self.targets:
            raise ConfigError("--discovery-endpoints is empty")
        self.dial_timeout = dial_timeout
        self.request_timeout = request_timeout
        self._next = 0
        self._channel: grpc.aio.Channel | None = None
        self._target = ""

    @property
    def target(self) -> str:
        return self._target or ",".join(t for t, _ in self.targets)

    async def _connect(self) -> grpc.aio.Channel:
        if self._channel is not None:
            return self._channel
        failures = []
        for _ in range(len(self.targets)):
            target, tls = self.targets[self._next]
            self._next = (self._next + 1) % len(self.targets)
            if tls:
                channel = grpc.aio.secure_channel(target, grpc.ssl_channel_credentials())
            else:
                channel = grpc.aio.insecure_channel(target)
            try:
                await asyncio.wait_for(channel.channel_ready(), self.dial_timeout)
            except TimeoutError:
                await channel.close(grace=None)
                failures.append(f"{target}: no connection within {self.dial_timeout:g}s")
                continue
            self._channel, self._target = channel, target
            return channel
        raise _Unavailable("; ".join(failures))

    async def _drop(self) -> None:
        if self._channel is not None:
            channel, self._channel = self._channel, None
            await channel.close(grace=None)

    async def call(self, op: Callable[[grpc.aio.Channel], Awaitable[_T]]) -> _T:
        """Run ``op`` on the current connection; transient failures become :class:`_Unavailable`
        (and the next call tries the next endpoint), others :class:`DiscoveryError`."""
        channel = await self._connect()
        try:
            return await op(channel)
        except grpc.aio.AioRpcError as e:
            if e.code() in (
                grpc.StatusCode.UNAVAILABLE,
                grpc.StatusCode.DEADLINE_EXCEEDED,
                grpc.StatusCode.CANCELLED,
                grpc.StatusCode.UNKNOWN,
                grpc.StatusCode.INTERNAL,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
            ):
                await self._drop()
                raise _Unavailable(f"{self._target}: {e.code().name}: {e.details()}") from None
            raise DiscoveryError(
                f"discovery service at {self._target} refused the request: {e.code().name}: {e.details()}"
            ) from None

    async def range(self, key: bytes, range_end: bytes = b"") -> rpc_pb2.RangeResponse:
        async def op(ch: grpc.aio.Channel) -> rpc_pb2.RangeResponse:
            resp: rpc_pb2.RangeResponse = await rpc_pb2_grpc.KVStub(ch).Range(
                rpc_pb2.RangeRequest(key=key, range_end=range_end), timeout=self.request_timeout
            )
            return resp

        return await self.call(op)

    async def put_if_absent(self, key: bytes, value: bytes) -> bytes | None:
        """Put ``key`` unless it exists; returns None if put, else the value it already has."""
        request = rpc_pb2.TxnRequest(
            compare=[
                rpc_pb2.Compare(
                    result=rpc_pb2.Compare.EQUAL,
                    target=rpc_pb2.Compare.CREATE,
                    key=key,
                    create_revision=0,
                )
            ],
            success=[rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=key, value=value))],
            failure=[rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=key))],
        )

        async def op(ch: grpc.aio.Channel) -> rpc_pb2.TxnResponse:
            stub = rpc_pb2_grpc.KVStub(ch)
            resp: rpc_pb2.TxnResponse = await stub.Txn(request, timeout=self.request_timeout)
            return resp

        resp = await self.call(op)
        if resp.succeeded:
            return None
        kvs = resp.responses[0].response_range.kvs if resp.responses else []
        return bytes(kvs[0].value) if kvs else b""

    async def wait_for_change(self, prefix: bytes, start_revision: int, max_wait: float) -> None:
        """Return once a key under ``prefix`` changes at ``start_revision`` or later, or
        ``max_wait`` seconds have passed; :class:`_Unavailable` if the watch fails or is
        canceled (e.g. compacted)."""

        async def op(ch: grpc.aio.Channel) -> None:
            call = rpc_pb2_grpc.WatchStub(ch).Watch()
            try:
                await call.write(
                    rpc_pb2.WatchRequest(
                        create_request=rpc_pb2.WatchCreateRequest(
                            key=prefix, range_end=prefix_range_end(prefix), start_revision=start_revision
                        )
                    )
                )

                async def first_change() -> None:
                    while True:
                        resp = await call.read()
                        if resp is grpc.aio.EOF:
                            raise _Unavailable(f"{self._target}: the watch stream ended")
                        if resp.events:
                            return
                        if resp.canceled or resp.compact_revision:
                            # Compacted past start_revision, or refused: read again after a
                            # backoff (the next watch starts after the revision then read).
                            why = resp.cancel_reason or f"compacted at {resp.compact_revision}"
                            raise _Unavailable(f"{self._target}: watch canceled: {why}")

                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(first_change(), max_wait)
            finally:
                call.cancel()

        await self.call(op)

    async def close(self) -> None:
        await self._drop()


# --- the protocol --------------------------------------------------------------------------------


@dataclass(slots=True)
class _Discovery:
    client: _Client
    token: str
    self_key: str
    self_value: str
    retries: int = 0
    reported: set[str] = field(default_factory=set)
    last_wait_log: tuple[int, int] | None = None

    async def retrying(self, step: str, fn: Callable[[], Awaitable[_T]]) -> _T:
        """``fn()``, retried with exponential backoff while the service is unreachable."""
        while True:
            try:
                result = await fn()
            except _Unavailable as e:
                self.retries += 1
                backoff = min(2.0 ** (self.retries - 1), MAX_BACKOFF_SECONDS)
                log.warning(
                    "discovery: %s: error connecting to %s (%s), retrying in %gs",
                    step, self.client.target, e, backoff,
                )  # fmt: skip
                await asyncio.sleep(backoff)  # backoff, not synchronisation
                continue
            self.retries = 0
            return result

    async def check(self) -> tuple[int, Registry, int]:
        """(size, registry, revision of the members read); etcd's checkCluster without the
        "full" verdict."""
        size_resp = await self.client.range(size_key(self.token).encode())
        if not size_resp.kvs:
            raise DiscoveryError(
                f"{ERR_SIZE_NOT_FOUND}: put the expected cluster size first, e.g. "
                f"`etcdctl put {size_key(self.token)} 3`"
            )
        size = parse_size(bytes(size_resp.kvs[0].value))
        prefix = (members_prefix(self.token) + "/").encode()
        resp = await self.client.range(prefix, prefix_range_end(prefix))
        reg, warnings = Registry.from_kvs(
            self.token, ((bytes(kv.key), bytes(kv.value), kv.create_revision) for kv in resp.kvs)
        )
        for w in warnings:
            log.warning("%s", w)
        return size, reg, resp.header.revision

    def refuse_if_full(self, size: int, reg: Registry) -> None:
        if not reg.is_full_for(self.self_key, size):
            return
        winners = ", ".join(f"{m.member_id} ({m.value})" for m in reg.winners(size))
        log.error(
            "discovery: cluster is full: the %d member(s) of token %r registered before this one: %s",
            size, self.token, winners,
        )  # fmt: skip
        log.error(
            "discovery: use a new --discovery-token to bootstrap another cluster, or add this member "
            "to the running one with `etcdctl member add` and --initial-cluster-state existing"
        )
        raise DiscoveryError(ERR_FULL_CLUSTER)

    async def register(self) -> None:
        existing = await self.client.put_if_absent(self.self_key.encode(), self.self_value.encode())
        if existing is None:
            log.info("discovery: registered self %s as %s", self.self_key, self.self_value)
            return
        if existing.decode("utf-8", "replace").strip() == self.self_value:
            log.info("discovery: self %s already registered; keeping that registration", self.self_key)
            return
        raise DiscoveryError(
            f"discovery: member {posixpath.basename(self.self_key)} is already registered as "
            f"{existing.decode('utf-8', 'replace')!r}, not {self.self_value!r} (same peer URLs and "
            "token, different name?)"
        )

    def report(self, size: int, reg: Registry) -> None:
        for m in reg.winners(size):
            if m.key in self.reported:
                continue
            self.reported.add(m.key)
            if m.key == self.self_key:
                log.info("discovery: found self %s in the cluster", m.member_id)
            else:
                log.info("discovery: found peer %s in the cluster", m.member_id)

    async def wait_for_peers(self, start_revision: int) -> None:
        prefix = (members_prefix(self.token) + "/").encode()
        await self.client.wait_for_change(prefix, start_revision, RECHECK_SECONDS)

    async def join(self) -> str:
        size, reg, _ = await self.retrying("cluster status check", self.check)
        self.refuse_if_full(size, reg)  # fail fast, before registering
        await self.retrying("register member itself", self.register)
        while True:
            size, reg, rev = await self.retrying("cluster status check", self.check)
            self.refuse_if_full(size, reg)
            self.report(size, reg)
            found = min(len(reg), size)
            if found >= size:
                break
            if self.last_wait_log != (found, size):
                self.last_wait_log = (found, size)
                log.info("discovery: found %d peer(s), waiting for %d more", found, size - found)
            await self.retrying("waiting for peers", functools.partial(self.wait_for_peers, rev + 1))
        log.info("discovery: found %d needed peer(s)", size)
        reg.urls_map(size)  # refuse a member list that cannot be bootstrapped, with a clear error
        return reg.initial_cluster(size)


async def discover(cfg: Config, member_id: int, stop: asyncio.Event | None = None) -> str | None:
    """Register this member with the discovery service and wait for the others; returns the
    ``--initial-cluster`` string of the new cluster, or None if ``stop`` was set first.

    Raises :class:`DiscoveryError` when discovery fails for good (cluster full, size key
    missing or bad, conflicting registration) and :class:`ConfigError` for bad endpoints.
    """
    client = _Client(
        cfg.discovery_endpoints,
        cfg.discovery_dial_timeout.total_seconds(),
        cfg.discovery_request_timeout.total_seconds(),
    )
    d = _Discovery(
        client=client,
        token=cfg.discovery_token,
        self_key=member_key(cfg.discovery_token, member_id),
        self_value=urls_map_string({cfg.name: cfg.initial_advertise_peer_urls}),
    )
    log.info(
        "discovery: bootstrapping through discovery service %s with token %r as member %s",
        ",".join(cfg.discovery_endpoints), cfg.discovery_token, ids.format_id(member_id),
    )  # fmt: skip
    join = asyncio.ensure_future(d.join())
    stopped = asyncio.ensure_future(stop.wait()) if stop is not None else None
    try:
        waiting = {join} if stopped is None else {join, stopped}
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if not join.done():
            log.info("discovery: stopped while waiting for the discovery service")
            return None
        result = join.result()
        log.info("discovery: joined cluster %s", result)
        return result
    finally:
        for task in (join, stopped):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await client.close()
