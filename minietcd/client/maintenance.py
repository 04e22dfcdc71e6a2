"""Maintenance: member status, history hashes, alarms, defragmentation, snapshots and
leadership transfer.

Most of these are about one member, so they take an ``endpoint`` (default: the next endpoint in
turn, with failover for the read-only ones).

Example::

    for ep in client.endpoints:
        st = await client.status(endpoint=ep)
        print(ep, st.version, st.db_size, "leader" if st.is_leader else "follower", st.raft_index)
    size = await client.snapshot("backup.db", endpoint=client.endpoints[0])
    await client.move_leader(other_member_id)
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import grpc

from minietcd.api.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from minietcd.client._connection import _Member
from minietcd.client.errors import ClientError, from_rpc_error
from minietcd.client.results import (
    AlarmResponse,
    AlarmType,
    DefragmentResponse,
    HashKVResponse,
    MoveLeaderResponse,
    ResponseHeader,
    StatusResponse,
)

if TYPE_CHECKING:
    from minietcd.client._connection import Connection

__all__ = ["MaintenanceMixin"]

_SHA256_SIZE = 32


class MaintenanceMixin:
    """Maintenance calls of :class:`~minietcd.client.Client`."""

    _conn: Connection

    async def status(self, *, endpoint: str | None = None, timeout: float | None = None) -> StatusResponse:
        """A member's status: version, db size, leader, Raft term and indexes, errors."""
        resp = await self._conn.unary(
            rpc_pb2_grpc.MaintenanceStub,
            "Status",
            rpc_pb2.StatusRequest(),
            idempotent=True,
            timeout=timeout,
            endpoint=endpoint,
        )
        return StatusResponse.from_pb(resp)

    async def hash_kv(
        self, *, endpoint: str | None = None, revision: int = 0, timeout: float | None = None
    ) -> HashKVResponse:
        """The hash of a member's key-value history up to ``revision`` (0: all of it)."""
        resp = await self._conn.unary(
            rpc_pb2_grpc.MaintenanceStub,
            "HashKV",
            rpc_pb2.HashKVRequest(revision=revision),
            idempotent=True,
            timeout=timeout,
            endpoint=endpoint,
        )
        return HashKVResponse.from_pb(resp)

    async def _alarm(self, req: rpc_pb2.AlarmRequest, idempotent: bool, timeout: float | None) -> Any:
        return await self._conn.unary(
            rpc_pb2_grpc.MaintenanceStub, "Alarm", req, idempotent=idempotent, timeout=timeout
        )

    async def alarm_list(self, *, timeout: float | None = None) -> AlarmResponse:
        """The raised alarms (NOSPACE, CORRUPT) of all members."""
        req = rpc_pb2.AlarmRequest(action=rpc_pb2.AlarmRequest.GET)
        return AlarmResponse.from_pb(await self._alarm(req, True, timeout))

    async def alarm_activate(
        self, member_id: int, alarm: AlarmType, *, timeout: float | None = None
    ) -> AlarmResponse:
        """Raise an alarm for a member (what a member does itself when it runs out of space)."""
        req = rpc_pb2.AlarmRequest(
            action=rpc_pb2.AlarmRequest.ACTIVATE,
            memberID=member_id,
            alarm=alarm.value,  # type: ignore[arg-type]  # protoc .pyi: enum fields want the enum type, not its int
        )
        return AlarmResponse.from_pb(await self._alarm(req, False, timeout))

    async def alarm_disarm(
        self, member_id: int = 0, alarm: AlarmType = AlarmType.NONE, *, timeout: float | None = None
    ) -> AlarmResponse:
        """Clear an alarm; with no arguments, clear every raised alarm (one request each, as
        etcd's client does: the result then has an empty header and the cleared alarms)."""
        if member_id == 0 and alarm == AlarmType.NONE:
            listed = await self.alarm_list(timeout=timeout)
            raw = rpc_pb2.AlarmResponse()
            for a in listed.alarms:
                one = await self.alarm_disarm(a.member_id, a.alarm, timeout=timeout)
                raw.alarms.extend(one.raw.alarms)
            return AlarmResponse.from_pb(raw)
        req = rpc_pb2.AlarmRequest(
            action=rpc_pb2.AlarmRequest.DEACTIVATE,
            memberID=member_id,
            alarm=alarm.value,  # type: ignore[arg-type]  # protoc .pyi: enum fields want the enum type, not its int
        )
        return AlarmResponse.from_pb(await self._alarm(req, False, timeout))

    async def defragment(
        self, *, endpoint: str | None = None, timeout: float | None = None
    ) -> DefragmentResponse:
        """Defragment a member's backend (it stalls while doing so)."""
        resp = await self._conn.unary(
            rpc_pb2_grpc.MaintenanceStub,
            "Defragment",
            rpc_pb2.DefragmentRequest(),
            idempotent=True,
            timeout=timeout,
            endpoint=endpoint,
        )
        return DefragmentResponse(ResponseHeader.from_pb(resp.header), resp)

    async def find_leader(self, *, timeout: float | None = None) -> tuple[str, StatusResponse]:
        """The endpoint (of this client's) whose member is the leader, and its status.
        Endpoints that do not answer are skipped; raises :class:`ClientError` if none of the
        others is the leader."""
        last: Exception | None = None
        for ep in self._conn.endpoints:
            try:
                st = await self.status(endpoint=ep, timeout=timeout)
            except ClientError as e:
                last = e
                continue
            if st.is_leader:
                return ep, st
        detail = f" (last error: {last})" if last is not None else ""
        raise ClientError(f"no leader endpoint given at [{' '.join(self._conn.endpoints)}]{detail}")

    async def move_leader(
        self, target_id: int, *, endpoint: str | None = None, timeout: float | None = None
    ) -> MoveLeaderResponse:
        """Transfer leadership to member ``target_id``. The request must reach the current
        leader: by default the client finds it among its endpoints (:meth:`find_leader`)."""
        if endpoint is None:
            endpoint, _ = await self.find_leader(timeout=timeout)
        resp = await self._conn.unary(
            rpc_pb2_grpc.MaintenanceStub,
            "MoveLeader",
            rpc_pb2.MoveLeaderRequest(targetID=target_id),
            idempotent=False,
            timeout=timeout,
            endpoint=endpoint,
        )
        return MoveLeaderResponse(ResponseHeader.from_pb(resp.header), resp)

    async def snapshot_stream(
        self, *, endpoint: str | None = None, timeout: float = math.inf
    ) -> AsyncIterator[bytes]:
        """The member's backend snapshot as a stream of chunks (the last 32 bytes are the
        SHA-256 of everything before them). ``timeout`` bounds the whole transfer (default:
        none)."""
        md = await self._conn.metadata()
        grpc_timeout = None if math.isinf(timeout) else timeout

        def open_call(m: _Member) -> Any:
            return self._conn.stub(m, rpc_pb2_grpc.MaintenanceStub).Snapshot(
                rpc_pb2.SnapshotRequest(), metadata=md, timeout=grpc_timeout
            )

        connect_timeout = None if math.isinf(timeout) else timeout  # connecting: the client default
        _, call = await self._conn.open_stream(open_call, timeout=connect_timeout, endpoint=endpoint)
        try:
            async for resp in call:
                if resp.blob:
                    yield resp.blob
        except grpc.aio.AioRpcError as e:
            raise from_rpc_error(e) from e
        finally:
            call.cancel()

    async def snapshot(self, path: str | os.PathLike[str], *, endpoint: str | None = None,
                       timeout: float = math.inf) -> int:  # fmt: skip
        """Save a member's snapshot to ``path`` (written to ``path.part``, checked against its
        SHA-256 trailer, synced, then renamed); returns its size in bytes."""
        path = os.fspath(path)
        part = path + ".part"
        digest = hashlib.sha256()
        tail = b""
        size = 0
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                async for chunk in self.snapshot_stream(endpoint=endpoint, timeout=timeout):
                    f.write(chunk)
                    size += len(chunk)
                    data = tail + chunk
                    digest.update(data[:-_SHA256_SIZE])
                    tail = data[-_SHA256_SIZE:]
                if size < _SHA256_SIZE or digest.digest() != tail:
                    raise ClientError(f"sha256 checksum not found [bytes: {size}]")
                f.flush()
                os.fsync(f.fileno())
            os.replace(part, path)
        finally:
            if os.path.exists(part):
                os.unlink(part)
        return size
