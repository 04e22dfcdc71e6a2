"""HTTP/2's frames (RFC 9113 section 4 and 6) and the few header blocks a gRPC server sends.

Everything the server sends is HPACK-encoded as literals that never touch the dynamic table
(RFC 7541 section 6.2.2, "without indexing"), so the client's decoder state never depends on
ours and a block can be built once: ``:status: 200`` and ``content-type: application/grpc``
are the same bytes for every response.
"""

from __future__ import annotations

import struct
from typing import Final
from urllib.parse import quote

PREFACE: Final = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
FRAME_HEADER: Final = 9
#: SETTINGS_MAX_FRAME_SIZE's initial value: the largest frame either side may send until told.
DEFAULT_MAX_FRAME: Final = 16_384
DEFAULT_WINDOW: Final = 65_535
MAX_WINDOW: Final = 2**31 - 1


# Plain int constants, not enums: the frame loop tests flags per frame, and IntFlag's operators
# run in Python.


class Type:
    DATA = 0
    HEADERS = 1
    PRIORITY = 2
    RST_STREAM = 3
    SETTINGS = 4
    PUSH_PROMISE = 5
    PING = 6
    GOAWAY = 7
    WINDOW_UPDATE = 8
    CONTINUATION = 9


class Flag:
    END_STREAM = 0x1
    ACK = 0x1
    END_HEADERS = 0x4
    PADDED = 0x8
    PRIORITY = 0x20


class Setting:
    HEADER_TABLE_SIZE = 1
    ENABLE_PUSH = 2
    MAX_CONCURRENT_STREAMS = 3
    INITIAL_WINDOW_SIZE = 4
    MAX_FRAME_SIZE = 5
    MAX_HEADER_LIST_SIZE = 6


class ErrorCode:
    NO_ERROR = 0
    PROTOCOL_ERROR = 1
    INTERNAL_ERROR = 2
    FLOW_CONTROL_ERROR = 3
    STREAM_CLOSED = 5
    FRAME_SIZE_ERROR = 6
    REFUSED_STREAM = 7
    CANCEL = 8
    COMPRESSION_ERROR = 9


_ID = struct.Struct(">I")
_SETTING = struct.Struct(">HI")


def frame(ftype: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    """One frame: its 9-byte header, then ``payload``."""
    return len(payload).to_bytes(3, "big") + bytes((ftype, flags)) + _ID.pack(stream) + payload


def settings(values: dict[int, int]) -> bytes:
    return frame(Type.SETTINGS, 0, 0, b"".join(_SETTING.pack(k, v) for k, v in values.items()))


def parse_settings(payload: bytes) -> dict[int, int]:
    return dict(_SETTING.iter_unpack(payload))


def window_update(stream: int, increment: int) -> bytes:
    return frame(Type.WINDOW_UPDATE, 0, stream, _ID.pack(increment))


def rst_stream(stream: int, code: int) -> bytes:
    return frame(Type.RST_STREAM, 0, stream, _ID.pack(code))


def goaway(last_stream: int, code: int, debug: bytes = b"") -> bytes:
    return frame(Type.GOAWAY, 0, 0, _ID.pack(last_stream) + _ID.pack(code) + debug)


# -- HPACK, the few representations a server needs (RFC 7541 sections 5 and 6) --------------


def hpack_int(value: int, prefix_bits: int, first: int = 0) -> bytes:
    """``value`` as an HPACK integer with a ``prefix_bits`` prefix; ``first`` holds the bits
    above the prefix in the first byte."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((first | value,))
    out = bytearray((first | limit,))
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def hpack_str(raw: bytes) -> bytes:
    """A string literal, not Huffman-coded."""
    return hpack_int(len(raw), 7) + raw


def literal(name: bytes, value: bytes) -> bytes:
    """A header field without indexing, its name a literal too."""
    return b"\x00" + hpack_str(name) + hpack_str(value)


def _literal_indexed_name(index: int, value: bytes) -> bytes:
    return hpack_int(index, 4) + hpack_str(value)


#: ``:status: 200`` (static table entry 8) and ``content-type: application/grpc`` (entry 31's name).
RESPONSE_HEADERS: Final = b"\x88" + _literal_indexed_name(31, b"application/grpc")


def response_headers(stream: int) -> bytes:
    """The HEADERS frame that opens a response (more frames follow: not the end of the stream)."""
    return frame(Type.HEADERS, Flag.END_HEADERS, stream, RESPONSE_HEADERS)


def status_block(code: int, message: str) -> bytes:
    """``grpc-status`` and, when there is one, ``grpc-message`` (percent-encoded as gRPC's HTTP/2
    protocol says: bytes outside printable ASCII, and ``%``)."""
    block = literal(b"grpc-status", str(code).encode())
    if message:
        block += literal(b"grpc-message", quote(message, safe=_MESSAGE_SAFE).encode("ascii"))
    return block


#: The status of every call that succeeds.
OK_STATUS: Final = literal(b"grpc-status", b"0")

#: Printable ASCII but '%': what grpc-message carries as it is.
_MESSAGE_SAFE: Final = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")


def message_prefix(length: int) -> bytes:
    """gRPC's length-prefixed message header: not compressed, then the length."""
    return b"\x00" + _ID.pack(length)
