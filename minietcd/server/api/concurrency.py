"""etcd's lock and election recipes (``clientv3/concurrency``), run inside the server.

etcd 3.4 serves ``v3lockpb.Lock`` and ``v3electionpb.Election`` by running its client-side
recipes against an in-process client. So do we, with :class:`LocalClient` standing in for that
client: its calls are the application API's own KV and Lease methods (writes proposed through
Raft, reads linearizable), and its waits are watches on this member's watch hub.

The recipes, as in etcd:

- **Lock(name, lease)**: key ``name/<lease hex>`` is created with the lease (or reused if this
  lease already has it); the lock is held once no key under ``name/`` with a lower create
  revision is left. It waits for each such key's deletion, newest predecessor first.
- **Campaign(name, lease, value)**: the same queue under ``name/``; a campaign that finds its
  key with another value proclaims the new one. **Proclaim** / **Resign** put / delete the
  leader key only while its create revision is still the one campaigned with. **Leader** is
  the key under ``name/`` created first; **Observe** streams it and its later values.
- Lease 0 means "make me a session": a lease with etcd's 60 s session TTL is granted, and never
  kept alive (etcd orphans its session), so it expires unless the caller keeps it alive.
- A Lock or Campaign cancelled while waiting removes its key (Resign for a campaign), in the
  background, as etcd does with its client's context.

Errors reach the client as etcd's do: its in-process client turns every server error into a
plain Go error, which gRPC sends as ``UNKNOWN`` with the error text (:func:`as_etcd`, which the
Lock and Election API methods run their recipes in).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine
from types import TracebackType
from typing import Any, TypeVar

from minietcd.api.etcdserverpb import rpc_pb2
from minietcd.api.mvccpb import kv_pb2
from minietcd.errors import (
    AuthError,
    CompactedRevisionError,
    ConcurrencyError,
    MinietcdError,
    NoElectionLeaderError,
    NotElectionLeaderError,
    RecipeError,
    RequestTimeoutError,
    ServerWatchCanceledError,
)
from minietcd.mvcc.types import EventType
from minietcd.mvcc.watch import WatchHub, WatchResponse
from minietcd.server.api.admission import RequestContext
from minietcd.server.api.kv import KV
from minietcd.server.api.lease import Lease
from minietcd.server.apply_kv import kv_to_pb

log = logging.getLogger("minietcd.server.api.concurrency")
T = TypeVar("T")
Header = rpc_pb2.ResponseHeader

#: etcd's ``concurrency.defaultSessionTTL``: the lease granted when a request names none.
SESSION_TTL = 60

_CREATE = rpc_pb2.Compare.CREATE
_EQUAL = rpc_pb2.Compare.EQUAL


def prefix_end(prefix: bytes) -> bytes:
    """The range end covering every key that starts with ``prefix`` (etcd GetPrefixRangeEnd)."""
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\0"


def _top(
    prefix: bytes, order: rpc_pb2.RangeRequest.SortOrder, max_create_revision: int = 0
) -> rpc_pb2.RangeRequest:
    """etcd's withTop(SortByCreateRevision, order): the first key under ``prefix`` by creation."""
    return rpc_pb2.RangeRequest(
        key=prefix,
        range_end=prefix_end(prefix),
        sort_target=rpc_pb2.RangeRequest.CREATE,
        sort_order=order,
        limit=1,
        max_create_revision=max_create_revision,
    )


def first_created(prefix: bytes) -> rpc_pb2.RangeRequest:
    return _top(prefix, rpc_pb2.RangeRequest.ASCEND)


def is_created(key: bytes, revision: int) -> rpc_pb2.Compare:
    """``create_revision(key) == revision`` (0: the key does not exist)."""
    return rpc_pb2.Compare(key=key, target=_CREATE, result=_EQUAL, create_revision=revision)


# --- the in-process client --------------------------------------------------------------------


