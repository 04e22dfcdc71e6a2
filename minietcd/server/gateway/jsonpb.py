"""Request JSON in, response JSON out, as etcd 3.4's gateway (grpc-gateway v1's ``JSONPb`` over
golang/protobuf 1.3's ``jsonpb``) reads and writes them.

**Out** (:func:`encode`): protobuf's own JSON mapping, ``json_format.MessageToDict`` with the
``.proto`` field names (etcd's marshaler is ``&runtime.JSONPb{OrigName: true}``): int64 as
strings, bytes as base64, enums by name, fields at their default left out; written compactly,
with Go's escapes of ``<``, ``>``, ``&``, U+2028 and U+2029.

**In** (:func:`decode`): the body's first JSON value (Go's ``json.Decoder``: a syntax error is
Go's text, trailing bytes are ignored, an empty body is an empty request), then jsonpb's rules
field by field: both the ``.proto`` name and the JSON name are accepted, unknown fields are
ignored, ``null`` leaves a field unset, integers may be quoted (the quotes are dropped and the
rest must be a JSON integer that fits: ``json: cannot unmarshal number 5.5 into Go value of type
int64``), bytes are standard base64 with padding (``illegal base64 data at input byte 4``), an
enum is a name (``unknown value "X" for enum etcdserverpb.RangeRequest_SortOrder``) or a number.
What passes is handed to ``json_format.ParseDict``, which builds the message: this module only
checks, in jsonpb's order and words, and never converts a field by hand beyond Go's own rules
(bytes are re-encoded canonically, numbers passed as Python ints).
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any, Final, TypeVar, cast

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message

from minietcd.golang import quote
from minietcd.server.gateway.gojson import GoJSONError, check_valid, go_base64

M = TypeVar("M", bound=Message)

_INT: Final = re.compile(r"-?\d+\Z")
#: Go's integer kinds of protobuf's integer types: (Go type name, min, max).
_INTS: Final[dict[int, tuple[str, int, int]]] = {
    FieldDescriptor.TYPE_INT64: ("int64", -(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: ("int64", -(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: ("int64", -(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT64: ("uint64", 0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: ("uint64", 0, 2**64 - 1),
    FieldDescriptor.TYPE_INT32: ("int32", -(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: ("int32", -(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: ("int32", -(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_UINT32: ("uint32", 0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: ("uint32", 0, 2**32 - 1),
}
_OBJECT: Final = "map[string]json.RawMessage"
_ARRAY: Final = "[]json.RawMessage"


class Number(str):
    """A JSON number kept as written (Go's errors quote the literal)."""

    __slots__ = ()


def _loads(text: bytes) -> Any:
    return json.loads(text.decode("utf-8", "replace"), parse_int=Number, parse_float=Number)


def _kind(v: Any) -> str:
    """How Go's UnmarshalTypeError names a JSON value's kind."""
    if isinstance(v, dict):
        return "object"
    if isinstance(v, list):
        return "array"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, Number):
        return "number"
    return "string"


def _type_error(kind: str, go_type: str) -> GoJSONError:
    return GoJSONError(f"json: cannot unmarshal {kind} into Go value of type {go_type}")


def go_enum_name(enum: EnumDescriptor) -> str:
    """golang/protobuf's registered enum name: ``etcdserverpb.RangeRequest_SortOrder``."""
    package = enum.file.package
    local = enum.full_name[len(package) + 1 :] if package else enum.full_name
    return f"{package}.{local.replace('.', '_')}" if package else local.replace(".", "_")


# --- in -----------------------------------------------------------------------------------------


def decode(raw: bytes | None, cls: type[M]) -> M:
    """The request message of one JSON value (``raw`` as :func:`gojson.value_end` cut it; None
    for an empty body). Raises :class:`GoJSONError` with jsonpb's text."""
    msg = cls()
    if raw is None:
        return msg
    value = _loads(raw)
    if value is None:
        return msg
    if not isinstance(value, dict):
        raise _type_error(_kind(value), _OBJECT)
    desc = cast(Descriptor, msg.DESCRIPTOR)  # upb's descriptor type is the same class to us
    json_format.ParseDict(_message(value, desc), msg, ignore_unknown_fields=True)
    return msg


