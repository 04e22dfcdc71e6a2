"""The auth state of the replicated state machine: etcd's ``authStore`` (``auth/store.go``).

Users, roles, their permissions, whether auth is on and the auth revision live in the member's
backend under etcd 3.4's buckets and encodings, written in the same batch as the entry that
changed them, so they are in every snapshot, equal on every member, and the bbolt file
``etcdctl snapshot save`` gets holds them as etcd's does::

    auth       authEnabled -> 0x01 | 0x00;  authRevision -> u64 big endian
    authUsers  user name -> authpb.User{name, password (bcrypt hash), roles (sorted), options}
    authRoles  role name -> authpb.Role{name, keyPermission (sorted by key)}

Every method that changes the state is called by the applier only (``server/apply_auth``), so
it is deterministic (DESIGN rule 5): no clock, no randomness, no bcrypt (passwords arrive
hashed: the API hashes them before proposing, off the Ready loop). Each change bumps the auth
revision (``commitRevision``) and rebuilds the per-user permission cache (``perms``), as etcd's
``refreshRangePermCache`` does. Memory holds every user and role (a few per cluster) parsed,
so checks never touch the backend.

LMDB keys are at most 511 bytes; a longer user or role name is stored under a shortened key
(a prefix and the name's SHA-256) and the record carries the name itself, so nothing etcd
accepts is refused, and the bbolt file is written with the names as keys.
"""

from __future__ import annotations

import hashlib
import logging
from bisect import bisect_left
from collections.abc import Iterator, Mapping

from minietcd.api.authpb import auth_pb2
from minietcd.api.etcdserverpb import rpc_pb2
from minietcd.errors import (
    AuthFailedError,
    AuthNotEnabledError,
    AuthOldRevisionError,
    InvalidAuthMgmtError,
    NoPasswordUserError,
    PermissionDeniedError,
    PermissionNotGrantedError,
    RoleAlreadyExistError,
    RoleEmptyError,
    RoleNotFoundError,
    RoleNotGrantedError,
    RootRoleNotExistError,
    RootUserNotExistError,
    UserAlreadyExistError,
    UserEmptyError,
    UserNotFoundError,
)
from minietcd.mvcc.backend import B_AUTH, B_AUTH_ROLES, B_AUTH_USERS, Backend
from minietcd.mvcc.codec import crc32c
from minietcd.server.auth.info import ROOT, AuthInfo
from minietcd.server.auth.perms import UserPerms, merge
from minietcd.server.auth.tokens import SimpleTokens, TokenProvider

log = logging.getLogger("minietcd.auth")

K_ENABLED = b"authEnabled"
K_REVISION = b"authRevision"
ENABLED, DISABLED = b"\x01", b"\x00"
#: etcd's NewAuthStore commits revision 1 into a fresh backend.
FIRST_REVISION = 1
#: Longest name stored as its own LMDB key (LMDB's default max key size is 511 bytes).
MAX_KEY = 511

User = auth_pb2.User
Role = auth_pb2.Role
Permission = auth_pb2.Permission


def db_key(name: bytes) -> bytes:
    """The LMDB key of a user or role record (see the module docstring)."""
    if len(name) <= MAX_KEY:
        return name
    return name[: MAX_KEY - 32] + hashlib.sha256(name).digest()


