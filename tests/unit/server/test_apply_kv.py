"""KVApplier: etcd 3.4 applierV3backend semantics for Range / Put / DeleteRange / Txn / Compaction."""

from __future__ import annotations

import ast
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from minietcd import errors as E
from minietcd.api.etcdserverpb import rpc_pb2 as pb
from minietcd.api.mvccpb import kv_pb2
from minietcd.errors import (
    CompactedRevisionError,
    EmptyKeyError,
    FutureRevisionError,
    KeyNotFoundError,
    LeaseNotFoundError,
    MinietcdError,
    ServerError,
)
from minietcd.lease import Lessor
from minietcd.mvcc import KVStore
from minietcd.server import apply_kv
from minietcd.server.apply_kv import KVApplier
from minietcd.server.v3rpc.errors import to_grpc_status

# etcd's words for the errors below (the classes of minietcd.errors hold them).
ERR_COMPACTED = E.CompactedRevisionError.etcd_message
ERR_FUTURE_REV = E.FutureRevisionError.etcd_message
ERR_INVALID_SORT_OPTION = E.InvalidSortOptionError.etcd_message
ERR_KEY_NOT_FOUND = E.KeyNotFoundError.etcd_message
ERR_LEASE_NOT_FOUND = E.LeaseNotFoundError.etcd_message

V, CR, MOD, VAL, LEASE = (
    pb.Compare.VERSION,
    pb.Compare.CREATE,
    pb.Compare.MOD,
    pb.Compare.VALUE,
    pb.Compare.LEASE,
)
EQ, GT, LT, NE = pb.Compare.EQUAL, pb.Compare.GREATER, pb.Compare.LESS, pb.Compare.NOT_EQUAL


class Env:
    """An applier over a fresh store and lessor (leases 100 and 200 granted)."""

    def __init__(self) -> None:
        self.kv = KVStore()
        self.lessor = Lessor(lambda: 0.0, 1)
        self.a = KVApplier(self.kv, self.lessor)
        self.lessor.grant(100, 60)
        self.lessor.grant(200, 60)

    def put(self, key: bytes, value: bytes = b"", **kw: Any) -> pb.PutResponse:
        return self.a.put(pb.PutRequest(key=key, value=value, **kw))

    def get(self, key: bytes, **kw: Any) -> pb.RangeResponse:
        return self.a.range(pb.RangeRequest(key=key, **kw))

    def one(self, key: bytes) -> kv_pb2.KeyValue | None:
        kvs = self.get(key).kvs
        return kvs[0] if kvs else None

    def leased(self, lease: int) -> tuple[bytes, ...]:
        got = self.lessor.lookup(lease)
        assert got is not None
        return got.keys

    def state(self) -> tuple[int, int, tuple[tuple[int, tuple[bytes, ...]], ...]]:
        """Everything a failed request must leave alone."""
        leases = tuple((le.id, le.keys) for le in self.lessor.leases())
        return self.kv.current_revision, self.kv.hash_kv().hash, leases


@pytest.fixture
def env() -> Env:
    return Env()


def kv(key: bytes, create: int, mod: int, ver: int, value: bytes = b"", lease: int = 0) -> kv_pb2.KeyValue:
    return kv_pb2.KeyValue(
        key=key, create_revision=create, mod_revision=mod, version=ver, value=value, lease=lease
    )


def rng(key: bytes, **kw: Any) -> pb.RequestOp:
    return pb.RequestOp(request_range=pb.RangeRequest(key=key, **kw))


def put(key: bytes, value: bytes = b"", **kw: Any) -> pb.RequestOp:
    return pb.RequestOp(request_put=pb.PutRequest(key=key, value=value, **kw))


def dele(key: bytes, end: bytes = b"", **kw: Any) -> pb.RequestOp:
    return pb.RequestOp(request_delete_range=pb.DeleteRangeRequest(key=key, range_end=end, **kw))


def tx(
    compare: list[pb.Compare] | None = None,
    success: list[pb.RequestOp] | None = None,
    failure: list[pb.RequestOp] | None = None,
) -> pb.TxnRequest:
    return pb.TxnRequest(compare=compare or [], success=success or [], failure=failure or [])


def nested(
    compare: list[pb.Compare] | None = None,
    success: list[pb.RequestOp] | None = None,
    failure: list[pb.RequestOp] | None = None,
) -> pb.RequestOp:
    return pb.RequestOp(request_txn=tx(compare, success, failure))


def cmp(key: bytes, target: int, result: int, end: bytes = b"", **operand: Any) -> pb.Compare:
    return pb.Compare(key=key, target=target, result=result, range_end=end, **operand)  # type: ignore[arg-type]  # enum ints, as protobuf takes them


def keys(resp: pb.RangeResponse) -> list[bytes]:
    return [k.key for k in resp.kvs]


# --- Range ----------------------------------------------------------------------------------


