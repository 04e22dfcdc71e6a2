"""Who asks (:class:`RequestContext`), what they ask for (:class:`Op`), and the one gate every
operation of the application API passes first (:meth:`Admission.admit`).

The checks are those etcd makes in its gRPC interceptors (``etcdserver/api/v3rpc/interceptor.go``),
in the same order, so the same request fails with the same error whichever face it came in by:

1. a learner serves only Status, Snapshot and serializable Range; everything else is
   "etcdserver: rpc not supported for learner" (``isRPCSupportedForLearner``, and the stream
   interceptor's exception for Snapshot);
2. a request that requires a leader (etcd's ``hasleader`` metadata, set by ``etcdctl watch`` and
   clients' ``WithRequireLeader``) fails fast with "etcdserver: no leader" while this member
   knows none.

3. auth (:meth:`authorize`, ``authorize.py``): who the request is (its token, or the client
   certificate's CN) and whether that user may do it. etcd checks auth after the request's own
   validity (``v3rpc/key.go``), so an operation calls :meth:`admit` first, validates, then awaits
   :meth:`authorize` (async: a simple token issued by another member may name a Raft index this
   member is still applying, and etcd waits for it). A write stamps the user it returns into its
   log entry's header, where the applier checks it again.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Protocol

from google.protobuf.message import Message

from minietcd.api.etcdserverpb import rpc_pb2
from minietcd.errors import NoLeaderError, NotSupportedForLearnerError
from minietcd.server.auth.info import AuthInfo


@dataclass(frozen=True, slots=True)
class RequestContext:
    """What a face knows about one request beyond etcd's request message."""

    #: The client asked to fail fast without a leader (gRPC metadata ``hasleader: true``).
    requires_leader: bool = False
    #: The auth token the client sent (gRPC metadata ``token``; etcd's TokenFieldNameGRPC).
    auth_token: str = ""
    #: The Common Name of the client's verified TLS certificate (``--client-cert-auth``): etcd
    #: takes it as the user name when the request carries no token.
    client_cn: str = ""


class Op(enum.Enum):
    """Every operation of the API, named as etcd's RPC. Admission, and auth next, key on it."""

    RANGE = "Range"
    PUT = "Put"
    DELETE_RANGE = "DeleteRange"
    TXN = "Txn"
    COMPACT = "Compact"
    LEASE_GRANT = "LeaseGrant"
    LEASE_REVOKE = "LeaseRevoke"
    LEASE_KEEP_ALIVE = "LeaseKeepAlive"
    LEASE_TIME_TO_LIVE = "LeaseTimeToLive"
    LEASE_LEASES = "LeaseLeases"
    WATCH = "Watch"
    MEMBER_LIST = "MemberList"
    MEMBER_ADD = "MemberAdd"
    MEMBER_REMOVE = "MemberRemove"
    MEMBER_UPDATE = "MemberUpdate"
    MEMBER_PROMOTE = "MemberPromote"
    STATUS = "Status"
    HASH = "Hash"
    HASH_KV = "HashKV"
    ALARM = "Alarm"
    DEFRAGMENT = "Defragment"
    SNAPSHOT = "Snapshot"
    MOVE_LEADER = "MoveLeader"
    LOCK = "Lock"
    UNLOCK = "Unlock"
    CAMPAIGN = "Campaign"
    PROCLAIM = "Proclaim"
    RESIGN = "Resign"
    LEADER = "Leader"
    OBSERVE = "Observe"
    AUTH_ENABLE = "AuthEnable"
    AUTH_DISABLE = "AuthDisable"
    AUTHENTICATE = "Authenticate"
    AUTH_USER_ADD = "UserAdd"
    AUTH_USER_GET = "UserGet"
    AUTH_USER_LIST = "UserList"
    AUTH_USER_DELETE = "UserDelete"
    AUTH_USER_CHANGE_PASSWORD = "UserChangePassword"
    AUTH_USER_GRANT_ROLE = "UserGrantRole"
    AUTH_USER_REVOKE_ROLE = "UserRevokeRole"
    AUTH_ROLE_ADD = "RoleAdd"
    AUTH_ROLE_GET = "RoleGet"
    AUTH_ROLE_LIST = "RoleList"
    AUTH_ROLE_DELETE = "RoleDelete"
    AUTH_ROLE_GRANT_PERMISSION = "RoleGrantPermission"
    AUTH_ROLE_REVOKE_PERMISSION = "RoleRevokePermission"


#: What a learner serves whatever the request (Range only when serializable, see admit).
_LEARNER_SERVES = frozenset({Op.STATUS, Op.SNAPSHOT})
#: Operations that ignore ``hasleader``: minietcd has always streamed a snapshot regardless
#: (etcd 3.4's stream interceptor would check it; etcdctl never sets it for a snapshot).
_LEADER_NOT_REQUIRED = frozenset({Op.SNAPSHOT})


class MemberView(Protocol):
    """What admission reads of this member (an EtcdServer)."""

    @property
    def leader(self) -> int: ...

    def is_learner(self) -> bool: ...


class Authorization(Protocol):
    """The auth step (``authorize.Authorizer``): the request's user, if the operation may run."""

    async def authorize(self, ctx: RequestContext, op: Op, request: Message | None) -> AuthInfo | None: ...


class Admission:
    """The gate of every operation (see the module docstring)."""

    __slots__ = ("_auth", "_member")

    def __init__(self, member: MemberView, auth: Authorization | None = None) -> None:
        self._member = member
        self._auth = auth

    def admit(self, ctx: RequestContext, op: Op, request: Message | None = None) -> None:
        """Raise the error etcd answers before serving ``op`` for ``ctx``; return if it may run.
        ``request`` is the operation's request message where it has one."""
        if self._member.is_learner() and not _learner_serves(op, request):
            raise NotSupportedForLearnerError()
        if ctx.requires_leader and op not in _LEADER_NOT_REQUIRED and self._member.leader == 0:
            raise NoLeaderError()

    def check(
        self, ctx: RequestContext, op: Op, request: Message | None = None
    ) -> Awaitable[AuthInfo | None]:
        """:meth:`admit`, then :meth:`authorize` (await the result): the whole gate, for an
        operation that does nothing between the two (KV validates its request in between, in
        etcd's order). Not a coroutine itself: no extra frame per request."""
        self.admit(ctx, op, request)
        return self.authorize(ctx, op, request)

    async def authorize(self, ctx: RequestContext, op: Op, request: Message | None = None) -> AuthInfo | None:
        """Raise etcd's auth error unless ``ctx``'s user may run ``op`` on ``request``; return
        that user (None: no credentials, or none needed), for a write to stamp in its entry."""
        if self._auth is None:
            return None
        return await self._auth.authorize(ctx, op, request)


def _learner_serves(op: Op, request: Message | None) -> bool:
    if op is Op.RANGE:
        return isinstance(request, rpc_pb2.RangeRequest) and request.serializable
    return op in _LEARNER_SERVES
