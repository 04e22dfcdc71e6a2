"""Leases: grant, revoke, time-to-live, list, and keeping them alive.

A lease is a TTL in seconds that keys can be attached to (``put(..., lease=id)``); when it
expires or is revoked, its keys are deleted. :meth:`LeaseMixin.keep_alive` renews a lease in a
background task for as long as you hold the returned :class:`KeepAlive`.

Example::

    lease = await client.grant(10)
    await client.put("service/me", "10.0.0.7", lease=lease.id)
    async with client.keep_alive(lease.id) as ka:
        ...                       # the key lives while this block runs
    await client.revoke(lease.id)  # or let it expire 10 s later

``grant`` and ``revoke`` are writes (never retried once sent); ``time_to_live``, ``leases`` and
renewals are retried on another member.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from types import TracebackType
from typing import TYPE_CHECKING, Any

import grpc

from minietcd.api.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from minietcd.client._connection import _Member
from minietcd.client.errors import LeaseNotFoundError, from_rpc_error, is_etcd_message
from minietcd.client.results import (
    LeaseGrantResponse,
    LeaseKeepAliveResponse,
    LeaseRevokeResponse,
    LeasesResponse,
    LeaseTimeToLiveResponse,
    ResponseHeader,
)

if TYPE_CHECKING:
    from minietcd.client._connection import Connection

__all__ = ["KeepAlive", "LeaseMixin"]


class KeepAlive:
    """Renews one lease every TTL/3 seconds in a background task, failing over to other
    members, until the lease expires or is revoked, or until :meth:`aclose`.

    Iterate it to see each renewal; iteration ends when the lease is gone (or the keep-alive is
    closed). ``await ka.wait()`` returns when the lease is gone. Intermediate renewals may be
    skipped by a slow reader (only the latest few are kept).
    """

    _QUEUE = 16

    def __init__(self, conn: Connection, lease_id: int) -> None:
        self._conn = conn
        self.lease_id = lease_id
        self._queue: asyncio.Queue[LeaseKeepAliveResponse | None] = asyncio.Queue(self._QUEUE)
        self._done = asyncio.get_running_loop().create_future()
        self._closed = False
        #: The last renewal received (None until the first).
        self.last: LeaseKeepAliveResponse | None = None
        #: The endpoint currently renewing the lease.
        self.endpoint: str | None = None
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"keepalive-{lease_id:x}")

    # ------------------------------------------------------------------------- life cycle

    @property
    def done(self) -> bool:
        """True once the lease is gone (or the keep-alive was closed or failed)."""
        return self._done.done()

    async def wait(self) -> None:
        """Return when the lease is gone; raise the error that stopped renewals, if any."""
        await asyncio.shield(self._done)

    async def aclose(self) -> None:
        """Stop renewing (the lease itself is left to expire; revoke it to end it now)."""
        self._closed = True
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task
        self._finish(None)

    async def __aenter__(self) -> KeepAlive:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def _finish(self, error: BaseException | None) -> None:
        if not self._done.done():
            if error is None:
                self._done.set_result(None)
            else:
                self._done.set_exception(error)
                self._done.exception()  # mark retrieved: wait() re-raises it when asked
        self._publish(None)

    def _publish(self, item: LeaseKeepAliveResponse | None) -> None:
        while True:
            try:
                self._queue.put_nowait(item)
                return
            except asyncio.QueueFull:
                with contextlib.suppress(asyncio.QueueEmpty):
                    self._queue.get_nowait()

    # ------------------------------------------------------------------------ iteration

    def __aiter__(self) -> KeepAlive:
        return self

    async def __anext__(self) -> LeaseKeepAliveResponse:
        if self._queue.empty() and self.done:
            raise StopAsyncIteration
        item = await self._queue.get()
        if item is None:
            self._publish(None)  # keep the end visible to later calls
            raise StopAsyncIteration
        return item

    # ---------------------------------------------------------------------------- the task

    async def _run(self) -> None:
        avoid: _Member | None = None
        ttl = 5.0  # until the first answer tells the lease's TTL
        try:
            while not self._closed:
                md = await self._conn.metadata()

                def open_call(m: _Member, md: Any = md) -> Any:
                    return self._conn.stub(m, rpc_pb2_grpc.LeaseStub).LeaseKeepAlive(metadata=md)

                member, call = await self._conn.open_stream(open_call, avoid=avoid, timeout=math.inf)
                self.endpoint = member.endpoint.url
                try:
                    while not self._closed:
                        await call.write(rpc_pb2.LeaseKeepAliveRequest(ID=self.lease_id))
                        resp = await asyncio.wait_for(call.read(), timeout=max(ttl, 1.0))
                        if resp is grpc.aio.EOF:
                            raise _Retry()
                        ka = LeaseKeepAliveResponse.from_pb(resp)
                        if ka.ttl <= 0:
                            self._finish(None)
                            return
                        ttl = float(ka.ttl)
                        self.last = ka
                        self._publish(ka)
                        await asyncio.sleep(max(ttl / 3.0, 0.1))
                except grpc.aio.AioRpcError as e:
                    code = e.code()
                    if code != grpc.StatusCode.UNAVAILABLE and is_etcd_message(e.details() or ""):
                        raise from_rpc_error(e) from e
                except (_Retry, TimeoutError, asyncio.InvalidStateError):
                    pass  # the stream ended (its member died): renew through another one
                finally:
                    call.cancel()
                # The member failed: renew through another one. If the lease expired meanwhile,
                # the next answer says so (TTL 0) and the keep-alive ends.
                member.mark_down()
                avoid = member
                await asyncio.sleep(0.1)
        except asyncio.CancelledError:
            self._finish(None)
            raise
        except Exception as e:  # reported through wait(); iteration just ends
            self._finish(e)


class _Retry(Exception):
    pass


class LeaseMixin:
    """Lease calls of :class:`~minietcd.client.Client`."""

    _conn: Connection

    async def grant(self, ttl: int, *, lease_id: int = 0, timeout: float | None = None) -> LeaseGrantResponse:
        """Create a lease of ``ttl`` seconds (the server may raise it to its minimum); with
        ``lease_id`` the lease gets that ID (``LeaseExistsError`` if it is taken)."""
        req = rpc_pb2.LeaseGrantRequest(TTL=ttl, ID=lease_id)
        resp = await self._conn.unary(
            rpc_pb2_grpc.LeaseStub, "LeaseGrant", req, idempotent=False, timeout=timeout
        )
        return LeaseGrantResponse.from_pb(resp)

    async def revoke(self, lease_id: int, *, timeout: float | None = None) -> LeaseRevokeResponse:
        """End a lease now and delete its keys (``LeaseNotFoundError`` if it does not exist)."""
        req = rpc_pb2.LeaseRevokeRequest(ID=lease_id)
        resp = await self._conn.unary(
            rpc_pb2_grpc.LeaseStub, "LeaseRevoke", req, idempotent=False, timeout=timeout
        )
        return LeaseRevokeResponse(ResponseHeader.from_pb(resp.header), resp)

    async def time_to_live(
        self, lease_id: int, *, keys: bool = False, timeout: float | None = None
    ) -> LeaseTimeToLiveResponse:
        """Remaining and granted TTL of a lease (``ttl == -1`` if it does not exist), and with
        ``keys=True`` the keys attached to it."""
        req = rpc_pb2.LeaseTimeToLiveRequest(ID=lease_id, keys=keys)
        resp = await self._conn.unary(
            rpc_pb2_grpc.LeaseStub, "LeaseTimeToLive", req, idempotent=True, timeout=timeout
        )
        return LeaseTimeToLiveResponse.from_pb(resp)

    async def leases(self, *, timeout: float | None = None) -> LeasesResponse:
        """The IDs of all live leases."""
        resp = await self._conn.unary(
            rpc_pb2_grpc.LeaseStub,
            "LeaseLeases",
            rpc_pb2.LeaseLeasesRequest(),
            idempotent=True,
            timeout=timeout,
        )
        return LeasesResponse.from_pb(resp)

    async def keep_alive_once(self, lease_id: int, *, timeout: float | None = None) -> LeaseKeepAliveResponse:
        """Renew a lease once; ``LeaseNotFoundError`` if it does not exist (any more)."""

        async def attempt(m: _Member, remaining: float | None) -> LeaseKeepAliveResponse:
            md = await self._conn.metadata()
            call = self._conn.stub(m, rpc_pb2_grpc.LeaseStub).LeaseKeepAlive(metadata=md, timeout=remaining)
            try:
                await call.write(rpc_pb2.LeaseKeepAliveRequest(ID=lease_id))
                resp = await call.read()
            except asyncio.InvalidStateError:
                resp = grpc.aio.EOF  # the stream ended before the request went out
            finally:
                call.cancel()
            if resp is grpc.aio.EOF:
                raise grpc.aio.AioRpcError(
                    grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), "stream closed"
                )
            return LeaseKeepAliveResponse.from_pb(resp)

        ka = await self._conn.run(attempt, idempotent=True, timeout=timeout)
        if ka.ttl <= 0:
            raise LeaseNotFoundError(LeaseNotFoundError.etcd_message)
        return ka

    def keep_alive(self, lease_id: int) -> KeepAlive:
        """Keep a lease alive in the background until the returned :class:`KeepAlive` is closed
        (``async with`` closes it) or the lease is gone."""
        return KeepAlive(self._conn, lease_id)
