"""A request's header block, decoded: HPACK (RFC 7541), the decoder side only.

Written here rather than taken from the ``hpack`` package, by measurement: importing ``hpack``
(its Huffman tables above all) added 0.4 MiB to every member that had served one gRPC call,
which the idle-memory goal of issue 15 (at most twice etcd's) could not afford, and it decoded a
gRPC call's headers in 15 us. This decoder keeps the RFC's two tables (``hpack_tables``) and a
Huffman decoder built from the code table at first use; ``hpack`` stays the reference its tests
decode the same blocks with (tests/unit/server/test_h2grpc.py).

What a server needs: indexed fields (section 6.1), literals with incremental indexing (6.2.1),
without indexing (6.2.2) and never indexed (6.2.3), dynamic table size updates (6.3, up to the
4,096 bytes a server advertises by default), integers (5.1) and strings, Huffman-coded or not
(5.2). Any violation raises :class:`HPACKError`, which the connection answers with GOAWAY
``COMPRESSION_ERROR`` (RFC 9113 section 4.3).
"""

from __future__ import annotations

from collections import deque

from minietcd.server.h2grpc.hpack_tables import CODES, LENGTHS, STATIC

Headers = list[tuple[bytes, bytes]]

#: SETTINGS_HEADER_TABLE_SIZE's initial value, which we never change.
TABLE_SIZE = 4096
_ENTRY_OVERHEAD = 32  # section 4.1
_EOS = 256


class HPACKError(Exception):
    """The block is not valid HPACK: the connection cannot go on (its tables may differ)."""


class HeaderListTooLarge(Exception):
    """The block was valid and decoded (the dynamic table is in step) but its header list is
    over the limit: only its request is refused."""


class HeaderDecoder:
    def __init__(self, max_header_list_size: int) -> None:
        self._max_list = max_header_list_size
        self._dynamic: deque[tuple[bytes, bytes]] = deque()  # newest first: index 62 is [0]
        self._size = 0
        self._max_size = TABLE_SIZE

    def decode(self, block: bytes) -> Headers:
        """The block's (name, value) pairs. Raises :class:`HPACKError` for a block that is not
        valid, :class:`HeaderListTooLarge` (having read all of it) for a list over the limit."""
        out: Headers = []
        listed = 0
        i, n = 0, len(block)
        try:
            while i < n:
                b = block[i]
                if b & 0x80:  # 1xxxxxxx: indexed field
                    index, i = _integer(block, i, 7)
                    name, value = self._entry(index)
                elif b & 0xC0 == 0x40:  # 01xxxxxx: literal, added to the table
                    name, value, i = self._literal(block, i, 6)
                    self._add(name, value)
                elif b & 0xE0 == 0x20:  # 001xxxxx: table size update, only before any field
                    if out:
                        raise HPACKError("table size update after a header field")
                    size, i = _integer(block, i, 5)
                    if size > TABLE_SIZE:
                        raise HPACKError(f"table size update to {size} over {TABLE_SIZE}")
                    self._max_size = size
                    self._evict(0)
                    continue
                else:  # 0000xxxx / 0001xxxx: literal, not indexed / never indexed
                    name, value, i = self._literal(block, i, 4)
                listed += len(name) + len(value) + _ENTRY_OVERHEAD
                if listed <= self._max_list:  # past it, read on (the table) but keep nothing
                    out.append((name, value))
        except IndexError:
            raise HPACKError("header block ends inside a field") from None
        if listed > self._max_list:
            raise HeaderListTooLarge(f"header list of {listed} bytes, more than {self._max_list}")
        return out

    def _entry(self, index: int) -> tuple[bytes, bytes]:
        if 0 < index <= len(STATIC):
            return STATIC[index - 1]
        dynamic = index - len(STATIC) - 1
        if 0 <= dynamic < len(self._dynamic):
            return self._dynamic[dynamic]
        raise HPACKError(f"no table entry {index}")

    def _literal(self, block: bytes, i: int, prefix: int) -> tuple[bytes, bytes, int]:
        index, i = _integer(block, i, prefix)
        if index:
            name = self._entry(index)[0]
        else:
            name, i = _string(block, i)
        value, i = _string(block, i)
        return name, value, i

    def _add(self, name: bytes, value: bytes) -> None:
        size = len(name) + len(value) + _ENTRY_OVERHEAD
        if size > self._max_size:  # section 4.4: an entry too large empties the table
            self._dynamic.clear()
            self._size = 0
            return
        self._evict(size)
        self._dynamic.appendleft((name, value))
        self._size += size

    def _evict(self, room: int) -> None:
        while self._dynamic and self._size + room > self._max_size:
            old_name, old_value = self._dynamic.pop()
            self._size -= len(old_name) + len(old_value) + _ENTRY_OVERHEAD


def _integer(data: bytes, i: int, prefix: int) -> tuple[int, int]:
    """An integer (section 5.1) at ``data[i]``: its value and the index after it."""
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
            raise HPACKError("integer longer than 4 bytes")


def _string(data: bytes, i: int) -> tuple[bytes, int]:
    """A string literal (section 5.2), Huffman-coded or not."""
    huffman = data[i] & 0x80
    length, i = _integer(data, i, 7)
    end = i + length
    if end > len(data):
        raise HPACKError("string past the end of the block")
    raw = data[i:end]
    return (_huffman_decode(raw) if huffman else bytes(raw)), end


#: The code is canonical (codes of one length are consecutive, and each length's first code
#: follows the last of the one before): per length, (length, first code, first code after the
#: last, symbols in code order), built when a Huffman string first comes.
_CANONICAL: list[tuple[int, int, int, list[int]]] = []


def _canonical() -> list[tuple[int, int, int, list[int]]]:
    by_length: dict[int, list[tuple[int, int]]] = {}
    for sym, (code, n) in enumerate(zip(CODES, LENGTHS, strict=True)):
        by_length.setdefault(n, []).append((code, sym))
    out = []
    for n in sorted(by_length):
        pairs = sorted(by_length[n])
        out.append((n, pairs[0][0], pairs[-1][0] + 1, [sym for _, sym in pairs]))
    return out


def _huffman_decode(raw: bytes) -> bytes:
    """RFC 7541 section 5.2: codes are 5 to 30 bits; what is left at the end must be at most 7
    bits, all ones (the EOS code's prefix); EOS itself may not appear. A symbol is found by
    comparing the next bits with each length's range of codes, shortest first (canonical
    decoding: a few integer comparisons for the common symbols, at most 21)."""
    if not _CANONICAL:
        _CANONICAL.extend(_canonical())
    out = bytearray()
    acc = 0  # bits not decoded yet, the oldest highest
    bits = 0
    for byte in raw:
        acc = (acc << 8) | byte
        bits += 8
        while bits >= 5:
            symbol = -1  # none yet: more bits are needed
            for length, first, end, symbols in _CANONICAL:
                if length > bits:
                    break
                code = acc >> (bits - length)
                if code < end:
                    symbol = symbols[code - first]
                    break
            if symbol < 0:
                break
            if symbol == _EOS:
                raise HPACKError("EOS in a Huffman string")
            out.append(symbol)
            bits -= length
            acc &= (1 << bits) - 1
    if bits > 7 or acc != (1 << bits) - 1:
        raise HPACKError("bad Huffman padding")
    return bytes(out)
