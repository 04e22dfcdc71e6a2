"""etcd's Watchable (``etcdserver/api/v3rpc/watch.go``'s serverWatchStream, without the
transport): one stream carries many watches. Every face drives the same :class:`WatchSession`:
it hands in the client's requests as an async iterator and sends on each response the session
yields. Each request becomes a call on the stream's :class:`~minietcd.mvcc.watch.WatchStream` in
the watch hub, which also orders the responses (created before events, nothing after canceled);
the session converts them to etcd's messages (header filled), splits large ones for watchers that
allow it, and runs the stream's progress-notify timer. Only transport I/O is the face's.

It never touches Raft: a member serves watches from its own store, events arriving as it
applies.

Behaviour kept from etcd 3.4: created responses carry the revision at creation; refused
creates come back created+canceled with watch id -1 and etcd's reason; a cancel of an unknown
id is ignored; a compaction cancel has header revision 0; a client's half-close does not end
the stream (only its cancellation does). One deliberate difference: a progress request is
answered only once every watcher of the stream is synced (the fix etcd 3.5 made), so its
revision never runs ahead of events still to come.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Callable, Iterator

from minietcd.api.etcdserverpb import rpc_pb2
from minietcd.api.mvccpb import kv_pb2
from minietcd.errors import (
    AuthError,
    AuthOldRevisionError,
    InvalidAuthTokenError,
    PermissionDeniedError,
    UserEmptyError,
)
from minietcd.mvcc.types import Event, EventType
from minietcd.mvcc.watch import WatchHub, WatchResponse, WatchStream
from minietcd.server.api.admission import Admission, Op, RequestContext
from minietcd.server.apply_kv import kv_to_pb

log = logging.getLogger("minietcd.server.api.watch")

#: Raises an auth error unless the stream's user may create this watch.
Authorize = Callable[[rpc_pb2.WatchCreateRequest], Awaitable[None]]

#: etcd clamps --experimental-watch-progress-notify-interval to at least this (seconds).
MIN_PROGRESS_INTERVAL = 0.1
#: etcd's default interval when none (or <= 0) is configured: 10 minutes.
DEFAULT_PROGRESS_INTERVAL = 600.0
#: etcd's default --max-request-bytes (1.5 MiB) plus its gRPC overhead allowance (512 KiB): the
#: size at which a fragmenting watcher's responses are split.
DEFAULT_MAX_RESPONSE_BYTES = 3 * 512 * 1024 + 512 * 1024
#: Control responses (created / canceled / progress) that may wait before the stream stops
#: reading requests (etcd's ctrlStreamBufLen), so a client that never reads cannot grow them.
CTRL_BACKLOG = 16

Header = Callable[[int], rpc_pb2.ResponseHeader]


class Watch:
    """Watch streams on this member's hub. ``header(revision)`` builds a response header
    (cluster id, member id, raft term, and the given revision)."""

    def __init__(
        self,
        hub: WatchHub,
        header: Header,
        admission: Admission,
        progress_interval: float = DEFAULT_PROGRESS_INTERVAL,
        *,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        rng: random.Random | None = None,
    ) -> None:
        self._hub = hub
        self._header = header
        self._admission = admission
        if progress_interval <= 0:
            progress_interval = DEFAULT_PROGRESS_INTERVAL
        elif progress_interval < MIN_PROGRESS_INTERVAL:
            log.warning("adjusting watch progress notify interval to the minimum, %ss", MIN_PROGRESS_INTERVAL)
            progress_interval = MIN_PROGRESS_INTERVAL
        self._progress_interval = progress_interval
        self._max_response_bytes = max_response_bytes
        self._rng = rng or random.Random()

    def open(self, ctx: RequestContext) -> WatchSession:
        """A new watch stream for ``ctx``, if admitted (a learner refuses every stream but
        Snapshot; ``hasleader`` needs a leader). Run it, or close it. Each create request is
        authorized as it comes (etcd checks auth per watch, not per stream)."""
        self._admission.admit(ctx, Op.WATCH)
        admission = self._admission

        async def authorize(creq: rpc_pb2.WatchCreateRequest) -> None:
            await admission.authorize(ctx, Op.WATCH, creq)

        return WatchSession(
            self._hub.new_stream(), self.messages, self._progress_interval, self._rng, authorize
        )

    async def stream(
        self, ctx: RequestContext, requests: AsyncIterable[rpc_pb2.WatchRequest]
    ) -> AsyncGenerator[rpc_pb2.WatchResponse, None]:
        """:meth:`open`, then :meth:`WatchSession.run`: what a face serves a watch stream with."""
        async with contextlib.aclosing(self.open(ctx).run(requests)) as responses:
            async for resp in responses:
                yield resp

    def messages(self, resp: WatchResponse) -> Iterator[rpc_pb2.WatchResponse]:
        """etcd's messages for one hub response: header filled, split for a fragmenting watcher."""
        wr = rpc_pb2.WatchResponse(
            header=self._header(resp.revision),
            watch_id=resp.watch_id,
            created=resp.created,
            canceled=resp.canceled,
            compact_revision=resp.compact_revision,
            cancel_reason=resp.cancel_reason,
            events=[event_to_pb(ev, resp.prev_kv) for ev in resp.events],
        )
        if resp.fragment:
            yield from fragments(wr, self._max_response_bytes)
        else:
            yield wr


