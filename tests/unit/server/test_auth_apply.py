"""Auth in the state machine and at the API's gate, in process: what the applier refuses (with
the user and revision an entry carries), what the API's authorizer refuses, and that every
member applying the same log ends with the same auth state."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from minietcd.api.authpb import auth_pb2
from minietcd.api.etcdserverpb import raft_internal_pb2, rpc_pb2
from minietcd.errors import (
    AuthOldRevisionError,
    InvalidAuthTokenError,
    MinietcdError,
    PermissionDeniedError,
    UserEmptyError,
)
from minietcd.raft.types import Entry
from minietcd.server import apply_snapshot
from minietcd.server.api.admission import Op, RequestContext
from minietcd.server.api.authorize import Authorizer
from minietcd.server.apply import StateMachine
from minietcd.server.apply_auth import Authenticated
from minietcd.server.auth.tokens import SimpleTokens

R = raft_internal_pb2.InternalRaftRequest
pb = rpc_pb2


@dataclass
class Log:
    """One state machine and the log it applied."""

    sm: StateMachine
    entries: list[Entry]

    def apply(self, req: R, user: str = "", revision: int | None = None) -> object:
        if user:
            req.header.username = user
            req.header.auth_revision = self.sm.auth.revision if revision is None else revision
        req.header.ID = len(self.entries) + 1
        e = Entry(term=1, index=len(self.entries) + 1, data=req.SerializeToString())
        self.entries.append(e)
        out = self.sm.apply(e)
        if out.error is not None:
            raise out.error
        return out.response


@pytest.fixture
def log() -> Iterator[Log]:
    sm = StateMachine(clock=time.monotonic, min_lease_ttl=1, member_id=1)
    sm.auth.attach_tokens(SimpleTokens())
    try:
        yield Log(sm, [])
    finally:
        sm.close()


def setup_auth(log: Log) -> None:
    """root (root role), alice with role app: readwrite /app/, read /pub/; auth on."""
    for name in ("root", "alice"):
        log.apply(R(auth_user_add=pb.AuthUserAddRequest(name=name, password="$2a$04$h")))
    log.apply(R(auth_role_add=pb.AuthRoleAddRequest(name="app")))
    for kind, key, end in (
        (auth_pb2.Permission.READWRITE, b"/app/", b"/app0"),
        (auth_pb2.Permission.READ, b"/pub/", b"/pub0"),
    ):
        perm = auth_pb2.Permission(permType=kind, key=key, range_end=end)
        log.apply(R(auth_role_grant_permission=pb.AuthRoleGrantPermissionRequest(name="app", perm=perm)))
    log.apply(R(auth_user_grant_role=pb.AuthUserGrantRoleRequest(user="alice", role="app")))
    log.apply(R(auth_user_grant_role=pb.AuthUserGrantRoleRequest(user="root", role="root")))
    log.apply(R(auth_enable=pb.AuthEnableRequest()))


def test_the_applier_checks_what_entries_carry(log: Log) -> None:
    setup_auth(log)
    log.apply(R(put=pb.PutRequest(key=b"/app/k", value=b"v")), "alice")
    with pytest.raises(PermissionDeniedError):
        log.apply(R(put=pb.PutRequest(key=b"/pub/k", value=b"v")), "alice")
    with pytest.raises(UserEmptyError):
        log.apply(R(put=pb.PutRequest(key=b"/app/k", value=b"v")))
    # Proposed before a permission changed, applied after: refused (etcd's ErrAuthOldRevision).
    with pytest.raises(AuthOldRevisionError):
        log.apply(R(put=pb.PutRequest(key=b"/app/k", value=b"v")), "alice", log.sm.auth.revision - 1)
    with pytest.raises(PermissionDeniedError):  # only root changes auth
        log.apply(R(auth_role_add=pb.AuthRoleAddRequest(name="x")), "alice")
    with pytest.raises(PermissionDeniedError):
        log.apply(
            R(delete_range=pb.DeleteRangeRequest(key=b"/pub/", range_end=b"/pub0")), "alice"
        )


def test_a_nested_txn_cannot_reach_around_a_grant(log: Log) -> None:
    setup_auth(log)
    inner = pb.TxnRequest(success=[pb.RequestOp(request_put=pb.PutRequest(key=b"/secret", value=b"x"))])
    outer = pb.TxnRequest(
        success=[
            pb.RequestOp(request_put=pb.PutRequest(key=b"/app/ok", value=b"y")),
            pb.RequestOp(request_txn=inner),
        ]
    )
    with pytest.raises(PermissionDeniedError):
        log.apply(R(txn=outer), "alice")
    assert log.sm.kv.current_revision == 1  # nothing written


def test_lease_revoke_needs_write_on_every_attached_key(log: Log) -> None:
    setup_auth(log)
    log.apply(R(lease_grant=pb.LeaseGrantRequest(ID=7, TTL=60)), "root")
    log.apply(R(put=pb.PutRequest(key=b"/secret", value=b"s", lease=7)), "root")
    with pytest.raises(PermissionDeniedError):
        log.apply(R(lease_revoke=pb.LeaseRevokeRequest(ID=7)), "alice")
    with pytest.raises(PermissionDeniedError):  # nor attach it to a key alice may write
        log.apply(R(put=pb.PutRequest(key=b"/app/l", value=b"v", lease=7)), "alice")
    log.apply(R(lease_revoke=pb.LeaseRevokeRequest(ID=7)), "root")


def test_authenticate_registers_the_simple_token_on_every_member(log: Log) -> None:
    setup_auth(log)
    req = R(authenticate=raft_internal_pb2.InternalAuthenticateRequest(name="alice", simple_token="abcdef"))
    done = log.apply(req)
    assert isinstance(done, Authenticated)
    assert done.simple_token == f"abcdef.{len(log.entries)}" and done.revision == log.sm.auth.revision
    assert len(log.sm.auth.tokens) == 1  # type: ignore[arg-type]  # a SimpleTokens here


def test_every_member_ends_with_the_same_auth_state(log: Log) -> None:
    setup_auth(log)
    log.apply(
        R(auth_user_change_password=pb.AuthUserChangePasswordRequest(name="alice", password="$2a$04$x")),
        "root",
    )
    with pytest.raises(MinietcdError):
        log.apply(R(auth_user_delete=pb.AuthUserDeleteRequest(name="root")), "root")
    other = StateMachine(clock=time.monotonic, min_lease_ttl=1, member_id=2)
    try:
        for e in log.entries:
            other.apply(e)
        assert other.auth.state_hash() == log.sm.auth.state_hash()
        assert other.auth.revision == log.sm.auth.revision and other.auth.enabled
    finally:
        other.close()


def test_a_snapshot_install_brings_the_auth_state(log: Log) -> None:
    """A member that gets the leader's database (a Raft snapshot) gets its users and roles."""
    setup_auth(log)
    data = log.sm.snapshot()  # the header naming the applied index; the database is the backend
    index = apply_snapshot.decode_header(data)
    assert index is not None
    fresh = StateMachine(clock=time.monotonic, min_lease_ttl=1, member_id=3)
    try:
        log.sm.backend.copy_to(apply_snapshot.db_file(fresh.backend, index))
        fresh.restore(data)
        assert fresh.auth.state_hash() == log.sm.auth.state_hash() and fresh.auth.enabled
        assert fresh.auth.user_list() == ["alice", "root"]
        assert fresh.auth.perms["alice"].write.has_key(b"/app/x")
    finally:
        fresh.close()


