"""The applier's auth side: etcd's ``authApplierV3`` (``etcdserver/apply_auth.go``) and the
auth cases of ``applierV3backend`` (``etcdserver/apply.go``).

* :meth:`AuthApplier.check` runs before every entry while auth is on: the entry's header names
  the user and the auth revision its credentials were checked at (the API stamps them, as
  etcd's ``processInternalRaftRequestOnce`` does); requests that change users, roles or auth
  itself need the root role, and keys written (and read back) need the user's permission.
  Deterministic: it reads only the applied auth state, so every member refuses the same entries.
* :meth:`AuthApplier.apply` applies the ``auth_*`` requests and ``authenticate`` to the store.
  Passwords in ``auth_user_add`` / ``auth_user_change_password`` entries are already bcrypt
  hashes (the API hashed them, off the Ready loop); an Authenticate entry carries no password
  (the API checked it) and registers the simple token ``<letters>.<entry index>`` on every
  member.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from minietcd.api.etcdserverpb import raft_internal_pb2, rpc_pb2
from minietcd.lease.lessor import Lessor
from minietcd.server.auth import checks
from minietcd.server.auth.info import AuthInfo
from minietcd.server.auth.store import AuthStore

_Request = raft_internal_pb2.InternalRaftRequest

#: The requests etcd's needAdminPermission names: only a user with the root role applies them.
ADMIN_FIELDS = (
    "auth_enable", "auth_disable", "auth_user_add", "auth_user_delete", "auth_user_change_password",
    "auth_user_grant_role", "auth_user_revoke_role", "auth_role_add", "auth_role_grant_permission",
    "auth_role_revoke_permission", "auth_role_delete", "auth_user_list", "auth_role_list",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Authenticated:
    """What applying an Authenticate gives the member that proposed it: the user, the auth
    revision now, and the simple token registered on every member ("" for other providers)."""

    username: str
    revision: int
    simple_token: str


#: What apply() answers for an entry that is not an auth request.
NOT_AUTH = object()

_M = TypeVar("_M")
_R = TypeVar("_R")


def _done(change: Callable[[_M], None], r: _M, kind: Callable[[], _R]) -> _R:
    """Apply a change to the store; its (empty) response, the header left to the API."""
    change(r)
    return kind()


class AuthApplier:
    def __init__(self, store: AuthStore, lessor: Lessor, applied_index: Callable[[], int]) -> None:
        self.store = store
        self._lessor = lessor
        self._applied_index = applied_index
        d, pb = _done, rpc_pb2
        self._handlers: dict[str, Callable[[_Request], object]] = {
            "authenticate": self._authenticate,
            "auth_enable": lambda r: d(lambda _: store.enable(), r, pb.AuthEnableResponse),
            "auth_disable": lambda r: d(lambda _: store.disable(), r, pb.AuthDisableResponse),
            "auth_user_add": lambda r: d(store.user_add, r.auth_user_add, pb.AuthUserAddResponse),
            "auth_user_delete": lambda r: d(store.user_delete, r.auth_user_delete, pb.AuthUserDeleteResponse),
            "auth_user_change_password": lambda r: d(
                store.user_change_password, r.auth_user_change_password, pb.AuthUserChangePasswordResponse
            ),
            "auth_user_grant_role": lambda r: d(
                store.user_grant_role, r.auth_user_grant_role, pb.AuthUserGrantRoleResponse
            ),
            "auth_user_revoke_role": lambda r: d(
                store.user_revoke_role, r.auth_user_revoke_role, pb.AuthUserRevokeRoleResponse
            ),
            "auth_role_add": lambda r: d(store.role_add, r.auth_role_add, pb.AuthRoleAddResponse),
            "auth_role_delete": lambda r: d(store.role_delete, r.auth_role_delete, pb.AuthRoleDeleteResponse),
            "auth_role_grant_permission": lambda r: d(
                store.role_grant_permission, r.auth_role_grant_permission, pb.AuthRoleGrantPermissionResponse
            ),
            "auth_role_revoke_permission": lambda r: d(
                store.role_revoke_permission,
                r.auth_role_revoke_permission,
                pb.AuthRoleRevokePermissionResponse,
            ),
            "auth_user_get": lambda r: pb.AuthUserGetResponse(roles=store.user_get(r.auth_user_get.name)),
            "auth_role_get": lambda r: pb.AuthRoleGetResponse(perm=store.role_get(r.auth_role_get.role)),
            "auth_user_list": lambda r: pb.AuthUserListResponse(users=store.user_list()),
            "auth_role_list": lambda r: pb.AuthRoleListResponse(roles=store.role_list()),
        }

    def lease_keys(self, lease_id: int) -> Iterable[bytes]:
        lease = self._lessor.lookup(lease_id)
        return () if lease is None else lease.keys

    # -- authApplierV3 ------------------------------------------------------------------------

    def check(self, req: _Request) -> None:
        """Raise etcd's error if the entry's user may not apply it (module docstring)."""
        st = self.store
        if not st.enabled:
            return
        info = AuthInfo(req.header.username, req.header.auth_revision)
        if req.HasField("put"):
            checks.check_put(st, info, req.put, self.lease_keys)
        elif req.HasField("txn"):
            checks.check_txn(st, info, req.txn)
        elif req.HasField("delete_range"):
            checks.check_delete(st, info, req.delete_range)
        elif req.HasField("lease_revoke"):
            checks.check_lease_puts(st, info, req.lease_revoke.ID, self.lease_keys)
        elif req.HasField("range"):
            checks.check_range(st, info, req.range)
        elif any(req.HasField(f) for f in ADMIN_FIELDS):
            st.check_admin(info)
        elif req.HasField("auth_user_get"):
            if req.auth_user_get.name != info.username:
                st.check_admin(info)
        elif req.HasField("auth_role_get") and not st.has_role(info.username, req.auth_role_get.role):
            st.check_admin(info)

    # -- the auth requests ----------------------------------------------------------------------

    def apply(self, req: _Request) -> object:
        """The response to an auth request, or NOT_AUTH if ``req`` is none."""
        for field, _value in req.ListFields():
            handler = self._handlers.get(field.name)
            if handler is not None:
                return handler(req)
        return NOT_AUTH

    def _authenticate(self, req: _Request) -> Authenticated:
        r = req.authenticate
        revision = self.store.authenticate(r.name)
        token = ""
        if r.simple_token:
            token = f"{r.simple_token}.{self._applied_index()}"
            self.store.tokens.register(token, r.name)
        return Authenticated(r.name, revision, token)