class WatchSession:
    """One client's watch stream (etcd's serverWatchStream): requests in, responses out."""

    __slots__ = ("_authorize", "_messages", "_progress_interval", "_rng", "_stream")

    def __init__(
        self,
        stream: WatchStream,
        messages: Callable[[WatchResponse], Iterator[rpc_pb2.WatchResponse]],
        progress_interval: float,
        rng: random.Random,
        authorize: Authorize | None = None,
    ) -> None:
        self._stream = stream
        self._messages = messages
        self._progress_interval = progress_interval
        self._rng = rng
        self._authorize = authorize

    async def run(
        self, requests: AsyncIterable[rpc_pb2.WatchRequest]
    ) -> AsyncGenerator[rpc_pb2.WatchResponse, None]:
        """Serve ``requests`` until the face stops iterating (the client went away; the stream
        is then closed). An error of the request side (e.g. an undecodable message) ends the
        stream with that error; the client's half-close does not."""
        stream = self._stream
        ready = asyncio.Event()  # something was queued, or the reader ended
        room = asyncio.Event()  # the sender took a response: the reader may go on
        stream.on_ready = ready.set
        reader = asyncio.create_task(_read(requests, stream, room, self._authorize))
        reader.add_done_callback(lambda _: ready.set())
        ticker = asyncio.create_task(self._tick())
        try:
            while True:
                ready.clear()
                while (resp := stream.pop()) is not None:
                    room.set()
                    for msg in self._messages(resp):
                        yield msg
                if reader.done() and not reader.cancelled():
                    exc = reader.exception()
                    if exc is not None:
                        raise exc  # the request side failed: end the stream with it
                await ready.wait()
        finally:
            self.close()
            reader.cancel()
            ticker.cancel()

    def close(self) -> None:
        self._stream.close()

    async def _tick(self) -> None:
        # etcd adds up to 10% jitter so watchers created together do not all report together.
        interval = self._progress_interval * (1 + self._rng.random() / 10)
        while True:
            await asyncio.sleep(interval)
            self._stream.progress_tick()