# ------------------------------------------------------------------------------- authorizer


async def test_the_authorizer_knows_who_asks(log: Log) -> None:
    setup_auth(log)
    st = log.sm.auth
    st.tokens.register("tok.1", "alice")
    authz = Authorizer(st, client_cert_auth=True)
    get_app = pb.RangeRequest(key=b"/app/k")
    assert (await authz.authorize(RequestContext(auth_token="tok.1"), Op.RANGE, get_app)).username == "alice"  # type: ignore[union-attr]  # a user
    assert (await authz.authorize(RequestContext(client_cn="alice"), Op.RANGE, get_app)).username == "alice"  # type: ignore[union-attr]  # a user
    with pytest.raises(InvalidAuthTokenError):  # a token wins over the certificate, and must be good
        await authz.authorize(RequestContext(auth_token="bad", client_cn="root"), Op.RANGE, get_app)
    with pytest.raises(UserEmptyError):
        await authz.authorize(RequestContext(), Op.RANGE, get_app)
    no_cn = Authorizer(st, client_cert_auth=False)
    with pytest.raises(UserEmptyError):  # without --client-cert-auth the CN means nothing
        await no_cn.authorize(RequestContext(client_cn="root"), Op.RANGE, get_app)
    alice = RequestContext(client_cn="alice")
    with pytest.raises(PermissionDeniedError):
        await authz.authorize(alice, Op.WATCH, pb.WatchCreateRequest(key=b"/secret"))
    await authz.authorize(alice, Op.WATCH, pb.WatchCreateRequest(key=b"/pub/", range_end=b"/pub0"))
    for op in (Op.MEMBER_ADD, Op.SNAPSHOT, Op.HASH_KV, Op.DEFRAGMENT, Op.AUTH_USER_LIST):
        with pytest.raises(PermissionDeniedError):
            await authz.authorize(alice, op, None)
    for op in (Op.STATUS, Op.MEMBER_LIST, Op.LEASE_KEEP_ALIVE, Op.LOCK, Op.MOVE_LEADER):
        await authz.authorize(RequestContext(), op, None)  # etcd asks nothing for these
    await authz.authorize(alice, Op.AUTH_USER_GET, pb.AuthUserGetRequest(name="alice"))
    await authz.authorize(alice, Op.AUTH_ROLE_GET, pb.AuthRoleGetRequest(role="app"))
    with pytest.raises(PermissionDeniedError):
        await authz.authorize(alice, Op.AUTH_ROLE_GET, pb.AuthRoleGetRequest(role="root"))


