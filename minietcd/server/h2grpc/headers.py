"""A request's header block, decoded (HPACK, RFC 7541), with a fast path for the usual one.

The ``hpack`` package decodes every block correctly but slowly for what a gRPC client sends
per call (9% of a put's time on the loop). Most blocks after a connection's first are only
references into the tables (section 6.1) and literals that are not indexed (6.2.2, 6.2.3: a
``grpc-timeout`` that changes per call): neither changes the dynamic table, so such a block is
decoded here, reading the table ``hpack`` keeps. Anything else (a literal that adds to the table,
a table size update, or bytes that do not parse) goes to ``hpack``, which keeps the table and
raises the errors.
"""

from __future__ import annotations

import hpack
from hpack.huffman_table import decode_huffman

Headers = list[tuple[bytes, bytes]]


class HeaderDecoder:
    def __init__(self, max_header_list_size: int) -> None:
        self._hpack = hpack.Decoder(max_header_list_size=max_header_list_size)
        self._lookup = self._hpack.header_table.get_by_index
        self._max = max_header_list_size

    def decode(self, block: bytes) -> Headers:
        """The block's (name, value) pairs; ``hpack.HPACKError`` if it is not valid HPACK."""
        fast = self._fast(block)
        if fast is not None:
            return fast
        return [(bytes(k), bytes(v)) for k, v in self._hpack.decode(block, raw=True)]

    def _fast(self, block: bytes) -> Headers | None:
        out: Headers = []
        size = 0
        i, n = 0, len(block)
        try:
            while i < n:
                b = block[i]
                if b & 0x80:  # indexed field
                    index, i = _integer(block, i, 7)
                    name, value = self._lookup(index)
                elif b & 0xE0 == 0:  # literal, not indexed (0000xxxx) or never indexed (0001xxxx)
                    index, i = _integer(block, i, 4)
                    if index:
                        name = self._lookup(index)[0]
                    else:
                        name, i = _string(block, i)
                    value, i = _string(block, i)
                else:  # adds to the dynamic table, or resizes it: hpack's job
                    return None
                size += len(name) + len(value) + 32  # RFC 7541 section 4.1
                if size > self._max:
                    return None  # hpack raises OversizedHeaderListError
                out.append((name, value))
        except (IndexError, ValueError, hpack.HPACKError):
            return None  # let hpack say what is wrong
        return out


def _integer(data: bytes, i: int, prefix: int) -> tuple[int, int]:
    """An HPACK integer (section 5.1) at ``data[i]``: its value and the index after it."""
    mask = (1 << prefix) - 1
    value = data[i] & mask
    i += 1
    if value < mask:
        return value, i
    shift = 0
    while True:
        b = data[i]
        i += 1
        value += (b & 0x7F) << shift
        if not b & 0x80:
            return value, i
        shift += 7
        if shift > 28:
            raise ValueError("integer too long")


def _string(data: bytes, i: int) -> tuple[bytes, int]:
    """A string literal (section 5.2), Huffman-coded or not."""
    huffman = data[i] & 0x80
    length, i = _integer(data, i, 7)
    end = i + length
    if end > len(data):
        raise ValueError("string past the block")
    raw = data[i:end]
    return (decode_huffman(raw) if huffman else bytes(raw)), end
