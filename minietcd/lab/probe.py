"""One-shot questions to one member over gRPC (etcd's v3 API) and HTTP (/health).

Each call opens its own channel with a deadline and returns a result or an error text; nothing
here retries (callers poll with their own deadlines).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

import grpc

from minietcd.api.etcdserverpb import rpc_pb2
from minietcd.api.etcdserverpb import rpc_pb2_grpc as _rpc_grpc_untyped

# The generated gRPC stubs are untyped; use them through Any.
rpc_pb2_grpc: Any = _rpc_grpc_untyped


@dataclass(slots=True, frozen=True)
class Status:
    member_id: int
    leader: int
    term: int
    raft_index: int
    applied_index: int
    revision: int
    is_learner: bool

    @property
    def is_leader(self) -> bool:
        return self.leader != 0 and self.leader == self.member_id


class ProbeError(Exception):
    """The member did not answer, or answered with an error (the text says which)."""


def _target(port: int) -> str:
    return f"127.0.0.1:{port}"


def _describe(e: grpc.RpcError) -> str:
    code = e.code() if hasattr(e, "code") else None
    details = e.details() if hasattr(e, "details") else str(e)
    return f"{getattr(code, 'name', code)}: {details}"


def _call(port: int, fn: Any) -> Any:
    try:
        with grpc.insecure_channel(_target(port)) as ch:
            return fn(ch)
    except grpc.RpcError as e:
        raise ProbeError(_describe(e)) from None


def status(port: int, timeout: float = 1.0) -> Status:
    def run(ch: Any) -> Status:
        st = rpc_pb2_grpc.MaintenanceStub(ch).Status(rpc_pb2.StatusRequest(), timeout=timeout)
        return Status(
            member_id=int(st.header.member_id),
            leader=int(st.leader),
            term=int(st.raftTerm),
            raft_index=int(st.raftIndex),
            applied_index=int(st.raftAppliedIndex),
            revision=int(st.header.revision),
            is_learner=bool(st.isLearner),
        )

    result: Status = _call(port, run)
    return result


def put(port: int, key: str, value: str, timeout: float) -> int:
    """A put (always linearizable); returns the revision it made."""

    def run(ch: Any) -> int:
        req = rpc_pb2.PutRequest(key=key.encode(), value=value.encode())
        r = rpc_pb2_grpc.KVStub(ch).Put(req, timeout=timeout)
        return int(r.header.revision)

    result: int = _call(port, run)
    return result


def get(port: int, key: str, timeout: float, serializable: bool = False) -> str | None:
    """The value of ``key`` (None if absent); linearizable unless ``serializable``."""

    def run(ch: Any) -> str | None:
        req = rpc_pb2.RangeRequest(key=key.encode(), serializable=serializable)
        r = rpc_pb2_grpc.KVStub(ch).Range(req, timeout=timeout)
        return r.kvs[0].value.decode() if r.kvs else None

    result: str | None = _call(port, run)
    return result


def hash_kv(port: int, revision: int, timeout: float = 2.0) -> tuple[int, int]:
    """(hash, compact revision) of the store up to ``revision`` (etcd's HashKV)."""

    def run(ch: Any) -> tuple[int, int]:
        r = rpc_pb2_grpc.MaintenanceStub(ch).HashKV(rpc_pb2.HashKVRequest(revision=revision), timeout=timeout)
        return int(r.hash), int(r.compact_revision)

    result: tuple[int, int] = _call(port, run)
    return result


def health(metrics_port: int, timeout: float = 1.0) -> str:
    """``ok``, or why not: etcd's /health body reason ("RAFT NO LEADER"), or the error."""
    url = f"http://127.0.0.1:{metrics_port}/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as e:
        try:
            body = json.loads(e.read() or b"{}")
        except ValueError:
            return f"HTTP {e.code}"
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        return f"unreachable ({reason})"
    if body.get("health") == "true":
        return "ok"
    return str(body.get("reason") or "unhealthy")


@dataclass(slots=True, frozen=True)
class ListedMember:
    """One entry of MemberList (``name`` is empty until the member has published it)."""

    id: int
    name: str
    peer_urls: tuple[str, ...]
    is_learner: bool


def member_list(port: int, timeout: float = 2.0) -> list[ListedMember]:
    """The members as ``port``'s member sees them (etcd's MemberList, linearizable in 3.4)."""

    def run(ch: Any) -> list[ListedMember]:
        r = rpc_pb2_grpc.ClusterStub(ch).MemberList(rpc_pb2.MemberListRequest(), timeout=timeout)
        return [ListedMember(int(m.ID), str(m.name), tuple(m.peerURLs), bool(m.isLearner)) for m in r.members]

    result: list[ListedMember] = _call(port, run)
    return result


def member_add(port: int, peer_urls: list[str], timeout: float = 5.0) -> int:
    """etcd's MemberAdd (a voter) through ``port``'s member; returns the new member's id."""

    def run(ch: Any) -> int:
        req = rpc_pb2.MemberAddRequest(peerURLs=peer_urls)
        return int(rpc_pb2_grpc.ClusterStub(ch).MemberAdd(req, timeout=timeout).member.ID)

    result: int = _call(port, run)
    return result


def member_remove(port: int, member_id: int, timeout: float = 5.0) -> None:
    """etcd's MemberRemove through ``port``'s member (returns once that member applied it)."""

    def run(ch: Any) -> None:
        rpc_pb2_grpc.ClusterStub(ch).MemberRemove(rpc_pb2.MemberRemoveRequest(ID=member_id), timeout=timeout)

    _call(port, run)


def move_leader(port: int, target_id: int, timeout: float = 5.0) -> None:
    """etcd's MoveLeader sent to ``port``'s member (it must be the leader): it hands the
    leadership to ``target_id`` and answers once the transfer is done."""

    def run(ch: Any) -> None:
        req = rpc_pb2.MoveLeaderRequest(targetID=target_id)
        rpc_pb2_grpc.MaintenanceStub(ch).MoveLeader(req, timeout=timeout)

    _call(port, run)


def get_prefix(port: int, prefix: str, timeout: float = 2.0) -> list[tuple[str, str, int]]:
    """(key, value, create revision) of every key under ``prefix``, read serializably (the
    member's own view: it answers without a leader)."""
    end = prefix[:-1] + chr(ord(prefix[-1]) + 1) if prefix else "\0"

    def run(ch: Any) -> list[tuple[str, str, int]]:
        req = rpc_pb2.RangeRequest(key=prefix.encode(), range_end=end.encode(), serializable=True)
        r = rpc_pb2_grpc.KVStub(ch).Range(req, timeout=timeout)
        return [(kv.key.decode(), kv.value.decode(), int(kv.create_revision)) for kv in r.kvs]

    result: list[tuple[str, str, int]] = _call(port, run)
    return result
