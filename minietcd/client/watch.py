"""Watches: an async iterator of event batches that survives member failures.

``client.watch(...)`` returns a :class:`Watch`. Iterating it yields :class:`WatchResponse`
batches (events in revision order; progress notifications have no events). Start it with
``async with`` (or ``await w.start()``) when the watch must be registered before you write.

Example::

    async with client.watch("app/", prefix=True, prev_kv=True) as w:
        await client.put("app/x", "1")
        async for batch in w:
            for ev in batch.events:
                print(ev.type.name, ev.kv.key, ev.kv.value, ev.kv.mod_revision)
            break

Guarantees, as etcd's own client gives them:

- **Resume without gaps.** If the member serving the watch dies, loses its leader ("etcdserver:
  no leader": watches ask members to refuse to serve without one) or closes the stream, the watch
  reconnects to another member and resumes from the revision after the last one it delivered
  (or after the revision it was created at). No event is lost or repeated.
- **Compaction is reported, not hidden.** If the revision to start (or resume) from was
  compacted, iteration raises :class:`WatchCompactedError`; its ``compact_revision`` is the
  oldest revision still available.
- Other cancellations raise :class:`WatchCanceledError` with the server's reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections.abc import Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any

import grpc

from minietcd.api.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from minietcd.client._connection import REQUIRE_LEADER, _Member
from minietcd.client.errors import (
    ClientClosedError,
    WatchCanceledError,
    WatchCompactedError,
    from_rpc_error,
    is_etcd_message,
)
from minietcd.client.kv import KeyLike, _range
from minietcd.client.results import WatchResponse

if TYPE_CHECKING:
    from minietcd.client._connection import Connection

__all__ = ["Watch", "WatchFilter", "WatchMixin"]

_NO_LEADER = "etcdserver: no leader"
_FUTURE_REV = "etcdserver: mvcc: required revision is a future revision"


class WatchFilter(enum.Enum):
    """Events a watch should not deliver."""

    NOPUT = 0
    NODELETE = 1


def _retryable(e: grpc.aio.AioRpcError) -> bool:
    code = e.code()
    if code == grpc.StatusCode.UNAVAILABLE:
        return True
    if code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN):
        return not is_etcd_message(e.details() or "")
    return False


class Watch:
    """One watch (see the module docstring). Not shared between tasks."""

    def __init__(
        self,
        conn: Connection,
        key: KeyLike,
        range_end: KeyLike | None = None,
        *,
        prefix: bool = False,
        from_key: bool = False,
        start_revision: int = 0,
        prev_kv: bool = False,
        filters: Iterable[WatchFilter | str] = (),
        progress_notify: bool = False,
        require_leader: bool = True,
        endpoint: str | None = None,
    ) -> None:
        self._conn = conn
        self._key, self._range_end = _range(key, range_end, prefix, from_key)
        self._prev_kv = prev_kv
        self._filters = [f if isinstance(f, WatchFilter) else WatchFilter[f.upper()] for f in filters]
        self._progress_notify = progress_notify
        self._metadata: tuple[tuple[str, str], ...] = (REQUIRE_LEADER,) if require_leader else ()
        self._endpoint = endpoint
        #: The revision the next (re)created watch starts at; 0 = "from now" until created.
        self._next_rev = start_revision
        self._call: Any = None
        self._member: _Member | None = None
        self._started = False
        self._closed = False
        #: How many times the watch moved to another member (for tests and dashboards).
        self.resumes = 0
        #: The endpoint currently serving the watch.
        self.endpoint: str | None = None

    @property
    def next_revision(self) -> int:
        """The revision the watch would resume from (the last delivered revision + 1)."""
        return self._next_rev

    # ------------------------------------------------------------------------- life cycle

    async def start(self) -> Watch:
        """Register the watch with a member and wait until it is created. Idempotent."""
        if not self._started:
            self._started = True
            await self._open()
        return self

    async def __aenter__(self) -> Watch:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop watching (ends iteration)."""
        self._closed = True
        self._drop_call()

    cancel = aclose

    def _drop_call(self) -> None:
        call, self._call = self._call, None
        if call is not None:
            call.cancel()

    def _create_request(self) -> rpc_pb2.WatchRequest:
        return rpc_pb2.WatchRequest(
            create_request=rpc_pb2.WatchCreateRequest(
                key=self._key,
                range_end=self._range_end,
                start_revision=self._next_rev,
                progress_notify=self._progress_notify,
                filters=[f.value for f in self._filters],  # type: ignore[misc]  # protoc .pyi: enum fields want the enum type, not its int
                prev_kv=self._prev_kv,
            )
        )

    async def _open(self) -> None:
        """Connect (avoiding the member that just failed), create the watch and wait for the
        server's confirmation; retry on other members until one accepts it."""
        while True:
            if self._closed:
                return
            md = await self._conn.metadata(self._metadata)

            def open_call(m: _Member, md: tuple[tuple[str, str], ...] = md) -> Any:
                return self._conn.stub(m, rpc_pb2_grpc.WatchStub).Watch(metadata=md)

            member, call = await self._conn.open_stream(
                open_call, avoid=self._member, timeout=float("inf"), endpoint=self._endpoint
            )
            self._member, self._call = member, call
            self.endpoint = member.endpoint.url
            try:
                try:
                    await call.write(self._create_request())
                except asyncio.InvalidStateError:
                    raise _StreamEnded() from None
                while True:
                    resp = await call.read()
                    if resp is grpc.aio.EOF:
                        raise _StreamEnded()
                    wr = WatchResponse.from_pb(resp)
                    if wr.canceled:
                        self._on_cancel(wr)  # raises, or returns to fail over
                        raise _StreamEnded()
                    if wr.created:
                        if self._next_rev == 0:
                            self._next_rev = wr.header.revision + 1
                        return
            except grpc.aio.AioRpcError as e:
                if self._closed or self._conn.closed:
                    return
                if not _retryable(e):
                    self._drop_call()
                    raise from_rpc_error(e) from e
                await self._failover()
            except _StreamEnded:
                await self._failover()

    async def _failover(self) -> None:
        self._drop_call()
        if self._member is not None:
            self._member.mark_down()
        self.resumes += 1
        await asyncio.sleep(0.05)

    def _on_cancel(self, wr: WatchResponse) -> None:
        """A canceled response: raise what it means, or return if the watch should move to
        another member (the member lost its leader)."""
        if wr.compact_revision:
            self._closed = True
            self._drop_call()
            compacted = WatchCompactedError(wr.compact_revision)
            compacted.response = wr
            raise compacted
        reason = wr.cancel_reason
        if reason == _NO_LEADER and self._endpoint is None:
            return
        self._closed = True
        self._drop_call()
        canceled = WatchCanceledError(reason or _FUTURE_REV, etcd_message=reason or _FUTURE_REV)
        canceled.response = wr
        raise canceled

    # -------------------------------------------------------------------------- iteration

    def __aiter__(self) -> Watch:
        return self

    async def __anext__(self) -> WatchResponse:
        await self.start()
        while True:
            if self._closed:
                raise StopAsyncIteration
            if self._conn.closed:
                raise ClientClosedError("the client is closed")
            if self._call is None:
                await self._open()
                continue
            try:
                resp = await self._call.read()
            except grpc.aio.AioRpcError as e:
                if self._closed:
                    raise StopAsyncIteration from None
                if self._conn.closed:
                    raise ClientClosedError("the client is closed") from None
                if not _retryable(e):
                    self._closed = True
                    self._drop_call()
                    raise from_rpc_error(e) from e
                await self._failover()
                continue
            except asyncio.CancelledError:
                if self._closed:
                    raise StopAsyncIteration from None
                raise
            if resp is grpc.aio.EOF:
                if self._closed:
                    raise StopAsyncIteration
                await self._failover()
                continue
            wr = WatchResponse.from_pb(resp)
            if wr.canceled:
                self._on_cancel(wr)
                await self._failover()
                continue
            if wr.events:
                self._next_rev = wr.events[-1].kv.mod_revision + 1
                return wr
            if wr.created:
                continue
            if wr.is_progress_notify:
                self._next_rev = max(self._next_rev, wr.header.revision + 1)
                return wr

    async def request_progress(self) -> None:
        """Ask the member for a progress notification (a batch with no events whose header
        revision tells that every event up to it was delivered)."""
        await self.start()
        if self._call is not None:
            with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError):
                await self._call.write(rpc_pb2.WatchRequest(progress_request=rpc_pb2.WatchProgressRequest()))


