"""The auth store (server/auth): etcd's rules for users, roles, permissions and the auth
revision, its permission cache, and its records as etcd stores them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

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
from minietcd.mvcc.backend import B_AUTH_USERS, Backend
from minietcd.server.auth import passwords
from minietcd.server.auth.info import AuthInfo
from minietcd.server.auth.perms import KeySet, merge
from minietcd.server.auth.store import AuthStore

P = auth_pb2.Permission
pb = rpc_pb2
READ, WRITE, READWRITE = P.READ, P.WRITE, P.READWRITE


@pytest.fixture
def store() -> Iterator[AuthStore]:
    b = Backend.temporary()
    try:
        yield AuthStore(b)
    finally:
        b.close()


def add_user(st: AuthStore, name: str, hashed: str = "$2a$04$hash", no_password: bool = False) -> None:
    req = rpc_pb2.AuthUserAddRequest(name=name, password=hashed)
    req.options.no_password = no_password
    st.user_add(req)


def grant(st: AuthStore, role: str, kind: int, key: bytes, end: bytes = b"") -> None:
    perm = P(permType=kind, key=key, range_end=end)  # type: ignore[arg-type]  # an authpb enum value
    st.role_grant_permission(rpc_pb2.AuthRoleGrantPermissionRequest(name=role, perm=perm))


def enable_with_root(st: AuthStore) -> None:
    add_user(st, "root")
    st.user_grant_role(rpc_pb2.AuthUserGrantRoleRequest(user="root", role="root"))
    st.enable()


# --------------------------------------------------------------------------- merged permissions


def test_key_sets_merge_and_answer_as_etcds_interval_trees() -> None:
    # etcd's range_perm_cache_test.go cases, and the from-key and touching ones.
    ks = KeySet.of([(b"a", b"b"), (b"b", b"c"), (b"x", None), (b"k", b"k\0")])
    assert ks.begins == (b"a", b"k", b"x") and ks.ends == (b"c", b"k\0", None)
    assert ks.has_key(b"a") and ks.has_key(b"bz") and not ks.has_key(b"c")
    assert ks.has_range(b"a", b"c")  # touching grants cover the range together
    assert not ks.has_range(b"a", b"d")
    assert ks.has_key(b"k") and not ks.has_key(b"k\0")
    assert ks.has_range(b"x", b"\0") and ks.has_range(b"zz", b"\0")  # open ended
    assert not ks.has_range(b"w", b"\0")
    assert not ks.has_range(b"b", b"a")  # an empty (backwards) range is refused
    assert not ks.has_key(b"")  # an empty key sorts after everything in etcd: covered by nothing


def test_merge_splits_read_and_write() -> None:
    perms = merge(False, [(READ, b"r", b""), (WRITE, b"w", b""), (READWRITE, b"p/", b"p0"), (READ, b"", b"")])
    assert perms.read.has_key(b"r") and not perms.write.has_key(b"r")
    assert perms.write.has_key(b"w") and not perms.read.has_key(b"w")
    assert perms.read.has_range(b"p/", b"p0") and perms.write.has_key(b"p/x")


# ------------------------------------------------------------------------------------- rules


def test_revisions_follow_etcds(store: AuthStore) -> None:
    st = store
    assert st.revision == 1  # a fresh store's (etcd's NewAuthStore commits 1)
    add_user(st, "root")
    add_user(st, "alice")
    st.role_add(rpc_pb2.AuthRoleAddRequest(name="r1"))
    grant(st, "r1", READWRITE, b"/a/", b"/a0")
    st.user_grant_role(rpc_pb2.AuthUserGrantRoleRequest(user="alice", role="r1"))
    st.user_grant_role(rpc_pb2.AuthUserGrantRoleRequest(user="alice", role="r1"))  # already: no change
    assert st.revision == 6
    with pytest.raises(RootRoleNotExistError):
        st.enable()
    st.user_grant_role(rpc_pb2.AuthUserGrantRoleRequest(user="root", role="root"))  # no role needed
    st.enable()
    assert st.revision == 7 and st.enabled  # enabling does not bump it
    st.disable()
    assert st.revision == 8 and not st.enabled


def test_enable_needs_root_user_with_root_role(store: AuthStore) -> None:
    with pytest.raises(RootUserNotExistError):
        store.enable()
    add_user(store, "root")
    with pytest.raises(RootRoleNotExistError):
        store.enable()


def test_root_cannot_go_while_auth_is_on(store: AuthStore) -> None:
    st = store
    st.role_add(rpc_pb2.AuthRoleAddRequest(name="root"))
    enable_with_root(st)
    with pytest.raises(InvalidAuthMgmtError):
        st.user_delete(rpc_pb2.AuthUserDeleteRequest(name="root"))
    with pytest.raises(InvalidAuthMgmtError):
        st.user_revoke_role(rpc_pb2.AuthUserRevokeRoleRequest(name="root", role="root"))
    with pytest.raises(InvalidAuthMgmtError):
        st.role_delete(rpc_pb2.AuthRoleDeleteRequest(role="root"))
    st.disable()
    st.user_revoke_role(rpc_pb2.AuthUserRevokeRoleRequest(name="root", role="root"))
    st.role_delete(rpc_pb2.AuthRoleDeleteRequest(role="root"))
    st.user_delete(rpc_pb2.AuthUserDeleteRequest(name="root"))
    assert st.user_list() == []


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (lambda st: add_user(st, ""), UserEmptyError),
        (lambda st: add_user(st, "alice"), UserAlreadyExistError),
        (lambda st: st.role_add(rpc_pb2.AuthRoleAddRequest(name="")), RoleEmptyError),
        (lambda st: st.role_add(rpc_pb2.AuthRoleAddRequest(name="r")), RoleAlreadyExistError),
        (lambda st: st.user_delete(rpc_pb2.AuthUserDeleteRequest(name="nobody")), UserNotFoundError),
        (lambda st: st.user_get("nobody"), UserNotFoundError),
        (lambda st: st.role_get("nobody"), RoleNotFoundError),
        (lambda st: st.user_grant_role(pb.AuthUserGrantRoleRequest(user="alice", role="x")),
         RoleNotFoundError),
        (lambda st: st.user_grant_role(pb.AuthUserGrantRoleRequest(user="x", role="r")), UserNotFoundError),
        (lambda st: st.user_revoke_role(pb.AuthUserRevokeRoleRequest(name="alice", role="r")),
         RoleNotGrantedError),
        (lambda st: grant(st, "nobody", READ, b"k"), RoleNotFoundError),
        (lambda st: st.role_revoke_permission(rpc_pb2.AuthRoleRevokePermissionRequest(role="r", key=b"k")),
         PermissionNotGrantedError),
        (lambda st: st.password_of("alice"), AuthNotEnabledError),
    ],
)  # fmt: skip
def test_bad_changes_get_etcds_errors(store: AuthStore, change: object, error: type[Exception]) -> None:
    add_user(store, "alice")
    store.role_add(rpc_pb2.AuthRoleAddRequest(name="r"))
    before = store.revision
    with pytest.raises(error):
        change(store)  # type: ignore[operator]  # one of the lambdas above
    assert store.revision == before  # a refused change changes nothing


def test_grant_updates_in_place_or_appends_sorted(store: AuthStore) -> None:
    st = store
    st.role_add(rpc_pb2.AuthRoleAddRequest(name="r"))
    grant(st, "r", READ, b"b")
    grant(st, "r", READ, b"a", b"c")
    grant(st, "r", WRITE, b"b")  # the same key and range end: updated
    perms = st.role_get("r")
    assert [(p.key, p.range_end, p.permType) for p in perms] == [(b"a", b"c", READ), (b"b", b"", WRITE)]


def test_checks_with_auth_on(store: AuthStore) -> None:
    st = store
    st.role_add(rpc_pb2.AuthRoleAddRequest(name="r"))
    grant(st, "r", READ, b"/p/", b"/p0")
    add_user(st, "alice")
    st.user_grant_role(rpc_pb2.AuthUserGrantRoleRequest(user="alice", role="r"))
    nobody = AuthInfo("", 0)
    st.check_key(nobody, b"/x", b"", write=True)  # auth off: anything goes
    enable_with_root(st)
    alice = AuthInfo("alice", st.revision)
    st.check_key(alice, b"/p/k", b"", write=False)
    st.check_key(alice, b"/p/", b"/p0", write=False)
    with pytest.raises(PermissionDeniedError):
        st.check_key(alice, b"/p/k", b"", write=True)
    with pytest.raises(PermissionDeniedError):
        st.check_key(alice, b"/p/", b"\0", write=False)
    with pytest.raises(UserEmptyError):
        st.check_key(nobody, b"/p/k", b"", write=False)
    with pytest.raises(AuthOldRevisionError):
        st.check_key(AuthInfo("alice", st.revision - 1), b"/p/k", b"", write=False)
    st.check_key(AuthInfo("root", st.revision), b"/anything", b"\0", write=True)
    with pytest.raises(PermissionDeniedError):
        st.check_admin(alice)
    with pytest.raises(UserNotFoundError):
        st.check_admin(AuthInfo("ghost", st.revision))
    with pytest.raises(UserEmptyError):
        st.check_admin(None)
    st.check_admin(AuthInfo("root", 1))  # etcd's IsAdminPermitted ignores the revision


def test_role_delete_takes_the_role_from_every_user(store: AuthStore) -> None:
    st = store
    st.role_add(rpc_pb2.AuthRoleAddRequest(name="r"))
    grant(st, "r", READ, b"k")
    for name in ("a", "b"):
        add_user(st, name)
        st.user_grant_role(rpc_pb2.AuthUserGrantRoleRequest(user=name, role="r"))
    st.role_delete(rpc_pb2.AuthRoleDeleteRequest(role="r"))
    assert st.user_get("a") == [] and st.user_get("b") == []
    assert not st.perms["a"].read.has_key(b"k")


def test_passwords_and_no_password_users(store: AuthStore) -> None:
    st = store
    hashed = passwords.hash_password("pw", passwords.MIN_COST)
    add_user(st, "root", hashed.decode())
    add_user(st, "cn-only", no_password=True)
    st.user_grant_role(rpc_pb2.AuthUserGrantRoleRequest(user="root", role="root"))
    st.enable()
    stored, rev = st.password_of("root")
    assert stored == hashed and rev == st.revision and passwords.password_matches(stored, "pw")
    assert not passwords.password_matches(stored, "wrong")
    with pytest.raises(NoPasswordUserError):
        st.password_of("cn-only")
    with pytest.raises(AuthFailedError):
        st.password_of("ghost")
    with pytest.raises(AuthFailedError):
        st.authenticate("cn-only")


def test_bcrypt_is_go_compatible() -> None:
    h = passwords.hash_password("secret", passwords.DEFAULT_COST)
    assert h.startswith(b"$2a$10$")  # Go's format and etcd's default cost
    # A hash Go made (etcd 3.4's snapshot of "apw"): read back.
    assert passwords.password_matches(b"$2a$10$yM.TK7zpnTJjLp..lMfeReIpJy5OsBf3xHtMUj0lDsCbahhcbMVvC", "apw")
    long = "x" * 100  # Go uses 72 bytes and ignores the rest
    assert passwords.password_matches(passwords.hash_password(long, 4), "x" * 72 + "different tail")
    assert passwords.effective_cost(3) == passwords.effective_cost(32) == passwords.DEFAULT_COST


def test_records_are_etcds_encoding_and_survive_a_reload(store: AuthStore) -> None:
    st = store
    add_user(st, "alice", "$2a$10$yM.TK7zpnTJjLp..lMfeReIpJy5OsBf3xHtMUj0lDsCbahhcbMVvC")
    st.role_add(rpc_pb2.AuthRoleAddRequest(name="r1"))
    st.user_grant_role(rpc_pb2.AuthUserGrantRoleRequest(user="alice", role="r1"))
    add_user(st, "bob", "", no_password=True)
    # Bytes etcd 3.4 wrote for the same users (read from its snapshot).
    records = {k: v for b, k, v in st.records() if b == B_AUTH_USERS}
    assert records[b"alice"] == (
        b'\n\x05alice\x12<$2a$10$yM.TK7zpnTJjLp..lMfeReIpJy5OsBf3xHtMUj0lDsCbahhcbMVvC\x1a\x02r1"\x00'
    )
    assert records[b"bob"] == b'\n\x03bob"\x02\x08\x01'
    before = (st.state_hash(), st.revision, st.user_list())
    st.load()
    assert (st.state_hash(), st.revision, st.user_list()) == before


def test_huge_names_are_stored(store: AuthStore) -> None:
    st = store
    name = "u" * 100_000  # far over LMDB's 511-byte keys
    add_user(st, name)
    add_user(st, name[:-1])  # shares the stored key's prefix
    st.load()
    assert st.user_list() == sorted([name, name[:-1]])
    st.user_delete(rpc_pb2.AuthUserDeleteRequest(name=name))
    st.load()
    assert st.user_list() == [name[:-1]]