@pytest.fixture
def store() -> Env:
    """key: (create, mod, version, value)  a:(2,5,2,"0") b:(3,8,3,"5") c:(4,4,1,"2") d:(6,6,1,"2")
    and e put at 9, deleted at 10. Current revision 10."""
    e = Env()
    for key, value in [
        (b"a", b"3"),
        (b"b", b"1"),
        (b"c", b"2"),
        (b"a", b"0"),
        (b"d", b"2"),
        (b"b", b"9"),
        (b"b", b"5"),
        (b"e", b"x"),
    ]:
        e.put(key, value)
    e.a.delete_range(pb.DeleteRangeRequest(key=b"e"))
    assert e.kv.current_revision == 10
    return e


ALL = {"key": b"a", "range_end": b"\0"}


@pytest.mark.parametrize(
    ("req", "want", "count", "more"),
    [
        ({"key": b"a"}, [b"a"], 1, False),
        ({"key": b"zz"}, [], 0, False),
        ({"key": b"e"}, [], 0, False),  # deleted
        ({"key": b"a", "range_end": b"c"}, [b"a", b"b"], 2, False),
        ({"key": b"c", "range_end": b"a"}, [], 0, False),  # inverted
        (ALL, [b"a", b"b", b"c", b"d"], 4, False),
        ({"key": b"\0", "range_end": b"\0"}, [b"a", b"b", b"c", b"d"], 4, False),  # everything
        ({"key": b"b", "range_end": b"\0"}, [b"b", b"c", b"d"], 3, False),
        ({**ALL, "limit": 2}, [b"a", b"b"], 4, True),
        ({**ALL, "limit": 4}, [b"a", b"b", b"c", b"d"], 4, False),
        ({**ALL, "limit": 9}, [b"a", b"b", b"c", b"d"], 4, False),
        ({**ALL, "limit": -1}, [b"a", b"b", b"c", b"d"], 4, False),  # <= 0: no limit
        ({**ALL, "count_only": True}, [], 4, False),
        ({**ALL, "count_only": True, "limit": 1}, [], 4, False),
        ({**ALL, "revision": 4}, [b"a", b"b", b"c"], 3, False),
        ({**ALL, "revision": 9}, [b"a", b"b", b"c", b"d", b"e"], 5, False),
        ({**ALL, "revision": 1}, [], 0, False),
        ({**ALL, "revision": -3}, [b"a", b"b", b"c", b"d"], 4, False),  # <= 0: current
        ({**ALL, "serializable": True}, [b"a", b"b", b"c", b"d"], 4, False),  # not ours
        # sorts
        ({**ALL, "sort_order": pb.RangeRequest.DESCEND}, [b"d", b"c", b"b", b"a"], 4, False),
        (
            {**ALL, "sort_order": pb.RangeRequest.ASCEND, "sort_target": pb.RangeRequest.VERSION},
            [b"c", b"d", b"a", b"b"],
            4,
            False,
        ),
        ({**ALL, "sort_target": pb.RangeRequest.MOD}, [b"c", b"a", b"d", b"b"], 4, False),  # NONE->ASCEND
        (
            {**ALL, "sort_order": pb.RangeRequest.DESCEND, "sort_target": pb.RangeRequest.MOD},
            [b"b", b"d", b"a", b"c"],
            4,
            False,
        ),
        (
            {**ALL, "sort_order": pb.RangeRequest.DESCEND, "sort_target": pb.RangeRequest.CREATE},
            [b"d", b"c", b"b", b"a"],
            4,
            False,
        ),
        (
            {**ALL, "sort_order": pb.RangeRequest.ASCEND, "sort_target": pb.RangeRequest.VALUE},
            [b"a", b"c", b"d", b"b"],
            4,
            False,
        ),
        # sorting fetches everything, then cuts to limit
        ({**ALL, "sort_order": pb.RangeRequest.DESCEND, "limit": 2}, [b"d", b"c"], 4, True),
        # etcd 3.4 quirk: a non-KEY target with order NONE sorts only the first limit+1 keys
        # (a, b, c fetched; by mod c=4 a=5 b=8; d, mod 6, is never seen)
        ({**ALL, "sort_target": pb.RangeRequest.MOD, "limit": 2}, [b"c", b"a"], 4, True),
        # filters: count stays the store's count, more is decided after filtering
        ({**ALL, "min_mod_revision": 5}, [b"a", b"b", b"d"], 4, False),
        ({**ALL, "max_mod_revision": 5}, [b"a", b"c"], 4, False),
        ({**ALL, "min_create_revision": 4}, [b"c", b"d"], 4, False),
        ({**ALL, "max_create_revision": 3}, [b"a", b"b"], 4, False),
        ({**ALL, "min_mod_revision": 5, "max_create_revision": 4}, [b"a", b"b"], 4, False),
        ({**ALL, "min_mod_revision": 5, "limit": 2}, [b"a", b"b"], 4, True),
        ({**ALL, "min_mod_revision": 5, "limit": 3}, [b"a", b"b", b"d"], 4, False),
        ({**ALL, "min_create_revision": 99}, [], 4, False),
    ],
)
def test_range_options(store: Env, req: dict[str, Any], want: list[bytes], count: int, more: bool) -> None:
    resp = store.a.range(pb.RangeRequest(**req))
    assert keys(resp) == want
    assert resp.count == count
    assert resp.more is more
    # The header revision is the store's current revision, whatever revision was read.
    assert resp.header == pb.ResponseHeader(revision=10)