def _message(fields: dict[str, Any], desc: Descriptor) -> dict[str, Any]:
    """jsonpb's struct case: regular fields in declaration order, then oneof members."""
    out: dict[str, Any] = {}
    regular = [f for f in desc.fields if f.containing_oneof is None]
    oneofs = [f for f in desc.fields if f.containing_oneof is not None]
    for f in (*regular, *oneofs):
        names = (f.name, f.json_name)
        present = [n for n in names if n in fields]
        if not present:
            continue
        value = fields[present[-1]]  # both given: the JSON (camel) name wins, as in jsonpb
        if value is None and not (f.type == FieldDescriptor.TYPE_MESSAGE or _repeated(f)):
            continue  # json.Unmarshal of null into a scalar: no change
        if value is None:
            continue  # a message or list left unset
        if f.containing_oneof is not None:
            for other in f.containing_oneof.fields:
                out.pop(other.name, None)  # several members given: the last one stands
        out[f.name] = _field(f, value)
    return out


def _repeated(f: FieldDescriptor) -> bool:
    return bool(f.is_repeated)


def _field(f: FieldDescriptor, value: Any) -> Any:
    if _repeated(f):
        if not isinstance(value, list):
            raise _type_error(_kind(value), _ARRAY)
        return [_single(f, v) for v in value if v is not None or f.type != FieldDescriptor.TYPE_MESSAGE]
    return _single(f, value)


def _single(f: FieldDescriptor, value: Any) -> Any:
    kind = f.type
    if kind == FieldDescriptor.TYPE_MESSAGE:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise _type_error(_kind(value), _OBJECT)
        assert f.message_type is not None  # a message field has its type
        return _message(value, f.message_type)
    if kind == FieldDescriptor.TYPE_ENUM:
        assert f.enum_type is not None
        return _enum(f.enum_type, value)
    if kind in _INTS:
        return _integer(value, *_INTS[kind])
    if kind == FieldDescriptor.TYPE_BOOL:
        return _plain(value, bool, "bool", False)
    if kind == FieldDescriptor.TYPE_STRING:
        return _plain(value, str, "string", "")
    if kind == FieldDescriptor.TYPE_BYTES:
        return _bytes(value)
    raise GoJSONError(f"unsupported field type {kind} of {f.full_name}")  # no such field in etcd's API


def _plain(value: Any, py: type, go_type: str, default: Any) -> Any:
    if value is None:
        return default
    if type(value) is not py or isinstance(value, Number):
        raise _type_error(_kind(value), go_type)
    return value


def _enum(enum: EnumDescriptor, value: Any) -> int:
    go_type = go_enum_name(enum)
    if isinstance(value, str) and not isinstance(value, Number):
        named = enum.values_by_name.get(value)
        if named is None:
            raise GoJSONError(f"unknown value {quote(value)} for enum {go_type}")
        return int(named.number)
    return _integer(value, go_type, -(2**31), 2**31 - 1)


def _integer(value: Any, go_type: str, low: int, high: int) -> int:
    """jsonpb drops the quotes of a quoted integer, then json.Unmarshal parses what is left."""
    if isinstance(value, str) and not isinstance(value, Number):
        inner = value.encode()
        check_valid(inner)
        value = _loads(inner)
    if value is None:
        return 0
    if not isinstance(value, Number):
        raise _type_error(_kind(value), go_type)
    unsigned = go_type.startswith("uint")
    if not _INT.match(value) or (unsigned and value.startswith("-")) or not low <= int(value) <= high:
        raise _type_error(f"number {value}", go_type)
    return int(value)


def _bytes(value: Any) -> str:
    """Go decodes a JSON string into []byte as standard base64, and an array element-wise."""
    if value is None:
        return ""
    if isinstance(value, list):
        data = bytes(_integer(v, "uint8", 0, 255) for v in value)
    elif isinstance(value, str) and not isinstance(value, Number):
        data = go_base64(value.encode("utf-8", "surrogatepass"))
    else:
        raise _type_error(_kind(value), "[]uint8")
    return base64.b64encode(data).decode()


# --- out ----------------------------------------------------------------------------------------

#: What Go's encoding/json escapes inside strings and Python's json does not.
_GO_ESCAPES: Final = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026",
                                    "\u2028": "\\u2028", "\u2029": "\\u2029"})  # fmt: skip


def encode(msg: Message) -> bytes:
    """``msg`` as etcd's gateway writes it (see the module docstring)."""
    return dumps(json_format.MessageToDict(msg, preserving_proto_field_name=True))


def dumps(value: Any) -> bytes:
    """Compact JSON with Go's escapes (keys and values here come from protobuf messages)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).translate(_GO_ESCAPES).encode()
