"""The application API's one gate: every operation is admitted first, under its own Op, and
admission answers as etcd's interceptors do (learner refusals, ``hasleader``)."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import grpc
import pytest
from google.protobuf.message import Message

from minietcd.api.etcdserverpb import rpc_pb2
from minietcd.api.v3electionpb import v3election_pb2
from minietcd.api.v3lockpb import v3lock_pb2
from minietcd.errors import (
    LeaseNotFoundError,
    NoLeaderError,
    NotSupportedForLearnerError,
    RequestTimeoutError,
)
from minietcd.lease.lessor import Lessor
from minietcd.mvcc import KVStore, WatchHub
from minietcd.mvcc.backend import Backend
from minietcd.server.api import Api, Op, RequestContext
from minietcd.server.api.admission import Admission
from minietcd.server.api.forward import reply_error
from minietcd.server.auth.store import AuthStore


class Member:
    """What admission (and the API's constructors) read of a member."""

    def __init__(self, *, learner: bool = False, leader: int = 1) -> None:
        self.learner = learner
        self.leader = leader
        self.sm = SimpleNamespace(lessor=Lessor(lambda: 0.0, 1), auth=AuthStore(Backend.temporary()))

    def is_learner(self) -> bool:
        return self.learner

    def header(self, revision: int | None = None) -> rpc_pb2.ResponseHeader:
        return rpc_pb2.ResponseHeader(revision=revision or 0)

    def spawn(self, coro: Any) -> None:
        coro.close()


class Admitted(Exception):
    def __init__(self, op: Op) -> None:
        self.op = op


async def _requests() -> AsyncIterator[Any]:
    if False:  # pragma: no cover  # an empty request stream
        yield


#: One request per method of the API, by facet and method name.
REQUESTS: dict[tuple[str, str], Message] = {
    ("kv", "range"): rpc_pb2.RangeRequest(key=b"k"),
    ("kv", "put"): rpc_pb2.PutRequest(key=b"k"),
    ("kv", "delete_range"): rpc_pb2.DeleteRangeRequest(key=b"k"),
    ("kv", "txn"): rpc_pb2.TxnRequest(),
    ("kv", "compact"): rpc_pb2.CompactionRequest(revision=1),
    ("lease", "grant"): rpc_pb2.LeaseGrantRequest(TTL=5),
    ("lease", "revoke"): rpc_pb2.LeaseRevokeRequest(ID=1),
    ("lease", "time_to_live"): rpc_pb2.LeaseTimeToLiveRequest(ID=1),
    ("lease", "leases"): rpc_pb2.LeaseLeasesRequest(),
    ("cluster", "member_list"): rpc_pb2.MemberListRequest(),
    ("cluster", "member_add"): rpc_pb2.MemberAddRequest(peerURLs=["http://127.0.0.1:1"]),
    ("cluster", "member_remove"): rpc_pb2.MemberRemoveRequest(ID=1),
    ("cluster", "member_update"): rpc_pb2.MemberUpdateRequest(ID=1),
    ("cluster", "member_promote"): rpc_pb2.MemberPromoteRequest(ID=1),
    ("maintenance", "status"): rpc_pb2.StatusRequest(),
    ("maintenance", "hash"): rpc_pb2.HashRequest(),
    ("maintenance", "hash_kv"): rpc_pb2.HashKVRequest(),
    ("maintenance", "alarm"): rpc_pb2.AlarmRequest(),
    ("maintenance", "defragment"): rpc_pb2.DefragmentRequest(),
    ("maintenance", "snapshot"): rpc_pb2.SnapshotRequest(),
    ("maintenance", "move_leader"): rpc_pb2.MoveLeaderRequest(targetID=1),
    ("lock", "lock"): v3lock_pb2.LockRequest(name=b"l"),
    ("lock", "unlock"): v3lock_pb2.UnlockRequest(key=b"l/1"),
    ("election", "campaign"): v3election_pb2.CampaignRequest(name=b"e"),
    ("election", "proclaim"): v3election_pb2.ProclaimRequest(),
    ("election", "resign"): v3election_pb2.ResignRequest(),
    ("election", "leader"): v3election_pb2.LeaderRequest(name=b"e"),
    ("election", "observe"): v3election_pb2.LeaderRequest(name=b"e"),
    ("auth", "auth_enable"): rpc_pb2.AuthEnableRequest(),
    ("auth", "auth_disable"): rpc_pb2.AuthDisableRequest(),
    ("auth", "authenticate"): rpc_pb2.AuthenticateRequest(name="u", password="p"),
    ("auth", "user_add"): rpc_pb2.AuthUserAddRequest(name="u", password="p"),
    ("auth", "user_get"): rpc_pb2.AuthUserGetRequest(name="u"),
    ("auth", "user_list"): rpc_pb2.AuthUserListRequest(),
    ("auth", "user_delete"): rpc_pb2.AuthUserDeleteRequest(name="u"),
    ("auth", "user_change_password"): rpc_pb2.AuthUserChangePasswordRequest(name="u", password="p"),
    ("auth", "user_grant_role"): rpc_pb2.AuthUserGrantRoleRequest(user="u", role="r"),
    ("auth", "user_revoke_role"): rpc_pb2.AuthUserRevokeRoleRequest(name="u", role="r"),
    ("auth", "role_add"): rpc_pb2.AuthRoleAddRequest(name="r"),
    ("auth", "role_get"): rpc_pb2.AuthRoleGetRequest(role="r"),
    ("auth", "role_list"): rpc_pb2.AuthRoleListRequest(),
    ("auth", "role_delete"): rpc_pb2.AuthRoleDeleteRequest(role="r"),
    ("auth", "role_grant_permission"): rpc_pb2.AuthRoleGrantPermissionRequest(name="r"),
    ("auth", "role_revoke_permission"): rpc_pb2.AuthRoleRevokePermissionRequest(role="r", key=b"k"),
}
#: Stream methods: their argument is the client's request stream.
STREAMS = {("lease", "keep_alive"), ("watch", "stream")}
#: Public methods that are not operations of their own.
HELPERS = {("lease", "renew"), ("watch", "open"), ("watch", "messages")}
FACETS = ("kv", "lease", "watch", "cluster", "maintenance", "lock", "election", "auth")


def _api(member: Member) -> Api:
    return Api(member, WatchHub(KVStore()))  # type: ignore[arg-type]  # a stand-in for EtcdServer


def _methods(api: Api) -> set[tuple[str, str]]:
    found = set()
    for facet in FACETS:
        for name, _ in inspect.getmembers(type(getattr(api, facet)), inspect.isfunction):
            if not name.startswith("_"):
                found.add((facet, name))
    return found


def test_every_method_is_listed() -> None:
    assert _methods(_api(Member())) == set(REQUESTS) | STREAMS | HELPERS


async def _call(api: Api, facet: str, name: str) -> None:
    method = getattr(getattr(api, facet), name)
    arg = _requests() if (facet, name) in STREAMS else REQUESTS[(facet, name)]
    result = method(RequestContext(), arg)
    if inspect.isasyncgen(result):
        await result.__anext__()
    else:
        await result


async def test_every_operation_is_admitted_first_under_its_own_op(monkeypatch: pytest.MonkeyPatch) -> None:
    def admit(self: Admission, ctx: RequestContext, op: Op, request: Message | None = None) -> None:
        raise Admitted(op)

    monkeypatch.setattr(Admission, "admit", admit)
    api = _api(Member())
    seen: dict[Op, tuple[str, str]] = {}
    for facet, name in sorted(set(REQUESTS) | STREAMS):
        with pytest.raises(Admitted) as info:
            await _call(api, facet, name)
        assert info.value.op not in seen, (facet, name, seen.get(info.value.op))
        seen[info.value.op] = (facet, name)
    assert set(seen) == set(Op)  # every Op names exactly one method


class Authorized(Exception):
    def __init__(self, op: Op) -> None:
        self.op = op


async def test_every_operation_is_authorized_after_admission(monkeypatch: pytest.MonkeyPatch) -> None:
    """No operation can skip the auth step: each awaits ``authorize`` under its own Op (a
    watch stream per create request, checked in test_auth_api.py)."""

    async def authorize(self: Admission, ctx: RequestContext, op: Op, request: Message | None = None) -> None:
        raise Authorized(op)

    monkeypatch.setattr(Admission, "authorize", authorize)
    api = _api(Member())
    seen: set[Op] = set()
    for facet, name in sorted(set(REQUESTS) | STREAMS):
        if (facet, name) == ("watch", "stream"):
            continue
        with pytest.raises(Authorized) as info:
            await _call(api, facet, name)
        seen.add(info.value.op)
    assert seen == set(Op) - {Op.WATCH}


@pytest.mark.parametrize(
    ("op", "request_", "served"),
    [
        (Op.STATUS, None, True),
        (Op.SNAPSHOT, None, True),
        (Op.RANGE, rpc_pb2.RangeRequest(key=b"k", serializable=True), True),
        (Op.RANGE, rpc_pb2.RangeRequest(key=b"k"), False),
        (Op.TXN, rpc_pb2.TxnRequest(), False),  # even a serializable read-only txn (etcd 3.4)
        (Op.MEMBER_LIST, None, False),
        (Op.WATCH, None, False),
        (Op.LEASE_KEEP_ALIVE, None, False),
        (Op.LOCK, None, False),
    ],
)
def test_a_learner_serves_status_snapshot_and_serializable_ranges(
    op: Op, request_: Message | None, served: bool
) -> None:
    gate = Admission(Member(learner=True))
    if served:
        gate.admit(RequestContext(), op, request_)
    else:
        with pytest.raises(NotSupportedForLearnerError):
            gate.admit(RequestContext(), op, request_)


def test_hasleader_fails_fast_without_a_leader() -> None:
    no_leader = Admission(Member(leader=0))
    no_leader.admit(RequestContext(), Op.PUT)  # not asked: the request waits for a leader
    with pytest.raises(NoLeaderError):
        no_leader.admit(RequestContext(requires_leader=True), Op.WATCH)
    no_leader.admit(RequestContext(requires_leader=True), Op.SNAPSHOT)  # as minietcd always did
    Admission(Member(leader=7)).admit(RequestContext(requires_leader=True), Op.WATCH)


def test_learner_refusal_comes_before_the_leader_check() -> None:
    with pytest.raises(NotSupportedForLearnerError):
        Admission(Member(learner=True, leader=0)).admit(RequestContext(requires_leader=True), Op.PUT)


@pytest.mark.parametrize(
    ("details", "error"),
    [
        ("etcdserver: no leader", NoLeaderError),  # the leader's own answer, re-raised as its class
        ("etcdserver: requested lease not found", LeaseNotFoundError),
        ("failed to connect to all addresses", RequestTimeoutError),  # unreachable: etcd's timeout
        ("Deadline Exceeded", RequestTimeoutError),
    ],
)
def test_a_failed_forward_is_a_typed_error(details: str, error: type[Exception]) -> None:
    rpc_error = grpc.aio.AioRpcError(
        grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), details=details
    )
    assert type(reply_error(rpc_error)) is error