class KeyWatch:
    """One watcher on this member's hub, read one response with events at a time."""

    def __init__(self, hub: WatchHub, key: bytes, range_end: bytes, start_revision: int) -> None:
        self._stream = hub.new_stream()
        self._ready = asyncio.Event()
        self._stream.on_ready = self._ready.set
        self._stream.watch(key, range_end, start_revision)

    async def next(self) -> WatchResponse:
        """The next response carrying events; raises if the watch was cancelled (compaction)."""
        while True:
            resp = self._stream.pop()
            if resp is None:
                # Single-threaded: nothing is queued between the empty pop() and clear().
                self._ready.clear()
                await self._ready.wait()
                continue
            if resp.canceled:
                if resp.compact_revision:
                    raise CompactedRevisionError(f"compacted at {resp.compact_revision}")
                raise ServerWatchCanceledError(resp.cancel_reason or ServerWatchCanceledError.etcd_message)
            if resp.events:
                return resp

    def close(self) -> None:
        self._stream.close()

    def __enter__(self) -> KeyWatch:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class LocalClient:
    """The KV, lease and watch calls the recipes make, served by this member (etcd's v3client).

    Its calls carry the caller's credentials but not ``hasleader``: etcd's in-process client
    skips the gRPC interceptors, whose checks the outer Lock or Election call already passed."""

    def __init__(
        self,
        kv: KV,
        lease: Lease,
        hub: WatchHub,
        header: Callable[[int], rpc_pb2.ResponseHeader],
        spawn: Callable[[Coroutine[Any, Any, None]], None],
        ctx: RequestContext,
    ) -> None:
        self._kv = kv
        self._lease = lease
        self.hub = hub
        self.header = header
        self._spawn = spawn
        self._ctx = dataclasses.replace(ctx, requires_leader=False)

    async def txn(self, req: rpc_pb2.TxnRequest) -> rpc_pb2.TxnResponse:
        """A writing txn, through the log."""
        return await self._kv.txn(self._ctx, req)

    async def range(self, req: rpc_pb2.RangeRequest) -> rpc_pb2.RangeResponse:
        """A linearizable read."""
        return await self._kv.range(self._ctx, req)

    async def delete(self, key: bytes) -> rpc_pb2.DeleteRangeResponse:
        return await self._kv.delete_range(self._ctx, rpc_pb2.DeleteRangeRequest(key=key))

    async def session_lease(self, lease: int) -> int:
        """etcd's NewSession(WithLease(lease)) then Orphan(): ``lease`` itself, or for 0 a new
        lease of SESSION_TTL seconds that nobody keeps alive."""
        if lease != 0:
            return lease
        resp = await self._lease.grant(self._ctx, rpc_pb2.LeaseGrantRequest(TTL=SESSION_TTL))
        return int(resp.ID)

    def watch(self, key: bytes, range_end: bytes, start_revision: int) -> KeyWatch:
        return KeyWatch(self.hub, key, range_end, start_revision)

    async def wait_delete(self, key: bytes, revision: int) -> None:
        """Return at the first deletion of ``key`` at or after ``revision``."""
        with self.watch(key, b"", revision) as w:
            while True:
                resp = await w.next()
                if any(ev.type is EventType.DELETE for ev in resp.events):
                    return

    async def wait_deletes(self, prefix: bytes, max_create_revision: int) -> rpc_pb2.ResponseHeader:
        """Wait until no key under ``prefix`` created at or before ``max_create_revision`` is
        left, newest first; return the header of the read that found none."""
        while True:
            resp = await self.range(_top(prefix, rpc_pb2.RangeRequest.DESCEND, max_create_revision))
            if not resp.kvs:
                return resp.header
            await self.wait_delete(resp.kvs[0].key, resp.header.revision)

    def in_background(self, call: Awaitable[object], what: str) -> None:
        """Clean-up that must outlive a cancelled request (etcd uses its client's context)."""

        async def run() -> None:
            try:
                await call
            except MinietcdError as e:
                log.warning("%s failed: %s", what, e)

        self._spawn(run())


# --- the recipes ----------------------------------------------------------------------------


def _key(name: bytes, lease: int) -> bytes:
    return name + b"/" + (b"%x" % lease)  # Go's %x of an int64: lowercase, "-" if negative


async def lock(c: LocalClient, name: bytes, lease: int) -> tuple[rpc_pb2.ResponseHeader, bytes]:
    """etcd Mutex.Lock: returns the header at acquisition and the lock's key."""
    lease = await c.session_lease(lease)
    prefix = name + b"/"
    key = _key(name, lease)
    owner = rpc_pb2.RequestOp(request_range=first_created(prefix))
    resp = await c.txn(
        rpc_pb2.TxnRequest(
            compare=[is_created(key, 0)],
            success=[rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=key, lease=lease)), owner],
            # This lease already queued (or holds) the lock: reuse its key.
            failure=[rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=key)), owner],
        )
    )
    my_rev = resp.header.revision
    if not resp.succeeded:
        my_rev = resp.responses[0].response_range.kvs[0].create_revision
    first = resp.responses[1].response_range.kvs
    if not first or first[0].create_revision == my_rev:
        return resp.header, key
    try:
        header = await c.wait_deletes(prefix, my_rev - 1)
    except BaseException:
        c.in_background(c.delete(key), f"releasing lock key {key!r}")
        raise
    return header, key


async def unlock(c: LocalClient, key: bytes) -> rpc_pb2.ResponseHeader:
    return (await c.delete(key)).header


