"""Authentication and authorization: turn auth on and off, users, roles and their permissions.

Example::

    async with Client(["127.0.0.1:2379"]) as admin:
        await admin.user_add("root", "rootpw")
        await admin.role_add("app")
        await admin.role_grant_permission("app", "/app/", prefix_range_end("/app/"), Permission.READWRITE)
        await admin.user_add("svc", "svcpw")
        await admin.user_grant_role("svc", "app")
        await admin.auth_enable()  # the root user must exist; etcd needs its root role too

    async with Client(["127.0.0.1:2379"], username="svc", password="svcpw") as c:
        await c.put("/app/x", "1")  # anything else: PermissionDeniedError

A client given ``username`` and ``password`` logs in on its first call (or :meth:`authenticate`)
and sends its token with every request; when the server says the token is no longer good
("invalid auth token", "revision of auth store is old": it expired, the member restarted, the
permissions changed), it logs in again and retries once, as etcd's Go client does. Changes are
writes (never retried once sent); gets and lists are reads.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from minietcd.api.authpb import auth_pb2
from minietcd.api.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from minietcd.client.results import ResponseHeader

if TYPE_CHECKING:
    from minietcd.client._connection import Connection

__all__ = ["AuthMixin", "AuthResponse", "Permission", "PermissionType", "RoleGetResponse"]


class PermissionType(enum.IntEnum):
    """authpb.Permission.Type."""

    READ = 0
    WRITE = 1
    READWRITE = 2


@dataclass(frozen=True)
class Permission:
    """A role's grant over ``[key, range_end)``; ``range_end`` empty is the key alone, ``b"\\0"``
    every key from ``key`` on."""

    type: PermissionType
    key: bytes
    range_end: bytes


@dataclass(frozen=True)
class AuthResponse:
    """What an auth call answers: the header, and the names / roles / token it returns."""

    header: ResponseHeader
    #: UserGet: the user's roles; UserList: the users; RoleList: the roles.
    names: list[str] = field(default_factory=list)
    #: Authenticate: the token.
    token: str = ""
    raw: Any = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class RoleGetResponse:
    header: ResponseHeader
    permissions: list[Permission]
    raw: Any = field(default=None, repr=False, compare=False)


def _b(v: str | bytes) -> bytes:
    return v.encode() if isinstance(v, str) else v


class AuthMixin:
    """Auth calls of :class:`~minietcd.client.Client`."""

    _conn: Connection

    async def _auth(self, method: str, req: Any, *, read: bool = False, timeout: float | None) -> Any:
        return await self._conn.unary(rpc_pb2_grpc.AuthStub, method, req, idempotent=read, timeout=timeout)

    async def _done(self, method: str, req: Any, timeout: float | None) -> AuthResponse:
        resp = await self._auth(method, req, timeout=timeout)
        return AuthResponse(ResponseHeader.from_pb(resp.header), raw=resp)

    async def authenticate(self, name: str, password: str, *, timeout: float | None = None) -> AuthResponse:
        """Log in as ``name``: the token etcd answers with (the client's own log-in is automatic)."""
        req = rpc_pb2.AuthenticateRequest(name=name, password=password)
        resp = await self._conn.unary(
            rpc_pb2_grpc.AuthStub, "Authenticate", req, idempotent=True, timeout=timeout, authenticate=False
        )
        return AuthResponse(ResponseHeader.from_pb(resp.header), token=resp.token, raw=resp)

    async def auth_enable(self, *, timeout: float | None = None) -> AuthResponse:
        return await self._done("AuthEnable", rpc_pb2.AuthEnableRequest(), timeout)

    async def auth_disable(self, *, timeout: float | None = None) -> AuthResponse:
        return await self._done("AuthDisable", rpc_pb2.AuthDisableRequest(), timeout)

    async def user_add(
        self, name: str, password: str = "", *, no_password: bool = False, timeout: float | None = None
    ) -> AuthResponse:
        """A new user; ``no_password``: one that only a client certificate can log in as."""
        req = rpc_pb2.AuthUserAddRequest(name=name, password=password)
        req.options.no_password = no_password
        return await self._done("UserAdd", req, timeout)

    async def user_get(self, name: str, *, timeout: float | None = None) -> AuthResponse:
        """``names``: the user's roles."""
        resp = await self._auth("UserGet", rpc_pb2.AuthUserGetRequest(name=name), read=True, timeout=timeout)
        return AuthResponse(ResponseHeader.from_pb(resp.header), list(resp.roles), raw=resp)

    async def user_list(self, *, timeout: float | None = None) -> AuthResponse:
        resp = await self._auth("UserList", rpc_pb2.AuthUserListRequest(), read=True, timeout=timeout)
        return AuthResponse(ResponseHeader.from_pb(resp.header), list(resp.users), raw=resp)

    async def user_delete(self, name: str, *, timeout: float | None = None) -> AuthResponse:
        return await self._done("UserDelete", rpc_pb2.AuthUserDeleteRequest(name=name), timeout)

    async def user_change_password(
        self, name: str, password: str, *, timeout: float | None = None
    ) -> AuthResponse:
        req = rpc_pb2.AuthUserChangePasswordRequest(name=name, password=password)
        return await self._done("UserChangePassword", req, timeout)

    async def user_grant_role(self, user: str, role: str, *, timeout: float | None = None) -> AuthResponse:
        return await self._done(
            "UserGrantRole", rpc_pb2.AuthUserGrantRoleRequest(user=user, role=role), timeout
        )

    async def user_revoke_role(self, name: str, role: str, *, timeout: float | None = None) -> AuthResponse:
        req = rpc_pb2.AuthUserRevokeRoleRequest(name=name, role=role)
        return await self._done("UserRevokeRole", req, timeout)

    async def role_add(self, name: str, *, timeout: float | None = None) -> AuthResponse:
        return await self._done("RoleAdd", rpc_pb2.AuthRoleAddRequest(name=name), timeout)

    async def role_get(self, name: str, *, timeout: float | None = None) -> RoleGetResponse:
        resp = await self._auth("RoleGet", rpc_pb2.AuthRoleGetRequest(role=name), read=True, timeout=timeout)
        perms = [Permission(PermissionType(p.permType), p.key, p.range_end) for p in resp.perm]
        return RoleGetResponse(ResponseHeader.from_pb(resp.header), perms, raw=resp)

    async def role_list(self, *, timeout: float | None = None) -> AuthResponse:
        resp = await self._auth("RoleList", rpc_pb2.AuthRoleListRequest(), read=True, timeout=timeout)
        return AuthResponse(ResponseHeader.from_pb(resp.header), list(resp.roles), raw=resp)

    async def role_delete(self, name: str, *, timeout: float | None = None) -> AuthResponse:
        return await self._done("RoleDelete", rpc_pb2.AuthRoleDeleteRequest(role=name), timeout)

    async def role_grant_permission(
        self,
        name: str,
        key: str | bytes,
        range_end: str | bytes,
        perm_type: PermissionType,
        *,
        timeout: float | None = None,
    ) -> AuthResponse:
        """Grant ``perm_type`` over ``[key, range_end)`` (see :class:`Permission`)."""
        perm = auth_pb2.Permission(key=_b(key), range_end=_b(range_end), permType=perm_type.name)
        req = rpc_pb2.AuthRoleGrantPermissionRequest(name=name, perm=perm)
        return await self._done("RoleGrantPermission", req, timeout)

    async def role_revoke_permission(
        self, name: str, key: str | bytes, range_end: str | bytes = b"", *, timeout: float | None = None
    ) -> AuthResponse:
        req = rpc_pb2.AuthRoleRevokePermissionRequest(role=name, key=_b(key), range_end=_b(range_end))
        return await self._done("RoleRevokePermission", req, timeout)
