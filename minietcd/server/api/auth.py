"""etcd's Authenticator (``etcdserver/v3_server.go``): AuthEnable, AuthDisable, Authenticate,
User* and Role*, one method per RPC of etcd's Auth service, each ``(ctx, request)``.

Changes go through the log as etcd's ``InternalRaftRequest`` auth requests, stamped with the
caller (the applier checks the root role, as etcd's ``authApplierV3`` does). Two things happen
here, off the Ready loop, because they are slow by design:

* a new password is hashed (bcrypt, ``--bcrypt-cost``) in a worker thread before the request is
  proposed; the entry carries the hash, never the password (etcd 3.5's way; 3.4 hashed while
  applying, on every member);
* Authenticate checks the password against the user's hash, in a worker thread, then proposes
  an entry naming the user and the simple token's random part (no password), and tries again if
  the auth state changed meanwhile (etcd's loop on ``checkedRevision``). A JWT is signed here,
  once the entry is applied, with the auth revision it was applied at.

UserGet, UserList, RoleGet and RoleList are reads: they are answered from this member's auth
state after a ReadIndex barrier (etcd 3.4 sends them through the log; the answer is the same
and the log stays free of reads).
"""

from __future__ import annotations

import logging
from typing import Protocol, TypeVar

from minietcd.api.etcdserverpb import raft_internal_pb2, rpc_pb2
from minietcd.errors import AuthFailedError, RoleEmptyError, UserEmptyError
from minietcd.server.api.admission import Admission, Op, RequestContext
from minietcd.server.api.authorize import stale_auth, stamp
from minietcd.server.apply_auth import Authenticated
from minietcd.server.auth import passwords
from minietcd.server.auth.info import AuthInfo
from minietcd.server.etcd_server import EtcdServer

log = logging.getLogger("minietcd.auth")

_Request = raft_internal_pb2.InternalRaftRequest


class _WithHeader(Protocol):
    @property
    def header(self) -> rpc_pb2.ResponseHeader: ...


_Resp = TypeVar("_Resp", bound=_WithHeader)


