"""The gateway's JSON in and out, as etcd 3.4's gateway (Go's encoding/json, jsonpb 1.3):
every expected text below is what etcd 3.4.23 answered to the same body (curl, side by side)."""

from __future__ import annotations

import pytest

from minietcd.api.etcdserverpb import rpc_pb2
from minietcd.server.gateway import jsonpb
from minietcd.server.gateway.gojson import GoJSONError, Incomplete, check_valid, go_base64, value_end


def decode_range(body: bytes) -> rpc_pb2.RangeRequest:
    start = len(body) - len(body.lstrip())
    raw = None if start == len(body) else body[start : value_end(body, start)]
    return jsonpb.decode(raw, rpc_pb2.RangeRequest)


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"{bad", "invalid character 'b' looking for beginning of object key string"),
        (b'{"key":"Zm9v"', "unexpected EOF"),
        (b'{"key":"Zm9v",}', "invalid character '}' looking for beginning of object key string"),
        (b'{"key" "Zm9v"}', "invalid character '\"' after object key"),
        (b'{"key":"Zm9v","keys_only":tru}', "invalid character '}' in literal true (expecting 'e')"),
        (b'{"a":1 "b":2}', "invalid character '\"' after object key:value pair"),
        (b'{"a":[1 2]}', "invalid character '2' after array element"),
        (b'{"a":"\\q"}', "invalid character 'q' in string escape code"),
        (b'{"a":"\\u12x4"}', "invalid character 'x' in \\u hexadecimal character escape"),
        (b'{"a":"x\ty"}', "invalid character '\\t' in string literal"),
        (b'{"a":-}', "invalid character '}' in numeric literal"),
        (b'{"a":1.}', "invalid character '}' after decimal point in numeric literal"),
        (b'{"a":1e}', "invalid character '}' in exponent of numeric literal"),
        (b"\xc3\xa9", "invalid character '\u00c3' looking for beginning of value"),
        (b"[]", "json: cannot unmarshal array into Go value of type map[string]json.RawMessage"),
        (b'"str"', "json: cannot unmarshal string into Go value of type map[string]json.RawMessage"),
        (b"5", "json: cannot unmarshal number into Go value of type map[string]json.RawMessage"),
        (b'{"key":"Zm9"}', "illegal base64 data at input byte 0"),
        (b'{"key":"Zm9v=="}', "illegal base64 data at input byte 4"),
        (b'{"key":"Zm9v_-"}', "illegal base64 data at input byte 4"),
        (b'{"key":"\\u00e9"}', "illegal base64 data at input byte 0"),
        (b'{"key":5}', "json: cannot unmarshal number into Go value of type []uint8"),
        (b'{"limit":5.5}', "json: cannot unmarshal number 5.5 into Go value of type int64"),
        (b'{"limit":"5.5"}', "json: cannot unmarshal number 5.5 into Go value of type int64"),
        (b'{"limit":true}', "json: cannot unmarshal bool into Go value of type int64"),
        (b'{"limit":"abc"}', "invalid character 'a' looking for beginning of value"),
        (b'{"limit":""}', "unexpected end of JSON input"),
        (b'{"limit":"0x10"}', "invalid character 'x' after top-level value"),
        (b'{"limit":1e2}', "json: cannot unmarshal number 1e2 into Go value of type int64"),
        (b'{"limit":99999999999999999999}',
         "json: cannot unmarshal number 99999999999999999999 into Go value of type int64"),
        (b'{"sort_order":"NOPE"}', 'unknown value "NOPE" for enum etcdserverpb.RangeRequest_SortOrder'),
        (b'{"sort_order":true}',
         "json: cannot unmarshal bool into Go value of type etcdserverpb.RangeRequest_SortOrder"),
        (b'{"serializable":"true"}', "json: cannot unmarshal string into Go value of type bool"),
        (b'{"serializable":1}', "json: cannot unmarshal number into Go value of type bool"),
    ],
)  # fmt: skip
def test_go_error_texts(body: bytes, error: str) -> None:
    with pytest.raises(GoJSONError) as info:
        decode_range(body)
    assert str(info.value) == error


