"""Distributed locks and leader election, built on the client (etcd's ``concurrency`` recipes).

These are client-side recipes with the same keys and rules as etcd's Go client, so a
:class:`Lock` here and ``etcdctl lock`` (or a Go program) exclude each other:

- A :class:`Session` is a lease kept alive in the background. Everything a session creates is
  attached to its lease, so it disappears if the holder dies.
- :class:`Lock`: each contender creates ``<name>/<lease id in hex>``; the key with the lowest
  create revision holds the lock; every other contender waits for the deletion of the key
  created just before its own (no thundering herd).
- :class:`Election`: the same queue; the holder is the leader and its key's value is its
  proclamation. :meth:`Election.observe` follows the leader's value.

Example::

    async with Session(client, ttl=10) as s:
        async with Lock(s, "jobs/nightly"):
            ...  # only one holder at a time, cluster-wide

        e = Election(s, "service/leader")
        await e.campaign("10.0.0.7")   # returns once we are the leader
        await e.proclaim("10.0.0.8")   # change the advertised value
        await e.resign()
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from types import TracebackType
from typing import TYPE_CHECKING

from minietcd.api.etcdserverpb import rpc_pb2
from minietcd.client.errors import (
    ElectionNoLeaderError,
    ElectionNotLeaderError,
    LockLostError,
    SessionExpiredError,
)
from minietcd.client.kv import Compare, Op
from minietcd.client.results import EventType, GetResponse, ResponseHeader

if TYPE_CHECKING:
    from minietcd.client.client import Client
    from minietcd.client.lease import KeepAlive

__all__ = ["DEFAULT_SESSION_TTL", "Election", "Lock", "Session"]

#: etcd's default session TTL in seconds.
DEFAULT_SESSION_TTL = 60


class Session:
    """A lease kept alive in the background; see the module docstring.

    ``async with Session(client, ttl=10) as s`` grants the lease on entry and revokes it on exit.
    Give ``lease_id`` to adopt an existing lease instead of granting one.
    """

    def __init__(self, client: Client, *, ttl: int = DEFAULT_SESSION_TTL, lease_id: int = 0) -> None:
        self.client = client
        self.ttl = ttl if ttl > 0 else DEFAULT_SESSION_TTL
        self._lease_id = lease_id
        self._keep_alive: KeepAlive | None = None

    @property
    def lease_id(self) -> int:
        if not self._lease_id:
            raise RuntimeError("session not started: use `async with Session(...)` or `await start()`")
        return self._lease_id

    async def start(self) -> Session:
        if self._keep_alive is None:
            if not self._lease_id:
                self._lease_id = (await self.client.grant(self.ttl)).id
            self._keep_alive = self.client.keep_alive(self._lease_id)
        return self

    @property
    def done(self) -> bool:
        """True once the lease expired or was revoked (or the session was closed)."""
        return self._keep_alive is not None and self._keep_alive.done

    def require_alive(self) -> int:
        """The session's lease ID; :class:`SessionExpiredError` if the lease is gone."""
        if self.done:
            raise SessionExpiredError(f"session expired: lease {self.lease_id:x} is gone")
        return self.lease_id

    async def wait_done(self) -> None:
        """Return when the session's lease is gone."""
        if self._keep_alive is not None:
            with contextlib.suppress(Exception):
                await self._keep_alive.wait()

    async def orphan(self) -> None:
        """Stop renewing the lease without revoking it (it expires after its TTL)."""
        if self._keep_alive is not None:
            await self._keep_alive.aclose()

    async def close(self) -> None:
        """Stop renewing and revoke the lease, deleting every key the session created."""
        await self.orphan()
        if self._lease_id:
            with contextlib.suppress(Exception):
                await self.client.revoke(self._lease_id, timeout=float(self.ttl))

    async def __aenter__(self) -> Session:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


async def _wait_delete(client: Client, key: bytes, revision: int) -> None:
    """Wait until ``key`` is deleted at or after ``revision``."""
    async with client.watch(key, start_revision=revision) as w:
        async for batch in w:
            if any(ev.type == EventType.DELETE for ev in batch.events):
                return


