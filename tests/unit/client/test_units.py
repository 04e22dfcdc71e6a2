"""Pure unit tests: request building, endpoint parsing, error mapping, and minietcdctl's Go
formatting and flag parsing (no server needed)."""

from __future__ import annotations

import grpc
import pytest

from minietcd.api.etcdserverpb import rpc_pb2
from minietcd.client import (
    Compare,
    EtcdServerError,
    LeaseNotFoundError,
    Op,
    Txn,
    prefix_range_end,
)
from minietcd.client._connection import Endpoint
from minietcd.client.errors import error_message, from_rpc_error, never_sent
from minietcd.golang import format_duration, humanize_bytes, parse_duration, quote
from minietcdctl.flags import Command, Flag, FlagError, UnknownCommand, find_command, parse_flags
from minietcdctl.gofmt import json_dumps, pb_to_go, render_table, tabwrite


def rpc_error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details)


# ---------------------------------------------------------------------------- the library


@pytest.mark.parametrize(
    ("url", "target", "secure"),
    [
        ("127.0.0.1:2379", "127.0.0.1:2379", False),
        ("http://10.0.0.1:22379", "10.0.0.1:22379", False),
        ("https://example.com:2379", "example.com:2379", True),
        ("localhost", "localhost:2379", False),
        ("[::1]:2379", "[::1]:2379", False),
        # etcd's clientv3 ParseEndpoint: the socket file named host:port (or the path) of the URL.
        ("unix://localhost:2379", "unix:localhost:2379", False),
        ("unix:///run/etcd.sock", "unix:/run/etcd.sock", False),
        ("unixs://localhost:2379", "unix:localhost:2379", True),
        ("unix:relative.sock", "unix:relative.sock", False),  # gRPC's own form, as is
    ],
)
def test_endpoint_parse(url: str, target: str, secure: bool) -> None:
    ep = Endpoint.parse(url)
    assert (ep.target, ep.secure, ep.url) == (target, secure, url)


def test_endpoint_rejects_unknown_scheme() -> None:
    with pytest.raises(ValueError, match="unsupported scheme"):
        Endpoint.parse("ftp://x:1")


@pytest.mark.parametrize(
    ("prefix", "end"), [(b"a", b"b"), (b"a\xff", b"b"), (b"\xff\xff", b"\x00"), (b"foo/", b"foo0")]
)
def test_prefix_range_end(prefix: bytes, end: bytes) -> None:
    assert prefix_range_end(prefix) == end


def test_get_options_build_etcd_requests() -> None:
    r = Op.range_request("", prefix=True)
    assert (r.key, r.range_end) == (b"\x00", b"\x00")
    r = Op.range_request("k", from_key=True, sort_order="descend", sort_target="mod", limit=3)
    assert (r.range_end, r.sort_order, r.sort_target, r.limit) == (b"\x00", 2, 3, 3)
    # Ascending by key is what the server does anyway: etcd's client drops it.
    assert Op.range_request("k", sort_order="ascend").sort_order == 0
    with pytest.raises(ValueError):
        Op.range_request("k", range_end="z", prefix=True)


def test_compare_and_txn_building() -> None:
    c = Compare.value("k", "=", "v").compare
    assert (c.target, c.result, c.key, c.value) == (rpc_pb2.Compare.VALUE, rpc_pb2.Compare.EQUAL, b"k", b"v")
    c = Compare.mod("p/", ">", 4, prefix=True).compare
    assert (c.range_end, c.mod_revision, c.result) == (b"p0", 4, rpc_pb2.Compare.GREATER)
    with pytest.raises(ValueError):
        Compare.version("k", "==>", 1)
    assert Op.put("a", "b").is_write and not Op.get("a").is_write
    assert Op.txn(success=[Op.delete("x")]).is_write
    t = Txn(None, None).if_(Compare.create("k", "=", 0)).then(Op.put("k", "v"))  # type: ignore[arg-type]  # building a Txn needs no connection
    assert t.is_write and len(t.request.compare) == 1
    with pytest.raises(ValueError):
        t.if_()