class _StreamEnded(Exception):
    pass


class WatchMixin:
    """Watch calls of :class:`~minietcd.client.Client`."""

    _conn: Connection

    def watch(
        self,
        key: KeyLike,
        range_end: KeyLike | None = None,
        *,
        prefix: bool = False,
        from_key: bool = False,
        start_revision: int = 0,
        prev_kv: bool = False,
        filters: Iterable[WatchFilter | str] = (),
        progress_notify: bool = False,
        require_leader: bool = True,
        endpoint: str | None = None,
    ) -> Watch:
        """Watch a key or a range (``range_end``, ``prefix``, ``from_key`` as for ``get``).

        ``start_revision`` replays history from that revision (default: only new changes);
        ``prev_kv`` attaches each key's previous value; ``filters`` drops ``"noput"`` or
        ``"nodelete"`` events; ``progress_notify`` asks for periodic empty batches when idle;
        ``endpoint`` pins the watch to one member (no failover). See :class:`Watch`.
        """
        return Watch(
            self._conn,
            key,
            range_end,
            prefix=prefix,
            from_key=from_key,
            start_revision=start_revision,
            prev_kv=prev_kv,
            filters=filters,
            progress_notify=progress_notify,
            require_leader=require_leader,
            endpoint=endpoint,
        )