async def test_lease_keys_are_data_too(log: Log) -> None:
    """LeaseTimeToLive with keys needs read permission on each key (etcd 3.4.26 / 3.5)."""
    setup_auth(log)
    log.apply(R(lease_grant=pb.LeaseGrantRequest(ID=9, TTL=60)), "root")
    log.apply(R(put=pb.PutRequest(key=b"/secret", value=b"s", lease=9)), "root")
    lessor = log.sm.lessor

    def keys(lease_id: int) -> tuple[bytes, ...]:
        lease = lessor.lookup(lease_id)
        return () if lease is None else lease.keys

    authz = Authorizer(log.sm.auth, client_cert_auth=True, lease_keys=keys)
    alice = RequestContext(client_cn="alice")
    await authz.authorize(alice, Op.LEASE_TIME_TO_LIVE, pb.LeaseTimeToLiveRequest(ID=9))
    with pytest.raises(PermissionDeniedError):
        await authz.authorize(alice, Op.LEASE_TIME_TO_LIVE, pb.LeaseTimeToLiveRequest(ID=9, keys=True))
    with pytest.raises(PermissionDeniedError):
        await authz.authorize(alice, Op.LEASE_REVOKE, pb.LeaseRevokeRequest(ID=9))


async def test_a_token_is_checked_even_with_auth_off(log: Log) -> None:
    authz = Authorizer(log.sm.auth)
    with pytest.raises(InvalidAuthTokenError):  # etcd: a token must be good, auth on or off
        await authz.authorize(RequestContext(auth_token="stale.3"), Op.PUT, pb.PutRequest(key=b"k"))
    assert await authz.authorize(RequestContext(), Op.PUT, pb.PutRequest(key=b"k")) is None