def test_what_go_accepts() -> None:
    assert decode_range(b"") == rpc_pb2.RangeRequest()
    assert decode_range(b"  null ") == rpc_pb2.RangeRequest()
    r = decode_range(b'{"key":"Zm9v\\n","limit":"  5","sort_order":2,"keysOnly":true,"nope":{"x":[1]}} junk')
    assert (r.key, r.limit, r.sort_order, r.keys_only) == (b"foo", 5, rpc_pb2.RangeRequest.DESCEND, True)
    r = decode_range(b'{"key":[102,111,111],"limit":null,"range_end":null,"sort_order":7}')
    assert (r.key, r.limit, r.range_end, r.sort_order) == (b"foo", 0, b"", 7)
    # Both names given: the JSON (camel) name wins, as in jsonpb.
    assert decode_range(b'{"keys_only":false,"keysOnly":true}').keys_only is True


def test_nested_messages_lists_and_oneofs() -> None:
    body = (
        b'{"compare":[{"key":"YQ==","result":"EQUAL","target":"VALUE","value":"Yg=="}],'
        b'"success":[{"request_put":{"key":"YQ==","value":"Yw=="}},{"request_range":{"key":"YQ=="}}]}'
    )
    txn = jsonpb.decode(body, rpc_pb2.TxnRequest)
    assert txn.compare[0].value == b"b" and txn.compare[0].target == rpc_pb2.Compare.VALUE
    assert txn.success[0].request_put.value == b"c" and txn.success[1].HasField("request_range")
    with pytest.raises(
        GoJSONError, match=r"^json: cannot unmarshal object into Go value of type \[\]json.RawMessage$"
    ):
        jsonpb.decode(b'{"compare":{}}', rpc_pb2.TxnRequest)
    with pytest.raises(GoJSONError, match=r"^json: cannot unmarshal number into Go value of type map\["):
        jsonpb.decode(b'{"compare":[5]}', rpc_pb2.TxnRequest)
    with pytest.raises(GoJSONError, match=r"^json: cannot unmarshal number -1 into Go value of type uint64$"):
        jsonpb.decode(b'{"ID":-1}', rpc_pb2.MemberRemoveRequest)


def test_encode_is_grpc_gateways_json() -> None:
    resp = rpc_pb2.RangeResponse(
        header=rpc_pb2.ResponseHeader(cluster_id=2**63, revision=2),
        kvs=[{"key": b"foo", "value": b"<&>", "create_revision": 2}],
        count=1,
    )
    assert jsonpb.encode(resp) == (
        b'{"header":{"cluster_id":"9223372036854775808","revision":"2"},'
        b'"kvs":[{"key":"Zm9v","create_revision":"2","value":"PCY+"}],"count":"1"}'
    )
    member = rpc_pb2.MemberListResponse(members=[{"ID": 1, "name": "a<b>", "peerURLs": ["http://x"]}])
    assert (
        jsonpb.encode(member) == b'{"members":[{"ID":"1","name":"a\\u003cb\\u003e","peerURLs":["http://x"]}]}'
    )
    assert jsonpb.encode(rpc_pb2.AlarmResponse()) == b"{}"


def test_value_end_finds_each_value_of_a_stream() -> None:
    data = b' {"a":[1,{"b":"}"}]} {"c":2}\n'
    first = value_end(data)
    assert data[:first].strip() == b'{"a":[1,{"b":"}"}]}'
    assert data[first : value_end(data, first)].strip() == b'{"c":2}'
    with pytest.raises(Incomplete):
        value_end(b'{"a":')
    check_valid(b" 12 ")
    with pytest.raises(GoJSONError, match=r"^unexpected end of JSON input$"):
        check_valid(b"")


def test_go_base64() -> None:
    assert go_base64(b"Zm9v") == b"foo"
    assert go_base64(b"Zm9\nv\r\n") == b"foo"
    assert go_base64(b"Zm8=") == b"fo" and go_base64(b"Zg==") == b"f"
    for bad, at in ((b"Zg=", 3), (b"Zg=x", 2), (b"Z===", 1), (b"Zm9vZ", 4), (b"Zg==Zg==", 4)):
        with pytest.raises(GoJSONError, match=rf"^illegal base64 data at input byte {at}$"):
            go_base64(bad)