def test_range_kv_fields_and_keys_only(store: Env) -> None:
    resp = store.get(b"a", range_end=b"c")
    assert list(resp.kvs) == [kv(b"a", 2, 5, 2, b"0"), kv(b"b", 3, 8, 3, b"5")]
    resp = store.get(b"a", range_end=b"c", keys_only=True)
    assert list(resp.kvs) == [kv(b"a", 2, 5, 2), kv(b"b", 3, 8, 3)]
    # keys_only blanks values after sorting by value
    resp = store.get(
        b"a",
        range_end=b"\0",
        keys_only=True,
        sort_target=pb.RangeRequest.VALUE,
        sort_order=pb.RangeRequest.DESCEND,
    )
    assert keys(resp) == [b"b", b"c", b"d", b"a"] and {k.value for k in resp.kvs} == {b""}
    # an old revision shows old values
    assert list(store.get(b"b", revision=3).kvs) == [kv(b"b", 3, 3, 1, b"1")]


def test_range_revision_errors(store: Env) -> None:
    with pytest.raises(FutureRevisionError) as fut:
        store.get(b"a", revision=11)
    assert to_grpc_status(fut.value) == (grpc.StatusCode.OUT_OF_RANGE, ERR_FUTURE_REV)
    store.a.compaction(pb.CompactionRequest(revision=6))
    assert keys(store.get(b"a", range_end=b"\0", revision=6)) == [b"a", b"b", b"c", b"d"]
    with pytest.raises(CompactedRevisionError) as old:
        store.get(b"a", revision=5)
    assert to_grpc_status(old.value) == (grpc.StatusCode.OUT_OF_RANGE, ERR_COMPACTED)


@pytest.mark.parametrize(("order", "target"), [(3, 0), (0, 5), (-1, 1)])
def test_range_invalid_sort_option(store: Env, order: int, target: int) -> None:
    with pytest.raises(ServerError) as info:
        store.get(b"a", sort_order=order, sort_target=target)
    assert info.value.etcd_message == ERR_INVALID_SORT_OPTION


# --- Put ------------------------------------------------------------------------------------


def test_put_response_fields(env: Env) -> None:
    r = env.put(b"k", b"v1")
    assert r == pb.PutResponse(header=pb.ResponseHeader(revision=2))
    assert not r.HasField("prev_kv")
    r = env.put(b"k", b"v2", prev_kv=True)
    assert r == pb.PutResponse(header=pb.ResponseHeader(revision=3), prev_kv=kv(b"k", 2, 2, 1, b"v1"))
    r = env.put(b"new", b"x", prev_kv=True)  # nothing before: no prev_kv at all
    assert r == pb.PutResponse(header=pb.ResponseHeader(revision=4))
    assert not r.HasField("prev_kv")
    assert env.one(b"k") == kv(b"k", 2, 3, 2, b"v2")


def test_put_with_lease_attaches_and_moves(env: Env) -> None:
    env.put(b"k", b"v", lease=100)
    assert env.one(b"k") == kv(b"k", 2, 2, 1, b"v", 100)
    assert env.leased(100) == (b"k",)
    env.put(b"k", b"v", lease=200)  # moves to the new lease
    assert env.leased(100) == () and env.leased(200) == (b"k",)
    assert env.lessor.get_lease(b"k") == 200
    env.put(b"k", b"v")  # a put without a lease detaches
    assert env.leased(200) == () and env.lessor.get_lease(b"k") == 0
    assert env.one(b"k") == kv(b"k", 2, 4, 3, b"v", 0)


def test_put_missing_lease(env: Env) -> None:
    env.put(b"k", b"v")
    before = env.state()
    with pytest.raises(LeaseNotFoundError) as info:
        env.put(b"k", b"w", lease=999)
    assert to_grpc_status(info.value) == (grpc.StatusCode.NOT_FOUND, ERR_LEASE_NOT_FOUND)
    assert env.state() == before
    # etcd checks the lease before the ignore flags: a missing key does not hide it
    with pytest.raises(LeaseNotFoundError):
        env.put(b"missing", lease=999, ignore_value=True)


def test_put_ignore_value(env: Env) -> None:
    env.put(b"k", b"keep", lease=100)
    r = env.put(b"k", ignore_value=True, lease=200, prev_kv=True)
    assert r.header.revision == 3 and r.prev_kv == kv(b"k", 2, 2, 1, b"keep", 100)
    assert env.one(b"k") == kv(b"k", 2, 3, 2, b"keep", 200)
    assert env.leased(200) == (b"k",) and env.leased(100) == ()
    # etcd's applier ignores a value sent along (the edge refuses such a request)
    env.put(b"k", b"sent", ignore_value=True)
    assert env.one(b"k") == kv(b"k", 2, 4, 3, b"keep", 0)