def test_error_mapping_keeps_etcd_wording() -> None:
    e = from_rpc_error(rpc_error(grpc.StatusCode.NOT_FOUND, "etcdserver: requested lease not found"))
    assert isinstance(e, LeaseNotFoundError) and str(e) == "etcdserver: requested lease not found"
    e = from_rpc_error(rpc_error(grpc.StatusCode.FAILED_PRECONDITION, "etcdserver: member not found"))
    assert isinstance(e, EtcdServerError) and e.code == "FAILED_PRECONDITION"
    e = from_rpc_error(rpc_error(grpc.StatusCode.UNIMPLEMENTED, "unknown service"))
    assert error_message(e) == "rpc error: code = Unimplemented desc = unknown service"
    e = from_rpc_error(rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"))
    assert error_message(e) == "context deadline exceeded"


def test_never_sent_is_only_a_connect_failure() -> None:
    refused = "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:1: Connection refused"
    assert never_sent(rpc_error(grpc.StatusCode.UNAVAILABLE, refused))
    assert not never_sent(rpc_error(grpc.StatusCode.UNAVAILABLE, "etcdserver: no leader"))
    assert not never_sent(rpc_error(grpc.StatusCode.UNAVAILABLE, "Socket closed"))


# ------------------------------------------------------------------------- Go formatting


def test_go_quote() -> None:
    assert quote('a"b\\c\n\t\x00é') == '"a\\"b\\\\c\\n\\t\\x00é"'
    assert quote(b"\xff") == '"\\xff"'
    assert quote("\u200b") == '"\\u200b"'


def test_go_json() -> None:
    assert json_dumps({"k": b"foo", "s": "<&>", "n": None, "l": [1, True]}) == (
        '{"k":"Zm9v","s":"\\u003c\\u0026\\u003e","n":null,"l":[1,true]}'
    )
    r = rpc_pb2.TxnResponse(
        header=rpc_pb2.ResponseHeader(cluster_id=1, revision=5),
        responses=[
            rpc_pb2.ResponseOp(response_put=rpc_pb2.PutResponse(header=rpc_pb2.ResponseHeader(revision=5)))
        ],
    )
    assert json_dumps(pb_to_go(r)) == (
        '{"header":{"cluster_id":1,"revision":5},"responses":[{"Response":{"ResponsePut":{"header":{"revision":5}}}}]}'
    )


def test_humanize_and_durations() -> None:
    assert [humanize_bytes(n) for n in (5, 20480, 1_234_567, 25_000)] == ["5 B", "20 kB", "1.2 MB", "25 kB"]
    assert format_duration(0.001169874) == "1.169874ms"
    assert format_duration(90.5) == "1m30.5s"
    assert parse_duration("1m30s") == 90.0 and parse_duration("250ms") == 0.25
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration("abc")


def test_tabwriter_and_table() -> None:
    assert tabwrite("a\tx\nlonger name\ty\n") == "a\t\tx\nlonger name\ty\n"
    table = render_table(["ID", "Name"], [["1", "n1"]])
    assert table.splitlines() == [
        "+----+------+",
        "| ID | NAME |",
        "+----+------+",
        "|  1 |   n1 |",
        "+----+------+",
    ]


# ------------------------------------------------------------------------------- flags


def _tree() -> Command:
    root = Command("etcdctl", "root", persistent=[Flag("write-out", "string", "simple", "fmt", "w")])
    root.add(
        Command("get", "get", flags=[Flag("prefix", "bool", False, "p"), Flag("limit", "int", 0, "l")]),
        Command("member", "m").add(Command("list", "l"), Command("add", "a")),
    )
    return root


def test_flags_anywhere_and_prefix_matching() -> None:
    root = _tree()
    cmd, rest = find_command(root, ["-w", "json", "get", "foo", "--prefix", "--limit=2"])
    values, changed, args, _ = parse_flags(cmd, rest)
    assert cmd.name == "get" and args == ["foo"]
    assert values["write-out"] == "json" and values["prefix"] is True and values["limit"] == 2
    assert changed == {"write-out", "prefix", "limit"}
    cmd, _ = find_command(root, ["memb", "li"])
    assert cmd.path == "etcdctl member list"
    _, _, args, at_dash = parse_flags(find_command(root, ["get"])[0], ["--", "-x", "y"])
    assert args == ["-x", "y"] and at_dash == 0


def test_flag_errors_use_pflag_wording() -> None:
    get = find_command(_tree(), ["get"])[0]
    with pytest.raises(FlagError, match=r"^unknown flag: --nope$"):
        parse_flags(get, ["--nope"])
    with pytest.raises(FlagError, match=r'invalid argument "x" for "--limit" flag: strconv\.ParseInt'):
        parse_flags(get, ["--limit", "x"])
    with pytest.raises(FlagError, match="flag needs an argument"):
        parse_flags(get, ["--limit"])
    with pytest.raises(UnknownCommand, match='unknown command "frob" for "etcdctl"'):
        find_command(_tree(), ["frob"])
