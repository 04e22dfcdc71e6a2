"""Protobuf bytes built by hand, for requests Python's protobuf cannot even build: a Txn nested
deeper than its 100-message limit (etcd 3.4 serves them)."""

from __future__ import annotations


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def nested_txn(levels: int, key: bytes, value: bytes = b"v") -> bytes:
    """A serialized TxnRequest: ``levels`` TxnRequests, each the only success op of the one
    around it, the innermost putting ``key``. ``levels=128`` is the deepest etcd 3.4 serves
    with its default --max-txn-ops (each level spends one op of its parent's budget)."""
    txn = field(2, field(2, field(1, key) + field(2, value)))  # success: [request_put]
    for _ in range(levels - 1):
        txn = field(2, field(4, txn))  # success: [request_txn]
    return txn