def test_put_ignore_lease(env: Env) -> None:
    env.put(b"k", b"v1", lease=100)
    env.put(b"k", b"v2", ignore_lease=True)
    assert env.one(b"k") == kv(b"k", 2, 3, 2, b"v2", 100)
    assert env.leased(100) == (b"k",)
    # a lease sent along is ignored (after etcd's existence check), the old one is kept
    env.put(b"k", b"v3", ignore_lease=True, lease=200)
    assert env.one(b"k") == kv(b"k", 2, 4, 3, b"v3", 100)
    assert env.leased(100) == (b"k",) and env.leased(200) == ()
    env.put(b"k", ignore_lease=True, ignore_value=True)
    assert env.one(b"k") == kv(b"k", 2, 5, 4, b"v3", 100)


@pytest.mark.parametrize(
    "flags", [{"ignore_value": True}, {"ignore_lease": True}, {"ignore_value": True, "ignore_lease": True}]
)
def test_put_ignore_flags_need_the_key(env: Env, flags: dict[str, Any]) -> None:
    env.put(b"other", b"v")
    env.put(b"gone", b"v")
    env.a.delete_range(pb.DeleteRangeRequest(key=b"gone"))
    before = env.state()
    for key in (b"missing", b"gone"):
        with pytest.raises(KeyNotFoundError) as info:
            env.put(key, **flags)
        assert to_grpc_status(info.value) == (grpc.StatusCode.INVALID_ARGUMENT, ERR_KEY_NOT_FOUND)
    assert env.state() == before


# --- DeleteRange ----------------------------------------------------------------------------


def test_delete_responses(store: Env) -> None:
    r = store.a.delete_range(pb.DeleteRangeRequest(key=b"zz"))
    assert r == pb.DeleteRangeResponse(header=pb.ResponseHeader(revision=10), deleted=0)
    assert store.kv.current_revision == 10  # nothing deleted: no new revision
    r = store.a.delete_range(pb.DeleteRangeRequest(key=b"a", range_end=b"c"))
    assert r == pb.DeleteRangeResponse(header=pb.ResponseHeader(revision=11), deleted=2)
    r = store.a.delete_range(pb.DeleteRangeRequest(key=b"c", range_end=b"\0", prev_kv=True))
    assert r == pb.DeleteRangeResponse(
        header=pb.ResponseHeader(revision=12),
        deleted=2,
        prev_kvs=[kv(b"c", 4, 4, 1, b"2"), kv(b"d", 6, 6, 1, b"2")],
    )
    assert store.get(b"\0", range_end=b"\0").count == 0
    r = store.a.delete_range(pb.DeleteRangeRequest(key=b"a", range_end=b"\0", prev_kv=True))
    assert r == pb.DeleteRangeResponse(header=pb.ResponseHeader(revision=12), deleted=0)


def test_delete_detaches_leases(env: Env) -> None:
    env.put(b"a", lease=100)
    env.put(b"b", lease=100)
    env.put(b"c", lease=200)
    env.put(b"d")
    env.a.delete_range(pb.DeleteRangeRequest(key=b"b", range_end=b"\0"))
    assert env.leased(100) == (b"a",) and env.leased(200) == ()
    assert env.lessor.get_lease(b"c") == 0
    env.put(b"c")  # back without a lease
    assert env.lessor.get_lease(b"c") == 0 and env.leased(200) == ()