async def _read(
    requests: AsyncIterable[rpc_pb2.WatchRequest],
    stream: WatchStream,
    room: asyncio.Event,
    authorize: Authorize | None = None,
) -> None:
    """etcd's recvLoop. Returns at the client's half-close; the stream stays open (etcd)."""
    async for req in requests:
        while stream.control_pending >= CTRL_BACKLOG:
            room.clear()
            await room.wait()
        kind = req.WhichOneof("request_union")
        if kind == "create_request":
            if authorize is not None:
                try:
                    await authorize(req.create_request)
                except AuthError as e:
                    stream.refuse(_refusal(e))
                    continue
            _create(stream, req.create_request)
        elif kind == "cancel_request":
            stream.cancel(req.cancel_request.watch_id)
        elif kind == "progress_request":
            stream.request_progress_all()
        # Anything else is ignored, as etcd does, rather than ending the stream.


def _refusal(e: AuthError) -> str:
    """The cancel reason of a watch auth refused (v3rpc/watch.go: three errors say what they
    are, anything else is "permission denied"). etcd sends the text of its gRPC error value,
    "rpc error: code = PermissionDenied desc = etcdserver: permission denied", and its client
    compares it whole (shouldRetryWatch)."""
    cls: type[AuthError] = PermissionDeniedError
    if isinstance(e, InvalidAuthTokenError | AuthOldRevisionError | UserEmptyError):
        cls = type(e)
    go_code = "".join(w.capitalize() for w in cls.grpc_code.name.split("_"))
    return f"rpc error: code = {go_code} desc = {cls.etcd_message}"


def _create(stream: WatchStream, creq: rpc_pb2.WatchCreateRequest) -> None:
    filters = set(creq.filters)
    stream.watch(
        # etcd: an empty key means "\0", the smallest key. range_end "" (one key) and "\0"
        # (every key >= key) already follow the store's conventions.
        creq.key or b"\0",
        creq.range_end,
        creq.start_revision,
        watch_id=creq.watch_id,
        no_put=rpc_pb2.WatchCreateRequest.NOPUT in filters,
        no_delete=rpc_pb2.WatchCreateRequest.NODELETE in filters,
        prev_kv=creq.prev_kv,
        progress_notify=creq.progress_notify,
        fragment=creq.fragment,
    )


_PB_TYPE = {EventType.PUT: kv_pb2.Event.PUT, EventType.DELETE: kv_pb2.Event.DELETE}


def event_to_pb(ev: Event, with_prev_kv: bool) -> kv_pb2.Event:
    out = kv_pb2.Event(type=_PB_TYPE[ev.type], kv=kv_to_pb(ev.kv))
    # etcd looks up no previous value for a create: the key did not exist before.
    is_create = ev.type is EventType.PUT and ev.kv.create_revision == ev.kv.mod_revision
    if with_prev_kv and ev.prev_kv is not None and not is_create:
        out.prev_kv.CopyFrom(kv_to_pb(ev.prev_kv))
    return out


def _varint_len(n: int) -> int:
    size = 1
    while n >= 0x80:
        n >>= 7
        size += 1
    return size


def fragments(wr: rpc_pb2.WatchResponse, max_bytes: int) -> Iterator[rpc_pb2.WatchResponse]:
    """etcd's ``sendFragments``: a response of at least ``max_bytes`` with two or more events
    is split into responses of under ``max_bytes`` (one event each at least), all but the last
    marked ``fragment``. Sizes are summed per event instead of re-encoding each candidate."""
    if len(wr.events) < 2 or wr.ByteSize() < max_bytes:
        yield wr
        return
    base = rpc_pb2.WatchResponse()
    base.CopyFrom(wr)
    del base.events[:]
    base.fragment = True
    base_size = base.ByteSize()
    events = list(wr.events)
    i = 0
    while i < len(events):
        size, j = base_size, i
        while j < len(events):
            n = events[j].ByteSize()
            # One byte of field tag (events is field 11) plus the length prefix.
            size += 1 + _varint_len(n) + n
            if j > i and size >= max_bytes:
                break
            j += 1
        part = rpc_pb2.WatchResponse()
        part.CopyFrom(base)
        part.events.extend(events[i:j])
        part.fragment = j < len(events)
        i = j
        yield part
