"""The store's argument checks, run before anything changes so bad input never corrupts state
(the input rules are listed in :mod:`.kvstore`'s docstring).
"""

from __future__ import annotations

from minietcd.mvcc.revision import MAX_INT64, MIN_INT64


def as_bytes(value: object, what: str) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    raise TypeError(f"{what} must be bytes, not {type(value).__name__}")


def check_int64(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if not MIN_INT64 <= value <= MAX_INT64:
        raise ValueError(f"{what} {value} does not fit in int64")
    return value