# --- Txn: compares --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("compare", "succeeded"),
    [
        # a: create 2, mod 5, version 2, value "0", lease 100 (put again at 5 with the lease)
        (cmp(b"a", V, EQ, version=2), True),
        (cmp(b"a", V, GT, version=1), True),
        (cmp(b"a", V, LT, version=2), False),
        (cmp(b"a", V, NE, version=2), False),
        (cmp(b"a", CR, EQ, create_revision=2), True),
        (cmp(b"a", MOD, EQ, mod_revision=5), True),
        (cmp(b"a", MOD, LT, mod_revision=5), False),
        (cmp(b"a", VAL, EQ, value=b"0"), True),
        (cmp(b"a", VAL, GT, value=b""), True),
        (cmp(b"a", VAL, LT, value=b"00"), True),
        (cmp(b"a", LEASE, EQ, lease=100), True),
        (cmp(b"b", LEASE, EQ, lease=0), True),
        # missing keys: every field is 0, except that any VALUE compare fails
        (cmp(b"zz", CR, EQ, create_revision=0), True),
        (cmp(b"zz", V, EQ, version=0), True),
        (cmp(b"zz", MOD, LT, mod_revision=1), True),
        (cmp(b"zz", LEASE, EQ, lease=0), True),
        (cmp(b"zz", VAL, EQ, value=b""), False),
        (cmp(b"zz", VAL, NE, value=b"x"), False),
        (cmp(b"e", CR, EQ, create_revision=0), True),  # deleted key
        # range compares: every key in [key, end) must hold
        (cmp(b"a", CR, GT, b"c", create_revision=1), True),
        (cmp(b"a", CR, GT, b"c", create_revision=2), False),  # a fails
        (cmp(b"a", V, GT, b"\0", version=0), True),
        (cmp(b"b", VAL, GT, b"\0", value=b"1"), True),
        (cmp(b"a", VAL, GT, b"\0", value=b"1"), False),
        (cmp(b"x", CR, EQ, b"z", create_revision=0), True),  # empty range: the zero kv
        # the operand must be in the target's own union field, else it counts as 0 / b""
        (cmp(b"a", MOD, GT, version=100), True),
        (cmp(b"a", V, EQ), False),
        (cmp(b"a", VAL, EQ, lease=3), False),
        # unknown enum values, as etcd: unknown result passes; unknown target compares 0 to 0
        (cmp(b"a", V, 9, version=999), True),
        (cmp(b"zz", VAL, 9, value=b"x"), False),  # ...but a missing VALUE still fails
        (cmp(b"a", 9, EQ, version=999), True),
        (cmp(b"a", 9, GT, version=-1), False),
        (cmp(b"zz", 9, NE), False),
    ],
)
def test_txn_compare(compare: pb.Compare, succeeded: bool) -> None:
    e = Env()
    e.put(b"a", b"x")  # 2
    e.put(b"b", b"5")  # 3
    e.put(b"e", b"e")  # 4
    e.put(b"a", b"0", lease=100)  # 5
    e.a.delete_range(pb.DeleteRangeRequest(key=b"e"))  # 6
    resp = e.a.txn(tx([compare], [rng(b"a")], [rng(b"b")]))
    assert resp.succeeded is succeeded
    assert keys(resp.responses[0].response_range) == ([b"a"] if succeeded else [b"b"])


def test_txn_compares_all_must_hold(env: Env) -> None:
    env.put(b"a", b"1")
    ok, bad = cmp(b"a", VAL, EQ, value=b"1"), cmp(b"a", V, EQ, version=5)
    assert env.a.txn(tx([ok, ok])).succeeded
    assert not env.a.txn(tx([ok, bad])).succeeded
    assert not env.a.txn(tx([bad, ok])).succeeded
    assert env.a.txn(tx()).succeeded  # no compares: success


# --- Txn: responses and revisions -----------------------------------------------------------


def test_txn_one_revision_and_reads_see_own_writes(env: Env) -> None:
    env.put(b"a", b"0")  # 2
    resp = env.a.txn(
        tx(
            [cmp(b"a", CR, GT, create_revision=0)],
            [
                rng(b"a", range_end=b"\0"),
                put(b"a", b"1", prev_kv=True),
                put(b"b", b"2"),
                rng(b"a", range_end=b"\0"),
                dele(b"a", prev_kv=True),
                rng(b"a", range_end=b"\0", count_only=True),
                dele(b"zzz"),
            ],
        )
    )
    want = pb.TxnResponse(
        header=pb.ResponseHeader(revision=3),
        succeeded=True,
        responses=[
            pb.ResponseOp(
                response_range=pb.RangeResponse(
                    header=pb.ResponseHeader(revision=2), kvs=[kv(b"a", 2, 2, 1, b"0")], count=1
                )
            ),
            pb.ResponseOp(
                response_put=pb.PutResponse(
                    header=pb.ResponseHeader(revision=3), prev_kv=kv(b"a", 2, 2, 1, b"0")
                )
            ),
            pb.ResponseOp(response_put=pb.PutResponse(header=pb.ResponseHeader(revision=3))),
            pb.ResponseOp(
                response_range=pb.RangeResponse(
                    header=pb.ResponseHeader(revision=3),
                    kvs=[kv(b"a", 2, 3, 2, b"1"), kv(b"b", 3, 3, 1, b"2")],
                    count=2,
                )
            ),
            pb.ResponseOp(
                response_delete_range=pb.DeleteRangeResponse(
                    header=pb.ResponseHeader(revision=3), deleted=1, prev_kvs=[kv(b"a", 2, 3, 2, b"1")]
                )
            ),
            pb.ResponseOp(response_range=pb.RangeResponse(header=pb.ResponseHeader(revision=3), count=1)),
            pb.ResponseOp(
                response_delete_range=pb.DeleteRangeResponse(header=pb.ResponseHeader(revision=3), deleted=0)
            ),
        ],
    )
    assert resp == want
    assert env.kv.current_revision == 3  # one revision for the whole txn
    assert env.one(b"a") is None and env.one(b"b") == kv(b"b", 3, 3, 1, b"2")
    # a range in a later request reads the txn's state at its one revision
    assert keys(env.get(b"\0", range_end=b"\0", revision=3)) == [b"b"]