class AuthStore:
    """Users, roles and permissions, in the backend and in memory (module docstring)."""

    def __init__(self, backend: Backend) -> None:
        self._b = backend
        self.enabled = False
        #: etcd's auth revision: bumped by every change of users, roles or permissions.
        self.revision = FIRST_REVISION
        self.users: dict[str, User] = {}
        self.roles: dict[str, Role] = {}
        #: The permission cache: every user's merged grants (etcd's rangePermCache).
        self.perms: dict[str, UserPerms] = {}
        #: The member's token provider (member-local, not replicated): told when a user's
        #: credentials must stop working (deleted, password changed) and when auth turns on or
        #: off; the applier registers simple tokens with it.
        self.tokens: TokenProvider = SimpleTokens()
        self.load()

    def attach_tokens(self, tokens: TokenProvider) -> None:
        """Use ``tokens`` (the member's ``--auth-token`` provider) from now on."""
        self.tokens = tokens
        tokens.set_enabled(self.enabled)

    # -- loading ---------------------------------------------------------------------------------

    def load(self) -> None:
        """Read the state back from the backend (at start, after a snapshot replaced it)."""
        b = self._b
        self.enabled = b.get(B_AUTH, K_ENABLED) == ENABLED
        self.revision = b.get_u64(B_AUTH, K_REVISION) or FIRST_REVISION
        self.users = {}
        for _k, v in b.items(B_AUTH_USERS):
            u = User.FromString(v)
            self.users[u.name.decode(errors="surrogateescape")] = u
        self.roles = {}
        for _k, v in b.items(B_AUTH_ROLES):
            r = Role.FromString(v)
            self.roles[r.name.decode(errors="surrogateescape")] = r
        self._refresh()
        self.tokens.set_enabled(self.enabled)

    def replace_records(self, buckets: Mapping[bytes, Mapping[bytes, bytes]]) -> None:
        """Make the auth buckets of an etcd backend file (``snapshot restore``) this store's
        state: records as they are, users and roles under their LMDB keys. DecodeError if a
        record is not an authpb.User / Role."""
        b = self._b
        for bucket in (B_AUTH, B_AUTH_USERS, B_AUTH_ROLES):
            b.clear(bucket)
        for k, v in buckets.get(B_AUTH, {}).items():
            b.put(B_AUTH, k, v)
        for bucket, kind in ((B_AUTH_USERS, User), (B_AUTH_ROLES, Role)):
            for v in buckets.get(bucket, {}).values():
                b.put(bucket, db_key(kind.FromString(v).name), v)
        self.load()

    def records(self) -> Iterator[tuple[bytes, bytes, bytes]]:
        """(bucket, key, value) of the whole auth state as etcd stores it (the bbolt file's
        records; names are the keys)."""
        yield B_AUTH, K_REVISION, self.revision.to_bytes(8, "big")
        enabled = self._b.get(B_AUTH, K_ENABLED)
        if enabled is not None:
            yield B_AUTH, K_ENABLED, enabled
        for name in sorted(self.users, key=_name_bytes):
            yield B_AUTH_USERS, _name_bytes(name), self.users[name].SerializeToString()
        for name in sorted(self.roles, key=_name_bytes):
            yield B_AUTH_ROLES, _name_bytes(name), self.roles[name].SerializeToString()

    def state_hash(self) -> int:
        """crc32c of every auth record: equal on members that applied the same log."""
        h = 0
        for bucket, k, v in self.records():
            h = crc32c(v, crc32c(k, crc32c(bucket, h)))
        return h

    # -- checks (etcd's isOpPermitted / IsAdminPermitted) --------------------------------------------

    def check_key(self, info: AuthInfo, key: bytes, range_end: bytes, write: bool) -> None:
        """Raise etcd's error unless ``info`` may read (or write) ``[key, range_end)``."""
        if not self.enabled:
            return
        if info.revision == 0:
            raise UserEmptyError()
        if info.revision < self.revision:
            raise AuthOldRevisionError()
        perms = self.perms.get(info.username)
        if perms is None:
            raise PermissionDeniedError()
        if perms.is_root:
            return
        keys = perms.write if write else perms.read
        if not keys.has_range(key, range_end):
            raise PermissionDeniedError()

    def check_admin(self, info: AuthInfo | None) -> None:
        """Raise etcd's error unless ``info`` is a user holding the root role."""
        if not self.enabled:
            return
        if info is None or not info.username:
            raise UserEmptyError()
        perms = self.perms.get(info.username)
        if perms is None:
            raise UserNotFoundError()
        if not perms.is_root:
            raise PermissionDeniedError()

    def has_role(self, username: str, role: str) -> bool:
        u = self.users.get(username)
        return u is not None and role in u.roles

    # -- reads -------------------------------------------------------------------------------------

    def user_get(self, name: str) -> list[str]:
        u = self.users.get(name)
        if u is None:
            raise UserNotFoundError()
        return list(u.roles)

    def user_list(self) -> list[str]:
        return sorted(self.users, key=_name_bytes)

    def role_get(self, name: str) -> list[Permission]:
        r = self.roles.get(name)
        if r is None:
            raise RoleNotFoundError()
        return list(r.keyPermission)

    def role_list(self) -> list[str]:
        return sorted(self.roles, key=_name_bytes)

    def password_of(self, name: str) -> tuple[bytes, int]:
        """(bcrypt hash, auth revision) to check a password against, off the loop (etcd's
        CheckPassword before the hash comparison)."""
        if not self.enabled:
            raise AuthNotEnabledError()
        u = self.users.get(name)
        if u is None:
            raise AuthFailedError()
        if u.options.no_password:
            raise NoPasswordUserError()
        return u.password, self.revision

    # -- changes: called by the applier only ------------------------------------------------------

    def enable(self) -> None:
        if self.enabled:
            log.info("auth: authentication is already enabled; ignored auth enable request")
            return
        root = self.users.get(ROOT)
        if root is None:
            raise RootUserNotExistError()
        if ROOT not in root.roles:
            raise RootRoleNotExistError()
        self._b.put(B_AUTH, K_ENABLED, ENABLED)
        self.enabled = True
        self._refresh()
        self.tokens.set_enabled(True)
        log.info("auth: enabled authentication")

    def disable(self) -> None:
        if not self.enabled:
            return
        self._b.put(B_AUTH, K_ENABLED, DISABLED)
        self._commit_revision()
        self.enabled = False
        self.tokens.set_enabled(False)
        log.info("auth: disabled authentication")

    def authenticate(self, name: str) -> int:
        """The apply of an Authenticate whose password the API checked: the auth revision the
        token stands for."""
        if not self.enabled:
            raise AuthNotEnabledError()
        u = self.users.get(name)
        if u is None or u.options.no_password:
            raise AuthFailedError()
        return self.revision

    def user_add(self, r: rpc_pb2.AuthUserAddRequest) -> None:
        """``r.password`` holds the bcrypt hash the API made (empty for a no-password user)."""
        if not r.name:
            raise UserEmptyError()
        if r.name in self.users:
            raise UserAlreadyExistError()
        u = User(name=_name_bytes(r.name))
        if not (r.HasField("options") and r.options.no_password):
            u.password = r.password.encode()
        u.options.no_password = r.options.no_password
        u.options.SetInParent()  # etcd always stores the options, false or not
        self._put_user(u)
        self._changed()
        log.info("auth: added a new user: %s", r.name)

    def user_delete(self, r: rpc_pb2.AuthUserDeleteRequest) -> None:
        if self.enabled and r.name == ROOT:
            log.error("auth: the user root must not be deleted")
            raise InvalidAuthMgmtError()
        if r.name not in self.users:
            raise UserNotFoundError()
        del self.users[r.name]
        self._b.delete(B_AUTH_USERS, db_key(_name_bytes(r.name)))
        self._changed()
        self.tokens.invalidate_user(r.name)
        log.info("auth: deleted a user: %s", r.name)

    def user_change_password(self, r: rpc_pb2.AuthUserChangePasswordRequest) -> None:
        """``r.password`` holds the bcrypt hash the API made."""
        old = self.users.get(r.name)
        if old is None:
            raise UserNotFoundError()
        u = User(name=old.name, password=r.password.encode(), roles=old.roles)
        if old.HasField("options"):
            u.options.CopyFrom(old.options)
        self._put_user(u)
        self._changed()
        self.tokens.invalidate_user(r.name)
        log.info("auth: changed a password of a user: %s", r.name)

    def user_grant_role(self, r: rpc_pb2.AuthUserGrantRoleRequest) -> None:
        u = self.users.get(r.user)
        if u is None:
            raise UserNotFoundError()
        if r.role != ROOT and r.role not in self.roles:
            raise RoleNotFoundError()
        if r.role in u.roles:
            log.warning("auth: user %s is already granted role %s", r.user, r.role)
            return
        new = User()
        new.CopyFrom(u)
        roles = sorted([*u.roles, r.role], key=_name_bytes)  # Go's sort.Strings: byte order
        del new.roles[:]
        new.roles.extend(roles)
        self._put_user(new)
        self._changed()
        log.info("auth: granted role %s to user %s", r.role, r.user)

    def user_revoke_role(self, r: rpc_pb2.AuthUserRevokeRoleRequest) -> None:
        if self.enabled and r.name == ROOT and r.role == ROOT:
            log.error("auth: the role root must not be revoked from the user root")
            raise InvalidAuthMgmtError()
        u = self.users.get(r.name)
        if u is None:
            raise UserNotFoundError()
        if r.role not in u.roles:
            raise RoleNotGrantedError()
        new = User(name=u.name, password=u.password, roles=[x for x in u.roles if x != r.role])
        if u.HasField("options"):
            new.options.CopyFrom(u.options)
        self._put_user(new)
        self._changed()
        log.info("auth: revoked role %s from user %s", r.role, r.name)

    def role_add(self, r: rpc_pb2.AuthRoleAddRequest) -> None:
        if not r.name:
            raise RoleEmptyError()
        if r.name in self.roles:
            raise RoleAlreadyExistError()
        self._put_role(Role(name=_name_bytes(r.name)))
        self._commit_revision()  # a new role holds no permission yet: the cache stands
        log.info("auth: Role %s is created", r.name)

    def role_delete(self, r: rpc_pb2.AuthRoleDeleteRequest) -> None:
        if self.enabled and r.role == ROOT:
            log.error("auth: the role root must not be deleted")
            raise InvalidAuthMgmtError()
        if r.role not in self.roles:
            raise RoleNotFoundError()
        del self.roles[r.role]
        self._b.delete(B_AUTH_ROLES, db_key(_name_bytes(r.role)))
        for u in list(self.users.values()):
            if r.role in u.roles:
                new = User(name=u.name, password=u.password, roles=[x for x in u.roles if x != r.role])
                if u.HasField("options"):
                    new.options.CopyFrom(u.options)
                self._put_user(new)
        self._changed()
        log.info("auth: deleted role %s", r.role)

    def role_grant_permission(self, r: rpc_pb2.AuthRoleGrantPermissionRequest) -> None:
        old = self.roles.get(r.name)
        if old is None:
            raise RoleNotFoundError()
        role = Role()
        role.CopyFrom(old)
        perms = list(role.keyPermission)
        # etcd looks only at the first permission whose key is >= the new one's: an equal
        # (key, range end) there is updated in place, anything else is appended and sorted.
        i = bisect_left([p.key for p in perms], r.perm.key)
        if i < len(perms) and perms[i].key == r.perm.key and perms[i].range_end == r.perm.range_end:
            role.keyPermission[i].permType = r.perm.permType
        else:
            new = Permission(key=r.perm.key, range_end=r.perm.range_end, permType=r.perm.permType)
            perms.append(new)
            perms.sort(key=lambda p: p.key)
            del role.keyPermission[:]
            role.keyPermission.extend(perms)
        self._put_role(role)
        self._changed()
        log.info(
            "auth: role %s's permission of key %s is updated as %s",
            r.name,
            r.perm.key.decode(errors="replace"),
            Permission.Type.Name(r.perm.permType) if r.perm.permType in (0, 1, 2) else r.perm.permType,
        )

    def role_revoke_permission(self, r: rpc_pb2.AuthRoleRevokePermissionRequest) -> None:
        old = self.roles.get(r.role)
        if old is None:
            raise RoleNotFoundError()
        kept = [p for p in old.keyPermission if p.key != r.key or p.range_end != r.range_end]
        if len(kept) == len(old.keyPermission):
            raise PermissionNotGrantedError()
        self._put_role(Role(name=old.name, keyPermission=kept))
        self._changed()
        log.info("auth: revoked key %s from role %s", r.key.decode(errors="replace"), r.role)

    # -- helpers --------------------------------------------------------------------------------

    def _put_user(self, u: User) -> None:
        self.users[u.name.decode(errors="surrogateescape")] = u
        self._b.put(B_AUTH_USERS, db_key(u.name), u.SerializeToString())

    def _put_role(self, r: Role) -> None:
        self.roles[r.name.decode(errors="surrogateescape")] = r
        self._b.put(B_AUTH_ROLES, db_key(r.name), r.SerializeToString())

    def _commit_revision(self) -> None:
        self.revision += 1
        self._b.put_u64(B_AUTH, K_REVISION, self.revision)

    def _changed(self) -> None:
        self._commit_revision()
        self._refresh()

    def _refresh(self) -> None:
        """Rebuild every user's merged permissions (etcd's refreshRangePermCache)."""
        perms: dict[str, UserPerms] = {}
        for name, u in self.users.items():
            grants = [
                (p.permType, p.key, p.range_end)
                for role in u.roles
                if (r := self.roles.get(role)) is not None
                for p in r.keyPermission
            ]
            perms[name] = merge(ROOT in u.roles, grants)
        self.perms = perms


def _name_bytes(name: str) -> bytes:
    return name.encode(errors="surrogateescape")
