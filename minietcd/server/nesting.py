"""How deep a nested Txn may be, decided once for the gRPC edge and for apply (DESIGN rule 8:
whatever the edge accepts must be appliable).

etcd 3.4 parses any depth (gogoproto has no limit) and bounds nesting through ``--max-txn-ops``:
each level spends at least one op of its parent's budget, so with the default 128 a Txn nested
127 levels deep (128 TxnRequests) is served and one level more is "etcdserver: too many
operations in txn request". Python's protobuf (upb) stops at 100 *messages* deep, i.e. 49 Txn
levels, and wrapping a Txn in the log's ``InternalRaftRequest`` costs one more level: the edge
used to accept a 49-level Txn that apply could not parse back, which killed the Ready loop.

So both sides parse through :func:`parse_request`: the plain parse first; if upb refuses the
depth, a wire-level scan (no recursion, no allocation per level) counts the TxnRequests on the
deepest path, and up to :data:`MAX_TXN_NESTING` the bytes are parsed again with upb's depth limit
lifted for that one call. Code that copies a Txn or its response (upb copies by parsing) does so
inside :func:`deep_messages`. Deeper is :class:`~minietcd.errors.TxnTooDeepError` (etcd's "too many
operations" words). The bound is a constant, not ``--max-txn-ops``: upb's lifted parser, and our
recursive validation and apply, must stay far from the C and Python stack limits (upb crashes
the process near 25,000 levels), so a larger ``--max-txn-ops`` buys more ops per level, never
more levels. Both sides use the same function, so a depth the edge takes always applies.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Final, TypeVar

from google.protobuf.message import DecodeError
from google.protobuf.message import Message as PbMessage

from minietcd.errors import TxnTooDeepError

#: TxnRequests nested in one another, the outermost included: etcd 3.4's default depth.
MAX_TXN_NESTING: Final = 128

_Pb = TypeVar("_Pb", bound=PbMessage)

# Where TxnRequests hide, by message: {message: {field number: message it holds}}.
_TXN_PATHS: Final[dict[str, dict[int, str]]] = {
    "etcdserverpb.InternalRaftRequest": {6: "etcdserverpb.TxnRequest"},
    "etcdserverpb.TxnRequest": {2: "etcdserverpb.RequestOp", 3: "etcdserverpb.RequestOp"},
    "etcdserverpb.RequestOp": {4: "etcdserverpb.TxnRequest"},
}
_TXN = "etcdserverpb.TxnRequest"
_deep = 0  # deep_messages() blocks entered and not yet left


def parse_request(cls: type[_Pb], data: bytes) -> _Pb:
    """``cls.FromString(data)``, deep Txns included (see the module docstring). Raises
    DecodeError for bytes that are not a ``cls``, TxnTooDeepError past MAX_TXN_NESTING."""
    try:
        return cls.FromString(data)
    except DecodeError as e:
        if "MaxDepth" not in str(e):  # not about depth: malformed
            raise
        nesting = txn_nesting(data, cls.DESCRIPTOR.full_name)
    if nesting > MAX_TXN_NESTING:
        raise TxnTooDeepError()
    with deep_messages():
        return cls.FromString(data)


@contextlib.contextmanager
def deep_messages() -> Iterator[None]:
    """Lift upb's depth limit for the synchronous code inside: upb *copies* a sub-message
    (``InternalRaftRequest(txn=req)``, ``response_txn.CopyFrom(...)``) by serializing and
    parsing it, under the same limit, so building the log entry and the response of a deep Txn
    needs it too. Only messages already bounded by :func:`parse_request` may be copied inside:
    nothing here parses bytes from outside. Nests (a counter), never spans an ``await``."""
    global _deep
    if _deep == 0:
        _allow_deep_parse(True)
    _deep += 1
    try:
        yield
    finally:
        _deep -= 1
        if _deep == 0:
            _allow_deep_parse(False)


def txn_nesting(data: bytes | memoryview, message: str) -> int:
    """How many TxnRequests are nested on the deepest path through ``data`` (a serialized
    ``message``), by a scan of the wire format along the fields that can hold one."""
    deepest = 0
    stack: list[tuple[memoryview, str, int]] = [(memoryview(data), message, 0)]
    while stack:
        buf, name, depth = stack.pop()
        if name == _TXN:
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_TXN_NESTING:
                return deepest  # enough to refuse; no need to look further
        paths = _TXN_PATHS.get(name)
        if paths is None:
            continue
        pos = 0
        while pos < len(buf):
            key, pos = _varint(buf, pos)
            field, wire = key >> 3, key & 7
            if wire == 0:
                _, pos = _varint(buf, pos)
            elif wire == 1:
                pos += 8
            elif wire == 5:
                pos += 4
            elif wire == 2:
                size, pos = _varint(buf, pos)
                if field in paths:
                    stack.append((buf[pos : pos + size], paths[field], depth))
                pos += size
            else:
                raise DecodeError(f"unexpected wire type {wire} in {name}")
            if pos > len(buf):
                raise DecodeError(f"truncated {name}")
    return deepest


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise DecodeError("truncated or overlong varint")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7


def _allow_deep_parse(allow: bool) -> None:
    # upb's only knob for its depth limit (100 by default; 65535 when set). It is module-wide,
    # so it is set around synchronous code only. Without upb (protobuf's pure-Python or C++
    # backends) deep Txns are refused at the edge and in apply alike: still consistent.
    try:
        from google._upb import _message
    except ImportError:
        raise TxnTooDeepError() from None
    _message.SetAllowOversizeProtos(allow)
