"""The receiving half of the peer protocol: the ``RaftPeer`` gRPC service (raftpb/raft.proto).

Every request names the cluster and both members. As etcd's rafthttp does with its
``X-Etcd-Cluster-ID`` header and sender lookup, a request whose cluster id is not ours (a
missing, i.e. zero, one included), that is meant for another member, whose sender is not a
member we know (``is_member``) or has been removed is refused with FAILED_PRECONDITION; the
refusal names only what the caller sent, never our ids, and is logged once per sender and
reason. Input is parsed here, not by gRPC, so garbage is refused with INVALID_ARGUMENT (a broken
snapshot stream with DATA_LOSS) instead of an opaque error; terms and indexes above 2^63-1 count
as garbage (raft_codec). Accepted messages go to ``deliver`` one by one, in the order the sender
produced them.

``HashKV`` is etcd's GET /members/hashkv: the hash of this member's key space at a revision,
for a member running the initial corruption check (corrupt.py); members only.

``Members`` is etcd's GET /members on the peer port: a joining member learns the cluster id and
member list from it. Unlike etcd, it answers only a caller that names the peer URLs of a member
added but not yet started (see MembersRequest in raft.proto). The sending half is
:mod:`minietcd.server.transport`, which owns one :class:`PeerService` and keeps its
``cluster_id`` and ``removed`` up to date.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final, NoReturn, TypeVar

import grpc
from google.protobuf.message import DecodeError
from google.protobuf.message import Message as PbMessage

from minietcd import ETCD_API_VERSION, __version__
from minietcd.api.raftpb import raft_pb2
from minietcd.errors import CompactedRevisionError, FutureRevisionError
from minietcd.mvcc import HashKVResult
from minietcd.raft.types import LOCAL_MESSAGES, Message, MessageType, Snapshot
from minietcd.server.ids import format_id
from minietcd.server.snapshot_files import FileSink
from minietcd.wire.raft_codec import message_from_pb

#: Where the database of an incoming snapshot goes, given its MsgSnap (see snapshot_files).
SnapshotSinkFactory = Callable[[Message], FileSink]
#: The member's HashKV at a revision (StateMachine.hash_kv); raises the mvcc revision errors.
HashKVProvider = Callable[[int], Awaitable[HashKVResult]]

__all__ = ["CLUSTER_VERSION", "PROTOCOL_VERSION", "SERVICE", "PeerService", "clusters_differ"]

logger = logging.getLogger(__name__)

PROTOCOL_VERSION: Final = 1  # HelloRequest.protocol_version this code speaks
CLUSTER_VERSION: Final = ".".join(ETCD_API_VERSION.split(".")[:2]) + ".0"  # "3.4.0", as etcd shows it
SERVICE: Final = "minietcd.raftpb.RaftPeer"

_Pb = TypeVar("_Pb", bound=PbMessage)


class _Refused(Exception):
    """A request this member will not take; the handler ends the RPC with code and details."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