def test_txn_read_only_and_no_op_writes_keep_the_revision(env: Env) -> None:
    env.put(b"a", b"0")
    r = env.a.txn(tx([cmp(b"a", V, EQ, version=7)], [put(b"x")], [rng(b"a")]))
    # the chosen branch only reads, but the txn holds a put: etcd still opens a write txn
    assert not r.succeeded and r.header.revision == 2 and env.kv.current_revision == 2
    r = env.a.txn(tx([], [rng(b"a"), rng(b"b")], [rng(b"c")]))
    assert r.header.revision == 2 and len(r.responses) == 2
    assert r.responses[0].response_range.header.revision == 2
    r = env.a.txn(tx([], [dele(b"nothing")]))
    assert r == pb.TxnResponse(
        header=pb.ResponseHeader(revision=2),
        succeeded=True,
        responses=[
            pb.ResponseOp(response_delete_range=pb.DeleteRangeResponse(header=pb.ResponseHeader(revision=2)))
        ],
    )
    assert env.kv.current_revision == 2
    assert env.a.txn(tx()) == pb.TxnResponse(header=pb.ResponseHeader(revision=2), succeeded=True)


def test_txn_failure_branch(env: Env) -> None:
    r = env.a.txn(
        tx([cmp(b"k", CR, GT, create_revision=0)], [put(b"k", b"exists")], [put(b"k", b"created"), rng(b"k")])
    )
    assert not r.succeeded
    assert [op.WhichOneof("response") for op in r.responses] == ["response_put", "response_range"]
    assert r.responses[1].response_range.kvs[0].value == b"created"
    assert r.header.revision == 2


def test_nested_txns(env: Env) -> None:
    env.put(b"a", b"0")  # 2
    r = env.a.txn(
        tx(
            [cmp(b"a", V, EQ, version=1)],
            [
                put(b"n", b"1"),
                # nested compares see the store before the outer txn: n does not exist yet
                nested([cmp(b"n", CR, EQ, create_revision=0)], [put(b"m", b"2"), rng(b"n")], [put(b"never")]),
                nested(
                    [cmp(b"a", V, EQ, version=9)], [put(b"never")], [nested([], [dele(b"a", prev_kv=True)])]
                ),
            ],
            [put(b"never")],
        )
    )
    inner_ok = pb.TxnResponse(
        header=pb.ResponseHeader(),
        succeeded=True,
        responses=[
            pb.ResponseOp(response_put=pb.PutResponse(header=pb.ResponseHeader(revision=3))),
            pb.ResponseOp(
                response_range=pb.RangeResponse(
                    header=pb.ResponseHeader(revision=3), kvs=[kv(b"n", 3, 3, 1, b"1")], count=1
                )
            ),
        ],
    )
    inner_else = pb.TxnResponse(
        header=pb.ResponseHeader(),
        succeeded=False,
        responses=[
            pb.ResponseOp(
                response_txn=pb.TxnResponse(
                    header=pb.ResponseHeader(),
                    succeeded=True,
                    responses=[
                        pb.ResponseOp(
                            response_delete_range=pb.DeleteRangeResponse(
                                header=pb.ResponseHeader(revision=3),
                                deleted=1,
                                prev_kvs=[kv(b"a", 2, 2, 1, b"0")],
                            )
                        )
                    ],
                )
            )
        ],
    )
    assert r == pb.TxnResponse(
        header=pb.ResponseHeader(revision=3),
        succeeded=True,
        responses=[
            pb.ResponseOp(response_put=pb.PutResponse(header=pb.ResponseHeader(revision=3))),
            pb.ResponseOp(response_txn=inner_ok),
            pb.ResponseOp(response_txn=inner_else),
        ],
    )
    # etcd: nested responses carry a present-but-empty header
    assert r.responses[1].response_txn.HasField("header")
    assert keys(env.get(b"\0", range_end=b"\0")) == [b"m", b"n"]
    assert env.kv.current_revision == 3


def test_empty_request_op_gets_an_empty_response(env: Env) -> None:
    r = env.a.txn(tx([], [pb.RequestOp(), put(b"a")]))
    assert list(r.responses) == [
        pb.ResponseOp(),
        pb.ResponseOp(response_put=pb.PutResponse(header=pb.ResponseHeader(revision=2))),
    ]


# --- Txn: checks before any write -----------------------------------------------------------