async def _wait_deletes(client: Client, prefix: bytes, max_create_revision: int) -> ResponseHeader:
    """Wait until every key under ``prefix`` created at or before ``max_create_revision`` is
    gone, one at a time from the newest (each waiter watches only its predecessor)."""
    while True:
        resp = await client.get(
            prefix,
            prefix=True,
            sort_target="create",
            sort_order="descend",
            limit=1,
            max_create_revision=max_create_revision,
        )
        if not resp.kvs:
            return resp.header
        await _wait_delete(client, resp.kvs[0].key, resp.header.revision)


def _first_created(prefix: bytes) -> Op:
    return Op.get(prefix, prefix=True, sort_target="create", sort_order="ascend", limit=1)


class Lock:
    """A distributed mutex named ``name`` held through a :class:`Session` (etcd's Mutex).

    ``async with Lock(session, "name"):`` acquires and releases it. A session holds a given
    lock at most once (acquiring again returns at once).
    """

    def __init__(self, session: Session, name: str | bytes) -> None:
        self.session = session
        self.prefix = (name.encode() if isinstance(name, str) else bytes(name)) + b"/"
        self._key = b""
        self._rev = -1
        self.header: ResponseHeader | None = None

    @property
    def key(self) -> bytes:
        """This holder's key (``<name>/<lease hex>``) once acquire() has started."""
        return self._key

    @property
    def revision(self) -> int:
        """The create revision of this holder's key (its place in the queue)."""
        return self._rev

    def is_owner(self) -> Compare:
        """A compare that holds only while this holder owns the lock: add it to a transaction
        to make a write conditional on still holding the lock."""
        return Compare.create(self._key, "=", self._rev)

    async def acquire(self) -> None:
        """Wait until the lock is ours. If cancelled while waiting, our place in the queue is
        given up."""
        client = self.session.client
        lease = self.session.require_alive()
        self._key = self.prefix + f"{lease:x}".encode()
        resp = await (
            client.txn()
            .if_(Compare.create(self._key, "=", 0))
            .then(Op.put(self._key, b"", lease=lease), _first_created(self.prefix))
            .else_(Op.get(self._key), _first_created(self.prefix))
            .commit()
        )
        self._rev = resp.header.revision
        if not resp.succeeded:
            mine = resp.responses[0]
            assert isinstance(mine, GetResponse)
            self._rev = mine.kvs[0].create_revision
        owner = resp.responses[1]
        assert isinstance(owner, GetResponse)
        if not owner.kvs or owner.kvs[0].create_revision == self._rev:
            self.header = resp.header
            return
        try:
            self.header = await _wait_deletes(client, self.prefix, self._rev - 1)
            check = await client.get(self._key)
            if not check.kvs or check.kvs[0].create_revision != self._rev:
                raise LockLostError(f"lock {self.prefix[:-1]!r} lost while waiting (session ended)")
        except BaseException:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.release())
            raise

    async def release(self) -> None:
        """Give the lock up (delete our key). Afterwards :meth:`is_owner` never holds (as in
        etcd, the key becomes ``"\\x00"`` and the revision -1)."""
        if self._key and self._key != b"\x00":
            await self.session.client.delete(self._key)
        self._key = b"\x00"
        self._rev = -1

    async def __aenter__(self) -> Lock:
        await self.acquire()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.release()


