"""Auth at the API: who a request is, and whether it may do what it asks
(:meth:`Admission.authorize` calls :meth:`Authorizer.authorize` for every operation).

Who (etcd's ``AuthInfoFromCtx``, ``v3_server.go``): the token the request carries, if any (an
unknown or expired one is "etcdserver: invalid auth token", auth on or off, as in etcd); else,
with ``--client-cert-auth``, the Common Name of the client's verified certificate; else nobody.

What each operation needs, while auth is on (etcd 3.4's rules, and where it checks them):

* Range, Txn, Put, DeleteRange: the keys, read or write (``apply_auth.go``; the applier checks
  writes again with the user and revision stamped in the entry);
* LeaseRevoke: write on every key attached to the lease; LeaseTimeToLive with keys: read on each;
* Watch: read on the watched range, at each create (``Watch`` asks per create request);
* member add / remove / update / promote, Defragment, Snapshot, Hash, HashKV, and every auth
  change and listing: the root role (``IsAdminPermitted``); UserGet of oneself and RoleGet of
  a role one holds need nothing more;
* Compact, Alarm, LeaseGrant, Authenticate: a valid token if one is sent, nothing else;
* Status, MoveLeader, MemberList, LeaseKeepAlive, LeaseLeases: nothing (etcd looks at no token);
* Lock and Election: nothing here: their recipes' KV calls carry the caller's context and are
  checked as the caller's own (the errors come back as the recipes' text, as etcd's do).

Cheap on purpose: with auth off and no token it returns at once; with auth on, a simple token is
one dict lookup and a permission one binary search in the user's merged key set (perms.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from google.protobuf.message import Message

from minietcd.api.etcdserverpb import rpc_pb2
from minietcd.errors import AuthError, AuthOldRevisionError, AuthStoreWordsError, InvalidAuthTokenError
from minietcd.server.api.admission import Op, RequestContext
from minietcd.server.auth import checks
from minietcd.server.auth.info import NOBODY, AuthInfo
from minietcd.server.auth.store import AuthStore

_Check = Callable[[AuthStore, AuthInfo | None, Any], None]


def _keys(check: Callable[[AuthStore, AuthInfo, Any], None]) -> _Check:
    """A key check that runs only while auth is on, with nobody standing for no credentials."""

    def run(st: AuthStore, info: AuthInfo | None, req: Any) -> None:
        if st.enabled:
            check(st, info or NOBODY, req)

    return run


def _watch(st: AuthStore, info: AuthInfo, req: rpc_pb2.WatchCreateRequest | None) -> None:
    if req is not None:  # a create request (the stream itself needs nothing)
        checks.check_watch(st, info, req)


def _admin(st: AuthStore, info: AuthInfo | None, req: Any) -> None:
    st.check_admin(info)


def _user_get(st: AuthStore, info: AuthInfo | None, req: rpc_pb2.AuthUserGetRequest) -> None:
    if info is None or req.name != info.username:
        st.check_admin(info)


def _role_get(st: AuthStore, info: AuthInfo | None, req: rpc_pb2.AuthRoleGetRequest) -> None:
    if info is None or not st.has_role(info.username, req.role):
        st.check_admin(info)


def _token_only(st: AuthStore, info: AuthInfo | None, req: Any) -> None:
    pass


#: The operations only a user with the root role may run while auth is on.
ADMIN_OPS = frozenset(
    {
        Op.MEMBER_ADD, Op.MEMBER_REMOVE, Op.MEMBER_UPDATE, Op.MEMBER_PROMOTE,
        Op.DEFRAGMENT, Op.SNAPSHOT, Op.HASH, Op.HASH_KV,
        Op.AUTH_ENABLE, Op.AUTH_DISABLE, Op.AUTH_USER_ADD, Op.AUTH_USER_DELETE,
        Op.AUTH_USER_CHANGE_PASSWORD, Op.AUTH_USER_GRANT_ROLE, Op.AUTH_USER_REVOKE_ROLE,
        Op.AUTH_USER_LIST, Op.AUTH_ROLE_ADD, Op.AUTH_ROLE_DELETE, Op.AUTH_ROLE_LIST,
        Op.AUTH_ROLE_GRANT_PERMISSION, Op.AUTH_ROLE_REVOKE_PERMISSION,
    }
)  # fmt: skip


class Authorizer:
    """The auth step of admission for one member (module docstring)."""

    __slots__ = ("_checks", "client_cert_auth", "store")

    def __init__(
        self,
        store: AuthStore,
        *,
        client_cert_auth: bool = False,
        lease_keys: checks.LeaseKeys = lambda _lease: (),
    ) -> None:
        self.store = store
        self.client_cert_auth = client_cert_auth

        def lease_puts(st: AuthStore, info: AuthInfo, req: rpc_pb2.LeaseRevokeRequest) -> None:
            checks.check_lease_puts(st, info, req.ID, lease_keys)

        def put(st: AuthStore, info: AuthInfo, req: rpc_pb2.PutRequest) -> None:
            checks.check_put(st, info, req, lease_keys)

        def ttl(st: AuthStore, info: AuthInfo | None, req: rpc_pb2.LeaseTimeToLiveRequest) -> None:
            checks.check_lease_time_to_live(st, info, req, lease_keys)

        self._checks: dict[Op, _Check] = {
            Op.RANGE: _keys(checks.check_range),
            Op.PUT: _keys(put),
            Op.DELETE_RANGE: _keys(checks.check_delete),
            Op.TXN: _keys(checks.check_txn),
            Op.WATCH: _keys(_watch),
            Op.LEASE_REVOKE: _keys(lease_puts),
            Op.LEASE_TIME_TO_LIVE: ttl,
            **dict.fromkeys((Op.COMPACT, Op.ALARM, Op.LEASE_GRANT, Op.AUTHENTICATE), _token_only),
            **dict.fromkeys(ADMIN_OPS, _admin),
            Op.AUTH_USER_GET: _user_get,
            Op.AUTH_ROLE_GET: _role_get,
        }

    async def who(self, ctx: RequestContext) -> AuthInfo | None:
        """The request's user (etcd's AuthInfoFromCtx, then AuthInfoFromTLS)."""
        st = self.store
        if ctx.auth_token:
            info = await st.tokens.info(ctx.auth_token, st.revision)
            if info is None:
                raise InvalidAuthTokenError()
            return info
        if self.client_cert_auth and ctx.client_cn:
            return AuthInfo(ctx.client_cn, st.revision)
        return None

    async def authorize(self, ctx: RequestContext, op: Op, request: Message | None) -> AuthInfo | None:
        check = self._checks.get(op)
        if check is None:
            return None  # an operation etcd asks no credentials for
        if not ctx.auth_token and not self.store.enabled:
            return None  # auth off, nothing to check: the common case, kept cheap
        info = await self.who(ctx)
        check(self.store, info, request)
        return info


def stamp(header: Any, info: AuthInfo | None) -> None:
    """Put the request's user and auth revision in a log entry's header (etcd's
    processInternalRaftRequestOnce), for the applier's checks."""
    if info is not None:
        header.username = info.username
        header.auth_revision = info.revision


def stale_auth(server: Any, info: AuthInfo | None) -> None:
    """After a read: etcd's doSerialize refuses the answer if the auth state changed while the
    request was served (its permission check may no longer hold)."""
    if info is not None and info.revision and info.revision != server.sm.auth.revision:
        raise AuthOldRevisionError()


async def admin_only(admission: Any, ctx: RequestContext, op: Op, request: Message | None) -> None:
    """The auth step of Hash, HashKV, Defragment and Snapshot: refusals in the auth store's own
    words, UNKNOWN ("auth: permission denied"), as etcd's authMaintenanceServer answers them."""
    try:
        await admission.authorize(ctx, op, request)
    except AuthError as e:
        raise AuthStoreWordsError(e) from None