class PeerService:
    """``RaftPeer`` for one member: checks who is talking, parses, hands messages to Raft."""

    def __init__(
        self,
        *,
        cluster_id: int,
        member_id: int,
        deliver: Callable[[Message], None],
        is_member: Callable[[int], bool],
        members_provider: Callable[[], raft_pb2.MembersResponse] | None = None,
        snapshot_sink: SnapshotSinkFactory | None = None,
        hash_kv: HashKVProvider | None = None,
    ) -> None:
        self.cluster_id = cluster_id  # 0 = not known yet (accepts any cluster)
        self.removed: set[int] = set()  # members removed from the cluster: refused forever
        self._member_id = member_id
        self._deliver = deliver
        self._is_member = is_member  # senders we take messages from (the transport's peers)
        self._members_provider = members_provider
        self._warned: set[tuple[str, int]] = set()  # (reason, sender) refusals already logged
        self._snapshot_sink = snapshot_sink
        self._hash_kv = hash_kv

    def handlers(self) -> grpc.GenericRpcHandler:
        """RaftPeer's methods. Requests arrive as raw bytes (no request_deserializer) so that
        a malformed one is refused with INVALID_ARGUMENT by us rather than failed by gRPC."""

        def stream(fn: Callable[[AsyncIterator[bytes]], Awaitable[PbMessage]]) -> grpc.RpcMethodHandler:
            async def handler(requests: AsyncIterator[bytes], context: Any) -> PbMessage:
                try:
                    return await fn(requests)
                except _Refused as e:
                    await _abort(context, e)

            return grpc.stream_unary_rpc_method_handler(handler, response_serializer=_serialize)

        def unary(fn: Callable[[bytes], Awaitable[PbMessage]]) -> grpc.RpcMethodHandler:
            async def handler(request: bytes, context: Any) -> PbMessage:
                try:
                    return await fn(request)
                except _Refused as e:
                    await _abort(context, e)

            return grpc.unary_unary_rpc_method_handler(handler, response_serializer=_serialize)

        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "Send": stream(self._serve_send),
                "SendSnapshot": stream(self._serve_snapshot),
                "Hello": unary(self._serve_hello),
                "Members": unary(self._serve_members),
                "HashKV": unary(self._serve_hash_kv),
            },
        )

    async def _serve_send(self, requests: AsyncIterator[bytes]) -> raft_pb2.SendAck:
        batches = stepped = 0
        sender: int | None = None
        async for raw in requests:
            batch = _parse(raft_pb2.MessageBatch, raw, "MessageBatch")
            self._check_route(batch.cluster_id, batch.from_member_id, batch.to_member_id)
            if sender is None:
                sender = batch.from_member_id
                logger.debug("peer %s opened a message stream (stream reader)", format_id(sender))
            msgs = [self._decode(pb, batch.from_member_id) for pb in batch.messages]  # all, then step
            if any(m.type == MessageType.MsgSnap for m in msgs):
                raise _Refused(grpc.StatusCode.INVALID_ARGUMENT, "MsgSnap must be sent with SendSnapshot")
            for m in msgs:
                if m.type in LOCAL_MESSAGES:  # never sent by a correct peer; harmless to skip
                    logger.debug("dropped local message %s from peer %s", m.type.name, format_id(m.from_))
                    continue
                self._deliver(m)
                stepped += 1
            batches += 1
        return raft_pb2.SendAck(batches=batches, messages=stepped)

    async def _serve_snapshot(self, requests: AsyncIterator[bytes]) -> raft_pb2.SnapshotAck:
        invalid = grpc.StatusCode.INVALID_ARGUMENT
        chunks = aiter(requests)
        first = await anext(chunks, None)
        chunk = None if first is None else _parse(raft_pb2.SnapshotChunk, first, "SnapshotChunk")
        if chunk is None or chunk.WhichOneof("part") != "header":
            raise _Refused(invalid, "a snapshot stream must start with a header")
        header = chunk.header
        self._check_route(header.cluster_id, header.from_member_id, header.to_member_id)
        m = self._decode(header.message, header.from_member_id)
        if m.type != MessageType.MsgSnap or m.snapshot is None:
            raise _Refused(invalid, f"snapshot header carries {m.type.name}, not MsgSnap with a snapshot")
        total = header.total_size
        if not m.snapshot.data:
            data = await self._receive_chunks(chunks, total, None)
            snapshot = Snapshot(data=data, metadata=m.snapshot.metadata)
        else:
            # The snapshot names a database; the chunks are that database, kept on disk.
            if self._snapshot_sink is None:
                raise _Refused(grpc.StatusCode.FAILED_PRECONDITION, "this member takes no database snapshots")
            sink = self._snapshot_sink(m)
            try:
                await self._receive_chunks(chunks, total, sink)
            except BaseException:
                sink.abort()
                raise
            sink.finish()
            snapshot = m.snapshot
        logger.info(
            "received snapshot (index %d, %d bytes) from peer %s",
            m.snapshot.metadata.index,
            total,
            format_id(m.from_),
        )
        self._deliver(dataclasses.replace(m, snapshot=snapshot))
        return raft_pb2.SnapshotAck(received_bytes=total)

    async def _receive_chunks(self, chunks: AsyncIterator[bytes], total: int, sink: FileSink | None) -> bytes:
        """Read data chunks up to the trailer and check them; into ``sink``, or returned."""
        invalid, data_loss = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.DATA_LOSS
        data = bytearray()
        received = 0
        digest = hashlib.sha256()
        trailer: raft_pb2.SnapshotTrailer | None = None
        async for raw in chunks:
            chunk = _parse(raft_pb2.SnapshotChunk, raw, "SnapshotChunk")
            part = chunk.WhichOneof("part")
            if trailer is not None or part not in ("data", "trailer"):
                where = "after the trailer" if trailer is not None else "in a snapshot stream"
                raise _Refused(invalid, f"unexpected {part or 'empty'} chunk {where}")
            if part == "trailer":
                trailer = chunk.trailer
                continue
            if received + len(chunk.data) > total:
                raise _Refused(data_loss, f"snapshot data exceeds the announced {total} bytes")
            received += len(chunk.data)
            if sink is None:
                data += chunk.data
            else:
                sink.write(chunk.data)
            digest.update(chunk.data)
        if trailer is None:
            raise _Refused(
                data_loss, f"snapshot stream ended before its trailer ({received} of {total} bytes)"
            )
        if received != total:
            raise _Refused(data_loss, f"snapshot has {received} bytes, the header announced {total}")
        if digest.digest() != trailer.sha256:
            raise _Refused(data_loss, "snapshot checksum mismatch (sha256)")
        return bytes(data)

    async def _serve_hello(self, raw: bytes) -> raft_pb2.HelloResponse:
        request = _parse(raft_pb2.HelloRequest, raw, "HelloRequest")
        reason = self._route_problem(request.cluster_id, request.from_member_id, request.to_member_id)
        if reason is None and request.protocol_version != PROTOCOL_VERSION:
            reason = (
                f"peer protocol version {request.protocol_version} is not supported "
                f"(this member speaks {PROTOCOL_VERSION})"
            )
        if reason is not None:  # a refusal tells a stranger nothing about us
            return raft_pb2.HelloResponse(protocol_version=PROTOCOL_VERSION, reject_reason=reason)
        return raft_pb2.HelloResponse(
            cluster_id=self.cluster_id,
            member_id=self._member_id,
            protocol_version=PROTOCOL_VERSION,
            server_version=__version__,
            cluster_version=CLUSTER_VERSION,
        )

    async def _serve_members(self, raw: bytes) -> raft_pb2.MembersResponse:
        request = _parse(raft_pb2.MembersRequest, raw, "MembersRequest")
        if self._members_provider is None:
            raise _Refused(grpc.StatusCode.UNAVAILABLE, "this member does not serve the member list")
        try:
            response = self._members_provider()
        except Exception as e:
            logger.exception("members_provider failed")
            raise _Refused(grpc.StatusCode.UNAVAILABLE, f"member list unavailable: {e}") from e
        asking = set(request.peer_urls)
        if not any(not m.name and asking & set(m.peer_urls) for m in response.members):
            self._warn_once("members", 0, "refused the member list to a caller that is not a joining member")
            raise _Refused(
                grpc.StatusCode.PERMISSION_DENIED,
                "the member list is served only to a member added to the cluster and not yet started",
            )
        return response

    async def _serve_hash_kv(self, raw: bytes) -> raft_pb2.PeerHashKVResponse:
        request = _parse(raft_pb2.PeerHashKVRequest, raw, "PeerHashKVRequest")
        self._check_route(request.cluster_id, request.from_member_id, request.to_member_id)
        if self._hash_kv is None:
            raise _Refused(grpc.StatusCode.UNAVAILABLE, "this member does not serve HashKV")
        response = raft_pb2.PeerHashKVResponse(member_id=self._member_id)
        try:
            r = await self._hash_kv(request.revision)
        except CompactedRevisionError:
            response.problem = raft_pb2.PeerHashKVCompacted
        except FutureRevisionError:
            response.problem = raft_pb2.PeerHashKVFutureRev
        else:
            response.revision, response.hash = r.revision, r.hash
            response.compact_revision = r.compact_revision
        return response

    def _route_problem(self, cluster_id: int, from_id: int, to_id: int) -> str | None:
        """Why a request naming these ids is not for us, or None if it is. The reason is sent
        back, so it repeats only what the caller said; the log line has both sides."""
        sender = format_id(from_id)
        if self.cluster_id != 0 and cluster_id != self.cluster_id:  # 0 = missing: refused too
            got, want = format_id(cluster_id), format_id(self.cluster_id)
            self._warn_once("cluster", from_id, f"request cluster ID mismatch (got {got} want {want})")
            return f"cluster ID mismatch: member {sender} sent cluster ID {format_id(cluster_id)}"
        if to_id != self._member_id:
            return f"member ID mismatch: request for member {format_id(to_id)} reached another member"
        if from_id in self.removed:
            self._warn_once("removed", from_id, f"rejected the stream from peer {sender}: it was removed")
            return f"member {sender} has been removed from the cluster"
        if not self._is_member(from_id):
            cluster = format_id(self.cluster_id)
            self._warn_once("unknown", from_id, f"failed to find member {sender} in cluster {cluster}")
            return f"error sender not found: member {sender} is not a member of this cluster"
        return None

    def _warn_once(self, reason: str, sender: int, line: str) -> None:
        """Log a refusal once per (reason, sender): a stranger cannot flood the log."""
        if (reason, sender) in self._warned:
            return
        if len(self._warned) >= 1024:
            self._warned.clear()
        self._warned.add((reason, sender))
        logger.warning("%s", line)

    def _check_route(self, cluster_id: int, from_id: int, to_id: int) -> None:
        reason = self._route_problem(cluster_id, from_id, to_id)
        if reason is not None:
            raise _Refused(grpc.StatusCode.FAILED_PRECONDITION, reason)

    def _decode(self, pb: raft_pb2.Message, sender: int) -> Message:
        try:
            m = message_from_pb(pb)
        except DecodeError as e:
            raise _Refused(grpc.StatusCode.INVALID_ARGUMENT, f"malformed Raft message: {e}") from e
        if m.from_ != sender or m.to != self._member_id:
            raise _Refused(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"{m.type.name} from {format_id(m.from_)} to {format_id(m.to)} "
                f"on a stream from {format_id(sender)} to {format_id(self._member_id)}",
            )
        return m


def clusters_differ(a: int, b: int) -> bool:
    """Two cluster ids conflict only if both are known (0 = a joining member's "not yet")."""
    return a != 0 and b != 0 and a != b


def _parse(cls: type[_Pb], raw: bytes, what: str) -> _Pb:
    try:
        return cls.FromString(raw)
    except DecodeError as e:
        raise _Refused(grpc.StatusCode.INVALID_ARGUMENT, f"malformed {what}: {e}") from e


def _serialize(message: PbMessage) -> bytes:
    return message.SerializeToString()


async def _abort(context: Any, refused: _Refused) -> NoReturn:
    await context.abort(refused.code, refused.details)
    raise AssertionError("unreachable: context.abort raises")