class Election:
    """Leader election named ``name`` through a :class:`Session` (etcd's Election)."""

    def __init__(self, session: Session, name: str | bytes) -> None:
        self.session = session
        self.prefix = (name.encode() if isinstance(name, str) else bytes(name)) + b"/"
        self._key = b""
        self._rev = -1
        self._leading = False
        self.header: ResponseHeader | None = None

    @property
    def key(self) -> bytes:
        """Our key in the election once campaign() has started (empty otherwise)."""
        return self._key

    @property
    def revision(self) -> int:
        return self._rev

    async def campaign(self, value: str | bytes) -> None:
        """Join the election with ``value`` and return once we are the leader. If cancelled
        while waiting, we resign."""
        client = self.session.client
        lease = self.session.require_alive()
        val = value.encode() if isinstance(value, str) else bytes(value)
        key = self.prefix + f"{lease:x}".encode()
        resp = await (
            client.txn()
            .if_(Compare.create(key, "=", 0))
            .then(Op.put(key, val, lease=lease))
            .else_(Op.get(key))
            .commit()
        )
        self._key, self._rev, self._leading = key, resp.header.revision, True
        if not resp.succeeded:
            got = resp.responses[0]
            assert isinstance(got, GetResponse)
            kv = got.kvs[0]
            self._rev = kv.create_revision
            if kv.value != val:
                try:
                    await self.proclaim(val)
                except BaseException:
                    with contextlib.suppress(Exception):
                        await self.resign()
                    raise
        try:
            await _wait_deletes(client, self.prefix, self._rev - 1)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.resign())
            raise
        except BaseException:
            self._leading = False
            raise
        self.header = resp.header

    async def proclaim(self, value: str | bytes) -> None:
        """Change the leader's value without a new election (we must be the leader)."""
        if not self._leading:
            raise ElectionNotLeaderError("election: not leader")
        val = value.encode() if isinstance(value, str) else bytes(value)
        client = self.session.client
        resp = await (
            client.txn()
            .if_(Compare.create(self._key, "=", self._rev))
            .then(Op.put(self._key, val, lease=self.session.lease_id))
            .commit()
        )
        if not resp.succeeded:
            self._key = b""
            raise ElectionNotLeaderError("election: not leader")
        self.header = resp.header

    async def resign(self) -> None:
        """Stop being the leader (or a candidate): delete our key if it is still ours."""
        if not self._leading:
            return
        client = self.session.client
        try:
            resp = await (
                client.txn()
                .if_(Compare.create(self._key, "=", self._rev))
                .then(Op.delete(self._key))
                .commit()
            )
            self.header = resp.header
        finally:
            self._key = b""
            self._leading = False

    async def leader(self) -> GetResponse:
        """The current leader's key and value (``ElectionNoLeaderError`` if there is none)."""
        resp = await self.session.client.get(
            self.prefix, prefix=True, sort_target="create", sort_order="ascend", limit=1
        )
        if not resp.kvs:
            raise ElectionNoLeaderError("election: no leader")
        return resp

    async def observe(self) -> AsyncIterator[GetResponse]:
        """Yield the leader's key-value each time leadership or the leader's value changes
        (as etcd's Observe does, each result holds exactly one key-value)."""
        client = self.session.client
        while True:
            resp = await client.get(
                self.prefix, prefix=True, sort_target="create", sort_order="ascend", limit=1
            )
            if resp.kvs:
                header, kv = resp.raw.header, resp.raw.kvs[0]
            else:
                found = None
                async with client.watch(self.prefix, prefix=True, start_revision=resp.header.revision) as w:
                    async for batch in w:
                        put = next((ev for ev in batch.raw.events if ev.type == EventType.PUT.value), None)
                        if put is not None:
                            found = (batch.raw.header, put.kv)
                            break
                if found is None:
                    return
                header = rpc_pb2.ResponseHeader()
                header.CopyFrom(found[0])
                kv = found[1]
                header.revision = kv.mod_revision
            yield GetResponse.from_pb(rpc_pb2.RangeResponse(header=header, kvs=[kv]))
            async with client.watch(kv.key, start_revision=header.revision + 1) as w:
                deleted = False
                async for batch in w:
                    for ev in batch.raw.events:
                        if ev.type == EventType.DELETE.value:
                            deleted = True
                            break
                        yield GetResponse.from_pb(
                            rpc_pb2.RangeResponse(
                                header=batch.raw.header, kvs=[ev.kv], more=resp.more, count=resp.count
                            )
                        )
                    if deleted:
                        break