class Auth:
    def __init__(self, server: EtcdServer, admission: Admission, bcrypt_cost: int) -> None:
        self._s = server
        self._admission = admission
        self._cost = passwords.effective_cost(bcrypt_cost)

    # -- auth on / off, log in ---------------------------------------------------------------------

    async def auth_enable(
        self, ctx: RequestContext, req: rpc_pb2.AuthEnableRequest
    ) -> rpc_pb2.AuthEnableResponse:
        info = await self._admission.check(ctx, Op.AUTH_ENABLE, req)
        return await self._change(_Request(auth_enable=req), info, rpc_pb2.AuthEnableResponse)

    async def auth_disable(
        self, ctx: RequestContext, req: rpc_pb2.AuthDisableRequest
    ) -> rpc_pb2.AuthDisableResponse:
        info = await self._admission.check(ctx, Op.AUTH_DISABLE, req)
        return await self._change(_Request(auth_disable=req), info, rpc_pb2.AuthDisableResponse)

    async def authenticate(
        self, ctx: RequestContext, req: rpc_pb2.AuthenticateRequest
    ) -> rpc_pb2.AuthenticateResponse:
        info = await self._admission.check(ctx, Op.AUTHENTICATE, req)
        await self._s.read_barrier()
        store = self._s.sm.auth
        while True:
            hashed, checked = store.password_of(req.name)
            if not await passwords.matches_off_loop(hashed, req.password):
                log.warning("auth: authentication failed, invalid password for user %s", req.name)
                raise AuthFailedError()
            entry = _Request(
                authenticate=raft_internal_pb2.InternalAuthenticateRequest(
                    name=req.name, simple_token=store.tokens.gen_prefix()
                )
            )
            stamp(entry.header, info)
            done = await self._s.propose_for(entry, Authenticated)
            if checked == store.revision:
                break
            log.info("auth: revision when password checked became stale; retrying")
        token = store.tokens.assign(done.username, done.revision, done.simple_token)
        return rpc_pb2.AuthenticateResponse(header=self._s.header(), token=token)

    # -- users -------------------------------------------------------------------------------------

    async def user_add(
        self, ctx: RequestContext, req: rpc_pb2.AuthUserAddRequest
    ) -> rpc_pb2.AuthUserAddResponse:
        info = await self._admission.check(ctx, Op.AUTH_USER_ADD, req)
        if not req.name:
            raise UserEmptyError()
        entry = _Request(auth_user_add=req)
        # The entry carries the hash in ``password`` (the applier stores it as it is), or
        # nothing for a user without a password: never the password itself.
        hashed = b"" if req.options.no_password else await passwords.hash_off_loop(req.password, self._cost)
        entry.auth_user_add.password = hashed.decode()
        return await self._change(entry, info, rpc_pb2.AuthUserAddResponse)

    async def user_get(
        self, ctx: RequestContext, req: rpc_pb2.AuthUserGetRequest
    ) -> rpc_pb2.AuthUserGetResponse:
        info = await self._admission.check(ctx, Op.AUTH_USER_GET, req)
        await self._s.read_barrier()
        roles = self._s.sm.auth.user_get(req.name)
        stale_auth(self._s, info)
        return rpc_pb2.AuthUserGetResponse(header=self._s.header(), roles=roles)

    async def user_list(
        self, ctx: RequestContext, req: rpc_pb2.AuthUserListRequest
    ) -> rpc_pb2.AuthUserListResponse:
        info = await self._admission.check(ctx, Op.AUTH_USER_LIST, req)
        await self._s.read_barrier()
        users = self._s.sm.auth.user_list()
        stale_auth(self._s, info)
        return rpc_pb2.AuthUserListResponse(header=self._s.header(), users=users)

    async def user_delete(
        self, ctx: RequestContext, req: rpc_pb2.AuthUserDeleteRequest
    ) -> rpc_pb2.AuthUserDeleteResponse:
        info = await self._admission.check(ctx, Op.AUTH_USER_DELETE, req)
        return await self._change(_Request(auth_user_delete=req), info, rpc_pb2.AuthUserDeleteResponse)

    async def user_change_password(
        self, ctx: RequestContext, req: rpc_pb2.AuthUserChangePasswordRequest
    ) -> rpc_pb2.AuthUserChangePasswordResponse:
        info = await self._admission.check(ctx, Op.AUTH_USER_CHANGE_PASSWORD, req)
        entry = _Request(auth_user_change_password=req)
        hashed = await passwords.hash_off_loop(req.password, self._cost)
        entry.auth_user_change_password.password = hashed.decode()
        return await self._change(entry, info, rpc_pb2.AuthUserChangePasswordResponse)

    async def user_grant_role(
        self, ctx: RequestContext, req: rpc_pb2.AuthUserGrantRoleRequest
    ) -> rpc_pb2.AuthUserGrantRoleResponse:
        info = await self._admission.check(ctx, Op.AUTH_USER_GRANT_ROLE, req)
        return await self._change(_Request(auth_user_grant_role=req), info, rpc_pb2.AuthUserGrantRoleResponse)

    async def user_revoke_role(
        self, ctx: RequestContext, req: rpc_pb2.AuthUserRevokeRoleRequest
    ) -> rpc_pb2.AuthUserRevokeRoleResponse:
        info = await self._admission.check(ctx, Op.AUTH_USER_REVOKE_ROLE, req)
        return await self._change(
            _Request(auth_user_revoke_role=req), info, rpc_pb2.AuthUserRevokeRoleResponse
        )

    # -- roles -------------------------------------------------------------------------------------

    async def role_add(
        self, ctx: RequestContext, req: rpc_pb2.AuthRoleAddRequest
    ) -> rpc_pb2.AuthRoleAddResponse:
        info = await self._admission.check(ctx, Op.AUTH_ROLE_ADD, req)
        if not req.name:
            raise RoleEmptyError()
        return await self._change(_Request(auth_role_add=req), info, rpc_pb2.AuthRoleAddResponse)

    async def role_get(
        self, ctx: RequestContext, req: rpc_pb2.AuthRoleGetRequest
    ) -> rpc_pb2.AuthRoleGetResponse:
        info = await self._admission.check(ctx, Op.AUTH_ROLE_GET, req)
        await self._s.read_barrier()
        perms = self._s.sm.auth.role_get(req.role)
        stale_auth(self._s, info)
        return rpc_pb2.AuthRoleGetResponse(header=self._s.header(), perm=perms)

    async def role_list(
        self, ctx: RequestContext, req: rpc_pb2.AuthRoleListRequest
    ) -> rpc_pb2.AuthRoleListResponse:
        info = await self._admission.check(ctx, Op.AUTH_ROLE_LIST, req)
        await self._s.read_barrier()
        roles = self._s.sm.auth.role_list()
        stale_auth(self._s, info)
        return rpc_pb2.AuthRoleListResponse(header=self._s.header(), roles=roles)

    async def role_delete(
        self, ctx: RequestContext, req: rpc_pb2.AuthRoleDeleteRequest
    ) -> rpc_pb2.AuthRoleDeleteResponse:
        info = await self._admission.check(ctx, Op.AUTH_ROLE_DELETE, req)
        return await self._change(_Request(auth_role_delete=req), info, rpc_pb2.AuthRoleDeleteResponse)

    async def role_grant_permission(
        self, ctx: RequestContext, req: rpc_pb2.AuthRoleGrantPermissionRequest
    ) -> rpc_pb2.AuthRoleGrantPermissionResponse:
        info = await self._admission.check(ctx, Op.AUTH_ROLE_GRANT_PERMISSION, req)
        entry = _Request(auth_role_grant_permission=req)
        return await self._change(entry, info, rpc_pb2.AuthRoleGrantPermissionResponse)

    async def role_revoke_permission(
        self, ctx: RequestContext, req: rpc_pb2.AuthRoleRevokePermissionRequest
    ) -> rpc_pb2.AuthRoleRevokePermissionResponse:
        info = await self._admission.check(ctx, Op.AUTH_ROLE_REVOKE_PERMISSION, req)
        entry = _Request(auth_role_revoke_permission=req)
        return await self._change(entry, info, rpc_pb2.AuthRoleRevokePermissionResponse)

    # -- the log ---------------------------------------------------------------------------------

    async def _change(self, entry: _Request, info: AuthInfo | None, kind: type[_Resp]) -> _Resp:
        """Propose an auth change as ``info``'s; its response with this member's header."""
        stamp(entry.header, info)
        resp = await self._s.propose_for(entry, kind)
        resp.header.CopyFrom(self._s.header())
        return resp
