"""Carrying Raft messages between members over gRPC (``RaftPeer`` in raftpb/raft.proto).

One :class:`Transport` per member does both halves of the peer protocol:

Sending (one writer task per peer)::

    send(msgs) --(one list per peer per call)--> bounded queue --> writer task
        writer: new channel -> Hello (same cluster? right member?) -> open Send stream
                -> one MessageBatch of all lists queued since the last write ... until the stream breaks
                -> drop what is queued, report the peer unreachable, back off, next URL

``send()`` never blocks and never raises: a message that cannot be queued (the peer is not
connected, or its queue is full) is dropped and ``on_unreachable(peer)`` is called. That is
all Raft needs: it retransmits, and a leader that hears "unreachable" probes the follower
again instead of streaming blind (etcd's rafthttp does the same). MsgSnap is different: its
snapshot can be large, so each one goes in its own task over its own connection
(``SendSnapshot``: header, 1 MiB data chunks, SHA-256 trailer), and its outcome is reported
with ``on_snapshot_status(peer, ok)``.

A prober task per peer calls ``Hello`` every second on the writer's connection. It records the
round-trip time in ``etcd_network_peer_round_trip_time_seconds`` and, when a probe fails,
resets the stream: that is how a peer that vanished without closing its TCP connection (a
partition) is noticed. ``active_since(peer)`` is the moment the current stream came up, or
None while there is none.

Receiving is :class:`minietcd.server.peer_rpc.PeerService` (the ``RaftPeer`` gRPC service on
``--listen-peer-urls``), which this class owns and serves: it checks cluster and member ids,
parses input itself and hands accepted messages to ``on_message`` in the sender's order.

The channels and options both halves use, and :func:`fetch_cluster_members` (how a joining
member learns the cluster), are in :mod:`minietcd.server.peer_channels`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Final

import grpc
import grpc.aio
from prometheus_client import Histogram

from minietcd import __version__
from minietcd.api.raftpb import raft_pb2
from minietcd.errors import ConfigError
from minietcd.raft.types import Message, MessageType, Snapshot
from minietcd.server.ids import format_id
from minietcd.server.peer_channels import (
    BACKOFF_MAX,
    BACKOFF_MIN,
    CHANNEL_OPTIONS,
    HANDSHAKE_TIMEOUT_MS,
    LAB_PEER_ROUTES_ENV,
    ChannelFactory,
    bind_peer_server,
    describe_error,
    fetch_cluster_members,
    open_peer_channel,
    peer_stub,
)
from minietcd.server.peer_rpc import (
    CLUSTER_VERSION,
    PROTOCOL_VERSION,
    HashKVProvider,
    PeerService,
    SnapshotSinkFactory,
    clusters_differ,
)
from minietcd.server.snapshot_files import SnapshotBody
from minietcd.server.urls import parse_url
from minietcd.wire.raft_codec import message_to_pb

__all__ = [
    "HANDSHAKE_TIMEOUT_MS",
    "LAB_PEER_ROUTES_ENV",
    "PEER_RTT",
    "PROTOCOL_VERSION",
    "ChannelFactory",
    "MembersResponse",
    "Transport",
    "bind_peer_server",
    "fetch_cluster_members",
]

logger = logging.getLogger(__name__)

MembersResponse = raft_pb2.MembersResponse


QUEUE_MESSAGES: Final = 4096  # per-peer send queue bound, in messages (etcd's streamBufSize)
BATCH_SPLIT_BYTES: Final = 16 << 20  # a send() list bigger than this goes in several batches
SNAPSHOT_CHUNK_BYTES: Final = 1 << 20
SNAPSHOT_TIMEOUT_BASE: Final = 30.0  # seconds, plus one per MiB: a stuck transfer must end
SNAPSHOT_MIN_BYTES_PER_SECOND: Final = 1 << 20
PROBE_INTERVAL: Final = 1.0
HELLO_TIMEOUT: Final = 2.0

# etcd's metric (rafthttp/metrics.go): same name, label and buckets, so dashboards carry over.
PEER_RTT: Final = Histogram(
    "etcd_network_peer_round_trip_time_seconds",
    "Round-Trip-Time histogram between peers",
    ["To"],
    buckets=[0.0001 * 2**i for i in range(14)],
)

class _PeerRejected(Exception):
    """The peer answered Hello but is not the member we want to talk to (or refuses us)."""


@dataclasses.dataclass(eq=False)
class _Peer:
    """What the sending side knows about one remote member."""

    id: int
    urls: list[str]  # its peer URLs; the writer tries them in turn
    # Lists of messages from one send() call each; None only wakes the writer to check its
    # stream. Unbounded as an asyncio.Queue: `queued` enforces QUEUE_MESSAGES.
    queue: asyncio.Queue[list[Message] | None] = dataclasses.field(default_factory=asyncio.Queue)
    queued: int = 0  # messages in queue
    active_since: float | None = None  # time.monotonic() when the current stream came up
    url: str | None = None  # the URL of the current stream (None: no stream)
    channel: Any = None  # grpc.aio.Channel of the current stream (the prober uses it too)
    call: Any = None  # the current Send stream (grpc.aio.StreamUnaryCall)
    reset_reason: str = ""  # why the prober or update_peer reset the current stream
    warned: bool = False  # "cannot reach" already logged since the last state change
    tasks: list[asyncio.Task[None]] = dataclasses.field(default_factory=list)  # writer, prober

    @property
    def name(self) -> str:
        return format_id(self.id)

    def reset(self, reason: str) -> None:
        """End the current stream (if any); the writer reconnects."""
        if self.call is not None and not self.call.done():
            self.reset_reason = reason
            self.call.cancel()


class Transport:
    """Raft messages to and from the other members; see the module docstring."""

    def __init__(
        self,
        *,
        cluster_id: int,
        member_id: int,
        on_message: Callable[[Message], None],
        on_unreachable: Callable[[int], None],
        on_snapshot_status: Callable[[int, bool], None],
        server_credentials: grpc.ServerCredentials | None = None,
        channel_credentials: grpc.ChannelCredentials | None = None,
        members_provider: Callable[[], raft_pb2.MembersResponse] | None = None,
        channel_factory: ChannelFactory | None = None,
        snapshot_sink: SnapshotSinkFactory | None = None,
        hash_kv: HashKVProvider | None = None,
    ) -> None:
        self._member_id = member_id
        self._on_message = on_message
        self._on_unreachable = on_unreachable
        self._on_snapshot_status = on_snapshot_status
        self._server_credentials = server_credentials
        self._channel_credentials = channel_credentials
        self._channel_factory = channel_factory  # replaces channel_credentials (e.g. auto TLS)
        self._peers: dict[int, _Peer] = {}
        self._rpc = PeerService(
            cluster_id=cluster_id,
            member_id=member_id,
            deliver=self._deliver,
            is_member=self._peers.__contains__,  # as rafthttp: only peers we know may send
            members_provider=members_provider,
            snapshot_sink=snapshot_sink,
            hash_kv=hash_kv,
        )
        self._server: Any = None  # grpc.aio.Server once started
        self._started = False
        self._stopped = False
        self._background: set[asyncio.Task[None]] = set()  # snapshot sends, retired peer tasks

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self, listen_urls: list[str]) -> None:
        """Serve RaftPeer on every URL (https needs server_credentials) and start the peers."""
        await self.serve(bind_peer_server(listen_urls, self._server_credentials))

    async def serve(self, server: grpc.aio.Server) -> None:
        """Serve on ``server`` (from :func:`bind_peer_server`, bound early) and start the peers."""
        server.add_generic_rpc_handlers((self._rpc.handlers(),))
        await server.start()
        self._server = server
        self._started = True
        for peer in self._peers.values():
            self._start_peer(peer)

    async def stop(self) -> None:
        """Stop serving, end every stream and task, close every connection."""
        self._stopped = True
        if self._server is not None:
            await self._server.stop(grace=None)
        tasks = [t for p in self._peers.values() for t in p.tasks] + list(self._background)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._peers.clear()

    def set_cluster_id(self, cluster_id: int) -> None:
        self._rpc.cluster_id = cluster_id

    # --- peers -------------------------------------------------------------------------------

    def add_peer(self, member_id: int, peer_urls: list[str]) -> None:
        if member_id == self._member_id:
            return
        if member_id in self._peers:
            self.update_peer(member_id, peer_urls)
            return
        _check_urls(peer_urls)
        self._rpc.removed.discard(member_id)
        peer = _Peer(id=member_id, urls=list(peer_urls))
        self._peers[member_id] = peer
        if self._started and not self._stopped:
            self._start_peer(peer)
        logger.info("added peer %s (%s)", peer.name, ", ".join(peer_urls))

    def update_peer(self, member_id: int, peer_urls: list[str]) -> None:
        peer = self._peers.get(member_id)
        if peer is None:
            self.add_peer(member_id, peer_urls)
            return
        if peer.urls == list(peer_urls):
            return  # the membership was re-applied, nothing changed for this peer
        _check_urls(peer_urls)
        peer.urls = list(peer_urls)
        if peer.url not in peer.urls:
            peer.reset("peer URLs changed")
        logger.info("updated peer %s (%s)", peer.name, ", ".join(peer_urls))

    def remove_peer(self, member_id: int) -> None:
        self._rpc.removed.add(member_id)
        peer = self._peers.pop(member_id, None)
        if peer is None:
            return
        for task in peer.tasks:
            task.cancel()
            self._keep(task)
        with contextlib.suppress(KeyError):
            PEER_RTT.remove(peer.name)
        logger.info("removed peer %s", peer.name)

    def active_since(self, member_id: int) -> float | None:
        peer = self._peers.get(member_id)
        return None if peer is None else peer.active_since

    # --- sending -----------------------------------------------------------------------------

    def send(self, msgs: list[Message]) -> None:
        """Queue ``msgs`` for their peers (the writer sends what queued up as one MessageBatch
        per peer). Never blocks or raises."""
        by_peer: dict[int, list[Message]] = {}
        for m in msgs:
            if m.type == MessageType.MsgSnap:
                self._start_snapshot(m)
            else:
                by_peer.setdefault(m.to, []).append(m)
        for to, group in by_peer.items():
            peer = self._peers.get(to)
            if peer is None or self._stopped:
                logger.debug("dropped %d message(s) to unknown peer %s", len(group), format_id(to))
            elif peer.active_since is None or peer.queued + len(group) > QUEUE_MESSAGES:
                self._report_unreachable(to)
            else:
                peer.queue.put_nowait(group)
                peer.queued += len(group)

    def _start_peer(self, peer: _Peer) -> None:
        peer.tasks = [
            asyncio.create_task(self._run_writer(peer), name=f"transport-writer-{peer.name}"),
            asyncio.create_task(self._run_prober(peer), name=f"transport-prober-{peer.name}"),
        ]

    async def _run_writer(self, peer: _Peer) -> None:
        """Keep one Send stream to ``peer`` up, trying its URLs in turn with backoff."""
        backoff = BACKOFF_MIN
        attempt = 0
        while True:
            url = peer.urls[attempt % len(peer.urls)]
            was_active = False
            try:
                channel = await self._open_channel(url)
            except Exception as e:  # the factory could not connect (auto TLS fetches a certificate)
                self._deactivate(peer, url, describe_error(e))
            else:
                reason = "transport stopped"
                try:
                    reason = await self._stream(peer, url, channel)
                except Exception as e:  # a bug; keep the writer alive, it is the peer's only one
                    logger.exception("stream writer for peer %s failed", peer.name)
                    reason = describe_error(e)
                finally:
                    was_active = peer.active_since is not None
                    self._deactivate(peer, url, reason)
                    await channel.close(grace=None)
            if was_active:
                backoff = BACKOFF_MIN  # it worked: retry the same URL at once-ish
            else:
                attempt += 1
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)

    async def _stream(self, peer: _Peer, url: str, channel: Any) -> str:
        """Hello, then pump the queue into one Send stream; return why the stream ended."""
        stub = peer_stub(channel)
        try:
            await self._hello(peer, stub)
        except Exception as e:  # AioRpcError (unreachable, timeout) or _PeerRejected
            return describe_error(e)
        call = stub.Send()
        call.add_done_callback(lambda _call: peer.queue.put_nowait(None))  # wake the writer
        peer.url, peer.channel, peer.call, peer.reset_reason = url, channel, call, ""
        peer.active_since = time.monotonic()
        peer.warned = False
        logger.info("peer %s became active (stream writer connected to %s)", peer.name, url)
        try:
            while True:
                item = await peer.queue.get()
                if item is None:
                    if call.done():
                        return peer.reset_reason or await _call_status(call)
                    continue
                # What queued up while the last write was in flight goes in the same batch:
                # each stream message costs a gRPC write here and a read at the peer.
                while not peer.queue.empty():
                    more = peer.queue.get_nowait()
                    if more is None:
                        peer.queue.put_nowait(None)  # handled on the next turn, in order
                        break
                    item = item + more
                peer.queued -= len(item)
                for batch in self._batches(peer.id, item):
                    await call.write(batch)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # we are being stopped
            # call.cancel() (by the prober or update_peer) makes a pending write raise this
            return peer.reset_reason or "stream cancelled"
        except Exception as e:  # AioRpcError, or InvalidStateError on a finished call
            return peer.reset_reason or (await _call_status(call) if call.done() else describe_error(e))
        finally:
            call.cancel()
            peer.url = peer.channel = peer.call = None

    def _deactivate(self, peer: _Peer, url: str, reason: str) -> None:
        """The stream to ``peer`` ended (or never started): log once, drop what is queued."""
        closing = self._stopped or self._peers.get(peer.id) is not peer  # stop() or remove_peer()
        was_active = peer.active_since is not None
        if closing:
            peer.active_since = None
        elif peer.active_since is not None:
            logger.warning(
                "lost the TCP streaming connection with peer %s (stream writer): %s", peer.name, reason
            )
            peer.active_since = None
            peer.warned = True  # no "cannot reach" on top, until it has been active again
        elif not peer.warned:
            logger.warning("cannot reach peer %s at %s: %s", peer.name, url, reason)
            peer.warned = True
        # Messages queued or in flight on the broken stream are lost: tell Raft (etcd does too),
        # so that the leader probes this follower instead of assuming its appends arrived.
        lost = was_active
        while not peer.queue.empty():
            lost = peer.queue.get_nowait() is not None or lost
        peer.queued = 0
        if lost and not closing:
            self._report_unreachable(peer.id)

    def _batches(self, to: int, msgs: list[Message]) -> list[raft_pb2.MessageBatch]:
        """``msgs`` as one MessageBatch, or several in order if it would be too large."""
        batch = raft_pb2.MessageBatch(
            cluster_id=self._rpc.cluster_id, from_member_id=self._member_id, to_member_id=to
        )
        batch.messages.extend(message_to_pb(m) for m in msgs)
        # Measuring the batch costs about as much as serialising it: only when its entries
        # alone come near the limit (a message adds tens of bytes besides its entries' data).
        # (At most QUEUE_MESSAGES messages are queued, so half the limit leaves ample room.)
        small = _entry_bytes(msgs) <= BATCH_SPLIT_BYTES // 2
        if len(msgs) == 1 or small or batch.ByteSize() <= BATCH_SPLIT_BYTES:
            return [batch]
        half = len(msgs) // 2
        return self._batches(to, msgs[:half]) + self._batches(to, msgs[half:])

    async def _hello(self, peer: _Peer, stub: Any) -> None:
        """Ask the member at the other end who it is; raise _PeerRejected if it is not ``peer``."""
        request = raft_pb2.HelloRequest(
            cluster_id=self._rpc.cluster_id,
            from_member_id=self._member_id,
            to_member_id=peer.id,
            protocol_version=PROTOCOL_VERSION,
            server_version=__version__,
            cluster_version=CLUSTER_VERSION,
        )
        response = await stub.Hello(request, timeout=HELLO_TIMEOUT)
        if response.reject_reason:
            raise _PeerRejected(f"peer refused us: {response.reject_reason}")
        if response.member_id != peer.id:
            raise _PeerRejected(f"member {format_id(response.member_id)} answered instead of {peer.name}")
        if clusters_differ(response.cluster_id, self._rpc.cluster_id):
            raise _PeerRejected(
                f"cluster ID mismatch: peer {peer.name} is in cluster {format_id(response.cluster_id)}, "
                f"this member is in cluster {format_id(self._rpc.cluster_id)}"
            )

    async def _run_prober(self, peer: _Peer) -> None:
        """Every PROBE_INTERVAL, Hello over the writer's connection: RTT, and liveness."""
        while True:
            await asyncio.sleep(PROBE_INTERVAL)
            channel, call = peer.channel, peer.call
            if channel is None:
                continue
            started = time.monotonic()
            try:
                await self._hello(peer, peer_stub(channel))
            except Exception as e:  # also UsageError if the writer closed the channel meanwhile
                if peer.call is call:  # still the stream we probed
                    peer.reset(f"probe failed: {describe_error(e)}")
                continue
            PEER_RTT.labels(To=peer.name).observe(time.monotonic() - started)

    # --- snapshots ---------------------------------------------------------------------------

    def _start_snapshot(self, m: Message, body: SnapshotBody | None = None) -> None:
        peer = self._peers.get(m.to)
        if peer is None or self._stopped:
            logger.debug("dropped MsgSnap to unknown peer %s", format_id(m.to))
            if body is not None:
                body.close()
            return
        task = asyncio.create_task(self._send_snapshot(peer, m, body), name=f"transport-snap-{peer.name}")
        self._keep(task)

    def send_snapshot(self, m: Message, body: SnapshotBody) -> None:
        """Send a MsgSnap whose snapshot names a database (``m.snapshot.data`` is its header)
        and stream that database from ``body`` (made off the loop, closed when done)."""
        self._start_snapshot(m, body)

    async def _send_snapshot(self, peer: _Peer, m: Message, body: SnapshotBody | None) -> None:
        snap = m.snapshot or Snapshot()
        url = peer.url or peer.urls[0]
        what = f"snapshot (index {snap.metadata.index}) to peer {peer.name}"
        logger.info("sending %s at %s", what, url)
        try:
            if m.snapshot is None:
                raise ValueError("MsgSnap without a snapshot")
            size = await self._stream_snapshot(peer, m, m.snapshot, url, body)
        except Exception as e:  # AioRpcError, or ValueError from the checks
            logger.warning("failed to send %s: %s", what, describe_error(e))
            self._report_unreachable(peer.id)
            self._report_snapshot(peer.id, False)
            return
        finally:
            if body is not None:
                body.close()
        logger.info("sent %s, %d bytes", what, size)
        self._report_snapshot(peer.id, True)

    async def _stream_snapshot(
        self, peer: _Peer, m: Message, snap: Snapshot, url: str, body: SnapshotBody | None
    ) -> int:
        """Header, 1 MiB data chunks, SHA-256 trailer, on a connection of its own so that a
        large transfer does not hold up heartbeats on the Send stream. The data is the
        snapshot's own bytes, or (with ``body``) the database the snapshot names, copied off
        the loop; then the header carries the snapshot with its (small) data."""
        if body is None:
            total = len(snap.data)
            header_msg = dataclasses.replace(m, snapshot=Snapshot(metadata=snap.metadata))
            chunks: AsyncIterator[bytes] = _slices(snap.data, SNAPSHOT_CHUNK_BYTES)
        else:
            total = await body.prepare()
            header_msg = m
            chunks = body.chunks(SNAPSHOT_CHUNK_BYTES)
        header = raft_pb2.SnapshotHeader(
            cluster_id=self._rpc.cluster_id,
            from_member_id=self._member_id,
            to_member_id=peer.id,
            message=message_to_pb(header_msg),
            total_size=total,
        )
        channel = await self._open_channel(url)
        try:
            timeout = SNAPSHOT_TIMEOUT_BASE + total / SNAPSHOT_MIN_BYTES_PER_SECOND
            call = peer_stub(channel).SendSnapshot(timeout=timeout)
            await call.write(raft_pb2.SnapshotChunk(header=header))
            digest = hashlib.sha256()
            async for chunk in chunks:
                digest.update(chunk)
                await call.write(raft_pb2.SnapshotChunk(data=chunk))
            await call.write(raft_pb2.SnapshotChunk(trailer=raft_pb2.SnapshotTrailer(sha256=digest.digest())))
            await call.done_writing()
            ack = await call
            if ack.received_bytes != total:
                raise ValueError(f"peer acknowledged {ack.received_bytes} of {total} bytes")
        finally:
            await channel.close(grace=None)
        return total

    # --- callbacks and helpers ---------------------------------------------------------------

    def _deliver(self, m: Message) -> None:
        self._call_back(self._on_message, m)

    def _report_unreachable(self, member_id: int) -> None:
        self._call_back(self._on_unreachable, member_id)

    def _report_snapshot(self, member_id: int, ok: bool) -> None:
        self._call_back(self._on_snapshot_status, member_id, ok)

    @staticmethod
    def _call_back(fn: Callable[..., None], *args: object) -> None:
        """Call the Raft node; a bug there must not kill a stream, a writer or the server."""
        try:
            fn(*args)
        except Exception:
            logger.exception("transport callback %s%r failed", getattr(fn, "__name__", fn), args)

    async def open_channel(self, url: str) -> Any:
        """A new channel to a peer URL, dialled as the writers dial (TLS, lab routes)."""
        return await self._open_channel(url)

    async def _open_channel(self, url: str) -> Any:
        if self._channel_factory is not None:
            return await self._channel_factory(url, CHANNEL_OPTIONS)
        return open_peer_channel(url, self._channel_credentials)

    def _keep(self, task: asyncio.Task[None]) -> None:
        """Hold a reference to a background task until it ends (stop() cancels the rest)."""
        self._background.add(task)
        task.add_done_callback(self._background.discard)


async def _slices(data: bytes, size: int) -> AsyncIterator[bytes]:
    for offset in range(0, len(data), size):
        yield data[offset : offset + size]


def _entry_bytes(msgs: list[Message]) -> int:
    return sum(len(e.data) for m in msgs for e in m.entries) + sum(
        len(m.snapshot.data) for m in msgs if m.snapshot is not None
    )


def _check_urls(urls: list[str]) -> None:
    if not urls:
        raise ConfigError("a peer needs at least one peer URL")
    for url in urls:
        parse_url(url)


async def _call_status(call: Any) -> str:
    code = await call.code()
    return f"{code.name}: {await call.details()}"