@pytest.mark.parametrize(
    ("req", "error", "message"),
    [
        # ignore flags are checked against the store before the txn: creating the key
        # earlier in the same txn does not help (etcd)
        (tx([], [put(b"new", b"v"), put(b"new2", ignore_value=True)]), KeyNotFoundError, ERR_KEY_NOT_FOUND),
        (tx([], [put(b"x"), put(b"missing", ignore_lease=True)]), KeyNotFoundError, ERR_KEY_NOT_FOUND),
        (tx([], [put(b"x", lease=100), put(b"y", lease=999)]), LeaseNotFoundError, ERR_LEASE_NOT_FOUND),
        (tx([], [put(b"k", lease=999, ignore_lease=True)]), LeaseNotFoundError, ERR_LEASE_NOT_FOUND),
        # per put: the key check comes before the lease check
        (tx([], [put(b"x", lease=999, ignore_lease=True)]), KeyNotFoundError, ERR_KEY_NOT_FOUND),
        (
            tx([], [put(b"x"), nested([], [nested([], [put(b"y", lease=999)])])]),
            LeaseNotFoundError,
            ERR_LEASE_NOT_FOUND,
        ),
        (tx([], [put(b"x"), rng(b"k", revision=99)]), FutureRevisionError, ERR_FUTURE_REV),
        (tx([], [rng(b"k", revision=99)]), FutureRevisionError, ERR_FUTURE_REV),  # read-only
        # the pre-txn revision is the limit even though the txn itself would make it exist
        (tx([], [put(b"x"), rng(b"x", revision=3)]), FutureRevisionError, ERR_FUTURE_REV),
        # etcd 3.4 compares a negative revision with the compact revision (-1) directly
        (tx([], [rng(b"k", revision=-5)]), CompactedRevisionError, ERR_COMPACTED),
        (tx([], [put(b"x"), rng(b"k", sort_target=7)]), ServerError, ERR_INVALID_SORT_OPTION),
        # every put check comes before every range check
        (tx([], [rng(b"k", revision=99), put(b"z", lease=999)]), LeaseNotFoundError, ERR_LEASE_NOT_FOUND),
        # only the taken branch is checked
        (
            tx([cmp(b"k", V, EQ, version=5)], [put(b"z", lease=999)], [put(b"x", ignore_value=True)]),
            KeyNotFoundError,
            ERR_KEY_NOT_FOUND,
        ),
    ],
)
def test_txn_checks(req: pb.TxnRequest, error: type[MinietcdError], message: str) -> None:
    e = Env()
    e.put(b"k", b"v", lease=200)  # 2
    before = e.state()
    with pytest.raises(error) as info:
        e.a.txn(req)
    assert to_grpc_status(info.value)[1] == message
    assert e.state() == before  # nothing written, no lease moved


def test_txn_unchecked_branch_may_hold_bad_ops(env: Env) -> None:
    r = env.a.txn(
        tx(
            [cmp(b"k", CR, EQ, create_revision=0)],
            [put(b"k")],
            [put(b"z", lease=999), rng(b"k", revision=99)],
        )
    )
    assert r.succeeded and env.kv.current_revision == 2


def test_txn_range_at_compacted_revision(env: Env) -> None:
    for i in range(5):
        env.put(b"k", str(i).encode())
    env.a.compaction(pb.CompactionRequest(revision=4))
    with pytest.raises(CompactedRevisionError):
        env.a.txn(tx([], [put(b"x"), rng(b"k", revision=3)]))
    r = env.a.txn(tx([], [put(b"x"), rng(b"k", revision=4)]))
    assert r.responses[1].response_range.kvs[0].value == b"2"


def test_txn_failing_mid_way_rolls_back_store_and_lessor(env: Env) -> None:
    """An op the edge would have refused (empty key) fails inside the write txn: the MVCC txn
    rolls back and the lessor never sees the earlier put's lease."""
    env.put(b"k", b"v", lease=200)
    before = env.state()
    with pytest.raises(EmptyKeyError):
        env.a.txn(tx([], [put(b"k", b"w", lease=100), put(b"a", lease=100), put(b"")]))
    assert env.state() == before
    assert env.lessor.get_lease(b"k") == 200


# --- Txn: leases ----------------------------------------------------------------------------


def test_txn_leases(env: Env) -> None:
    env.put(b"k", b"v", lease=100)  # 2
    env.put(b"j", b"v", lease=100)  # 3
    env.a.txn(tx([], [put(b"k", b"w", lease=200), put(b"n", lease=100), dele(b"j")]))
    assert env.leased(100) == (b"n",) and env.leased(200) == (b"k",)
    # the net effect counts: re-put then delete in one txn leaves no lease (the edge refuses
    # this as a duplicate key, the applier still keeps store and lessor in step)
    env.a.txn(tx([], [put(b"k", lease=100), dele(b"k")]))
    assert env.leased(100) == (b"n",) and env.leased(200) == ()
    env.a.txn(tx([], [nested([], [put(b"k", lease=200)]), put(b"n", ignore_lease=True, value=b"z")]))
    assert env.leased(200) == (b"k",) and env.leased(100) == (b"n",)
    assert env.one(b"n") == kv(b"n", 4, 6, 2, b"z", 100)


# --- Compaction -----------------------------------------------------------------------------


