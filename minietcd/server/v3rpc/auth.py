"""etcd's Auth service on the application API: AuthEnable, AuthDisable, Authenticate, User*,
Role*."""

from __future__ import annotations

from typing import TypeAlias

import grpc

from minietcd.api.etcdserverpb import rpc_pb2
from minietcd.server.api import Auth
from minietcd.server.v3rpc.guard import unary

_Ctx: TypeAlias = grpc.aio.ServicerContext
pb = rpc_pb2


class AuthService:
    def __init__(self, auth: Auth) -> None:
        self.a = auth

    async def AuthEnable(self, request: pb.AuthEnableRequest, context: _Ctx) -> pb.AuthEnableResponse:
        return await unary(context, self.a.auth_enable, request)

    async def AuthDisable(self, request: pb.AuthDisableRequest, context: _Ctx) -> pb.AuthDisableResponse:
        return await unary(context, self.a.auth_disable, request)

    async def Authenticate(self, request: pb.AuthenticateRequest, context: _Ctx) -> pb.AuthenticateResponse:
        return await unary(context, self.a.authenticate, request)

    async def UserAdd(self, request: pb.AuthUserAddRequest, context: _Ctx) -> pb.AuthUserAddResponse:
        return await unary(context, self.a.user_add, request)

    async def UserGet(self, request: pb.AuthUserGetRequest, context: _Ctx) -> pb.AuthUserGetResponse:
        return await unary(context, self.a.user_get, request)

    async def UserList(self, request: pb.AuthUserListRequest, context: _Ctx) -> pb.AuthUserListResponse:
        return await unary(context, self.a.user_list, request)

    async def UserDelete(self, request: pb.AuthUserDeleteRequest, context: _Ctx) -> pb.AuthUserDeleteResponse:
        return await unary(context, self.a.user_delete, request)

    async def UserChangePassword(
        self, request: pb.AuthUserChangePasswordRequest, context: _Ctx
    ) -> pb.AuthUserChangePasswordResponse:
        return await unary(context, self.a.user_change_password, request)

    async def UserGrantRole(
        self, request: pb.AuthUserGrantRoleRequest, context: _Ctx
    ) -> pb.AuthUserGrantRoleResponse:
        return await unary(context, self.a.user_grant_role, request)

    async def UserRevokeRole(
        self, request: pb.AuthUserRevokeRoleRequest, context: _Ctx
    ) -> pb.AuthUserRevokeRoleResponse:
        return await unary(context, self.a.user_revoke_role, request)

    async def RoleAdd(self, request: pb.AuthRoleAddRequest, context: _Ctx) -> pb.AuthRoleAddResponse:
        return await unary(context, self.a.role_add, request)

    async def RoleGet(self, request: pb.AuthRoleGetRequest, context: _Ctx) -> pb.AuthRoleGetResponse:
        return await unary(context, self.a.role_get, request)

    async def RoleList(self, request: pb.AuthRoleListRequest, context: _Ctx) -> pb.AuthRoleListResponse:
        return await unary(context, self.a.role_list, request)

    async def RoleDelete(self, request: pb.AuthRoleDeleteRequest, context: _Ctx) -> pb.AuthRoleDeleteResponse:
        return await unary(context, self.a.role_delete, request)

    async def RoleGrantPermission(
        self, request: pb.AuthRoleGrantPermissionRequest, context: _Ctx
    ) -> pb.AuthRoleGrantPermissionResponse:
        return await unary(context, self.a.role_grant_permission, request)

    async def RoleRevokePermission(
        self, request: pb.AuthRoleRevokePermissionRequest, context: _Ctx
    ) -> pb.AuthRoleRevokePermissionResponse:
        return await unary(context, self.a.role_revoke_permission, request)