async def campaign(
    c: LocalClient, name: bytes, lease: int, value: bytes
) -> tuple[rpc_pb2.ResponseHeader, bytes, int, int]:
    """etcd Election.Campaign: returns (header, leader key, its create revision, lease) once
    this campaign leads."""
    lease = await c.session_lease(lease)
    prefix = name + b"/"
    key = _key(name, lease)
    resp = await c.txn(
        rpc_pb2.TxnRequest(
            compare=[is_created(key, 0)],
            success=[rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=key, value=value, lease=lease))],
            failure=[rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=key))],
        )
    )
    rev = resp.header.revision
    if not resp.succeeded:
        kv = resp.responses[0].response_range.kvs[0]
        rev = kv.create_revision
        if kv.value != value:
            try:
                await proclaim(c, key, rev, lease, value)
            except MinietcdError:
                with contextlib.suppress(MinietcdError):
                    await resign(c, key, rev)
                raise
    try:
        await c.wait_deletes(prefix, rev - 1)
    except asyncio.CancelledError:
        c.in_background(resign(c, key, rev), f"resigning {key!r}")
        raise
    return resp.header, key, rev, lease


async def proclaim(c: LocalClient, key: bytes, rev: int, lease: int, value: bytes) -> rpc_pb2.ResponseHeader:
    """etcd Election.Proclaim: a new value for the leader key, if it is still ours."""
    resp = await c.txn(
        rpc_pb2.TxnRequest(
            compare=[is_created(key, rev)],
            success=[rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=key, value=value, lease=lease))],
        )
    )
    if not resp.succeeded:
        raise NotElectionLeaderError()
    return resp.header


async def resign(c: LocalClient, key: bytes, rev: int) -> rpc_pb2.ResponseHeader:
    """etcd Election.Resign: delete the leader key if it is still ours (else do nothing)."""
    resp = await c.txn(
        rpc_pb2.TxnRequest(
            compare=[is_created(key, rev)],
            success=[rpc_pb2.RequestOp(request_delete_range=rpc_pb2.DeleteRangeRequest(key=key))],
        )
    )
    return resp.header


async def leader(c: LocalClient, name: bytes) -> tuple[rpc_pb2.ResponseHeader, kv_pb2.KeyValue]:
    resp = await c.range(first_created(name + b"/"))
    if not resp.kvs:
        raise NoElectionLeaderError()
    return resp.header, resp.kvs[0]


async def observe(c: LocalClient, name: bytes) -> AsyncGenerator[tuple[Header, kv_pb2.KeyValue], None]:
    """etcd Election.Observe: the current leader's key-value, each later value of it, then the
    next leader's, and so on. Ends (without error, as etcd's does) if a read or watch fails."""
    prefix = name + b"/"
    try:
        while True:
            resp = await c.range(first_created(prefix))
            if resp.kvs:
                header, kv = resp.header, resp.kvs[0]
            else:
                # No leader: wait for the first put under the prefix.
                with c.watch(prefix, prefix_end(prefix), resp.header.revision) as w:
                    while True:
                        wr = await w.next()
                        put = next((ev for ev in wr.events if ev.type is EventType.PUT), None)
                        if put is not None:
                            kv = kv_to_pb(put.kv)
                            header = c.header(put.kv.mod_revision)
                            break
            yield header, kv
            # Follow this leader's key until it is deleted.
            with c.watch(kv.key, b"", header.revision + 1) as w:
                deleted = False
                while not deleted:
                    wr = await w.next()
                    for ev in wr.events:
                        if ev.type is EventType.DELETE:
                            deleted = True
                            break
                        yield c.header(wr.revision), kv_to_pb(ev.kv)
    except (MinietcdError, TimeoutError) as e:
        log.debug("observe %r ended: %r", name, e)


# --- errors as etcd's in-process client reports them ---------------------------------------------


async def as_etcd(call: Awaitable[T]) -> T:
    """Await a recipe; an error reaches the client as etcd's in-process client reports it: its
    text only, which the faces send as ``UNKNOWN`` (RecipeError). The recipes' own errors
    ("election: not leader", ...) already are such."""
    try:
        return await call
    except (asyncio.CancelledError, ConcurrencyError):
        raise
    except AuthError:
        # An auth refusal of the recipe's KV calls keeps its code: etcd's in-process client
        # hands on the KV server's gRPC status ("rpc error: code = PermissionDenied ...").
        raise
    except TimeoutError as e:  # a wait that ran out, as etcd's context deadline
        raise RecipeError(RequestTimeoutError()) from e
    except Exception as e:
        if not isinstance(e, MinietcdError):
            log.exception("lock/election: unexpected error")
        raise RecipeError(e) from e