def test_compaction(env: Env) -> None:
    for i in range(4):
        env.put(b"k", str(i).encode())  # 2..5
    r = env.a.compaction(pb.CompactionRequest(revision=3))
    assert r == pb.CompactionResponse(header=pb.ResponseHeader(revision=5))
    assert env.kv.compact_revision == 3
    r = env.a.compaction(pb.CompactionRequest(revision=4, physical=True))  # physical: same
    assert r == pb.CompactionResponse(header=pb.ResponseHeader(revision=5))
    for rev, error, message in [
        (4, CompactedRevisionError, ERR_COMPACTED),
        (2, CompactedRevisionError, ERR_COMPACTED),
        (6, FutureRevisionError, ERR_FUTURE_REV),
    ]:
        before = env.state()
        with pytest.raises(error) as info:
            env.a.compaction(pb.CompactionRequest(revision=rev))
        assert to_grpc_status(info.value) == (grpc.StatusCode.OUT_OF_RANGE, message)
        assert env.state() == before and env.kv.compact_revision == 4
    assert env.one(b"k") == kv(b"k", 2, 5, 4, b"3")


# --- determinism ----------------------------------------------------------------------------


def raw(n: int) -> Any:
    """An enum field's value as a plain int (what the wire carries)."""
    return n


def _random_request(rnd: random.Random, rev: int, depth: int = 0) -> Any:
    key = rnd.choice([b"a", b"b", b"c", b"d", b"e"])
    end = rnd.choice([b"", b"", b"c", b"\0"])
    lease = rnd.choice([0, 0, 100, 200])
    kind = rnd.choice(["put", "put", "put", "del", "range", "txn", "txn"] + ["compact"] * (depth == 0))
    if kind == "put":
        flags = rnd.choice([{}, {}, {"ignore_value": True}, {"ignore_lease": True}])
        return pb.PutRequest(
            key=key,
            value=b"" if "ignore_value" in flags else bytes([rnd.randrange(256)]),
            lease=0 if "ignore_lease" in flags else lease,
            prev_kv=rnd.random() < 0.5,
            **flags,
        )
    if kind == "del":
        return pb.DeleteRangeRequest(key=key, range_end=end, prev_kv=rnd.random() < 0.5)
    if kind == "range":
        return pb.RangeRequest(
            key=key,
            range_end=end,
            limit=rnd.randrange(3),
            sort_order=raw(rnd.randrange(3)),
            sort_target=raw(rnd.randrange(5)),
            revision=rnd.choice([0, 0, max(1, rev - 2)]),
        )
    if kind == "compact":
        return pb.CompactionRequest(revision=rnd.randrange(1, rev + 2))
    if depth >= 2:
        return pb.RangeRequest(key=key)

    def op() -> pb.RequestOp:
        sub = _random_request(rnd, rev, depth + 1)
        field = {
            pb.PutRequest: "request_put",
            pb.DeleteRangeRequest: "request_delete_range",
            pb.RangeRequest: "request_range",
            pb.TxnRequest: "request_txn",
        }[type(sub)]
        return pb.RequestOp(**{field: sub})

    compare = [
        pb.Compare(
            key=key,
            target=raw(rnd.randrange(5)),
            result=raw(rnd.randrange(4)),
            range_end=end,
            version=rnd.randrange(3),
        )
    ]
    return pb.TxnRequest(
        compare=compare,
        success=[op() for _ in range(rnd.randrange(4))],
        failure=[op() for _ in range(rnd.randrange(3))],
    )


def _apply(env: Env, req: Any) -> bytes:
    methods: dict[type, Callable[[Any], Any]] = {
        pb.PutRequest: env.a.put,
        pb.DeleteRangeRequest: env.a.delete_range,
        pb.RangeRequest: env.a.range,
        pb.TxnRequest: env.a.txn,
        pb.CompactionRequest: env.a.compaction,
    }
    try:
        return bytes(methods[type(req)](req).SerializeToString(deterministic=True))
    except MinietcdError as e:
        return repr(to_grpc_status(e)).encode()


def _check_leases_match_store(env: Env) -> None:
    live = {k.key: k.lease for k in env.get(b"\0", range_end=b"\0").kvs}
    for key, lease in live.items():
        assert env.lessor.get_lease(key) == lease, key
    for le in env.lessor.leases():
        assert all(live.get(k) == le.id for k in le.keys), le


@pytest.mark.parametrize("seed", range(8))
def test_two_appliers_agree(seed: int) -> None:
    rnd = random.Random(seed)
    one, two = Env(), Env()
    for _ in range(300):
        req = _random_request(rnd, one.kv.current_revision)
        assert _apply(one, req) == _apply(two, req)
        _check_leases_match_store(one)
    assert one.kv.current_revision > 50
    assert one.kv.hash_kv() == two.kv.hash_kv()
    assert one.kv.snapshot() == two.kv.snapshot()
    assert one.lessor.snapshot() == two.lessor.snapshot()


def test_applier_imports_no_clock_randomness_or_io() -> None:
    tree = ast.parse(Path(apply_kv.__file__).read_text())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")])
    }
    assert not imported & {"time", "random", "os", "asyncio", "socket", "datetime", "io", "threading"}
